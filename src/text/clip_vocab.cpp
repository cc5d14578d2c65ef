// Loading half of ClipTokenizer: the openai .txt.gz merge list, the Hugging Face vocab.json + merges.txt
// pair, and the search for a vocabulary on disk (find_vocab).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "text/clip_tokenizer.h"

namespace nb::text {

namespace fs = std::filesystem;

namespace {

using Merges = std::vector<std::pair<std::string, std::string>>;

// simple_tokenizer.py bytes_to_unicode(): printable bytes map to themselves, the other 68 to 256+n.
bool is_printable_byte(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

std::array<std::string, 256> make_byte_encoder() {
    std::array<char32_t, 256> cps{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) cps[b] = is_printable_byte(b) ? static_cast<char32_t>(b) : next++;
    std::array<std::string, 256> out;
    for (int b = 0; b < 256; ++b) {
        const char32_t c = cps[b];
        if (c < 0x80) {
            out[b] = std::string(1, static_cast<char>(c));
        } else {  // all stand-ins are below U+0800: two UTF-8 bytes
            out[b] += static_cast<char>(0xC0 | (c >> 6));
            out[b] += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    return out;
}

Result<std::string> read_gzip(const std::string& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) return make_error(Errc::io, "{}: cannot open", path);
    std::string data;
    char buf[1 << 16];
    int n = 0;
    while ((n = gzread(f, buf, sizeof(buf))) > 0) data.append(buf, static_cast<std::size_t>(n));
    const bool failed = n < 0;
    gzclose(f);
    if (failed) return make_error(Errc::format, "{}: gzip data is corrupt", path);
    return data;
}

Result<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(Errc::io, "{}: cannot open", path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Merge lines [1, 1 + kNumMerges) of the text, each "first second" (Python str.split()). A CLIP merge file
// must hold at least kNumMerges (`min_merges`); a vocab.json + merges.txt pair may hold fewer (its vocab.json
// then defines which merges are reachable; a merge without a vocabulary entry is rejected in from_tables).
Result<Merges> parse_merges(const std::string& text, const std::string& source,
                            std::size_t min_merges = ClipTokenizer::kNumMerges) {
    Merges merges;
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);  // "#version: 0.2" header (junk file name prefix in the .gz)
    while (merges.size() < ClipTokenizer::kNumMerges && std::getline(in, line)) {
        if (min_merges == 0 && line.empty() && in.peek() == std::char_traits<char>::eof()) break;
        std::istringstream ls(line);
        std::string a, b, extra;
        if (!(ls >> a >> b) || (ls >> extra))
            return make_error(Errc::format, "{}: merge line {} is not 'first second'", source, merges.size() + 2);
        merges.emplace_back(std::move(a), std::move(b));
    }
    if (merges.size() < min_merges)
        return make_error(Errc::format, "{}: {} merges, expected at least {}", source, merges.size(), min_merges);
    return merges;
}

bool is_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}
bool is_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec);
}

}  // namespace

Result<ClipTokenizer> ClipTokenizer::from_tables(std::unordered_map<std::string, int> encoder,
                                                 const Merges& merges, const std::string& source) {
    ClipTokenizer t;
    t.byte_encoder_ = make_byte_encoder();
    for (const auto& sym : t.byte_encoder_)
        if (!encoder.contains(sym) || !encoder.contains(sym + "</w>"))
            return make_error(Errc::format, "{}: vocabulary lacks byte symbol '{}'", source, sym);
    for (std::size_t r = 0; r < merges.size(); ++r) {
        if (!encoder.contains(merges[r].first + merges[r].second))
            return make_error(Errc::format, "{}: merge {} '{} {}' has no vocabulary entry", source, r,
                              merges[r].first, merges[r].second);
        t.bpe_ranks_.emplace(merges[r].first + ' ' + merges[r].second, static_cast<int>(r));
    }
    const auto bos = encoder.find("<|startoftext|>"), eos = encoder.find("<|endoftext|>");
    if (bos == encoder.end() || eos == encoder.end())
        return make_error(Errc::format, "{}: vocabulary lacks <|startoftext|> or <|endoftext|>", source);
    t.bos_ = bos->second;
    t.eos_ = eos->second;
    const auto comma = encoder.find(",</w>");
    t.comma_id_ = comma == encoder.end() ? -1 : comma->second;
    t.encoder_ = std::move(encoder);
    t.cache_ = std::make_shared<SharedCache>();
    return t;
}

