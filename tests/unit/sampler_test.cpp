// Every case of golden/sampler/sampler_cases.json (README section 6) on the toy denoiser
// D(x, sigma) = x / (1 + sigma^2), Philox seed 42 noise: finals / trajectories abs 2e-5, noises + their
// (sigma, sigma_next) arguments, DDIM tables and steps, cancellation.
#include <cmath>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sampling/registry.h"
#include "sampling/sampler.h"
#include "testutil/golden.h"

namespace nb::sampling {
namespace {

const char* kFile = "golden/sampler/sampler.safetensors";

Tensor toy_denoise(const Tensor& x, float sigma) {
    Tensor out = Tensor::empty(x.shape());
    const double k = 1.0 / (1.0 + double(sigma) * sigma);
    for (int64_t i = 0; i < x.numel(); ++i) out.data()[i] = float(x.data()[i] * k);
    return out;
}

// Records what the sampler asked for; draws come from one Philox(42) stream after the initial draw.
struct RecordingNoise final : NoiseSource {
    ImageNoise inner = ImageNoise::from_seeds(RngKind::philox, {42}, {4, 8, 8});
    std::vector<Tensor> draws;
    std::vector<float> args;  // sigma, sigma_next pairs
    Tensor sample(double s, double s_next) override {
        draws.push_back(inner.draw());
        args.push_back(float(s));
        args.push_back(float(s_next));
        return draws.back();
    }
};

Tensor stack(const std::vector<Tensor>& ts) {
    if (ts.empty()) return Tensor({0});
    Shape s = ts[0].shape();
    s[0] = int64_t(ts.size());
    Tensor out = Tensor::empty(s);
    for (size_t i = 0; i < ts.size(); ++i)
        std::copy(ts[i].data(), ts[i].data() + ts[i].numel(), out.data() + int64_t(i) * ts[i].numel());
    return out;
}

const std::map<std::string, SamplerFn>& golden_samplers() {
    static const std::map<std::string, SamplerFn> m = {
        {"euler", sample_euler},         {"euler_a", sample_euler_ancestral}, {"heun", sample_heun},
        {"dpm_2", sample_dpm_2},         {"dpm_2_a", sample_dpm_2_ancestral}, {"dpmpp_2m", sample_dpmpp_2m},
        {"dpmpp_2m_sde", sample_dpmpp_2m_sde}, {"dpmpp_sde", sample_dpmpp_sde}, {"lcm", sample_lcm},
        {"dpmpp_2s_a", sample_dpmpp_2s_ancestral}, {"lms", sample_lms}, {"dpmpp_3m_sde", sample_dpmpp_3m_sde}};
    return m;
}

// The golden keys name the model's own sigmas "normal" (k-diffusion's word; the CLI calls them "discrete").
Scheduler golden_scheduler(const std::string& name) {
    return name == "normal" ? Scheduler::normal : parse_scheduler(name).value();
}

std::vector<float> case_sigmas(const std::string& schedule, int n) {
    static const DiscreteSchedule sd = DiscreteSchedule::sd_default();
    const std::string discard = "_a1111discard";
    if (schedule.ends_with(discard))
        return get_sigmas_discard_penultimate(sd, golden_scheduler(schedule.substr(0, schedule.size() - discard.size())), n);
    return get_sigmas(sd, golden_scheduler(schedule), n);
}

void run_case(const nlohmann::json& c) {
    const std::string key = c["key"];
    SCOPED_TRACE(key);
    const auto p1 = key.find('.'), p2 = key.rfind('.');
    const std::string name = key.substr(0, p1), schedule = key.substr(p1 + 1, p2 - p1 - 1);
    const int n = std::stoi(key.substr(p2 + 1));
    const SamplerFn fn = golden_samplers().at(name);
    const std::vector<float> sigmas = case_sigmas(schedule, n);

    RecordingNoise noise;
    Tensor init = noise.inner.draw();
    ASSERT_TRUE(test::close_abs(init, test::golden_tensor(kFile, "initial_noise"), 1e-6));
    Tensor x = Tensor::empty(init.shape());
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = init.data()[i] * sigmas[0];
    std::vector<Tensor> traj_x, traj_d;
    auto cb = [&](int step, int total, const Tensor& xs, const Tensor& d) {
        EXPECT_EQ(step, int(traj_x.size()));
        EXPECT_EQ(total, n);
        traj_x.push_back(xs.clone());
        traj_d.push_back(d.clone());
        return true;
    };
    auto out = fn(toy_denoise, x, sigmas, noise, cb);
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_TRUE(test::close_abs(*out, test::golden_tensor(kFile, key + ".final"), 2e-5));
    EXPECT_EQ(int(noise.draws.size()), c["noise_draws"].get<int>());
    EXPECT_EQ(int(traj_x.size()), c.value("model_calls", n));
    if (!noise.draws.empty()) {
        EXPECT_TRUE(test::close_abs(stack(noise.draws), test::golden_tensor(kFile, key + ".noises"), 1e-6));
    }
    if (test::golden(kFile).find(key + ".noise_args")) {
        Tensor args = Tensor::from({int64_t(noise.args.size() / 2), 2}, noise.args);
        EXPECT_TRUE(test::close_rel(args, test::golden_tensor(kFile, key + ".noise_args"), 1e-6));
    }
    if (test::golden(kFile).find(key + ".traj_x")) {
        EXPECT_TRUE(test::close_abs(stack(traj_x), test::golden_tensor(kFile, key + ".traj_x"), 2e-5));
        EXPECT_TRUE(test::close_abs(stack(traj_d), test::golden_tensor(kFile, key + ".traj_denoised"), 2e-5));
    }
}

nlohmann::json load_cases() {
    std::ifstream f(test::shared_path("golden/sampler/sampler_cases.json"));
    return nlohmann::json::parse(f);
}

TEST(Sampler, EveryKDiffusionCase) {
    int ran = 0;
    const nlohmann::json cases = load_cases();  // named: GCC 12 does not extend temporaries in range-for
    for (const auto& c : cases["cases"]) {
        if (std::string(c["key"]).starts_with("ddim.")) continue;
        run_case(c);
        ++ran;
    }
    EXPECT_EQ(ran, 114);
}

TEST(Sampler, Ddim) {
    const DiscreteSchedule sd = DiscreteSchedule::sd_default();
    int ran = 0;
    const nlohmann::json cases = load_cases();  // named: GCC 12 does not extend temporaries in range-for
    for (const auto& c : cases["cases"]) {
        const std::string key = c["key"];
        if (!key.starts_with("ddim.")) continue;
        SCOPED_TRACE(key);
        const double eta = key.starts_with("ddim.eta1") ? 1.0 : 0.0;
        const int steps = std::stoi(key.substr(key.rfind('.') + 1));
        DdimPlan plan = make_ddim_plan(sd, steps, eta);
        std::vector<float> ts(plan.timesteps.begin(), plan.timesteps.end());
        EXPECT_TRUE(test::close_abs(Tensor::from({int64_t(ts.size())}, ts), test::golden_tensor(kFile, key + ".timesteps"), 0));
        auto vec = [](const std::vector<float>& v) { return Tensor::from({int64_t(v.size())}, v); };
        EXPECT_TRUE(test::close_rel(vec(plan.alphas), test::golden_tensor(kFile, key + ".alphas"), 1e-6));
        EXPECT_TRUE(test::close_rel(vec(plan.alphas_prev), test::golden_tensor(kFile, key + ".alphas_prev"), 1e-6));
        EXPECT_TRUE(test::close_rel(vec(plan.sigmas), test::golden_tensor(kFile, key + ".sigmas"), 1e-6, 1e-12));

        RecordingNoise noise;
        Tensor x_T = noise.inner.draw();  // VP space, not scaled
        std::vector<Tensor> x_inter, pred;
        auto cb = [&](int, int, const Tensor& x, const Tensor& p) {
            x_inter.push_back(x.clone());
            pred.push_back(p.clone());
            return true;
        };
        auto out = sample_ddim(toy_denoise, x_T, plan, noise, cb);
        ASSERT_TRUE(out) << out.error().message;
        EXPECT_TRUE(test::close_abs(*out, test::golden_tensor(kFile, key + ".final"), 2e-5));
        EXPECT_TRUE(test::close_abs(stack(x_inter), test::golden_tensor(kFile, key + ".x_inter"), 2e-5));
        EXPECT_TRUE(test::close_abs(stack(pred), test::golden_tensor(kFile, key + ".pred_x0"), 2e-5));
        EXPECT_EQ(int(noise.draws.size()), c["noise_draws"].get<int>());
        if (eta > 0) {
            EXPECT_TRUE(test::close_abs(stack(noise.draws), test::golden_tensor(kFile, key + ".noises"), 1e-6));
        }
        ++ran;
    }
    EXPECT_EQ(ran, 3);
}

TEST(Sampler, ToyDdimEpsEqualsVpModel) {
    // eps from the k-space toy denoiser equals the VP toy model sqrt(1 - ac[t]) x_t at sigma = sigmas_table[t].
    const DiscreteSchedule sd = DiscreteSchedule::sd_default();
    for (int t : {1, 301, 901}) {
        const double sigma = sd.sigmas()[size_t(t)], x_vp = 0.75;
        const double x_k = x_vp * std::sqrt(1 + sigma * sigma);
        const double eps = (x_k - x_k / (1 + sigma * sigma)) / sigma;
        EXPECT_NEAR(eps, std::sqrt(1.0 - sd.alphas_cumprod()[size_t(t)]) * x_vp, 1e-6) << t;
    }
}

TEST(Sampler, LmsCoefficientsAreExactIntegrals) {
    // Order 1: the single basis polynomial is 1, so the integral is the step length.
    const std::vector<float> s = {10.0f, 5.0f, 2.0f, 1.0f, 0.5f, 0.0f};
    EXPECT_NEAR(linear_multistep_coeff(1, s, 0, 0), -5.0, 1e-12);
    // The basis sums to 1: coefficients add up to the step length for any order.
    for (int order = 2; order <= 4; ++order) {
        const int i = 4;
        double sum = 0;
        for (int j = 0; j < order; ++j) sum += linear_multistep_coeff(order, s, i, j);
        EXPECT_NEAR(sum, s[i + 1] - s[i], 1e-12) << order;
    }
}

TEST(Sampler, CallbackFalseCancels) {
    const std::vector<float> sigmas = get_sigmas(DiscreteSchedule::sd_default(), Scheduler::karras, 6);
    for (auto& [name, fn] : golden_samplers()) {
        SCOPED_TRACE(name);
        ImageNoise noise = ImageNoise::from_seeds(RngKind::philox, {1}, {4, 8, 8});
        Tensor x = noise.draw();
        int calls = 0;
        auto cb = [&](int step, int, const Tensor&, const Tensor&) { ++calls; return step < 2; };
        auto out = fn(toy_denoise, x, sigmas, noise, cb);
        ASSERT_FALSE(out);
        EXPECT_EQ(out.error().code, Errc::cancelled);
        EXPECT_EQ(calls, 3);
    }
    ImageNoise noise = ImageNoise::from_seeds(RngKind::philox, {1}, {4, 8, 8});
    auto out = sample_ddim(toy_denoise, noise.draw(), make_ddim_plan(DiscreteSchedule::sd_default(), 5, 0.0), noise,
                           [](int, int, const Tensor&, const Tensor&) { return false; });
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, Errc::cancelled);
}

// TCD (ComfyUI's SamplerTCD semantics) on the toy denoiser, checked against what its math reduces to:
//  - gamma 0 moves x0 and eps to the next timestep itself, i.e. Euler's step x0 + sigma_next eps, as long as the
//    sigmas lie on the table's timesteps (here diffusers' TCD grid 999, 759, 499, 259); only its last step differs,
//    ending at timestep 0
//    (sqrt(ac[0]) x0 + sqrt(1 - ac[0]) eps) instead of at x0;
//  - gamma > 0 draws one noise a step but the last, with the (sigma, sigma_next) arguments of the step, and the
//    renoised x has the variance of sigma_next (x0 part + eps part at s' + fresh noise);
//  - the intermediate timesteps are floor((1 - gamma) t), the last 0.
TEST(Sampler, TcdReducesToEulerAtGammaZeroAndRenoisesToSigmaNext) {
    const DiscreteSchedule sd = DiscreteSchedule::sd_default();
    const std::vector<float> sigmas = {sd.sigmas()[999], sd.sigmas()[759], sd.sigmas()[499], sd.sigmas()[259], 0.f};
    const std::vector<float> a0 = tcd_alpha_prod_s(sd, sigmas, 0.0);
    ASSERT_EQ(a0.size(), sigmas.size());
    for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
        const int t = int(std::lround(sd.sigma_to_t(sigmas[i])));
        EXPECT_EQ(a0[i], sd.alphas_cumprod()[size_t(t)]) << i;  // on the grid: its own timestep, not one below
    }
    EXPECT_EQ(a0.back(), sd.alphas_cumprod()[0]);
    const std::vector<float> a3 = tcd_alpha_prod_s(sd, sigmas, 0.3);
    EXPECT_EQ(a3[1], sd.alphas_cumprod()[size_t(std::floor(0.7 * std::lround(sd.sigma_to_t(sigmas[1]))))]);

