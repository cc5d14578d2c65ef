// Memory policy for weights: how the kernels hold them and when memory goes back to the system. Used by the
// code that owns weights (models/nn's Binder and WeightSet, LoRA merging) and by the pipeline between phases;
// model files see only the math of backend/ops.h. Each call goes to the backend of the current context.
#pragma once

#include <cstdint>

#include "backend/ops.h"
#include "core/dtype.h"

namespace nb::ops {

// Kernels may keep a weight's copy in their own layout (packed), attached to its storage; after changing a
// weight's values in place (LoRA merge / restore) call this so the next use re-reads them.
void weights_changed(const Tensor& w);
// Drops everything the kernels hold for a weight now (its packed copy), rather than when its storage goes.
void forget_weight(const Tensor& w);
// Packs a weight at load time (conv: always; linear: in bf16 mode), releasing its fp32 values.
void prepack_conv(const Tensor& w, int stride, Pad2d pad);
void prepack_linear(const Tensor& w);
// A weight's values as a checkpoint stores them: element type and bits, in the weight's own layout.
struct WeightBits {
    DType type = DType::f32;
    const void* data = nullptr;
};
// Loads a weight that has no values (Tensor::without_values) from `bits` and packs it: where the backend can,
// 16-bit bits go straight into the packed copy (re-laid out as they are, no fp32 values in between: one pass
// instead of three over a model's weights); otherwise w gets its fp32 values from `bits` and is packed as
// prepack_conv / prepack_linear do. `bits` must hold w.numel() values.
void prepack_conv_from(const Tensor& w, WeightBits bits, int stride, Pad2d pad);
void prepack_linear_from(const Tensor& w, WeightBits bits);
// Brings back the fp32 values of a weight whose values were released (from its packed copy).
void ensure_values(const Tensor& w);
// Hands freed memory back to the system: the heap's free pages (the allocator keeps freed activations for
// reuse), the current context's weight scratch, malloc's free lists. Between phases (after a component's
// weights are freed, between VAE decoder levels) so that memory leaves the process.
void return_free_memory();
// How a weight is held now: its own fp32 values, or the kernels' packed copy in the element type the weight
// storage chose (fp32, fp16 / bf16 where exact or in bf16 compute, q8_0 blocks), or nothing (released).
enum class HeldAs { released, values_f32, f32, f16, bf16, q8_0 };
struct Held {
    HeldAs as = HeldAs::released;
    int64_t bytes = 0;
};
Held held(const Tensor& w);
const char* held_name(HeldAs a);  // "released", "f32", "f32", "f16", "bf16", "q8_0"

// Bytes held by packed weight copies made under the current context and still alive (16-bit compact copies
// at 2 bytes per value).
int64_t packed_weight_bytes();
// Bytes of the current context's scratch for expanded (16-bit / q8_0) weights: the largest weight group used
// since the last return_free_memory().
int64_t weight_scratch_bytes();

}  // namespace nb::ops
