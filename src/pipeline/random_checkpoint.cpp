#include "pipeline/random_checkpoint.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "io/user_cache.h"

namespace nb::pipeline {

namespace {

namespace fs = std::filesystem;

// SD 1.5 (v1-inference.yaml): UNet model_channels 320, mult 1,2,4,4, 2 res blocks, attention on levels 0-2,
// context 768; VAE ch 128, mult 1,2,4,4, 2 res blocks, z 4; CLIP width 768, 12 layers, ff 3072.
// SD 2.x (v2-inference-v.yaml) differs only in its context (1024, open_clip ViT-H) and its transformers'
// projections (Linear: use_linear_in_transformer), besides the head width (64 channels, not in the tensors).
void unet_specs(std::vector<TensorSpec>& out, int64_t ctx = 768, bool linear_proj = false) {
    const std::string P = "model.diffusion_model.";
    const int64_t mc = 320, temb = 1280;
    const int64_t mult[] = {1, 2, 4, 4};
    auto add = [&](const std::string& n, Shape s) { out.push_back({P + n, std::move(s)}); };
    auto res = [&](const std::string& p, int64_t ci, int64_t co) {
        add(p + "in_layers.0.weight", {ci}), add(p + "in_layers.0.bias", {ci});
        add(p + "in_layers.2.weight", {co, ci, 3, 3}), add(p + "in_layers.2.bias", {co});
        add(p + "emb_layers.1.weight", {co, temb}), add(p + "emb_layers.1.bias", {co});
        add(p + "out_layers.0.weight", {co}), add(p + "out_layers.0.bias", {co});
        add(p + "out_layers.3.weight", {co, co, 3, 3}), add(p + "out_layers.3.bias", {co});
        if (ci != co) add(p + "skip_connection.weight", {co, ci, 1, 1}), add(p + "skip_connection.bias", {co});
    };
    auto st = [&](const std::string& p, int64_t c) {
        add(p + "norm.weight", {c}), add(p + "norm.bias", {c});
        add(p + "proj_in.weight", linear_proj ? Shape{c, c} : Shape{c, c, 1, 1}), add(p + "proj_in.bias", {c});
        const std::string b = p + "transformer_blocks.0.";
        for (const char* a : {"attn1", "attn2"}) {
            const int64_t kv = std::string(a) == "attn1" ? c : ctx;
            add(b + a + ".to_q.weight", {c, c});
            add(b + a + ".to_k.weight", {c, kv});
            add(b + a + ".to_v.weight", {c, kv});
            add(b + a + ".to_out.0.weight", {c, c}), add(b + a + ".to_out.0.bias", {c});
        }
        add(b + "ff.net.0.proj.weight", {8 * c, c}), add(b + "ff.net.0.proj.bias", {8 * c});
        add(b + "ff.net.2.weight", {c, 4 * c}), add(b + "ff.net.2.bias", {c});
        for (const char* n : {"norm1", "norm2", "norm3"})
            add(b + n + ".weight", {c}), add(b + n + ".bias", {c});
        add(p + "proj_out.weight", linear_proj ? Shape{c, c} : Shape{c, c, 1, 1}), add(p + "proj_out.bias", {c});
    };
    add("time_embed.0.weight", {temb, mc}), add("time_embed.0.bias", {temb});
    add("time_embed.2.weight", {temb, temb}), add("time_embed.2.bias", {temb});
    add("input_blocks.0.0.weight", {mc, 4, 3, 3}), add("input_blocks.0.0.bias", {mc});
    std::vector<int64_t> skips{mc};
    int64_t ch = mc;
    int idx = 1;
    for (int level = 0; level < 4; ++level) {
        for (int r = 0; r < 2; ++r, ++idx) {
            res(fmt::format("input_blocks.{}.0.", idx), ch, mult[level] * mc);
            ch = mult[level] * mc;
            if (level < 3) st(fmt::format("input_blocks.{}.1.", idx), ch);
            skips.push_back(ch);
        }
        if (level < 3) {
            add(fmt::format("input_blocks.{}.0.op.weight", idx), {ch, ch, 3, 3});
            add(fmt::format("input_blocks.{}.0.op.bias", idx), {ch});
            skips.push_back(ch);
            ++idx;
        }
    }
    res("middle_block.0.", ch, ch), st("middle_block.1.", ch), res("middle_block.2.", ch, ch);
    idx = 0;
    for (int level = 3; level >= 0; --level)
        for (int i = 0; i < 3; ++i, ++idx) {
            const int64_t ci = ch + skips.back();
            skips.pop_back();
            res(fmt::format("output_blocks.{}.0.", idx), ci, mult[level] * mc);
            ch = mult[level] * mc;
            int sub = 1;
            if (level < 3) st(fmt::format("output_blocks.{}.1.", idx), ch), sub = 2;
            if (level > 0 && i == 2)
                add(fmt::format("output_blocks.{}.{}.conv.weight", idx, sub), {ch, ch, 3, 3}),
                    add(fmt::format("output_blocks.{}.{}.conv.bias", idx, sub), {ch});
        }
    add("out.0.weight", {mc}), add("out.0.bias", {mc});
    add("out.2.weight", {4, mc, 3, 3}), add("out.2.bias", {4});
}

void vae_specs(std::vector<TensorSpec>& out) {
    const std::string P = "first_stage_model.";
    const int64_t ch = 128, z = 4;
    const int64_t mult[] = {1, 2, 4, 4};
    auto norm = [&](const std::string& p, int64_t c) { out.push_back({P + p + ".weight", {c}}), out.push_back({P + p + ".bias", {c}}); };
    auto conv = [&](const std::string& p, int64_t co, int64_t ci, int64_t k) {
        out.push_back({P + p + ".weight", {co, ci, k, k}}), out.push_back({P + p + ".bias", {co}});
    };
    auto resnet = [&](const std::string& p, int64_t ci, int64_t co) {
        norm(p + "norm1", ci), conv(p + "conv1", co, ci, 3), norm(p + "norm2", co), conv(p + "conv2", co, co, 3);
        if (ci != co) conv(p + "nin_shortcut", co, ci, 1);
    };
    auto mid = [&](const std::string& p, int64_t c) {
        resnet(p + "mid.block_1.", c, c);
        norm(p + "mid.attn_1.norm", c);
        for (const char* n : {"q", "k", "v", "proj_out"}) conv(p + "mid.attn_1." + n, c, c, 1);
        resnet(p + "mid.block_2.", c, c);
    };
    conv("encoder.conv_in", ch, 3, 3);
    int64_t ci = ch;
    for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 2; ++j) resnet(fmt::format("encoder.down.{}.block.{}.", i, j), ci, ch * mult[i]), ci = ch * mult[i];
        if (i < 3) conv(fmt::format("encoder.down.{}.downsample.conv", i), ci, ci, 3);
    }
    mid("encoder.", ci), norm("encoder.norm_out", ci), conv("encoder.conv_out", 2 * z, ci, 3);
    conv("quant_conv", 2 * z, 2 * z, 1), conv("post_quant_conv", z, z, 1);
    ci = ch * mult[3];
    conv("decoder.conv_in", ci, z, 3);
    mid("decoder.", ci);
    for (int i = 3; i >= 0; --i) {
        for (int j = 0; j < 3; ++j) resnet(fmt::format("decoder.up.{}.block.{}.", i, j), ci, ch * mult[i]), ci = ch * mult[i];
        if (i > 0) conv(fmt::format("decoder.up.{}.upsample.conv", i), ci, ci, 3);
    }
    norm("decoder.norm_out", ci), conv("decoder.conv_out", 3, ci, 3);
}

