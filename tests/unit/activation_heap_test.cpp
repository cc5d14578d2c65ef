// The activation heap: best fit with coalescing in a region of its own, freed pages kept for reuse until
// release_free_pages().
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "core/activation_heap.h"
#include "core/tensor.h"

namespace nb {
namespace {

constexpr size_t MB = 1 << 20;

#if defined(__SANITIZE_ADDRESS__)
#define SKIP_WITHOUT_REGION() GTEST_SKIP() << "AddressSanitizer builds allocate every buffer with operator new"
#else
#define SKIP_WITHOUT_REGION()
#endif

TEST(ActivationHeap, ReusesFreedSpaceAndCoalesces) {
    SKIP_WITHOUT_REGION();
    activation_heap::release_free_pages();
    const auto s0 = activation_heap::stats();
    char* a = static_cast<char*>(activation_heap::allocate(4 * MB));
    char* b = static_cast<char*>(activation_heap::allocate(2 * MB));
    char* c = static_cast<char*>(activation_heap::allocate(4 * MB));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 4096, 0u);
    std::memset(a, 1, 4 * MB);
    std::memset(c, 3, 4 * MB);
    EXPECT_EQ(activation_heap::stats().in_use - s0.in_use, 10 * MB);
    activation_heap::deallocate(b, 2 * MB);
    // best fit: a 2 MB request takes b's hole, not the top
    char* d = static_cast<char*>(activation_heap::allocate(2 * MB));
    EXPECT_EQ(d, b);
    activation_heap::deallocate(d, 2 * MB);
    activation_heap::deallocate(a, 4 * MB);
    // a + b coalesced: a 6 MB buffer fits below c
    char* e = static_cast<char*>(activation_heap::allocate(6 * MB));
    EXPECT_EQ(e, a);
    activation_heap::deallocate(e, 6 * MB);
    activation_heap::deallocate(c, 4 * MB);
    const auto s1 = activation_heap::stats();
    EXPECT_EQ(s1.in_use, s0.in_use);
    EXPECT_GE(s1.peak_in_use - s0.in_use, 10 * MB);
    EXPECT_GE(s1.extent, s0.extent + 10 * MB) << "freed pages stay for reuse";
    activation_heap::release_free_pages();
    const auto s2 = activation_heap::stats();
    EXPECT_EQ(s2.extent, s0.extent);
    EXPECT_EQ(s2.peak_in_use, s2.in_use);
    // released pages come back zeroed
    char* f = static_cast<char*>(activation_heap::allocate(4 * MB));
    EXPECT_EQ(f, a);
    EXPECT_EQ(f[12345], 0);
    activation_heap::deallocate(f, 4 * MB);
    activation_heap::release_free_pages();
}

TEST(ActivationHeap, TensorsUseItAboveTheThreshold) {
    SKIP_WITHOUT_REGION();
    const auto s0 = activation_heap::stats();
    {
        Tensor big = Tensor::empty({int64_t(activation_heap::kMinBytes / 4)});
        Tensor small = Tensor::empty({int64_t(activation_heap::kMinBytes / 4 - 1)});
        EXPECT_EQ(activation_heap::stats().in_use - s0.in_use, activation_heap::kMinBytes);
        big.release_values();
        EXPECT_EQ(activation_heap::stats().in_use, s0.in_use);
        big.restore_values();
        EXPECT_EQ(activation_heap::stats().in_use - s0.in_use, activation_heap::kMinBytes);
    }
    EXPECT_EQ(activation_heap::stats().in_use, s0.in_use);
}

TEST(ActivationHeap, ManyBuffersReturnToEmpty) {
    SKIP_WITHOUT_REGION();
    activation_heap::release_free_pages();
    const auto s0 = activation_heap::stats();
    std::vector<std::pair<void*, size_t>> live;
    uint32_t r = 1;
    for (int i = 0; i < 2000; ++i) {
        r = r * 1664525u + 1013904223u;
        if (!live.empty() && (r >> 28) < 7) {
            const size_t k = (r >> 8) % live.size();
            activation_heap::deallocate(live[k].first, live[k].second);
            live.erase(live.begin() + long(k));
        } else {
            const size_t n = activation_heap::kMinBytes + (r >> 12) % (3 * MB);
            live.emplace_back(activation_heap::allocate(n), n);
            static_cast<char*>(live.back().first)[n - 1] = 1;
        }
    }
    for (auto [p, n] : live) activation_heap::deallocate(p, n);
    activation_heap::release_free_pages();
    EXPECT_EQ(activation_heap::stats().in_use, s0.in_use);
    EXPECT_EQ(activation_heap::stats().extent, s0.extent) << "blocks not coalesced back to the top";
}

}  // namespace
}  // namespace nb
