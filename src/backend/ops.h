// Tensor-level operators the models are written in. Fast CPU implementations (oneDNN for convolution and
// matmul, own vectorised kernels for the rest); each has a scalar reference in ops/ref.h that the tests use
// as the oracle. All tensors fp32, contiguous, NCHW / [batch, tokens, channels].
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace nb::ops {

struct Pad2d {
    int t = 0, l = 0, b = 0, r = 0;
    static Pad2d same(int p) { return {p, p, p, p}; }
};

// x [N, C, H, W], w [O, C, KH, KW], b [O] or undefined -> [N, O, Ho, Wo].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad);
// Large stride-1 "same" convolutions run in bands of rows holding about this many bytes of input + output
// activations (default 32 MB; smaller = less memory, more halo rows recomputed); Winograd's transformed input
// is made for bands of half this size.
void set_conv_band_bytes(int64_t bytes);
// Weights held in 16 bits or q8_0 are expanded to fp32 per use; convolutions and linears whose fp32 weight is
// larger than this (default 16 MB) run in output-channel groups of at most this size, so that the expansion
// scratch holds one group.
void set_weight_group_bytes(int64_t bytes);
int64_t weight_group_bytes();
// x [..., K], w [N, K], b [N] or undefined -> [..., N].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
// x [N, C, ...] -> same shape; optional fused SiLU.
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu = false);
// x [..., D] -> same shape.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
// q [B, Tq, H*Dh], k, v [B, Tk, H*Dh] -> [B, Tq, H*Dh]. Never materialises all heads' score matrices.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal = false);
// x [M..., 2F] -> [M..., F]: first half * gelu(second half).
Tensor geglu(const Tensor& x);

// In-place elementwise.
void silu_(Tensor& x);
void quick_gelu_(Tensor& x);  // x * sigmoid(1.702 x), CLIP
void gelu_(Tensor& x);        // exact erf GELU
void add_(Tensor& x, const Tensor& y);               // same shape
void scale_(Tensor& x, float s);
// x [N, C, H, W] += v[N, C] broadcast over H, W.
void add_channel_bias_(Tensor& x, const Tensor& v);

// Layout helpers.
Tensor upsample_nearest2x(const Tensor& x);                   // [N, C, H, W] -> [N, C, 2H, 2W]
// [N, C, H, W] -> [N, C, h, w], torch's "nearest": source index floor(i * H / h).
Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w);
Tensor concat_channels(const Tensor& a, const Tensor& b);     // [N, Ca, H, W] ++ [N, Cb, H, W] (same N, H, W)
Tensor nchw_to_nhwc(const Tensor& x);                         // [N, C, H, W] -> [N, H*W, C]
Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w);   // [N, H*W, C] -> [N, C, H, W]

// Kernels may cache weights in a kernel-specific layout keyed by their buffer; after changing a weight's
// values in place (LoRA merge / restore) call this so the next use re-reads them.
void weights_changed(const Tensor& w);
// Forgets everything the kernels hold for a weight (packed copies and their reference to its buffer): called
// when its model goes away, so that destroying a model returns its memory.
void forget_weight(const Tensor& w);
// Packs a weight at load time (conv: always; linear: in bf16 mode), releasing its fp32 values.
void prepack_conv(const Tensor& w, int stride, Pad2d pad);
void prepack_linear(const Tensor& w);
// Hands the heap's free pages back to the system (the allocator keeps freed activations for reuse; after a
// whole component's weights are freed that memory should leave the process).
void return_free_memory();
// Brings back the fp32 values of a weight whose values were released (from its packed copy).
void ensure_values(const Tensor& w);
// Bytes held by the kernels' packed weight copies (16-bit compact copies at 2 bytes per value).
int64_t packed_weight_bytes();
// Bytes of this thread's scratch for expanded (16-bit / q8_0) weights: the largest weight group used since
// the last return_free_memory().
int64_t weight_scratch_bytes();

// Multiply-accumulates done by conv2d / linear / attention since the last reset (for `bench` GFLOP/s).
int64_t mac_count();
void reset_mac_count();

// Which implementation runs the ops above, per thread (as the precision): `cpu` (oneDNN and our kernels,
// default) or `ref` (the scalar reference kernels of ops/ref.h: slow, an oracle; weights stay unpacked).
enum class Backend { cpu, ref };
void set_backend(Backend b);
Backend backend();

// Compute precision of convolutions and linear layers. bf16: weights and inputs rounded to bfloat16,
// products accumulated in fp32, outputs fp32 (oneDNN avx512_core_bf16 kernels). Everything else (norms,
// softmax, attention, residual adds) stays fp32. Library default fp32; the engine picks bf16 where the CPU
// has native bf16 dot products (LoadOptions::precision). Per thread: each engine sets its own on the thread
// that runs its call.
enum class Precision { fp32, bf16 };
void set_precision(Precision p);
Precision precision();
bool cpu_has_bf16();
// Sets a kernel setting of the calling thread for a scope and restores the previous value after it.
template <class T, T (*Get)(), void (*Set)(T)>
class SettingScope {
public:
    explicit SettingScope(T v) : saved_(Get()) { Set(v); }
    ~SettingScope() { Set(saved_); }
    SettingScope(const SettingScope&) = delete;
    SettingScope& operator=(const SettingScope&) = delete;

private:
    T saved_;
};
using PrecisionScope = SettingScope<Precision, precision, set_precision>;
using BackendScope = SettingScope<Backend, backend, set_backend>;

// How kernels hold an fp32 weight's packed copy (chosen when a weight is first packed; bf16 copies are bf16):
//  exact: in 16 bits where every value is exactly an fp16 (or bf16) value -- an fp16 checkpoint's weights --
//         else fp32; expanded per use, results identical to f32 (default);
//  f32:   always fp32 (twice the memory, no expansion per use: a little faster at small sizes);
//  q8_0:  blocks of 32 int8 values with one scale (1.125 bytes per value, ggml's q8_0 layout idea); lossy --
//         an explicit choice, like stable-diffusion.cpp's `--type q8_0`.
enum class WeightStorage { exact, f32, q8_0 };
void set_weight_storage(WeightStorage s);
WeightStorage weight_storage();
using WeightStorageScope = SettingScope<WeightStorage, weight_storage, set_weight_storage>;

// Per-op wall-time profile (off by default; `bench --profile`).
struct OpTime {
    std::string op;
    double seconds = 0;
    int64_t calls = 0;
    int64_t macs = 0;  // multiply-accumulates counted inside the op's calls
};
void set_profiling(bool on);
std::vector<OpTime> take_profile();  // and reset

// Threads used by the kernels (OpenMP + oneDNN). 0 = all cores.
void set_num_threads(int n);
int num_threads();

}  // namespace nb::ops
