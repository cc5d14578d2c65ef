// Model families (pipeline/model_family.h): detection from the tensors present, the preset table, the order in
// which the prediction type is decided, the prediction option's parsing, and the one-line SDXL refusal. No golden
// data: tensor sets are made up here (tests/e2e/family_test.cpp runs the golden checkpoints).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>

#include "io/safetensors.h"
#include "nanobanana/a1111.h"
#include "nanobanana/engine.h"
#include "pipeline/model_family.h"
#include "pipeline/sd_model.h"

namespace nb {
namespace {

using pipeline::ModelFamily;
using pipeline::Prediction;
using pipeline::PredictionSource;

// A tensor set as detection sees it: names and shapes (no data).
struct FakeCheckpoint {
    std::map<std::string, TensorEntry, std::less<>> entries;
    FakeCheckpoint& add(const std::string& name, Shape shape) {
        TensorEntry& e = entries[name];
        e.name = name;
        e.dtype_name = "F16";
        e.dtype = DType::f16;
        e.shape = std::move(shape);
        return *this;
    }
    nn::TensorLookup lookup() const {
        return [this](std::string_view k) -> const TensorEntry* {
            auto it = entries.find(k);
            return it == entries.end() ? nullptr : &it->second;
        };
    }
};

constexpr const char* kConvIn = "model.diffusion_model.input_blocks.0.0.weight";

FakeCheckpoint sd1(int64_t in_channels = 4) {
    FakeCheckpoint c;
    c.add(kConvIn, {320, in_channels, 3, 3})
        .add("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", {49408, 768})
        .add("first_stage_model.decoder.conv_in.weight", {512, 4, 3, 3});
    return c;
}

FakeCheckpoint sd2(int64_t in_channels = 4) {
    FakeCheckpoint c;
    c.add(kConvIn, {320, in_channels, 3, 3})
        .add("cond_stage_model.model.token_embedding.weight", {49408, 1024})
        .add("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", {3072, 1024});
    return c;
}

FakeCheckpoint sdxl(int64_t in_channels = 4) {
    FakeCheckpoint c;
    c.add(kConvIn, {320, in_channels, 3, 3})
        .add("model.diffusion_model.label_emb.0.0.weight", {1280, 2816})
        .add("conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight", {49408, 768})
        .add("conditioner.embedders.1.model.token_embedding.weight", {49408, 1280});
    return c;
}

TEST(ModelFamily, DetectedFromTheTensorsPresent) {
    EXPECT_EQ(pipeline::detect_family(sd1().lookup()), ModelFamily::sd1);
    EXPECT_EQ(pipeline::detect_family(sd1(9).lookup()), ModelFamily::sd1_inpaint);
    EXPECT_EQ(pipeline::detect_family(sd2().lookup()), ModelFamily::sd2);
    EXPECT_EQ(pipeline::detect_family(sd2(9).lookup()), ModelFamily::sd2_inpaint);
    EXPECT_EQ(pipeline::detect_family(sdxl().lookup()), ModelFamily::sdxl);
    EXPECT_EQ(pipeline::detect_family(sdxl(9).lookup()), ModelFamily::sdxl_inpaint);
    // Either SDXL marker alone is enough: the bigG tower (a base model without its UNet's label_emb in the
    // file), or label_emb (a UNet-only SDXL file; the refiner has it too).
    FakeCheckpoint only_bigg;
    only_bigg.add("conditioner.embedders.1.model.token_embedding.weight", {49408, 1280});
    EXPECT_EQ(pipeline::detect_family(only_bigg.lookup()), ModelFamily::sdxl);
    FakeCheckpoint only_label_emb;
    only_label_emb.add(kConvIn, {320, 9, 3, 3}).add("model.diffusion_model.label_emb.0.0.weight", {1280, 2816});
    EXPECT_EQ(pipeline::detect_family(only_label_emb.lookup()), ModelFamily::sdxl_inpaint);
    // Nothing recognisable: SD 1.x, whose loader then names what is missing.
    EXPECT_EQ(pipeline::detect_family(FakeCheckpoint{}.lookup()), ModelFamily::sd1);
    // 8 input channels (instruct-pix2pix) is not an inpainting UNet.
    EXPECT_EQ(pipeline::detect_family(sd1(8).lookup()), ModelFamily::sd1);
}

TEST(ModelFamily, PresetTable) {
    const ModelFamily all[] = {ModelFamily::sd1,  ModelFamily::sd1_inpaint, ModelFamily::sd2,
                               ModelFamily::sd2_inpaint, ModelFamily::sdxl, ModelFamily::sdxl_inpaint};
    ASSERT_EQ(pipeline::family_presets().size(), std::size(all));
    for (ModelFamily f : all) {
        const auto& p = pipeline::preset(f);
        EXPECT_EQ(p.family, f);  // every family has its own row
        ASSERT_FALSE(p.text_encoders.empty()) << p.name;
        EXPECT_EQ(p.inpaint, f == ModelFamily::sd1_inpaint || f == ModelFamily::sd2_inpaint ||
                                 f == ModelFamily::sdxl_inpaint)
            << p.name;
        EXPECT_EQ(p.prediction, Prediction::eps) << p.name;
    }
    const auto& s1 = pipeline::preset(ModelFamily::sd1);
    EXPECT_STREQ(s1.name, "SD 1.x");
    EXPECT_STREQ(pipeline::preset(ModelFamily::sd1_inpaint).name, "SD 1.x inpainting");
    EXPECT_STREQ(pipeline::preset(ModelFamily::sd2).name, "SD 2.x");
    EXPECT_STREQ(pipeline::preset(ModelFamily::sdxl).name, "SDXL");
    EXPECT_EQ(s1.text_encoders.size(), 1u);
    EXPECT_EQ(s1.text_encoders[0].kind, pipeline::TextEncoderKind::clip);
    EXPECT_EQ(pipeline::preset(ModelFamily::sd2).text_encoders[0].kind, pipeline::TextEncoderKind::open_clip);
    // SDXL: CLIP-L and OpenCLIP-bigG, bigG's pooled output conditions the UNet.
    const auto& xl = pipeline::preset(ModelFamily::sdxl);
    ASSERT_EQ(xl.text_encoders.size(), 2u);
    EXPECT_EQ(xl.text_encoders[0].kind, pipeline::TextEncoderKind::clip);
    EXPECT_FALSE(xl.text_encoders[0].pooled);
    EXPECT_EQ(xl.text_encoders[1].kind, pipeline::TextEncoderKind::open_clip);
    EXPECT_TRUE(xl.text_encoders[1].pooled);
    // VAE scale factors (ldm / sgm configs) and default sizes.
    EXPECT_EQ(s1.vae_scale, 0.18215f);
    EXPECT_EQ(pipeline::preset(ModelFamily::sd2).vae_scale, 0.18215f);
    EXPECT_EQ(xl.vae_scale, 0.13025f);
    EXPECT_EQ(pipeline::preset(ModelFamily::sdxl_inpaint).vae_scale, 0.13025f);
    EXPECT_EQ(pipeline::default_size(s1, Prediction::eps), 512);
    EXPECT_EQ(pipeline::default_size(pipeline::preset(ModelFamily::sd2), Prediction::eps), 512);
    EXPECT_EQ(pipeline::default_size(pipeline::preset(ModelFamily::sd2), Prediction::v), 768);
    EXPECT_EQ(pipeline::default_size(xl, Prediction::eps), 1024);
    // SD 1.x / 2.x and SDXL base load; SDXL inpainting not yet.
    EXPECT_TRUE(s1.supported && pipeline::preset(ModelFamily::sd2_inpaint).supported && xl.supported);
    EXPECT_FALSE(pipeline::preset(ModelFamily::sdxl_inpaint).supported);
}

TEST(ModelFamily, PredictionDecidedInOrder) {
    using Meta = std::map<std::string, std::string>;
    const Meta v{{"parameterization", "v"}}, eps{{"parameterization", "eps"}}, none, odd{{"parameterization", "x0"}};
    auto decide = [](ModelFamily f, std::optional<Prediction> o, const Meta& m) {
        return pipeline::decide_prediction(f, o, m);
    };
    // The option wins over the metadata and over the test forward.
    for (ModelFamily f : {ModelFamily::sd1, ModelFamily::sd2, ModelFamily::sd2_inpaint}) {
        auto c = decide(f, Prediction::eps, v);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->prediction, Prediction::eps);
        EXPECT_EQ(c->source, PredictionSource::option);
        c = decide(f, Prediction::v, none);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->prediction, Prediction::v);
        EXPECT_EQ(c->source, PredictionSource::option);
    }
    // Then the metadata, for every family.
    for (ModelFamily f : {ModelFamily::sd1, ModelFamily::sd2, ModelFamily::sd1_inpaint}) {
        auto c = decide(f, std::nullopt, v);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->prediction, Prediction::v);
        EXPECT_EQ(c->source, PredictionSource::metadata);
        c = decide(f, std::nullopt, eps);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->prediction, Prediction::eps);
        EXPECT_EQ(c->source, PredictionSource::metadata);
    }
    // Then, for SD 2.x non-inpainting only, the test forward (nullopt: only it can tell) ...
    EXPECT_FALSE(decide(ModelFamily::sd2, std::nullopt, none));
    EXPECT_FALSE(decide(ModelFamily::sd2, std::nullopt, odd));  // an unknown value says nothing
    // ... else the family's default.
    for (ModelFamily f : {ModelFamily::sd1, ModelFamily::sd1_inpaint, ModelFamily::sd2_inpaint}) {
        auto c = decide(f, std::nullopt, none);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->prediction, Prediction::eps);
        EXPECT_EQ(c->source, PredictionSource::preset);
    }
}

