#include "backend/cpu/profile.h"

#include <map>
#include <mutex>
#include <string>

#include "backend/ops.h"

namespace nb::cpu {

namespace {
bool g_on = false;
std::mutex g_mu;
std::map<std::string, std::pair<double, int64_t>> g_times;
}  // namespace

bool profiling() { return g_on; }

void profile_add(const char* op, double seconds) {
    std::lock_guard lock(g_mu);
    auto& e = g_times[op];
    e.first += seconds;
    e.second += 1;
}

}  // namespace nb::cpu

namespace nb::ops {

void set_profiling(bool on) { cpu::g_on = on; }

std::vector<OpTime> take_profile() {
    std::lock_guard lock(cpu::g_mu);
    std::vector<OpTime> out;
    for (const auto& [k, v] : cpu::g_times) out.push_back({k, v.first, v.second});
    cpu::g_times.clear();
    return out;
}

}  // namespace nb::ops
