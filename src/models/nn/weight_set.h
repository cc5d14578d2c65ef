// The weights of one model component (text encoder, UNet, VAE) as a unit that can leave memory while another
// component runs and come back from the mmapped checkpoint when needed. A one-shot generation then holds one
// component's converted (fp32 or packed) weights at a time instead of every component's at once, which is
// what an fp16 checkpoint costs when everything is expanded up front (SD 1.5 fp32: CLIP 0.5 GB + UNet 3.4 GB +
// VAE 0.3 GB). Reloading costs one conversion (+ packing) of the component, like the first load.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "backend/context.h"
#include "core/error.h"
#include "core/tensor.h"
#include "models/nn/binder.h"

namespace nb::nn {

class WeightSet {
public:
    WeightSet() = default;
    // Destroying a set makes the kernels forget its weights' packed copies (ops::forget_weight), so a model
    // that goes away returns all its memory.
    ~WeightSet();
    WeightSet(const WeightSet&) = delete;
    WeightSet& operator=(const WeightSet&) = delete;

    // Adds every tensor `b` bound (with its source); call once per binder after loading.
    void add(const Binder& b);

    bool resident() const { return resident_; }
    // Bytes held now per element type ("f16", "f32", "q8_0", ...; ops::held): what the set costs in memory.
    std::map<std::string, int64_t> held_bytes() const;
    int64_t numel() const;  // parameters in the set

    // Frees the values and packed copies of every weight except those named in `keep` (e.g. LoRA-merged ones,
    // whose current values exist nowhere else). No-op when already released.
    void release(const std::set<std::string>& keep = {});
    // Brings released weights back: converted from their checkpoint entries and re-packed as at load time.
    // No-op when resident. Errors name the tensor (the file may have changed under the mmap).
    Result<void> acquire();
    // Exchanges the contents of two sets: a component replaced by another one (SDModel::use_vae); the old
    // weights go when `other` does.
    void swap(WeightSet& other) noexcept {
        items_.swap(other.items_);
        std::swap(resident_, other.resident_);
        std::swap(storage_, other.storage_);
    }
    // How the kernels hold this set's packed weights when it is (re)loaded (ops::WeightStorage).
    void set_storage(ops::WeightStorage s) { storage_ = s; }
    ops::WeightStorage storage() const { return storage_; }

private:
    struct Item {
        Tensor tensor;
        WeightSource source;
        bool released = false;
    };
    std::map<std::string, Item> items_;
    bool resident_ = true;
    ops::WeightStorage storage_ = ops::WeightStorage::exact;
};

}  // namespace nb::nn
