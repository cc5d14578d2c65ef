// Tiled VAE encode/decode: run the network on overlapping tiles and blend them with linear ramps across each
// overlap (weights normalised by their sum), so peak activation memory depends on the tile, not the image.
// Each tile gets its own GroupNorm statistics, so results differ slightly from the untiled pass (as in
// A1111's and stable-diffusion.cpp's tiled VAE); the ramps hide the seams.
#include <algorithm>
#include <functional>
#include <vector>

#include "core/tiles.h"

#include "backend/ops.h"
#include "models/vae/model.h"
#include "models/vae/tiling.h"

namespace nb::vae {

namespace {

// Blend weights along one axis for tile i (output units): linear ramp over the overlap with each neighbour,
// 1 elsewhere; strictly positive so the normalisation never divides by zero.
std::vector<float> axis_weights(const std::vector<int64_t>& starts, size_t i, int64_t len, int64_t scale_num,
                                int64_t scale_den) {
    auto out = [&](int64_t v) { return v * scale_num / scale_den; };
    const int64_t n = out(len), s = out(starts[i]);
    const int64_t lead = i > 0 ? out(starts[i - 1]) + n - s : 0;
    const int64_t trail = i + 1 < starts.size() ? s + n - out(starts[i + 1]) : 0;
    std::vector<float> w(n, 1.f);
    for (int64_t d = 0; d < n; ++d) {
        if (d < lead) w[d] = std::min(w[d], (float(d) + 0.5f) / float(lead));
        if (n - d <= trail) w[d] = std::min(w[d], (float(n - d) - 0.5f) / float(trail));
    }
    return w;
}

// x [N, C, H, W] -> x[:, :, y0:y0+h, x0:x0+w] (copied).
Tensor crop(const Tensor& x, int64_t y0, int64_t x0, int64_t h, int64_t w) {
    const int64_t planes = x.dim(0) * x.dim(1), hh = x.dim(2), ww = x.dim(3);
    Tensor out = Tensor::empty({x.dim(0), x.dim(1), h, w});
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t r = 0; r < h; ++r)
            std::copy_n(x.data() + (p * hh + y0 + r) * ww + x0, w, out.data() + (p * h + r) * w);
    return out;
}

}  // namespace

Tensor tiled_map(const Tensor& x, int64_t tile, int64_t overlap, int64_t num, int64_t den, int64_t out_c,
                 const std::function<Tensor(const Tensor&)>& fn) {
    tile = std::max(tile, den);  // guards the stride below: a bad request is tiled coarsely, never loops
    overlap = std::clamp<int64_t>(overlap, 0, tile - den);
    const int64_t batch = x.dim(0), hh = x.dim(2), ww = x.dim(3);
    const int64_t oh = hh * num / den, ow = ww * num / den;
    const int64_t th = std::min(tile, hh), tw = std::min(tile, ww);
    const std::vector<int64_t> ys = tile_starts(hh, th, overlap), xs = tile_starts(ww, tw, overlap);
    Tensor acc({batch, out_c, oh, ow});  // zero-initialised weighted sum
    std::vector<float> wsum(size_t(oh * ow), 0.f);
    for (size_t iy = 0; iy < ys.size(); ++iy) {
        const std::vector<float> wy = axis_weights(ys, iy, th, num, den);
        for (size_t ix = 0; ix < xs.size(); ++ix) {
            const std::vector<float> wx = axis_weights(xs, ix, tw, num, den);
            const Tensor y = fn(crop(x, ys[iy], xs[ix], th, tw));  // [N, out_c, th', tw']
            const int64_t y0 = ys[iy] * num / den, x0 = xs[ix] * num / den;
            const int64_t h1 = int64_t(wy.size()), w1 = int64_t(wx.size());
            for (int64_t p = 0; p < batch * out_c; ++p)
                for (int64_t r = 0; r < h1; ++r) {
                    const float* src = y.data() + (p * h1 + r) * w1;
                    float* dst = acc.data() + (p * oh + y0 + r) * ow + x0;
                    for (int64_t c = 0; c < w1; ++c) dst[c] += wy[r] * wx[c] * src[c];
                }
            for (int64_t r = 0; r < h1; ++r)
                for (int64_t c = 0; c < w1; ++c) wsum[(y0 + r) * ow + x0 + c] += wy[r] * wx[c];
        }
    }
    for (int64_t p = 0; p < batch * out_c; ++p)
        for (int64_t i = 0; i < oh * ow; ++i) acc.data()[p * oh * ow + i] /= wsum[i];
    return acc;
}

// tile >= 1 and 0 <= overlap < tile are enforced by clamping (a caller's odd request still decodes).
Tensor VAE::decode_tiled(const Tensor& z_scaled, int tile, int overlap) const {
    const int64_t t = std::max(tile, 1), o = std::clamp<int64_t>(overlap, 0, t - 1);
    return tiled_map(z_scaled, t, o, cfg_.downscale(), 1, cfg_.out_ch,
                     [this](const Tensor& z) { return decode(z); });
}

// Pixel tiles rounded down to multiples of the downscale factor f (at least f); overlap < tile.
Tensor VAE::encode_moments_tiled(const Tensor& x, int tile_px, int overlap_px) const {
    const int64_t f = cfg_.downscale();
    const int64_t t = std::max<int64_t>(tile_px / f * f, f);
    const int64_t o = std::clamp<int64_t>(overlap_px / f * f, 0, t - f);
    return tiled_map(x, t, o, 1, f, 2 * cfg_.embed_dim, [this](const Tensor& p) { return encode_moments(p); });
}

bool VAE::would_tile(int64_t latent_h, int64_t latent_w, const TileOptions& opt) const {
    return latent_h * latent_w > opt.max_untiled_area && (latent_h > opt.tile || latent_w > opt.tile);
}

Tensor VAE::decode_auto(const Tensor& z_scaled, const TileOptions& opt) const {
    if (!would_tile(z_scaled.dim(2), z_scaled.dim(3), opt)) return decode(z_scaled);
    return decode_tiled(z_scaled, opt.tile, opt.overlap);
}

Tensor VAE::encode_moments_auto(const Tensor& x, const TileOptions& opt) const {
    const int f = cfg_.downscale();
    if (!would_tile(x.dim(2) / f, x.dim(3) / f, opt)) return encode_moments(x);
    return encode_moments_tiled(x, opt.tile * f, opt.overlap * f);
}

}  // namespace nb::vae
