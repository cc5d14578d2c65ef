// TAESD in the pipeline (--taesd): the final decode and the live previews, on the demo model with a random
// 4-channel TAESD decoder written here (no ../shared needed; the real TAEF2 weights are tested against PyTorch
// in tests/models/taesd_test.cpp and checked here only for being refused by a 4-channel model).
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include "image/image.h"
#include "io/safetensors.h"
#include "models/taesd/model.h"
#include "nanobanana/engine.h"
#include "testutil/cli.h"
#include "testutil/demo.h"
#include "testutil/golden.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

using test::demo_model_path;

// A TAESD decoder for 4-channel latents in taesd.py's bare Sequential names, random weights (seeded).
std::string random_taesd() {
    static const std::string path = [] {
        const std::string p = ::testing::TempDir() + "/random_taesd_decoder_" + std::to_string(getpid()) + ".safetensors";
        std::mt19937 g(7);
        std::normal_distribution<float> d(0.f, 0.04f);
        std::vector<TensorToWrite> t;
        auto add = [&](const std::string& name, Shape s) {
            std::vector<float> v(size_t(shape_numel(s)));
            for (float& x : v) x = d(g);
            TensorToWrite w{name, "F32", s, {}};
            w.bytes.resize(v.size() * 4);
            std::memcpy(w.bytes.data(), v.data(), w.bytes.size());
            t.push_back(std::move(w));
        };
        add("1.weight", {64, 4, 3, 3});
        add("1.bias", {64});
        for (int b : {3, 4, 5, 8, 9, 10, 13, 14, 15, 18})
            for (int c : {0, 2, 4}) {
                add(fmt::format("{}.conv.{}.weight", b, c), {64, 64, 3, 3});
                add(fmt::format("{}.conv.{}.bias", b, c), {64});
            }
        for (int c : {7, 12, 17}) add(fmt::format("{}.weight", c), {64, 64, 3, 3});
        add("19.weight", {3, 64, 3, 3});
        add("19.bias", {3});
        if (auto r = write_safetensors(p, t); !r) throw std::runtime_error(r.error().message);
        return p;
    }();
    return path;
}

std::unique_ptr<Engine> load(const std::string& taesd, bool decode = true, bool release = false) {
    LoadOptions o;
    o.model_path = demo_model_path();
    o.taesd = taesd;
    o.taesd_decode = decode;
    o.release_idle_weights = release;
    auto e = Engine::load(o);
    if (!e) throw std::runtime_error(e.error().message);
    return std::move(*e);
}

GenerateParams params() {
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.steps = 4;
    p.seed = 3;
    p.width = p.height = 64;
    return p;
}

TEST(TaesdPipeline, FinalDecodeIsTaesdOfTheSameLatent) {
    auto plain = load(""), tiny = load(random_taesd());
    auto a = plain->generate(params()), b = tiny->generate(params());
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->front().latent, b->front().latent) << "TAESD changed the sampling, not only the decode";
    EXPECT_NE(a->front().image.pixels, b->front().image.pixels);
    // The picture is exactly TAESD's decode of that latent ([0, 1] -> 8 bits as every decode).
    auto m = taesd::Model::load(random_taesd());
    ASSERT_TRUE(m) << m.error().message;
    Tensor z = Tensor::from({1, 4, 8, 8}, b->front().latent);
    Tensor x = m->decode(z);
    for (float& v : x.span()) v = v * 2.f - 1.f;
    EXPECT_EQ(image_from_tensor(x, 0).pixels, b->front().image.pixels);
}

TEST(TaesdPipeline, TheVaeNeverLoadsWhenTaesdDecodes) {
    auto e = load(random_taesd(), true, /*release idle weights=*/true);
    ASSERT_TRUE(e->generate(params()));
    const std::string d = e->describe();
    EXPECT_NE(d.find("vae released"), std::string::npos) << d;
}

TEST(TaesdPipeline, PreviewsAreFullSizeWithTaesdAndTheDecodeStaysTheVaes) {
    auto plain = load(""), preview_only = load(random_taesd(), /*decode=*/false);
    int plain_w = 0, tiny_w = 0;
    auto a = plain->generate(params(), [&](const Progress& p) {
        if (p.preview) plain_w = p.preview().width;
        return true;
    });
    auto b = preview_only->generate(params(), [&](const Progress& p) {
        if (p.preview) tiny_w = p.preview().width;
        return true;
    });
    ASSERT_TRUE(a && b);
    EXPECT_EQ(plain_w, 8);  // "Approx cheap": latent size
    EXPECT_EQ(tiny_w, 64);
    EXPECT_EQ(a->front().image.pixels, b->front().image.pixels) << "taesd_decode false still decoded with TAESD";
}

TEST(TaesdPipeline, WrongFilesAreRefused) {
    LoadOptions o;
    o.model_path = demo_model_path();
    o.taesd = test::shared_path("assets/latent_decoders/taef2/taef2_decoder.pth");
    auto e = Engine::load(o);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("decodes 32-channel latents"), std::string::npos) << e.error().message;
    o.taesd = test::shared_path("assets/latent_decoders/taef2/taef2_encoder.pth");
    e = Engine::load(o);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("holds no decoder"), std::string::npos) << e.error().message;
}

TEST(TaesdPipeline, CliFlag) {
    const std::string dir = ::testing::TempDir() + "/taesd_cli_" + std::to_string(getpid());
    fs::create_directories(dir);
    const auto ok = test::run_cli("generate -p 'a red circle' --steps 2 -W 64 -H 64 --taesd " + random_taesd() +
                                  " -o " + dir + "/ok.png");
    EXPECT_EQ(ok.code, 0) << ok.err;
    EXPECT_TRUE(fs::exists(dir + "/ok.png"));
    const std::string junk = dir + "/junk.pth";
    std::ofstream(junk) << "junk";
    const auto bad = test::run_cli("generate -p 'a red circle' --steps 2 --taesd " + junk + " -o " + dir + "/bad.png");
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("junk.pth"), std::string::npos) << bad.err;
    EXPECT_FALSE(fs::exists(dir + "/bad.png"));
}

}  // namespace
}  // namespace nb
