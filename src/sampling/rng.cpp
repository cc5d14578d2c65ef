#include "sampling/rng.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <numbers>
#include <string>

namespace nb::sampling {

// ---- Philox (A1111 rng_philox.py) ----------------------------------------------------------------

namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// Returns the first two output words of Philox-4x32-10 for counter c and key k.
std::pair<uint32_t, uint32_t> philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; ++round) {
        uint64_t p0 = uint64_t(c[0]) * kPhiloxM0;
        uint64_t p1 = uint64_t(c[2]) * kPhiloxM1;
        uint32_t n0 = uint32_t(p1 >> 32) ^ c[1] ^ k0;
        uint32_t n1 = uint32_t(p1);
        uint32_t n2 = uint32_t(p0 >> 32) ^ c[3] ^ k1;
        uint32_t n3 = uint32_t(p0);
        c[0] = n0, c[1] = n1, c[2] = n2, c[3] = n3;
        if (round < 9) k0 += kPhiloxW0, k1 += kPhiloxW1;
    }
    return {c[0], c[1]};
}

// Box-Muller on two words, in float64 as rng_philox.box_muller does; A = float32(2.3283064e-10 * 6.2831855).
float philox_box_muller(uint32_t x, uint32_t y) {
    const double a = double(float(2.3283064e-10f * 6.2831855f));
    double u = double(x) * 0x1p-32 + 0x1p-33;
    double v = double(y) * a + a / 2;
    return float(std::sqrt(-2.0 * std::log(u)) * std::sin(v));
}

}  // namespace

Tensor PhiloxRng::randn(const Shape& shape) {
    Tensor out = Tensor::empty(shape);
    float* o = out.data();
    const uint32_t k0 = uint32_t(seed_), k1 = uint32_t(seed_ >> 32);
    for (int64_t i = 0; i < out.numel(); ++i) {
        uint32_t c[4] = {offset_, 0, uint32_t(i), 0};
        auto [x, y] = philox4x32_10(c, k0, k1);
        o[i] = philox_box_muller(x, y);
    }
    ++offset_;
    return out;
}

// ---- torch CPU (mt19937) --------------------------------------------------------------------------

float TorchCpuRng::uniform_float() {
    // at::uniform_real_distribution<float>: (random() & (2^24 - 1)) * 2^-24, exact in float.
    return float(engine_() & 0xFFFFFFu) * 0x1p-24f;
}

double TorchCpuRng::uniform_double() {
    // random64() = (first << 32) | second, masked to 53 bits.
    uint64_t hi = engine_(), lo = engine_();
    uint64_t v = (hi << 32) | lo;
    return double(v & ((uint64_t(1) << 53) - 1)) * 0x1p-53;
}

double TorchCpuRng::normal_double() {
    // at::normal_distribution<double>: Box-Muller in double, the sine half is cached on the generator.
    if (cached_normal_) {
        double v = *cached_normal_;
        cached_normal_.reset();
        return v;
    }
    double u1 = uniform_double();
    double u2 = uniform_double();
    double r = std::sqrt(-2.0 * std::log1p(-u2));
    double theta = 2.0 * std::numbers::pi * u1;
    cached_normal_ = r * std::sin(theta);
    return r * std::cos(theta);
}

