#include "pipeline/denoiser.h"

#include <cmath>
#include <cstring>
#include <memory>

namespace nb::pipeline {

namespace {

Tensor stack0(const std::vector<Tensor>& parts) {
    Shape s = parts[0].shape();
    s[0] = 0;
    for (const auto& p : parts) s[0] += p.dim(0);
    Tensor out = Tensor::empty(s);
    int64_t off = 0;
    for (const auto& p : parts) {
        std::memcpy(out.data() + off, p.data(), size_t(p.numel()) * sizeof(float));
        off += p.numel();
    }
    return out;
}

}  // namespace

Tensor denoise(const unet::UNet& unet, const sampling::DiscreteSchedule& schedule, Prediction pred, const Tensor& x,
               const std::vector<float>& sigmas, const Tensor& ctx, const Tensor& c_concat, TimestepMode mode) {
    const int64_t n = x.dim(0), per = x.numel() / n;
    Tensor x_in = Tensor::empty(x.shape());
    std::vector<float> t(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const float s = sigmas[size_t(i)];
        const float c_in = 1.f / std::sqrt(s * s + 1.f);
        for (int64_t j = 0; j < per; ++j) x_in.data()[i * per + j] = x.data()[i * per + j] * c_in;
        double ti = mode == TimestepMode::lcm ? schedule.lcm_sigma_to_t(s) : schedule.sigma_to_t(s);
        if (mode == TimestepMode::integer) ti = std::round(ti);
        t[size_t(i)] = float(ti);
    }
    Tensor out = unet.forward(c_concat.defined() ? ops::concat_channels(x_in, c_concat) : x_in, t, ctx);
    Tensor d = Tensor::empty(x.shape());
    for (int64_t i = 0; i < n; ++i) {
        const float s = sigmas[size_t(i)];
        const float* xo = x.data() + i * per;
        const float* mo = out.data() + i * per;
        float* dd = d.data() + i * per;
        if (pred == Prediction::eps) {
            for (int64_t j = 0; j < per; ++j) dd[j] = xo[j] + mo[j] * (-s);
        } else {
            const float c_skip = 1.f / (s * s + 1.f), c_out = -s / std::sqrt(s * s + 1.f);
            for (int64_t j = 0; j < per; ++j) dd[j] = mo[j] * c_out + xo[j] * c_skip;
        }
    }
    return d;
}

const Tensor& CondSchedule::at(int call) const {
    for (const auto& [end, ctx] : entries)
        if (call <= end) return ctx;
    return entries.back().second;
}

bool batch_cond_uncond_for(int64_t latent_pixels) { return latent_pixels < 64 * 64; }

sampling::Denoiser make_cfg_denoiser(const SDModel& m, const CondSchedule& cond, const CondSchedule& uncond,
                                     CFGOptions opt) {
    auto calls = std::make_shared<int>(0);
    return [&m, &cond, &uncond, opt, calls](const Tensor& x, float sigma) -> Tensor {
        const int call = (*calls)++;
        const Tensor& c = cond.at(call);
        auto run = [&](const Tensor& xs, const Tensor& ctx, int64_t n) {
            Tensor cc = opt.c_concat.defined() ? (n == 1 ? opt.c_concat : stack0({opt.c_concat, opt.c_concat}))
                                               : Tensor();
            return denoise(m.unet, m.schedule, m.prediction, xs, std::vector<float>(size_t(n), sigma), ctx, cc,
                           opt.timesteps);
        };
        if (opt.cfg_scale == 1.f) return run(x, c, 1);
        const Tensor& u = uncond.at(call);
        Tensor d_c, d_u;
        if (opt.batch_cond_uncond && c.dim(1) == u.dim(1)) {
            Tensor both = run(stack0({x, x}), stack0({c, u}), 2);
            d_c = both.slice0(0, 1);
            d_u = both.slice0(1, 2);
        } else {
            d_c = run(x, c, 1);
            d_u = run(x, u, 1);
        }
        Tensor out = Tensor::empty(x.shape());
        for (int64_t i = 0; i < x.numel(); ++i)
            out.data()[i] = d_u.data()[i] + (d_c.data()[i] - d_u.data()[i]) * opt.cfg_scale;
        return out;
    };
}

}  // namespace nb::pipeline
