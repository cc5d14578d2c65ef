// Forward passes of the LDM AutoencoderKL (see model.h for sources). Tiling lives in tiling.cpp.
#include "models/vae/model.h"

#include <algorithm>
#include <cmath>

#include "backend/ops.h"

namespace nb::vae {

Tensor ResnetBlock::forward(const Tensor& x) const {
    Tensor h = conv1.forward(norm1.forward(x, /*silu=*/true));  // [N, C_out, H, W]
    h = conv2.forward(norm2.forward(h, /*silu=*/true));          // dropout 0 at inference
    ops::add_(h, nin_shortcut ? nin_shortcut->forward(x) : x);
    return h;
}

Tensor AttnBlock::forward(const Tensor& x) const {
    const int64_t hh = x.dim(2), ww = x.dim(3);
    Tensor t = ops::nchw_to_nhwc(norm.forward(x));  // [N, H*W, C]
    // ops::attention scales by Dh^-0.5; with one head Dh = C, matching ldm's int(c)**(-0.5).
    Tensor o = ops::attention(q.forward(t), k.forward(t), v.forward(t), /*heads=*/1);
    Tensor out = ops::nhwc_to_nchw(proj_out.forward(o), hh, ww);  // [N, C, H, W]
    ops::add_(out, x);
    return out;
}

Tensor MidBlock::forward(const Tensor& x) const {
    Tensor h = block_1.forward(x);
    if (attn_1) h = attn_1->forward(h);
    return block_2.forward(h);
}

Tensor Encoder::forward(const Tensor& x) const {
    Tensor h = conv_in.forward(x);  // [N, ch, H, W]
    for (const DownLevel& level : down) {
        for (const ResnetBlock& b : level.block) h = b.forward(h);
        if (level.downsample) h = level.downsample->forward(h);  // [N, C, H/2, W/2]
    }
    h = mid.forward(h);
    return conv_out.forward(norm_out.forward(h, /*silu=*/true));  // [N, 2z, H/f, W/f]
}

Tensor Decoder::forward(const Tensor& z) const {
    Tensor h = mid.forward(conv_in.forward(z));  // [N, ch*ch_mult[-1], h, w]
    for (auto level = up.rbegin(); level != up.rend(); ++level) {
        for (const ResnetBlock& b : level->block) h = b.forward(h);
        if (level->upsample) h = level->upsample->forward(ops::upsample_nearest2x(h));
        // Each level works at 4x the pixels of the last: the owner's hook (the pipeline hands the last level's
        // freed buffers and the kernels' scratch back) keeps the peak at one level's, not the sum.
        if (between_levels) between_levels();
    }
    return conv_out.forward(norm_out.forward(h, /*silu=*/true));  // [N, out_ch, h*f, w*f]
}

// Copies channels [c0, c0+n) of x [N, C, H, W] -> [N, n, H, W].
static Tensor channel_slice(const Tensor& x, int64_t c0, int64_t n) {
    const int64_t batch = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3);
    Tensor out = Tensor::empty({batch, n, x.dim(2), x.dim(3)});
    for (int64_t b = 0; b < batch; ++b)
        std::copy_n(x.data() + (b * c + c0) * plane, n * plane, out.data() + b * n * plane);
    return out;
}

Posterior Posterior::from_moments(const Tensor& moments) {
    const int64_t e = moments.dim(1) / 2;
    Posterior p{channel_slice(moments, 0, e), channel_slice(moments, e, e)};
    for (float& v : p.logvar.span()) v = std::clamp(v, -30.f, 20.f);
    return p;
}

Tensor Posterior::std() const {
    Tensor s = Tensor::empty(logvar.shape());
    const float* lv = logvar.data();
    float* o = s.data();
    for (int64_t i = 0; i < s.numel(); ++i) o[i] = std::exp(0.5f * lv[i]);
    return s;
}

Tensor Posterior::sample(const Tensor& noise) const {
    Tensor s = std();
    const float *m = mean.data(), *n = noise.data();
    float* o = s.data();
    for (int64_t i = 0; i < s.numel(); ++i) o[i] = m[i] + o[i] * n[i];
    return s;
}

Result<void> VAE::check_image(const Tensor& x) const {
    const int f = cfg_.downscale();
    if (x.ndim() != 4 || x.dim(1) != cfg_.in_channels || x.dim(2) % f != 0 || x.dim(3) % f != 0)
        return make_error(Errc::invalid_argument, "vae: image has shape {}, expected [N, {}, H, W] with H, W multiples of {}",
                          shape_str(x.shape()), cfg_.in_channels, f);
    return {};
}

Result<void> VAE::check_latent(const Tensor& z) const {
    if (z.ndim() != 4 || z.dim(1) != cfg_.embed_dim)
        return make_error(Errc::invalid_argument, "vae: latent has shape {}, expected [N, {}, h, w]",
                          shape_str(z.shape()), cfg_.embed_dim);
    return {};
}

Tensor VAE::encoder_out(const Tensor& x) const { return encoder_.forward(x); }

Tensor VAE::encode_moments(const Tensor& x) const { return quant_conv_.forward(encoder_.forward(x)); }

Tensor VAE::encode_scaled(const Tensor& x, const Tensor& noise) const {
    Tensor z = Posterior::from_moments(encode_moments_auto(x)).sample(noise);
    ops::scale_(z, scale_);
    return z;
}

Tensor VAE::decode_unscaled(const Tensor& z) const { return decoder_.forward(post_quant_conv_.forward(z)); }

Tensor VAE::decode(const Tensor& z_scaled) const {
    Tensor z = z_scaled.clone();
    ops::scale_(z, 1.f / scale_);
    return decode_unscaled(z);
}

}  // namespace nb::vae
