// External VAE files (issue 24 part 3) on the demo model: the checkpoint's own VAE cut out into a file -- with or
// without "first_stage_model.", fp16 or fp32, in diffusers names -- gives the bit-identical image, for decode
// (txt2img) and encode (img2img); a changed VAE a different one. A1111's "VAE hash" / "VAE" infotext fields,
// "Automatic" (<model>.vae.safetensors beside the checkpoint), swapping without a reload, and one-line errors
// naming the file (library and CLI, which then writes nothing).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "image/image.h"
#include "io/hash.h"
#include "nanobanana/engine.h"
#include "pipeline/sd_model.h"
#include "testutil/cli.h"
#include "testutil/vae_files.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

const fs::path kDemo = (fs::path(__FILE__).parent_path() / "../../models/demo").lexically_normal();
const std::string kModel = (kDemo / "demo.safetensors").string();

std::string temp_dir() {
    const fs::path d = fs::path(::testing::TempDir()) / ("nb_vae_" + std::to_string(getpid()));
    fs::create_directories(d);
    return d.string();
}

// Written afresh by each call (ctest runs each test in its own process; within one, a rewrite is atomic).
std::string vae_file(const std::string& name, const test::VaeCut& cut = {}) {
    const std::string path = temp_dir() + "/" + name;
    test::write_vae_file(kModel, path, cut);
    return path;
}

std::unique_ptr<Engine> load(const std::string& vae, const std::string& model = kModel) {
    LoadOptions o;
    o.model_path = model;
    o.vae = vae;
    auto e = Engine::load(o);
    if (!e) ADD_FAILURE() << e.error().message;
    return e ? std::move(*e) : nullptr;
}

GenerateParams small(int64_t seed = 11) {
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.width = p.height = 64;
    p.steps = 3;
    p.seed = seed;
    p.sampler = "euler";
    return p;
}

GeneratedImage run(Engine& e, const GenerateParams& p) {
    auto r = e.generate(p);
    if (!r || r->empty()) {
        ADD_FAILURE() << (r ? "no image" : r.error().message);
        return {};
    }
    return std::move(r->front());
}

// An img2img request on a fixed picture: its latent depends on the VAE encoder.
GenerateParams small_img2img() {
    GenerateParams p = small(12);
    p.init_image = Image{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3)};
    for (size_t i = 0; i < p.init_image.pixels.size(); ++i) p.init_image.pixels[i] = uint8_t((i * 7) % 251);
    p.denoising_strength = 0.6f;
    return p;
}

std::string short_hash(const std::string& path) {
    auto h = sha256_file(path);
    EXPECT_TRUE(h) << h.error().message;
    return h ? h->substr(0, 10) : "";
}

std::string param(const std::string& infotext, const std::string& key) {
    for (const auto& [k, v] : parse_infotext(infotext))
        if (k == key) return v;
    return "<absent>";
}

