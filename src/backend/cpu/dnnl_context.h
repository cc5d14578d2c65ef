#pragma once

#include <dnnl.hpp>

namespace nb::cpu {
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
// Scratch memory for a primitive created with scratchpad_mode::user: this thread's buffer, grown to the
// largest request and reused by every call (big kernels' scratch -- Winograd's transformed tiles, hundreds
// of MB -- then exists once, not once per cached primitive); ops::return_free_memory() frees it.
dnnl::memory scratchpad(const dnnl::memory::desc& d);
void release_scratchpad();
}  // namespace nb::cpu

namespace nb::ops {
void count_macs(int64_t n);  // kernels report their work for mac_count()
}
