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

// Loaded once with default options; throws (failing the test) when the model cannot load.
inline Engine& demo_engine() {
    static auto e = [] {
        LoadOptions o;
        o.model_path = demo_model_path();
        auto r = Engine::load(o);
        if (!r) throw std::runtime_error(r.error().message);
        return std::move(*r);
    }();
    return *e;
}

}  // namespace nb::test
