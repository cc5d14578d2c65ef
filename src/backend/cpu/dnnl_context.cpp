#include "backend/cpu/dnnl_context.h"

#include <malloc.h>

#include <algorithm>

#include "backend/context.h"
#include "backend/weights.h"
#include "core/activation_heap.h"

namespace nb::cpu {

namespace {

// Per context: its oneDNN stream, and the buffer for weights expanded from 16 bits / q8_0.
struct Stream {
    dnnl::stream s{dnnl_engine()};
};
struct Scratch {
    Tensor buffer;
    int64_t max_bytes = 0;  // since the last return_free_memory()
};

}  // namespace

// The CPU device: one handle for the process, immutable once made (primitives and packed weights of every
// context are made for it).
dnnl::engine& dnnl_engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

dnnl::stream& dnnl_stream() { return backend::current().state<Stream>().s; }

dnnl::memory tensor_memory(const dnnl::memory::desc& d, Tensor& owner) {
    owner = Tensor::empty({int64_t((d.get_size() + sizeof(float) - 1) / sizeof(float))});
    return dnnl::memory(d, dnnl_engine(), owner.data());
}

float* weight_scratch(size_t count) {
    Scratch& s = backend::current().state<Scratch>();
    s.buffer = Tensor();  // first: never two
    s.buffer = Tensor::empty({int64_t(count)});
    s.max_bytes = std::max(s.max_bytes, int64_t(count * sizeof(float)));
    return s.buffer.data();
}

WeightScratchScope::~WeightScratchScope() { backend::current().state<Scratch>().buffer = Tensor(); }

}  // namespace nb::cpu

namespace nb::ops {

void return_free_memory() {
    auto& s = backend::current().state<cpu::Scratch>();
    s.buffer = Tensor();
    s.max_bytes = 0;
    activation_heap::release_free_pages();
    malloc_trim(0);
}

int64_t weight_scratch_bytes() { return backend::current().state<cpu::Scratch>().max_bytes; }

}  // namespace nb::ops
