#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "io/diffusers_names.h"
#include "io/weight_store.h"
#include "testutil/diffusers.h"
#include "testutil/golden.h"

namespace nb {
namespace {

namespace fs = std::filesystem;
using namespace diffusers;
using test::ldm_to_diffusers;

// Writes `ldm_file` as a diffusers folder (unet full precision, vae as an fp16 variant, text encoder as
// model.safetensors) plus one unknown unet key; returns the folder.
std::string make_diffusers_folder(const std::string& ldm_file, const Layout& layout, const std::string& name) {
    const SafeTensors& st = test::golden(ldm_file);
    std::map<std::string, std::vector<TensorToWrite>> files;
    for (const auto& e : st.entries()) {
        auto d = ldm_to_diffusers(e.name, layout);
        EXPECT_TRUE(d) << "no inverse for " << e.name;
        if (!d) continue;
        Shape shape = e.shape;
        if (d->squeeze) {
            EXPECT_EQ(shape.size(), 4u) << e.name;
            shape.resize(2);
        }
        files[d->folder].push_back({d->key, e.dtype_name, shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)});
    }
    files["unet"].push_back({"extra_thing.weight", "F32", {2}, std::vector<uint8_t>(8, 0)});
    fs::path root = fs::path(::testing::TempDir()) / name;
    fs::remove_all(root);
    const std::map<std::string, std::string> file_names = {{"unet", "diffusion_pytorch_model.safetensors"},
                                                           {"vae", "diffusion_pytorch_model.fp16.safetensors"},
                                                           {"text_encoder", "model.safetensors"}};
    for (const auto& [folder, tensors] : files) {
        fs::create_directories(root / folder);
        auto r = write_safetensors((root / folder / file_names.at(folder)).string(), tensors);
        EXPECT_TRUE(r) << r.error().message;
    }
    fs::create_directories(root / "tokenizer");
    std::ofstream(root / "model_index.json") << R"({"_class_name": "StableDiffusionPipeline"})";
    return root.string();
}

// Every LDM tensor of `ldm_file` must come back from the diffusers folder with its name, shape, dtype, bytes.
void expect_round_trip(const std::string& ldm_file, const WeightStore& ws) {
    const SafeTensors& st = test::golden(ldm_file);
    for (const auto& e : st.entries()) {
        const TensorEntry* got = ws.find(e.name);
        ASSERT_NE(got, nullptr) << "missing after round trip: " << e.name;
        EXPECT_EQ(got->shape, e.shape) << e.name;
        EXPECT_EQ(got->dtype_name, e.dtype_name) << e.name;
        ASSERT_EQ(got->nbytes, e.nbytes) << e.name;
        EXPECT_EQ(std::memcmp(got->data, e.data, e.nbytes), 0) << "values differ: " << e.name;
    }
    EXPECT_EQ(ws.entries().size(), st.entries().size() + 1);  // + the unknown key
    ASSERT_EQ(ws.unused().size(), 1u);
    EXPECT_EQ(ws.unused()[0], "unet/extra_thing.weight");
    EXPECT_NE(ws.find("unet/extra_thing.weight"), nullptr);
}

TEST(WeightStore, DiffusersFolderRoundTripsSdTiny) {
    // sd_tiny: UNet num_res_blocks 2, attention on level 0 only (= diffusers up_blocks.1); VAE 4 levels.
    Layout layout{2, {false, true}, 4};
    std::string dir = make_diffusers_folder("golden/pipeline/sd_tiny_fp16.safetensors", layout, "diffusers_sd_tiny");
    auto ws = WeightStore::open(dir);
    ASSERT_TRUE(ws) << ws.error().message;
    EXPECT_EQ(ws->format(), "diffusers");
    EXPECT_EQ(ws->tokenizer_dir(), (fs::path(dir) / "tokenizer").string());
    EXPECT_NE(ws->metadata().at("diffusers.model_index").find("StableDiffusionPipeline"), std::string::npos);
    expect_round_trip("golden/pipeline/sd_tiny_fp16.safetensors", *ws);
    // q, k, v, proj_out weights of the encoder and decoder mid attention: diffusers [C,C] -> LDM [C,C,1,1].
    EXPECT_EQ(ws->reshaped().size(), 8u);
    const TensorEntry* q = ws->find("first_stage_model.decoder.mid.attn_1.q.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->shape, (Shape{64, 64, 1, 1}));
    auto t = ws->load_f32("model.diffusion_model.output_blocks.2.1.conv.weight");
    ASSERT_TRUE(t) << t.error().message;
}

TEST(WeightStore, DiffusersLayoutComesFromKeys) {
    // unet_sd2_v has num_res_blocks 1: input_blocks 1,2 / 3 (down) / 4; a fixed SD1 table would misplace them.
    Layout layout{1, {false, true}, 0};
    std::string dir = make_diffusers_folder("golden/unet/unet_sd2_v.safetensors", layout, "diffusers_sd2");
    auto ws = WeightStore::open(dir);
    ASSERT_TRUE(ws) << ws.error().message;
    expect_round_trip("golden/unet/unet_sd2_v.safetensors", *ws);
    EXPECT_EQ(ws->tokenizer_dir(), (fs::path(dir) / "tokenizer").string());
}

// Found by fuzz/targets/diffusers_names: a folder naming block 748211437 overflowed the index arithmetic, and
// one naming up_blocks.2000000000 would loop over two billion levels. Block counts beyond any model are refused.
TEST(WeightStore, AbsurdDiffusersBlockIndicesAreRefused) {
    using namespace nb::diffusers;
    const std::vector<std::string> vae{"decoder.up_blocks.3.resnets.0.conv1.weight"};
    auto l = detect_layout(std::vector<std::string>{"down_blocks.0.resnets.1.conv1.weight",
                                                    "up_blocks.70.resnets.2.conv1.weight"}, vae);
    ASSERT_FALSE(l);
    EXPECT_NE(l.error().message.find("up_blocks: 71 of them"), std::string::npos) << l.error().message;
    auto ok = detect_layout(std::vector<std::string>{"down_blocks.0.resnets.1.conv1.weight"}, vae);
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_FALSE(to_ldm(Part::unet, "down_blocks.748211437.resnets.0.conv1.weight", *ok));
    EXPECT_FALSE(to_ldm(Part::unet, "down_blocks.99999999999999999999.resnets.0.conv1.weight", *ok));
    EXPECT_TRUE(to_ldm(Part::unet, "down_blocks.1.resnets.0.conv1.weight", *ok));
}

TEST(WeightStore, ForwardNamesOfKnownDiffusersKeys) {
    Layout l{2, {false, true, true, true}, 4};
    auto name = [&](Part p, const char* k) {
        auto r = to_ldm(p, k, l);
        return r ? r->ldm : std::string("<none>");
    };
    EXPECT_EQ(name(Part::unet, "down_blocks.1.resnets.1.time_emb_proj.weight"),
              "model.diffusion_model.input_blocks.5.0.emb_layers.1.weight");
    EXPECT_EQ(name(Part::unet, "down_blocks.2.downsamplers.0.conv.bias"), "model.diffusion_model.input_blocks.9.0.op.bias");
    EXPECT_EQ(name(Part::unet, "up_blocks.0.upsamplers.0.conv.weight"),
              "model.diffusion_model.output_blocks.2.1.conv.weight");
    EXPECT_EQ(name(Part::unet, "up_blocks.1.upsamplers.0.conv.weight"),
              "model.diffusion_model.output_blocks.5.2.conv.weight");
    EXPECT_EQ(name(Part::unet, "mid_block.resnets.1.conv_shortcut.weight"),
              "model.diffusion_model.middle_block.2.skip_connection.weight");
    EXPECT_EQ(name(Part::vae, "decoder.up_blocks.0.resnets.2.conv_shortcut.weight"),
              "first_stage_model.decoder.up.3.block.2.nin_shortcut.weight");
    EXPECT_EQ(name(Part::vae, "encoder.mid_block.attentions.0.query.weight"),
              "first_stage_model.encoder.mid.attn_1.q.weight");
    EXPECT_EQ(name(Part::vae, "decoder.mid_block.attentions.0.proj_attn.bias"),
              "first_stage_model.decoder.mid.attn_1.proj_out.bias");
    EXPECT_EQ(name(Part::unet, "down_blocks.0.resnets.5.norm1.weight"), "<none>");  // beyond the layout
    EXPECT_EQ(name(Part::unet, "down_blocks.0.resnets.0.mystery.weight"), "<none>");
}

TEST(WeightStore, SingleFilesKeepTheirNames) {
    auto st = WeightStore::open(test::shared_path("golden/pipeline/sd_tiny_fp16.safetensors"));
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_EQ(st->format(), "safetensors");
    EXPECT_EQ(st->entries().size(), 521u);
    EXPECT_TRUE(st->metadata().count("unet_config"));
    EXPECT_EQ(st->tokenizer_dir(), "");
    EXPECT_NE(st->find("model.diffusion_model.input_blocks.0.0.weight"), nullptr);

    auto pth = WeightStore::open(test::shared_path("assets/upscalers/RealESRGANv2-animevideo-xsx2.pth"));
    ASSERT_TRUE(pth) << pth.error().message;
    EXPECT_EQ(pth->format(), "torch-zip");
    EXPECT_EQ(pth->metadata().at("torch_zip.unwrapped"), "params");
    auto w = pth->load_f32("body.0.weight");
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_EQ(w->shape(), (Shape{64, 3, 3, 3}));
    EXPECT_FALSE(pth->load_f32("body.99.weight"));
}

TEST(WeightStore, ErrorsNameThePath) {
    auto missing = WeightStore::open("/nonexistent/model.safetensors");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("/nonexistent/model.safetensors"), std::string::npos);
    fs::path empty = fs::path(::testing::TempDir()) / "not_diffusers";
    fs::remove_all(empty);
    fs::create_directories(empty);
    auto e = WeightStore::open(empty.string());
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("model_index.json"), std::string::npos);
    std::ofstream(empty / "model_index.json") << "{}";
    auto none = WeightStore::open(empty.string());
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, Errc::missing);
}

}  // namespace
}  // namespace nb
