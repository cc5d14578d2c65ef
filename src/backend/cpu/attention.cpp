// Multi-head attention. From kFlashMinKeys keys on, on AVX-512 CPUs, it runs fused (flash_attention.cpp); otherwise
// (short key sequences, causal masks, CPUs without AVX-512) as below.
// Without materialising every query's (Tq x Tk) scores at once: queries are processed
// in blocks of kBlockQ rows, all heads of a block together (one batched oneDNN matmul for Q K^T, a softmax,
// one batched matmul for P V). At 512x512 (Tq = Tk = 4096, 8 heads) a block's scores take 8 x 128 x 4096
// floats = 16 MB, against 0.5 GB for the whole matrix of one batch item (attention per 512x512 step 1.65-1.73 s,
// as with 256-row blocks). Q, K, V are read in place through strided views ([B, T, H*Dh] seen as [H, T, Dh]);
// in bf16 mode they are converted once per call and the softmax writes P directly in bf16, with fp32 scores
// and accumulation.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include <dnnl.hpp>

#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/flash_attention.h"
#include "backend/cpu/plan_cache.h"
#include "backend/cpu/profile.h"
#include "backend/cpu/vec_math.h"
#include "backend/context.h"
#include "backend/cpu/kernels.h"
#include "core/dtype.h"

namespace nb::cpu {

using ops::count_macs;
using ops::Precision;
using ops::precision;

namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

constexpr int64_t kBlockQ = 128;
// From this many keys on, non-causal attention runs fused (flash_attention.cpp) where the CPU has AVX-512; the
// short ones (cross-attention's 77 keys, CLIP's causal 77) stay on this file's path, whose scores fit the cache.
constexpr int64_t kFlashMinKeys = 256;

// Heads are packed into contiguous per-head blocks before the matmuls (strided head views push oneDNN onto
// its slow generic gemm): Q block [H, rows, Dh], K^T [H, Dh, Tk], V [H, Tk, Dh], in the compute dtype.
// x: [T, H*Dh] rows t0 .. t0+rows -> dst [H, rows, ld] (transpose = false; columns Dh..ld zeroed) or
// [H, Dh, rows] (true; ld = Dh).
template <class T>
void pack_heads(const float* x, int64_t t0, int64_t rows, int64_t heads, int64_t dh, int64_t ld, T* dst,
                bool transpose) {
    const int64_t dm = heads * dh;
#pragma omp parallel for collapse(2) if (rows * dm > 65536)
    for (int64_t h = 0; h < heads; ++h)
        for (int64_t t = 0; t < rows; ++t) {
            const float* src = x + (t0 + t) * dm + h * dh;
            T* out = dst + h * rows * ld;
            for (int64_t d = 0; d < dh; ++d)
                out[transpose ? d * rows + t : t * ld + d] = to_compute<T>(src[d]);
            if (!transpose)
                for (int64_t d = dh; d < ld; ++d) out[t * ld + d] = T(0);
        }
}

// P V runs with V's (and the output's) head width rounded up to 16 floats: oneDNN's kernel is ~25 % faster on
// 48 columns than on SD 1.5's 40 (measured), the zero columns cost nothing to skip when copying out.
int64_t padded_head_width(int64_t dh) { return (dh + 15) / 16 * 16; }

struct Plans {
    dnnl::matmul qk, pv;  // qk scales the scores by 1/sqrt(Dh) (output scale)
    dnnl::softmax_forward softmax;  // over the key axis, fp32 scores -> P (bf16 or fp32)
};

// The scale follows from dh, so it is not part of the key.
struct AttentionPlans {  // per context (backend::Context::state)
    PlanCache<std::tuple<int64_t, int64_t, int64_t, int64_t, bool>, Plans> cache{kPlanCacheCapacity};
};

std::shared_ptr<const Plans> plans_for(int64_t heads, int64_t rows, int64_t tk, int64_t dh, bool bf16, float scale) {
    return backend::current().state<AttentionPlans>().cache.get(std::make_tuple(heads, rows, tk, dh, bf16), [&] {
        auto& eng = cpu::dnnl_engine();
        const dt in = bf16 ? dt::bf16 : dt::f32;
        using tag = dnnl::memory::format_tag;
        dnnl::memory::desc q(dims{heads, rows, dh}, in, tag::abc), kt(dims{heads, dh, tk}, in, tag::abc),
            s(dims{heads, rows, tk}, dt::f32, tag::abc), p(dims{heads, rows, tk}, in, tag::abc),
            v(dims{heads, tk, padded_head_width(dh)}, in, tag::abc),
            o(dims{heads, rows, padded_head_width(dh)}, dt::f32, tag::abc);
        dnnl::primitive_attr scaled;
        scaled.set_output_scales(0, {scale});
        dnnl::softmax_forward::desc sd(dnnl::prop_kind::forward_inference, s, 2);
        Plans pl{dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(q, kt, s), scaled, eng)),
                 dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(p, v, o), eng)),
                 dnnl::softmax_forward(dnnl::softmax_forward::primitive_desc(sd, eng))};
        return pl;
    });
}

