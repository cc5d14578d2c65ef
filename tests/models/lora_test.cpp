// LoRA against golden/lora (README section 9): name map, merged deltas, UNet and CLIP outputs for A at 0.8
// and A at 0.7 stacked with B at 0.85, merged through the same LoraState the engine uses; bit-exact restore;
// errors.
#include "models/lora/lora.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/context.h"
#include "backend/ops.h"
#include "backend/weights.h"
#include "pipeline/sd_model.h"
#include "testutil/golden.h"
#include "testutil/tiny_model.h"

namespace nb {
namespace {

constexpr const char* kIO = "golden/lora/lora_io.safetensors";

pipeline::SDModel& tiny() {
    static auto m = test::load_tiny_sd();
    return *m;
}

std::shared_ptr<const lora::LoraFile> lora_file(const std::string& stem) {
    auto f = lora::LoraFile::open(test::shared_path("golden/lora/" + stem + ".safetensors"));
    if (!f) throw std::runtime_error(f.error().message);
    return std::make_shared<const lora::LoraFile>(std::move(*f));
}

Tensor g(const std::string& name) {
    return test::golden_tensor(kIO, name);
}

// Base-weight snapshot of the whole map, for bit-exact comparisons.
std::map<std::string, std::vector<float>> snapshot(const std::map<std::string, Tensor>& w) {
    std::map<std::string, std::vector<float>> s;
    for (const auto& [k, t] : w) {
        ops::ensure_values(t);  // packed weights release their fp32 values until asked
        s[k].assign(t.span().begin(), t.span().end());
    }
    return s;
}

void expect_bit_exact(const std::map<std::string, Tensor>& w,
                      const std::map<std::string, std::vector<float>>& s) {
    size_t differing = 0;
    for (const auto& [k, t] : w)
        if (ops::ensure_values(t), std::memcmp(t.data(), s.at(k).data(), s.at(k).size() * sizeof(float)) != 0) ++differing;
    EXPECT_EQ(differing, 0u);
}

void expect_outputs(const std::string& tag) {
    auto& m = tiny();
    Tensor t = g("unet_timesteps");
    Tensor eps =
        m.unet.forward(g("unet_x"), std::vector<float>(t.span().begin(), t.span().end()), g("unet_context"));
    EXPECT_TRUE(test::close_rel(eps, g(tag + ".unet_out"), 1e-4)) << tag;
    const Tensor id_t = g("clip_input_ids");  // named: a range-for over a temporary's span would dangle
    std::vector<int> ids;
    for (float v : id_t.span()) ids.push_back(int(v));
    auto enc = m.clip.encode(ids, 5, 1);
    EXPECT_TRUE(test::close_rel(enc.hidden, g(tag + ".clip_last_hidden_state"), 1e-5)) << tag;
    EXPECT_TRUE(test::close_rel(enc.pooled, g(tag + ".clip_pooled"), 1e-5)) << tag;
}

TEST(LoraNames, A1111ConversionMatchesGoldenMap) {
    std::ifstream f(test::shared_path("golden/lora/lora_name_map.json"));
    const auto j = nlohmann::json::parse(f);
    const lora::TargetIndex index(tiny().weights);
    for (const auto& [kohya, key] : j.items()) EXPECT_EQ(index.find(kohya).value_or("<none>"), key) << kohya;
    EXPECT_EQ(j.size(), 129u);
    EXPECT_EQ(lora::kohya_to_compvis("lora_unet_up_blocks_2_upsamplers_0_conv"),
              "diffusion_model_output_blocks_8_2_conv");
    EXPECT_EQ(lora::kohya_to_compvis("lora_unet_time_embedding_linear_2"), "diffusion_model_time_embed_2");
    EXPECT_EQ(lora::kohya_to_compvis("lora_unet_mid_block_resnets_1_norm2"),
              "diffusion_model_middle_block_2_out_layers_0");
    EXPECT_FALSE(lora::kohya_to_compvis("lora_unet_something_else"));
    EXPECT_EQ(lora::diffusers_to_kohya("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0"),
              "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0");
    EXPECT_EQ(lora::diffusers_to_kohya("base_model.model.text_encoder.text_model.encoder.layers.3.mlp.fc1"),
              "lora_te_text_model_encoder_layers_3_mlp_fc1");
    EXPECT_FALSE(lora::diffusers_to_kohya("vae.decoder.conv_in"));
    // A1111's fallback for LDM-named UNet modules (no diffusers rule applies).
    EXPECT_EQ(index.find("lora_unet_input_blocks_1_1_proj_in").value_or("<none>"),
              "model.diffusion_model.input_blocks.1.1.proj_in.weight");
    EXPECT_EQ(index.find("lora_unet_middle_block_1_transformer_blocks_0_attn2_to_k").value_or("<none>"),
              "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight");
    EXPECT_FALSE(index.find("lora_unet_input_blocks_99_1_proj_in"));
}

TEST(LoraFile, ParsesKohyaFile) {
    auto a = lora_file("lora_A");
    EXPECT_EQ(a->modules.size(), 129u);
    EXPECT_TRUE(a->unrecognised_keys.empty());
    EXPECT_EQ(a->name, "lora_A");
    EXPECT_EQ(a->metadata.at("ss_network_dim"), "4");
    for (const auto& m : a->modules) {
        EXPECT_EQ(m.rank, 4);
        ASSERT_TRUE(m.alpha) << m.name;
        const bool conv3 = m.down.shape.size() == 4 && m.down.shape[2] == 3;
        EXPECT_EQ(*m.alpha, conv3 ? 1.f : 2.f) << m.name;
    }
}

TEST(LoraMerge, DeltasMatchGolden) {
    auto& m = tiny();
    auto a = lora_file("lora_A");
    const auto base = snapshot(m.weights);
    lora::LoraState state;
    auto w = state.apply(m.weights, {{a, 0.8f, 0.8f}});
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_TRUE(w->empty());
    std::ifstream f(test::shared_path("golden/lora/lora_name_map.json"));
    const auto names = nlohmann::json::parse(f);
    int checked = 0;
    for (const auto& e : test::golden(kIO).entries()) {
        if (!e.name.starts_with("A0.8.delta.")) continue;
        const std::string mod = e.name.substr(11), key = names.at(mod);
        Tensor ref = g(e.name);
        const Tensor& now = m.weights.at(key);
        ops::ensure_values(now);
        Tensor diff = Tensor::empty(ref.shape());
        for (int64_t i = 0; i < ref.numel(); ++i) diff.data()[i] = now.data()[i] - base.at(key)[size_t(i)];
        EXPECT_TRUE(test::close_rel(diff, ref, 1e-5)) << mod;
        const auto* lm =
            &*std::find_if(a->modules.begin(), a->modules.end(), [&](auto& x) { return x.name == mod; });
        auto d = lora::module_delta(*lm, ref.shape(), 0.8f, "A");
        ASSERT_TRUE(d) << d.error().message;
        EXPECT_TRUE(test::close_rel(*d, ref, 1e-5)) << mod;
        ++checked;
    }
    EXPECT_EQ(checked, 5);
    state.restore(m.weights);
    expect_bit_exact(m.weights, base);
}

TEST(LoraMerge, OutputsMatchGoldenAndRestoreIsBitExact) {
    auto& m = tiny();
    auto a = lora_file("lora_A"), b = lora_file("lora_B");
    const auto base = snapshot(m.weights);
    lora::LoraState state;
    expect_outputs("base");
    ASSERT_TRUE(state.apply(m.weights, {{a, 0.8f, 0.8f}}));
    expect_outputs("A0.8");
    const size_t touched = state.n_backed_up();
    EXPECT_EQ(touched, 129u);                                // backup proportional to the LoRA, not the model
    ASSERT_TRUE(state.apply(m.weights, {{a, 0.8f, 0.8f}}));  // same set: no work, same result
    expect_outputs("A0.8");
    ASSERT_TRUE(state.apply(m.weights, {{a, 0.7f, 0.7f}, {b, 0.85f, 0.85f}}));
    expect_outputs("A0.7_B0.85");
    ASSERT_TRUE(state.apply(m.weights, {}));
    expect_bit_exact(m.weights, base);
    ASSERT_TRUE(state.apply(m.weights, {{a, 0.f, 0.f}}));  // weight 0 is a no-op
    EXPECT_EQ(state.n_backed_up(), 0u);
    expect_bit_exact(m.weights, base);
    expect_outputs("base");
}

// Writes a LoRA file with the given (name, shape) F32 tensors (values 0.01) and optional extra bytes.
std::string write_lora(const std::string& file, const std::vector<std::pair<std::string, Shape>>& tensors) {
    std::vector<TensorToWrite> t;
    for (const auto& [name, shape] : tensors) {
        std::vector<float> v(size_t(shape_numel(shape)), 0.01f);
        std::vector<uint8_t> bytes(v.size() * 4);
        std::memcpy(bytes.data(), v.data(), bytes.size());
        t.push_back({name, "F32", shape, std::move(bytes)});
    }
    const std::string path = (std::filesystem::temp_directory_path() / file).string();
    EXPECT_TRUE(write_safetensors(path, t));
    return path;
}

TEST(LoraErrors, WrongShapeNamesKeyAndShapesAndChangesNothing) {
    auto& m = tiny();
    const auto base = snapshot(m.weights);
    const std::string mod = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k";
    auto path = write_lora("nb_lora_wrong.safetensors",
                           {{"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", {4, 64}},
                            {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", {256, 4}},
                            {mod + ".lora_down.weight", {4, 768}},
                            {mod + ".lora_up.weight", {32, 4}}});
    auto f = lora::LoraFile::open(path);
    ASSERT_TRUE(f) << f.error().message;
    lora::LoraState state;
    auto r = state.apply(m.weights, {{std::make_shared<lora::LoraFile>(*f), 1.f, 1.f}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::shape);
    EXPECT_NE(r.error().message.find(mod), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("[4, 768]"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("[32, 64]"), std::string::npos) << r.error().message;
    expect_bit_exact(m.weights, base);
    std::filesystem::remove(path);
}

TEST(LoraErrors, UnmatchedModulesAreWarningsAndForeignFilesAreErrors) {
    auto& m = tiny();
    auto path = write_lora("nb_lora_unmatched.safetensors",
                           {{"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", {4, 64}},
                            {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", {256, 4}},
                            {"lora_te_text_model_encoder_layers_99_mlp_fc1.lora_down.weight", {4, 64}},
                            {"lora_te_text_model_encoder_layers_99_mlp_fc1.lora_up.weight", {256, 4}},
                            {"some_other_tensor", {3}}});
    auto f = lora::LoraFile::open(path);
    ASSERT_TRUE(f) << f.error().message;
    lora::LoraState state;
    auto r = state.apply(m.weights, {{std::make_shared<lora::LoraFile>(*f), 1.f, 1.f}});
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->size(), 2u);
    EXPECT_NE((*r)[0].find("1 modules"), std::string::npos) << (*r)[0];
    EXPECT_NE((*r)[0].find("layers_99_mlp_fc1"), std::string::npos) << (*r)[0];
    EXPECT_NE((*r)[1].find("some_other_tensor"), std::string::npos) << (*r)[1];
    state.restore(m.weights);

    auto sdxl = write_lora("nb_lora_foreign.safetensors",
                           {{"lora_unet_input_blocks_4_1_proj_in.lora_down.weight", {4, 640}},
                            {"lora_unet_input_blocks_4_1_proj_in.lora_up.weight", {640, 4}}});
    auto ff = lora::LoraFile::open(sdxl);
    ASSERT_TRUE(ff);
    auto e = state.apply(m.weights, {{std::make_shared<lora::LoraFile>(*ff), 1.f, 1.f}});
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("lora_unet_input_blocks_4_1_proj_in"), std::string::npos)
        << e.error().message;
    std::filesystem::remove(path);
    std::filesystem::remove(sdxl);
}

TEST(LoraErrors, TruncatedMalformedAndLyCORISFilesFailCleanly) {
    std::ifstream in(test::shared_path("golden/lora/lora_A.safetensors"), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto tmp = std::filesystem::temp_directory_path();
    for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
        const std::string p = (tmp / "nb_lora_trunc.safetensors").string();
        std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(n));
        auto f = lora::LoraFile::open(p);
        EXPECT_FALSE(f) << n;
        std::filesystem::remove(p);
    }
    auto loha = write_lora("nb_lora_loha.safetensors",
                           {{"lora_unet_mid_block_attentions_0_proj_in.hada_w1_a", {32, 4}},
                            {"lora_unet_mid_block_attentions_0_proj_in.hada_w1_b", {4, 32}}});
    auto f = lora::LoraFile::open(loha);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code, Errc::unsupported);
    EXPECT_NE(f.error().message.find("unsupported LoRA type (LoHa)"), std::string::npos) << f.error().message;
    auto half = write_lora("nb_lora_half.safetensors",
                           {{"lora_unet_mid_block_attentions_0_proj_in.lora_up.weight", {32, 4}}});
    EXPECT_FALSE(lora::LoraFile::open(half));
    std::filesystem::remove(loha);
    std::filesystem::remove(half);
}

// Writes F32 tensors with the given values.
std::string write_lora_values(const std::string& file, const std::map<std::string, Tensor>& tensors) {
    std::vector<TensorToWrite> t;
    for (const auto& [name, v] : tensors) {
        std::vector<uint8_t> bytes(size_t(v.numel()) * 4);
        std::memcpy(bytes.data(), v.data(), bytes.size());
        t.push_back({name, "F32", v.shape(), std::move(bytes)});
    }
    const std::string path = (std::filesystem::temp_directory_path() / file).string();
    EXPECT_TRUE(write_safetensors(path, t));
    return path;
}

Tensor counting(const Shape& shape, float start, float step) {
    Tensor t(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = start + step * float(i % 17) - 0.05f * float(i % 5);
    return t;
}

// open_clip's fused attention (issue 20: SD 2.x and SDXL bigG text-encoder LoRAs): q, k and v go to the row
// blocks of in_proj_weight and out to out_proj, as A1111's MultiheadAttention branch does, only when the file has
// all four; SD 2.x's HF module names are looked up under open_clip's names (mlp_fc1 -> mlp_c_fc). Expected values
// are computed here from the file's tensors: delta = up @ down * alpha / rank * weight.
TEST(LoraMerge, OpenClipFusedAttentionTakesQkvOutTogether) {
    constexpr int64_t C = 4, R = 2;
    for (const std::string root : {"cond_stage_model.model.transformer.resblocks.0.",
                                   "conditioner.embedders.1.model.transformer.resblocks.0."}) {
        const bool sdxl = root.starts_with("conditioner");
        const std::string te = sdxl ? "lora_te2_text_model_encoder_layers_0_" : "lora_te_text_model_encoder_layers_0_";
        std::map<std::string, Tensor> w{{root + "attn.in_proj_weight", counting({3 * C, C}, 0.1f, 0.01f)},
                                        {root + "attn.out_proj.weight", counting({C, C}, -0.2f, 0.02f)},
                                        {root + "mlp.c_fc.weight", counting({2 * C, C}, 0.3f, -0.01f)}};
        const auto base = snapshot(w);
        std::map<std::string, Tensor> lora;
        const char* mods[] = {"self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj", "mlp_fc1"};
        for (int i = 0; i < 5; ++i) {
            const int64_t out = i == 4 ? 2 * C : C;
            lora[te + mods[i] + ".lora_down.weight"] = counting({R, C}, 0.5f + float(i), 0.1f);
            lora[te + mods[i] + ".lora_up.weight"] = counting({out, R}, -0.3f * float(i + 1), 0.07f);
            lora[te + mods[i] + ".alpha"] = counting({}, 1.f, 0.f);  // alpha 1, rank 2: scale 0.5
        }
        auto f = lora::LoraFile::open(write_lora_values("nb_lora_fused.safetensors", lora));
        ASSERT_TRUE(f) << f.error().message;
        lora::LoraState state;
        auto r = state.apply(w, {{std::make_shared<lora::LoraFile>(*f), 0.8f, 1.f}});
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_TRUE(r->empty()) << (*r)[0];
        auto delta = [&](int i, int64_t row, int64_t col) {
            const Tensor &d = lora.at(te + mods[i] + ".lora_down.weight"), &u = lora.at(te + mods[i] + ".lora_up.weight");
            float s = 0;
            for (int64_t k = 0; k < R; ++k) s += u.data()[row * R + k] * d.data()[k * C + col];
            return s * 0.5f * 0.8f;
        };
        auto expect_near = [&](const std::string& key, int i, int64_t row0) {
            const Tensor& t = w.at(key);
            const auto& b = base.at(key);
            const int64_t rows = i == 4 ? 2 * C : C;
            for (int64_t row = 0; row < rows; ++row)
                for (int64_t col = 0; col < C; ++col) {
                    const size_t at = size_t((row0 + row) * C + col);
                    EXPECT_NEAR(t.data()[at], b[at] + delta(i, row, col), 1e-6f) << key << " " << mods[i];
                }
        };
        for (int i = 0; i < 3; ++i) expect_near(root + "attn.in_proj_weight", i, i * C);
        expect_near(root + "attn.out_proj.weight", 3, 0);
        expect_near(root + "mlp.c_fc.weight", 4, 0);
        state.restore(w);
        expect_bit_exact(w, base);

        // Without out_proj, A1111 merges none of q, k, v: a warning names them and the weights stay.
        lora.erase(te + "self_attn_out_proj.lora_down.weight");
        lora.erase(te + "self_attn_out_proj.lora_up.weight");
        lora.erase(te + "self_attn_out_proj.alpha");
        auto g = lora::LoraFile::open(write_lora_values("nb_lora_fused.safetensors", lora));
        ASSERT_TRUE(g) << g.error().message;
        auto p = state.apply(w, {{std::make_shared<lora::LoraFile>(*g), 0.8f, 1.f}});
        ASSERT_TRUE(p) << p.error().message;
        ASSERT_EQ(p->size(), 1u);
        EXPECT_NE((*p)[0].find("3 modules of fused text-encoder attentions"), std::string::npos) << (*p)[0];
        EXPECT_NE((*p)[0].find(te + "self_attn_q_proj"), std::string::npos) << (*p)[0];
        EXPECT_EQ(std::vector<float>(w.at(root + "attn.in_proj_weight").data(),
                                     w.at(root + "attn.in_proj_weight").data() + 3 * C * C),
                  base.at(root + "attn.in_proj_weight"));
        expect_near(root + "mlp.c_fc.weight", 4, 0);
        state.restore(w);
        std::filesystem::remove(std::filesystem::temp_directory_path() / "nb_lora_fused.safetensors");
    }
}

TEST(LoraFile, PeftNamingMergesLikeKohya) {
    // The kohya module, renamed to diffusers/PEFT keys (lora_A = down, lora_B = up), with and without alpha.
    auto a = lora_file("lora_A");
    const std::string kohya = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k";
    const auto& km =
        *std::find_if(a->modules.begin(), a->modules.end(), [&](auto& x) { return x.name == kohya; });
    const std::string peft = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k";
    auto path = write_lora("nb_lora_peft.safetensors", {{peft + ".lora_A.weight", km.down.shape},
                                                        {peft + ".lora_B.weight", km.up.shape}});
    auto f = lora::LoraFile::open(path);
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_EQ(f->modules.size(), 1u);
    EXPECT_EQ(f->modules[0].name, kohya);
    EXPECT_FALSE(f->modules[0].alpha);
    EXPECT_EQ(f->modules[0].scale(), 1.f);  // no alpha: alpha = rank
    auto d = lora::module_delta(f->modules[0], {32, 64}, 0.5f, "peft");
    ASSERT_TRUE(d);
    EXPECT_FLOAT_EQ(d->data()[0], 4 * 0.01f * 0.01f * 0.5f);
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace nb
