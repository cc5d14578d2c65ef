// Fused ("flash") attention for long key sequences on AVX-512 CPUs (Dao et al., FlashAttention, 2022, as an
// online softmax): each task owns kBq query rows of one head and walks the keys in blocks of kBk, keeping the
// block's scores in L1/L2 and a running row maximum m, row sum l and output accumulator O:
//     S = Q K_blk^T            (Q pre-scaled by log2(e)/sqrt(Dh), so exp becomes exp2)
//     m' = max(m, rowmax S);   P = 2^(S - m');   alpha = 2^(m - m')
//     l = alpha l + rowsum P;  O = alpha O + P V_blk
// and O / l is the output. The scores never leave the cache: the unfused path (attention.cpp) writes, softmaxes
// and re-reads 8 x 128 x 4096 floats per query block at 512x512, which made it memory-bound.
// fp32: both products are register-tiled FMA kernels. bf16 (AVX512_BF16): Q, K, P and V are rounded to bf16 and
// multiplied with vdpbf16ps (pairs along the reduction axis), scores, softmax and O stay fp32 -- the same
// roundings as the unfused bf16 path.
#include "backend/cpu/flash_attention.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>


// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves, which -W(maybe-)uninitialized report.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace nb::cpu {

namespace {

#define NB_AVX512 __attribute__((target("avx512f")))
#define NB_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int64_t kBq = 96;   // query rows per task: a multiple of every kernel's row count (4, 6, 8, 12, 24)
constexpr int64_t kBk = 256;  // keys per block: a multiple of the score kernel's 64 columns
constexpr float kLog2e = 1.4426950408889634f;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Geometry of one call.
struct Shape {
    int64_t b, tq, tk, heads, dh;
    int64_t dm() const { return heads * dh; }
    int64_t nqb() const { return (tq + kBq - 1) / kBq; }
    int64_t nkb() const { return (tk + kBk - 1) / kBk; }
    int64_t tkp() const { return nkb() * kBk; }               // keys padded to whole blocks
    int64_t dhp() const { return round_up(dh, 16); }           // V / O row width: whole vectors
    int64_t dq() const { return round_up(dh, 2); }             // bf16 Q / K rows: whole pairs
    template <class T>
    int64_t kd() const { return std::is_same_v<T, float> ? dh : dq(); }  // Q / K row width for element type T
};

// 2^t for t <= 0, exactly 0 below 2^-120 (and for -inf): Taylor polynomial of degree Deg on [-1/2, 1/2]
// after rounding off the integer part. Relative error before float rounding: < 2e-8 at degree 7 (fp32), < 5e-5
// at degree 4 (for P that is rounded to bf16's 2^-9 next).
template <int Deg>
NB_AVX512 inline __m512 exp2_neg(__m512 t) {
    static constexpr float c[8] = {1.f, 0.6931471805599453f, 0.2402265069591007f, 5.550410866482158e-02f,
                                   9.618129107628477e-03f, 1.3333558146428443e-03f, 1.5403530393381606e-04f,
                                   1.525273380405984e-05f};
    const __mmask16 live = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-120.f), _CMP_GE_OQ);
    t = _mm512_max_ps(t, _mm512_set1_ps(-120.f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(c[Deg]);
#pragma GCC unroll 8
    for (int i = Deg - 1; i >= 0; --i) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c[i]));
    return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

// Lanes of the 16 columns from c on that lie before valid.
inline __mmask16 cols_before(int64_t c, int64_t valid) {
    return c + 16 <= valid ? __mmask16(0xFFFF) : c < valid ? __mmask16((1u << (valid - c)) - 1) : __mmask16(0);
}

// Folds a 6 x 4-vector score tile's valid columns into the rows' running vector maxima rmax[r * 16 ..].
NB_AVX512 inline void tile_max(const __m512 (&acc)[6][4], const __mmask16 (&km)[4], float* rmax) {
#pragma GCC unroll 6
    for (int r = 0; r < 6; ++r) {
        __m512 mx = _mm512_loadu_ps(rmax + 16 * r);
        #pragma GCC unroll 4
        for (int n = 0; n < 4; ++n) mx = _mm512_mask_max_ps(mx, km[n], mx, acc[r][n]);
        _mm512_storeu_ps(rmax + 16 * r, mx);
    }
}

