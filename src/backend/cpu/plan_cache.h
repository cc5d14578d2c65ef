// A bounded cache of oneDNN primitives (plans) by shape key. Every new shape used to add a plan for good: a
// long-running server seeing many sizes grew without limit. Plans beyond the capacity leave least recently
// used first; callers hold shared_ptrs, so a plan in use on another thread lives until that call ends.
#pragma once

#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <mutex>

namespace nb::cpu {

template <class Key, class Plan>
class PlanCache {
public:
    explicit PlanCache(size_t capacity) : capacity_(capacity) {}

    // The plan for `key`, made by `make()` (returning a Plan) on a miss. Thread-safe.
    template <class Make>
    std::shared_ptr<const Plan> get(const Key& key, Make&& make) {
        std::lock_guard lock(mu_);
        if (auto it = map_.find(key); it != map_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second.pos);
            return it->second.plan;
        }
        auto plan = std::make_shared<const Plan>(make());
        lru_.push_front(key);
        map_.emplace(key, Entry{plan, lru_.begin()});
        while (map_.size() > capacity_) {
            map_.erase(lru_.back());
            lru_.pop_back();
        }
        return plan;
    }

    size_t size() const {
        std::lock_guard lock(mu_);
        return map_.size();
    }

private:
    struct Entry {
        std::shared_ptr<const Plan> plan;
        typename std::list<Key>::iterator pos;
    };
    const size_t capacity_;
    mutable std::mutex mu_;
    std::list<Key> lru_;  // most recently used first
    std::map<Key, Entry> map_;
};

// Plans kept per kernel: one SD 1.5 generation at one size uses about 40 convolution shapes (UNet + VAE), a few
// dozen matmul and attention shapes; a few sizes (hires fix, a server) fit.
inline constexpr size_t kPlanCacheCapacity = 256;

}  // namespace nb::cpu
