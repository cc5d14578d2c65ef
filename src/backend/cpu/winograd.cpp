#include "backend/cpu/winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include <dnnl.hpp>

#include "backend/context.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/plan_cache.h"

namespace nb::cpu {

namespace {

using dt = dnnl::memory::data_type;

// The helpers below are always inlined, so their 64-byte vector results never cross a call: no ABI concern.
#pragma GCC diagnostic ignored "-Wpsabi"
// 16 floats: one AVX-512 register in the avx512f clones below, two AVX2 registers in the baseline build.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define NB_ALWAYS_INLINE inline __attribute__((always_inline))
#define NB_CLONES __attribute__((target_clones("avx512f", "default")))

NB_ALWAYS_INLINE v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }
NB_ALWAYS_INLINE void store(float* p, const v16& v) { *reinterpret_cast<v16u*>(p) = v; }

// The three 1-D transforms of F(4, 3) with interpolation points 0, 1, -1, 1/2, -2 and infinity (the matrices
// follow from the points as in Lavin & Gray). Lavin's usual 0, +-1, +-2 give about 1.5x the rounding error:
// in a float32 simulation against a float64 direct convolution over 320 / 960 input channels, rms relative
// error 3.7e-6 / 6.1e-6 with +-2 and 2.4e-6 / 4.1e-6 with these (Barabasz et al., "Error analysis and
// improving the accuracy of Winograd convolution for deep neural networks", 2020, study such choices).
// B^T (6x6): input tile -> Winograd domain.
NB_ALWAYS_INLINE void bt(const v16 d[6], v16 o[6]) {
    o[0] = d[0] - 1.5f * (d[1] - d[3]) - 2.f * d[2] + d[4];
    o[1] = 0.5f * d[2] - d[1] + 2.5f * d[3] + d[4];
    o[2] = d[1] - 2.5f * d[2] + 0.5f * d[3] + d[4];
    o[3] = 2.f * (d[3] - d[1]) - d[2] + d[4];
    o[4] = 0.5f * (d[1] - d[3]) - d[2] + d[4];
    o[5] = d[1] - 1.5f * (d[2] - d[4]) - 2.f * d[3] + d[5];
}
// G (6x3): 3 filter taps -> Winograd domain.
NB_ALWAYS_INLINE void gt(const v16& g0, const v16& g1, const v16& g2, v16 o[6]) {
    o[0] = g0;
    o[1] = (g0 + g1 + g2) * (1.f / 3);
    o[2] = (g0 - g1 + g2) * (-1.f / 3);
    o[3] = (4.f * g0 + 2.f * g1 + g2) * (-4.f / 15);
    o[4] = (g0 - 2.f * g1 + 4.f * g2) * (1.f / 15);
    o[5] = g2;
}
// A^T (4x6): Winograd domain -> 4 outputs.
NB_ALWAYS_INLINE void at(const v16 m[6], v16 o[4]) {
    const v16 a = m[1] + m[2], b = m[1] - m[2];
    o[0] = m[0] + a + m[3] + m[4];
    o[1] = b + 0.5f * m[3] - 2.f * m[4];
    o[2] = a + 0.25f * m[3] + 4.f * m[4];
    o[3] = b + 0.125f * m[3] - 8.f * m[4] + m[5];
}

struct Geometry {
    int64_t n, th, tw;
    int64_t tiles() const { return n * th * tw; }
};

// xp: zero-padded NHWC input [n][4 th + 2][4 tw + 2][c]; V[k][t][c] for the 36 points k.
NB_CLONES void input_transform(const float* xp, Geometry geo, int64_t c, float* v) {
    const int64_t hp = 4 * geo.th + 2, wp = 4 * geo.tw + 2, t_count = geo.tiles(), cv = c / 16;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < t_count * cv; ++i) {
        const int64_t t = i / cv, c0 = (i % cv) * 16;
        const int64_t b = t / (geo.th * geo.tw), ty = (t / geo.tw) % geo.th, tx = t % geo.tw;
        const float* p = xp + ((b * hp + 4 * ty) * wp + 4 * tx) * c + c0;
        v16 cols[6][6];  // cols[r][s]: B^T applied down column s, row r of the result
        for (int s = 0; s < 6; ++s) {
            v16 d[6], o[6];
            for (int r = 0; r < 6; ++r) d[r] = load(p + (r * wp + s) * c);
            bt(d, o);
            for (int r = 0; r < 6; ++r) cols[r][s] = o[r];
        }
        for (int r = 0; r < 6; ++r) {
            v16 o[6];
            bt(cols[r], o);
            for (int k = 0; k < 6; ++k) store(v + ((r * 6 + k) * t_count + t) * c + c0, o[k]);
        }
    }
}