TEST(ModelFamily, PredictionOptionParsedWithClearErrors) {
    EXPECT_EQ(*pipeline::parse_prediction("auto"), std::nullopt);
    EXPECT_EQ(*pipeline::parse_prediction(""), std::nullopt);
    EXPECT_EQ(*pipeline::parse_prediction("eps"), Prediction::eps);
    EXPECT_EQ(*pipeline::parse_prediction("v"), Prediction::v);
    auto bad = pipeline::parse_prediction("V-pred");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::invalid_argument);
    EXPECT_EQ(bad.error().message, "prediction must be auto, eps or v (got 'V-pred')");

    LoadOptions o;
    o.prediction = "epsilon";
    auto r = validate(o);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("prediction must be auto, eps or v (got 'epsilon')"), std::string::npos);
    o.prediction = "v";
    EXPECT_TRUE(validate(o));
    // Engine::load refuses it before opening anything.
    o.prediction = "x";
    o.model_path = "/nonexistent.safetensors";
    auto e = Engine::load(o);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("prediction must be"), std::string::npos) << e.error().message;

    // The C API's options_json key.
    auto c = a1111::parse_load_options("m.safetensors", R"({"prediction": "v"})");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->prediction, "v");
    c = a1111::parse_load_options("m.safetensors", R"({"prediction": "both"})");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("prediction must be auto, eps or v (got 'both')"), std::string::npos)
        << c.error().message;
    c = a1111::parse_load_options("m.safetensors", R"({"prediction": 1})");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("prediction"), std::string::npos) << c.error().message;
    // ... and the VAE's (external VAE files: tests/e2e/external_vae_test.cpp).
    c = a1111::parse_load_options("m.safetensors", R"({"vae": "/models/VAE/x.safetensors"})");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->vae, "/models/VAE/x.safetensors");
    EXPECT_EQ(a1111::parse_load_options("m.safetensors", "")->vae, "auto");
}

