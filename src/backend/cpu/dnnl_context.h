#pragma once

#include <cstddef>
#include <memory>

#include <dnnl.hpp>

#include "core/tensor.h"

namespace nb::cpu {
// A reusable buffer that grows to the largest request (dropping the old one first, so there are never two)
// and keeps it until release(): kernels' per-thread scratch.
class GrowingBuffer {
public:
    void* get(size_t bytes) {
        if (bytes > size_) {
            data_.reset();
            data_.reset(new char[bytes]);
            size_ = bytes;
        }
        return data_.get();
    }
    size_t size() const { return size_; }
    void release() {
        data_.reset();
        size_ = 0;
    }

private:
    std::unique_ptr<char[]> data_;
    size_t size_ = 0;
};

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();
// Memory of layout d whose bytes are a tensor buffer held by `owner`: kernels' temporary copies (blocked
// activations, conversion buffers) then come from the activation heap, like every other activation, instead
// of oneDNN's own allocations in the general heap.
dnnl::memory tensor_memory(const dnnl::memory::desc& d, Tensor& owner);
// Scratch memory for a primitive created with scratchpad_mode::user: this thread's buffer, grown to the
// largest request and reused by every call (big kernels' scratch -- Winograd's transformed tiles, hundreds
// of MB -- then exists once, not once per cached primitive); ops::return_free_memory() frees it.
dnnl::memory scratchpad(const dnnl::memory::desc& d);
void release_scratchpad();
// This thread's buffer for weights expanded from 16 bits / q8_0 (packed_weights.h); also freed by
// ops::return_free_memory().
GrowingBuffer& weight_scratch();
}  // namespace nb::cpu

namespace nb::ops {
void count_macs(int64_t n);  // kernels report their work for mac_count()
}
