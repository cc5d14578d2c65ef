// `nanobanana bench --scenario` (issue 21): a whole image timed per phase, on the demo model (what it measures is
// checked here, not how fast it is: speed is reported by running bench, never asserted by a test).
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/cli.h"
#include "testutil/demo.h"

namespace nb {
namespace {

using nlohmann::json;

// Runs bench --json with a private cache folder (the random TAESD is written there); the parsed report.
json bench(const std::string& args, const std::string& cache) {
    const auto r = test::run_cli("bench -m " + test::demo_model_path() + " -W 64 -H 64 --json " + args,
                                 "env XDG_CACHE_HOME=" + cache);
    EXPECT_EQ(r.code, 0) << r.err;
    if (r.code != 0) return json::object();
    return json::parse(r.out);
}

double part(const json& report, const std::string& name) {
    for (const auto& p : report["parts"])
        if (p["name"].get<std::string>().find(name) != std::string::npos) return p["median_s"].get<double>();
    ADD_FAILURE() << "no part named " << name << " in " << report.dump();
    return -1;
}

TEST(Bench, ScenarioTimesAWholeImageAndItsPhases) {
    const std::string cache = ::testing::TempDir() + "bench_cache_" + std::to_string(getpid());
    const json r = bench("--scenario lcm4-taesd --steps 2", cache);
    ASSERT_TRUE(r.contains("parts"));
    EXPECT_EQ(r["scenario"], "lcm4-taesd");
    EXPECT_FALSE(r["cpu"].get<std::string>().empty());
    // Without --taesd a random-weight decoder of TAESD's architecture is written once to the cache folder.
    EXPECT_TRUE(std::filesystem::exists(cache + "/nanobanana/random-taesd-decoder-fp16.safetensors"));
    const double whole = part(r, "whole image"), encode = part(r, "text encode"), sample = part(r, "sampling (4 steps"),
                 decode = part(r, "decode (TAESD)"), png = part(r, "PNG encode");
    for (double t : {whole, encode, sample, decode, png}) EXPECT_GT(t, 0.0);
    EXPECT_LE(encode + sample + decode + png, whole * 1.001);
    EXPECT_GE(encode + sample + decode + png, whole * 0.9) << "the phases account for the image's time";

    const json d = bench("--scenario dpm20 --steps 1 --cache-mode deepcache", cache);
    ASSERT_TRUE(d.contains("parts"));
    EXPECT_GT(part(d, "sampling (20 steps, CFG 7)"), 0.0);
    EXPECT_GT(part(d, "decode (VAE)"), 0.0);
    std::filesystem::remove_all(cache);
}

// The CLI restarts itself once with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES (main.cpp), keeping the other
// tunables and a hugetlb value the user chose; bench reports what the process ran with.
TEST(Bench, ReportsTheGlibcTunablesTheCliStartedWith) {
    auto tunables = [](const std::string& env) {
        const auto r = test::run_cli("bench -m " + test::demo_model_path() + " -W 32 -H 32 --steps 1 --json", env);
        EXPECT_EQ(r.code, 0) << r.err;
        return r.code == 0 ? json::parse(r.out).value("glibc_tunables", "(none)") : "";
    };
    EXPECT_EQ(tunables("env -u GLIBC_TUNABLES -u NB_NO_REEXEC"), "glibc.malloc.hugetlb=1");
    EXPECT_EQ(tunables("env -u NB_NO_REEXEC GLIBC_TUNABLES=glibc.malloc.arena_max=2"),
              "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
    EXPECT_EQ(tunables("env -u NB_NO_REEXEC GLIBC_TUNABLES=glibc.malloc.hugetlb=0"), "glibc.malloc.hugetlb=0");
}

TEST(Bench, UnknownScenarioIsRefusedNamingTheChoices) {
    const auto r = test::run_cli("bench -m " + test::demo_model_path() + " --scenario fastest");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("bench --scenario must be one of lcm4-taesd, lcm4, dpm20 (got 'fastest')"), std::string::npos)
        << r.err;
}

}  // namespace
}  // namespace nb