// ---- fp32 kernels ----

// S[kBq][kBk] = Q[kBq][dh] x Kt[dh][kBk]; 6 rows x 64 columns per tile, the K panel (dh x 64) stays in L1
// across the row tiles. rmax[kBq][16] (set to -inf by the caller) collects each row's maximum over the first
// valid columns, 16 lanes wide.
NB_AVX512 void scores_f32(const float* q, const float* kt, int64_t dh, int64_t valid, float* s, float* rmax) {
    for (int64_t j0 = 0; j0 < std::min(valid, kBk); j0 += 64) {
        const __mmask16 km[4] = {cols_before(j0, valid), cols_before(j0 + 16, valid), cols_before(j0 + 32, valid),
                                 cols_before(j0 + 48, valid)};
        for (int64_t i0 = 0; i0 < kBq; i0 += 6) {
            __m512 acc[6][4];
            #pragma GCC unroll 24
            for (auto& r : acc)
                #pragma GCC unroll 24
                for (auto& a : r) a = _mm512_setzero_ps();
            const float* qi = q + i0 * dh;
            for (int64_t d = 0; d < dh; ++d) {
                const float* kd = kt + d * kBk + j0;
                const __m512 k0 = _mm512_loadu_ps(kd), k1 = _mm512_loadu_ps(kd + 16), k2 = _mm512_loadu_ps(kd + 32),
                             k3 = _mm512_loadu_ps(kd + 48);
#pragma GCC unroll 6
                for (int r = 0; r < 6; ++r) {
                    const __m512 a = _mm512_set1_ps(qi[r * dh + d]);
                    acc[r][0] = _mm512_fmadd_ps(a, k0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(a, k1, acc[r][1]);
                    acc[r][2] = _mm512_fmadd_ps(a, k2, acc[r][2]);
                    acc[r][3] = _mm512_fmadd_ps(a, k3, acc[r][3]);
                }
            }
            #pragma GCC unroll 24
            for (int r = 0; r < 6; ++r)
                #pragma GCC unroll 24
                for (int n = 0; n < 4; ++n) _mm512_storeu_ps(s + (i0 + r) * kBk + j0 + 16 * n, acc[r][n]);
            tile_max(acc, km, rmax + i0 * 16);
        }
    }
}

// O[kBq][dhp] columns c0 .. c0 + 16 NV += P[kBq][kBk] x V[kBk][dhp]; MR x NV accumulators.
template <int MR, int NV>
NB_AVX512 void pv_f32_cols(const float* p, const float* v, int64_t dhp, int64_t c0, float* o) {
    for (int64_t i0 = 0; i0 < kBq; i0 += MR) {
        __m512 acc[MR][NV];
        #pragma GCC unroll 24
        for (int r = 0; r < MR; ++r)
            #pragma GCC unroll 24
            for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_loadu_ps(o + (i0 + r) * dhp + c0 + 16 * n);
        const float* pi = p + i0 * kBk;
        for (int64_t j = 0; j < kBk; ++j) {
            __m512 vj[NV];
            #pragma GCC unroll 24
            for (int n = 0; n < NV; ++n) vj[n] = _mm512_loadu_ps(v + j * dhp + c0 + 16 * n);
#pragma GCC unroll 24
            for (int r = 0; r < MR; ++r) {
                const __m512 a = _mm512_set1_ps(pi[r * kBk + j]);
                #pragma GCC unroll 24
                for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_fmadd_ps(a, vj[n], acc[r][n]);
            }
        }
        #pragma GCC unroll 24
        for (int r = 0; r < MR; ++r)
            #pragma GCC unroll 24
            for (int n = 0; n < NV; ++n) _mm512_storeu_ps(o + (i0 + r) * dhp + c0 + 16 * n, acc[r][n]);
    }
}

// ---- bf16 kernels (pairs along the reduction axis, 32-bit lanes) ----

// S[kBq][kBk] = Q[kBq][dq] (bf16) x K[dq/2][kBk][2] (bf16 pairs); rmax as in scores_f32.
NB_AVX512_BF16 void scores_bf16(const uint16_t* q, const uint16_t* k, int64_t dq, int64_t valid, float* s,
                                float* rmax) {
    const int64_t pairs = dq / 2;
    for (int64_t j0 = 0; j0 < std::min(valid, kBk); j0 += 64) {
        const __mmask16 km[4] = {cols_before(j0, valid), cols_before(j0 + 16, valid), cols_before(j0 + 32, valid),
                                 cols_before(j0 + 48, valid)};
        for (int64_t i0 = 0; i0 < kBq; i0 += 6) {
            __m512 acc[6][4];
            #pragma GCC unroll 24
            for (auto& r : acc)
                #pragma GCC unroll 24
                for (auto& a : r) a = _mm512_setzero_ps();
            const uint16_t* qi = q + i0 * dq;
            for (int64_t pr = 0; pr < pairs; ++pr) {
                const uint16_t* kp = k + (pr * kBk + j0) * 2;
                __m512bh kv[4];
                #pragma GCC unroll 24
                for (int n = 0; n < 4; ++n) kv[n] = (__m512bh)_mm512_loadu_si512(kp + 32 * n);
#pragma GCC unroll 6
                for (int r = 0; r < 6; ++r) {
                    int32_t pair;
                    std::memcpy(&pair, qi + r * dq + 2 * pr, 4);
                    const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
                    #pragma GCC unroll 24
                    for (int n = 0; n < 4; ++n) acc[r][n] = _mm512_dpbf16_ps(acc[r][n], a, kv[n]);
                }
            }
            #pragma GCC unroll 24
            for (int r = 0; r < 6; ++r)
                #pragma GCC unroll 24
                for (int n = 0; n < 4; ++n) _mm512_storeu_ps(s + (i0 + r) * kBk + j0 + 16 * n, acc[r][n]);
            tile_max(acc, km, rmax + i0 * 16);
        }
    }
}

// O[kBq][dhp] columns c0 .. c0 + 16 NV += P[kBq][kBk] (bf16) x V[kBk/2][dhp][2] (bf16 pairs).
template <int MR, int NV>
NB_AVX512_BF16 void pv_bf16_cols(const uint16_t* p, const uint16_t* v, int64_t dhp, int64_t c0, float* o) {
    for (int64_t i0 = 0; i0 < kBq; i0 += MR) {
        __m512 acc[MR][NV];
        #pragma GCC unroll 24
        for (int r = 0; r < MR; ++r)
            #pragma GCC unroll 24
            for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_loadu_ps(o + (i0 + r) * dhp + c0 + 16 * n);
        const uint16_t* pi = p + i0 * kBk;
        for (int64_t jp = 0; jp < kBk / 2; ++jp) {
            __m512bh vj[NV];
            #pragma GCC unroll 24
            for (int n = 0; n < NV; ++n) vj[n] = (__m512bh)_mm512_loadu_si512(v + (jp * dhp + c0 + 16 * n) * 2);
#pragma GCC unroll 24
            for (int r = 0; r < MR; ++r) {
                int32_t pair;
                std::memcpy(&pair, pi + r * kBk + 2 * jp, 4);
                const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
                #pragma GCC unroll 24
                for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_dpbf16_ps(acc[r][n], a, vj[n]);
            }
        }
        #pragma GCC unroll 24
        for (int r = 0; r < MR; ++r)
            #pragma GCC unroll 24
            for (int n = 0; n < NV; ++n) _mm512_storeu_ps(o + (i0 + r) * dhp + c0 + 16 * n, acc[r][n]);
    }
}

// O's columns in chunks of up to 5 vectors, each with the most rows that keep <= 24 accumulators.
template <bool Bf16, class P, class V>
void pv(const P* p, const V* v, int64_t dhp, float* o) {
    const int64_t nv = dhp / 16;
    for (int64_t c = 0; c < nv;) {
        const int64_t left = nv - c, take = left == 5 ? 5 : std::min<int64_t>(left, 4);
        auto run = [&]<int MR, int NV>() {
            if constexpr (Bf16)
                pv_bf16_cols<MR, NV>(p, v, dhp, 16 * c, o);
            else
                pv_f32_cols<MR, NV>(p, v, dhp, 16 * c, o);
        };
        switch (take) {
            case 1: run.template operator()<24, 1>(); break;
            case 2: run.template operator()<12, 2>(); break;
            case 3: run.template operator()<8, 3>(); break;
            case 4: run.template operator()<6, 4>(); break;
            default: run.template operator()<4, 5>(); break;
        }
        c += take;
    }
}

// Online-softmax update of one score block (scores in log2 units; rmax from the score kernel): turns S into P in
// place, 0 from column valid on, updates the row maxima m and sums l and rescales O's rows.
template <int Deg>
NB_AVX512 void softmax_block(float* s, int64_t valid, const float* rmax, float* m, float* l, float* o, int64_t dhp) {
    for (int64_t i = 0; i < kBq; ++i) {
        float* si = s + i * kBk;
        const float m_new = std::max(m[i], _mm512_reduce_max_ps(_mm512_loadu_ps(rmax + 16 * i)));
        const __m512 mv = _mm512_set1_ps(m_new);
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < kBk; j += 16) {
            __m512 e = _mm512_setzero_ps();
            if (j < valid) {
                e = exp2_neg<Deg>(_mm512_sub_ps(_mm512_loadu_ps(si + j), mv));
                if (j + 16 > valid) e = _mm512_maskz_mov_ps(cols_before(j, valid), e);
                sum = _mm512_add_ps(sum, e);
            }
            _mm512_storeu_ps(si + j, e);
        }
        const float alpha = m[i] == -INFINITY ? 0.f : std::exp2(m[i] - m_new);
        l[i] = l[i] * alpha + _mm512_reduce_add_ps(sum);
        m[i] = m_new;
        if (alpha != 1.f) {
            const __m512 av = _mm512_set1_ps(alpha);
            for (int64_t c = 0; c < dhp; c += 16)
                _mm512_storeu_ps(o + i * dhp + c, _mm512_mul_ps(av, _mm512_loadu_ps(o + i * dhp + c)));
        }
    }
}

