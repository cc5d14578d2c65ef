#include "core/activation_heap.h"

#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <new>

namespace nb::activation_heap {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUseRegion = false;
#else
constexpr bool kUseRegion = true;
#endif

constexpr size_t kPage = 4096;
constexpr size_t kReserve = size_t(64) << 30;  // address space only (MAP_NORESERVE): pages exist once touched

size_t round_up(size_t n) { return (n + kPage - 1) / kPage * kPage; }

}  // namespace

class Heap::Region {
public:
    Region() {
        if (!kUseRegion) return;
        void* p = mmap(nullptr, kReserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return;
        base_ = static_cast<char*>(p);
        // Transparent huge pages where the system allows them on request ("madvise" mode, Debian's default): a
        // first touch then maps 2 MiB at once instead of 4 KiB, 512 times fewer page faults.
        madvise(base_, kReserve, MADV_HUGEPAGE);
    }
    ~Region() {
        if (base_) munmap(base_, kReserve);
    }

    bool owns(const void* p) const { return base_ && p >= base_ && p < base_ + kReserve; }

    // Best fit among the free blocks; else the top of the region (extending a free block that ends there).
    void* allocate(size_t bytes) {
        if (!base_) return nullptr;
        const size_t n = round_up(bytes);
        std::lock_guard lock(mu_);
        size_t off;
        if (auto it = by_size_.lower_bound(n); it != by_size_.end()) {
            const auto [size, o] = *it;
            take(it);
            off = o;
            if (size > n) put(o + n, size - n);
        } else {
            off = top_;
            if (auto last = by_off_.rbegin(); last != by_off_.rend() && last->first + last->second == top_) {
                off = last->first;
                take(by_size_.find_if(last->second, off));
            }
            if (off + n > kReserve) return nullptr;
            top_ = off + n;
        }
        in_use_ += n;
        peak_ = std::max(peak_, in_use_);
        extent_ = std::max(extent_, off + n);
        return base_ + off;
    }

    void deallocate(void* p, size_t bytes) {
        const size_t n = round_up(bytes);
        std::lock_guard lock(mu_);
        size_t off = size_t(static_cast<char*>(p) - base_), size = n;
        in_use_ -= n;
        // Coalesce with the free neighbours on either side.
        if (auto next = by_off_.find(off + size); next != by_off_.end()) {
            size += next->second;
            take(by_size_.find_if(next->second, next->first));
        }
        if (auto prev = by_off_.lower_bound(off); prev != by_off_.begin()) {
            --prev;
            if (prev->first + prev->second == off) {
                off = prev->first;
                size += prev->second;
                take(by_size_.find_if(prev->second, prev->first));
            }
        }
        if (off + size == top_)
            top_ = off;  // the pages stay mapped: extent_ still covers them
        else
            put(off, size);
    }

    void release_free_pages() {
        std::lock_guard lock(mu_);
        if (!base_) return;
        for (const auto& [off, size] : by_off_) madvise(base_ + off, size, MADV_DONTNEED);
        if (extent_ > top_) madvise(base_ + top_, extent_ - top_, MADV_DONTNEED);
        extent_ = top_;
        peak_ = in_use_;
    }

    Stats stats() const {
        std::lock_guard lock(mu_);
        return {in_use_, peak_, extent_};
    }

private:
    // Free blocks, by size (best fit) and by offset (coalescing); always the same set.
    struct BySize : std::multimap<size_t, size_t> {
        iterator find_if(size_t size, size_t off) {
            auto [a, b] = equal_range(size);
            return std::find_if(a, b, [off](const auto& e) { return e.second == off; });
        }
    };
    void put(size_t off, size_t size) {
        by_off_.emplace(off, size);
        by_size_.emplace(size, off);
    }
    void take(BySize::iterator it) {
        by_off_.erase(it->second);
        by_size_.erase(it);
    }

    char* base_ = nullptr;
    mutable std::mutex mu_;
    std::map<size_t, size_t> by_off_;
    BySize by_size_;
    size_t top_ = 0, in_use_ = 0, peak_ = 0, extent_ = 0;
};

namespace {

thread_local Heap* t_current = nullptr;

}  // namespace

Heap::Heap() : region_(std::make_unique<Region>()) {}
Heap::~Heap() = default;

void* Heap::allocate(size_t bytes) {
    if (bytes >= kMinBytes)
        if (void* p = region_->allocate(bytes)) return p;
    return ::operator new[](std::max<size_t>(bytes, 1), std::align_val_t(64));
}

void Heap::deallocate(void* p, size_t bytes) {
    if (!p) return;
    if (region_->owns(p))
        region_->deallocate(p, bytes);
    else
        ::operator delete[](p, std::align_val_t(64));
}

void Heap::release_free_pages() { region_->release_free_pages(); }

Stats Heap::stats() const { return region_->stats(); }

const std::shared_ptr<Heap>& Heap::process_default() {
    // Never destroyed: static and thread_local tensors free their buffers during exit.
    static auto* h = new std::shared_ptr<Heap>(std::make_shared<Heap>());
    return *h;
}

Heap& current() { return t_current ? *t_current : *Heap::process_default(); }

std::shared_ptr<Heap> current_shared() {
    return t_current ? t_current->shared_from_this() : Heap::process_default();
}

Scope::Scope(Heap& h) : prev_(t_current) { t_current = &h; }
Scope::~Scope() { t_current = prev_; }

void* allocate(size_t bytes) { return current().allocate(bytes); }
void deallocate(void* p, size_t bytes) { current().deallocate(p, bytes); }
void release_free_pages() { current().release_free_pages(); }
Stats stats() { return current().stats(); }

}  // namespace nb::activation_heap
