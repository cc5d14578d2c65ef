// Weights in the layout (and dtype) a oneDNN kernel wants, made once and cached by the weight's storage.
// The packed copy becomes the only copy: the fp32 values are released (in bf16 a SD 1.5 UNet then holds
// 1.7 GB instead of 3.4 GB fp32 + 1.7 GB packed; in fp32 the copy is a lossless re-layout); ensure_values()
// brings them back when something needs them (LoRA merging), weights_changed() drops the packed copy.
// An fp32 packed copy whose values are all exactly fp16 (or bf16) values -- every weight of an fp16
// checkpoint -- is held in those 16 bits and expanded into a per-thread scratch buffer when used: an SD 1.5
// UNet then holds 1.7 GB instead of 3.4 GB at fp32 compute, bit-identical results, for one conversion pass
// over the weights per evaluation (~0.13 s per UNet step at 40 GB/s). LoRA-merged weights are not exact in
// 16 bits and stay fp32. ops::WeightStorage chooses otherwise (always fp32, or lossy q8_0 blocks) when a weight
// is first packed; re-packing after a change keeps that choice.
#pragma once

#include <dnnl.hpp>

#include "backend/weights.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace nb::cpu {

// The packed memory of `w` in layout `want`. `user` describes w's own fp32 layout (oihw / [K, N] "ba").
// Packs from the fp32 values on first use, or re-lays out an existing packed copy for another layout.
// A compact copy comes back expanded in this thread's scratch: use it before the next call on this thread.
dnnl::memory packed_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want);

// Makes w's packed copy in layout `want` now (at load), without expanding it for use.
void pack_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want);
// Makes w's packed copy in layout `want` (fp32) straight from 16-bit bits in w's own layout `user`, for a
// weight without values: the copy holds the bits themselves, re-laid out, as packing fp32 values that are all
// exact in 16 bits would have held them (the same fp32 values when expanded; bf16 bits stay bf16 where packing
// values would pick fp16 if every value is also exact there). False, with
// nothing done, where that is not the copy packing would make: weight storage other than exact, a 16-bit
// compute layout, bits other than fp16 / bf16, or values packing keeps in fp32 (NaN; inf in bf16).
bool pack_weights_from16(const Tensor& w, ops::WeightBits bits, const dnnl::memory::desc& user,
                         const dnnl::memory::desc& want);
// Elements [first, first + part's size) of w's fp32 packed copy in layout `want` (made as packed_weights
// does), as memory of layout `part`: a slice of the packed buffer when held fp32, otherwise only that part
// expanded into this thread's scratch. Kernels that split a big weight (output-channel groups) use this so
// that the scratch holds one group, not the whole expanded weight (up to 118 MB in an SD 1.5 UNet).
dnnl::memory packed_weights_part(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want,
                                 size_t first, const dnnl::memory::desc& part);
// w's packed copy in layout `want` (made as packed_weights does) as held, not expanded: fp32 values, or the
// fp16 / bf16 bits of a compact copy; data is null when held otherwise (q8_0). For kernels that convert in
// registers; valid until the weight is re-laid out or changed.
struct HeldWeights {
    const void* data = nullptr;
    DType type = DType::f32;
};
HeldWeights packed_weights_held(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want);
// Whether using w's packed copy costs an expansion into scratch (held in 16 bits or q8_0; for a weight not
// packed yet: whether the current ops::WeightStorage may hold it so).
bool packed_weights_expand(const Tensor& w);

}  // namespace nb::cpu
