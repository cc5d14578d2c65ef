// Faults of the machine (issue 22 item 3), on the demo model: a write that fails part way (a full disk, a quota:
// injected with a file-size limit, which makes write() fail with EFBIG as ENOSPC would) gives one clear line,
// a non-zero exit, no output file and no temporary file, and leaves a previous file of that name as it was.
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testutil/cli.h"

namespace nb {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
    fs::path d = fs::path(::testing::TempDir()) / name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::vector<std::string> files_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// `ulimit -f 4`: at most 4 KiB per file; a 64x64 PNG of the demo model is ~9 KiB.
constexpr const char* kSmallDisk = "ulimit -f 4;";

TEST(Faults, WriteFailingPartWayLeavesNoFileAndSaysWhy) {
    fs::path dir = fresh_dir("faults_write");
    const std::string out = (dir / "out.png").string();
    auto r = test::run_cli("generate -p 'a red circle on a blue background' --steps 2 -s 1 -o " + out, kSmallDisk);
    // The shell reports a child killed by SIGXFSZ as 128 + SIGXFSZ (the code before this test: a temporary file
    // of 4 KiB was left behind and nothing was said).
    EXPECT_NE(r.code, 128 + SIGXFSZ) << "killed mid-write instead of failing cleanly\n" << r.err;
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find(out + ": write failed: File too large"), std::string::npos) << r.err;
    EXPECT_EQ(files_in(dir), std::vector<std::string>{}) << "a partial or temporary file was left";
}

TEST(Faults, WriteFailingPartWayKeepsThePreviousFile) {
    fs::path dir = fresh_dir("faults_keep");
    const std::string out = (dir / "out.png").string();
    auto first = test::run_cli("generate -p 'a red circle on a blue background' --steps 2 -s 1 -o " + out);
    ASSERT_EQ(first.code, 0) << first.err;
    const std::string before = test::slurp(out);
    ASSERT_GT(before.size(), 4096u) << "the test needs a picture larger than the limit";
    auto r = test::run_cli("generate -p 'a green square on a red background' --steps 2 -s 2 -o " + out, kSmallDisk);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.code, 128 + SIGXFSZ) << r.err;
    EXPECT_EQ(test::slurp(out), before) << "the previous picture changed";
    EXPECT_EQ(files_in(dir), std::vector<std::string>{"out.png"});
}

}  // namespace
}  // namespace nb
