// CLIP byte-level BPE tokenizer, as openai/CLIP clip/simple_tokenizer.py (SimpleTokenizer.encode) and
// Hugging Face CLIPTokenizer (same ids for the SD1.x vocabulary).
//
// Text normalisation matched (simple_tokenizer.py basic_clean + whitespace_clean + lower):
//  * ftfy.fix_text is NOT applied (no mojibake repair, no curly-quote straightening, no ligature or
//    full-width folding, no NFC normalisation). Our ids therefore equal the reference's
//    `ids_without_ftfy` (clip_cases.json); they equal `ids` whenever ftfy leaves the text unchanged,
//    which is true for ordinary typed prompts.
//  * html.unescape twice (see html_unescape.h for which named references are known), then strip.
//  * runs of Unicode White_Space collapse to one space; leading/trailing whitespace removed.
//  * Python str.lower() (simple mappings from Unicode 14 plus U+0130 and an approximate final-sigma rule).
// Pre-tokenisation implements, by hand, the reference pattern
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// with \p{L}/\p{N} from generated Unicode tables (unicode.h). Each piece is UTF-8 bytes mapped through
// bytes_to_unicode, then BPE-merged (lowest merge rank first), the last symbol carrying "</w>".
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace nb::text {

class ClipTokenizer {
public:
    static constexpr int kBos = 49406;       // <|startoftext|> in the real CLIP vocabulary
    static constexpr int kEos = 49407;       // <|endoftext|> in the real CLIP vocabulary
    // Merges used by CLIP: lines [1, 48895) of the merge file. A smaller vocabulary (the demo model's,
    // models/demo) may ship fewer merges in vocab.json + merges.txt; then all of them are used.
    static constexpr int kNumMerges = 48894;

    // `path`: bpe_simple_vocab_16e6.txt.gz, a vocab.json (merges.txt beside it), a merges.txt (vocab.json
    // beside it), or a directory holding either format.
    static Result<ClipTokenizer> load(const std::string& path);
    static Result<ClipTokenizer> load_bpe_gz(const std::string& gz_path);
    static Result<ClipTokenizer> load_hf(const std::string& vocab_json, const std::string& merges_txt);

    // Token ids of `text`, without BOS/EOS, no truncation.
    std::vector<int> encode(std::string_view text) const;
    // [bos()] + encode(text) + [eos()], no truncation or padding.
    std::vector<int> encode_with_special(std::string_view text) const;

    // Id of a vocabulary entry in its byte-encoded form (e.g. ",</w>"), if present.
    std::optional<int> token_id(const std::string& token) const;
    int comma_id() const { return comma_id_; }  // ",</w>" (A1111 comma backtracking)
    // Ids of <|startoftext|> / <|endoftext|> in the loaded vocabulary (kBos / kEos for CLIP's own).
    int bos() const { return bos_; }
    int eos() const { return eos_; }
    std::size_t vocab_size() const { return encoder_.size(); }

private:
    using Cache = std::unordered_map<std::string, std::vector<int>>;
    static constexpr std::size_t kCacheEntries = 1 << 14;  // words; bounds the cache of a long-running server
    struct SharedCache {  // shared so the tokenizer stays movable; guarded so encode() is thread-safe
        std::mutex mutex;
        Cache map;
    };

    static Result<ClipTokenizer> from_tables(std::unordered_map<std::string, int> encoder,
                                             const std::vector<std::pair<std::string, std::string>>& merges,
                                             const std::string& source);
    std::vector<int> bpe(const std::string& piece) const;  // piece: raw UTF-8 bytes of one pre-token
    std::vector<int> bpe_uncached(const std::string& piece) const;

    std::array<std::string, 256> byte_encoder_;       // byte -> UTF-8 of its printable stand-in
    std::unordered_map<std::string, int> encoder_;     // byte-encoded token -> id (49408 entries)
    std::unordered_map<std::string, int> bpe_ranks_;   // "first second" -> merge rank
    int comma_id_ = -1;
    int bos_ = kBos;
    int eos_ = kEos;
    std::shared_ptr<SharedCache> cache_;
};

// Where the CLIP vocabulary is looked for, first hit wins: `explicit_path` (--vocab) > env NB_VOCAB >
// tokenizer/ inside or beside a diffusers model folder > <model stem>.vocab.json or vocab.json+merges.txt
// next to the model file > data dirs ($XDG_DATA_HOME/nanobanana, ~/.local/share/nanobanana,
// /usr/local/share/nanobanana, /usr/share/nanobanana holding bpe_simple_vocab_16e6.txt.gz or
// clip/vocab.json+merges.txt). Returns a path ClipTokenizer::load accepts; the error lists every place.
Result<std::string> find_vocab(const std::string& explicit_path, const std::string& model_path);

}  // namespace nb::text
