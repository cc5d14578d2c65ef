// Convolution through oneDNN. Primitives are created once per shape and cached; weights are reordered
// once into the layout the chosen kernel wants and cached by weight buffer (weights are immutable after load).
// Two kernels of our own take the shapes where oneDNN's direct kernel is not the fastest, reading the weights in
// the direct kernel's packed layout:
//  - 3x3 stride-1 "same" fp32 convolutions over at least kWinogradF43MinTiles 4x4 output tiles: Winograd
//    F(4x4, 3x3) (winograd.h). It replaced oneDNN's Winograd kernel, which needs transformed weights cached
//    beside each weight (4x its size, transformed slowly) and full-size blocked copies of input and output:
//    measured 512x512 VAE decode 8.8-9.2 s with oneDNN's, 5.7-7.1 s with ours, at the same peak RSS.
//  - convolutions over at most kSmallConvMaxPixels output pixels with 16-bit weights (conv_small.h).
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include <dnnl.hpp>

#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/packed_weights.h"
#include "backend/cpu/plan_cache.h"
#include "backend/cpu/conv_small.h"
#include "backend/cpu/profile.h"
#include "backend/cpu/winograd.h"
#include "backend/context.h"
#include "backend/cpu/kernels.h"

namespace nb::cpu {

using ops::count_macs;
using ops::Pad2d;
using ops::Precision;
using ops::precision;

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// Our own Winograd kernel (winograd.h) from this many 4x4 output tiles: measured against the direct kernel on
// SD 1.5 UNet shapes (2 threads, AVX-512), 32 tiles (16x16 pixels, batch 2) run 1.4-1.7x faster, 128-256 tiles
// (32x32 / 64x64) 2.0-2.5x; at 16 tiles it only breaks even and at 4-8 tiles it is 1.5-3x slower.
constexpr int64_t kWinogradF43MinTiles = 32;
// Convolutions with at most this many output pixels whose weights are held in 16 bits take the
// weight-streaming kernel (conv_small.h).
constexpr int64_t kSmallConvMaxPixels = 128;
// Banded convolution (see conv2d): bands hold about Settings::conv_band_bytes of input + output activations,
// with at least kMinBandPixels output pixels each; convolutions over more than twice a band's pixels are banded.
constexpr int64_t kMinBandPixels = 8192;

struct ConvKey {
    int64_t n, c, h, w, o, kh, kw;
    int stride, pt, pl, pb, pr;
    bool bias;
    bool bf16;
    auto tie() const { return std::tie(n, c, h, w, o, kh, kw, stride, pt, pl, pb, pr, bias, bf16); }
    bool operator<(const ConvKey& k) const { return tie() < k.tie(); }
    int64_t out_h() const { return (h + pt + pb - kh) / stride + 1; }
    int64_t out_w() const { return (w + pl + pr - kw) / stride + 1; }
    bool same3x3() const { return kh == 3 && kw == 3 && stride == 1 && pt == 1 && pl == 1 && pb == 1 && pr == 1; }
    // Our Winograd kernel (winograd.h).
    bool winograd_f43() const {
        return !bf16 && same3x3() && cpu::WinogradF43::supports(c, o) &&
               cpu::WinogradF43::tiles(n, out_h(), out_w()) >= kWinogradF43MinTiles;
    }
};

struct ConvPlan {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
};

struct ConvPlans {  // per context (backend::Context::state)
    PlanCache<ConvKey, ConvPlan> cache{kPlanCacheCapacity};
};

std::shared_ptr<const ConvPlan> plan_for(const ConvKey& k) {
    return backend::current().state<ConvPlans>().cache.get(k, [&] {
        auto& eng = cpu::dnnl_engine();
        dnnl::memory::dims src{k.n, k.c, k.h, k.w}, wei{k.o, k.c, k.kh, k.kw}, bia{k.o};
        dnnl::memory::dims dst{k.n, k.o, k.out_h(), k.out_w()};
        const dt in = k.bf16 ? dt::bf16 : dt::f32;  // fp32 accumulation and output either way
        dnnl::memory::desc src_md(src, in, tag::any), wei_md(wei, in, tag::any), bia_md(bia, dt::f32, tag::a),
            dst_md(dst, dt::f32, tag::any);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // from the activation heap per call, not per plan
        dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                          src_md, wei_md, k.bias ? bia_md : dnnl::memory::desc(), dst_md,
                                          {k.stride, k.stride}, {k.pt, k.pl}, {k.pb, k.pr});
        dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
        return ConvPlan{pd, dnnl::convolution_forward(pd)};
    });
}

