#pragma once

#include <cstddef>
#include <memory>

#include <dnnl.hpp>

#include "core/tensor.h"

namespace nb::cpu {
dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
// Memory of layout d whose bytes are a tensor buffer held by `owner`: kernels' temporary copies (blocked
// activations, conversion buffers) then come from the activation heap, like every other activation, instead
// of oneDNN's own allocations in the general heap.
dnnl::memory tensor_memory(const dnnl::memory::desc& d, Tensor& owner);
// This thread's buffer of `count` floats for weights expanded from 16 bits / q8_0 (packed_weights.h): a tensor
// (activation heap) that replaces the previous one and is freed when the op that made it ends
// (WeightScratchScope), so that its pages serve activations between ops instead of staying resident beside
// them (up to a 16 MB weight group).
float* weight_scratch(size_t count);
class WeightScratchScope {
public:
    WeightScratchScope() = default;
    ~WeightScratchScope();
    WeightScratchScope(const WeightScratchScope&) = delete;
    WeightScratchScope& operator=(const WeightScratchScope&) = delete;
};
}  // namespace nb::cpu