// torch's AVX2 normal_fill uses avx_mathfun.h (Cephes-style log256_ps / sincos256_ps, Julien Pommier),
// compiled with FMA contraction. Re-stated here in scalar form with the same constants and the same
// fused multiply-adds, which makes the stream bit exact (checked on 64K golden values).
namespace {

float cephes_logf(float x) {
    x = std::max(x, 1.17549435e-38f);  // smallest normal float: denormals are cut off
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    float e = float(int(bits >> 23) - 0x7f) + 1.0f;
    bits = (bits & ~0x7f800000u) | 0x3f000000u;  // mantissa in [0.5, 1)
    std::memcpy(&x, &bits, 4);
    const bool below = x < 0.707106781186547524f;  // if x < sqrt(1/2): e -= 1, x = 2x - 1
    const float tmp = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp;
    const float z = x * x;
    static constexpr float p[] = {-1.1514610310E-1f, 1.1676998740E-1f, -1.2420140846E-1f, 1.4249322787E-1f,
                                  -1.6668057665E-1f, 2.0000714765E-1f, -2.4999993993E-1f, 3.3333331174E-1f};
    float y = 7.0376836292E-2f;
    for (float c : p) y = std::fma(y, x, c);
    y = y * x;
    y = std::fma(y, z, e * -2.12194440e-4f);
    y = std::fma(-z, 0.5f, y);
    x = x + y;
    return std::fma(e, 0.693359375f, x);
}

void cephes_sincosf(float x, float* s, float* c) {
    const bool negative = std::signbit(x);
    x = std::fabs(x);
    int j = int(x * 1.27323954473516f);  // scale by 4/pi, truncate, round up to even
    j = (j + 1) & ~1;
    const float y = float(j);
    x = std::fma(y, -0.78515625f, x);  // extended-precision x - j*pi/4
    x = std::fma(y, -2.4187564849853515625e-4f, x);
    x = std::fma(y, -3.77489497744594108e-8f, x);
    const bool sin_poly = (j & 2) == 0;
    const bool sign_sin = negative != bool(j & 4);
    const bool sign_cos = ((j - 2) & 4) == 0;
    const float z = x * x;
    float yc = std::fma(2.443315711809948E-005f, z, -1.388731625493765E-003f);
    yc = std::fma(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = std::fma(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = std::fma(-1.9515295891E-4f, z, 8.3321608736E-3f);
    ys = std::fma(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = std::fma(ys, x, x);
    const float sv = sin_poly ? ys : yc, cv = sin_poly ? yc : ys;
    *s = sign_sin ? -sv : sv;
    *c = sign_cos ? -cv : cv;
}

// torch normal_fill_16_AVX2: u1 = 1 - data[j], u2 = data[j + 8], theta = float(2 pi) * u2 in float.
void normal_fill_16(float* d) {
    const float two_pi = float(2.0 * std::numbers::pi);
    for (int j = 0; j < 8; ++j) {
        const float radius = std::sqrt(-2.0f * cephes_logf(1.0f - d[j]));
        float sin_t, cos_t;
        cephes_sincosf(two_pi * d[j + 8], &sin_t, &cos_t);
        d[j] = radius * cos_t;
        d[j + 8] = radius * sin_t;
    }
}

}  // namespace

// torch normal_fill (>= 16 contiguous floats): all uniforms first, then Box-Muller per block of 16;
// a ragged tail re-draws the LAST 16 values and transforms them again.
void TorchCpuRng::fill_vectorised(float* data, int64_t n) {
    for (int64_t i = 0; i < n; ++i) data[i] = uniform_float();
    for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16(data + i);
    if (n % 16 != 0) {
        float* tail = data + n - 16;
        for (int j = 0; j < 16; ++j) tail[j] = uniform_float();
        normal_fill_16(tail);
    }
}

Tensor TorchCpuRng::randn(const Shape& shape) {
    Tensor out = Tensor::empty(shape);
    if (out.numel() >= 16) {
        fill_vectorised(out.data(), out.numel());
    } else {
        for (auto& v : out.span()) v = float(normal_double());
    }
    return out;
}

// ---- factory ----------------------------------------------------------------------------------------

Result<RngKind> parse_rng_kind(std::string_view name) {
    std::string s(name);
    std::ranges::transform(s, s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (s == "cuda" || s == "gpu" || s == "nv" || s == "philox") return RngKind::philox;
    if (s == "cpu" || s == "torch_cpu") return RngKind::torch_cpu;
    return make_error(Errc::invalid_argument, "unknown rng '{}' (valid: cuda, gpu, nv, cpu)", name);
}

const char* rng_kind_name(RngKind kind) { return kind == RngKind::philox ? "cuda" : "cpu"; }

std::unique_ptr<Rng> make_rng(RngKind kind, uint64_t seed) {
    if (kind == RngKind::torch_cpu) return std::make_unique<TorchCpuRng>(seed);
    return std::make_unique<PhiloxRng>(seed);
}

Result<std::unique_ptr<Rng>> make_rng(std::string_view name, uint64_t seed) {
    NB_TRY(kind, parse_rng_kind(name));
    return make_rng(kind, seed);
}

// ---- ImageNoise ---------------------------------------------------------------------------------------

ImageNoise::ImageNoise(std::vector<std::unique_ptr<Rng>> rngs, Shape item_shape)
    : rngs_(std::move(rngs)), item_shape_(std::move(item_shape)) {}

ImageNoise ImageNoise::from_seeds(RngKind kind, const std::vector<uint64_t>& seeds, Shape item_shape) {
    std::vector<std::unique_ptr<Rng>> rngs;
    for (uint64_t s : seeds) rngs.push_back(make_rng(kind, s));
    return ImageNoise(std::move(rngs), std::move(item_shape));
}

Tensor ImageNoise::draw() {
    Shape shape = item_shape_;
    shape.insert(shape.begin(), int64_t(rngs_.size()));
    Tensor out = Tensor::empty(shape);
    const int64_t per_item = shape_numel(item_shape_);
    for (size_t i = 0; i < rngs_.size(); ++i) {
        Tensor t = rngs_[i]->randn(item_shape_);
        std::memcpy(out.data() + int64_t(i) * per_item, t.data(), size_t(per_item) * sizeof(float));
    }
    ++n_draws_;
    return out;
}

}  // namespace nb::sampling