// A weight held in 16 bits (or q8_0) is expanded to fp32 for each call. A big one is split into output-channel
// groups of at most Settings::weight_group_bytes (fp32) that run as separate convolutions into the output's channel ranges,
// so the expansion scratch holds one group: in an SD 1.5 UNet 16 MB instead of the 118 MB of its largest
// weight (2560 -> 1280 channels, 3x3), at 8x8..16x16 pixels where rereading the input per group costs little.
// The packed copy is then [G, O/G, C, KH, KW]: each group in the layout its kernel wants, one after another.
int64_t group_count(const Tensor& w, const ConvKey& k) {
    constexpr int64_t kStep = 16;  // output channels per group: a multiple of the kernels' channel blocks
    const int64_t bytes = k.o * k.c * k.kh * k.kw * int64_t(sizeof(float)), cap = ops::weight_group_bytes();
    if (k.bf16 || bytes <= cap || k.o % kStep || !cpu::packed_weights_expand(w)) return 1;
    for (int64_t count = (bytes + cap - 1) / cap; count < k.o / kStep; ++count)
        if ((k.o / kStep) % count == 0) return count;
    return k.o / kStep;
}

// `count` copies of 4-D layout `part` one after another, as a 5-D [count, ...] layout (empty if `part` is not a
// plain blocked layout).
dnnl::memory::desc stack_groups(const dnnl::memory::desc& part, int64_t count) {
    dnnl_memory_desc_t d = part.data;
    if (d.ndims != 4 || d.format_kind != dnnl_blocked || d.offset0 != 0 || d.extra.flags != 0) return {};
    auto& blk = d.format_desc.blocking;
    for (int i = 4; i > 0; --i) {
        d.dims[i] = d.dims[i - 1];
        d.padded_dims[i] = d.padded_dims[i - 1];
        d.padded_offsets[i] = d.padded_offsets[i - 1];
        blk.strides[i] = blk.strides[i - 1];
    }
    d.ndims = 5;
    d.dims[0] = d.padded_dims[0] = count;
    d.padded_offsets[0] = 0;
    blk.strides[0] = dnnl_dim_t(part.get_size() / sizeof(float));
    for (int i = 0; i < blk.inner_nblks; ++i) ++blk.inner_idxs[i];
    return dnnl::memory::desc(d);
}

// The plan that runs weight w in convolution k, and how w's packed copy is laid out for it: whole, or in
// output-channel groups (group_count) stacked as [G, O/G, C, KH, KW], each group in its kernel's layout.
struct WeightPlan {
    std::shared_ptr<const ConvPlan> plan;  // runs the whole convolution, or one group (or only gives the layout)
    ConvKey key;           // the plan's key (o = output channels per group)
    int64_t groups = 1;
    dnnl::memory::desc user;    // w's fp32 oihw values, seen as [G, O/G, ...] when grouped (the same bytes)
    dnnl::memory::desc packed;  // the packed copy's layout
    dnnl::memory::desc part;    // one group's layout (= packed when whole)
    // Our Winograd kernel runs it, reading the weights in the direct plan's layout (so that a weight used at
    // several sizes, by either kernel, keeps one layout).
    bool f43 = false;
};

WeightPlan weight_plan(const Tensor& w, const ConvKey& k) {
    WeightPlan wp{plan_for(k), k, 1, dnnl::memory::desc({k.o, k.c, k.kh, k.kw}, dt::f32, tag::oihw), {}, {}};
    wp.packed = wp.part = wp.plan->pd.weights_desc();
    const int64_t groups = group_count(w, k);
    if (groups > 1) {
        ConvKey gk = k;
        gk.o = k.o / groups;
        auto gp = plan_for(gk);
        const auto part = gp->pd.weights_desc(), stacked = stack_groups(part, groups);
        if (!stacked.is_zero())
            wp = {gp, gk, groups, dnnl::memory::desc({groups, gk.o, k.c, k.kh, k.kw}, dt::f32, tag::goihw), stacked,
                  part};
    }
    wp.f43 = k.winograd_f43() && cpu::WeightLayout(wp.part).o_innermost();
    return wp;
}

// The layout a kernel wants hardly depends on the spatial size: plan for a nominal 2 x C x 32 x 32 input;
// other shapes re-lay out the packed copy if theirs differs.
WeightPlan load_plan(const Tensor& w, int stride, Pad2d pad) {
    ConvKey k{2,     w.dim(1), 32,    32,    w.dim(0), w.dim(2), w.dim(3),
              stride, pad.t,    pad.l, pad.b, pad.r,    true,     ops::bf16_for(ops::kConv)};
    return weight_plan(w, k);  // as conv2d will use it
}

}  // namespace

void prepack_conv(const Tensor& w, int stride, Pad2d pad) {
    if (!w.defined() || !w.has_values()) return;
    const WeightPlan wp = load_plan(w, stride, pad);
    cpu::pack_weights(w, wp.user, wp.packed);
}