TEST(ExternalVAE, CutOutOfTheCheckpointGivesTheIdenticalImage) {
    auto e = load("none");
    ASSERT_TRUE(e);
    const GeneratedImage own = run(*e, small());
    const GeneratedImage own_i2i = run(*e, small_img2img());
    EXPECT_EQ(param(own.parameters, "VAE"), "<absent>");  // A1111 writes the fields only for a VAE file

    struct Case {
        const char* name;
        test::VaeCut cut;
    };
    const Case cases[] = {
        {"ldm_prefixed_fp16.safetensors", {.keep_prefix = true}},
        {"ldm_fp16.safetensors", {.keep_prefix = false}},
        {"ldm_prefixed_fp32.safetensors", {.keep_prefix = true, .fp32 = true}},
        {"ldm_fp32.safetensors", {.keep_prefix = false, .fp32 = true}},
        {"diffusers_fp16.safetensors", {.diffusers = true}},
        {"diffusers_legacy_fp32.safetensors", {.fp32 = true, .diffusers = true, .legacy_attention = true}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const std::string path = vae_file(c.name, c.cut);
        auto r = e->set_vae(path);  // swapped in without reloading the checkpoint
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(e->info().vae, path);
        const GeneratedImage g = run(*e, small());
        EXPECT_TRUE(g.image.pixels == own.image.pixels);
        EXPECT_EQ(param(g.parameters, "VAE"), c.name);
        EXPECT_EQ(param(g.parameters, "VAE hash"), short_hash(path));
        const GeneratedImage i2i = run(*e, small_img2img());
        EXPECT_TRUE(i2i.latent == own_i2i.latent);  // the encoder is the file's too
        EXPECT_TRUE(i2i.image.pixels == own_i2i.image.pixels);
    }
    // Given at load time instead.
    auto loaded = load(vae_file("ldm_fp16.safetensors", {.keep_prefix = false}));
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(run(*loaded, small()).image.pixels == own.image.pixels);
    EXPECT_NE(loaded->describe().find("vae file: "), std::string::npos);
}

TEST(ExternalVAE, ADifferentVaeGivesADifferentImageForEncodeAndDecode) {
    auto e = load("none");
    ASSERT_TRUE(e);
    const GeneratedImage own = run(*e, small());
    const GeneratedImage own_i2i = run(*e, small_img2img());
    const std::string other = vae_file("other.safetensors", {.perturb = 0.25f});
    ASSERT_TRUE(e->set_vae(other));
    const GeneratedImage g = run(*e, small());
    EXPECT_FALSE(g.image.pixels == own.image.pixels);  // decoder.conv_out.bias moved
    EXPECT_TRUE(g.latent == own.latent);               // sampling does not see the VAE
    EXPECT_FALSE(run(*e, small_img2img()).latent == own_i2i.latent);  // encoder.conv_out.bias moved
    // Back to the checkpoint's own VAE: its image again, without the VAE fields.
    ASSERT_TRUE(e->set_vae("none"));
    EXPECT_EQ(e->info().vae, "");
    const GeneratedImage back = run(*e, small());
    EXPECT_TRUE(back.image.pixels == own.image.pixels);
    EXPECT_EQ(back.parameters, own.parameters);
}

TEST(ExternalVAE, InfotextFieldsAsA1111WritesThemAndTheyRoundTrip) {
    auto e = load("none");
    ASSERT_TRUE(e);
    // A name with a comma, which A1111 quotes.
    const std::string path = vae_file("my, vae.safetensors");
    ASSERT_TRUE(e->set_vae(path));
    const GeneratedImage g = run(*e, small());
    const std::string hash = short_hash(path);
    // create_infotext's order: ..., Model hash, Model, VAE hash, VAE, ...
    const std::string expect = "Model: demo, VAE hash: " + hash + ", VAE: \"my, vae.safetensors\", ";
    EXPECT_NE(g.parameters.find(expect), std::string::npos) << g.parameters;
    EXPECT_EQ(param(g.parameters, "VAE hash"), hash);
    EXPECT_EQ(param(g.parameters, "VAE"), "my, vae.safetensors");
    // Through a PNG and back, and the settings the infotext carries still apply.
    const std::string png = temp_dir() + "/roundtrip.png";
    ASSERT_TRUE(save_png(png, g.image, g.parameters));
    auto text = read_png_parameters(png);
    ASSERT_TRUE(text);
    EXPECT_EQ(*text, g.parameters);
    GenerateParams p;
    ASSERT_TRUE(params_from_infotext(*text, p));
    EXPECT_EQ(p.seed, 11);
    EXPECT_EQ(p.steps, 3);
}

TEST(ExternalVAE, AutomaticPicksTheVaeBesideTheCheckpoint) {
    const fs::path dir = fs::path(temp_dir()) / "auto";
    fs::create_directories(dir);
    for (const char* f : {"vocab.json", "merges.txt"})
        if (!fs::exists(dir / f)) fs::create_symlink(kDemo / f, dir / f);
    const std::string model = (dir / "m.safetensors").string();
    if (!fs::exists(model)) fs::create_symlink(kModel, model);
    EXPECT_EQ(pipeline::resolve_vae("auto", model), "");  // nothing beside it yet: the checkpoint's own
    const std::string beside = (dir / "m.vae.safetensors").string();
    test::write_vae_file(kModel, beside, {.perturb = 0.25f});
    for (const char* choice : {"auto", "Automatic", ""}) EXPECT_EQ(pipeline::resolve_vae(choice, model), beside);
    for (const char* choice : {"none", "None"}) EXPECT_EQ(pipeline::resolve_vae(choice, model), "");
    EXPECT_EQ(pipeline::resolve_vae("/x/y.safetensors", model), "/x/y.safetensors");

    auto e = load("auto", model);  // LoadOptions' default
    ASSERT_TRUE(e);
    EXPECT_EQ(e->info().vae, beside);
    const GeneratedImage g = run(*e, small());
    EXPECT_EQ(param(g.parameters, "VAE"), "m.vae.safetensors");
    ASSERT_TRUE(e->set_vae("None"));
    const GeneratedImage own = run(*e, small());
    EXPECT_FALSE(g.image.pixels == own.image.pixels);
    ASSERT_TRUE(e->set_vae("Automatic"));
    EXPECT_TRUE(run(*e, small()).image.pixels == g.image.pixels);
    EXPECT_EQ(LoadOptions{}.vae, "auto");
}

// A broken or mismatched VAE file: `write` makes it; the error must name it, in one line.
struct BadFile {
    const char* name;
    const char* says;  // part of the message
};

void expect_one_line_naming(const Error& e, const std::string& path, const char* says) {
    EXPECT_NE(e.message.find(path), std::string::npos) << e.message;
    EXPECT_NE(e.message.find(says), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find('\n'), std::string::npos) << e.message;
}

std::vector<std::pair<std::string, const char*>> bad_files() {
    const std::string dir = temp_dir();
    std::ofstream(dir + "/garbage.safetensors") << "this is not a safetensors file at all";
    // A tensor of the wrong shape: decoder.mid.block_1.conv1 as a 1x1 conv.
    auto st = SafeTensors::open(vae_file("ldm_fp16.safetensors", {.keep_prefix = false}));
    EXPECT_TRUE(st);
    std::vector<TensorToWrite> wrong, wide, none;
    for (const auto& e : st->entries()) {
        TensorToWrite w{e.name, e.dtype_name, e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)};
        TensorToWrite v = w;
        if (e.name == "decoder.mid.block_1.conv1.weight") {
            w.shape = {e.shape[0], e.shape[1], 1, 1};
            w.bytes.resize(size_t(e.shape[0] * e.shape[1]) * 2);
        }
        if (e.name == "quant_conv.weight") {  // 8 latent channels instead of the UNet's 4
            v.shape = {16, e.shape[1], 1, 1};
            v.bytes.assign(size_t(16 * e.shape[1]) * 2, 0);
        }
        wrong.push_back(std::move(w));
        wide.push_back(std::move(v));
    }
    none.push_back({"foo.weight", "F32", {2}, std::vector<uint8_t>(8, 0)});
    EXPECT_TRUE(write_safetensors(dir + "/wrong_shape.safetensors", wrong));
    EXPECT_TRUE(write_safetensors(dir + "/wide_latent.safetensors", wide));
    EXPECT_TRUE(write_safetensors(dir + "/no_vae.safetensors", none));
    return {{dir + "/missing.safetensors", "no such file"},
            {dir + "/garbage.safetensors", ""},
            {dir + "/wrong_shape.safetensors", "tensor 'decoder.mid.block_1.conv1.weight' has wrong shape"},
            {dir + "/wide_latent.safetensors", "latents have 8 channels, the checkpoint's UNet 4"},
            {dir + "/no_vae.safetensors", "encoder.conv_in.weight"}};
}

