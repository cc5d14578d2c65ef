// Runs the CLI binary (NB_CLI, defined for the e2e tests) as a user would, capturing exit code and output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

namespace nb::test {

struct CliResult {
    int code = -1;  // exit status; -1 when killed by a signal
    std::string out, err;
};

inline std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// `env` is put before the binary (e.g. "env -u OMP_WAIT_POLICY"); files are per process (ctest runs tests in
// parallel processes).
inline CliResult run_cli(const std::string& args, const std::string& env = "") {
    const std::string pid = std::to_string(getpid());
    const std::string o = ::testing::TempDir() + "/nb_cli_out_" + pid + ".txt",
                      e = ::testing::TempDir() + "/nb_cli_err_" + pid + ".txt";
    const int st = std::system((env + " " + NB_CLI + " " + args + " > " + o + " 2> " + e).c_str());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(o), slurp(e)};
}

// Starts `cmd` (a shell command line, its stderr redirected to `err_file`), waits until `err_file` contains
// `needle` (at most `seconds`), sends SIGINT and returns the exit code (-1: the line never came or the process
// died by a signal; the caller's expectations then fail).
inline int interrupt_when(const std::string& cmd, const std::string& err_file, const std::string& needle,
                          int seconds = 180) {
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    bool seen = false;
    for (int i = 0; i < seconds * 10 && !seen; ++i) {
        usleep(100 * 1000);
        seen = slurp(err_file).find(needle) != std::string::npos;
    }
    EXPECT_TRUE(seen) << "never printed '" << needle << "'";
    kill(pid, SIGINT);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return seen ? WEXITSTATUS(st) : -1;
}

}  // namespace nb::test
