// Integer-exact Pillow / OpenCV pixel operations and the A1111 img2img / inpaint stages built from them.
// Formulas: golden/README.md section 10 ("Pillow integer operations", "Mask", "Image", masking.fill).
#include "image/edit.h"

#include <algorithm>
#include <cmath>
#include <numbers>

// Pillow and A1111 (Python) round every float product; GCC contracts a*b+c into an FMA in C++ by default
// (-ffp-contract=fast, with -march=x86-64-v3), which moved A1111's crop box by a pixel (10*0.6 - 5: 0 vs 1).
#pragma GCC optimize("fp-contract=off")

namespace nb {

namespace {

Image blank(int w, int h, int c) {
    return Image{w, h, c, std::vector<uint8_t>(size_t(std::max(w, 0)) * size_t(std::max(h, 0)) * size_t(c))};
}

// Pillow's DIV255 / MULDIV255: v / 255 rounded, for v <= 255 * 255 (+ the 128 bias).
uint8_t div255(uint32_t v) {
    const uint32_t t = v + 128;
    return uint8_t(((t >> 8) + t) >> 8);
}

// ---- resampling (Pillow Resample.c semantics) ----

double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= std::numbers::pi;
    return std::sin(x) / x;
}

double filter_support(Resample f) {
    switch (f) {
        case Resample::bilinear:
            return 1.0;
        case Resample::bicubic:
            return 2.0;
        default:
            return 3.0;
    }
}

double filter_value(Resample f, double x) {
    switch (f) {
        case Resample::bilinear:
            x = std::fabs(x);
            return x < 1.0 ? 1.0 - x : 0.0;
        case Resample::bicubic: {
            constexpr double a = -0.5;  // Keys
            x = std::fabs(x);
            if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
            if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
            return 0.0;
        }
        default:
            return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;  // lanczos, a = 3
    }
}

constexpr int kPrecisionBits = 22;  // 32 - 8 - 2, as Pillow for 8-bit images

// Integer weights of one separable pass: output index i reads in[lo[i] .. lo[i] + n[i]) with k[i*ksize + j].
struct Taps {
    int ksize = 0;
    std::vector<int> lo, n;
    std::vector<int32_t> k;
};

// in0, in1: the source box edges, float as Pillow parses them; their difference is taken in float too.
Taps make_taps(int in_size, float in0, float in1, int out_size, Resample f) {
    const double scale = double(in1 - in0) / out_size;
    const double fscale = scale < 1.0 ? 1.0 : scale;
    const double support = filter_support(f) * fscale;
    Taps t;
    t.ksize = int(std::ceil(support)) * 2 + 1;
    t.lo.resize(size_t(out_size)), t.n.resize(size_t(out_size)),
        t.k.assign(size_t(out_size) * size_t(t.ksize), 0);
    std::vector<double> w(size_t(t.ksize));
    const double ss = 1.0 / fscale;
    for (int i = 0; i < out_size; ++i) {
        const double centre = in0 + (i + 0.5) * scale;
        const int lo = std::max(int(centre - support + 0.5), 0);  // int(): truncation toward zero
        const int hi = std::min(int(centre + support + 0.5), in_size);
        const int n = std::clamp(hi - lo, 0, t.ksize);
        double sum = 0.0;
        for (int j = 0; j < n; ++j) {
            w[size_t(j)] = filter_value(f, (double(j + lo) - centre + 0.5) * ss);
            sum += w[size_t(j)];
        }
        for (int j = 0; j < n; ++j) {
            double v = sum != 0.0 ? w[size_t(j)] / sum : w[size_t(j)];
            v *= double(1 << kPrecisionBits);
            t.k[size_t(i) * size_t(t.ksize) + size_t(j)] = int32_t(v < 0 ? v - 0.5 : v + 0.5);
        }
        t.lo[size_t(i)] = lo, t.n[size_t(i)] = n;
    }
    return t;
}

uint8_t clip_acc(int32_t acc) {
    return uint8_t(std::clamp(acc >> kPrecisionBits, 0, 255));
}

Image resample_horizontal(const Image& in, int out_w, const Taps& t) {
    const int c = in.channels;
    Image out = blank(out_w, in.height, c);
    for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < out_w; ++x) {
            const int32_t* k = &t.k[size_t(x) * size_t(t.ksize)];
            const uint8_t* src = in.at(t.lo[size_t(x)], y);
            for (int ch = 0; ch < c; ++ch) {
                int32_t acc = 1 << (kPrecisionBits - 1);
                for (int j = 0; j < t.n[size_t(x)]; ++j) acc += int32_t(src[j * c + ch]) * k[j];
                out.at(x, y)[ch] = clip_acc(acc);
            }
        }
    return out;
}

