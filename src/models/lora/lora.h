// LoRA files (kohya LoRA / LoCon and diffusers/PEFT naming) and their merge into a model's weights, as
// A1111 extensions-builtin/Lora (network_lora.py rebuild_conventional / finalize_updown):
//   W += (up.reshape(out, r) @ down.reshape(r, -1)).reshape(W.shape) * (alpha / r) * multiplier   (fp32)
// with the text-encoder multiplier for cond_stage_model (SDXL: conditioner) weights and the UNet multiplier
// otherwise.
#pragma once

#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/lora/name_map.h"

namespace nb::lora {

struct LoraModule {
    std::string name;            // kohya form: "lora_unet_down_blocks_0_attentions_0_proj_in"
    TensorEntry up, down;        // up [out, r] or [out, r, 1, 1]; down [r, in] or [r, in, kh, kw]
    std::optional<float> alpha;  // absent: scale 1 (alpha = rank), as A1111 calc_scale
    int64_t rank = 0;
    bool text_encoder() const { return name.starts_with("lora_te"); }
    float scale() const { return alpha ? *alpha / float(rank) : 1.f; }
};

struct LoraFile {
    std::string path;
    std::string name;                             // file stem
    std::vector<LoraModule> modules;              // sorted by name
    std::vector<std::string> unrecognised_keys;   // tensors that belong to no LoRA module
    std::map<std::string, std::string> metadata;  // "__metadata__" (kohya ss_* training metadata)

    // Errors: unreadable/malformed file (format), LyCORIS LoHa/LoKr/Tucker/DoRA (unsupported: "unsupported
    // LoRA type (LoHa)"), a module missing its up or down tensor, inconsistent ranks (shape).
    static Result<LoraFile> open(const std::string& path);
    static Result<LoraFile> from(const SafeTensors& st);

  private:
    std::shared_ptr<const SafeTensors> st_;  // keeps the mmapped data of the entries alive
};

// True when a safetensors file holds LoRA tensors (kohya or PEFT suffixes), for `info`.
bool is_lora(const SafeTensors& st);

// Error (shape) naming `what`, the module and both shapes when up @ down cannot be reshaped to `w`.
Result<void> check_fit(const LoraModule& m, const Shape& w, std::string_view what);

// The merged update of one module for target weight `w`, already scaled: [w.shape].
// Error (shape) naming the module and both shapes when up @ down does not fit `w`.
Result<Tensor> module_delta(const LoraModule& m, const Shape& w, float multiplier, std::string_view file);

// One LoRA of a set, with its two multipliers.
struct LoraUse {
    std::shared_ptr<const LoraFile> file;
    float te_weight = 1.f, unet_weight = 1.f;
};

// Which LoRAs are merged into a weight map, with a backup of only the tensors they touched so that the
// base weights come back bit-exactly (restore cost proportional to the LoRA size, not the model size).
class LoraState {
  public:
    // Makes `set` (applied in order) the merged state: restore + apply; the same set again does no work.
    // On error the weights are left restored to base. Returns warnings (modules that match no weight).
    Result<std::vector<std::string>> apply(std::map<std::string, Tensor>& weights,
                                           const std::vector<LoraUse>& set);
    // Puts back the base values of every touched tensor.
    void restore(std::map<std::string, Tensor>& weights);
    size_t n_backed_up() const { return backup_.size(); }
    // LDM keys whose values differ from the checkpoint's now (merged into).
    std::set<std::string> touched() const;

  private:
    Result<std::vector<std::string>> merge(std::map<std::string, Tensor>& weights, const LoraUse& use,
                                           const TargetIndex& index);

    std::map<std::string, Tensor> backup_;                        // LDM key -> base values (clone)
    std::vector<std::tuple<std::string, float, float>> applied_;  // (path, te, unet) in order
    std::vector<std::string> warnings_;
};

}  // namespace nb::lora