TEST(ExternalVAE, BadFilesAreOneLineErrorsNamingTheFile) {
    auto e = load("none");
    ASSERT_TRUE(e);
    const GeneratedImage own = run(*e, small());
    for (const auto& [path, says] : bad_files()) {
        SCOPED_TRACE(path);
        LoadOptions o;
        o.model_path = kModel;
        o.vae = path;
        auto l = Engine::load(o);
        ASSERT_FALSE(l);
        expect_one_line_naming(l.error(), path, says);
        auto r = e->set_vae(path);
        ASSERT_FALSE(r);
        expect_one_line_naming(r.error(), path, says);
        // The engine keeps the VAE it had.
        EXPECT_EQ(e->info().vae, "");
        EXPECT_TRUE(run(*e, small()).image.pixels == own.image.pixels);
    }
}

TEST(ExternalVAE, CliFlag) {
    const std::string dir = temp_dir();
    const std::string args = "generate -m " + kModel + " -p \"a red circle\" -W 64 -H 64 --steps 3 -s 11 --sampling-method euler";
    const std::string vae = vae_file("ldm_fp16.safetensors", {.keep_prefix = false});
    const std::string out = dir + "/cli.png";
    auto r = test::run_cli(args + " --vae " + vae + " -o " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    auto text = read_png_parameters(out);
    ASSERT_TRUE(text);
    EXPECT_EQ(param(*text, "VAE"), "ldm_fp16.safetensors");
    EXPECT_EQ(param(*text, "VAE hash"), short_hash(vae));
    for (const auto& [path, says] : bad_files()) {
        SCOPED_TRACE(path);
        const std::string bad_out = dir + "/bad.png";
        fs::remove(bad_out);
        auto b = test::run_cli(args + " --vae " + path + " -o " + bad_out);
        EXPECT_NE(b.code, 0);
        EXPECT_NE(b.err.find(path), std::string::npos) << b.err;
        EXPECT_NE(b.err.find(says), std::string::npos) << b.err;
        EXPECT_FALSE(fs::exists(bad_out));
        // The error is the last line, and one line.
        std::string last = b.err;
        while (!last.empty() && last.back() == '\n') last.pop_back();
        last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
        EXPECT_TRUE(last.starts_with("nanobanana: ") && last.find(path) != std::string::npos) << b.err;
    }
}

}  // namespace
}  // namespace nb