// 16 weights from g (fp32 values or 16-bit bits, as held) at element i, as fp32.
NB_ALWAYS_INLINE v16 load_weights(const void* g, DType type, int64_t i) {
    if (type == DType::f32) return load(static_cast<const float*>(g) + i);
    const uint16_t* h = static_cast<const uint16_t*>(g) + i;
    __m256 part[2];
    for (int k = 0; k < 2; ++k) {
        const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 8 * k));
        part[k] = type == DType::f16 ? _mm256_cvtph_ps(bits)  // F16C: in the x86-64-v3 baseline
                                     : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
    }
    v16 r;
    std::memcpy(&r, part, sizeof(r));
    return r;
}

// g: [og, c, 3, 3] in `layout` (fp32, fp16 or bf16); U[k][c][j] for output channels [o0, o0 + oc).
NB_CLONES void weight_transform(const void* g, DType type, const WeightLayout& layout, int64_t c, int64_t o0,
                                int64_t oc, float* u) {
    const int64_t ov = oc / 16;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c * ov; ++i) {
        const int64_t ci = i / ov, j = (i % ov) * 16;
        v16 cols[6][3];
        for (int s = 0; s < 3; ++s) {
            v16 o[6];
            gt(load_weights(g, type, layout.offset(o0 + j, ci, 0, s)),
               load_weights(g, type, layout.offset(o0 + j, ci, 1, s)),
               load_weights(g, type, layout.offset(o0 + j, ci, 2, s)), o);
            for (int r = 0; r < 6; ++r) cols[r][s] = o[r];
        }
        for (int r = 0; r < 6; ++r) {
            v16 o[6];
            gt(cols[r][0], cols[r][1], cols[r][2], o);
            for (int k = 0; k < 6; ++k) store(u + ((r * 6 + k) * c + ci) * oc + j, o[k]);
        }
    }
}

// M[k][t][oc] -> NHWC output tiles out[n][4 th][4 tw][oc], plus bias.
NB_CLONES void output_transform(const float* m, Geometry geo, int64_t oc, const float* bias, float* out) {
    const int64_t t_count = geo.tiles(), ov = oc / 16, ho = 4 * geo.th, wo = 4 * geo.tw;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < t_count * ov; ++i) {
        const int64_t t = i / ov, j = (i % ov) * 16;
        const int64_t b = t / (geo.th * geo.tw), ty = (t / geo.tw) % geo.th, tx = t % geo.tw;
        v16 rows[4][6];  // rows[q][s]: A^T applied down column s
        for (int s = 0; s < 6; ++s) {
            v16 d[6], o[4];
            for (int r = 0; r < 6; ++r) d[r] = load(m + ((r * 6 + s) * t_count + t) * oc + j);
            at(d, o);
            for (int q = 0; q < 4; ++q) rows[q][s] = o[q];
        }
        const v16 bv = bias ? load(bias + j) : v16{};
        for (int q = 0; q < 4; ++q) {
            v16 o[4];
            at(rows[q], o);
            float* dst = out + ((b * ho + 4 * ty + q) * wo + 4 * tx) * oc + j;
            for (int p = 0; p < 4; ++p) store(dst + p * oc, o[p] + bv);
        }
    }
}