// n (a multiple of 16) floats -> bf16, round to nearest even.
NB_AVX512_BF16 void to_bf16(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
}

// ---- packing ----
// Per (batch item, head): K as [nkb][dh][kBk] floats (fp32) or [nkb][dq/2][kBk][2] bf16 pairs, V as [tkp][dhp]
// floats or [tkp/2][dhp][2] bf16 pairs; zero past Tk and Dh. Element (j, d) of a block sits at
//   fp32 K: d * kBk + j        bf16 K: ((d / 2) * kBk + j) * 2 + d % 2
//   fp32 V: j * dhp + d        bf16 V: ((j / 2) * dhp + d) * 2 + j % 2
// K is read 16 keys at a time by gathers down one column d, V row by row (bf16: two rows at a time). The fp32 and
// bf16 packers are separate functions because only the latter may use AVX512_BF16 instructions.

// Where one key block of one (batch item, head) comes from.
struct KvSource {
    const float* k;  // K row of the block's first key, at the head's first column
    const float* v;
    int64_t keys;    // live keys in the block (the rest are padding)
    int64_t dh, dm;  // head width, row stride
    __m512i rows16;  // 16 row offsets (0, dm, 2 dm, ...) for the gathers
};

NB_AVX512 inline __m512 k_column(const KvSource& src, int64_t jj, int64_t d) {
    return d < src.dh ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), cols_before(jj, src.keys), src.rows16,
                                                 src.k + jj * src.dm + d, 4)
                      : _mm512_setzero_ps();
}