// One row of scores: p = softmax(s * scale) over the first `valid` entries, zero after (causal mask).
template <class Out>
void softmax_row(const float* s, Out* p, int64_t cols, int64_t valid) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < valid; ++j) mx = std::max(mx, s[j]);
    float sum = 0.f;
    thread_local std::vector<float> e;
    e.resize(size_t(cols));
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < valid; ++j) {
        e[size_t(j)] = cpu::fast_exp(s[j] - mx);
        sum += e[size_t(j)];
    }
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < cols; ++j) {
        const float v = j < valid ? e[size_t(j)] * inv : 0.f;
        if constexpr (std::is_same_v<Out, float>)
            p[j] = v;
        else
            p[j] = f32_to_bf16(v);
    }
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
    cpu::ProfileScope prof_("attention");
    const int64_t b = q.dim(0), tq = q.dim(1), tk = k.dim(1), dm = q.dim(2), dh = dm / heads;
    const float scale = 1.f / std::sqrt(float(dh));
    const bool bf16 = ops::bf16_for(ops::kAttention);
    count_macs(2 * b * heads * tq * tk * dh);
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    Tensor o = Tensor::empty(q.shape());
    if (!causal && tk >= kFlashMinKeys && flash_attention_available(bf16)) {
        flash_attention(q, k, v, heads, bf16, o);
        return o;
    }
    const int64_t rows_max = std::min(kBlockQ, tq), dv = padded_head_width(dh);
    // Per-call scratch from the activation heap (its pages stay mapped between calls: no page faults), so
    // that it exists only while attention runs. Sizes in floats; bf16 buffers use half of theirs.
    Tensor scores = Tensor::empty({heads * rows_max * tk});
    Tensor probs = bf16 ? Tensor::empty({heads * rows_max * tk}) : Tensor();  // fp32: softmax in place
    Tensor qp = Tensor::empty({heads * rows_max * dh}), kp = Tensor::empty({heads * tk * dh});
    Tensor vp = Tensor::empty({heads * tk * dv}), op = Tensor::empty({heads * rows_max * dv});
    auto pack = [&](const float* x, int64_t t0, int64_t rows, Tensor& dst, bool transpose, int64_t ld) {
        if (bf16)
            pack_heads(x, t0, rows, int64_t(heads), dh, ld, reinterpret_cast<uint16_t*>(dst.data()), transpose);
        else
            pack_heads(x, t0, rows, int64_t(heads), dh, ld, dst.data(), transpose);
    };
    const dt in = bf16 ? dt::bf16 : dt::f32;
    using tag = dnnl::memory::format_tag;
    for (int64_t bi = 0; bi < b; ++bi) {
        pack(k.data() + bi * tk * dm, 0, tk, kp, /*transpose=*/true, dh);
        pack(v.data() + bi * tk * dm, 0, tk, vp, false, dv);
        for (int64_t r0 = 0; r0 < tq; r0 += kBlockQ) {
            const int64_t rows = std::min(kBlockQ, tq - r0);
            const auto plans = plans_for(heads, rows, tk, dh, bf16, scale);
            const Plans& pl = *plans;
            pack(q.data() + bi * tq * dm, r0, rows, qp, false, dh);
            dnnl::memory qm({dims{heads, rows, dh}, in, tag::abc}, eng, qp.data());
            dnnl::memory km({dims{heads, dh, tk}, in, tag::abc}, eng, kp.data());
            dnnl::memory sm({dims{heads, rows, tk}, dt::f32, tag::abc}, eng, scores.data());
            pl.qk.execute(strm, {{DNNL_ARG_SRC, qm}, {DNNL_ARG_WEIGHTS, km}, {DNNL_ARG_DST, sm}});
            strm.wait();
            // fp32: P is the scores buffer itself, softmaxed in place.
            dnnl::memory pm({dims{heads, rows, tk}, in, tag::abc}, eng, bf16 ? probs.data() : scores.data());
            if (!causal) {
                pl.softmax.execute(strm, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_DST, sm}});
                if (bf16) dnnl::reorder(sm, pm).execute(strm, sm, pm);
                strm.wait();
            } else {
                // Plain pointers for the worker threads.
                float* s = scores.data();
                uint16_t* pb = bf16 ? reinterpret_cast<uint16_t*>(probs.data()) : nullptr;
#pragma omp parallel for schedule(static)
                for (int64_t r = 0; r < heads * rows; ++r) {
                    const int64_t valid = std::min(tk, r0 + r % rows + 1);
                    if (bf16)
                        softmax_row(s + r * tk, pb + r * tk, tk, valid);
                    else
                        softmax_row(s + r * tk, s + r * tk, tk, valid);
                }
            }
            dnnl::memory vm({dims{heads, tk, dv}, in, tag::abc}, eng, vp.data());
            dnnl::memory om({dims{heads, rows, dv}, dt::f32, tag::abc}, eng, op.data());
            pl.pv.execute(strm, {{DNNL_ARG_SRC, pm}, {DNNL_ARG_WEIGHTS, vm}, {DNNL_ARG_DST, om}});
            strm.wait();
            // [H, rows, dv] -> rows of [T, H*Dh]
            const float* ob = op.data();
            float* dst = o.data() + (bi * tq + r0) * dm;
#pragma omp parallel for if (rows * dm > 65536)
            for (int64_t t = 0; t < rows; ++t)
                for (int64_t h = 0; h < heads; ++h)
                    std::copy_n(ob + (h * rows + t) * dv, dh, dst + t * dm + h * dh);
        }
    }
    return o;
}

}  // namespace nb::cpu
