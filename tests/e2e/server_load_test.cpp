// `nanobanana serve` under load (issue 22, item 4): the real binary on a loopback port with the demo model, a few
// rounds of many concurrent clients mixing the cheap endpoints (progress, sd-models, png-info) with real
// generations, interrupts, clients that hang up on a queued or running txt2img, and bursts of simultaneous
// connections. Checked: every answer is a documented status (here: 200, as every request is well formed), no
// request is refused or dropped, the server never crashes, its RSS stays flat from round 2 on, and the cheap
// endpoints stay fast while the engine samples (the HTTP threads never wait for the engine). Prints requests/s
// and the cheap endpoints' p50/p99.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/server.h"

#if defined(__SANITIZE_ADDRESS__)
#define NB_LOAD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NB_LOAD_SANITIZED 1
#endif
#endif

namespace nb {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The load's shape. Under ASan+UBSan (-O1, several times slower) fewer clients and shorter rounds: the same
// mix, still three rounds so that RSS is compared from round 2 to the last.
#ifdef NB_LOAD_SANITIZED
constexpr int kRounds = 3, kCheapClients = 8, kGenClients = 2, kBurst = 32;
constexpr auto kRound = std::chrono::seconds(4);
#else
constexpr int kRounds = 4, kCheapClients = 16, kGenClients = 3, kBurst = 100;
constexpr auto kRound = std::chrono::seconds(5);
#endif

// A generation of about 0.3 s on an idle 2 vCPU machine, ~1 s under this load (64x64, 24 steps of the demo model): real sampling, short enough that
// each round runs many, and interrupts land mid-sampling.
json generation(int seed) {
    return {{"prompt", "a red circle on a blue background"}, {"steps", 24}, {"width", 64}, {"height", 64},
            {"seed", seed}, {"sampler_name", "Euler a"}};
}

long rss_kb(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.starts_with("VmRSS:")) return std::atol(line.c_str() + 6);
    return -1;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::ranges::sort(v);
    return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

// A minimal HTTP/1.1 client on a raw socket, one connection a request (`Connection: close`), so that this test
// needs no HTTP library and controls how a client hangs up. status 0: no answer (`error` says why).
struct Answer {
    int status = 0;
    std::string body, error;
};

int connect_loopback(int port, int timeout_ms) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    const timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

std::string http_request(const std::string& method, const std::string& path, const std::string& body) {
    return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
           (body.empty() ? "" : "Content-Type: application/json\r\n") + "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool send_all(int fd, const std::string& data) {
    for (size_t at = 0; at < data.size();) {
        const ssize_t n = send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
        if (n <= 0) return false;
        at += size_t(n);
    }
    return true;
}

Answer request(int port, const std::string& method, const std::string& path, const std::string& body = "",
               int timeout_ms = 60000) {
    Answer a;
    const int fd = connect_loopback(port, timeout_ms);
    if (fd < 0) return {0, "", std::string("connect: ") + std::strerror(errno)};
    std::string in;
    if (send_all(fd, http_request(method, path, body))) {
        char buf[16384];
        ssize_t n;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0) in.append(buf, size_t(n));
        if (n < 0) a.error = std::string("recv: ") + std::strerror(errno);
    } else {
        a.error = std::string("send: ") + std::strerror(errno);
    }
    close(fd);
    const auto head_end = in.find("\r\n\r\n");
    if (in.starts_with("HTTP/1.1 ") && head_end != std::string::npos) {
        a.status = std::atoi(in.c_str() + 9);
        a.body = in.substr(head_end + 4);
    } else if (a.error.empty()) {
        a.error = in.empty() ? "closed without an answer" : "not HTTP: " + in.substr(0, 40);
    }
    return a;
}

// A client that sends a whole txt2img and hangs up after `wait_ms` without reading the answer (its job is then
// dropped while queued, or runs to its end with nobody to answer).
void post_and_hang_up(int port, int seed, int wait_ms) {
    const int fd = connect_loopback(port, 5000);
    if (fd < 0) return;
    if (send_all(fd, http_request("POST", "/sdapi/v1/txt2img", generation(seed).dump())))
        std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    close(fd);
}

