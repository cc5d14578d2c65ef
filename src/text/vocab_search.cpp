// find_vocab: where a CLIP vocabulary is looked for (order documented in clip_tokenizer.h).
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "text/clip_tokenizer.h"

namespace nb::text {

namespace fs = std::filesystem;

namespace {

bool exists_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}
bool exists_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec);
}

// Records `where` as looked at; returns true when `check` holds.
struct Search {
    std::vector<std::string> looked;
    bool hf_pair(const fs::path& vocab, const fs::path& merges) {
        looked.push_back(vocab.string() + " + " + merges.filename().string());
        return exists_file(vocab) && exists_file(merges);
    }
    bool file(const fs::path& p) {
        looked.push_back(p.string());
        return exists_file(p);
    }
};

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

// tokenizer/ inside a diffusers folder, beside the model path, then files next to a model file.
std::optional<std::string> search_model(Search& s, const fs::path& model) {
    if (exists_dir(model) && s.hf_pair(model / "tokenizer" / "vocab.json", model / "tokenizer" / "merges.txt"))
        return (model / "tokenizer").string();
    const fs::path dir = model.has_parent_path() ? model.parent_path() : fs::path(".");
    if (s.hf_pair(dir / "tokenizer" / "vocab.json", dir / "tokenizer" / "merges.txt"))
        return (dir / "tokenizer").string();
    if (exists_dir(model)) return std::nullopt;
    const std::string stem = model.stem().string();
    if (s.hf_pair(dir / (stem + ".vocab.json"), dir / (stem + ".merges.txt")))
        return (dir / (stem + ".vocab.json")).string();
    if (s.hf_pair(dir / (stem + ".vocab.json"), dir / "merges.txt")) return (dir / (stem + ".vocab.json")).string();
    if (s.hf_pair(dir / "vocab.json", dir / "merges.txt")) return (dir / "vocab.json").string();
    return std::nullopt;
}

std::vector<fs::path> data_dirs() {
    std::vector<fs::path> dirs;
    if (const std::string xdg = env("XDG_DATA_HOME"); !xdg.empty()) dirs.push_back(fs::path(xdg) / "nanobanana");
    if (const std::string home = env("HOME"); !home.empty())
        dirs.push_back(fs::path(home) / ".local" / "share" / "nanobanana");
    dirs.emplace_back("/usr/local/share/nanobanana");
    dirs.emplace_back("/usr/share/nanobanana");
    return dirs;
}

}  // namespace

Result<std::string> find_vocab(const std::string& explicit_path, const std::string& model_path) {
    // an explicit choice that does not exist is an error, not a reason to silently use another vocabulary
    if (!explicit_path.empty()) {
        if (exists_file(explicit_path) || exists_dir(explicit_path)) return explicit_path;
        return make_error(Errc::missing, "vocabulary '{}' (--vocab) not found", explicit_path);
    }
    if (const std::string from_env = env("NB_VOCAB"); !from_env.empty()) {
        if (exists_file(from_env) || exists_dir(from_env)) return from_env;
        return make_error(Errc::missing, "vocabulary '{}' (NB_VOCAB) not found", from_env);
    }
    Search s;
    s.looked.emplace_back("--vocab (not given)");
    s.looked.emplace_back("NB_VOCAB (not set)");
    if (!model_path.empty())
        if (auto hit = search_model(s, fs::path(model_path))) return *hit;
    for (const fs::path& dir : data_dirs()) {
        if (s.file(dir / "bpe_simple_vocab_16e6.txt.gz")) return (dir / "bpe_simple_vocab_16e6.txt.gz").string();
        if (s.hf_pair(dir / "clip" / "vocab.json", dir / "clip" / "merges.txt")) return (dir / "clip").string();
    }
    std::string list;
    for (const auto& l : s.looked) list += (list.empty() ? "" : "; ") + l;
    return make_error(Errc::missing, "CLIP vocabulary not found; looked in: {}", list);
}

}  // namespace nb::text
