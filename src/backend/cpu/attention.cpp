// Multi-head attention without materialising every query's (Tq x Tk) scores at once: queries are processed
// in blocks of kBlockQ rows, all heads of a block together (one batched oneDNN matmul for Q K^T, a softmax,
// one batched matmul for P V). At 512x512 (Tq = Tk = 4096, 8 heads) a block's scores take 8 x 256 x 4096
// floats = 32 MB, against 1 GB for the whole matrix of one batch item. Q, K, V are read in place through
// strided views ([B, T, H*Dh] seen as [H, T, Dh]); in bf16 mode they are converted once per call and the
// softmax writes P directly in bf16, with fp32 scores and accumulation.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include <dnnl.hpp>

#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/profile.h"
#include "backend/cpu/vec_math.h"
#include "backend/ops.h"
#include "core/dtype.h"

namespace nb::ops {

namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

constexpr int64_t kBlockQ = 256;

// [H, rows, cols] views of a [T, H*Dh] row-major buffer (row stride dm): element (h, t, d) at t*dm + h*dh + d.
dnnl::memory::desc head_view(int64_t heads, int64_t t, int64_t dh, int64_t dm, dt type) {
    return dnnl::memory::desc(dims{heads, t, dh}, type, dims{dh, dm, 1});
}
// K^T view: (h, d, j) at j*dm + h*dh + d.
dnnl::memory::desc head_view_t(int64_t heads, int64_t t, int64_t dh, int64_t dm, dt type) {
    return dnnl::memory::desc(dims{heads, dh, t}, type, dims{dh, 1, dm});
}

struct Plans {
    dnnl::matmul qk, pv;  // qk scales the scores by 1/sqrt(Dh) (output scale)
    dnnl::softmax_forward softmax;  // over the key axis, fp32 scores -> P (bf16 or fp32)
};

std::mutex g_mu;
std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool>, Plans> g_plans;

const Plans& plans_for(int64_t heads, int64_t rows, int64_t tk, int64_t dh, int64_t dm, bool bf16, float scale) {
    std::lock_guard lock(g_mu);
    auto key = std::make_tuple(heads, rows, tk, dh, dm, bf16);
    auto it = g_plans.find(key);
    if (it != g_plans.end()) return it->second;
    auto& eng = cpu::dnnl_engine();
    const dt in = bf16 ? dt::bf16 : dt::f32;
    dnnl::memory::desc q = head_view(heads, rows, dh, dm, in), kt = head_view_t(heads, tk, dh, dm, in),
                       s(dims{heads, rows, tk}, dt::f32, dims{rows * tk, tk, 1}),
                       p(dims{heads, rows, tk}, in, dims{rows * tk, tk, 1}), v = head_view(heads, tk, dh, dm, in),
                       o = head_view(heads, rows, dh, dm, dt::f32);
    dnnl::primitive_attr scaled;
    scaled.set_output_scales(0, {scale});
    dnnl::softmax_forward::desc sd(dnnl::prop_kind::forward_inference, s, 2);
    Plans pl{dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(q, kt, s), scaled, eng)),
             dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(p, v, o), eng)),
             dnnl::softmax_forward(dnnl::softmax_forward::primitive_desc(sd, eng))};
    return g_plans.emplace(key, std::move(pl)).first->second;
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