    ImageNoise init = ImageNoise::from_seeds(RngKind::philox, {42}, {4, 8, 8});
    const Tensor x0 = init.draw();
    std::vector<Tensor> euler_x, tcd_x;
    auto record = [](std::vector<Tensor>& into) {
        return [&into](int, int, const Tensor& x, const Tensor&) { into.push_back(x.clone()); return true; };
    };
    RecordingNoise n1, n2;
    auto e = sample_euler(toy_denoise, x0.clone(), sigmas, n1, record(euler_x));
    auto t = sample_tcd(toy_denoise, x0.clone(), sigmas, a0, 0.0, n2, record(tcd_x));
    ASSERT_TRUE(e && t);
    EXPECT_TRUE(n2.draws.empty()) << "gamma 0 adds no noise";
    ASSERT_EQ(euler_x.size(), tcd_x.size());
    for (size_t i = 0; i < euler_x.size(); ++i) EXPECT_TRUE(test::close_rel(tcd_x[i], euler_x[i], 1e-5)) << "step " << i;
    // The last step: Euler returns x0 = D(x, sigma); TCD that x0 moved to timestep 0.
    const Tensor& xl = tcd_x.back();
    const float sl = sigmas[sigmas.size() - 2];
    const Tensor d = toy_denoise(xl, sl);
    Tensor want = Tensor::empty(d.shape());
    const double ac0 = sd.alphas_cumprod()[0];
    for (int64_t i = 0; i < d.numel(); ++i)
        want.data()[i] = float(std::sqrt(ac0) * d.data()[i] + std::sqrt(1 - ac0) * (xl.data()[i] - d.data()[i]) / sl);
    EXPECT_TRUE(test::close_rel(*t, want, 1e-5));

