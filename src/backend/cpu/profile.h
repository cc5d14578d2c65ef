// Per-op wall time, collected when enabled (bench --profile): says where a step's time goes.
#pragma once

#include <chrono>
#include <cstdint>

#include "backend/context.h"

namespace nb::cpu {

// Whether the current context profiles (ops::set_profiling).
bool profiling();
// One call of `op`: its wall time and the multiply-accumulates it counted (ops::count_macs).
void profile_add(const char* op, double seconds, int64_t macs);

class ProfileScope {
public:
    explicit ProfileScope(const char* op) : op_(op), on_(profiling()) {
        if (on_) {
            t0_ = std::chrono::steady_clock::now();
            macs0_ = ops::mac_count();
        }
    }
    void rename(const char* op) { op_ = op; }  // once the op knows which kernel it ran
    ~ProfileScope() {
        if (on_)
            profile_add(op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(),
                        ops::mac_count() - macs0_);
    }

private:
    const char* op_;
    bool on_;
    std::chrono::steady_clock::time_point t0_;
    int64_t macs0_ = 0;
};

}  // namespace nb::cpu