void clip_specs(std::vector<TensorSpec>& out) {
    const std::string P = "cond_stage_model.transformer.text_model.";
    const int64_t d = 768, ff = 3072;
    out.push_back({P + "embeddings.token_embedding.weight", {49408, d}});
    out.push_back({P + "embeddings.position_embedding.weight", {77, d}});
    for (int l = 0; l < 12; ++l) {
        const std::string p = fmt::format("{}encoder.layers.{}.", P, l);
        for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"})
            out.push_back({p + "self_attn." + n + ".weight", {d, d}}), out.push_back({p + "self_attn." + n + ".bias", {d}});
        for (const char* n : {"layer_norm1", "layer_norm2"})
            out.push_back({p + n + ".weight", {d}}), out.push_back({p + n + ".bias", {d}});
        out.push_back({p + "mlp.fc1.weight", {ff, d}}), out.push_back({p + "mlp.fc1.bias", {ff}});
        out.push_back({p + "mlp.fc2.weight", {d, ff}}), out.push_back({p + "mlp.fc2.bias", {d}});
    }
    out.push_back({P + "final_layer_norm.weight", {d}}), out.push_back({P + "final_layer_norm.bias", {d}});
}

// open_clip ViT-H-14's text tower as SD 2.x stores it (FrozenOpenCLIPEmbedder): width 1024, 24 layers, 16 heads,
// MLP 4096, fused attention in_proj, plus text_projection and logit_scale (stored, unused).
void openclip_h_specs(std::vector<TensorSpec>& out) {
    const std::string P = "cond_stage_model.model.";
    const int64_t d = 1024, ff = 4096;
    out.push_back({P + "token_embedding.weight", {49408, d}});
    out.push_back({P + "positional_embedding", {77, d}});
    for (int l = 0; l < 24; ++l) {
        const std::string p = fmt::format("{}transformer.resblocks.{}.", P, l);
        out.push_back({p + "attn.in_proj_weight", {3 * d, d}}), out.push_back({p + "attn.in_proj_bias", {3 * d}});
        out.push_back({p + "attn.out_proj.weight", {d, d}}), out.push_back({p + "attn.out_proj.bias", {d}});
        for (const char* n : {"ln_1", "ln_2"}) out.push_back({p + n + ".weight", {d}}), out.push_back({p + n + ".bias", {d}});
        out.push_back({p + "mlp.c_fc.weight", {ff, d}}), out.push_back({p + "mlp.c_fc.bias", {ff}});
        out.push_back({p + "mlp.c_proj.weight", {d, ff}}), out.push_back({p + "mlp.c_proj.bias", {d}});
    }
    out.push_back({P + "ln_final.weight", {d}}), out.push_back({P + "ln_final.bias", {d}});
    out.push_back({P + "text_projection", {d, d}});
}

