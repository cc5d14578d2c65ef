#include "backend/cpu/dnnl_context.h"

#include <malloc.h>
#include <omp.h>

#include <atomic>

#include "backend/ops.h"

namespace nb::cpu {

dnnl::engine& dnnl_engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

dnnl::stream& dnnl_stream() {
    static dnnl::stream s(dnnl_engine());
    return s;
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
// Activations are large, short-lived buffers: glibc would mmap and unmap each one, paying page faults on
// every op. Keeping them in the heap (reused after free) removes that cost. Buffers of 64 MB and more (VAE
// decoder activations at 512x512 and up) are still mapped: in the heap their mix of sizes fragments it (a
// 512x512 decode peaked ~0.2 GB higher), and their page-fault cost is small next to the convolutions on them.
[[maybe_unused]] const bool g_malloc_tuned = [] {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
}();
}  // namespace

void return_free_memory() {
    cpu::release_scratchpad();
    cpu::weight_scratch().release();
    malloc_trim(0);
}

int64_t weight_scratch_bytes() { return int64_t(cpu::weight_scratch().size()); }

void set_num_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);  // oneDNN's OpenMP runtime follows the same setting
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace nb::ops