Tensor to_bf16_bits(const Tensor& x) {  // bf16 values packed two per float slot (storage only)
    Tensor b = Tensor::empty({(x.numel() + 1) / 2});
    auto* out = reinterpret_cast<uint16_t*>(b.data());
    const float* in = x.data();
    const int64_t n = x.numel();
#pragma omp parallel for simd if (n > 65536)
    for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(in[i]);
    return b;
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
    cpu::ProfileScope prof_("attention");
    const int64_t b = q.dim(0), tq = q.dim(1), tk = k.dim(1), dm = q.dim(2), dh = dm / heads;
    const float scale = 1.f / std::sqrt(float(dh));
    const bool bf16 = precision() == Precision::bf16;
    count_macs(2 * b * heads * tq * tk * dh);
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    Tensor o = Tensor::empty(q.shape());
    Tensor qb, kb, vb;
    if (bf16) qb = to_bf16_bits(q), kb = to_bf16_bits(k), vb = to_bf16_bits(v);
    const int64_t esz = bf16 ? 2 : 4;
    auto base = [&](const Tensor& f32, const Tensor& b16) {
        return bf16 ? reinterpret_cast<char*>(const_cast<float*>(b16.data())) : reinterpret_cast<char*>(const_cast<float*>(f32.data()));
    };
    const int64_t rows_max = std::min(kBlockQ, tq);
    // Block scratch is reused across calls: fresh 32 MB buffers per call cost more in page faults than compute.
    thread_local Tensor scores, probs;
    if (scores.numel() < heads * rows_max * tk) scores = Tensor::empty({heads * rows_max * tk});
    if (probs.numel() < heads * rows_max * tk) probs = Tensor::empty({heads * rows_max * tk});
    const dt in = bf16 ? dt::bf16 : dt::f32;
    for (int64_t bi = 0; bi < b; ++bi)
        for (int64_t r0 = 0; r0 < tq; r0 += kBlockQ) {
            const int64_t rows = std::min(kBlockQ, tq - r0);
            const Plans& pl = plans_for(heads, rows, tk, dh, dm, bf16, scale);
            dnnl::memory qm(head_view(heads, rows, dh, dm, in), eng, base(q, qb) + (bi * tq + r0) * dm * esz);
            dnnl::memory km(head_view_t(heads, tk, dh, dm, in), eng, base(k, kb) + bi * tk * dm * esz);
            dnnl::memory sm({dims{heads, rows, tk}, dt::f32, dims{rows * tk, tk, 1}}, eng, scores.data());
            pl.qk.execute(strm, {{DNNL_ARG_SRC, qm}, {DNNL_ARG_WEIGHTS, km}, {DNNL_ARG_DST, sm}});
            strm.wait();
            dnnl::memory pm({dims{heads, rows, tk}, in, dims{rows * tk, tk, 1}}, eng, probs.data());
            if (!causal) {
                // oneDNN's softmax wants a dst descriptor of the P dtype: the primitive was made for f32 -> f32,
                // so for bf16 use a dedicated reorder-free path: softmax in place, then convert.
                pl.softmax.execute(strm, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_DST, sm}});
                strm.wait();
                if (bf16) {
                    dnnl::memory sf({dims{heads, rows, tk}, dt::f32, dims{rows * tk, tk, 1}}, eng, scores.data());
                    dnnl::reorder(sf, pm).execute(strm, sf, pm);
                    strm.wait();
                } else {
                    std::copy_n(scores.data(), heads * rows * tk, probs.data());
                }
            } else {
                // Plain pointers: the scratch tensors are thread_local, worker threads must not name them.
                const float* s = scores.data();
                float* pf = probs.data();
                uint16_t* pb = reinterpret_cast<uint16_t*>(probs.data());
#pragma omp parallel for schedule(static)
                for (int64_t r = 0; r < heads * rows; ++r) {
                    const int64_t valid = std::min(tk, r0 + r % rows + 1);
                    if (bf16)
                        softmax_row(s + r * tk, pb + r * tk, tk, valid);
                    else
                        softmax_row(s + r * tk, pf + r * tk, tk, valid);
                }
            }
            dnnl::memory vm(head_view(heads, tk, dh, dm, in), eng, base(v, vb) + bi * tk * dm * esz);
            dnnl::memory om(head_view(heads, rows, dh, dm, dt::f32), eng, o.data() + (bi * tq + r0) * dm);
            pl.pv.execute(strm, {{DNNL_ARG_SRC, pm}, {DNNL_ARG_WEIGHTS, vm}, {DNNL_ARG_DST, om}});
            strm.wait();
        }
    return o;
}

}  // namespace nb::ops