// CLIP's byte-to-unicode table (printable bytes map to themselves, the rest to U+0100 + n).
std::vector<std::string> byte_symbols() {
    std::vector<std::string> sym(256);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        const char32_t cp = printable ? char32_t(b) : char32_t(256 + n++);
        std::string s;
        if (cp < 0x80) s += char(cp);
        else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
        sym[size_t(b)] = s;
    }
    return sym;
}

Result<void> write_vocab(const std::string& stem_path) {
    nlohmann::json v = nlohmann::json::object();
    const auto sym = byte_symbols();
    for (int b = 0; b < 256; ++b) v[sym[size_t(b)]] = b, v[sym[size_t(b)] + "</w>"] = 256 + b;
    v["<|startoftext|>"] = 49406;
    v["<|endoftext|>"] = 49407;
    std::ofstream(stem_path + ".vocab.json") << v.dump();
    std::ofstream m(stem_path + ".merges.txt");
    m << "#version: 0.2\n";
    if (!m) return make_error(Errc::io, "{}.merges.txt: write failed", stem_path);
    return {};
}

}  // namespace

std::vector<TensorSpec> sd15_inventory() {
    std::vector<TensorSpec> s;
    unet_specs(s);
    vae_specs(s);
    clip_specs(s);
    return s;
}

std::vector<TensorSpec> sd2_inventory() {
    std::vector<TensorSpec> s;
    unet_specs(s, 1024, true);
    vae_specs(s);
    openclip_h_specs(s);
    return s;
}

std::vector<TensorSpec> taesd_decoder_inventory() {
    // taesd.py Decoder(latent_channels=4) as a bare Sequential: Clamp, conv(4, 64), ReLU, then 3 x (3 Blocks,
    // Upsample, conv without bias) and a last Block, conv(64, 3).
    std::vector<TensorSpec> s;
    auto conv = [&](const std::string& n, int64_t co, int64_t ci, bool bias = true) {
        s.push_back({n + ".weight", {co, ci, 3, 3}});
        if (bias) s.push_back({n + ".bias", {co}});
    };
    conv("1", 64, 4);
    for (int b : {3, 4, 5, 8, 9, 10, 13, 14, 15, 18})
        for (int c : {0, 2, 4}) conv(fmt::format("{}.conv.{}", b, c), 64, 64);
    for (int c : {7, 12, 17}) conv(std::to_string(c), 64, 64, false);
    conv("19", 3, 64);
    return s;
}