    RecordingNoise n3;
    std::vector<Tensor> xs;
    auto g = sample_tcd(toy_denoise, x0.clone(), sigmas, a3, 0.3, n3, record(xs));
    ASSERT_TRUE(g);
    ASSERT_EQ(n3.draws.size(), sigmas.size() - 2);
    for (size_t i = 0; i + 2 < sigmas.size(); ++i) {
        EXPECT_EQ(n3.args[2 * i], sigmas[i]);
        EXPECT_EQ(n3.args[2 * i + 1], sigmas[i + 1]);
        // x_{i+1} = x0 + sigma_s' eps + sqrt(sigma_next^2 - sigma_s'^2) z: rebuild it from the step's values.
        const Tensor dd = toy_denoise(xs[i], sigmas[i]);
        const double a = a3[i + 1], ss = std::sqrt((1 - a) / a), up = std::sqrt(double(sigmas[i + 1]) * sigmas[i + 1] - ss * ss);
        Tensor rebuilt = Tensor::empty(dd.shape());
        for (int64_t k = 0; k < dd.numel(); ++k)
            rebuilt.data()[k] = float(dd.data()[k] + ss * (xs[i].data()[k] - dd.data()[k]) / sigmas[i] + up * n3.draws[i].data()[k]);
        EXPECT_TRUE(test::close_rel(xs[i + 1], rebuilt, 1e-5)) << "step " << i;
    }
}

