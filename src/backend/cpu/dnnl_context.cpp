#include "backend/cpu/dnnl_context.h"

#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <atomic>

#include "backend/ops.h"
#include "core/activation_heap.h"

namespace nb::cpu {

dnnl::engine& dnnl_engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

dnnl::stream& dnnl_stream() {
    static dnnl::stream s(dnnl_engine());
    return s;
}

dnnl::memory tensor_memory(const dnnl::memory::desc& d, Tensor& owner) {
    owner = Tensor::empty({int64_t((d.get_size() + sizeof(float) - 1) / sizeof(float))});
    return dnnl::memory(d, dnnl_engine(), owner.data());
}

namespace {
thread_local Tensor t_weight_scratch;
thread_local int64_t t_weight_scratch_max = 0;  // bytes, since the last return_free_memory()
}  // namespace

float* weight_scratch(size_t count) {
    t_weight_scratch = Tensor();  // first: never two
    t_weight_scratch = Tensor::empty({int64_t(count)});
    t_weight_scratch_max = std::max(t_weight_scratch_max, int64_t(count * sizeof(float)));
    return t_weight_scratch.data();
}

WeightScratchScope::~WeightScratchScope() { t_weight_scratch = Tensor(); }

}  // namespace nb::cpu

namespace nb::ops {

namespace {
std::atomic<int64_t> g_macs{0};
}
void count_macs(int64_t n) { g_macs.fetch_add(n, std::memory_order_relaxed); }
int64_t mac_count() { return g_macs.load(); }
void reset_mac_count() { g_macs = 0; }

bool cpu_has_bf16() { return __builtin_cpu_supports("avx512bf16"); }

namespace {
// Per thread: each engine sets its own on the thread that runs its work (kernels read it on that thread,
// outside their parallel loops), so engines on different threads do not see each other's. The library is
// exact by default; an engine opts into bf16.
thread_local Precision t_precision = Precision::fp32;
}
thread_local Backend t_backend = Backend::cpu;
void set_backend(Backend b) { t_backend = b; }
Backend backend() { return t_backend; }
void set_precision(Precision p) { t_precision = p; }
Precision precision() { return t_precision; }


void return_free_memory() {
    cpu::t_weight_scratch = Tensor();
    cpu::t_weight_scratch_max = 0;
    activation_heap::release_free_pages();
    malloc_trim(0);
}

int64_t weight_scratch_bytes() { return cpu::t_weight_scratch_max; }

void set_num_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);  // oneDNN's OpenMP runtime follows the same setting
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace nb::ops