Image resample_vertical(const Image& in, int out_h, const Taps& t) {
    const int c = in.channels;
    const size_t row = size_t(in.width) * size_t(c);
    Image out = blank(in.width, out_h, c);
    for (int y = 0; y < out_h; ++y) {
        const int32_t* k = &t.k[size_t(y) * size_t(t.ksize)];
        const uint8_t* src = in.at(0, t.lo[size_t(y)]);
        uint8_t* dst = out.at(0, y);
        for (size_t i = 0; i < row; ++i) {
            int32_t acc = 1 << (kPrecisionBits - 1);
            for (int j = 0; j < t.n[size_t(y)]; ++j) acc += int32_t(src[size_t(j) * row + i]) * k[j];
            dst[i] = clip_acc(acc);
        }
    }
    return out;
}

// Pillow NEAREST (an affine "scale" transform): the source position starts at x0 + step/2 and is advanced by
// repeated addition of step, then truncated; the accumulation decides the ties (2 -> 7: index 3 reads 0).
std::vector<int> nearest_index(int in_size, float in0, float in1, int out_size) {
    const double step = double(in1 - in0) / out_size;
    std::vector<int> idx(static_cast<size_t>(out_size));
    double pos = in0 + step * 0.5;
    for (int i = 0; i < out_size; ++i, pos += step) idx[size_t(i)] = std::clamp(int(pos), 0, in_size - 1);
    return idx;
}

Image resize_nearest(const Image& im, int w, int h, float x0, float y0, float x1, float y1) {
    const auto ix = nearest_index(im.width, x0, x1, w), iy = nearest_index(im.height, y0, y1, h);
    Image out = blank(w, h, im.channels);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            std::copy_n(im.at(ix[size_t(x)], iy[size_t(y)]), im.channels, out.at(x, y));
    return out;
}

Image resample(const Image& im, int w, int h, Resample f, float x0, float y0, float x1, float y1) {
    const bool need_h = w != im.width || x0 != 0.0f || x1 != float(w);
    const bool need_v = h != im.height || y0 != 0.0f || y1 != float(h);
    Image cur = im;
    if (need_h) cur = resample_horizontal(cur, w, make_taps(im.width, x0, x1, w, f));
    if (need_v) cur = resample_vertical(cur, h, make_taps(im.height, y0, y1, h, f));
    return cur;
}

// LA / RGBA <-> premultiplied: the last channel is alpha.
Image premultiply_any(const Image& im) {
    Image out = im;
    const int c = im.channels;
    for (size_t p = 0; p < out.pixels.size(); p += size_t(c)) {
        const uint32_t a = out.pixels[p + size_t(c) - 1];
        for (int ch = 0; ch < c - 1; ++ch)
            out.pixels[p + size_t(ch)] = div255(out.pixels[p + size_t(ch)] * a);
    }
    return out;
}

Image unpremultiply_any(const Image& im) {
    Image out = im;
    const int c = im.channels;
    for (size_t p = 0; p < out.pixels.size(); p += size_t(c)) {
        const uint32_t a = out.pixels[p + size_t(c) - 1];
        if (a == 0 || a == 255) continue;
        for (int ch = 0; ch < c - 1; ++ch)
            out.pixels[p + size_t(ch)] =
                uint8_t(std::min<uint32_t>(255, 255u * out.pixels[p + size_t(ch)] / a));
    }
    return out;
}

