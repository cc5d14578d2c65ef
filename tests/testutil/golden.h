// Test helpers: golden data from ../shared and tolerance comparisons that explain failures.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace nb::test {

// The shared/ folder: $NB_SHARED_DIR when set, else the one configured at build time (../shared).
std::string shared_dir();
// shared_dir() + "/" + rel. When that file is missing the calling test is skipped (one line naming the file and
// NB_SHARED_DIR) and left at once: clones without ../shared report skips, not failures.
std::string shared_path(const std::string& rel);
std::string data_path(const std::string& rel);    // tests/data/rel

// Opens a golden .safetensors file; fails the test (fatal) when missing.
const SafeTensors& golden(const std::string& rel);
Tensor golden_tensor(const std::string& rel, const std::string& name);

// A .npy file (v1/v2, little-endian float32, C order) as a tensor of its shape; failures are test failures.
Tensor read_npy(const std::string& path);

// max|a-b| <= rel * max|ref| + abs (scale-relative, as golden/README.md defines "rel").
::testing::AssertionResult close_rel(const Tensor& got, const Tensor& ref, double rel, double abs = 0.0);
// max|a-b| <= abs elementwise.
::testing::AssertionResult close_abs(const Tensor& got, const Tensor& ref, double abs);

}  // namespace nb::test
