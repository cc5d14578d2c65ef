// What a new user meets first (issue 15): the CLI with the built-in demo model (no -m, no ../shared needed).
//  * bad flags are refused before the model loads, in one line, with no output file;
//  * one size flag keeps the other side's default; explicit flags override --params-from; a LoRA given as a
//    file survives the infotext round trip;
//  * Ctrl-C during a batch keeps the images already finished;
//  * OpenMP threads wait passively (no spinning against other processes);
//  * tokenize finds the demo vocabulary; bench --json keeps the profile.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "image/image.h"
#include "testutil/cli.h"

namespace nb {
namespace {

namespace fs = std::filesystem;
using test::run_cli;

fs::path temp_dir(const std::string& name) {
    const fs::path d = fs::path(::testing::TempDir()) / (name + "_" + std::to_string(getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string demo_lora() {
    return (fs::path(__FILE__).parent_path() / "../../models/demo/lora/demo_monochrome.safetensors")
        .lexically_normal()
        .string();
}

std::string parameters_of(const std::string& png) {
    auto t = read_png_text(png);
    return t && t->count("parameters") ? t->at("parameters") : std::string();
}

TEST(CliFirstRun, BadFlagsAreRefusedBeforeTheModelLoads) {
    const fs::path dir = temp_dir("nb_early");
    const std::string out = (dir / "out.png").string();
    struct Case {
        std::string args, needle;
    };
    const Case cases[] = {
        {"--sampling-method nope -o " + out, "nope"},
        {"--scheduler normal -o " + out, "scheduler 'normal'"},  // not a documented name (A1111's Normal differs)
        {"--rng gpu2 -o " + out, "gpu2"},
        {"--precision fp8 -o " + out, "fp8"},
        {"--type q4 -o " + out, "q4"},
        {"-b 0 -o " + out, "batch count"},
        {"--cfg-scale -5 -o " + out, "cfg scale"},
        {"--clip-skip 50 -o " + out, "clip skip"},
        {"-W 47 -o " + out, "width must be a positive multiple of 8 up to 8192 (got 47)"},
        {"-o " + (dir / "no_such_dir/out.png").string(), "no_such_dir"},
        {"-o " + (dir / "out.jpg").string(), "only PNG"},
        {"--lora " + (dir / "missing.safetensors").string() + ":0.8 -o " + out, "missing.safetensors"},
    };
    for (const Case& c : cases) {
        const auto r = run_cli("generate -p 'a red circle' " + c.args);
        EXPECT_EQ(r.code, 2) << c.args << "\n" << r.err;
        EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
        EXPECT_EQ(r.err.find("loading"), std::string::npos) << "refused only after loading: " << c.args;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_TRUE(fs::is_empty(dir)) << c.args;
    }
    // Clip skip beyond the model's text encoder (the demo's has 2 layers) needs the model, and is refused too.
    const auto r = run_cli("generate -p 'a red circle' --clip-skip 3 -o " + out);
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("clip skip 3 exceeds the text encoder's 2 layers"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
}

TEST(CliFirstRun, OneSizeFlagKeepsTheOtherSidesDefault) {
    const fs::path dir = temp_dir("nb_one_side");
    ASSERT_EQ(run_cli("generate -p 'a red circle' -s 1 --steps 2 -o " + (dir / "d.png").string()).code, 0);
    auto d = read_png((dir / "d.png").string());
    ASSERT_TRUE(d);
    ASSERT_EQ(run_cli("generate -p 'a red circle' -s 1 --steps 2 -W 48 -o " + (dir / "w.png").string()).code, 0);
    ASSERT_EQ(run_cli("generate -p 'a red circle' -s 1 --steps 2 -H 40 -o " + (dir / "h.png").string()).code, 0);
    auto w = read_png((dir / "w.png").string()), h = read_png((dir / "h.png").string());
    ASSERT_TRUE(w && h);
    EXPECT_EQ(w->width, 48);
    EXPECT_EQ(w->height, d->height);
    EXPECT_EQ(h->width, d->width);
    EXPECT_EQ(h->height, 40);
}

TEST(CliFirstRun, ExplicitFlagsOverrideParamsFrom) {
    const fs::path dir = temp_dir("nb_params_from");
    const std::string a = (dir / "a.png").string(), b = (dir / "b.png").string(), c = (dir / "c.png").string();
    ASSERT_EQ(run_cli("generate -p 'a red circle on a blue background' -s 5 --steps 4 -o " + a).code, 0);
    // Same settings: the same image.
    ASSERT_EQ(run_cli("generate --params-from " + a + " -o " + c).code, 0);
    EXPECT_EQ(read_png(a)->pixels, read_png(c)->pixels);
    // Flags given win over the PNG's values; the rest comes from the PNG.
    const auto r = run_cli("generate --params-from " + a + " -s 99 --steps 5 -p 'a green square' -o " + b);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string pb = parameters_of(b);
    EXPECT_EQ(pb.rfind("a green square\n", 0), 0u) << pb;
    EXPECT_NE(pb.find("Steps: 5,"), std::string::npos) << pb;
    EXPECT_NE(pb.find("Seed: 99,"), std::string::npos) << pb;
    EXPECT_NE(pb.find("Sampler: Euler a,"), std::string::npos) << pb;
    EXPECT_NE(read_png(a)->pixels, read_png(b)->pixels);
}

TEST(CliFirstRun, LoraGivenAsAFileSurvivesTheRoundTrip) {
    const fs::path dir = temp_dir("nb_lora_trip");
    const std::string base = (dir / "base.png").string(), a = (dir / "a.png").string(), b = (dir / "b.png").string();
    const std::string args = "generate -p 'a red circle on a blue background' -s 3 --steps 6 ";
    ASSERT_EQ(run_cli(args + "-o " + base).code, 0);
    const auto r = run_cli(args + "--lora " + demo_lora() + ":0.8 -o " + a);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string pa = parameters_of(a);
    EXPECT_EQ(pa.rfind("a red circle on a blue background <lora:demo_monochrome:0.8>\n", 0), 0u) << pa;
    EXPECT_NE(pa.find("Lora hashes: \"demo_monochrome: "), std::string::npos) << pa;
    EXPECT_NE(read_png(base)->pixels, read_png(a)->pixels);  // the LoRA changes the image
    // Remade from the infotext alone (the demo model's LoRA folder holds the file): the LoRA is applied again.
    const auto again = run_cli("generate --params-from " + a + " -o " + b);
    ASSERT_EQ(again.code, 0) << again.err;
    EXPECT_EQ(read_png(a)->pixels, read_png(b)->pixels);
    // The same file given again with --params-from is applied once, not twice.
    ASSERT_EQ(run_cli("generate --params-from " + a + " --lora " + demo_lora() + ":0.8 -o " + b).code, 0);
    EXPECT_EQ(read_png(a)->pixels, read_png(b)->pixels);
}

// Ctrl-C during the second image of a batch of three: the first is saved, the CLI exits 130.
TEST(CliFirstRun, InterruptKeepsFinishedImagesOfABatch) {
    const fs::path dir = temp_dir("nb_sigint_batch");
    const std::string out = (dir / "out.png").string(), err_file = (dir / "stderr.txt").string();
    const std::string cmd = std::string(NB_CLI) + " generate -p 'a red circle' -s 1 -b 3 --steps 300 -W 32 -H 32 -o " +
                            out + " > /dev/null 2> " + err_file;
    // The plain progress lines name the image.
    EXPECT_EQ(test::interrupt_when(cmd, err_file, "image 2/3 step 2/300"), 130);
    auto first = read_png(out);
    ASSERT_TRUE(first) << "the finished image was not kept";
    EXPECT_NE(parameters_of(out).find("Seed: 1,"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir / "out_1.png"));
    EXPECT_FALSE(fs::exists(dir / "out_2.png"));
    EXPECT_NE(test::slurp(err_file).find("interrupted: kept 1 of 3 images"), std::string::npos);
}

// libgomp prints its settings at start-up with OMP_DISPLAY_ENV; the CLI restarts itself once with PASSIVE.
TEST(CliFirstRun, OpenMPThreadsWaitPassively) {
    auto r = run_cli("--version", "env -u OMP_WAIT_POLICY OMP_DISPLAY_ENV=true");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto last = r.err.rfind("OMP_WAIT_POLICY = '");
    ASSERT_NE(last, std::string::npos) << r.err;
    EXPECT_EQ(r.err.substr(last, 28), "OMP_WAIT_POLICY = 'PASSIVE'\n") << r.err;
    // A policy the user chose is kept.
    r = run_cli("--version", "env OMP_WAIT_POLICY=ACTIVE OMP_DISPLAY_ENV=true");
    EXPECT_NE(r.err.find("OMP_WAIT_POLICY = 'ACTIVE'"), std::string::npos) << r.err;
}

TEST(CliFirstRun, TokenizeFindsTheDemoVocabulary) {
    const fs::path home = temp_dir("nb_home");
    const auto r = run_cli("tokenize 'a red circle'", "env -u NB_VOCAB HOME=" + home.string() +
                                                          " XDG_DATA_HOME=" + home.string());
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("tokens: 3"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("demo model's vocabulary"), std::string::npos) << r.err;
}

TEST(CliFirstRun, BenchJsonKeepsTheProfile) {
    const std::string model =
        (fs::path(__FILE__).parent_path() / "../../models/demo/demo.safetensors").lexically_normal().string();
    const auto r = run_cli("bench -m " + model + " -W 32 -H 32 --steps 1 --profile --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    ASSERT_TRUE(j.contains("profile")) << r.out;
    EXPECT_GT(j["profile"].size(), 2u);
}

}  // namespace
}  // namespace nb