// Converts to 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) channels as Pillow's convert / paste do.
Image convert_channels(const Image& im, int c) {
    if (im.channels == c) return im;
    if (c == 1) return to_l(im);
    if (c == 3) return to_rgb(im);
    if (c == 4) return to_rgba(im);
    Image l = to_l(im), out = blank(im.width, im.height, 2);  // LA
    const bool has_alpha = im.channels == 4;
    for (size_t i = 0; i < l.pixels.size(); ++i) {
        out.pixels[2 * i] = l.pixels[i];
        out.pixels[2 * i + 1] = has_alpha ? im.pixels[4 * i + 3] : 255;
    }
    return out;
}

// ---- OpenCV's 8-bit Gaussian (fixed point) ----

int reflect101(int p, int n) {
    if (n == 1) return 0;
    while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
    return p;
}

// One pass along x (dx = 1) or y (dx = 0): out = (sum k_j * in[p + j - r] + 128) >> 8.
Image gaussian_pass(const Image& in, const std::vector<int>& k, bool along_x) {
    const int r = int(k.size()) / 2, c = in.channels;
    Image out = blank(in.width, in.height, c);
    for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < in.width; ++x)
            for (int ch = 0; ch < c; ++ch) {
                int acc = 128;
                for (int j = 0; j < int(k.size()); ++j) {
                    const int sx = along_x ? reflect101(x + j - r, in.width) : x;
                    const int sy = along_x ? y : reflect101(y + j - r, in.height);
                    acc += k[size_t(j)] * in.at(sx, sy)[ch];
                }
                out.at(x, y)[ch] = uint8_t(acc >> 8);
            }
    return out;
}

// ---- Pillow's box blur (BoxBlur.c semantics) ----

// One pass of fractional radius rho over n samples spaced `stride` bytes apart; edges replicated.
void box_line(const uint8_t* in, uint8_t* out, int n, size_t stride, float rho) {
    const int R = int(rho);
    const uint32_t ww = uint32_t(float(1u << 24) / (rho * 2 + 1));
    const uint32_t fw = ((1u << 24) - uint32_t(2 * R + 1) * ww) / 2;
    auto at = [&](int j) -> uint32_t { return in[size_t(std::clamp(j, 0, n - 1)) * stride]; };
    uint32_t acc = 0;
    for (int j = -R; j <= R; ++j) acc += at(j);
    for (int x = 0; x < n; ++x) {
        const uint32_t bulk = acc * ww + (at(x - R - 1) + at(x + R + 1)) * fw;
        out[size_t(x) * stride] = uint8_t((bulk + (1u << 23)) >> 24);
        acc += at(x + R + 1) - at(x - R);
    }
}

Image box_pass(const Image& in, float rho, bool along_x) {
    Image out = blank(in.width, in.height, in.channels);
    const size_t c = size_t(in.channels), row = size_t(in.width) * c;
    if (along_x) {
        for (int y = 0; y < in.height; ++y)
            for (size_t ch = 0; ch < c; ++ch) box_line(in.at(0, y) + ch, out.at(0, y) + ch, in.width, c, rho);
    } else {
        for (int x = 0; x < in.width; ++x)
            for (size_t ch = 0; ch < c; ++ch)
                box_line(in.at(x, 0) + ch, out.at(x, 0) + ch, in.height, row, rho);
    }
    return out;
}

}  // namespace

// ---- conversions ----

Image pil_resize_box(const Image& im, int w, int h, Resample f, double x0d, double y0d, double x1d,
                     double y1d) {
    if (w <= 0 || h <= 0 || im.width <= 0 || im.height <= 0 || im.channels <= 0) return Image{};
    if (w == im.width && h == im.height && x0d == 0 && y0d == 0 && x1d == w && y1d == h) return im;
    const float x0 = float(x0d), y0 = float(y0d), x1 = float(x1d), y1 = float(y1d);  // Pillow: "(ffff)"
    if (f == Resample::nearest) return resize_nearest(im, w, h, x0, y0, x1, y1);
    if (im.channels == 2 || im.channels == 4)
        return unpremultiply_any(resample(premultiply_any(im), w, h, f, x0, y0, x1, y1));
    return resample(im, w, h, f, x0, y0, x1, y1);
}

Image pil_resize(const Image& im, int w, int h, Resample f) {
    return pil_resize_box(im, w, h, f, 0, 0, im.width, im.height);
}

