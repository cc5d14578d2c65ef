// `nanobanana serve --queue` + `nanobanana worker` on a real redis-server (own port and folder): jobs spread over
// workers, A1111 calls through the front (txt2img, progress, interrupt), a worker killed mid-job, a front
// restarted with jobs queued, a job that kills its workers (dead-letter stream), 100 jobs each done once.
// Skipped when redis-server is not installed, unless CI or NB_REQUIRE_REDIS is set (then it fails).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "testutil/cli.h"

namespace nb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

// "prefix" + the number (GCC 12 warns falsely, -Wrestrict, on a literal + std::to_string inlined).
std::string named(const char* prefix, long long n) {
    std::string s = prefix;
    s += std::to_string(n);
    return s;
}

int free_port() {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(s, reinterpret_cast<sockaddr*>(&a), &n);
    close(s);
    return ntohs(a.sin_port);
}

std::string sh_output(const std::string& cmd) {
    std::string out;
    if (FILE* f = popen(cmd.c_str(), "r")) {
        char buf[4096];
        while (size_t n = fread(buf, 1, sizeof buf, f)) out.append(buf, n);
        pclose(f);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

// A child process (`sh -c "exec CMD"`, stderr to its log); killed (SIGKILL) and reaped on destruction.
class Child {
public:
    Child(const std::string& cmd, const std::string& log) : log_(log) {
        pid_ = fork();
        if (pid_ == 0) {
            execl("/bin/sh", "sh", "-c", ("exec " + cmd + " 2>> " + log).c_str(), nullptr);
            _exit(127);
        }
    }
    ~Child() { kill_now(SIGKILL); }
    void kill_now(int sig) {
        if (pid_ <= 0) return;
        kill(pid_, sig);
        int st = 0;
        waitpid(pid_, &st, 0);
        pid_ = -1;
    }
    bool alive() {
        if (pid_ <= 0) return false;
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) pid_ = -1;
        return pid_ > 0;
    }
    std::string log() const { return test::slurp(log_); }
    bool wait_log(const std::string& needle, int seconds) const {
        for (int i = 0; i < seconds * 20; ++i, std::this_thread::sleep_for(50ms))
            if (log().find(needle) != std::string::npos) return true;
        return false;
    }

private:
    pid_t pid_ = -1;
    std::string log_;
};

bool redis_installed() { return std::system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1") == 0; }

// redis-server, one front and workers on the demo model, in a folder of their own; all stopped on destruction.
class Cluster {
public:
    // `shared_results`: front and workers get --results-dir <dir>/results (results as files, not in Redis).
    explicit Cluster(int n_workers, const std::string& worker_env = "", bool shared_results = false)
        : worker_env_(worker_env) {
        dir_ = fs::path(::testing::TempDir()) / (named("nb_scale_out_", getpid()) + named("_", ++count_));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        if (shared_results) {
            fs::create_directories(dir_ / "results");
            results_args_ = " --results-dir " + (dir_ / "results").string();
        }
        redis_port_ = free_port();
        redis_ = std::make_unique<Child>(
            named("redis-server --port ", redis_port_) + " --bind 127.0.0.1 --save '' --appendonly no --dir " +
                dir_.string() + " --logfile " + (dir_ / "redis.log").string(),
            (dir_ / "redis.err").string());
        for (int i = 0; i < 100 && redis("PING") != "PONG"; ++i) std::this_thread::sleep_for(50ms);
        start_front();
        for (int i = 0; i < n_workers; ++i) add_worker();
    }
    ~Cluster() {
        workers_.clear();
        front_.reset();
        if (redis_) redis_->kill_now(SIGTERM);
        if (!::testing::Test::HasFailure()) fs::remove_all(dir_);  // kept (with its logs) when the test failed
    }
    std::string url() const { return named("redis://127.0.0.1:", redis_port_); }
    std::string redis(const std::string& args) const {
        return sh_output(named("redis-cli -p ", redis_port_) + " " + args + " 2>&1");
    }
    void start_front() {
        const std::string log = (dir_ / (named("front", ++n_fronts_) + ".log")).string();
        front_ = std::make_unique<Child>(std::string(NB_CLI) + " serve --port 0 --queue " + url() + results_args_, log);
        front_port_ = 0;
        for (int i = 0; i < 300 && front_port_ == 0 && front_->alive(); ++i) {
            std::this_thread::sleep_for(100ms);
            const std::string text = front_->log();
            const auto at = text.find("listening on http://");
            if (at != std::string::npos) front_port_ = std::atoi(text.c_str() + text.find(':', at + 20) + 1);
        }
    }
    Child& front() { return *front_; }
    void add_worker() {
        const int n = int(workers_.size());
        workers_.push_back(std::make_unique<Child>(
            worker_env_ + " " + NB_CLI + named(" worker -t 1 --claim-after-ms 1500 --name w", n) +
                " --queue " + url() + results_args_,
            (dir_ / (named("w", n) + ".log")).string()));
        workers_.back()->wait_log("waiting for jobs", 30);
    }
    // Starts a worker in place of each one that died (as systemd's Restart=always would).
    void respawn() {
        for (size_t i = 0; i < workers_.size(); ++i)
            if (!workers_[i]->alive()) {
                workers_[i] = std::make_unique<Child>(
                    worker_env_ + " " + NB_CLI + named(" worker -t 1 --claim-after-ms 1000 --name w", i) +
                        named("r", ++respawns_) + " --queue " + url(),
                    (dir_ / (named("w", i) + ".log")).string());
            }
    }
    std::vector<std::unique_ptr<Child>>& workers() { return workers_; }
    std::string all_worker_logs() const {
        std::string s;
        for (const auto& e : fs::directory_iterator(dir_))
            if (e.path().filename().string().starts_with("w")) s += test::slurp(e.path().string());
        return s;
    }
    int front_port() const { return front_port_; }
    fs::path dir() const { return dir_; }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", front_port_);
        c.set_read_timeout(120, 0);
        return c;
    }

private:
    static inline int count_ = 0;
    fs::path dir_;
    std::string worker_env_, results_args_;
    int redis_port_ = 0, front_port_ = 0, n_fronts_ = 0, respawns_ = 0;
    std::unique_ptr<Child> redis_, front_;
    std::vector<std::unique_ptr<Child>> workers_;
};

class ScaleOut : public ::testing::Test {
protected:
    void SetUp() override {
        if (!redis_installed()) {
            if (std::getenv("CI") || std::getenv("NB_REQUIRE_REDIS"))
                FAIL() << "redis-server / redis-cli not installed (scripts/setup.sh installs them)";
            GTEST_SKIP() << "redis-server not installed (scripts/setup.sh installs it)";
        }
    }
};

json txt2img(int seed, int steps, int size = 64) {
    return {{"prompt", "a red circle on a blue background"}, {"steps", steps}, {"width", size}, {"height", size},
            {"seed", seed}, {"sampler_name", "Euler a"}};
}

struct Answer {
    int status = -1;
    json body;
    std::string job;
};
Answer post(const Cluster& c, const json& body, const std::string& job_id = "") {
    auto cl = c.client();
    httplib::Headers h;
    if (!job_id.empty()) h.emplace("X-Job-Id", job_id);
    auto r = cl.Post("/sdapi/v1/txt2img", h, body.dump(), "application/json");
    if (!r) return {-1, httplib::to_string(r.error()), ""};
    return {r->status, json::parse(r->body, nullptr, false), r->get_header_value("X-Job-Id")};
}

int count(const std::string& text, const std::string& needle) {
    int n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

TEST_F(ScaleOut, JobsSpreadOverWorkersAndA1111ClientsGetTheSameAnswers) {
    Cluster c(3);
    ASSERT_GT(c.front_port(), 0) << c.front().log();
    std::vector<Answer> answers(9);
    std::vector<std::thread> ts;
    for (int i = 0; i < 9; ++i) ts.emplace_back([&, i] { answers[i] = post(c, txt2img(100 + i, 6)); });
    for (auto& t : ts) t.join();
    for (int i = 0; i < 9; ++i) {
        ASSERT_EQ(answers[i].status, 200) << answers[i].body.dump().substr(0, 300);
        EXPECT_EQ(answers[i].body["images"].size(), 1u);
        const json info = json::parse(answers[i].body["info"].get<std::string>());
        EXPECT_EQ(info["seed"], 100 + i);
        EXPECT_EQ(info["sd_model_name"], "demo");
    }
    int used = 0;
    for (auto& w : c.workers()) used += w->log().find(": done on") != std::string::npos;
    EXPECT_GE(used, 2) << "9 jobs for 3 workers all ran on one";
    // The seed travels with the job: the same request gives the same picture again, whichever worker runs it.
    EXPECT_EQ(post(c, txt2img(100, 6)).body["images"], answers[0].body["images"]);
    auto cl = c.client();
    auto p = cl.Get("/sdapi/v1/progress");
    ASSERT_TRUE(p);
    EXPECT_EQ(json::parse(p->body)["state"]["job_count"], 0);
}

TEST_F(ScaleOut, ProgressAndInterruptWorkThroughTheFront) {
    Cluster c(1);
    Answer a;
    std::atomic<bool> answered{false};
    std::thread t([&] {
        a = post(c, txt2img(7, 1000), "long-1");  // ~8 s on one core
        answered = true;
    });
    auto cl = c.client();
    json p;
    for (int i = 0; i < 600 && !answered; ++i, std::this_thread::sleep_for(50ms)) {
        auto r = cl.Get("/sdapi/v1/progress");
        if (r && (p = json::parse(r->body))["state"]["sampling_step"] > 1) break;
    }
    EXPECT_GT(p["state"]["sampling_step"], 1) << p.dump().substr(0, 300);
    EXPECT_EQ(p["state"]["sampling_steps"], 1000);
    EXPECT_EQ(p["state"]["job"], "job");
    EXPECT_FALSE(p["current_image"].is_null()) << "the live preview comes through the front";
    EXPECT_GT(p["progress"], 0.0);
    auto i = cl.Post("/sdapi/v1/interrupt", "", "application/json");
    ASSERT_TRUE(i);
    EXPECT_EQ(i->status, 200);
    const auto t0 = std::chrono::steady_clock::now();
    t.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << "the worker stops at its next step";
    ASSERT_EQ(a.status, 200) << a.body.dump().substr(0, 300);
    EXPECT_EQ(a.body["images"].size(), 1u) << "an interrupted image comes back as it stands (A1111)";
    EXPECT_EQ(a.job, "long-1");
    EXPECT_TRUE(c.workers()[0]->wait_log("job long-1: done", 5));
}

// A1111's queue position and Skip through the front: a running and a queued job count 2 in job_count; Skip ends
// the running image as it stands (a batch of one: the job answers with it) and the queued job runs next.
TEST_F(ScaleOut, SkipAndQueuePositionWorkThroughTheFront) {
    Cluster c(1);
    Answer first, second;
    std::thread t1([&] { first = post(c, txt2img(9, 1000), "skip-1"); });
    ASSERT_TRUE(c.workers()[0]->wait_log("job skip-1: started", 30));
    std::thread t2([&] { second = post(c, txt2img(10, 3), "skip-2"); });
    auto cl = c.client();
    json p;
    for (int i = 0; i < 400; ++i, std::this_thread::sleep_for(25ms)) {
        auto r = cl.Get("/sdapi/v1/progress");
        if (r && (p = json::parse(r->body))["state"]["job_count"] == 2) break;
    }
    EXPECT_EQ(p["state"]["job_count"], 2) << "one running, one queued: " << p.dump().substr(0, 300);
    auto s = cl.Post("/sdapi/v1/skip", "", "application/json");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->status, 200);
    const auto t0 = std::chrono::steady_clock::now();
    t1.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << "1000 steps take ~8 s: the skip stopped them";
    t2.join();
    ASSERT_EQ(first.status, 200) << first.body.dump().substr(0, 300);
    EXPECT_EQ(first.body["images"].size(), 1u) << "the skipped image comes back as it stands";
    ASSERT_EQ(second.status, 200) << second.body.dump().substr(0, 300);
    EXPECT_EQ(second.body["images"].size(), 1u);
    EXPECT_TRUE(c.workers()[0]->wait_log("job skip-2: done", 5));
}

TEST_F(ScaleOut, AWorkerKilledMidJobLosesNoJob) {
#if defined(__SANITIZE_ADDRESS__)
    constexpr int kSteps = 60;  // steps are ~5x slower under the sanitizers: still well past the kill at 300 ms
#else
    constexpr int kSteps = 300;
#endif
    Cluster c(2);
    Answer a;
    std::thread t([&] { a = post(c, txt2img(8, kSteps), "kill-1"); });
    int victim = -1;
    for (int i = 0; i < 400 && victim < 0; ++i, std::this_thread::sleep_for(25ms))
        for (int w = 0; w < 2; ++w)
            if (c.workers()[w]->log().find("job kill-1: started") != std::string::npos) victim = w;
    ASSERT_GE(victim, 0);
    std::this_thread::sleep_for(300ms);  // mid-job
    c.workers()[victim]->kill_now(SIGKILL);
    t.join();
    ASSERT_EQ(a.status, 200) << a.body.dump().substr(0, 300);
    EXPECT_EQ(a.body["images"].size(), 1u);
    EXPECT_NE(c.workers()[1 - victim]->log().find(named("job kill-1: started on w", 1 - victim) + " (attempt 2)"),
              std::string::npos) << c.workers()[1 - victim]->log();
    EXPECT_EQ(count(c.all_worker_logs(), "job kill-1: done"), 1);
}

TEST_F(ScaleOut, RestartingTheFrontLosesNoQueuedJob) {
    Cluster c(0);  // no worker yet: the jobs wait in Redis
    std::vector<std::thread> ts;
    std::vector<Answer> first(5);
    for (int i = 0; i < 5; ++i) ts.emplace_back([&, i] { first[i] = post(c, txt2img(40 + i, 4), named("r", i)); });
    for (int i = 0; i < 200 && c.redis("XLEN nb:jobs:demo") != "5"; ++i) std::this_thread::sleep_for(50ms);
    ASSERT_EQ(c.redis("XLEN nb:jobs:demo"), "5");
    c.front().kill_now(SIGKILL);
    for (auto& t : ts) t.join();
    for (const auto& a : first) EXPECT_NE(a.status, 200) << "the front died: no answer";
    c.start_front();
    ASSERT_GT(c.front_port(), 0) << c.front().log();
    c.add_worker();
    c.add_worker();
    std::vector<Answer> again(5);
    ts.clear();
    for (int i = 0; i < 5; ++i) ts.emplace_back([&, i] { again[i] = post(c, txt2img(40 + i, 4), named("r", i)); });
    for (auto& t : ts) t.join();
    const std::string logs = c.all_worker_logs();
    for (int i = 0; i < 5; ++i) {
        ASSERT_EQ(again[i].status, 200) << again[i].body.dump().substr(0, 300);
        EXPECT_EQ(json::parse(again[i].body["info"].get<std::string>())["seed"], 40 + i);
        EXPECT_EQ(count(logs, named("job r", i) + ": done"), 1) << "ran once, though asked twice";
    }
}

TEST_F(ScaleOut, AJobThatKillsItsWorkersGoesToTheDeadLetterStream) {
    Cluster c(2, "env NB_TEST_POISON_PROMPT=poison");
    Answer a;
    json poison = txt2img(9, 4);
    poison["prompt"] = "poison";
    std::atomic<bool> done{false};
    std::thread t([&] {
        a = post(c, poison, "poison-1");
        done = true;
    });
    for (int i = 0; i < 600 && !done; ++i, std::this_thread::sleep_for(50ms)) c.respawn();
    t.join();
    EXPECT_EQ(a.status, 500);
    EXPECT_NE(a.body.value("detail", "").find("dead-letter"), std::string::npos) << a.body.dump();
    EXPECT_EQ(c.redis("XLEN nb:dead"), "1");
    EXPECT_NE(c.redis("XRANGE nb:dead - +").find("poison-1"), std::string::npos);
    EXPECT_EQ(count(c.all_worker_logs(), "job poison-1: started"), 3) << "3 attempts (--max-attempts)";
    c.respawn();
    const Answer next = post(c, txt2img(10, 4));
    EXPECT_EQ(next.status, 200) << "the queue goes on";
}

TEST_F(ScaleOut, HundredQueuedJobsAllCompleteExactlyOnce) {
    Cluster c(3);
    std::vector<Answer> answers(100);
    std::atomic<int> retries{0};
    std::vector<std::thread> ts;
    // 100 connections at once: cpp-httplib 0.11 listens with a backlog of 5, and a few of them may lose their
    // connection before the front reads the request. A client then sends the same X-Job-Id again, as
    // docs/scale-out.md says; the job is still queued (or run) once.
    for (int i = 0; i < 100; ++i)
        ts.emplace_back([&, i] {
            for (int attempt = 0; attempt < 3 && answers[i].status != 200; ++attempt) {
                if (attempt) ++retries;
                answers[i] = post(c, txt2img(1000 + i, 2, 32), named("h", i));
            }
        });
    for (auto& t : ts) t.join();
    std::set<std::string> ids;
    const std::string logs = c.all_worker_logs();
    for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(answers[i].status, 200) << i << ": " << answers[i].body.dump().substr(0, 300);
        EXPECT_EQ(json::parse(answers[i].body["info"].get<std::string>())["seed"], 1000 + i);
        ids.insert(answers[i].job);
        EXPECT_EQ(count(logs, "job " + answers[i].job + ": done"), 1);
    }
    EXPECT_EQ(ids.size(), 100u);
    EXPECT_EQ(count(logs, ": done on"), 100);
    std::printf("100 jobs: %d client retries after a lost connection\n", int(retries));
}

TEST_F(ScaleOut, ResultsCanBeFilesOnSharedStorage) {
    Cluster c(1, "", /*shared_results=*/true);
    const Answer a = post(c, txt2img(11, 4), "file-1");
    ASSERT_EQ(a.status, 200) << a.body.dump().substr(0, 300);
    EXPECT_EQ(a.body["images"].size(), 1u);
    EXPECT_TRUE(fs::exists(c.dir() / "results" / "file-1.json"));
    EXPECT_EQ(c.redis("GET nb:result:file-1"), R"({"file":"file-1.json","status":200})") << "Redis holds the name only";
}

TEST(ScaleOutFlags, ABadQueueUrlIsOneLineNotAHang) {  // needs no redis-server
    const auto r = test::run_cli("worker --queue redis://127.0.0.1:1");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("cannot connect to Redis at redis://127.0.0.1:1"), std::string::npos) << r.err;
    const auto s = test::run_cli("serve --port 0 --queue http://x");
    EXPECT_EQ(s.code, 2);
    EXPECT_NE(s.err.find("expected redis://HOST:PORT[/DB]"), std::string::npos) << s.err;
}

}  // namespace
}  // namespace nb
