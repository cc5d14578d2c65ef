#include "pipeline/embeddings.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "io/hash.h"
#include "io/safetensors.h"
#include "io/torch_zip.h"

namespace nb::pipeline {

namespace fs = std::filesystem;

namespace {

std::string lower_ext(const fs::path& p) {
    std::string e = p.extension().string();
    std::ranges::transform(e, e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return e;
}

bool is_embedding_file(const fs::path& p) {
    const std::string e = lower_ext(p);
    return e == ".safetensors" || e == ".pt" || e == ".bin";
}

// A tensor entry as [vectors, width] fp32 (a 1-D tensor is one vector, as A1111 unsqueezes diffusers concepts).
Result<Tensor> as_vectors(const TensorEntry& e) {
    if (e.shape.empty() || e.shape.size() > 2 || shape_numel(e.shape) == 0)
        return make_error(Errc::format, "{}: tensor '{}' has shape {}: expected [vectors, width]", e.source, e.name,
                          shape_str(e.shape));
    NB_TRY(t, entry_to_f32(e));
    return e.shape.size() == 1 ? t.reshape({1, e.shape[0]}) : t;
}

// Picks the vectors among a file's tensors as A1111's load_from_file does.
Result<Embedding> from_entries(const std::string& path, const std::vector<TensorEntry>& entries) {
    Embedding out;
    std::vector<const TensorEntry*> params;  // A1111 layout: string_to_param {'*': tensor}, flattened
    const TensorEntry *clip_l = nullptr, *clip_g = nullptr;
    for (const auto& e : entries) {
        if (e.name.starts_with("string_to_param.")) params.push_back(&e);
        if (e.name == "clip_l") clip_l = &e;
        if (e.name == "clip_g") clip_g = &e;
    }
    if (params.size() > 1 || (params.empty() && !(clip_l && clip_g) && entries.size() > 1))
        return make_error(Errc::format, "{}: embedding file has multiple terms in it ({} tensors)", path,
                          params.size() > 1 ? params.size() : entries.size());
    if (clip_l && clip_g && params.empty()) {  // SDXL: one set of vectors per text encoder
        NB_TRY(l, as_vectors(*clip_l));
        NB_TRY(g, as_vectors(*clip_g));
        out.vectors = l;
        out.info.shape = int(l.dim(1) + g.dim(1));  // A1111's shape: the two widths together
        out.info.vectors = int(g.dim(0));
        return out;
    }
    const TensorEntry* e = !params.empty() ? params[0] : entries.empty() ? nullptr : &entries[0];
    if (!e) return make_error(Errc::format, "{}: no tensor in the file (not an embedding)", path);
    NB_TRY(v, as_vectors(*e));
    out.vectors = v;
    out.info.vectors = int(v.dim(0));
    out.info.shape = int(v.dim(1));
    return out;
}

}  // namespace

Result<Embedding> read_embedding(const std::string& path) {
    Embedding out;
    if (lower_ext(path) == ".safetensors") {
        NB_TRY(st, SafeTensors::open(path));
        NB_TRY(e, from_entries(path, st.entries()));
        out = std::move(e);
    } else {
        NB_TRY(z, TorchZip::open(path));
        NB_TRY(e, from_entries(path, z.entries()));
        out = std::move(e);
        const auto& v = z.values();
        if (auto it = v.find("step"); it != v.end()) out.info.step = std::strtoll(it->second.c_str(), nullptr, 10);
        if (auto it = v.find("sd_checkpoint"); it != v.end()) out.info.sd_checkpoint = it->second;
        if (auto it = v.find("sd_checkpoint_name"); it != v.end()) out.info.sd_checkpoint_name = it->second;
    }
    out.info.name = fs::path(path).stem().string();
    out.info.path = path;
    NB_TRY(hash, sha256_file(path));
    out.info.hash = hash;
    return out;
}

EmbeddingSet EmbeddingSet::load(const std::string& dir, int64_t width, const text::ClipTokenizer* tokenizer) {
    EmbeddingSet set;
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(dir, ec)) return set;
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink |
                                                             fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec) && is_embedding_file(it->path()) && it->file_size(ec) > 0)
            files.push_back(it->path());
    std::ranges::sort(files);
    std::map<std::string, std::string> seen;  // name -> path of the loaded one
    for (const auto& f : files) {
        auto skip = [&](EmbeddingInfo info, std::string reason) {
            info.name = f.stem().string();
            info.path = f.string();
            info.skipped = std::move(reason);
            set.skipped_.push_back(std::move(info));
        };
        auto e = read_embedding(f.string());
        if (!e) {
            skip({}, e.error().message);
            continue;
        }
        const EmbeddingInfo& info = e->info;
        if (width > 0 && info.shape != width) {
            skip(info, fmt::format("wrong width: its vectors have {} values, the model's text encoder takes {}",
                                   info.shape, width));
            continue;
        }
        if (info.vectors > text::PromptChunk::kLength - 2) {
            skip(info, fmt::format("{} vectors: more than a prompt chunk's 75 tokens", info.vectors));
            continue;
        }
        if (auto it = seen.find(info.name); it != seen.end()) {
            skip(info, "an embedding of the same name is loaded from " + it->second);
            continue;
        }
        if (tokenizer) {
            std::vector<int> ids = tokenizer->encode(info.name);
            if (ids.empty()) {
                skip(info, "its name has no tokens, so no prompt can use it");
                continue;
            }
            set.names_.add({std::move(ids), info.vectors, int(set.loaded_.size())});
        }
        seen[info.name] = info.path;
        set.loaded_.push_back(std::move(*e));
    }
    return set;
}

std::vector<std::string> EmbeddingSet::warnings() const {
    std::vector<std::string> out;
    for (const auto& s : skipped_)  // a reader's error names the file already
        out.push_back(s.skipped.find(s.path) != std::string::npos
                          ? fmt::format("embedding '{}' skipped: {}", s.name, s.skipped)
                          : fmt::format("embedding '{}' skipped ({}): {}", s.name, s.path, s.skipped));
    return out;
}

std::vector<int> EmbeddingSet::used_by(const text::ClipTokenizer& tokenizer, const std::string& prompt) const {
    std::vector<int> used;
    if (names_.empty()) return used;
    text::ChunkOptions opt;
    opt.embeddings = &names_;
    for (const auto& c : text::tokenize_weighted(tokenizer, prompt, opt).chunks)
        for (const auto& f : c.fixes)
            if (std::ranges::find(used, f.index) == used.end()) used.push_back(f.index);
    return used;
}

std::string EmbeddingSet::hashes(const std::vector<int>& used) const {
    std::string out;
    for (int i : used) {
        const EmbeddingInfo& e = loaded_[size_t(i)].info;
        if (e.hash.empty()) continue;
        std::string name = e.name;
        std::erase_if(name, [](char c) { return c == ':' || c == ','; });
        out += (out.empty() ? "" : ", ") + name + ": " + e.hash.substr(0, 12);
    }
    return out;
}

}  // namespace nb::pipeline

namespace nb {

std::vector<EmbeddingInfo> list_embeddings(const std::string& dir) {
    std::vector<EmbeddingInfo> out;
    try {  // nothing throws across the public API (an allocation failure on a huge file)
        const auto set = pipeline::EmbeddingSet::load(dir, 0, nullptr);
        for (const auto& e : set.loaded()) out.push_back(e.info);
        out.insert(out.end(), set.skipped().begin(), set.skipped().end());
    } catch (const std::exception&) {
        out.clear();
    }
    return out;
}

}  // namespace nb
