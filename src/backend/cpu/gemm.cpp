// Linear layers. fp32: oneDNN sgemm (row-major, C = A B^T with B in torch's [out, in] layout), on the weight's
// packed copy in that same layout (held in 16 bits where exact, see packed_weights.h).
// bf16: a oneDNN matmul primitive per shape (cached) with weights reordered once into its preferred bf16
// layout (cached by weight buffer, like convolution weights); input converted on the fly, fp32 output.
#include <map>
#include <mutex>
#include <tuple>

#include <dnnl.hpp>

#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/packed_weights.h"
#include "backend/cpu/plan_cache.h"
#include "backend/cpu/profile.h"
#include "backend/context.h"
#include "backend/cpu/kernels.h"

namespace nb::cpu {

using ops::count_macs;
using ops::Precision;
using ops::precision;
using ops::weight_group_bytes;

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct MatmulPlan {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
};

struct MatmulPlans {  // per context (backend::Context::state)
    PlanCache<std::tuple<int64_t, int64_t, int64_t, bool>, MatmulPlan> cache{kPlanCacheCapacity};
};

std::shared_ptr<const MatmulPlan> plan_for(int64_t m, int64_t n, int64_t k, bool bias) {
    return backend::current().state<MatmulPlans>().cache.get(std::make_tuple(m, n, k, bias), [&] {
        auto& eng = cpu::dnnl_engine();
        dnnl::memory::desc src({m, k}, dt::bf16, tag::ab), wei({k, n}, dt::bf16, tag::any),
            bia({1, n}, dt::f32, tag::ab), dst({m, n}, dt::f32, tag::ab);
        dnnl::matmul::desc d = bias ? dnnl::matmul::desc(src, wei, bia, dst) : dnnl::matmul::desc(src, wei, dst);
        dnnl::matmul::primitive_desc pd(d, eng);
        return MatmulPlan{pd, dnnl::matmul(pd)};
    });
}

Tensor linear_bf16(const Tensor& x, const Tensor& w, const Tensor& b, int64_t m, int64_t n, int64_t k, Shape out) {
    auto& eng = cpu::dnnl_engine();
    auto& strm = cpu::dnnl_stream();
    const auto plan = plan_for(m, n, k, b.defined());
    const MatmulPlan& p = *plan;
    const auto want = p.pd.weights_desc();
    // torch [out, in] = matmul weights [K, N] stored column-major ("ba").
    dnnl::memory wmem = cpu::packed_weights(w, dnnl::memory::desc({k, n}, dt::f32, tag::ba), want);

    Tensor y = Tensor::empty(std::move(out));
    dnnl::memory xf({{m, k}, dt::f32, tag::ab}, eng, const_cast<float*>(x.data()));
    // The bf16 copy of the input from the activation heap: a buffer oneDNN allocated itself came from malloc,
    // i.e. fresh mmapped pages on every call (216k page faults per 4-step 512x512 image, measured).
    Tensor xb_buf;
    dnnl::memory xb = cpu::tensor_memory({{m, k}, dt::bf16, tag::ab}, xb_buf);
    dnnl::reorder(xf, xb).execute(strm, xf, xb);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, xb},
                                               {DNNL_ARG_WEIGHTS, wmem},
                                               {DNNL_ARG_DST, dnnl::memory(p.pd.dst_desc(), eng, y.data())}};
    if (b.defined()) args[DNNL_ARG_BIAS] = dnnl::memory({{1, n}, dt::f32, tag::ab}, eng, const_cast<float*>(b.data()));
    p.prim.execute(strm, args);
    strm.wait();
    return y;
}

}  // namespace

namespace {

// A weight's own layout and the one its kernel is packed in at load.
std::pair<dnnl::memory::desc, dnnl::memory::desc> load_layouts(const Tensor& w) {
    const dnnl::memory::desc plain({w.dim(1), w.dim(0)}, dt::f32, tag::ba);
    if (!ops::bf16_for(ops::kLinear)) return {plain, plain};
    // Plan for a nominal 1024-row input; other row counts re-lay out the packed copy if needed.
    const int64_t n = w.dim(0), k = w.dim(1);
    return {plain, plan_for(1024, n, k, false)->pd.weights_desc()};
}

}  // namespace

void prepack_linear(const Tensor& w) {
    if (!w.defined() || !w.has_values()) return;
    const auto [plain, want] = load_layouts(w);
    cpu::pack_weights(w, plain, want);
}

bool prepack_linear_from(const Tensor& w, ops::WeightBits bits) {
    if (!w.defined() || w.ndim() != 2) return false;
    const auto [plain, want] = load_layouts(w);
    return cpu::pack_weights_from16(w, bits, plain, want);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
    cpu::ProfileScope prof_("linear");
    cpu::WeightScratchScope scratch_;
    const int64_t k = x.dim(-1), n = w.dim(0), m = x.numel() / k;
    if (w.dim(1) != k)
        throw std::logic_error("linear: input width " + std::to_string(k) + " != weight " + shape_str(w.shape()));
    Shape out = x.shape();
    out.back() = n;
    count_macs(m * n * k);
    if (ops::bf16_for(ops::kLinear)) return linear_bf16(x, w, b, m, n, k, std::move(out));
    const dnnl::memory::desc plain({k, n}, dt::f32, tag::ba);
    Tensor y = Tensor::empty(out);
    float beta = 0.f;
    if (b.defined()) {
        float* yd = y.data();
        const float* bd = b.data();
#pragma omp parallel for if (m * n > 65536)
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) yd[i * n + j] = bd[j];
        beta = 1.f;
    }
    // W [N, K] is row-major: output columns [j0, j0 + nc) use the contiguous rows j0.. of W. A big weight held
    // in 16 bits runs in such groups (rows of whole q8_0 blocks), so that one group at a time is expanded
    // (see weight_group_bytes).
    int64_t nc = n;
    if (n * k * int64_t(sizeof(float)) > weight_group_bytes() && k % 32 == 0 && cpu::packed_weights_expand(w))
        nc = std::max<int64_t>(64, weight_group_bytes() / (k * int64_t(sizeof(float))) / 64 * 64);
    for (int64_t j0 = 0; j0 < n; j0 += nc) {
        const int64_t cols = std::min(nc, n - j0);
        const dnnl::memory wmem =
            cols == n ? cpu::packed_weights(w, plain, plain)
                      : cpu::packed_weights_part(w, plain, plain, size_t(j0 * k),
                                                 dnnl::memory::desc({k, cols}, dt::f32, tag::ba));
        const float* wd = static_cast<const float*>(wmem.get_data_handle());
        dnnl_sgemm('N', 'T', m, cols, k, 1.f, x.data(), k, wd, k, beta, y.data() + j0, n);
    }
    return y;
}

}  // namespace nb::cpu
