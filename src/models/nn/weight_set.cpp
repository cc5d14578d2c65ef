#include "models/nn/weight_set.h"

#include <algorithm>
#include <set>
#include <vector>

#include "backend/weights.h"

namespace nb::nn {

void WeightSet::add(const Binder& b) {
    for (const auto& [key, t] : b.bound()) {
        auto s = b.sources().find(key);
        if (s == b.sources().end() || !t.defined()) continue;
        items_[key] = Item{t, s->second, !s->second.loaded};
        if (!s->second.loaded) resident_ = false;
    }
}

int64_t WeightSet::numel() const {
    int64_t n = 0;
    for (const auto& [_, it] : items_) n += it.tensor.numel();
    return n;
}

std::map<std::string, int64_t> WeightSet::held_bytes() const {
    std::map<std::string, int64_t> out;
    for (const auto& [_, it] : items_) {
        const ops::Held h = ops::held(it.tensor);
        if (h.as != ops::HeldAs::released) out[ops::held_name(h.as)] += h.bytes;
    }
    return out;
}

WeightSet::~WeightSet() {
    for (auto& [key, it] : items_) ops::forget_weight(it.tensor);
}

void WeightSet::release(const std::set<std::string>& keep) {
    if (!resident_) return;
    for (auto& [key, it] : items_) {
        if (keep.contains(key) || !it.source.entry) continue;
        ops::weights_changed(it.tensor);  // drops the packed copy (if any)
        it.tensor.release_values();
        it.released = true;
    }
    resident_ = false;
    ops::return_free_memory();
}

Result<void> WeightSet::acquire() {
    if (resident_) return {};
    // Released weights are read again from their files' mappings: a file truncated since (rewritten in place)
    // would raise SIGBUS there, so it is an error here instead.
    std::set<const MappedFile*> files;
    for (const auto& [key, it] : items_)
        if (it.released && it.source.entry && it.source.entry->file) files.insert(it.source.entry->file);
    for (const MappedFile* f : files)
        if (auto ok = f->check_not_truncated(); !ok) return ok;
    ops::WeightStorageScope storage(storage_);
    // Weights of 16 MB and more first: converting one briefly holds it in fp32 twice (values and packed copy)
    // beside its 16-bit copy, up to 0.3 GB for the largest UNet weight, which then happens before the rest is
    // resident instead of on top of it. The conversion buffers' pages are handed back once, after the big
    // weights, not after each: the next weight reuses them, where fresh pages cost a page fault each (handing
    // them back per weight made loading an SD 1.5 UNet ~3x slower on a virtual machine).
    constexpr int64_t kBig = 4 << 20;  // floats
    std::vector<Item*> order;
    for (auto& [key, it] : items_) order.push_back(&it);
    std::stable_partition(order.begin(), order.end(), [](const Item* i) { return i->tensor.numel() >= kBig; });
    for (size_t i = 0; i < order.size(); ++i) {
        Item& it = *order[i];
        if (!it.released) continue;
        const TensorEntry& e = *it.source.entry;
        if (it.source.pack != WeightSource::Pack::none) {
            if (auto ok = check_convertible(e); !ok) return ok;
            pack_from_file(it.tensor, it.source);
        } else {
            it.tensor.restore_values();
            if (auto ok = entry_to_f32_into(e, it.tensor.span()); !ok) {
                it.tensor.release_values();
                return ok;
            }
        }
        drop_entry_pages(e);
        it.released = false;
        const bool last_big = it.tensor.numel() >= kBig && (i + 1 == order.size() || order[i + 1]->tensor.numel() < kBig);
        if (last_big) ops::return_free_memory();  // the big weights' conversion buffers, before the small ones
    }
    resident_ = true;
    ops::return_free_memory();  // the conversion buffers freed after packing
    return {};
}

}  // namespace nb::nn
