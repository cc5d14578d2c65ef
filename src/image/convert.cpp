// Tensor <-> Image conversions (A1111 rules) and Lanczos-3 resampling.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "image/image.h"

namespace nb {

Image image_from_tensor(const Tensor& x, int index) {
    // x: [N, 3, H, W] or [3, H, W]
    const bool batched = x.ndim() == 4;
    const int64_t h = x.dim(-2), w = x.dim(-1), c = x.dim(-3);
    Image img{int(w), int(h), 3, std::vector<uint8_t>(size_t(w * h * 3))};
    const float* base = x.data() + (batched ? int64_t(index) * c * h * w : 0);
    for (int ch = 0; ch < 3 && ch < c; ++ch)
        for (int64_t i = 0; i < h * w; ++i) {
            // A1111 processing.py: clamp((x + 1) / 2, 0, 1) in float32, then (255. * v).astype(np.uint8)
            float v = (base[int64_t(ch) * h * w + i] + 1.0f) / 2.0f;
            v = std::clamp(v, 0.0f, 1.0f);
            float s = 255.0f * v;
            img.pixels[size_t(i) * 3 + size_t(ch)] = std::isnan(s) ? 0 : uint8_t(s);
        }
    return img;
}

Tensor tensor_from_image(const Image& img) {
    // -> [1, 3, H, W]; A1111 img2img: np.array(img).astype(np.float32) / 255.0, then 2 * x - 1
    const int64_t h = img.height, w = img.width;
    Tensor t = Tensor::empty({1, 3, h, w});
    float* d = t.data();
    const int gray = img.channels <= 2;
    for (int c = 0; c < 3; ++c)
        for (int64_t i = 0; i < h * w; ++i) {
            uint8_t p = img.pixels[size_t(i) * size_t(img.channels) + size_t(gray ? 0 : c)];
            d[int64_t(c) * h * w + i] = 2.0f * (float(p) / 255.0f) - 1.0f;
        }
    return t;
}

namespace {

double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= std::numbers::pi;
    return std::sin(x) / x;
}

double lanczos3(double x) { return std::fabs(x) < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }

// Per output index: first input index and normalised weights (PIL-style: centre at (i+0.5)*scale, support
// widened by the scale when shrinking so the filter also low-passes).
struct Taps {
    std::vector<int> first;
    std::vector<std::vector<float>> w;
};

Taps make_taps(int in, int out) {
    const double scale = double(in) / out, fscale = std::max(scale, 1.0), support = 3.0 * fscale;
    Taps t;
    for (int i = 0; i < out; ++i) {
        const double centre = (i + 0.5) * scale;
        int lo = std::max(0, int(std::floor(centre - support))), hi = std::min(in, int(std::ceil(centre + support)));
        std::vector<float> w;
        double sum = 0;
        for (int j = lo; j < hi; ++j) sum += lanczos3((j + 0.5 - centre) / fscale);
        for (int j = lo; j < hi; ++j) w.push_back(float(lanczos3((j + 0.5 - centre) / fscale) / (sum != 0 ? sum : 1)));
        t.first.push_back(lo);
        t.w.push_back(std::move(w));
    }
    return t;
}

}  // namespace

Image resize(const Image& img, int width, int height) {
    if (width <= 0 || height <= 0 || img.width <= 0 || img.height <= 0) return Image{};
    const int c = img.channels;
    const Taps tx = make_taps(img.width, width), ty = make_taps(img.height, height);
    // Horizontal pass into float rows: [img.height][width][c]
    std::vector<float> mid(size_t(img.height) * size_t(width) * size_t(c));
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < width; ++x)
            for (int k = 0; k < c; ++k) {
                float acc = 0;
                for (size_t j = 0; j < tx.w[size_t(x)].size(); ++j)
                    acc += tx.w[size_t(x)][j] * img.at(tx.first[size_t(x)] + int(j), y)[k];
                mid[(size_t(y) * size_t(width) + size_t(x)) * size_t(c) + size_t(k)] = acc;
            }
    Image out{width, height, c, std::vector<uint8_t>(size_t(width) * size_t(height) * size_t(c))};
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            for (int k = 0; k < c; ++k) {
                float acc = 0;
                for (size_t j = 0; j < ty.w[size_t(y)].size(); ++j)
                    acc += ty.w[size_t(y)][j] *
                           mid[(size_t(ty.first[size_t(y)] + int(j)) * size_t(width) + size_t(x)) * size_t(c) + size_t(k)];
                out.at(x, y)[k] = uint8_t(std::clamp(std::lround(acc), 0L, 255L));
            }
    return out;
}

}  // namespace nb