TEST(SamplerRegistry, NamesLabelsAndAliases) {
    const std::pair<const char*, SamplerKind> cases[] = {
        {"euler", SamplerKind::euler},           {"euler_a", SamplerKind::euler_a},
        {"Euler a", SamplerKind::euler_a},       {"heun", SamplerKind::heun},
        {"dpm2", SamplerKind::dpm2},             {"dpm2_a", SamplerKind::dpm2_a},
        {"DPM2 a", SamplerKind::dpm2_a},         {"dpm++2s_a", SamplerKind::dpmpp_2s_a},
        {"dpm++2m", SamplerKind::dpmpp_2m},      {"DPM++ 2M", SamplerKind::dpmpp_2m},
        {"dpm++2m_sde", SamplerKind::dpmpp_2m_sde}, {"DPM++ 2M SDE", SamplerKind::dpmpp_2m_sde},
        {"dpm++_sde", SamplerKind::dpmpp_sde},   {"DPM++ SDE", SamplerKind::dpmpp_sde},
        {"dpm++3m_sde", SamplerKind::dpmpp_3m_sde}, {"lms", SamplerKind::lms},
        {"LCM", SamplerKind::lcm},               {"ddim", SamplerKind::ddim},
        {"k_dpmpp_2m", SamplerKind::dpmpp_2m},   {"euler_ancestral", SamplerKind::euler_a},
        {"dpmpp_2s_ancestral", SamplerKind::dpmpp_2s_a}};
    for (auto [name, kind] : cases) {
        auto c = find_sampler(name);
        ASSERT_TRUE(c) << name << ": " << c.error().message;
        EXPECT_EQ(c->sampler->kind, kind) << name;
        EXPECT_FALSE(c->scheduler) << name;
    }
    auto legacy = find_sampler("DPM++ 2M Karras");
    ASSERT_TRUE(legacy);
    EXPECT_EQ(legacy->sampler->kind, SamplerKind::dpmpp_2m);
    EXPECT_EQ(resolve_scheduler(*legacy), Scheduler::karras);
    EXPECT_EQ(resolve_scheduler(*legacy, Scheduler::exponential), Scheduler::exponential);
    EXPECT_EQ(find_sampler("dpm++ 3m sde exponential")->scheduler, Scheduler::exponential);
    auto bad = find_sampler("plms");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::invalid_argument);
    EXPECT_NE(bad.error().message.find("dpm++2m_sde"), std::string::npos);
    EXPECT_FALSE(find_sampler("karras"));
}