NB_AVX512 inline __m512 v_row(const KvSource& src, int64_t jj, int64_t d) {
    return jj < src.keys ? _mm512_maskz_loadu_ps(cols_before(d, src.dh), src.v + jj * src.dm + d)
                         : _mm512_setzero_ps();
}

NB_AVX512 void pack_block(const KvSource& src, const Shape& g, float* kblk, float* vblk) {
    const int64_t dhp = g.dhp();
    for (int64_t jj = 0; jj < kBk; jj += 16)
        for (int64_t d = 0; d < g.dh; ++d) _mm512_storeu_ps(kblk + d * kBk + jj, k_column(src, jj, d));
    for (int64_t jj = 0; jj < kBk; ++jj)
        for (int64_t d = 0; d < dhp; d += 16) _mm512_storeu_ps(vblk + jj * dhp + d, v_row(src, jj, d));
}

// 16 bf16 pairs (a_i, b_i) as 32-bit lanes, a in the low half: the layout vdpbf16ps multiplies.
NB_AVX512_BF16 inline __m512i bf16_pairs(__m512 a, __m512 b) {
    const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
    const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

NB_AVX512_BF16 void pack_block(const KvSource& src, const Shape& g, uint16_t* kblk, uint16_t* vblk) {
    const int64_t dhp = g.dhp(), dq = g.dq();
    for (int64_t jj = 0; jj < kBk; jj += 16)
        for (int64_t d = 0; d < dq; d += 2)
            _mm512_storeu_si512(kblk + ((d / 2) * kBk + jj) * 2, bf16_pairs(k_column(src, jj, d), k_column(src, jj, d + 1)));
    for (int64_t jj = 0; jj < kBk; jj += 2)
        for (int64_t d = 0; d < dhp; d += 16)
            _mm512_storeu_si512(vblk + ((jj / 2) * dhp + d) * 2, bf16_pairs(v_row(src, jj, d), v_row(src, jj + 1, d)));
}

template <class T>
void pack_kv(const float* k, const float* v, const Shape& g, T* kp, T* vp) {
    const int64_t kd = g.kd<T>(), dhp = g.dhp(), tkp = g.tkp(), dm = g.dm();
    alignas(64) int32_t offsets[16];
    for (int i = 0; i < 16; ++i) offsets[i] = int32_t(i * dm);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t bh = 0; bh < g.b * g.heads; ++bh)
        for (int64_t kb = 0; kb < g.nkb(); ++kb) {
            const int64_t bi = bh / g.heads, h = bh % g.heads, j0 = kb * kBk;
            KvSource src{k + (bi * g.tk + j0) * dm + h * g.dh, v + (bi * g.tk + j0) * dm + h * g.dh,
                         std::min(kBk, g.tk - j0), g.dh, dm, {}};
            std::memcpy(&src.rows16, offsets, sizeof offsets);
            pack_block(src, g, kp + bh * tkp * kd + j0 * kd, vp + bh * tkp * dhp + j0 * dhp);
        }
}

