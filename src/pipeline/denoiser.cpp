#include "pipeline/denoiser.h"

#include <algorithm>
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
               const std::vector<float>& sigmas, const Tensor& ctx, const Tensor& c_concat, TimestepMode mode,
               const Tensor& y, unet::DeepCacheSlot* cache, bool reuse_cache) {
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
    Tensor out = unet.forward(c_concat.defined() ? ops::concat_channels(x_in, c_concat) : x_in, t, ctx, y, cache,
                              reuse_cache);
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

const Cond& CondSchedule::at(int call) const {
    for (const auto& [end, ctx] : entries)
        if (call <= end) return ctx;
    return entries.back().second;
}

bool batch_cond_uncond_for(int64_t latent_pixels) { return latent_pixels < 64 * 64; }

sampling::Denoiser make_cfg_denoiser(const SDModel& m, std::vector<CondPart> cond, CondSchedule uncond,
                                     CFGOptions opt) {
    auto calls = std::make_shared<int>(0);
    auto slots = std::make_shared<std::vector<unet::DeepCacheSlot>>();  // DeepCache: one per UNet call of a model call
    return [&m, parts = std::move(cond), uncond = std::move(uncond), opt, calls, slots](const Tensor& x,
                                                                                       float sigma) -> Tensor {
        const int call = (*calls)++;
        const bool deepcache = opt.deepcache_interval > 1;
        const bool reuse = deepcache && call % opt.deepcache_interval != 0;
        size_t unet_calls = 0;
        auto run = [&](const Tensor& xs, const Tensor& ctx, const Tensor& y, int64_t n) {
            Tensor cc;
            if (opt.c_concat.defined()) cc = n == 1 ? opt.c_concat : stack0(std::vector<Tensor>(size_t(n), opt.c_concat));
            unet::DeepCacheSlot* slot = nullptr;
            if (deepcache) {
                if (slots->size() <= unet_calls) slots->push_back({opt.deepcache_branch, {}});
                slot = &(*slots)[unet_calls++];
            }
            return denoise(m.unet, m.schedule, m.prediction, xs, std::vector<float>(size_t(n), sigma), ctx, cc,
                           opt.timesteps, y, slot, reuse);
        };
        std::vector<const Cond*> conds;  // the parts' conditionings, then the uncond's
        for (const CondPart& p : parts) conds.push_back(&p.schedule.at(call));
        if (opt.cfg_scale == 1.f && parts.size() == 1 && parts[0].weight == 1.0)
            return run(x, conds[0]->context, conds[0]->vector, 1);
        conds.push_back(&uncond.at(call));
        const size_t n = conds.size();
        std::vector<Tensor> d(n);
        const bool same_length = std::all_of(conds.begin(), conds.end(), [&](const Cond* c) {
            return c->context.dim(1) == conds[0]->context.dim(1);
        });
        if (opt.batch_cond_uncond && same_length) {
            std::vector<Tensor> ctx, vec;
            for (const Cond* c : conds) {
                ctx.push_back(c->context);
                if (c->vector.defined()) vec.push_back(c->vector);
            }
            Tensor all = run(stack0(std::vector<Tensor>(n, x)), stack0(ctx), vec.empty() ? Tensor() : stack0(vec),
                             int64_t(n));
            for (size_t i = 0; i < n; ++i) d[i] = all.slice0(int64_t(i), int64_t(i) + 1);
        } else {
            for (size_t i = 0; i < n; ++i) d[i] = run(x, conds[i]->context, conds[i]->vector, 1);
        }
        const Tensor& d_u = d.back();
        Tensor out = d_u.clone();
        for (size_t k = 0; k < parts.size(); ++k) {
            const float s = float(parts[k].weight * double(opt.cfg_scale));  // torch: a Python float scalar
            for (int64_t i = 0; i < x.numel(); ++i) out.data()[i] += (d[k].data()[i] - d_u.data()[i]) * s;
        }
        return out;
    };
}

sampling::Denoiser make_cfg_denoiser(const SDModel& m, const CondSchedule& cond, const CondSchedule& uncond,
                                     CFGOptions opt) {
    return make_cfg_denoiser(m, std::vector<CondPart>{CondPart{cond, 1.0}}, uncond, std::move(opt));
}

}  // namespace nb::pipeline