TEST(SamplerRegistry, AutomaticDefaultsAndMetadata) {
    auto sched = [](const char* name) { return resolve_scheduler(find_sampler(name).value()); };
    EXPECT_EQ(sched("euler_a"), Scheduler::normal);
    EXPECT_EQ(sched("dpm++2m"), Scheduler::karras);
    EXPECT_EQ(sched("dpm++_sde"), Scheduler::karras);
    EXPECT_EQ(sched("dpm++2m_sde"), Scheduler::exponential);
    EXPECT_EQ(sched("dpm2"), Scheduler::karras);
    EXPECT_EQ(sched("lcm"), Scheduler::lcm);
    MetadataLabels m = metadata_labels(*find_sampler("dpm++2m")->sampler, Scheduler::karras);
    EXPECT_EQ(m.sampler, "DPM++ 2M");
    EXPECT_EQ(m.schedule_type, "Karras");
    for (const auto& info : all_samplers()) EXPECT_EQ(find_sampler(info.label)->sampler, &info) << info.label;
}

TEST(SamplerRegistry, Dpm2DiscardsPenultimateSigma) {
    const DiscreteSchedule sd = DiscreteSchedule::sd_default();
    const SamplerInfo& dpm2 = *find_sampler("dpm2")->sampler;
    std::vector<float> s = sampler_sigmas(dpm2, sd, Scheduler::karras, 10);
    EXPECT_TRUE(test::close_rel(Tensor::from({11}, s), test::golden_tensor(kFile, "sigmas.karras_a1111discard.10"), 1e-6));
    std::vector<float> plain = sampler_sigmas(*find_sampler("dpm++2m")->sampler, sd, Scheduler::karras, 10);
    EXPECT_TRUE(test::close_rel(Tensor::from({11}, plain), test::golden_tensor(kFile, "sigmas.karras.10"), 1e-6));
}

}  // namespace
}  // namespace nb::sampling
