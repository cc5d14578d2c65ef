// The TAESD key table: taesd.py's Decoder / Encoder Sequential indices, found bare (madebyollin's .pth files),
// under "decoder.layers." / "encoder.layers." (diffusers AutoencoderTiny) or under "decoder." / "encoder.".
#include <optional>
#include <set>
#include <span>
#include <string>

#include <fmt/format.h>

#include "io/weight_store.h"
#include "models/nn/binder.h"
#include "models/taesd/model.h"

namespace nb::taesd {

namespace {

constexpr int64_t kWidth = 64;  // every TAESD conv works at 64 channels

struct Step {
    int index;  // Sequential index; -1 for the upsample (no weights)
    Layer::Kind kind;
    int stride = 1;
    bool bias = true;
};
using K = Layer::Kind;

// Decoder: 0 Clamp, 1 conv + 2 ReLU, 3-5 Blocks, 6 Upsample, 7 conv (no bias), 8-10 Blocks, 11 Upsample,
// 12 conv, 13-15 Blocks, 16 Upsample, 17 conv, 18 Block, 19 conv 64 -> 3.
constexpr Step kDecoder[] = {
    {1, K::conv_relu}, {3, K::block},          {4, K::block},  {5, K::block},          {-1, K::upsample},
    {7, K::conv, 1, false}, {8, K::block},     {9, K::block},  {10, K::block},         {-1, K::upsample},
    {12, K::conv, 1, false}, {13, K::block},   {14, K::block}, {15, K::block},         {-1, K::upsample},
    {17, K::conv, 1, false}, {18, K::block},   {19, K::conv},
};
// Encoder: 0 conv 3 -> 64, 1 Block, 2 conv stride 2 (no bias), 3-5 Blocks, 6 conv s2, 7-9 Blocks, 10 conv s2,
// 11-13 Blocks, 14 conv 64 -> latent channels.
constexpr Step kEncoder[] = {
    {0, K::conv},           {1, K::block},  {2, K::conv, 2, false}, {3, K::block},  {4, K::block},
    {5, K::block},          {6, K::conv, 2, false}, {7, K::block},  {8, K::block},  {9, K::block},
    {10, K::conv, 2, false}, {11, K::block}, {12, K::block},        {13, K::block}, {14, K::conv},
};

void bind_conv(nn::Binder& b, nn::Conv2d& c, const std::string& name, int64_t in, int64_t out, int stride,
               bool bias) {
    if (bias) return b.conv2d(c, name, in, out, 3, stride, 1);
    c.weight = b.tensor(name + ".weight", {out, in, 3, 3});
    c.stride = stride;
    c.pad = ops::Pad2d::same(1);
}

void bind_block(nn::Binder& b, Block& m, const std::string& n) {
    bind_conv(b, m.conv0, n + ".conv.0", kWidth, kWidth, 1, true);
    bind_conv(b, m.conv2, n + ".conv.2", kWidth, kWidth, 1, true);
    bind_conv(b, m.conv4, n + ".conv.4", kWidth, kWidth, 1, true);
    m.pooled = b.has(n + ".pool.0.weight");
    if (!m.pooled) return;
    m.pool0.weight = b.tensor(n + ".pool.0.weight", {4 * kWidth, kWidth, 1, 1});
    b.group_norm(m.pool_norm, n + ".pool.1", 4 * kWidth, 1e-5f, 4);
    m.pool3.weight = b.tensor(n + ".pool.3.weight", {kWidth, 4 * kWidth, 1, 1});
}

// Binds one Sequential; `first_in` / `last_out`: channels into the first conv and out of the last.
std::vector<Layer> bind_sequential(nn::Binder& b, std::span<const Step> steps, int64_t first_in, int64_t last_out,
                                   bool& pooled) {
    std::vector<Layer> layers;
    for (size_t i = 0; i < steps.size(); ++i) {
        const Step& s = steps[i];
        Layer l{s.kind, {}, {}};
        const std::string n = std::to_string(s.index);
        if (s.kind == K::block) {
            bind_block(b, l.block, n);
            pooled = pooled || l.block.pooled;
        } else if (s.kind != K::upsample) {
            const int64_t in = i == 0 ? first_in : kWidth, out = i + 1 == steps.size() ? last_out : kWidth;
            bind_conv(b, l.conv, n, in, out, s.stride, s.bias);
        }
        layers.push_back(std::move(l));
    }
    return layers;
}

}  // namespace

Result<void> bind(const std::string& path, Model& m) {
    NB_TRY(store, WeightStore::open(path));
    const WeightStore& ws = store;
    auto lookup = [&ws](std::string_view k) { return ws.find(k); };
    // Which prefix holds a decoder (its first conv "1.weight" [64, C, 3, 3] and last "19.weight") and an encoder
    // ("0.weight" [64, 3, 3, 3] and "14.weight").
    auto find_prefix = [&](const char* first, const char* last, std::initializer_list<const char*> prefixes) {
        for (const char* p : prefixes) {
            const TensorEntry* e = ws.find(std::string(p) + first);
            if (e && e->shape.size() == 4 && ws.find(std::string(p) + last)) return std::optional<std::string>(p);
        }
        return std::optional<std::string>();
    };
    const auto dec = find_prefix("1.weight", "19.weight", {"", "decoder.layers.", "decoder."});
    const auto enc = find_prefix("0.weight", "14.weight", {"", "encoder.layers.", "encoder."});
    if (!dec && !enc)
        return make_error(Errc::unsupported,
                          "{}: not a TAESD decoder or encoder (no Sequential conv '1.weight' .. '19.weight' or "
                          "'0.weight' .. '14.weight', bare or under decoder.layers. / encoder.layers.)",
                          path);
    std::set<std::string> used;
    if (dec) {
        nn::Binder b(lookup, *dec);
        m.cfg_.latent_channels = ws.find(*dec + "1.weight")->shape[1];
        m.decoder_ = bind_sequential(b, kDecoder, m.cfg_.latent_channels, 3, m.cfg_.pooled);
        if (auto r = b.status(); !r) return make_error(r.error().code, "{}: {}", path, r.error().message);
        used.insert(b.used().begin(), b.used().end());
    }
    if (enc) {
        nn::Binder b(lookup, *enc);
        const int64_t c = ws.find(*enc + "14.weight")->shape[0];
        if (dec && c != m.cfg_.latent_channels)
            return make_error(Errc::shape, "{}: encoder makes {} latent channels, decoder takes {}", path, c,
                              m.cfg_.latent_channels);
        m.cfg_.latent_channels = c;
        m.encoder_ = bind_sequential(b, kEncoder, 3, c, m.cfg_.pooled);
        if (auto r = b.status(); !r) return make_error(r.error().code, "{}: {}", path, r.error().message);
        used.insert(b.used().begin(), b.used().end());
    }
    for (const TensorEntry& e : ws.entries())
        if (!used.contains(e.name))
            return make_error(Errc::format, "{}: unexpected tensor '{}' for {}", path, e.name, m.cfg_.summary());
    return {};
}

Result<Model> Model::load(const std::string& path) {
    Model m;
    if (auto r = bind(path, m); !r) return std::unexpected(r.error());
    return m;
}

}  // namespace nb::taesd
