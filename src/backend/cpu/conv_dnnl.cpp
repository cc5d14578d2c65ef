// Convolution through oneDNN. Primitives are created once per shape and cached; weights are reordered
// once into the layout the chosen kernel wants and cached by weight buffer (weights are immutable after load).
#include <map>
#include <mutex>
#include <tuple>

#include <dnnl.hpp>

#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/profile.h"
#include "backend/ops.h"

namespace nb::ops {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct ConvKey {
    int64_t n, c, h, w, o, kh, kw;
    int stride, pt, pl, pb, pr;
    bool bias;
    bool bf16;
    auto tie() const { return std::tie(n, c, h, w, o, kh, kw, stride, pt, pl, pb, pr, bias, bf16); }
    bool operator<(const ConvKey& k) const { return tie() < k.tie(); }
};

struct ConvPlan {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
};

struct WeightKey {
    const float* ptr;
    int64_t numel;
    dnnl::memory::desc md;
    bool operator<(const WeightKey& k) const {
        if (ptr != k.ptr) return ptr < k.ptr;
        if (numel != k.numel) return numel < k.numel;
        return md.get_size() < k.md.get_size();  // same buffer, different layouts are distinct entries
    }
};

std::mutex g_mu;
std::map<ConvKey, ConvPlan> g_plans;
// Reordered weights keep a reference to the source tensor so the cache key pointer stays valid.
std::map<WeightKey, std::pair<Tensor, dnnl::memory>> g_weights;

ConvPlan& plan_for(const ConvKey& k) {
    auto it = g_plans.find(k);
    if (it != g_plans.end()) return it->second;
    auto& eng = cpu::dnnl_engine();
    dnnl::memory::dims src{k.n, k.c, k.h, k.w}, wei{k.o, k.c, k.kh, k.kw}, bia{k.o};
    int64_t ho = (k.h + k.pt + k.pb - k.kh) / k.stride + 1, wo = (k.w + k.pl + k.pr - k.kw) / k.stride + 1;
    dnnl::memory::dims dst{k.n, k.o, ho, wo};
    const dt in = k.bf16 ? dt::bf16 : dt::f32;  // fp32 accumulation and output either way
    dnnl::memory::desc src_md(src, in, tag::any), wei_md(wei, in, tag::any),
        bia_md(bia, dt::f32, tag::a), dst_md(dst, dt::f32, tag::any);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                      wei_md, k.bias ? bia_md : dnnl::memory::desc(), dst_md, {k.stride, k.stride},
                                      {k.pt, k.pl}, {k.pb, k.pr});
    dnnl::convolution_forward::primitive_desc pd(d, eng);
    return g_plans.emplace(k, ConvPlan{pd, dnnl::convolution_forward(pd)}).first->second;
}

}  // namespace

void linear_weights_changed(const Tensor& w);  // gemm.cpp

void weights_changed(const Tensor& w) {
    linear_weights_changed(w);
    std::lock_guard lock(g_mu);
    for (auto it = g_weights.begin(); it != g_weights.end();)
        it = it->first.ptr == w.data() ? g_weights.erase(it) : std::next(it);
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad) {
    cpu::ProfileScope prof_("conv2d");
    ConvKey k{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3),
              stride,   pad.t,    pad.l,    pad.b,    pad.r,    b.defined(), precision() == Precision::bf16};
    if (w.dim(1) != x.dim(1))
        throw std::logic_error("conv2d: input channels " + std::to_string(x.dim(1)) + " != weight " + shape_str(w.shape()));
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    std::unique_lock lock(g_mu);
    ConvPlan& p = plan_for(k);
    int64_t ho = (k.h + k.pt + k.pb - k.kh) / k.stride + 1, wo = (k.w + k.pl + k.pr - k.kw) / k.stride + 1;
    Tensor y = Tensor::empty({k.n, k.o, ho, wo});
    count_macs(k.n * k.o * ho * wo * k.c * k.kh * k.kw);

    dnnl::memory::desc user_src({k.n, k.c, k.h, k.w}, dt::f32, tag::nchw);
    dnnl::memory::desc user_dst({k.n, k.o, ho, wo}, dt::f32, tag::nchw);
    dnnl::memory::desc user_wei({k.o, k.c, k.kh, k.kw}, dt::f32, tag::oihw);

    // Weights: reorder once per (buffer, layout).
    WeightKey wk{w.data(), w.numel(), p.pd.weights_desc()};
    auto wit = g_weights.find(wk);
    if (wit == g_weights.end()) {
        dnnl::memory src_w(user_wei, eng, const_cast<float*>(w.data()));
        dnnl::memory dst_w = src_w;
        if (p.pd.weights_desc() != user_wei) {
            dst_w = dnnl::memory(p.pd.weights_desc(), eng);
            dnnl::reorder(src_w, dst_w).execute(strm, src_w, dst_w);
        }
        wit = g_weights.emplace(wk, std::make_pair(w, dst_w)).first;
    }
    lock.unlock();

    dnnl::memory src_m(user_src, eng, const_cast<float*>(x.data()));
    dnnl::memory dst_m(user_dst, eng, y.data());
    dnnl::memory src_in = src_m, dst_out = dst_m;
    if (p.pd.src_desc() != user_src) {
        src_in = dnnl::memory(p.pd.src_desc(), eng);
        dnnl::reorder(src_m, src_in).execute(strm, src_m, src_in);
    }
    if (p.pd.dst_desc() != user_dst) dst_out = dnnl::memory(p.pd.dst_desc(), eng);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, src_in}, {DNNL_ARG_WEIGHTS, wit->second.second}, {DNNL_ARG_DST, dst_out}};
    if (b.defined())
        args[DNNL_ARG_BIAS] = dnnl::memory({{k.o}, dt::f32, tag::a}, eng, const_cast<float*>(b.data()));
    p.prim.execute(strm, args);
    if (dst_out != dst_m) dnnl::reorder(dst_out, dst_m).execute(strm, dst_out, dst_m);
    strm.wait();
    return y;
}

}  // namespace nb::ops
