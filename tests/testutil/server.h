// `nanobanana serve` (NB_CLI, defined for the e2e tests) running in the background on a free loopback port, for
// tests that talk HTTP to it; stopped (SIGTERM) on destruction, so no test leaves a server behind.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "testutil/cli.h"

namespace nb::test {

class ServerProcess {
public:
    // `args` follow `serve --port 0`; waits up to 30 s for "listening on http://127.0.0.1:PORT" (port() stays 0
    // when it never comes: the log says why).
    explicit ServerProcess(const std::string& args) {
        log_ = ::testing::TempDir() + "/nb_server_" + std::to_string(getpid()) + "_" + std::to_string(++count_) + ".log";
        pid_ = fork();
        if (pid_ == 0) {
            const std::string cmd = std::string("exec ") + NB_CLI + " serve --port 0 " + args + " 2> " + log_;
            execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
            _exit(127);
        }
        for (int i = 0; i < 300 && port_ == 0; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {  // it gave up (the log says why)
                pid_ = -1;
                break;
            }
            const std::string text = slurp(log_);
            const auto at = text.find("listening on http://");
            if (at != std::string::npos) port_ = std::atoi(text.c_str() + text.find(':', at + 20) + 1);
        }
    }
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;
    ~ServerProcess() { stop(); }
    // SIGTERM, then the wait status (-1 when it was not running).
    int stop() {
        if (pid_ <= 0) return -1;
        kill(pid_, SIGTERM);
        int st = 0;
        waitpid(pid_, &st, 0);
        pid_ = -1;
        return st;
    }
    // Whether the process is still there (false once it died, by a crash or otherwise).
    bool alive() {
        int st = 0;
        if (pid_ > 0 && waitpid(pid_, &st, WNOHANG) == pid_) pid_ = -1;
        return pid_ > 0;
    }
    pid_t pid() const { return pid_; }
    int port() const { return port_; }
    std::string log() const { return slurp(log_); }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port_);
        c.set_read_timeout(300, 0);
        return c;
    }

private:
    static inline int count_ = 0;
    pid_t pid_ = -1;
    int port_ = 0;
    std::string log_;
};

}  // namespace nb::test
