// The kernels' settings and state for one engine (issue 16): compute precision, weight storage, which backend
// runs the math, thread count, band / group sizes, profiling, and every cache the kernels keep (oneDNN plans,
// the oneDNN stream, the per-op profile, the weight scratch) and the activation heap. An Engine owns one Context and makes it current
// on the thread that runs each of its calls (Scope), so engines used on different threads never see each
// other's settings or caches, and destroying an engine frees its caches. Code that runs outside any scope
// (unit tests, tools) uses its thread's own default context.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <typeindex>
#include <vector>

#include "core/activation_heap.h"

namespace nb::ops {

// Which implementation runs the math ops (backend/backend.h): `cpu` (oneDNN and our kernels, default) or
// `ref` (the scalar reference kernels of ops/ref.h: slow, an oracle; weights stay unpacked).
enum class Backend { cpu, ref };

// Compute precision of convolutions and linear layers. bf16: weights and inputs rounded to bfloat16,
// products accumulated in fp32, outputs fp32 (oneDNN avx512_core_bf16 kernels). Everything else (norms,
// softmax, attention, residual adds) stays fp32. Library default fp32; the engine picks bf16 where the CPU
// has native bf16 dot products (LoadOptions::precision).
enum class Precision { fp32, bf16 };
bool cpu_has_bf16();
// The op classes bf16 precision applies to (Settings::bf16_ops, a mask of these bits); the others stay fp32.
enum OpClass : unsigned { kLinear = 1, kConv = 2, kAttention = 4, kAllOps = 7 };

// How kernels hold an fp32 weight's packed copy (chosen when a weight is first packed; bf16 copies are bf16):
//  exact: in 16 bits where every value is exactly an fp16 (or bf16) value -- an fp16 checkpoint's weights --
//         else fp32; expanded per use, results identical to f32 (default);
//  f32:   always fp32 (twice the memory, no expansion per use: a little faster at small sizes);
//  q8_0:  blocks of 32 int8 values with one scale (1.125 bytes per value, ggml's q8_0 layout idea); lossy --
//         an explicit choice, like stable-diffusion.cpp's `--type q8_0`.
enum class WeightStorage { exact, f32, q8_0 };

// Per-op wall time (`bench --profile`).
struct OpTime {
    std::string op;
    double seconds = 0;
    int64_t calls = 0;
    int64_t macs = 0;  // multiply-accumulates counted inside the op's calls
};

}  // namespace nb::ops

namespace nb::backend {

struct Settings {
    ops::Backend backend = ops::Backend::cpu;
    ops::Precision precision = ops::Precision::fp32;
    unsigned bf16_ops = ops::kAllOps;  // with precision bf16: which op classes run in bf16
    ops::WeightStorage weight_storage = ops::WeightStorage::exact;
    int threads = 0;  // OpenMP + oneDNN threads while the context is current; 0 = all cores
    // Large stride-1 "same" convolutions run in bands of rows holding about this many bytes of input + output
    // activations (smaller = less memory, more halo rows recomputed); Winograd's transformed input is made
    // for bands of half this size.
    int64_t conv_band_bytes = 32 << 20;
    // Weights held in 16 bits or q8_0 are expanded to fp32 per use; convolutions and linears whose fp32
    // weight is larger than this run in output-channel groups of at most this size, so that the expansion
    // scratch holds one group.
    int64_t weight_group_bytes = 16 << 20;
    bool profiling = false;
};

class Context {
public:
    explicit Context(Settings s = {});
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // Read by the kernels on the thread where this context is current; change it only between calls.
    Settings settings;

    // The kernel state of type T (a kernel's plan cache, the oneDNN stream, ...): default-constructed on
    // first use, destroyed with the context. Thread-safe; T itself guards its own contents.
    template <class T>
    T& state() {
        std::lock_guard lock(mu_);
        std::shared_ptr<void>& p = states_[std::type_index(typeid(T))];
        if (!p) p = std::make_shared<T>();
        return *static_cast<T*>(p.get());
    }

    // The activation heap of this context's work (tensors made while it is current), made on first use.
    activation_heap::Heap& heap() {
        std::lock_guard lock(mu_);
        if (!heap_) heap_ = std::make_shared<activation_heap::Heap>();
        return *heap_;
    }

    // How many kinds of kernel state exist (diagnostics and tests).
    size_t state_count() {
        std::lock_guard lock(mu_);
        return states_.size();
    }

    // Multiply-accumulates done by conv2d / linear / attention under this context (for `bench` GFLOP/s).
    std::atomic<int64_t> macs{0};

private:
    std::mutex mu_;
    std::map<std::type_index, std::shared_ptr<void>> states_;
    std::shared_ptr<activation_heap::Heap> heap_;  // tensors keep it alive after the context is gone
};

// The context current on the calling thread: the innermost Scope's, else the thread's own default one.
Context& current();

// Makes `ctx` current on the calling thread (with its activation heap, and its thread count applied) until the
// scope ends; restores the previous context, heap and thread count after. Nestable.
class Scope {
public:
    explicit Scope(Context& ctx);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

private:
    Context* prev_;
    int prev_threads_;
    activation_heap::Scope heap_;
};

}  // namespace nb::backend

namespace nb::ops {

// Settings of the current context (backend::current().settings), for code that changes one of them.
Precision precision();
void set_precision(Precision p);
// Whether ops of class `c` compute in bf16 here: precision bf16 and `c` among the context's bf16_ops.
bool bf16_for(OpClass c);
unsigned bf16_ops();
void set_bf16_ops(unsigned mask);
Backend backend();
void set_backend(Backend b);
WeightStorage weight_storage();
void set_weight_storage(WeightStorage s);
int64_t weight_group_bytes();
void set_weight_group_bytes(int64_t bytes);
void set_conv_band_bytes(int64_t bytes);
// Threads of the current context; applied at once on the calling thread. 0 = all cores.
void set_num_threads(int n);
int num_threads();  // threads OpenMP uses on this thread now

// Sets a setting of the current context for a scope and restores the previous value after it.
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
using WeightStorageScope = SettingScope<WeightStorage, weight_storage, set_weight_storage>;

// Multiply-accumulates counted under the current context since its last reset; kernels report theirs.
int64_t mac_count();
void reset_mac_count();
void count_macs(int64_t n);
// Per-op wall-time profile of the current context (off by default; `bench --profile`).
void set_profiling(bool on);
std::vector<OpTime> take_profile();  // and reset

}  // namespace nb::ops