// The 36 products M[k] = V[k] U[k]: one batched oneDNN matmul per shape, created once.
struct Products {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
};
struct ProductPlans {  // per context (backend::Context::state)
    PlanCache<std::tuple<int64_t, int64_t, int64_t>, Products> cache{kPlanCacheCapacity};
};

std::shared_ptr<const Products> products_for(int64_t t, int64_t c, int64_t oc) {
    return backend::current().state<ProductPlans>().cache.get(std::make_tuple(t, c, oc), [&] {
        using tag = dnnl::memory::format_tag;
        dnnl::memory::desc src({36, t, c}, dt::f32, tag::abc), wei({36, c, oc}, dt::f32, tag::abc),
            dst({36, t, oc}, dt::f32, tag::abc);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), attr, dnnl_engine());
        return Products{pd, dnnl::matmul(pd)};
    });
}

// Transformed weights of one chunk of output channels take at most about this many bytes (36 / 9 = 4x the
// chunk's fp32 weights), so the chunk's U stays a small transient whatever the weight's size.
constexpr int64_t kWeightChunkBytes = 8 << 20;

}  // namespace

WeightLayout::WeightLayout(const dnnl::memory::desc& d) : d_(d.data) {
    const auto& blk = d_.format_desc.blocking;
    if (d_.ndims != 4 || d_.format_kind != dnnl_blocked || d_.data_type != dnnl_f32 || d_.extra.flags != 0) return;
    for (int i = 0; i < blk.inner_nblks; ++i) block_[blk.inner_idxs[i]] *= blk.inner_blks[i];
    const int last = blk.inner_nblks - 1;
    ok_ = last >= 0 && blk.inner_idxs[last] == 0 && blk.inner_blks[last] % 16 == 0;
}

int64_t WeightLayout::offset(int64_t o, int64_t c, int64_t kh, int64_t kw) const {
    const auto& blk = d_.format_desc.blocking;
    int64_t idx[4] = {o, c, kh, kw}, off = d_.offset0;
    for (int d = 0; d < 4; ++d) {
        off += idx[d] / block_[d] * blk.strides[d];
        idx[d] %= block_[d];
    }
    // Inner blocks, innermost last: each takes the next digit of its dimension's index within the block.
    for (int i = blk.inner_nblks - 1, stride = 1; i >= 0; --i) {
        const int d = blk.inner_idxs[i];
        off += idx[d] % blk.inner_blks[i] * stride;
        idx[d] /= blk.inner_blks[i];
        stride *= int(blk.inner_blks[i]);
    }
    return off;
}

WinogradF43::WinogradF43(const float* x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t band_bytes)
    : x_(x), n_(n), c_(c), h_(h), w_(w), th_((h + 3) / 4), tw_((w + 3) / 4) {
    const int64_t row_bytes = 36 * n * tw_ * c * int64_t(sizeof(float));  // V of one row of tiles
    band_rows_ = std::clamp<int64_t>(band_bytes / row_bytes, 1, th_);
}