// What the clients saw in one round, merged from every thread.
struct Tally {
    std::mutex mu;
    std::map<std::string, int> status;      // "GET /sdapi/v1/progress 200" -> count; "... no answer: <why>" too
    std::vector<double> cheap_ms;           // latencies of cheap requests made while a generation was in flight
    std::vector<double> generation_ms;      // latencies of the txt2img requests answered (queueing included)
    double burst_max_ms = 0;                // the slowest answer of the burst
    int requests = 0, generations = 0, disconnects = 0;

    void add(const std::string& what, const Answer& r, double ms, bool cheap_during_generation) {
        std::lock_guard lk(mu);
        ++requests;
        status[what + (r.status ? " " + std::to_string(r.status) : " no answer: " + r.error)]++;
        if (r.status && cheap_during_generation) cheap_ms.push_back(ms);
    }
    // Every answer counted that is not a 200 (each request here is well formed, so a 200 is the only documented
    // answer), and requests that got none.
    std::string unexpected() {
        std::string out;
        for (const auto& [k, n] : status)
            if (!k.ends_with(" 200")) out += "  " + k + ": " + std::to_string(n) + "\n";
        return out;
    }
};

struct RoundResult {
    double seconds = 0;
    int requests = 0, generations = 0, disconnects = 0;
    std::vector<double> cheap_ms, generation_ms;
    double burst_max_ms = 0;
    std::string unexpected;
};

