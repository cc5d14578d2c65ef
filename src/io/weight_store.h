// WeightStore: one name -> TensorEntry map over one or more mmapped sources; what models bind weights from.
// Names are always LDM single-file names ("model.diffusion_model.*", "first_stage_model.*",
// "cond_stage_model.transformer.*"), whatever the on-disk layout:
//   * a single .safetensors file: names kept as they are;
//   * a diffusers folder (model_index.json + text_encoder/ unet/ vae/ [tokenizer/]): renamed through the
//     tables in io/diffusers_names.h; fp16 variants (*.fp16.safetensors) and shards accepted, torch .bin too;
//   * .ckpt / .pt / .pth / .bin: the restricted torch zip reader (io/torch_zip.h), names kept;
//   * open_vae: a standalone VAE file (either format above) whose diffusers names are renamed to LDM ones.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"

namespace nb {

class WeightStore {
public:
    static Result<WeightStore> open(const std::string& path);
    // A standalone VAE file (.safetensors or torch zip; A1111's VAE/ folder, sd.cpp's --vae). LDM names, with or
    // without "first_stage_model.", are kept as they are; diffusers names ("encoder.down_blocks.0.resnets.0.
    // conv1.weight", "decoder.mid_block.attentions.0.to_q.weight") become "first_stage_model.*" through the
    // tables of io/diffusers_names.h, and keys no rule knows are listed in unused().
    static Result<WeightStore> open_vae(const std::string& path);

    const TensorEntry* find(std::string_view name) const;
    const std::vector<TensorEntry>& entries() const { return entries_; }  // sorted by name
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    Result<Tensor> load_f32(std::string_view name) const;

    const std::string& format() const { return format_; }  // "safetensors", "diffusers", "torch-zip"
    const std::string& path() const { return path_; }
    const std::string& tokenizer_dir() const { return tokenizer_dir_; }  // diffusers tokenizer/ or ""

    // Diffusers keys no rename rule knows; kept in entries() as "<component>/<original key>".
    const std::vector<std::string>& unused() const { return unused_; }
    // Drops the mmapped pages of every tensor from this process's resident set (they stay in the page
    // cache and fault back in on the next read). Called once the weights have been converted.
    void drop_resident_pages() const;
    // LDM names whose diffusers Linear [C,C] weight is presented as a 1x1 conv [C,C,1,1] (VAE attention).
    const std::vector<std::string>& reshaped() const { return reshaped_; }

private:
    static Result<WeightStore> open_diffusers(const std::string& dir);
    Result<void> finish();  // sorts; two sources defining one name is an error

    std::vector<std::shared_ptr<const void>> sources_;  // SafeTensors / TorchZip owning the mmaps
    std::vector<TensorEntry> entries_;
    std::map<std::string, std::string> metadata_;
    std::string format_, path_, tokenizer_dir_;
    std::vector<std::string> unused_, reshaped_;
};

}  // namespace nb
