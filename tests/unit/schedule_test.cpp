// SD1 discrete schedule and sigma lists against golden/sampler (README section 6): rel 1e-6.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "sampling/schedule.h"
#include "testutil/golden.h"

namespace nb::sampling {
namespace {

const char* kFile = "golden/sampler/sampler.safetensors";

Tensor as_tensor(const std::vector<float>& v) { return Tensor::from({int64_t(v.size())}, v); }

TEST(Schedule, TablesMatchLdm) {
    DiscreteSchedule s = DiscreteSchedule::sd_default();
    ASSERT_EQ(s.n_timesteps(), 1000);
    EXPECT_TRUE(test::close_rel(as_tensor(s.alphas_cumprod()), test::golden_tensor(kFile, "alphas_cumprod"), 1e-6));
    EXPECT_TRUE(test::close_rel(as_tensor(s.sigmas()), test::golden_tensor(kFile, "sigmas_table"), 1e-6));
    EXPECT_TRUE(test::close_rel(as_tensor(s.log_sigmas()), test::golden_tensor(kFile, "log_sigmas_table"), 1e-6));
    EXPECT_TRUE(test::close_rel(as_tensor(s.lcm_sigmas()), test::golden_tensor(kFile, "lcm_sigmas_table"), 1e-6));
    EXPECT_NEAR(s.sigma_min(), 0.0291675, 1e-6);
    EXPECT_NEAR(s.sigma_max(), 14.614642, 1e-5);
}

TEST(Schedule, EverySigmaListMatches) {
    DiscreteSchedule s = DiscreteSchedule::sd_default();
    const std::pair<const char*, Scheduler> kinds[] = {
        {"normal", Scheduler::normal}, {"karras", Scheduler::karras},
        {"exponential", Scheduler::exponential}, {"lcm", Scheduler::lcm}};
    int checked = 0;
    for (auto [name, kind] : kinds) {
        for (int n : {4, 8, 10, 20}) {
            std::string key = std::string("sigmas.") + name + "." + std::to_string(n);
            if (!test::golden(kFile).find(key)) continue;
            EXPECT_TRUE(test::close_rel(as_tensor(get_sigmas(s, kind, n)), test::golden_tensor(kFile, key), 1e-6)) << key;
            ++checked;
        }
    }
    EXPECT_EQ(checked, 13);
    for (auto [name, kind] : {std::pair{"normal", Scheduler::normal}, std::pair{"karras", Scheduler::karras}}) {
        std::string key = std::string("sigmas.") + name + "_a1111discard.10";
        EXPECT_TRUE(test::close_rel(as_tensor(get_sigmas_discard_penultimate(s, kind, 10)),
                                    test::golden_tensor(kFile, key), 1e-6)) << key;
    }
}

TEST(Schedule, SigmaToTInvertsTable) {
    DiscreteSchedule s = DiscreteSchedule::sd_default();
    for (int t : {0, 1, 101, 500, 998, 999}) EXPECT_NEAR(s.sigma_to_t(s.sigmas()[t]), t, 1e-3) << t;
    for (double t : {0.25, 17.5, 640.75}) EXPECT_NEAR(s.sigma_to_t(s.t_to_sigma(t)), t, 1e-3) << t;
    EXPECT_EQ(s.sigma_to_t(1e-4), 0.0);    // below the table: clamped
    EXPECT_EQ(s.sigma_to_t(100.0), 999.0);  // above the table: clamped
    EXPECT_EQ(s.lcm_sigma_to_t(s.sigmas()[999]), 999.0);
    EXPECT_EQ(s.lcm_sigma_to_t(s.sigmas()[19]), 19.0);
}

TEST(Schedule, SgmUniformIsUniformInTimestep) {
    DiscreteSchedule s = DiscreteSchedule::sd_default();
    const int n = 8;
    std::vector<float> sig = get_sigmas(s, Scheduler::sgm_uniform, n);
    ASSERT_EQ(sig.size(), size_t(n + 1));
    EXPECT_EQ(sig.back(), 0.0f);
    EXPECT_NEAR(sig[0], s.sigma_max(), 1e-5);
    // Timesteps linspace(999, 0, n + 1) without the last point: 999 - i * 999 / n.
    for (int i = 0; i < n; ++i) EXPECT_NEAR(s.sigma_to_t(sig[size_t(i)]), 999.0 - i * 999.0 / n, 2e-3) << i;
    // Differs from "normal", whose n points include t = 0.
    EXPECT_GT(sig[n - 1], get_sigmas(s, Scheduler::normal, n)[n - 1]);
}

TEST(Schedule, Names) {
    EXPECT_EQ(parse_scheduler("Karras").value(), Scheduler::karras);
    EXPECT_EQ(parse_scheduler("discrete").value(), Scheduler::normal);
    EXPECT_EQ(parse_scheduler("SGM Uniform").value(), Scheduler::sgm_uniform);
    auto bad = parse_scheduler("cosine");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("karras"), std::string::npos);
    EXPECT_STREQ(scheduler_label(Scheduler::karras), "Karras");
}

}  // namespace
}  // namespace nb::sampling
