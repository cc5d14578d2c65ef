#include "backend/cpu/conv_small.h"

#include <immintrin.h>

#include <algorithm>

#include "core/tensor.h"

// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves, which -Wmaybe-uninitialized reports
// in every caller of the conversion intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace nb::cpu {

namespace {

#define NB_AVX512 __attribute__((target("avx512f")))

enum class WeightBits { f32, f16, bf16 };

template <WeightBits T>
NB_AVX512 inline __m512 load_weights(const void* base, int64_t i) {
    if constexpr (T == WeightBits::f32) {
        return _mm512_loadu_ps(static_cast<const float*>(base) + i);
    } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
        if constexpr (T == WeightBits::f16) return _mm512_cvtph_ps(h);
        else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
}

// Pixels per panel for NR vectors of 16 output channels: MR x NR accumulators (24 of the 32 registers).
constexpr int rows_for(int nr) { return nr == 1 ? 16 : nr == 2 ? 12 : nr == 3 ? 8 : 6; }

// c[MR rows][NR x 16 channels] (row stride ldc) (+)= a[kn][MR] x w[kn][NR x 16].
template <int NR, WeightBits T>
NB_AVX512 void panel(const float* a, const void* w, int64_t w0, int64_t kn, float* c, int64_t ldc, bool accumulate) {
    constexpr int MR = rows_for(NR);
    __m512 acc[MR][NR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[r][j] = accumulate ? _mm512_loadu_ps(c + r * ldc + j * 16) : _mm512_setzero_ps();
    for (int64_t k = 0; k < kn; ++k) {
        __m512 b[NR];
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) b[j] = load_weights<T>(w, w0 + k * NR * 16 + j * 16);
        const float* ak = a + k * MR;
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            const __m512 av = _mm512_set1_ps(ak[r]);
#pragma GCC unroll 4
            for (int j = 0; j < NR; ++j) acc[r][j] = _mm512_fmadd_ps(av, b[j], acc[r][j]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) _mm512_storeu_ps(c + r * ldc + j * 16, acc[r][j]);
}

// c [panels x MR][o] = a (panels of [kdim][MR]) x w (o / B blocks of [kdim][B], B = 16 NR). The reduction runs in
// chunks of kdim whose input panels (all pixels) stay in cache while the output-channel blocks, split between
// the threads, stream their weights.
template <int NR, WeightBits T>
NB_AVX512 void gemm(const float* a, int64_t panels, int64_t kdim, const void* w, int64_t o, float* c) {
    constexpr int MR = rows_for(NR), B = 16 * NR;
    constexpr int64_t kWeightBytes = T == WeightBits::f32 ? 4 : 2;
    const int64_t kc = std::clamp<int64_t>(std::min((int64_t(1) << 20) / (panels * MR * int64_t(sizeof(float))),
                                                    (int64_t(16) << 10) / (B * kWeightBytes)),
                                           64, kdim);
    const int64_t blocks = o / B;
#pragma omp parallel
    for (int64_t k0 = 0; k0 < kdim; k0 += kc) {
        const int64_t kn = std::min(kc, kdim - k0);
        // Static schedule, same bounds each chunk: a thread keeps its blocks, so no barrier is needed.
#pragma omp for schedule(static) nowait
        for (int64_t ob = 0; ob < blocks; ++ob)
            for (int64_t pc = 0; pc < panels; ++pc)
                panel<NR, T>(a + (pc * kdim + k0) * MR, w, (ob * kdim + k0) * B, kn, c + pc * MR * o + ob * B, o,
                             k0 > 0);
    }
}

// a[panel][k][MR] = input value of pixel panel * MR + r for k = (kh * kw_count + kw) * c + ci (the weights'
// "hwi" order); zero outside the image and for the padding pixels of the last panel.
void unfold(const SmallConvShape& s, const float* x, int mr, int64_t panels, float* a) {
    const int64_t kdim = s.kh * s.kw * s.c, pixels = s.n * s.ho * s.wo, taps = s.kh * s.kw, plane = s.h * s.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t pc = 0; pc < panels; ++pc)
        for (int64_t tap = 0; tap < taps; ++tap)
            for (int r = 0; r < mr; ++r) {
                const int64_t p = pc * mr + r;
                float* dst = a + (pc * kdim + tap * s.c) * mr + r;
                const int64_t b = p / (s.ho * s.wo), oy = p / s.wo % s.ho, ox = p % s.wo;
                const int64_t iy = oy * s.stride - s.pt + tap / s.kw, ix = ox * s.stride - s.pl + tap % s.kw;
                if (p >= pixels || iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) {
                    for (int64_t ci = 0; ci < s.c; ++ci) dst[ci * mr] = 0.f;
                    continue;
                }
                const float* src = x + b * s.c * plane + iy * s.w + ix;
                for (int64_t ci = 0; ci < s.c; ++ci) dst[ci * mr] = src[ci * plane];
            }
}

template <int NR>
void run(const SmallConvShape& s, const float* x, const void* wt, DType wtype, const float* bias, float* y) {
    constexpr int MR = rows_for(NR);
    const int64_t kdim = s.kh * s.kw * s.c, hw = s.ho * s.wo, pixels = s.n * hw, panels = (pixels + MR - 1) / MR;
    Tensor a = Tensor::empty({panels, kdim, MR});
    unfold(s, x, MR, panels, a.data());
    Tensor c = Tensor::empty({panels * MR, s.o});
    if (wtype == DType::f16) gemm<NR, WeightBits::f16>(a.data(), panels, kdim, wt, s.o, c.data());
    else if (wtype == DType::bf16) gemm<NR, WeightBits::bf16>(a.data(), panels, kdim, wt, s.o, c.data());
    else gemm<NR, WeightBits::f32>(a.data(), panels, kdim, wt, s.o, c.data());
    a = Tensor();
    const float* cd = c.data();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < s.n; ++b)
        for (int64_t oc = 0; oc < s.o; ++oc) {
            const float bv = bias ? bias[oc] : 0.f;
            float* dst = y + (b * s.o + oc) * hw;
            const float* src = cd + b * hw * s.o + oc;
            for (int64_t i = 0; i < hw; ++i) dst[i] = src[i * s.o] + bv;
        }
}

}  // namespace

