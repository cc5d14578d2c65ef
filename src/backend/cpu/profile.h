// Per-op wall time, collected when enabled (bench --profile): says where a step's time goes.
#pragma once

#include <chrono>

namespace nb::cpu {

bool profiling();
void profile_add(const char* op, double seconds);

class ProfileScope {
public:
    explicit ProfileScope(const char* op) : op_(op), on_(profiling()) {
        if (on_) t0_ = std::chrono::steady_clock::now();
    }
    ~ProfileScope() {
        if (on_) profile_add(op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
    }

private:
    const char* op_;
    bool on_;
    std::chrono::steady_clock::time_point t0_;
};

}  // namespace nb::cpu
