#include "backend/context.h"

#include <omp.h>

namespace nb::backend {

namespace {
// The thread's innermost Scope's context; null = the thread's default (made on first use, per thread, so
// threads outside any engine do not share settings either).
thread_local Context* t_current = nullptr;

Context& thread_default() {
    thread_local Context ctx;
    return ctx;
}

int resolve_threads(int n) { return n > 0 ? n : omp_get_num_procs(); }
}  // namespace

Context::Context(Settings s) : settings(s) {}
Context::~Context() = default;

Context& current() { return t_current ? *t_current : thread_default(); }

Scope::Scope(Context& ctx) : prev_(t_current), prev_threads_(omp_get_max_threads()), heap_(ctx.heap()) {
    t_current = &ctx;
    omp_set_num_threads(resolve_threads(ctx.settings.threads));  // oneDNN's OpenMP runtime follows it
}

Scope::~Scope() {
    t_current = prev_;
    omp_set_num_threads(prev_threads_);
}

}  // namespace nb::backend

namespace nb::ops {

using backend::current;

bool cpu_has_bf16() { return __builtin_cpu_supports("avx512bf16"); }

Precision precision() { return current().settings.precision; }
void set_precision(Precision p) { current().settings.precision = p; }
bool bf16_for(OpClass c) {
    const auto& s = current().settings;
    return s.precision == Precision::bf16 && (s.bf16_ops & c) != 0;
}
unsigned bf16_ops() { return current().settings.bf16_ops; }
void set_bf16_ops(unsigned mask) { current().settings.bf16_ops = mask; }
Backend backend() { return current().settings.backend; }
void set_backend(Backend b) { current().settings.backend = b; }
WeightStorage weight_storage() { return current().settings.weight_storage; }
void set_weight_storage(WeightStorage s) { current().settings.weight_storage = s; }
int64_t weight_group_bytes() { return current().settings.weight_group_bytes; }
void set_weight_group_bytes(int64_t bytes) { current().settings.weight_group_bytes = bytes; }
void set_conv_band_bytes(int64_t bytes) { current().settings.conv_band_bytes = bytes; }

void set_num_threads(int n) {
    current().settings.threads = n;
    omp_set_num_threads(backend::resolve_threads(n));
}
int num_threads() { return omp_get_max_threads(); }

int64_t mac_count() { return current().macs.load(); }
void reset_mac_count() { current().macs = 0; }
void count_macs(int64_t n) { current().macs.fetch_add(n, std::memory_order_relaxed); }

void set_profiling(bool on) { current().settings.profiling = on; }

}  // namespace nb::ops
