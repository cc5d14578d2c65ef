#include "pipeline/upscale.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/tiles.h"

namespace nb::pipeline {

namespace {

// Output-space blend weights of tile i along one axis. Across an overlap of length L (output pixels) with a
// neighbour, the weight is 0 in the outer quarter (where the tile's zero padding distorts the convolutions
// most), ramps linearly over the middle half and is 1 beyond; the two tiles' weights sum to 1 everywhere.
std::vector<float> axis_weights(const std::vector<int64_t>& starts, size_t i, int64_t len, int64_t s) {
    const int64_t n = len * s;
    const int64_t lead = i > 0 ? (starts[i - 1] + len - starts[i]) * s : 0;
    const int64_t trail = i + 1 < starts.size() ? (starts[i] + len - starts[i + 1]) * s : 0;
    auto ramp = [](int64_t d, int64_t l) {
        return std::clamp((float(d) + 0.5f - float(l) / 4.f) / (float(l) / 2.f), 0.f, 1.f);
    };
    std::vector<float> w(size_t(n), 1.f);
    for (int64_t d = 0; d < n; ++d) {
        if (d < lead) w[size_t(d)] = std::min(w[size_t(d)], ramp(d, lead));
        if (n - d <= trail) w[size_t(d)] = std::min(w[size_t(d)], ramp(n - 1 - d, trail));
    }
    return w;
}

// x [1, C, H, W] -> x[:, :, y0:y0+h, x0:x0+w], reading rows/cols past the edge from the last one (edge pad).
Tensor crop_clamped(const Tensor& x, int64_t y0, int64_t x0, int64_t h, int64_t w) {
    const int64_t c = x.dim(1), hh = x.dim(2), ww = x.dim(3);
    Tensor out = Tensor::empty({1, c, h, w});
    for (int64_t p = 0; p < c; ++p)
        for (int64_t r = 0; r < h; ++r) {
            const float* src = x.data() + (p * hh + std::min(y0 + r, hh - 1)) * ww;
            float* dst = out.data() + (p * h + r) * w;
            for (int64_t q = 0; q < w; ++q) dst[q] = src[std::min(x0 + q, ww - 1)];
        }
    return out;
}

int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

}  // namespace

Result<Tensor> upscale_tiled(const esrgan::Model& m, const Tensor& x, const UpscaleTiling& t, const TileFn& on_tile) {
    const int64_t s = m.config().scale, u = m.config().unshuffle, c = x.dim(1);
    const int64_t h = x.dim(2), w = x.dim(3), hp = round_up(h, u), wp = round_up(w, u);  // padded to the unshuffle
    const int64_t tile = t.tile <= 0 ? std::max(hp, wp) : std::max<int64_t>(round_up(t.tile, u), u);
    const int64_t overlap = std::clamp<int64_t>(t.overlap / u * u, 0, tile - u);
    const int64_t th = std::min(tile, hp), tw = std::min(tile, wp);
    const std::vector<int64_t> ys = tile_starts(hp, th, overlap), xs = tile_starts(wp, tw, overlap);
    const int64_t oh = h * s, ow = w * s;
    Tensor acc({1, c, oh, ow});  // weighted sum of tile outputs, cropped to the unpadded size
    // Weights are separable (w = wy * wx over a grid of tiles), so their sum is the product of axis sums.
    std::vector<float> sum_y(size_t(hp * s), 0.f), sum_x(size_t(wp * s), 0.f);
    const int total = int(ys.size() * xs.size());
    for (size_t iy = 0; iy < ys.size(); ++iy) {
        const std::vector<float> wy = axis_weights(ys, iy, th, s);
        for (int64_t r = 0; r < th * s; ++r) sum_y[size_t(ys[iy] * s + r)] += wy[size_t(r)];
        for (size_t ix = 0; ix < xs.size(); ++ix) {
            const std::vector<float> wx = axis_weights(xs, ix, tw, s);
            if (iy == 0)
                for (int64_t q = 0; q < tw * s; ++q) sum_x[size_t(xs[ix] * s + q)] += wx[size_t(q)];
            const Tensor y = m.forward(crop_clamped(x, ys[iy], xs[ix], th, tw));  // [1, C, th*s, tw*s]
            const int64_t y0 = ys[iy] * s, x0 = xs[ix] * s, rows = std::min(th * s, oh - y0), cols = std::min(tw * s, ow - x0);
            for (int64_t p = 0; p < c; ++p)
                for (int64_t r = 0; r < rows; ++r) {
                    const float* src = y.data() + (p * th * s + r) * tw * s;
                    float* dst = acc.data() + (p * oh + y0 + r) * ow + x0;
                    const float wr = wy[size_t(r)];
                    for (int64_t q = 0; q < cols; ++q) dst[q] += wr * wx[size_t(q)] * src[q];
                }
            const int done = int(iy * xs.size() + ix);
            if (on_tile && !on_tile(done, total)) return make_error(Errc::cancelled, "upscale cancelled");
        }
    }
    for (int64_t p = 0; p < c; ++p)
        for (int64_t r = 0; r < oh; ++r)
            for (int64_t q = 0; q < ow; ++q) acc.data()[(p * oh + r) * ow + q] /= sum_y[size_t(r)] * sum_x[size_t(q)];
    return acc;
}

Result<Image> upscale_pass(const esrgan::Model& m, const Image& in, const UpscaleTiling& t, const TileFn& on_tile) {
    if (in.channels != 3 && in.channels != 4)
        return make_error(Errc::invalid_argument, "upscale needs an RGB or RGBA image (got {} channels)", in.channels);
    const int h = in.height, w = in.width, s = m.config().scale;
    Tensor x = Tensor::empty({1, 3, h, w});  // RGB / 255, as Real-ESRGAN's pipeline
    for (int y = 0; y < h; ++y)
        for (int q = 0; q < w; ++q)
            for (int c = 0; c < 3; ++c) x.data()[(int64_t(c) * h + y) * w + q] = float(in.at(q, y)[c]) / 255.f;
    NB_TRY(out, upscale_tiled(m, x, t, on_tile));
    const int oh = h * s, ow = w * s;
    Image alpha;
    if (in.channels == 4) {  // alpha resized, not run through the network (A1111 and RealESRGANer's "bicubic"-style)
        Image a{w, h, 1, std::vector<uint8_t>(size_t(w) * size_t(h))};
        for (size_t i = 0; i < a.pixels.size(); ++i) a.pixels[i] = in.pixels[i * 4 + 3];
        alpha = s == 1 ? a : resize(a, ow, oh);
    }
    Image img{ow, oh, in.channels, std::vector<uint8_t>(size_t(ow) * size_t(oh) * size_t(in.channels))};
    for (int y = 0; y < oh; ++y)
        for (int q = 0; q < ow; ++q) {
            uint8_t* px = img.at(q, y);
            for (int c = 0; c < 3; ++c) {
                const float v = std::clamp(out.data()[(int64_t(c) * oh + y) * ow + q], 0.f, 1.f);
                px[c] = uint8_t(std::lround(v * 255.f));  // Real-ESRGAN: round(clamp(x, 0, 1) * 255)
            }
            if (in.channels == 4) px[3] = alpha.pixels[size_t(y) * size_t(ow) + size_t(q)];
        }
    return img;
}

int upscale_passes(int model_scale, int in_w, int in_h, int out_w, int out_h) {
    int n = 1;
    int64_t w = int64_t(in_w) * model_scale, h = int64_t(in_h) * model_scale;
    while (model_scale > 1 && n < 3 && (w < out_w || h < out_h)) {
        w *= model_scale, h *= model_scale;
        ++n;
    }
    return n;
}

Result<Image> upscale_image(const esrgan::Model& m, const Image& in, int out_w, int out_h, const UpscaleTiling& t,
                            const PassTileFn& on_tile) {
    if (in.width <= 0 || in.height <= 0) return make_error(Errc::invalid_argument, "upscale: empty input image");
    if (out_w <= 0 || out_h <= 0) return make_error(Errc::invalid_argument, "upscale: bad target size {}x{}", out_w, out_h);
    const int n = upscale_passes(m.config().scale, in.width, in.height, out_w, out_h);
    Image cur = in;
    for (int pass = 0; pass < n; ++pass) {
        NB_TRY(next, upscale_pass(m, cur, t, [&](int i, int total) { return !on_tile || on_tile(pass, n, i, total); }));
        cur = std::move(next);
    }
    if (cur.width != out_w || cur.height != out_h) cur = resize(cur, out_w, out_h);
    return cur;
}

}  // namespace nb::pipeline
