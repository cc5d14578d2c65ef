#include "backend/cpu/profile.h"

#include <map>
#include <mutex>
#include <string>

#include "backend/ops.h"

namespace nb::cpu {

namespace {
bool g_on = false;
std::mutex g_mu;
std::map<std::string, nb::ops::OpTime> g_times;
}  // namespace

bool profiling() { return g_on; }

void profile_add(const char* op, double seconds, int64_t macs) {
    std::lock_guard lock(g_mu);
    auto& e = g_times[op];
    e.seconds += seconds;
    e.calls += 1;
    e.macs += macs;
}

}  // namespace nb::cpu

namespace nb::ops {

void set_profiling(bool on) { cpu::g_on = on; }

std::vector<OpTime> take_profile() {
    std::lock_guard lock(cpu::g_mu);
    std::vector<OpTime> out;
    for (auto [k, v] : cpu::g_times) {
        v.op = k;
        out.push_back(std::move(v));
    }
    cpu::g_times.clear();
    return out;
}

}  // namespace nb::ops
