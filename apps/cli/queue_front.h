// `nanobanana serve --queue redis://...`: the HTTP front puts txt2img/img2img jobs on Redis streams instead of
// running them, waits for a worker's result (cmd_worker.cpp) and answers exactly as the in-process queue does.
// /progress, /interrupt and /skip act on the running jobs this front submitted. Layout: docs/scale-out.md.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "queue_redis.h"
#include "serve_jobs.h"

namespace nb::cli {

class RedisFront {
public:
    // Connects and creates the stream (and consumer group) of each model in `models`.
    static Result<std::unique_ptr<RedisFront>> create(const std::string& url, const std::vector<std::string>& models,
                                                      int result_ttl_s, const std::string& results_dir = "");
    // Queues `job` for checkpoint `model` (its stem; `checkpoint` as the worker finds it) and answers with the
    // worker's result. A client's own X-Job-Id header names the job: sent again (after a front restart, a lost
    // connection), it waits for the same job instead of queueing it twice.
    void generate(const httplib::Request& req, httplib::Response& res, const PreparedJob& job, const std::string& model,
                  const std::string& checkpoint);
    nlohmann::json progress(bool with_image);
    void interrupt() { cancel_running(false); }
    void skip() { cancel_running(true); }
    void stop() { stopping_ = true; }  // waiting requests answer 503 (their jobs stay queued)

private:
    RedisFront() = default;
    void cancel_running(bool skip);
    std::string url_;
    std::vector<std::string> streams_;
    int result_ttl_s_ = 3600;
    std::string results_dir_;  // where workers' --results-dir is on this machine ("" = results are in Redis)
    std::mutex mu_;  // guards r_ and in_flight_
    std::unique_ptr<Redis> r_;
    std::vector<std::string> in_flight_;  // ids of the jobs this front waits for, oldest first
    std::atomic<bool> stopping_{false};
};

}  // namespace nb::cli
