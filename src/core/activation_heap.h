// Where large tensor buffers (activations) live: a region of address space of their own, best-fit with
// coalescing, whose freed pages stay mapped for the next buffer. In the general heap a UNet step's ~2000
// short-lived buffers (4 GB allocated per 512x512 step) interleave with long-lived small allocations, and
// glibc kept ~0.3 GB of freed activation pages resident beside the 1.7 GB of weights; here the resident
// size stays near the most buffers ever live at once, and release_free_pages() hands the rest back between
// phases. Freed pages are reused, not unmapped: the step pays no page faults after the first.
//
// Each engine has a heap of its own (made current with its context), so destroying an engine unmaps all of its
// buffers' pages; threads outside any engine share the process default heap.
//
// Buffers below kMinBytes, and every buffer when the region cannot be reserved or in AddressSanitizer builds
// (which must see each buffer's bounds), come from operator new.
#pragma once

#include <cstddef>
#include <memory>

namespace nb::activation_heap {

inline constexpr size_t kMinBytes = 256 << 10;

struct Stats {
    size_t in_use = 0;       // bytes of live buffers from the region (rounded to pages)
    size_t peak_in_use = 0;  // since the last release_free_pages()
    size_t extent = 0;       // end of the highest buffer since then: what the region may hold resident
};

// One heap: a region of address space of its own. Each engine's context owns one (backend::Context), made
// current on the thread of each call; a tensor keeps the heap it came from alive (Tensor's storage), so a
// heap's region is unmapped when its engine and the last of its tensors are gone.
class Heap : public std::enable_shared_from_this<Heap> {
public:
    Heap();
    ~Heap();
    Heap(const Heap&) = delete;
    Heap& operator=(const Heap&) = delete;

    // 64-byte aligned (page aligned from the region). Throws std::bad_alloc when neither source has memory.
    void* allocate(size_t bytes);
    // `p` from this heap's allocate().
    void deallocate(void* p, size_t bytes);
    // Returns the free pages of the region to the system (they read as zero if reused).
    void release_free_pages();
    Stats stats() const;

    // The heap of threads outside any Scope (never destroyed).
    static const std::shared_ptr<Heap>& process_default();

private:
    class Region;
    std::unique_ptr<Region> region_;
};

// The calling thread's heap: the innermost Scope's, else the process default.
Heap& current();
std::shared_ptr<Heap> current_shared();

// Makes `h` (owned by a shared_ptr) the calling thread's heap until the scope ends.
class Scope {
public:
    explicit Scope(Heap& h);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

private:
    Heap* prev_;
};

// The same on the current heap.
void* allocate(size_t bytes);
void deallocate(void* p, size_t bytes);
void release_free_pages();
Stats stats();

}  // namespace nb::activation_heap