bool small_conv_available() { return __builtin_cpu_supports("avx512f"); }

int64_t small_conv_block(const dnnl::memory::desc& layout) {
    const dnnl_memory_desc_t& d = layout.data;
    const auto& blk = d.format_desc.blocking;
    if (d.ndims != 4 || d.format_kind != dnnl_blocked || d.data_type != dnnl_f32 || d.extra.flags != 0 ||
        d.offset0 != 0 || blk.inner_nblks != 1 || blk.inner_idxs[0] != 0)
        return 0;
    const int64_t b = blk.inner_blks[0], o = d.dims[0], c = d.dims[1], kh = d.dims[2], kw = d.dims[3];
    if (b % 16 || b > 64 || o % b || d.padded_dims[0] != o || d.padded_dims[1] != c) return 0;
    // Dense Ohwi<B>o: o-block, kh, kw, c, then B channels.
    const bool dense = blk.strides[1] == b && blk.strides[3] == c * b && blk.strides[2] == kw * c * b &&
                       blk.strides[0] == kh * kw * c * b;
    return dense ? b : 0;
}

void small_conv(const SmallConvShape& s, const float* x, const void* wt, DType wtype, int64_t block,
                const float* bias, float* y) {
    switch (block) {
        case 16: return run<1>(s, x, wt, wtype, bias, y);
        case 32: return run<2>(s, x, wt, wtype, bias, y);
        case 48: return run<3>(s, x, wt, wtype, bias, y);
        default: return run<4>(s, x, wt, wtype, bias, y);
    }
}

}  // namespace nb::cpu
