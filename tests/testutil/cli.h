// Runs the CLI binary (NB_CLI, defined for the e2e tests) as a user would, capturing exit code and output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace nb::test
