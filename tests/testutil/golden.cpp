#include "testutil/golden.h"

#include <cmath>
#include <iterator>
#include <fstream>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>

namespace nb::test {

std::string shared_dir() {
    const char* env = std::getenv("NB_SHARED_DIR");
    return env && *env ? env : NB_SHARED_DIR;
}

std::string shared_path(const std::string& rel) {
    const std::string path = shared_dir() + "/" + rel;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        // Recorded as a skip, then the test body is left through the exception gtest treats as "already
        // reported" (the mechanism of GTEST_SKIP, usable from nested helpers).
        const std::string msg = fmt::format("golden data missing: {} (set NB_SHARED_DIR to the shared/ folder)", path);
        GTEST_MESSAGE_(msg.c_str(), ::testing::TestPartResult::kSkip);
        throw ::testing::AssertionException(
            ::testing::TestPartResult(::testing::TestPartResult::kSkip, __FILE__, __LINE__, msg.c_str()));
    }
    return path;
}
std::string data_path(const std::string& rel) { return std::string(NB_TEST_DATA_DIR) + "/" + rel; }

const SafeTensors& golden(const std::string& rel) {
    static std::map<std::string, std::unique_ptr<SafeTensors>> cache;
    auto& slot = cache[rel];
    if (!slot) {
        auto st = SafeTensors::open(shared_path(rel));
        if (!st) throw std::runtime_error("cannot open golden file " + shared_path(rel) + ": " + st.error().message);
        slot = std::make_unique<SafeTensors>(std::move(*st));
    }
    return *slot;
}

Tensor golden_tensor(const std::string& rel, const std::string& name) {
    auto t = golden(rel).load_f32(name);
    if (!t) throw std::runtime_error(t.error().message);
    return *t;
}

static ::testing::AssertionResult compare(const Tensor& got, const Tensor& ref, double rel, double abs) {
    if (got.numel() != ref.numel())
        return ::testing::AssertionFailure()
               << "shape mismatch: got " << shape_str(got.shape()) << " ref " << shape_str(ref.shape());
    double maxref = 0, maxdiff = 0;
    int64_t at = 0;
    bool nan = false;
    for (int64_t i = 0; i < ref.numel(); ++i) {
        double r = ref.data()[i], g = got.data()[i];
        maxref = std::max(maxref, std::fabs(r));
        double d = std::fabs(r - g);
        if (std::isnan(g) != std::isnan(r)) nan = true;
        if (d > maxdiff) maxdiff = d, at = i;
    }
    double bound = rel * maxref + abs;
    if (!nan && maxdiff <= bound)
        return ::testing::AssertionSuccess() << fmt::format("max|diff| {:.3g} (bound {:.3g})", maxdiff, bound);
    std::string first;
    for (int64_t i = 0; i < std::min<int64_t>(6, ref.numel()); ++i)
        first += fmt::format(" ({:.6g} vs {:.6g})", got.data()[i], ref.data()[i]);
    return ::testing::AssertionFailure() << fmt::format(
               "max|diff| {:.4g} at index {} (got {:.7g}, ref {:.7g}) > bound {:.3g} (rel {} x max|ref| {:.4g} + abs "
               "{}){}; first values:{}",
               maxdiff, at, got.data()[at], ref.data()[at], bound, rel, maxref, abs, nan ? "; NaN mismatch" : "",
               first);
}

::testing::AssertionResult close_rel(const Tensor& got, const Tensor& ref, double rel, double abs) {
    return compare(got, ref, rel, abs);
}
::testing::AssertionResult close_abs(const Tensor& got, const Tensor& ref, double abs) {
    return compare(got, ref, 0.0, abs);
}

// Minimal .npy v1/v2 reader: little-endian float32 ('<f4'), C order; shape parsed from the header dict.
Tensor read_npy(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    EXPECT_TRUE(f) << path;
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (bytes.size() < 12 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
        ADD_FAILURE() << path << ": not a .npy file";
        return {};
    }
    const int major = uint8_t(bytes[6]);
    size_t hlen = 0, start = 0;
    if (major == 1) {
        hlen = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
        start = 10;
    } else {
        for (int i = 0; i < 4; ++i) hlen |= size_t(uint8_t(bytes[8 + size_t(i)])) << (8 * i);
        start = 12;
    }
    const std::string header = bytes.substr(start, hlen);
    EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
    EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
    const size_t lp = header.find('(', header.find("'shape'")), rp = header.find(')', lp);
    Shape shape;
    std::string dims = header.substr(lp + 1, rp - lp - 1);
    for (size_t p = 0; p < dims.size();) {
        size_t q = dims.find(',', p);
        std::string d = dims.substr(p, q == std::string::npos ? std::string::npos : q - p);
        if (d.find_first_not_of(' ') != std::string::npos) shape.push_back(std::stoll(d));
        if (q == std::string::npos) break;
        p = q + 1;
    }
    Tensor t = Tensor::empty(shape);
    EXPECT_EQ(bytes.size() - start - hlen, size_t(t.numel()) * 4) << path;
    std::memcpy(t.data(), bytes.data() + start + hlen, size_t(t.numel()) * 4);
    return t;
}

}  // namespace nb::test