void WinogradF43::load_band(int64_t band) {
    ty0_ = band * band_rows_;
    rows_ = std::min(band_rows_, th_ - ty0_);
    const int64_t hp = 4 * rows_ + 2, wp = 4 * tw_ + 2, c = c_;
    // Zero-padded NHWC copy of the band's input rows [4 ty0 - 1, 4 (ty0 + rows) + 1): "same" padding outside
    // the image, and the rest of the last tiles below and right.
    const int64_t y0 = 4 * ty0_ - 1, y_first = std::max<int64_t>(y0, 0), y_end = std::min(h_, y0 + hp);
    Tensor padded = Tensor::empty({n_, hp, wp, c});
    float* xp = padded.data();
    for (int64_t b = 0; b < n_; ++b) {
        float* img = xp + b * hp * wp * c;
        std::memset(img, 0, sizeof(float) * (y_first - y0) * wp * c);
        for (int64_t y = y_first - y0; y < y_end - y0; ++y) {
            float* row = img + y * wp * c;
            std::memset(row, 0, sizeof(float) * c);
            std::memset(row + (w_ + 1) * c, 0, sizeof(float) * (wp - w_ - 1) * c);
        }
        std::memset(img + (y_end - y0) * wp * c, 0, sizeof(float) * (hp - (y_end - y0)) * wp * c);
    }
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    const int64_t rows = y_end - y_first;
    dnnl::memory src({{n_, c, rows, w_}, dt::f32, dnnl::memory::dims{c * h_ * w_, h_ * w_, w_, 1}}, eng,
                     const_cast<float*>(x_) + y_first * w_);
    dnnl::memory dst({{n_, c, rows, w_}, dt::f32, dnnl::memory::dims{hp * wp * c, 1, wp * c, c}}, eng,
                     xp + ((y_first - y0) * wp + 1) * c);
    dnnl::reorder(src, dst).execute(strm, src, dst);
    strm.wait();
    const Geometry geo{n_, rows_, tw_};
    v_ = Tensor();
    v_ = Tensor::empty({36, geo.tiles(), c});
    input_transform(xp, geo, c, v_.data());
}

void WinogradF43::run(const void* g, DType type, const WeightLayout& layout, int64_t og, const float* bias,
                      float* y, int64_t o_total, int64_t o0) const {
    const Geometry geo{n_, rows_, tw_};
    const int64_t t = geo.tiles(), ho = 4 * rows_, wo = 4 * tw_, y0 = 4 * ty0_, y_rows = std::min(ho, h_ - y0);
    const int64_t max_oc = std::max<int64_t>(16, kWeightChunkBytes / (36 * c_ * int64_t(sizeof(float))) / 16 * 16);
    const int64_t chunks = (og + max_oc - 1) / max_oc;
    const int64_t oc_step = (og / 16 + chunks - 1) / chunks * 16;
    auto& eng = dnnl_engine();
    auto& strm = dnnl_stream();
    for (int64_t j0 = 0; j0 < og; j0 += oc_step) {
        const int64_t oc = std::min(oc_step, og - j0);
        Tensor u = Tensor::empty({36, c_, oc}), m = Tensor::empty({36, t, oc});
        weight_transform(g, type, layout, c_, j0, oc, u.data());
        const auto products = products_for(t, c_, oc);
        const Products& p = *products;
        std::unordered_map<int, dnnl::memory> args{
            {DNNL_ARG_SRC, dnnl::memory(p.pd.src_desc(), eng, const_cast<float*>(v_.data()))},
            {DNNL_ARG_WEIGHTS, dnnl::memory(p.pd.weights_desc(), eng, u.data())},
            {DNNL_ARG_DST, dnnl::memory(p.pd.dst_desc(), eng, m.data())}};
        Tensor scratch;
        if (p.pd.scratchpad_desc().get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = tensor_memory(p.pd.scratchpad_desc(), scratch);
        p.prim.execute(strm, args);
        strm.wait();
        u = Tensor();
        Tensor out = Tensor::empty({n_, ho, wo, oc});
        output_transform(m.data(), geo, oc, bias ? bias + j0 : nullptr, out.data());
        m = Tensor();
        dnnl::memory from({{n_, oc, y_rows, w_}, dt::f32, dnnl::memory::dims{ho * wo * oc, 1, wo * oc, oc}}, eng,
                          out.data());
        dnnl::memory to({{n_, oc, y_rows, w_}, dt::f32, dnnl::memory::dims{o_total * h_ * w_, h_ * w_, w_, 1}}, eng,
                        y + ((o0 + j0) * h_ + y0) * w_);
        dnnl::reorder(from, to).execute(strm, from, to);
        strm.wait();
    }
}

}  // namespace nb::cpu
