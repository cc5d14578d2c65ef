// Random sources that reproduce the reference noise streams bit for bit (STYLE.md #11), and the per-image
// noise source the samplers draw from. Noise is generated on the host so one seed gives one image everywhere.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace nb::sampling {

// A stream of standard normal numbers; every randn() call advances the stream.
class Rng {
public:
    virtual ~Rng() = default;
    virtual Tensor randn(const Shape& shape) = 0;
};

// A1111 modules/rng_philox.py (= torch.randn on CUDA): Philox-4x32-10, one counter per element
// [offset, 0, i, 0], key = the 64-bit seed; offset counts previous randn() calls.
class PhiloxRng final : public Rng {
public:
    explicit PhiloxRng(uint64_t seed) : seed_(seed) {}
    Tensor randn(const Shape& shape) override;

private:
    uint64_t seed_;
    uint32_t offset_ = 0;
};

// torch 1.13 CPU generator: mt19937 seeded with the low 32 bits of the seed. torch.randn takes a
// vectorised Box-Muller path (16 uniform floats at a time) for >= 16 elements, and the scalar
// double-precision normal_distribution (with its cached second value) below that.
class TorchCpuRng final : public Rng {
public:
    explicit TorchCpuRng(uint64_t seed) : engine_(uint32_t(seed & 0xFFFFFFFFu)) {}
    Tensor randn(const Shape& shape) override;

private:
    float uniform_float();    // 24 random bits -> [0, 1)
    double uniform_double();  // 53 random bits -> [0, 1)
    double normal_double();   // at::normal_distribution<double>
    void fill_vectorised(float* data, int64_t n);

    std::mt19937 engine_;
    std::optional<double> cached_normal_;
};

enum class RngKind { philox, torch_cpu };

// "cuda", "gpu", "nv" (A1111 "NV"/"GPU", the default) -> philox; "cpu" -> torch_cpu. Case-insensitive.
Result<RngKind> parse_rng_kind(std::string_view name);
const char* rng_kind_name(RngKind kind);  // "cuda" / "cpu" (stable-diffusion.cpp names)
std::unique_ptr<Rng> make_rng(RngKind kind, uint64_t seed);
Result<std::unique_ptr<Rng>> make_rng(std::string_view name, uint64_t seed);

// What a sampler's noise_sampler(sigma, sigma_next) returns: noise shaped like the latent [N, C, H, W].
// sigma / sigma_next are passed through for sources that need them (NaN where the sampler passes none).
class NoiseSource {
public:
    virtual ~NoiseSource() = default;
    virtual Tensor sample(double sigma, double sigma_next) = 0;
};

// A1111 ImageRNG: one generator per batch item (image i seeded seed+i by the pipeline); each draw is
// randn([C, H, W]) from every generator, stacked on dim 0. The pipeline draws the initial latent with
// first() and the samplers then continue the same streams through sample().
class ImageNoise final : public NoiseSource {
public:
    ImageNoise(std::vector<std::unique_ptr<Rng>> rngs, Shape item_shape);
    static ImageNoise from_seeds(RngKind kind, const std::vector<uint64_t>& seeds, Shape item_shape);

    Tensor draw();  // [N, C, H, W]
    Tensor sample(double, double) override { return draw(); }
    int64_t n_draws() const { return n_draws_; }

private:
    std::vector<std::unique_ptr<Rng>> rngs_;
    Shape item_shape_;
    int64_t n_draws_ = 0;
};

}  // namespace nb::sampling
