#include <unistd.h>
// `nanobanana generate` with <lora:name:w> from --lora-model-dir and --lora PATH:W: the LoRA changes the
// image, weight 0 reproduces the base image, the PNG records A1111's "Lora hashes"; `info` summarises a LoRA
// file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "image/image.h"
#include "testutil/golden.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

struct CliRun {
    int code;
    std::string out, err;
};

std::string slurp(const std::string& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

CliRun run_cli(const std::string& args) {
    const std::string pid = std::to_string(getpid());  // tests run in parallel processes
    const std::string out = ::testing::TempDir() + "/lora_cli_out_" + pid + ".txt",
                      err = ::testing::TempDir() + "/lora_cli_err_" + pid + ".txt";
    const int st = std::system((std::string(NB_CLI) + " " + args + " > " + out + " 2> " + err).c_str());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out), slurp(err)};
}

std::string gen_args(const std::string& prompt, const std::string& extra, const std::string& out) {
    return "generate -m " + test::shared_path("golden/pipeline/sd_tiny_fp16.safetensors") + " --vocab " +
           test::shared_path("assets/tokenizer/bpe_simple_vocab_16e6.txt.gz") + " -p '" + prompt +
           "' -s 5 --steps 3 -W 64 -H 64 " + extra + " -o " + out;
}

std::vector<uint8_t> pixels(const std::string& png) {
    auto img = read_png(png);
    EXPECT_TRUE(img) << png;
    return img ? img->pixels : std::vector<uint8_t>();
}

TEST(LoraCli, PromptTagChangesImageWeightZeroDoesNotAndPngHasHashes) {
    const fs::path dir = fs::path(::testing::TempDir()) / "nb_lora_cli";
    fs::remove_all(dir);
    fs::create_directories(dir / "loras");
    fs::copy_file(test::shared_path("golden/lora/lora_A.safetensors"), dir / "loras/lora_A.safetensors");
    const std::string loras = " --lora-model-dir " + (dir / "loras").string();
    const std::string base = (dir / "base.png").string(), with = (dir / "a.png").string(),
                      zero = (dir / "zero.png").string(), flag = (dir / "flag.png").string();

    CliRun r = run_cli(gen_args("a cat", "", base));
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_cli(gen_args("a cat <lora:lora_A:0.8>", loras, with));
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_cli(gen_args("a cat <lora:lora_A:0>", loras, zero));
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_cli(
        gen_args("a cat", "--lora " + test::shared_path("golden/lora/lora_A.safetensors") + ":0.8", flag));
    ASSERT_EQ(r.code, 0) << r.err;

    EXPECT_NE(pixels(base), pixels(with));
    EXPECT_EQ(pixels(base), pixels(zero));
    EXPECT_EQ(pixels(with), pixels(flag));  // same merge whether named in the prompt or on the command line

    r = run_cli("info " + with);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("a cat <lora:lora_A:0.8>\n"), std::string::npos) << r.out;  // A1111 keeps the tag
    // addnet hash of lora_A: sha256 of the bytes after its JSON header, first 12 hex digits.
    EXPECT_NE(r.out.find("Lora hashes: \"lora_A: e7f3f7793022\""), std::string::npos) << r.out;
    fs::remove_all(dir);
}

TEST(LoraCli, MissingLoraAndBadFlagAreErrors) {
    const std::string out = ::testing::TempDir() + "/nb_lora_missing.png";
    CliRun r =
        run_cli(gen_args("a cat <lora:no_such_lora:1>", "--lora-model-dir " + ::testing::TempDir(), out));
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("no_such_lora"), std::string::npos) << r.err;
    r = run_cli(gen_args("a cat", "--lora :0.5", out));
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("--lora"), std::string::npos) << r.err;
}

TEST(LoraCli, InfoDescribesLoraFile) {
    CliRun r = run_cli("info " + test::shared_path("golden/lora/lora_A.safetensors"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("modules: 129 (unet 117"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("rank: 4"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("alpha: 1 (26 modules), 2 (103 modules)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ss_network_dim: 4"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace nb
