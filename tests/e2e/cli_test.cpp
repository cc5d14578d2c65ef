// The CLI as users run it: golden pipeline through `nanobanana generate`, PNG metadata round trip,
// --params-from, batches, and clear one-line errors without output files on bad input.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "image/image.h"
#include "testutil/cli.h"
#include "testutil/golden.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

struct CliRun {
    int code;
    std::string err;
};

CliRun run_cli(const std::string& args) {
    // One file per process: ctest runs these tests in parallel processes.
    const std::string err_file = ::testing::TempDir() + "/cli_stderr_" + std::to_string(getpid()) + ".txt";
    const std::string cmd = std::string(NB_CLI) + " " + args + " > /dev/null 2> " + err_file;
    int st = std::system(cmd.c_str());
    std::ifstream f(err_file);
    std::string err((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, err};
}

// The golden images are reproduced by the exact fp32 path (bf16 is checked against it in pipeline_test).
std::string model_args() {
    return "--precision fp32 -m " + test::shared_path("golden/pipeline/sd_tiny_fp16.safetensors") + " --vocab " +
           test::shared_path("assets/tokenizer/bpe_simple_vocab_16e6.txt.gz");
}

const char* kPrompt = "\"a photo of a (red:1.3) cat sitting on a wooden table, highly detailed\"";

void expect_matches_golden(const std::string& png, const std::string& run) {
    auto img = read_png(png);
    ASSERT_TRUE(img) << img.error().message;
    Tensor ref = test::golden_tensor("golden/pipeline/pipeline_io.safetensors", run + ".image_u8");
    ASSERT_EQ(img->pixels.size(), size_t(ref.numel()));
    int worst = 0;
    for (size_t i = 0; i < img->pixels.size(); ++i) worst = std::max(worst, std::abs(img->pixels[i] - int(ref.data()[i])));
    EXPECT_LE(worst, 2) << run;
}

TEST(CLI, GeneratesTheGoldenImagesWithA1111Metadata) {
    const std::string dir = ::testing::TempDir() + "/nb_cli_golden_" + std::to_string(getpid());
    fs::create_directories(dir);
    for (auto [run, sampler] : {std::pair{"euler_a", "euler_a"}, {"dpmpp_2m_karras", "\"DPM++ 2M\" --scheduler karras"}}) {
        const std::string out = dir + "/" + run + ".png";
        CliRun r = run_cli("generate " + model_args() + " -p " + kPrompt + " -s 42 --steps 8 -W 128 -H 128 --cfg-scale 7 " +
                        "--sampling-method " + sampler + " -o " + out);
        ASSERT_EQ(r.code, 0) << r.err;
        expect_matches_golden(out, run);
        auto text = read_png_text(out);
        ASSERT_TRUE(text);
        const std::string params = text->at("parameters");
        EXPECT_EQ(params.rfind("a photo of a (red:1.3) cat sitting on a wooden table, highly detailed\nSteps: 8, Sampler: ", 0), 0u)
            << params;
        EXPECT_NE(params.find("CFG scale: 7, Seed: 42, Size: 128x128, Model hash: "), std::string::npos) << params;
        // --params-from regenerates the same image from the metadata alone.
        const std::string again = dir + "/" + run + "_again.png";
        r = run_cli("generate " + model_args() + " --params-from " + out + " -o " + again);
        ASSERT_EQ(r.code, 0) << r.err;
        expect_matches_golden(again, run);
    }
}

TEST(CLI, BatchWritesOneFilePerSeed) {
    const std::string dir = ::testing::TempDir() + "/nb_batch_" + std::to_string(getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    CliRun r = run_cli("generate " + model_args() + " -p cat -s 7 --steps 2 -W 64 -H 64 -b 2 --grid -o " + dir + "/out.png");
    ASSERT_EQ(r.code, 0) << r.err;
    auto a = read_png_text(dir + "/out.png"), b = read_png_text(dir + "/out_1.png");
    ASSERT_TRUE(a && b);
    EXPECT_NE(a->at("parameters").find("Seed: 7,"), std::string::npos);
    EXPECT_NE(b->at("parameters").find("Seed: 8,"), std::string::npos);
    EXPECT_TRUE(fs::exists(dir + "/out_grid.png"));
    auto ia = read_png(dir + "/out.png"), ib = read_png(dir + "/out_1.png");
    EXPECT_NE(ia->pixels, ib->pixels);  // different seeds, different images
}

// TCD (issue 21): --sampling-method tcd runs on the demo model (no golden data needed), says so in the infotext
// with its Automatic schedule, and the infotext brings the same picture back through --params-from.
TEST(CLI, TcdSamplerRunsAndRoundTrips) {
    const std::string dir = ::testing::TempDir() + "/nb_tcd_" + std::to_string(getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    CliRun r = run_cli("generate -p 'a red circle on a blue background' --sampling-method tcd --steps 4 --cfg-scale 1 "
                       "-s 3 -W 64 -H 64 -o " + dir + "/a.png");
    ASSERT_EQ(r.code, 0) << r.err;
    auto text = read_png_text(dir + "/a.png");
    ASSERT_TRUE(text);
    EXPECT_NE(text->at("parameters").find("Sampler: TCD, Schedule type: SGM Uniform"), std::string::npos)
        << text->at("parameters");
    r = run_cli("generate --params-from " + dir + "/a.png -W 64 -H 64 -o " + dir + "/b.png");
    ASSERT_EQ(r.code, 0) << r.err;
    auto a = read_png(dir + "/a.png"), b = read_png(dir + "/b.png");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->pixels, b->pixels);
    fs::remove_all(dir);
}

TEST(CLI, BadInputIsAOneLineErrorAndNoFile) {
    const std::string out = ::testing::TempDir() + "/nb_bad.png";
    fs::remove(out);
    struct Case {
        std::string args, needle;
    };
    const std::string trunc = ::testing::TempDir() + "/trunc.safetensors";
    {
        std::ifstream in(test::shared_path("golden/pipeline/sd_tiny_fp16.safetensors"), std::ios::binary);
        std::string head(4096, '\0');
        in.read(head.data(), 4096);
        std::ofstream(trunc, std::ios::binary).write(head.data(), 4096);
    }
    for (const Case& c : {Case{"generate " + model_args() + " -p x -W 100 -H 64", "width must be a positive multiple of 8"},
                          Case{"generate " + model_args() + " -p x --sampling-method nope", "nope"},
                          Case{"generate " + model_args() + " -p x --rng gpu2", "gpu2"},
                          Case{"generate -m /nonexistent.safetensors -p x", "/nonexistent.safetensors"},
                          Case{"generate -m " + trunc + " -p x", trunc},
                          Case{"info " + trunc, trunc},
                          Case{"generate " + model_args() + " -p x --steps 0", "steps"},
                          Case{"generate -m " + test::shared_path("golden/pipeline/sd_tiny_fp16.safetensors") +
                                   " --vocab /nonexistent/vocab.json -p x",
                               "/nonexistent/vocab.json"}}) {
        CliRun r = run_cli(c.args + " -o " + out);
        if (c.args.rfind("info", 0) == 0) r = run_cli(c.args);
        EXPECT_EQ(r.code, 2) << c.args;  // bad input: exit code 2
        EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), r.err.find("loading") == 0 ? 2 : 1) << r.err;
        EXPECT_FALSE(fs::exists(out)) << c.args;
    }
}

// Ctrl-C during sampling: the CLI stops between steps, exits 130, and leaves no output (and no temp) file.
TEST(CLI, InterruptStopsCleanlyWithoutOutput) {
    const fs::path dir = fs::path(::testing::TempDir()) / ("nb_sigint_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string out = (dir / "out.png").string(), err_file = (dir / "stderr.txt").string();
    const std::string cmd = std::string(NB_CLI) + " generate " + model_args() + " -p cat -s 1 --steps 1000 -W 64 -H 64 -o " +
                            out + " > /dev/null 2> " + err_file;
    // Once sampling has started (the plain progress lines name the step).
    EXPECT_EQ(test::interrupt_when(cmd, err_file, "step 2/1000"), 130);
    EXPECT_FALSE(fs::exists(out));
    for (const auto& e : fs::directory_iterator(dir))
        EXPECT_EQ(e.path().filename(), "stderr.txt") << "left behind: " << e.path();
    fs::remove_all(dir);
}

}  // namespace
}  // namespace nb
