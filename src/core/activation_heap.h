// Where large tensor buffers (activations) live: a region of address space of their own, best-fit with
// coalescing, whose freed pages stay mapped for the next buffer. In the general heap a UNet step's ~2000
// short-lived buffers (4 GB allocated per 512x512 step) interleave with long-lived small allocations, and
// glibc kept ~0.3 GB of freed activation pages resident beside the 1.7 GB of weights; here the resident
// size stays near the most buffers ever live at once, and release_free_pages() hands the rest back between
// phases. Freed pages are reused, not unmapped: the step pays no page faults after the first.
//
// Buffers below kMinBytes, and every buffer when the region cannot be reserved or in AddressSanitizer builds
// (which must see each buffer's bounds), come from operator new.
#pragma once

#include <cstddef>

namespace nb::activation_heap {

inline constexpr size_t kMinBytes = 256 << 10;

// 64-byte aligned (page aligned from the region). Throws std::bad_alloc when neither source has memory.
void* allocate(size_t bytes);
void deallocate(void* p, size_t bytes);

// Returns the free pages of the region to the system (they read as zero if reused).
void release_free_pages();

struct Stats {
    size_t in_use = 0;       // bytes of live buffers from the region (rounded to pages)
    size_t peak_in_use = 0;  // since the last release_free_pages()
    size_t extent = 0;       // end of the highest buffer since then: what the region may hold resident
};
Stats stats();

}  // namespace nb::activation_heap