Image to_l(const Image& im) {
    Image out = blank(im.width, im.height, 1);
    const size_t n = out.pixels.size(), c = size_t(im.channels);
    for (size_t i = 0; i < n; ++i) {
        const uint8_t* p = &im.pixels[i * c];
        out.pixels[i] =
            c <= 2 ? p[0] : uint8_t((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
    return out;
}

Image to_rgb(const Image& im) {
    if (im.channels == 3) return im;
    Image out = blank(im.width, im.height, 3);
    const size_t n = size_t(im.width) * size_t(im.height), c = size_t(im.channels);
    for (size_t i = 0; i < n; ++i)
        for (size_t ch = 0; ch < 3; ++ch) out.pixels[i * 3 + ch] = im.pixels[i * c + (c <= 2 ? 0 : ch)];
    return out;
}

Image to_rgba(const Image& im) {
    if (im.channels == 4) return im;
    Image out = blank(im.width, im.height, 4);
    const size_t n = size_t(im.width) * size_t(im.height), c = size_t(im.channels);
    for (size_t i = 0; i < n; ++i) {
        for (size_t ch = 0; ch < 3; ++ch) out.pixels[i * 4 + ch] = im.pixels[i * c + (c <= 2 ? 0 : ch)];
        out.pixels[i * 4 + 3] = c == 2 ? im.pixels[i * 2 + 1] : 255;
    }
    return out;
}

Image invert(const Image& im) {
    Image out = im;
    for (auto& p : out.pixels) p = uint8_t(255 - p);
    return out;
}

Image premultiply(const Image& rgba) {
    return premultiply_any(rgba);
}
Image unpremultiply(const Image& rgba_premul) {
    return unpremultiply_any(rgba_premul);
}

Image mask_to_l(const Image& mask) {
    if (mask.channels == 4) {
        bool opaque = true;
        for (size_t p = 3; p < mask.pixels.size() && opaque; p += 4) opaque = mask.pixels[p] == 255;
        if (!opaque) {
            Image out = blank(mask.width, mask.height, 1);
            for (size_t i = 0; i < out.pixels.size(); ++i)
                out.pixels[i] = mask.pixels[i * 4 + 3] > 128 ? 255 : 0;
            return out;
        }
    }
    return to_l(mask);
}

std::vector<int> gaussian_kernel_fixed(int sigma) {
    const int n = 2 * int(2.5 * sigma + 0.5) + 1;
    std::vector<double> g(static_cast<size_t>(n));
    double sum = 0;
    for (int i = 0; i < n; ++i) {
        const double x = i - (n - 1) * 0.5;
        g[size_t(i)] = std::exp(-x * x / (2.0 * sigma * sigma));
        sum += g[size_t(i)];
    }
    std::vector<int> k(static_cast<size_t>(n));
    double cum = 0;
    long prev = 0;
    for (int i = 0; i < n; ++i) {
        cum += g[size_t(i)] / sum;
        const long r = std::lround(256.0 * cum);
        k[size_t(i)] = int(r - prev);
        prev = r;
    }
    return k;
}

Image gaussian_blur_mask(const Image& l, int blur_x, int blur_y) {
    Image out = l;
    if (blur_x > 0) out = gaussian_pass(out, gaussian_kernel_fixed(blur_x), true);
    if (blur_y > 0) out = gaussian_pass(out, gaussian_kernel_fixed(blur_y), false);
    return out;
}

Image flatten(const Image& im) {
    if (im.channels != 4) return to_rgb(im);
    Image white = blank(im.width, im.height, 4);
    std::fill(white.pixels.begin(), white.pixels.end(), uint8_t(255));
    Image alpha = blank(im.width, im.height, 1);
    for (size_t i = 0; i < alpha.pixels.size(); ++i) alpha.pixels[i] = im.pixels[i * 4 + 3];
    return to_rgb(paste_masked(white, im, alpha, 0, 0));
}

Image paste(const Image& dst, const Image& src, int x, int y) {
    Image out = dst;
    const Image s = convert_channels(src, dst.channels);
    const int c = dst.channels;
    for (int sy = std::max(0, -y); sy < s.height && sy + y < dst.height; ++sy)
        for (int sx = std::max(0, -x); sx < s.width && sx + x < dst.width; ++sx)
            std::copy_n(s.at(sx, sy), c, out.at(sx + x, sy + y));
    return out;
}

Image paste_masked(const Image& dst, const Image& src, const Image& mask_l, int x, int y) {
    Image out = dst;
    const Image s = convert_channels(src, dst.channels);
    const Image m = convert_channels(mask_l, 1);
    const int c = dst.channels;
    for (int sy = std::max(0, -y); sy < s.height && sy < m.height && sy + y < dst.height; ++sy)
        for (int sx = std::max(0, -x); sx < s.width && sx < m.width && sx + x < dst.width; ++sx) {
            const uint32_t a = m.at(sx, sy)[0];
            uint8_t* d = out.at(sx + x, sy + y);
            const uint8_t* p = s.at(sx, sy);
            for (int ch = 0; ch < c; ++ch) d[ch] = div255(d[ch] * (255 - a) + p[ch] * a);
        }
    return out;
}

Image resize_image(int mode, const Image& im, int w, int h) {
    if (mode != 1 && mode != 2) return pil_resize(im, w, h, Resample::lanczos);
    if (w <= 0 || h <= 0 || im.width <= 0 || im.height <= 0) return Image{};
    const double ratio = double(w) / h, src_ratio = double(im.width) / im.height;
    const bool wide = mode == 1 ? ratio > src_ratio : ratio < src_ratio;    // take the target width
    const bool tall = mode == 1 ? ratio <= src_ratio : ratio >= src_ratio;  // take the target height
    const int sw = wide ? w : im.width * h / im.height;
    const int sh = tall ? h : im.height * w / im.width;
    const Image resized = pil_resize(im, sw, sh, Resample::lanczos);
    Image res = paste(blank(w, h, 3), resized, w / 2 - sw / 2, h / 2 - sh / 2);
    if (mode == 2 && ratio < src_ratio) {
        const int fill = h / 2 - sh / 2;
        if (fill > 0) {
            const double rh = resized.height;
            res = paste(res, pil_resize_box(resized, w, fill, Resample::bicubic, 0, 0, w, 0), 0, 0);
            res = paste(res, pil_resize_box(resized, w, fill, Resample::bicubic, 0, rh, w, rh), 0, fill + sh);
        }
    } else if (mode == 2 && ratio > src_ratio) {
        const int fill = w / 2 - sw / 2;
        if (fill > 0) {
            const double rw = resized.width;
            res = paste(res, pil_resize_box(resized, fill, h, Resample::bicubic, 0, 0, 0, h), 0, 0);
            res = paste(res, pil_resize_box(resized, fill, h, Resample::bicubic, rw, 0, rw, h), fill + sw, 0);
        }
    }
    return res;
}

std::optional<Box> mask_bbox(const Image& l) {
    Box b{l.width, l.height, 0, 0};
    bool any = false;
    for (int y = 0; y < l.height; ++y)
        for (int x = 0; x < l.width; ++x) {
            const uint8_t* p = l.at(x, y);
            if (std::none_of(p, p + l.channels, [](uint8_t v) { return v > 0; })) continue;
            any = true;
            b.x1 = std::min(b.x1, x), b.y1 = std::min(b.y1, y);
            b.x2 = std::max(b.x2, x + 1), b.y2 = std::max(b.y2, y + 1);
        }
    if (!any) return std::nullopt;
    return b;
}

namespace {

// A1111 expand_crop_region along one axis: [lo, hi) grown by `diff`, half before (floor), kept inside [0,
// limit].
void grow_axis(int& lo, int& hi, int diff, int limit) {
    lo -= diff / 2;
    hi += diff - diff / 2;
    if (hi >= limit) {
        const int d = hi - limit;
        hi -= d, lo -= d;
    }
    if (lo < 0) hi -= lo, lo = 0;
    if (hi >= limit) hi = limit;
}

}  // namespace

Box crop_region(const Image& mask_l, int pad, int W, int H) {
    const auto bb = mask_bbox(mask_l);
    if (!bb) return Box{0, 0, mask_l.width, mask_l.height};
    Box b = *bb;
    if (pad) {
        b.x1 = std::max(b.x1 - pad, 0), b.y1 = std::max(b.y1 - pad, 0);
        b.x2 = std::min(b.x2 + pad, mask_l.width), b.y2 = std::min(b.y2 + pad, mask_l.height);
    }
    const double ratio_crop = double(b.width()) / b.height(), ratio_proc = double(W) / H;
    if (ratio_crop > ratio_proc) {
        const int diff = int(b.width() / ratio_proc - b.height());  // >= 0
        grow_axis(b.y1, b.y2, diff, mask_l.height);
    } else {
        const int diff = int(b.height() * ratio_proc - b.width());
        grow_axis(b.x1, b.x2, diff, mask_l.width);
    }
    return b;
}

Image crop(const Image& im, Box b) {
    Image out = blank(std::max(b.width(), 0), std::max(b.height(), 0), im.channels);
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x) {
            const int sx = x + b.x1, sy = y + b.y1;
            if (sx >= 0 && sy >= 0 && sx < im.width && sy < im.height)
                std::copy_n(im.at(sx, sy), im.channels, out.at(x, y));
        }
    return out;
}

Image make_overlay(const Image& rgb, const Image& mask_for_overlay_l) {
    const Image keep = invert(convert_channels(mask_for_overlay_l, 1));
    const Image premul = paste_masked(blank(rgb.width, rgb.height, 4), to_rgba(to_rgb(rgb)), keep, 0, 0);
    return unpremultiply_any(premul);
}

float box_blur_radius(float radius) {
    // Pillow's _gaussian_blur_radius for 3 passes, in C float (the double literals promote a few steps).
    constexpr int passes = 3;
    const float sigma2 = radius * radius / passes;
    const float L = float(std::sqrt(12.0 * sigma2 + 1.0));
    const float l = float(std::floor((L - 1.0) / 2.0));
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

Image pil_gaussian_blur(const Image& im, float radius) {
    const float rho = box_blur_radius(radius);
    Image out = im;
    for (int i = 0; i < 3; ++i) out = box_pass(out, rho, true);
    for (int i = 0; i < 3; ++i) out = box_pass(out, rho, false);
    return out;
}

Image masking_fill(const Image& rgb, const Image& mask_l) {
    const Image keep = invert(convert_channels(mask_l, 1));
    const Image premul = paste_masked(blank(rgb.width, rgb.height, 4), to_rgba(to_rgb(rgb)), keep, 0, 0);
    Image acc = blank(rgb.width, rgb.height, 4);
    constexpr std::pair<int, int> kSteps[] = {{256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}};
    for (auto [radius, repeats] : kSteps) {
        const Image blurred = unpremultiply_any(radius ? pil_gaussian_blur(premul, float(radius)) : premul);
        for (int i = 0; i < repeats; ++i) acc = alpha_composite(acc, blurred);
    }
    return to_rgb(acc);
}

Image alpha_composite(const Image& dst_rgba, const Image& src_rgba) {
    Image out = dst_rgba;
    const int w = std::min(dst_rgba.width, src_rgba.width), h = std::min(dst_rgba.height, src_rgba.height);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const uint8_t* s = src_rgba.at(x, y);
            uint8_t* d = out.at(x, y);
            const uint32_t sa = s[3];
            if (sa == 0) continue;
            const uint32_t blend = d[3] * (255 - sa);
            const uint32_t oa = sa * 255 + blend;
            const uint32_t c1 = sa * 255 * 255 * 128 / oa, c2 = 255 * 128 - c1;
            for (int ch = 0; ch < 3; ++ch) {
                const uint32_t t = s[ch] * c1 + d[ch] * c2 + (128u << 7);
                d[ch] = uint8_t((((t >> 8) + t) >> 8) >> 7);
            }
            d[3] = uint8_t((((oa + 128) >> 8) + oa + 128) >> 8);
        }
    return out;
}

Image apply_overlay(const Image& result_rgb, const std::optional<Box>& paste_to, const Image& overlay_rgba) {
    Image canvas;
    if (paste_to) {
        const Image r = resize_image(1, result_rgb, paste_to->width(), paste_to->height());
        canvas = paste(blank(overlay_rgba.width, overlay_rgba.height, 4), r, paste_to->x1, paste_to->y1);
    } else {
        canvas = to_rgba(result_rgb);
    }
    return to_rgb(alpha_composite(canvas, overlay_rgba));
}

}  // namespace nb
