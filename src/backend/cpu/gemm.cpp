// Linear layers through oneDNN's sgemm (row-major, C = A B^T with B in torch's [out, in] layout).
#include <dnnl.hpp>

#include "backend/cpu/dnnl_context.h"
#include "backend/ops.h"

namespace nb::ops {

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
    const int64_t k = x.dim(-1), n = w.dim(0), m = x.numel() / k;
    if (w.dim(1) != k)
        throw std::logic_error("linear: input width " + std::to_string(k) + " != weight " + shape_str(w.shape()));
    Shape out = x.shape();
    out.back() = n;
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
    count_macs(m * n * k);
    dnnl_sgemm('N', 'T', m, n, k, 1.f, x.data(), k, w.data(), k, beta, y.data(), n);
    return y;
}

}  // namespace nb::ops
