// Fused attention (online softmax, scores kept in cache) for long key sequences; flash_attention.cpp explains.
#pragma once

#include "core/tensor.h"

namespace nb::cpu {

// Whether this CPU runs the fused kernel in fp32 (AVX-512F) or bf16 (AVX-512 BF16).
bool flash_attention_available(bool bf16);

// out[B, Tq, H*Dh] = softmax(q k^T / sqrt(Dh)) v per head; q [B, Tq, H*Dh], k and v [B, Tk, H*Dh]. Not causal.
// Only where flash_attention_available(bf16).
void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool bf16, Tensor& out);

}  // namespace nb::cpu
