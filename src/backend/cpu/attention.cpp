// Multi-head attention without materialising all heads' (Tq x Tk) score matrices: work is split into
// (batch, head, block of kBlockQ queries) tasks; each task holds one kBlockQ x Tk score block in
// thread-local scratch (at 512x512, Tk = 4096: 2 MB per thread), computed and consumed by two sgemm calls.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <dnnl.hpp>

#include "backend/cpu/vec_math.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/profile.h"
#include "backend/ops.h"

namespace nb::ops {

namespace {

constexpr int64_t kBlockQ = 128;

void softmax_rows(float* s, int64_t rows, int64_t cols, int64_t row0, bool causal) {
    for (int64_t r = 0; r < rows; ++r) {
        float* p = s + r * cols;
        const int64_t valid = causal ? std::min(cols, row0 + r + 1) : cols;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < valid; ++j) mx = std::max(mx, p[j]);
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < valid; ++j) {
            float e = cpu::fast_exp(p[j] - mx);
            p[j] = e;
            sum += e;
        }
        const float inv = 1.f / sum;
#pragma omp simd
        for (int64_t j = 0; j < valid; ++j) p[j] *= inv;
        for (int64_t j = valid; j < cols; ++j) p[j] = 0.f;
    }
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
    cpu::ProfileScope prof_("attention");
    const int64_t b = q.dim(0), tq = q.dim(1), tk = k.dim(1), dm = q.dim(2), dh = dm / heads;
    const float scale = 1.f / std::sqrt(float(dh));
    Tensor o = Tensor::empty(q.shape());
    const int64_t nqb = (tq + kBlockQ - 1) / kBlockQ;
    const int64_t tasks = b * heads * nqb;
    count_macs(2 * b * heads * tq * tk * dh);
    const float *qd = q.data(), *kd = k.data(), *vd = v.data();
    float* od = o.data();
#pragma omp parallel
    {
        std::vector<float> scores(size_t(std::min(kBlockQ, tq) * tk));
#pragma omp for schedule(dynamic)
        for (int64_t t = 0; t < tasks; ++t) {
            const int64_t bi = t / (heads * nqb), h = (t / nqb) % heads, qb = t % nqb;
            const int64_t r0 = qb * kBlockQ, rows = std::min(kBlockQ, tq - r0);
            const float* qp = qd + (bi * tq + r0) * dm + h * dh;
            const float* kp = kd + bi * tk * dm + h * dh;
            const float* vp = vd + bi * tk * dm + h * dh;
            // scores [rows, tk] = scale * Q_blk K^T
            dnnl_sgemm('N', 'T', rows, tk, dh, scale, qp, dm, kp, dm, 0.f, scores.data(), tk);
            softmax_rows(scores.data(), rows, tk, r0, causal);
            // O_blk [rows, dh] = P V
            dnnl_sgemm('N', 'N', rows, dh, tk, 1.f, scores.data(), tk, vp, dm, 0.f, od + (bi * tq + r0) * dm + h * dh,
                       dm);
        }
    }
    return o;
}

}  // namespace nb::ops