bool prepack_conv_from(const Tensor& w, ops::WeightBits bits, int stride, Pad2d pad) {
    if (!w.defined() || w.ndim() != 4) return false;
    const WeightPlan wp = load_plan(w, stride, pad);
    return cpu::pack_weights_from16(w, bits, wp.user, wp.packed);
}

namespace {

// Strided view of channels [c0, c0 + c) x rows [r0, r0 + rows) of an NCHW tensor [n, ct, h, w] at `data`.
dnnl::memory view(float* data, int64_t n, int64_t ct, int64_t c0, int64_t c, int64_t h, int64_t w, int64_t r0,
                  int64_t rows) {
    dnnl::memory::desc d({n, c, rows, w}, dt::f32, dnnl::memory::dims{ct * h * w, h * w, w, 1});
    return dnnl::memory(d, cpu::dnnl_engine(), data + (c0 * h + r0) * w);
}

// Runs plan p (key k) on `src` (a view in the caller's layout) and writes rows [o0, o0 + dst's rows) of the
// plan's output into `dst` (also a view). Blocked copies live only for this call.
void run_plan(const ConvPlan& p, const ConvKey& k, dnnl::memory src, const dnnl::memory& wei, const float* bias,
              dnnl::memory dst, int64_t o0) {
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    Tensor src_buf, dst_buf;  // the kernel's blocked copies of input and output
    dnnl::memory src_in = src;
    if (p.pd.src_desc() != src.get_desc()) {
        src_in = cpu::tensor_memory(p.pd.src_desc(), src_buf);
        dnnl::reorder(src, src_in).execute(strm, src, src_in);
    }
    const bool whole = dst.get_desc().dims()[2] == k.out_h();
    dnnl::memory dst_out =
        whole && p.pd.dst_desc() == dst.get_desc() ? dst : cpu::tensor_memory(p.pd.dst_desc(), dst_buf);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src_in}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst_out}};
    if (bias) args[DNNL_ARG_BIAS] = dnnl::memory({{k.o}, dt::f32, tag::a}, eng, const_cast<float*>(bias));
    Tensor scratch;  // the kernel's scratchpad, also from the activation heap
    if (p.pd.scratchpad_desc().get_size() > 0)
        args[DNNL_ARG_SCRATCHPAD] = cpu::tensor_memory(p.pd.scratchpad_desc(), scratch);
    p.prim.execute(strm, args);
    strm.wait();
    src_in = dnnl::memory();  // freed before the output copy
    src_buf = Tensor();
    args.clear();
    if (dst_out != dst) {
        dnnl::memory from = dst_out;
        if (!whole) {
            const auto sub = p.pd.dst_desc().submemory_desc(dst.get_desc().dims(), {0, 0, o0, 0});
            from = dnnl::memory(sub, eng, dst_out.get_data_handle());
        }
        dnnl::reorder(from, dst).execute(strm, from, dst);
        strm.wait();
    }
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad) {
    cpu::ProfileScope prof_("conv2d");
    cpu::WeightScratchScope scratch_;
    if (w.dim(1) != x.dim(1))
        throw std::logic_error("conv2d: input channels " + std::to_string(x.dim(1)) + " != weight " + shape_str(w.shape()));
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3), kh = w.dim(2), kw = w.dim(3);
    const bool bf16 = ops::bf16_for(ops::kConv);
    ConvKey full{n, c, h, wd, w.dim(0), kh, kw, stride, pad.t, pad.l, pad.b, pad.r, b.defined(), bf16};
    const int64_t ho = full.out_h(), wo = full.out_w();
    count_macs(n * full.o * ho * wo * c * kh * kw);
    Tensor y = Tensor::empty({n, full.o, ho, wo});

    // Large "same" convolutions on the direct kernel run in bands of output rows: each band convolves its input
    // rows plus a halo of `pad` rows on either side, so the blocked copies of input and output exist for one
    // band at a time instead of the whole image (a 512x512 VAE decode's last 3x3 -> 3 channels). Every band has
    // the same input height (bands at the image edges take their halo from inside the image), so one plan and
    // one weight layout serve them all; the halo rows computed against the plan's zero padding are not copied
    // out.
    const int64_t halo = pad.t;
    const bool same = stride == 1 && kh == kw && kh % 2 == 1 && pad.t == kh / 2 && pad.b == pad.t &&
                      pad.l == kw / 2 && pad.r == pad.l;
    const int64_t band_pixels = std::max(kMinBandPixels, backend::current().settings.conv_band_bytes / (4 * (c + full.o)));
    const int64_t band_rows = std::max<int64_t>(8, band_pixels / (n * wd)) - 2 * halo;
    const bool banded = !full.winograd_f43() && same && n * h * wd > 2 * band_pixels && band_rows > 0 &&
                        h > band_rows + 2 * halo;
    const int64_t in_rows = banded ? band_rows + 2 * halo : h;
    ConvKey k = full;
    k.h = in_rows;

    auto& eng = cpu::dnnl_engine();
    const WeightPlan wp = weight_plan(w, k);

    const ConvKey& kk = wp.key;
    const size_t n_part = wp.part.get_size() / sizeof(float);
    if (wp.f43) {  // our Winograd kernel: the input transformed once, weights per output-channel group
        prof_.rename("conv2d_winograd");
        // Its transformed input takes bands of at most half the banded convolutions' budget: at 16 MB a 512x512
        // UNet's 960-channel convolution at 64x64 latents runs in 3 bands instead of holding 35 MB at the step's
        // activation peak. It makes no full-size copies, so it needs no banding of its own.
        cpu::WinogradF43 f43(x.data(), n, c, h, wd, backend::current().settings.conv_band_bytes / 2);
        const cpu::WeightLayout layout(wp.part);
        // The packed copy as held (16-bit bits are converted by the weight transform); q8_0 is expanded per group.
        const cpu::HeldWeights held = cpu::packed_weights_held(w, wp.user, wp.packed);
        const size_t held_size = held.type == DType::f32 ? sizeof(float) : sizeof(uint16_t);
        for (int64_t band = 0; band < f43.bands(); ++band) {
            f43.load_band(band);
            for (int64_t g = 0; g < wp.groups; ++g) {
                cpu::WeightScratchScope group_scratch;  // q8_0: expanded per band and group, gone before the next
                const float* bias = b.defined() ? b.data() + g * kk.o : nullptr;
                if (held.data) {
                    f43.run(static_cast<const char*>(held.data) + g * n_part * held_size, held.type, layout, kk.o,
                            bias, y.data(), full.o, g * kk.o);
                    continue;
                }
                const dnnl::memory wei =
                    wp.groups > 1 ? cpu::packed_weights_part(w, wp.user, wp.packed, size_t(g) * n_part, wp.part)
                                  : cpu::packed_weights(w, wp.user, wp.packed);
                f43.run(wei.get_data_handle(), DType::f32, layout, kk.o, bias, y.data(), full.o, g * kk.o);
            }
        }
        return y;
    }
    if (!bf16 && n * ho * wo <= kSmallConvMaxPixels && cpu::small_conv_available()) {
        const int64_t block = cpu::small_conv_block(wp.part);
        if (block && kk.o % block == 0) {
            const cpu::HeldWeights held = cpu::packed_weights_held(w, wp.user, wp.packed);
            if (held.data && held.type != DType::f32) {
                prof_.rename("conv2d_small");
                cpu::small_conv({n, c, h, wd, full.o, kh, kw, stride, pad.t, pad.l, ho, wo}, x.data(), held.data,
                                held.type, block, b.defined() ? b.data() : nullptr, y.data());
                return y;
            }
        }
    }
    float* xd = const_cast<float*>(x.data());
    // Output channels [o0, o0 + kk.o) with weights wei, in bands of rows when banded.
    auto run = [&](const dnnl::memory& wei, int64_t o0) {
        const float* bias = b.defined() ? b.data() + o0 : nullptr;
        if (!banded) {
            run_plan(*wp.plan, kk, view(xd, n, c, 0, c, h, wd, 0, h), wei, bias,
                     view(y.data(), n, full.o, o0, kk.o, ho, wo, 0, ho), 0);
            return;
        }
        for (int64_t r0 = 0; r0 < h; r0 += band_rows) {
            const int64_t r1 = std::min(h, r0 + band_rows);
            const int64_t s0 = std::clamp<int64_t>(r0 - halo, 0, h - in_rows);  // input rows [s0, s0 + in_rows)
            run_plan(*wp.plan, kk, view(xd, n, c, 0, c, h, wd, s0, in_rows), wei, bias,
                     view(y.data(), n, full.o, o0, kk.o, ho, wo, r0, r1 - r0), r0 - s0);
        }
    };
    if (wp.groups > 1) {
        for (int64_t g = 0; g < wp.groups; ++g)
            run(cpu::packed_weights_part(w, wp.user, wp.packed, size_t(g) * n_part, wp.part), g * kk.o);
        return y;
    }
    dnnl::memory wei_mem;
    if (!w.has_values() || wp.packed != wp.user) wei_mem = cpu::packed_weights(w, wp.user, wp.packed);
    else wei_mem = dnnl::memory(wp.user, eng, const_cast<float*>(w.data()));
    run(wei_mem, 0);
    return y;
}

}  // namespace nb::cpu
