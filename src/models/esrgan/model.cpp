#include "models/esrgan/model.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "backend/ops.h"
#include "models/esrgan/kernels.h"

namespace nb::esrgan {

namespace {

constexpr float kLeakySlope = 0.2f;  // BasicSR lrelu(negative_slope=0.2)
constexpr float kResScale = 0.2f;    // ESRGAN residual scaling of RDB / RRDB outputs

// x [1, C, H, W] -> view of channels [0, c) (contiguous prefix for batch 1, shares storage).
Tensor channel_prefix(const Tensor& x, int64_t c) {
    const int64_t h = x.dim(2), w = x.dim(3);
    return x.reshape({x.dim(1), h * w}).slice0(0, c).reshape({1, c, h, w});
}

// buf [1, Ctot, H, W]: channels [c0, c0 + src.C) = src.
void write_channels(Tensor& buf, int64_t c0, const Tensor& src) {
    std::memcpy(buf.data() + c0 * buf.dim(2) * buf.dim(3), src.data(), size_t(src.numel()) * sizeof(float));
}

// One residual dense block on x [1, F, H, W]; `dense` is scratch [1, F + 4G, H, W] holding x, x1..x4.
Tensor rdb_forward(const RDB& b, const Tensor& x, Tensor& dense) {
    const int64_t f = x.dim(1);
    write_channels(dense, 0, x);
    int64_t c = f;
    for (int k = 0; k < 4; ++k) {
        Tensor y = b.conv[size_t(k)].forward(channel_prefix(dense, c));  // [1, G, H, W]
        leaky_relu_(y, kLeakySlope);
        write_channels(dense, c, y);
        c += y.dim(1);
    }
    Tensor out = b.conv[4].forward(dense);  // [1, F, H, W]
    ops::scale_(out, kResScale);
    ops::add_(out, x);
    return out;
}

}  // namespace

std::string Config::summary() const {
    if (arch == Arch::srvgg)
        return fmt::format("SRVGGNetCompact x{} (num_feat {}, num_conv {})", scale, num_feat, num_conv);
    return fmt::format("RRDBNet x{} (num_feat {}, {} blocks, grow {}{})", scale, num_feat, num_block, num_grow,
                       unshuffle > 1 ? fmt::format(", pixel_unshuffle {}", unshuffle) : "");
}

int Config::receptive_radius() const {
    if (arch == Arch::srvgg) return num_conv + 2;
    // conv_first + 15 convs per RRDB + conv_body at the (unshuffled) input resolution, then up-convs.
    return (1 + 15 * num_block + 1) * unshuffle + 2;
}

Result<Model> Model::load(const std::string& path) {
    NB_TRY(store, WeightStore::open(path));
    return from_store(store);
}

Result<Model> Model::from_store(const WeightStore& store) {
    Model m;
    if (auto r = bind_weights(store, m); !r) return std::unexpected(r.error());
    return m;
}

Tensor Model::forward(const Tensor& x) const {
    if (x.dim(0) == 1) return cfg_.arch == Arch::srvgg ? forward_srvgg(x) : forward_rrdb(x);
    // Batches run one image at a time (the dense-concat scratch is per image).
    Tensor out;
    for (int64_t i = 0; i < x.dim(0); ++i) {
        Tensor y = forward(x.slice0(i, i + 1));
        if (!out.defined()) out = Tensor::empty({x.dim(0), y.dim(1), y.dim(2), y.dim(3)});
        std::memcpy(out.data() + i * y.numel(), y.data(), size_t(y.numel()) * sizeof(float));
    }
    return out;
}

// x [1, in, H, W] -> [1, out, H*s, W*s]
Tensor Model::forward_srvgg(const Tensor& x) const {
    Tensor h = vgg_.first.forward(x);  // [1, F, H, W]
    prelu_(h, vgg_.prelu[0]);
    for (size_t i = 0; i < vgg_.convs.size(); ++i) {
        h = vgg_.convs[i].forward(h);
        prelu_(h, vgg_.prelu[i + 1]);
    }
    Tensor out = pixel_shuffle(vgg_.last.forward(h), cfg_.scale);  // [1, out*s*s, H, W] -> [1, out, sH, sW]
    add_upsampled_nearest_(out, x, cfg_.scale);
    return out;
}

// x [1, in, H, W] -> [1, out, H*s, W*s]; the body always upsamples x4, so x2 / x1 models unshuffle first.
Tensor Model::forward_rrdb(const Tensor& x) const {
    const Tensor in = cfg_.unshuffle > 1 ? pixel_unshuffle(x, cfg_.unshuffle) : x;  // [1, in*u*u, H/u, W/u]
    const Tensor feat = rrdb_.conv_first.forward(in);                               // [1, F, h, w]
    const int64_t f = feat.dim(1), g = cfg_.num_grow;
    Tensor dense = Tensor::empty({1, f + 4 * g, feat.dim(2), feat.dim(3)});
    Tensor h = feat;
    for (const RRDB& blk : rrdb_.body) {
        Tensor y = h;
        for (const RDB& r : blk.rdb) y = rdb_forward(r, y, dense);
        ops::scale_(y, kResScale);
        ops::add_(y, h);
        h = y;
    }
    Tensor body = rrdb_.conv_body.forward(h);
    ops::add_(body, feat);
    Tensor up = rrdb_.conv_up1.forward(ops::upsample_nearest2x(body));  // [1, F, 2h, 2w]
    leaky_relu_(up, kLeakySlope);
    up = rrdb_.conv_up2.forward(ops::upsample_nearest2x(up));  // [1, F, 4h, 4w]
    leaky_relu_(up, kLeakySlope);
    Tensor hr = rrdb_.conv_hr.forward(up);
    leaky_relu_(hr, kLeakySlope);
    return rrdb_.conv_last.forward(hr);
}

}  // namespace nb::esrgan
