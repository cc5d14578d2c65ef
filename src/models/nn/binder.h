// Binds checkpoint tensors to model structs: one call per tensor, shape-checked, with a prefix stack so a
// model's key table reads like the original module tree (STYLE.md #8). Errors name the key and both shapes;
// the binder records which keys were used so callers can report unused tensors.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "backend/weights.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/nn/layers.h"

namespace nb::nn {

// Looks a tensor up by its full (LDM) name; nullptr when absent.
using TensorLookup = std::function<const TensorEntry*(std::string_view)>;

// Where a bound weight came from and how its kernel packs it: enough to drop the weight and bring it back
// later (nn::WeightSet).
struct WeightSource {
    const TensorEntry* entry = nullptr;  // owned by the WeightStore, which outlives the model
    bool loaded = true;                  // false: bound in BindMode::deferred, values not read yet
    enum class Pack { none, linear, conv } pack = Pack::none;
    int stride = 1;
    ops::Pad2d pad{};
};

// Loads a weight whose source packs it (pack != none) from the file's bits: ops::prepack_*_from (bf16 mode:
// packed now, one weight at a time).
void pack_from_file(const Tensor& w, const WeightSource& src);

// How a Binder binds (kept by its scopes):
//  load:     converts each tensor to fp32 now (and packs it for its kernel);
//  deferred: records each tensor's source and returns it without values (Tensor::without_values): nothing is
//            converted until nn::WeightSet::acquire() loads the component;
//  dry_run:  checks names and shapes but converts nothing and returns undefined tensors: `info` inspects a
//            checkpoint through the real load code without its memory cost.
enum class BindMode { load, deferred, dry_run };

class Binder {
public:
    explicit Binder(TensorLookup lookup, std::string prefix = "", BindMode mode = BindMode::load);
    BindMode mode() const { return mode_; }
    bool dry_run() const { return mode_ == BindMode::dry_run; }
    bool deferred() const { return mode_ == BindMode::deferred; }

    // Nested scope: b.scope("input_blocks.1.0") appends "input_blocks.1.0." to the prefix.
    Binder scope(std::string_view name) const;
    bool has(std::string_view name) const;  // tensor "<prefix><name>" exists
    const TensorEntry* entry(std::string_view name) const;
    std::string key(std::string_view name) const { return prefix_ + std::string(name); }

    // Loads "<prefix><name>" as fp32 with the exact expected shape. First error wins; later calls are no-ops.
    Tensor tensor(std::string_view name, const Shape& shape);
    void linear(Linear& m, std::string_view name, int64_t in, int64_t out, bool bias = true);
    // A Linear whose tensors are not "<name>.weight" / "<name>.bias" (open_clip's fused
    // "attn.in_proj_weight").
    void linear(Linear& m, std::string_view weight_name, std::string_view bias_name, int64_t in, int64_t out);
    void conv2d(Conv2d& m, std::string_view name, int64_t in, int64_t out, int k, int stride = 1, int pad = -1);
    // A [out, in] Linear stored either as Linear or as 1x1 conv [out, in, 1, 1] (both occur in SD files).
    void linear_or_1x1(Linear& m, std::string_view name, int64_t in, int64_t out);
    void group_norm(GroupNorm& m, std::string_view name, int64_t c, float eps, int groups = 32);
    void layer_norm(LayerNorm& m, std::string_view name, int64_t d, float eps = 1e-5f);

    bool ok() const { return !error_->has_value(); }
    Result<void> status() const;
    const std::set<std::string>& used() const { return *used_; }
    // Every tensor bound so far, by full key. Tensors share storage with the model, so editing one in place
    // edits the model (LoRA merging); call ops::weights_changed() afterwards.
    const std::map<std::string, Tensor>& bound() const { return *bound_; }
    const std::map<std::string, WeightSource>& sources() const { return *sources_; }  // same keys as bound()

private:
    // The entry for "<prefix><name>" if it exists with that shape (and converts, unless dry_run), marked used;
    // otherwise records the error and returns null.
    const TensorEntry* bind_entry(std::string_view name, const Shape& shape);
    // Records t as bound from `src` under "<prefix><name>" and returns it.
    Tensor record(std::string_view name, WeightSource src, Tensor t);
    // Binds a weight its kernel packs as `how` says (pack, stride, pad): in load mode packed now, from the
    // file's bits (pack_from_file).
    Tensor packed(std::string_view name, const Shape& shape, WeightSource how);

    TensorLookup lookup_;
    std::string prefix_;
    BindMode mode_;
    std::shared_ptr<std::optional<Error>> error_;
    std::shared_ptr<std::set<std::string>> used_;
    std::shared_ptr<std::map<std::string, Tensor>> bound_;
    std::shared_ptr<std::map<std::string, WeightSource>> sources_;
};

}  // namespace nb::nn
