// The demo model shipped in models/demo (no ../shared needed) and one engine on it per test process.
#pragma once

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "nanobanana/engine.h"

namespace nb::test {

inline std::string demo_model_path() {
    return (std::filesystem::path(NB_TEST_DATA_DIR) / "../../models/demo/demo.safetensors").lexically_normal().string();
}

inline std::unique_ptr<Engine> load_demo_engine(const std::string& precision) {
    LoadOptions o;
    o.model_path = demo_model_path();
    o.precision = precision;
    auto r = Engine::load(o);
    if (!r) throw std::runtime_error(r.error().message);
    return std::move(*r);
}

// Loaded once with default options; throws (failing the test) when the model cannot load.
inline Engine& demo_engine() {
    static auto e = load_demo_engine("auto");
    return *e;
}

// The same with exact fp32 math, for tests of arithmetic identities that hold up to float rounding (the default
// precision may run attention in bf16).
inline Engine& demo_engine_fp32() {
    static auto e = load_demo_engine("fp32");
    return *e;
}

}  // namespace nb::test