namespace {

// Streams `specs` to `path` tensor by tensor as fp16: weights N(0,1)/sqrt(fan_in), 1-D weights 1, biases 0.
// Atomic (temp + rename).
Result<void> write_random(const std::string& path, const std::vector<TensorSpec>& specs, uint64_t seed,
                          const std::string& format) {
    nlohmann::json h = nlohmann::json::object();
    h["__metadata__"] = {{"format", format}};
    uint64_t off = 0;
    for (const auto& s : specs) {
        const uint64_t bytes = uint64_t(shape_numel(s.shape)) * 2;
        h[s.name] = {{"dtype", "F16"}, {"shape", s.shape}, {"data_offsets", {off, off + bytes}}};
        off += bytes;
    }
    std::string hs = h.dump();
    while (hs.size() % 8) hs.push_back(' ');
    // The JSON object is key-sorted: data goes in the order offsets were assigned above.
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return make_error(Errc::io, "{}: cannot create", tmp);
    uint64_t n = hs.size();
    bool ok = std::fwrite(&n, 8, 1, f) == 1 && std::fwrite(hs.data(), 1, hs.size(), f) == hs.size();
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<uint16_t> buf;
    for (const auto& s : specs) {
        const int64_t numel = shape_numel(s.shape);
        buf.resize(size_t(numel));
        const bool bias = s.name.ends_with(".bias");
        if (s.shape.size() == 1) {
            std::fill(buf.begin(), buf.end(), f32_to_f16(bias ? 0.f : 1.f));
        } else {
            const float scale = 1.f / std::sqrt(float(numel / s.shape[0]));
            for (auto& v : buf) v = f32_to_f16(nd(rng) * scale);
        }
        ok = ok && std::fwrite(buf.data(), 2, buf.size(), f) == buf.size();
    }
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return make_error(Errc::io, "{}: write failed", path);
    }
    return {};
}

}  // namespace

Result<std::string> ensure_random_taesd(const std::function<void(const std::string&)>& log) {
    NB_TRY(dir, user_cache_folder());
    const fs::path p = dir / "random-taesd-decoder-fp16.safetensors";
    if (fs::exists(p)) return p.string();
    if (log) log("writing a random-weight TAESD decoder to " + p.string() + " (once, 2.4 MB)");
    if (auto r = write_random(p.string(), taesd_decoder_inventory(), 0, "random-weight TAESD decoder (nanobanana bench)");
        !r)
        return std::unexpected(r.error());
    return p.string();
}

namespace {

// A random checkpoint with its stand-in vocabulary, written once to the cache folder as <stem>.safetensors.
Result<std::string> ensure_random_model(const std::string& stem, const std::vector<TensorSpec>& specs,
                                        const std::string& what, const std::string& size,
                                        const std::function<void(const std::string&)>& log) {
    NB_TRY(dir, user_cache_folder());
    const fs::path p = dir / (stem + ".safetensors");
    if (fs::exists(p) && fs::exists(dir / (stem + ".vocab.json"))) return p.string();
    if (log) log("writing a random-weight " + what + " checkpoint to " + p.string() + " (once, " + size + ")");
    if (auto r = write_random(p.string(), specs, 0, "random-weight " + what + " layout (nanobanana bench)"); !r)
        return std::unexpected(r.error());
    if (auto r = write_vocab((dir / stem).string()); !r) return std::unexpected(r.error());
    return p.string();
}

}  // namespace

Result<std::string> ensure_random_sd15(const std::function<void(const std::string&)>& log) {
    return ensure_random_model("random-sd15-fp16", sd15_inventory(), "SD 1.5", "~2.1 GB", log);
}

Result<std::string> ensure_random_checkpoint(const std::string& layout, const std::function<void(const std::string&)>& log) {
    if (layout == "sd15" || layout.empty()) return ensure_random_sd15(log);
    if (layout != "sd2")
        return make_error(Errc::invalid_argument, "random checkpoint layout must be sd15 or sd2 (got '{}')", layout);
    return ensure_random_model("random-sd2-fp16", sd2_inventory(), "SD 2.x (768-v)", "~2.6 GB", log);
}

}  // namespace nb::pipeline