// Q rows r0 .. r0 + kBq of one head, times qscale, as [kBq][kd] (fp32, or bf16 with pairs along d); zero past
// the last row and Dh.
NB_AVX512 void pack_q(const float* q, const Shape& g, int64_t bi, int64_t h, int64_t r0, float qscale, float* qb) {
    const __m512 sv = _mm512_set1_ps(qscale);
    for (int64_t i = 0; i < kBq; ++i) {
        const float* qr = q + (bi * g.tq + r0 + i) * g.dm() + h * g.dh;
        const bool live = r0 + i < g.tq;
        for (int64_t d = 0; d < g.dh; d += 16) {
            const __mmask16 cols = cols_before(d, g.dh);
            _mm512_mask_storeu_ps(qb + i * g.dh + d, cols,
                                  _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(live ? cols : 0, qr + d)));
        }
    }
}

NB_AVX512_BF16 void pack_q(const float* q, const Shape& g, int64_t bi, int64_t h, int64_t r0, float qscale,
                           uint16_t* qb) {
    const int64_t dq = g.dq();
    const __m512 sv = _mm512_set1_ps(qscale);
    for (int64_t i = 0; i < kBq; ++i) {
        const float* qr = q + (bi * g.tq + r0 + i) * g.dm() + h * g.dh;
        const bool live = r0 + i < g.tq;
        for (int64_t d = 0; d < dq; d += 16) {
            const __m512 x = _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(live ? cols_before(d, g.dh) : 0, qr + d));
            _mm256_mask_storeu_epi16(qb + i * dq + d, cols_before(d, dq), (__m256i)_mm512_cvtneps_pbh(x));
        }
    }
}

// ---- driver ----

