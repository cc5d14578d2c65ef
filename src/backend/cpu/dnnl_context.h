#pragma once

#include <dnnl.hpp>

namespace nb::cpu {
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
}  // namespace nb::cpu

namespace nb::ops {
void count_macs(int64_t n);  // kernels report their work for mac_count()
}
