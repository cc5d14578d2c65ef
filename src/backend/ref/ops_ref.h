// The reference backend's kernels: the tensor ops of backend/ops.h on the scalar loops of ops/ref.h (plain
// loops, double accumulation, one thread). Selected per context (Settings::backend = ref, the engine's
// `backend: "ref"`); an oracle for the CPU backend and a second backend for whole pipelines.
#pragma once

#include "backend/ops.h"

namespace nb::ops::refb {

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal);
Tensor geglu(const Tensor& x);
void silu_(Tensor& x);
void relu_(Tensor& x);
void quick_gelu_(Tensor& x);
void gelu_(Tensor& x);

}  // namespace nb::ops::refb