Result<ClipTokenizer> ClipTokenizer::load_bpe_gz(const std::string& gz_path) {
    NB_TRY(text, read_gzip(gz_path));
    NB_TRY(merges, parse_merges(text, gz_path));
    // vocabulary order (simple_tokenizer.py): bytes, bytes + "</w>", merges, the two specials
    // bytes_to_unicode() is a dict built printable bytes first ('!'..'~', 0xA1..0xAC, 0xAE..0xFF), then
    // the rest in byte order; the vocabulary follows that insertion order.
    const auto bytes = make_byte_encoder();
    std::vector<std::string> vocab;
    for (int pass = 0; pass < 2; ++pass)
        for (int b = 0; b < 256; ++b)
            if (is_printable_byte(b) == (pass == 0)) vocab.push_back(bytes[b]);
    for (int k = 0; k < 256; ++k) vocab.push_back(vocab[k] + "</w>");
    for (const auto& [a, b] : merges) vocab.push_back(a + b);
    vocab.emplace_back("<|startoftext|>");
    vocab.emplace_back("<|endoftext|>");
    std::unordered_map<std::string, int> encoder;
    for (std::size_t i = 0; i < vocab.size(); ++i) encoder[vocab[i]] = static_cast<int>(i);  // later wins
    return from_tables(std::move(encoder), merges, gz_path);
}

Result<ClipTokenizer> ClipTokenizer::load_hf(const std::string& vocab_json, const std::string& merges_txt) {
    NB_TRY(vocab_text, read_file(vocab_json));
    NB_TRY(merges_text, read_file(merges_txt));
    const auto j = nlohmann::json::parse(vocab_text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return make_error(Errc::format, "{}: not a JSON object", vocab_json);
    std::unordered_map<std::string, int> encoder;
    for (const auto& [key, value] : j.items()) {
        if (!value.is_number_integer())
            return make_error(Errc::format, "{}: id of '{}' is not an integer", vocab_json, key);
        encoder[key] = value.get<int>();
    }
    // CLIP's own vocabulary (49408 entries) must carry all its merges; a smaller one uses what it ships.
    const std::size_t min_merges = encoder.size() >= 49408 ? ClipTokenizer::kNumMerges : 0;
    NB_TRY(merges, parse_merges(merges_text, merges_txt, min_merges));
    return from_tables(std::move(encoder), merges, vocab_json);
}

Result<ClipTokenizer> ClipTokenizer::load(const std::string& path) {
    const fs::path p(path);
    if (is_dir(p)) {
        if (is_file(p / "vocab.json") && is_file(p / "merges.txt"))
            return load_hf((p / "vocab.json").string(), (p / "merges.txt").string());
        if (is_file(p / "bpe_simple_vocab_16e6.txt.gz")) return load_bpe_gz((p / "bpe_simple_vocab_16e6.txt.gz").string());
        return make_error(Errc::missing, "{}: no vocab.json + merges.txt or bpe_simple_vocab_16e6.txt.gz", path);
    }
    if (!is_file(p)) return make_error(Errc::io, "{}: vocabulary file not found", path);
    const std::string name = p.filename().string();
    if (name.ends_with(".gz")) return load_bpe_gz(path);
    const fs::path dir = p.parent_path();
    if (name.ends_with("vocab.json")) {  // vocab.json or <stem>.vocab.json
        const std::string stem = name.substr(0, name.size() - std::string("vocab.json").size());
        const fs::path merges = is_file(dir / (stem + "merges.txt")) ? dir / (stem + "merges.txt") : dir / "merges.txt";
        return load_hf(path, merges.string());
    }
    if (name.ends_with("merges.txt")) {
        const std::string stem = name.substr(0, name.size() - std::string("merges.txt").size());
        const fs::path vocab = is_file(dir / (stem + "vocab.json")) ? dir / (stem + "vocab.json") : dir / "vocab.json";
        return load_hf(vocab.string(), path);
    }
    return make_error(Errc::unsupported, "{}: not a CLIP vocabulary (.txt.gz, vocab.json or merges.txt)", path);
}

}  // namespace nb::text
