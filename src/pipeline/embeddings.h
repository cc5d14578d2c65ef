// Textual-inversion embeddings (A1111 modules/textual_inversion/textual_inversion.py, EmbeddingDatabase): files
// in a folder whose stem, written in a prompt, is replaced by the file's vectors (conditioning.cpp). Read with
// the model's width: files of another width are skipped with the reason, as A1111 lists them.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "nanobanana/engine.h"
#include "text/chunking.h"
#include "text/clip_tokenizer.h"

namespace nb::pipeline {

struct Embedding {
    EmbeddingInfo info;
    Tensor vectors;  // [vectors, width] fp32 (SDXL files: clip_l's, info.shape is clip_l + clip_g as A1111's)
};

// One file's vectors and metadata, its width unchecked. .safetensors: one tensor (kohya's "emb_params", ...)
// or SDXL's clip_l + clip_g; .pt / .bin through the restricted torch reader: A1111's string_to_param {'*': t}
// (a dict or the original repo's ParameterDict) or a diffusers concept {token: t}. A 1-D tensor is one vector.
Result<Embedding> read_embedding(const std::string& path);

class EmbeddingSet {
public:
    // Every .safetensors / .pt / .bin under `dir` (recursive, in path order; empty files ignored, as A1111).
    // `width` > 0: files of another width are skipped (A1111's expected_shape); 0 checks none (no model).
    // With a tokenizer the names are tokenized for matching in prompts. A missing folder is an empty set.
    static EmbeddingSet load(const std::string& dir, int64_t width, const text::ClipTokenizer* tokenizer);

    const std::vector<Embedding>& loaded() const { return loaded_; }
    const std::vector<EmbeddingInfo>& skipped() const { return skipped_; }
    const text::EmbeddingNames& names() const { return names_; }  // EmbeddingName::index = index in loaded()
    // One line per skipped file, naming it and why.
    std::vector<std::string> warnings() const;
    // Indices into loaded() of the embeddings `prompt` uses, in order of first use.
    std::vector<int> used_by(const text::ClipTokenizer& tokenizer, const std::string& prompt) const;
    // A1111's "TI hashes" value for one group of indices: "name: <first 12 hex of the file's sha256>, ..." with
    // ':' and ',' removed from names.
    std::string hashes(const std::vector<int>& used) const;

private:
    std::vector<Embedding> loaded_;
    std::vector<EmbeddingInfo> skipped_;
    text::EmbeddingNames names_;
};

}  // namespace nb::pipeline
