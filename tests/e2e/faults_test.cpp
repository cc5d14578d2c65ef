// Faults of the machine (issue 22 item 3), on the demo model: a write that fails part way (a full disk, a quota:
// injected with a file-size limit, which makes write() fail with EFBIG as ENOSPC would) gives one clear line,
// a non-zero exit, no output file and no temporary file, and leaves a previous file of that name as it was.
#include <poll.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "image/image.h"
#include "nanobanana/engine.h"
#include "testutil/cli.h"
#include "testutil/demo.h"

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

// SIGKILL while the picture is being written (issue 22 item 3): the previous file of that name stays whole. The
// kill is sent the moment the temporary file appears in the folder (inotify), i.e. during the PNG encode and
// fsync, before the rename. A killed process cannot remove its temporary file: it stays beside the output as
// "out.png.tmpXXXXXX" and nothing reads it. If the rename won the race, the new picture must be whole instead.
TEST(Faults, KilledWhileWritingLeavesThePreviousFileWhole) {
#if defined(__SANITIZE_ADDRESS__)
    const std::string side = "128";  // 22 s at 256 under the sanitizers; writing is slower there anyway
#else
    const std::string side = "256";
#endif
    fs::path dir = fresh_dir("faults_sigkill");
    const std::string out = (dir / "out.png").string();
    auto first = test::run_cli("generate -p 'a red circle on a blue background' --steps 1 -s 1 -W " + side + " -H " + side +
                               " -o " + out);
    ASSERT_EQ(first.code, 0) << first.err;
    const std::string before = test::slurp(out);
    int killed_mid_write = 0;
    for (int attempt = 0; attempt < 4 && !killed_mid_write; ++attempt) {
        const int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        ASSERT_GE(in, 0);
        ASSERT_GE(inotify_add_watch(in, dir.c_str(), IN_CREATE), 0);
        const std::string seed = std::to_string(2 + attempt);
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            execl(NB_CLI, NB_CLI, "generate", "-p", "a green square on a red background", "--steps", "1", "-s",
                  seed.c_str(), "-W", side.c_str(), "-H", side.c_str(), "-o", out.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        bool sent = false;
        for (int waited = 0; waited < 120000 && !sent; waited += 100) {
            pollfd pfd{in, POLLIN, 0};
            if (poll(&pfd, 1, 100) <= 0) {
                if (waitpid(pid, nullptr, WNOHANG) == pid) break;  // ended before writing: the checks below fail
                continue;
            }
            alignas(inotify_event) char buf[4096];
            const ssize_t n = read(in, buf, sizeof buf);
            for (ssize_t at = 0; at < n;) {
                const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
                if (ev->len && std::string(ev->name).starts_with("out.png.tmp")) {
                    kill(pid, SIGKILL);
                    sent = true;
                }
                at += ssize_t(sizeof(inotify_event) + ev->len);
            }
        }
        close(in);
        int st = 0;
        waitpid(pid, &st, 0);
        ASSERT_TRUE(sent) << "the CLI never created its temporary file";
        ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        const std::vector<std::string> names = files_in(dir);
        const bool tmp_left = std::ranges::any_of(names, [](const std::string& n) { return n.starts_with("out.png.tmp"); });
        auto now = read_png(out);
        ASSERT_TRUE(now) << "out.png is not a whole PNG after the kill: " << now.error().message;
        if (tmp_left) {
            ++killed_mid_write;
            EXPECT_EQ(test::slurp(out), before) << "the previous picture changed";
        } else {
            EXPECT_EQ(now->width, std::stoi(side));  // the rename won the race: the new picture, whole
        }
        for (const auto& n : names)
            if (n != "out.png") fs::remove(dir / n);
    }
    EXPECT_GE(killed_mid_write, 1) << "no attempt stopped the writer before its rename; the test proved nothing";
}

// A checkpoint rewritten in place (truncated) while a model that releases idle weights has it mapped: the next
// generation reads the released weights again. Before, that read raised SIGBUS and killed the process (a server
// with all its jobs); now it is an error naming the file, and the engine stays usable for other work.
TEST(Faults, CheckpointTruncatedUnderAReleasedModelIsAnErrorNotACrash) {
    fs::path dir = fresh_dir("faults_truncated");
    const fs::path demo = fs::path(test::demo_model_path()).parent_path();
    for (const char* f : {"demo.safetensors", "vocab.json", "merges.txt"}) fs::copy_file(demo / f, dir / f);
    LoadOptions o;
    o.model_path = (dir / "demo.safetensors").string();
    o.release_idle_weights = true;
    auto engine = Engine::load(o);
    ASSERT_TRUE(engine) << engine.error().message;
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.steps = 2;
    p.width = p.height = 64;
    auto first = (*engine)->generate(p);
    ASSERT_TRUE(first) << first.error().message;
    const auto size = fs::file_size(dir / "demo.safetensors");
    fs::resize_file(dir / "demo.safetensors", size / 2);
    auto again = (*engine)->generate(p);
    ASSERT_FALSE(again) << "generated from a truncated file";
    EXPECT_NE(again.error().message.find("demo.safetensors: the file was truncated on disk"), std::string::npos)
        << again.error().message;
}

}  // namespace
}  // namespace nb
