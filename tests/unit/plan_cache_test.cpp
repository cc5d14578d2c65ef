// backend/cpu/plan_cache.h: the kernels' plan caches are bounded (least recently used plans leave first) and a
// plan still held by a caller survives its eviction.
#include <string>

#include <gtest/gtest.h>

#include "backend/cpu/plan_cache.h"

namespace nb::cpu {
namespace {

TEST(PlanCache, KeepsAtMostItsCapacityDroppingTheLeastRecentlyUsed) {
    PlanCache<int, std::string> cache(3);
    int made = 0;
    auto get = [&](int k) { return cache.get(k, [&] { ++made; return "plan " + std::to_string(k); }); };
    for (int k : {1, 2, 3}) get(k);
    EXPECT_EQ(made, 3);
    EXPECT_EQ(*get(1), "plan 1");  // a hit: 1 is now the most recently used
    EXPECT_EQ(made, 3);
    get(4);                        // evicts 2, the least recently used
    EXPECT_EQ(cache.size(), 3u);
    get(1), get(3), get(4);
    EXPECT_EQ(made, 4);            // still cached
    get(2);                        // made again
    EXPECT_EQ(made, 5);
    EXPECT_EQ(cache.size(), 3u);
}

TEST(PlanCache, APlanInUseOutlivesItsEviction) {
    PlanCache<int, std::string> cache(1);
    auto held = cache.get(1, [] { return std::string("first"); });
    cache.get(2, [] { return std::string("second"); });  // evicts 1
    EXPECT_EQ(*held, "first");
    EXPECT_EQ(held.use_count(), 1);  // only the caller holds it now
}

}  // namespace
}  // namespace nb::cpu