// A made-up SDXL file (the markers, a UNet input conv, some VAE): the loader and the engine refuse it with one
// line, before looking for a vocabulary.
std::string write_fake(const std::string& name, const FakeCheckpoint& c) {
    std::vector<TensorToWrite> t;
    for (const auto& [key, e] : c.entries) {
        const size_t n = size_t(shape_numel(e.shape));
        t.push_back({key, "F16", e.shape, std::vector<uint8_t>(n * 2, 0)});
    }
    const std::string path = ::testing::TempDir() + "/nb_family_" + std::to_string(getpid()) + "_" + name;
    auto r = write_safetensors(path, t);
    EXPECT_TRUE(r) << r.error().message;
    return path;
}

FakeCheckpoint small(FakeCheckpoint c) {  // the same names with tiny shapes (the file is written to disk)
    for (auto& [key, e] : c.entries)
        for (auto& d : e.shape) d = std::min<int64_t>(d, 9);
    return c;
}

// SDXL base loads (tests/e2e/sdxl_test.cpp); its inpainting variant is still refused with one line.
TEST(ModelFamily, SDXLInpaintingRefusedWithOneLine) {
    const std::string path = write_fake("sdxl_inpaint.safetensors", small(sdxl(9)));
    auto m = pipeline::SDModel::load(path, "/no/such/vocab.txt.gz");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code, Errc::unsupported);
    EXPECT_EQ(m.error().message, path + ": SDXL inpainting checkpoints are not supported yet (issue 20)");
    LoadOptions o;
    o.model_path = path;
    auto e = Engine::load(o);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("SDXL inpainting checkpoints are not supported yet (issue 20)"),
              std::string::npos);
    EXPECT_EQ(e.error().message.find('\n'), std::string::npos);
    auto info = describe_checkpoint(path);
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_NE(info->find("family: SDXL inpainting"), std::string::npos) << *info;
    EXPECT_NE(info->find("not supported yet (issue 20)"), std::string::npos) << *info;
    std::remove(path.c_str());
}

}  // namespace
}  // namespace nb
