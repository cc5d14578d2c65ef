#pragma once

#include <dnnl.hpp>

namespace nb::cpu {
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
}  // namespace nb::cpu
