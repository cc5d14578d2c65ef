// LoRA in the pipeline: <lora:name:...> tags resolved in the LoRA folder, the merged set kept per engine
// (models/lora LoraState), A1111's "Lora hashes" infotext entry, and the `info` summary of a LoRA file.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/lora/lora.h"
#include "nanobanana/engine.h"
#include "pipeline/sd_model.h"
#include "text/prompt.h"

namespace nb::pipeline {

struct LoraRequest {
    std::string name;  // as mentioned in the prompt (or the file stem for --lora), for "Lora hashes"
    std::string path;
    float te_weight = 1.f, unet_weight = 1.f;
};

// Prompt tags first (looked up in `dir` by file stem: "<dir>/<name>.safetensors", else any
// "<name>.safetensors" below `dir`), then the explicit `extra` files, in order. Error (missing) naming the
// LoRA.
Result<std::vector<LoraRequest>> lora_requests(const std::vector<text::LoraTag>& tags, const std::string& dir,
                                               const std::vector<LoraWeight>& extra);

// A1111 hashes.addnet_hash_safetensors: sha256 of the bytes after the 8-byte length and the JSON header
// (offset 8 + n to the end), 64 lowercase hex digits; infotext shows the first 12.
Result<std::string> addnet_hash(const std::string& path);

// The LoRAs merged into one model; files and hashes are cached by path.
class LoraSet {
  public:
    // Makes `reqs` the merged set of `m` (restoring the previous set first). Returns warnings.
    Result<std::vector<std::string>> activate(SDModel& m, const std::vector<LoraRequest>& reqs);
    // A1111 "Lora hashes" value: "name: <12 hex>, ..." (':' and ',' removed from names); "" for no LoRA.
    Result<std::string> hashes(const std::vector<LoraRequest>& reqs);
    std::set<std::string> merged_keys() const { return state_.touched(); }
    bool empty() const { return state_.n_backed_up() == 0; }

  private:
    Result<std::shared_ptr<const lora::LoraFile>> file(const std::string& path);

    std::map<std::string, std::shared_ptr<const lora::LoraFile>> files_;
    std::map<std::string, std::string> hashes_;
    lora::LoraState state_;
};

// `info` for a LoRA file: type, module counts (unet / text encoder, linear / conv), ranks, alphas, ss_*
// metadata.
Result<std::string> describe_lora_file(const std::string& path);

}  // namespace nb::pipeline