// One round: every client runs until the round's end; the generation clients keep the engine busy all along.
RoundResult run_round(int port, const std::string& png_b64, int round) {
    Tally t;
    std::atomic<int> generating{0};  // txt2img requests in flight
    const auto start = Clock::now(), end = start + kRound;
    auto ms_since = [](Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
    std::vector<std::thread> threads;
    for (int g = 0; g < kGenClients; ++g)
        threads.emplace_back([&, g] {
            for (int i = 0; Clock::now() < end; ++i) {
                ++generating;
                const auto t0 = Clock::now();
                const Answer r = request(port, "POST", "/sdapi/v1/txt2img", generation(round * 1000 + g * 100 + i).dump());
                --generating;
                const double ms = ms_since(t0);
                t.add("POST /sdapi/v1/txt2img", r, ms, false);
                std::lock_guard lk(t.mu);
                t.generations += r.status == 200;
                if (r.status == 200) t.generation_ms.push_back(ms);
            }
        });
    threads.emplace_back([&] {  // interrupts at a steady pace, landing mid-sampling or between jobs
        while (Clock::now() < end) {
            std::this_thread::sleep_for(std::chrono::milliseconds(700));
            const auto t0 = Clock::now();
            t.add("POST /sdapi/v1/interrupt", request(port, "POST", "/sdapi/v1/interrupt", "{}"), ms_since(t0), false);
        }
    });
    threads.emplace_back([&] {  // hang-ups while queued or running, after 50..450 ms
        for (int i = 0; Clock::now() < end; ++i) {
            post_and_hang_up(port, 7000 + i, 50 + 100 * (i % 5));
            std::lock_guard lk(t.mu);
            ++t.disconnects;
        }
    });
    const std::string png_body = json{{"image", png_b64}}.dump();
    for (int k = 0; k < kCheapClients; ++k)
        threads.emplace_back([&, k] {
            for (int i = k; Clock::now() < end; ++i) {
                const bool during = generating > 0;
                const auto t0 = Clock::now();
                const char* what = i % 3 == 0 ? "GET /sdapi/v1/progress" : i % 3 == 1 ? "GET /sdapi/v1/sd-models"
                                                                                   : "POST /sdapi/v1/png-info";
                const Answer r = i % 3 == 0   ? request(port, "GET", "/sdapi/v1/progress")
                                 : i % 3 == 1 ? request(port, "GET", "/sdapi/v1/sd-models")
                                              : request(port, "POST", "/sdapi/v1/png-info", png_body);
                t.add(what, r, ms_since(t0), during && generating > 0);
            }
        });
    for (auto& th : threads) th.join();
    // A burst: kBurst clients connect at the same instant, each asks for /progress once.
    std::atomic<int> ready{0};
    std::vector<std::thread> burst;
    for (int b = 0; b < kBurst; ++b)
        burst.emplace_back([&] {
            ++ready;
            while (ready < kBurst) std::this_thread::yield();
            const auto t0 = Clock::now();
            const Answer r = request(port, "GET", "/sdapi/v1/progress?skip_current_image=true", "", 10000);
            const double ms = ms_since(t0);
            t.add("burst GET /sdapi/v1/progress", r, ms, false);
            std::lock_guard lk(t.mu);
            t.burst_max_ms = std::max(t.burst_max_ms, ms);
        });
    for (auto& th : burst) th.join();
    RoundResult out;
    out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    out.requests = t.requests;
    out.generations = t.generations;
    out.disconnects = t.disconnects;
    out.cheap_ms = std::move(t.cheap_ms);
    out.generation_ms = std::move(t.generation_ms);
    out.burst_max_ms = t.burst_max_ms;
    out.unexpected = t.unexpected();
    return out;
}

TEST(ServerLoad, ManyClientsMixingCheapEndpointsWithGenerationsInterruptsAndHangUps) {
    test::ServerProcess s("");
    const int port = s.port();
    ASSERT_GT(port, 0) << s.log();
    const Answer first = request(port, "POST", "/sdapi/v1/txt2img", generation(1).dump());
    ASSERT_EQ(first.status, 200) << first.error << s.log();
    const std::string png_b64 = json::parse(first.body)["images"][0];

    std::vector<long> rss;
    std::vector<double> all_cheap;
    int requests = 0;
    double seconds = 0;
    for (int round = 0; round < kRounds; ++round) {
        RoundResult r = run_round(port, png_b64, round);
        ASSERT_TRUE(s.alive()) << "the server died in round " << round << ":\n" << s.log().substr(0, 4000);
        EXPECT_EQ(r.unexpected, "") << "round " << round << ": answers other than 200, or none";
        EXPECT_GT(r.generations, 0) << "round " << round << ": no generation finished";
        // A connection the kernel had no room for in the listen backlog waits for TCP's retransmissions: 1 s,
        // then 3 s, 7 s (with cpp-httplib's backlog of 5: 3 to 20 of 100 unanswered after 10 s, the rest seconds
        // late). With room for all (cmd_serve.cpp raises it), the burst is answered in 8-13 ms.
        EXPECT_LT(r.burst_max_ms, 900.0) << "round " << round << ": a burst of " << kBurst
                                         << " connections overflowed the listen backlog";
        rss.push_back(rss_kb(s.pid()));
        std::printf("round %d: %d requests in %.1f s (%.0f/s), %d generations (p50 %.0f ms), %d hang-ups, cheap p50 %.1f ms p99 %.1f ms "
                    "(%zu during a generation), burst of %d answered within %.0f ms, RSS %ld kB\n",
                    round, r.requests, r.seconds, r.requests / r.seconds, r.generations, percentile(r.generation_ms, 0.5), r.disconnects,
                    percentile(r.cheap_ms, 0.5), percentile(r.cheap_ms, 0.99), r.cheap_ms.size(), kBurst, r.burst_max_ms, rss.back());
        std::fflush(stdout);
        requests += r.requests;
        seconds += r.seconds;
        all_cheap.insert(all_cheap.end(), r.cheap_ms.begin(), r.cheap_ms.end());
    }
    const double p50 = percentile(all_cheap, 0.5), p99 = percentile(all_cheap, 0.99);
    std::printf("overall: %d requests in %.1f s = %.0f requests/s; cheap endpoints during a generation: %zu, p50 %.1f ms, "
                "p99 %.1f ms\n", requests, seconds, requests / seconds, all_cheap.size(), p50, p99);
    std::fflush(stdout);

    ASSERT_GT(all_cheap.size(), 100u) << "too few cheap requests were timed during a generation";
    // A cheap request waits for the engine only if an HTTP thread does: that is one whole generation at the least
    // (~600 ms under this load, ~1.9 s with the queue; p50 above). Measured (2 vCPU AMD EPYC, the engine on both
    // cores, 16 cheap clients, 4 runs): p50 1.7-2.6 ms, p99 12-38 ms per round; the bound leaves 10x for a busier
    // machine (ctest -j2) and is still half a generation.
    EXPECT_LT(p99, 300.0) << "the cheap endpoints wait behind the engine";
    // RSS after round 1 holds the engine's warm buffers and the allocator's arenas for the HTTP threads; from
    // there it stays near flat. Measured: 54.5-55.7 MB after round 0, then -0.2 to +1.7 MB a round (23k-35k
    // requests a round, so < 70 bytes a request; malloc's per-thread arenas settle slowly). A leak of one PNG (~8 kB) per
    // png-info or txt2img request would add 60 MB a round.
#ifndef NB_LOAD_SANITIZED
    EXPECT_LT(rss.back() - rss[1], 16 * 1024) << "RSS grew from " << rss[1] << " kB to " << rss.back() << " kB";
#else
    // Under ASan, RSS measures its allocator (a freed-memory quarantine of up to 256 MB, per-thread caches that
    // fill as the 256 HTTP threads take connections: +58 MB from round 1 to 2 in a CI run), not ours; leaks are
    // LeakSanitizer's to find there (detect_leaks=1, at exit).
    std::printf("RSS from round 1 to the last: %+ld kB (not checked under the sanitizers)\n", rss.back() - rss[1]);
#endif

    // Still answering, and the queue is not stuck on the dropped tickets: it drains, and a new job runs at once.
    int job_count = -1;
    for (int i = 0; i < 100 && job_count != 0; ++i) {
        const Answer p = request(port, "GET", "/sdapi/v1/progress?skip_current_image=true");
        ASSERT_EQ(p.status, 200) << p.error;
        job_count = json::parse(p.body)["state"]["job_count"];
        if (job_count != 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(job_count, 0) << "the queue did not drain";
    EXPECT_EQ(request(port, "POST", "/sdapi/v1/txt2img", generation(2).dump()).status, 200);
    EXPECT_EQ(s.log().find("internal error"), std::string::npos);
    // The hang-ups reached the queue: with three clients generating back to back, one waits there every time.
    EXPECT_NE(s.log().find("client disconnected while queued; dropped"), std::string::npos);
    EXPECT_EQ(s.stop(), 0) << "SIGTERM ends the server cleanly after the load";
}

// Idle connections (issue 22, item 4): clients that keep a connection open after an answer (HTTP/1.1 keep-alive,
// as browsers and A1111 clients' session objects do) or open one and send nothing each hold one of the server's
// HTTP threads until its keep-alive timeout (5 s). Enough of them must not make the server deaf: with a pool of
// 32 threads, 48 such connections held a new client's /progress for seconds. Measured: a fresh client's answer
// time while they are open.
TEST(ServerLoad, IdleKeepAliveConnectionsDoNotStarveNewClients) {
    test::ServerProcess s("");
    const int port = s.port();
    ASSERT_GT(port, 0) << s.log();
    constexpr int kKeptAlive = 64, kSilent = 32;
    std::vector<int> idle;
    for (int i = 0; i < kKeptAlive + kSilent; ++i) {
        const int fd = connect_loopback(port, 5000);
        ASSERT_GE(fd, 0) << "connection " << i;
        idle.push_back(fd);
        if (i >= kKeptAlive) continue;  // opened, nothing sent
        ASSERT_TRUE(send_all(fd, "GET /sdapi/v1/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        char buf[4096];
        ASSERT_GT(recv(fd, buf, sizeof buf, 0), 0) << "no answer on keep-alive connection " << i;
    }
    std::vector<double> ms;
    for (int i = 0; i < 10; ++i) {
        const auto t0 = Clock::now();
        const Answer a = request(port, "GET", "/sdapi/v1/progress", "", 10000);
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        EXPECT_EQ(a.status, 200) << a.error;
    }
    for (int fd : idle) close(fd);
    std::printf("with %d idle keep-alive and %d silent connections open: a new client's /progress p50 %.1f ms, "
                "max %.1f ms\n", kKeptAlive, kSilent, percentile(ms, 0.5), percentile(ms, 1.0));
    EXPECT_LT(percentile(ms, 1.0), 1000.0) << "new clients waited for idle connections to time out";
    EXPECT_TRUE(s.alive());
}

}  // namespace
}  // namespace nb
