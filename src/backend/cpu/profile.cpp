#include "backend/cpu/profile.h"

#include <map>
#include <mutex>
#include <string>

namespace nb::cpu {

namespace {
// Per context (backend::Context::state): the op times collected since the last take_profile().
struct Profile {
    std::mutex mu;
    std::map<std::string, ops::OpTime> times;
};
}  // namespace

bool profiling() { return backend::current().settings.profiling; }

void profile_add(const char* op, double seconds, int64_t macs) {
    Profile& p = backend::current().state<Profile>();
    std::lock_guard lock(p.mu);
    auto& e = p.times[op];
    e.seconds += seconds;
    e.calls += 1;
    e.macs += macs;
}

}  // namespace nb::cpu

namespace nb::ops {

std::vector<OpTime> take_profile() {
    cpu::Profile& p = backend::current().state<cpu::Profile>();
    std::lock_guard lock(p.mu);
    std::vector<OpTime> out;
    for (auto [k, v] : p.times) {
        v.op = k;
        out.push_back(std::move(v));
    }
    p.times.clear();
    return out;
}

}  // namespace nb::ops
