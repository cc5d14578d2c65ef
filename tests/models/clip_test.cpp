// CLIP text encoder against openai/CLIP outputs on the tiny golden model (golden/README.md section 3).
#include <gtest/gtest.h>

#include "models/clip/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

constexpr const char* kIO = "golden/clip/clip_outputs.safetensors";

clip::CLIPTextEncoder load_tiny(const std::string& file, const std::string& prefix) {
    const SafeTensors& st = test::golden(file);
    nn::Binder b([&st](std::string_view k) { return st.find(k); }, prefix);
    auto cfg = clip::CLIPConfig::detect(b, 2);
    EXPECT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->layers, 2);
    EXPECT_EQ(cfg->hidden, 64);
    EXPECT_EQ(cfg->intermediate, 256);
    auto m = clip::CLIPTextEncoder::load(b, *cfg);
    EXPECT_TRUE(m) << m.error().message;
    return std::move(*m);
}

std::vector<int> ids_of(const Tensor& t) {
    std::vector<int> ids;
    for (float v : t.span()) ids.push_back(int(v));
    return ids;
}

TEST(CLIP, MatchesOpenAIOutputs) {
    auto enc = load_tiny("golden/clip/clip_tiny.safetensors", "cond_stage_model.transformer.text_model.");
    auto ids = ids_of(test::golden_tensor(kIO, "input_ids"));
    auto last = enc.encode(ids, 5, 1);
    EXPECT_TRUE(test::close_rel(last.hidden, test::golden_tensor(kIO, "last_hidden_state"), 1e-5, 1e-5));
    EXPECT_TRUE(test::close_rel(last.pooled, test::golden_tensor(kIO, "pooled"), 1e-5, 1e-5));
    auto skip2 = enc.encode(ids, 5, 2);
    EXPECT_TRUE(
        test::close_rel(skip2.hidden, test::golden_tensor(kIO, "penultimate_hidden_state_final_ln"), 1e-5, 1e-5));
    auto hs = enc.hidden_states(ids, 5, 2);
    for (int k = 0; k <= 2; ++k)
        EXPECT_TRUE(test::close_rel(hs[size_t(k)], test::golden_tensor(kIO, "hidden_states_" + std::to_string(k)), 1e-5,
                                    1e-5))
            << "hidden_states_" << k;
}

TEST(CLIP, LoadsFromPipelineCheckpoint) {
    auto enc = load_tiny("golden/pipeline/sd_tiny_fp16.safetensors", "cond_stage_model.transformer.text_model.");
    auto ids = ids_of(test::golden_tensor(kIO, "input_ids"));
    // Same values as clip_tiny (stored on the fp16 grid there): the fp16 file must give the same outputs.
    EXPECT_TRUE(test::close_rel(enc.encode(ids, 5, 1).hidden, test::golden_tensor(kIO, "last_hidden_state"), 1e-5,
                                1e-5));
}

TEST(CLIP, WrongShapeNamesTheKey) {
    const SafeTensors& st = test::golden("golden/clip/clip_tiny.safetensors");
    nn::Binder b([&st](std::string_view k) { return st.find(k); }, "cond_stage_model.transformer.text_model.");
    auto cfg = clip::CLIPConfig::detect(b, 2);
    ASSERT_TRUE(cfg);
    cfg->intermediate = 128;
    auto m = clip::CLIPTextEncoder::load(b, *cfg);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message.find("encoder.layers.0.mlp.fc1.weight' has wrong shape: got [256, 64], expected [128, 64]"),
              std::string::npos)
        << m.error().message;
}

}  // namespace
}  // namespace nb