template <bool Bf16>
void run(const float* q, const float* k, const float* v, float* out, const Shape& g, float scale) {
    using T = std::conditional_t<Bf16, uint16_t, float>;
    const int64_t kd = g.kd<T>(), dhp = g.dhp(), tkp = g.tkp();
    // Packed K and V of every (batch item, head), then per-thread scratch, from the activation heap.
    const int64_t kv_elems = g.b * g.heads * tkp * (kd + dhp);
    Tensor kv = Tensor::empty({(kv_elems * int64_t(sizeof(T)) + 3) / 4});
    T* kp = reinterpret_cast<T*>(kv.data());
    T* vp = kp + g.b * g.heads * tkp * kd;
    pack_kv(k, v, g, kp, vp);

    // Per thread: Q block (T), S/P (fp32), P (bf16 only), O, m, l, row maxima of S -- each a multiple of 16 floats.
    const int64_t q_f = round_up((kBq * kd * int64_t(sizeof(T)) + 3) / 4, 16), s_f = kBq * kBk,
                  pb_f = Bf16 ? kBq * kBk / 2 : 0, o_f = kBq * dhp, ml_f = 2 * kBq, rmax_f = kBq * 16;
    const int64_t per_thread = q_f + s_f + pb_f + o_f + ml_f + rmax_f;
    const int threads = omp_get_max_threads();
    Tensor scratch = Tensor::empty({per_thread * threads});
    const int64_t tasks = g.b * g.heads * g.nqb();
    const float qscale = scale * kLog2e;
#pragma omp parallel
    {
        float* base = scratch.data() + per_thread * omp_get_thread_num();
        T* qb = reinterpret_cast<T*>(base);
        float* s = base + q_f;
        uint16_t* pb = reinterpret_cast<uint16_t*>(s + s_f);
        float* o = s + s_f + pb_f;
        float* m = o + o_f;
        float* l = m + kBq;
        float* rmax = l + kBq;
#pragma omp for schedule(dynamic)
        for (int64_t t = 0; t < tasks; ++t) {
            const int64_t bh = t / g.nqb(), bi = bh / g.heads, h = bh % g.heads, r0 = (t % g.nqb()) * kBq;
            const int64_t rows = std::min(kBq, g.tq - r0);
            pack_q(q, g, bi, h, r0, qscale, qb);
            std::fill_n(o, o_f, 0.f);
            std::fill_n(m, kBq, -INFINITY);
            std::fill_n(l, kBq, 0.f);
            const T* kh = kp + bh * tkp * kd;
            const T* vh = vp + bh * tkp * dhp;
            for (int64_t kb = 0; kb < g.nkb(); ++kb) {
                const int64_t valid = std::min(kBk, g.tk - kb * kBk);
                std::fill_n(rmax, kBq * 16, -INFINITY);
                if constexpr (Bf16)
                    scores_bf16(qb, kh + kb * kBk * kd, kd, valid, s, rmax);
                else
                    scores_f32(qb, kh + kb * kBk * kd, kd, valid, s, rmax);
                softmax_block<Bf16 ? 4 : 7>(s, valid, rmax, m, l, o, dhp);
                if constexpr (Bf16) {
                    to_bf16(s, pb, kBq * kBk);
                    pv<true>(pb, vh + kb * kBk * dhp, dhp, o);
                } else {
                    pv<false>(s, vh + kb * kBk * dhp, dhp, o);
                }
            }
            for (int64_t i = 0; i < rows; ++i) {
                const float inv = 1.f / l[i];
                float* dst = out + (bi * g.tq + r0 + i) * g.dm() + h * g.dh;
                for (int64_t d = 0; d < g.dh; ++d) dst[d] = o[i * dhp + d] * inv;
            }
        }
    }
}

}  // namespace

bool flash_attention_available(bool bf16) {
    static const bool f32 = __builtin_cpu_supports("avx512f");
    static const bool b16 = f32 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl");
    return bf16 ? b16 : f32;
}

void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool bf16, Tensor& out) {
    const Shape g{q.dim(0), q.dim(1), k.dim(1), heads, q.dim(2) / heads};
    const float scale = 1.f / std::sqrt(float(g.dh));
    if (bf16)
        run<true>(q.data(), k.data(), v.data(), out.data(), g, scale);
    else
        run<false>(q.data(), k.data(), v.data(), out.data(), g, scale);
}

}  // namespace nb::cpu
