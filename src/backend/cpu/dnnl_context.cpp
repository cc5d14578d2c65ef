#include "backend/cpu/dnnl_context.h"

#include <malloc.h>
#include <omp.h>

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
thread_local GrowingBuffer t_scratch, t_weight_scratch;
}  // namespace

GrowingBuffer& weight_scratch() { return t_weight_scratch; }

dnnl::memory scratchpad(const dnnl::memory::desc& d) {
    return dnnl::memory(d, dnnl_engine(), t_scratch.get(d.get_size()));
}

void release_scratchpad() { t_scratch.release(); }

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
Precision g_precision = Precision::fp32;  // the library is exact by default; the engine opts into bf16
}
void set_precision(Precision p) { g_precision = p; }
Precision precision() { return g_precision; }

namespace {
// Large tensors (activations) come from the activation heap (core/activation_heap.h); what glibc still
// serves are oneDNN's buffers and the packed weights. Those up to 64 MB stay in the heap rather than being
// mapped and unmapped on every use (page faults per call); the heap is not trimmed on each free, and
// return_free_memory() hands its free pages back between phases.
[[maybe_unused]] const bool g_malloc_tuned = [] {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
}();
}  // namespace

void return_free_memory() {
    cpu::release_scratchpad();
    cpu::weight_scratch().release();
    activation_heap::release_free_pages();
    malloc_trim(0);
}

int64_t weight_scratch_bytes() { return int64_t(cpu::weight_scratch().size()); }

void set_num_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);  // oneDNN's OpenMP runtime follows the same setting
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace nb::ops
