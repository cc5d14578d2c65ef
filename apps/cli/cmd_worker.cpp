// `nanobanana worker --queue redis://...`: takes txt2img/img2img jobs that `serve --queue` put on Redis streams
// (one stream per model: nb:jobs:<model>, consumer group "workers"), runs them as the in-process server does
// (serve_jobs.h), publishes progress and stores the result before acknowledging the job. A job whose worker died
// is claimed again by another after --claim-after-ms (XAUTOCLAIM) and runs again from the start; a job delivered
// more than --max-attempts times goes to the dead-letter stream nb:dead. Layout and guarantees: docs/scale-out.md.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "queue_redis.h"
#include "serve_jobs.h"

namespace nb::cli {

namespace {

using json = nlohmann::json;

struct WorkerArgs {
    std::string queue, name, results_dir;
    LoadSettings load;
    int claim_after_ms = 60000, max_attempts = 3, result_ttl_s = 3600, max_jobs = 0;
};

std::atomic<bool> g_stop{false};

struct Entry {
    std::string stream, entry_id;
    json job;
    long long deliveries = 1;
};

// The entries of an XREADGROUP / XAUTOCLAIM reply ([[id, [field, value, ...]], ...]) of `stream`.
void collect(const RedisValue& list, const std::string& stream, std::vector<Entry>& out) {
    for (const auto& e : list.elements) {
        if (e.elements.size() < 2) continue;  // an entry deleted while pending
        Entry en{stream, e.elements[0].str, json(), 1};
        const auto& f = e.elements[1].elements;
        for (size_t i = 0; i + 1 < f.size(); i += 2)
            if (f[i].str == "job") en.job = json::parse(f[i + 1].str, nullptr, false);
        out.push_back(std::move(en));
    }
}

class Worker {
public:
    explicit Worker(const WorkerArgs& a) : a_(a) { models_.settings = a.load; }
    int run();

private:
    std::vector<Entry> next_jobs();
    void process(Entry& e);
    json execute(const json& job, const std::string& id);
    void finish(const Entry& e, const std::string& id, const json& result);
    std::vector<std::string> streams_in_preference_order();

    WorkerArgs a_;
    ModelCatalog models_;
    std::unique_ptr<Redis> r_;
    std::vector<std::string> streams_;
    std::string loaded_;  // stream of the model loaded last
};

std::vector<std::string> Worker::streams_in_preference_order() {
    std::vector<std::string> s = streams_;
    std::stable_partition(s.begin(), s.end(), [&](const std::string& x) { return x == loaded_; });
    return s;
}

// Stale jobs first (their worker died), then new ones: the loaded model's stream first, then all of them.
std::vector<Entry> Worker::next_jobs() {
    std::vector<Entry> out;
    for (const auto& s : streams_in_preference_order()) {
        auto v = r_->cmd({"XAUTOCLAIM", s, rq::kGroup, a_.name, std::to_string(a_.claim_after_ms), "0-0", "COUNT", "1"});
        if (v && v->elements.size() >= 2) collect(v->elements[1], s, out);
        if (!out.empty()) {
            auto p = r_->cmd({"XPENDING", s, rq::kGroup, out[0].entry_id, out[0].entry_id, "1"});
            if (p && !p->elements.empty() && p->elements[0].elements.size() >= 4)
                out[0].deliveries = p->elements[0].elements[3].integer;
            return out;
        }
    }
    if (!loaded_.empty()) {
        auto v = r_->cmd({"XREADGROUP", "GROUP", rq::kGroup, a_.name, "COUNT", "1", "STREAMS", loaded_, ">"});
        if (v && !v->nil())
            for (const auto& st : v->elements) collect(st.elements[1], st.elements[0].str, out);
        if (!out.empty()) return out;
    }
    std::vector<std::string> cmd = {"XREADGROUP", "GROUP", rq::kGroup, a_.name, "COUNT", "1", "BLOCK", "500", "STREAMS"};
    const auto order = streams_in_preference_order();
    cmd.insert(cmd.end(), order.begin(), order.end());
    for (size_t i = 0; i < order.size(); ++i) cmd.push_back(">");
    auto v = r_->cmd(cmd);
    if (!v) {
        std::fprintf(stderr, "warning: %s\n", v.error().message.c_str());
        std::this_thread::sleep_for(std::chrono::seconds(1));
    } else if (!v->nil()) {
        for (const auto& st : v->elements) collect(st.elements[1], st.elements[0].str, out);
    }
    return out;
}

json Worker::execute(const json& job, const std::string& id) {
    if (!job.is_object() || !job.contains("body"))
        return {{"status", 422}, {"detail", "job " + id + ": not a nanobanana job"}};
    if (const char* poison = std::getenv("NB_TEST_POISON_PROMPT"))  // tests: a job that kills its worker
        if (job["body"].value("prompt", std::string()) == poison) std::raise(SIGKILL);
    std::expected<PreparedJob, JobError> pj;
    {
        std::lock_guard lk(models_.mu);
        pj = prepare_generation(job["body"], job.value("img2img", false), models_);
    }
    if (!pj) return {{"status", pj.error().status}, {"detail", pj.error().detail}};
    pj->request.params.seed = job.value("seed", pj->request.params.seed);  // as the front chose them
    pj->request.params.subseed = job.value("subseed", pj->request.params.subseed);
    JobState st;
    // Progress for the front's /progress, and interrupt / skip from it, once a step.
    Redis& r = *r_;
    int64_t last_preview = 0;
    const std::string pkey = rq::progress_key(id);
    const auto on_step = [&]() {
        std::vector<std::string> h = {"HSET", pkey, "worker", a_.name, "image", std::to_string(st.image),
                                      "n_images", std::to_string(st.n_images), "step", std::to_string(st.step),
                                      "steps", std::to_string(st.steps), "elapsed_ms", std::to_string(now_ms() - st.started_ms)};
        {
            std::lock_guard lk(st.mu);
            h.insert(h.end(), {"timestamp", st.timestamp});
            if (!st.preview.pixels.empty() && now_ms() - last_preview > 250)
                if (auto png = encode_png(st.preview, "")) {
                    h.insert(h.end(), {"preview", a1111::encode_base64(*png)});
                    last_preview = now_ms();
                }
        }
        r.cmd(h);
        r.cmd({"EXPIRE", pkey, "600"});
        auto c = r.cmd({"MGET", rq::cancel_key(id), rq::skip_key(id)});
        if (c && c->elements.size() == 2) {
            if (c->elements[1].str == std::to_string(st.image)) st.skip = true;
            return c->elements[0].str != "interrupt";
        }
        return true;
    };
    r.cmd({"HSET", pkey, "worker", a_.name, "image", "0", "step", "0", "steps", "0", "n_images", "1"});
    r.cmd({"EXPIRE", pkey, "600"});
    auto out = run_generation(models_, *pj, job.value("checkpoint", std::string()), st, on_step);
    if (!out) return {{"status", out.error().status}, {"detail", out.error().detail}};
    return {{"status", 200}, {"response", std::move(*out)}};
}

void Worker::finish(const Entry& e, const std::string& id, const json& result) {
    std::string stored = result.dump();
    if (!a_.results_dir.empty() && result.value("status", 500) == 200) {  // the PNGs on shared storage
        if (auto f = rq::write_result_file(a_.results_dir, id, stored))
            stored = json{{"status", 200}, {"file", *f}}.dump();
        else
            std::fprintf(stderr, "warning: %s; the result goes to Redis\n", f.error().message.c_str());
    }
    // One transaction: a front that sees the result never still counts the job as queued (its /progress job_count).
    // A worker dying before it leaves the job to run again, never lost.
    auto done = r_->transaction({{"SET", rq::result_key(id), stored, "EX", std::to_string(a_.result_ttl_s)},
                                 {"DEL", rq::progress_key(id)},
                                 {"XACK", e.stream, rq::kGroup, e.entry_id},
                                 {"XDEL", e.stream, e.entry_id}});
    if (!done) std::fprintf(stderr, "warning: job %s: %s; it will run again\n", id.c_str(), done.error().message.c_str());
}

void Worker::process(Entry& e) {
    const std::string id = e.job.is_object() ? e.job.value("id", e.entry_id) : e.entry_id;
    if (auto done = r_->cmd({"EXISTS", rq::result_key(id)}); done && done->integer) {  // ran before its ack was stored
        (void)r_->transaction({{"XACK", e.stream, rq::kGroup, e.entry_id}, {"XDEL", e.stream, e.entry_id}});
        return;
    }
    if (auto c = r_->cmd({"GET", rq::cancel_key(id)}); c && c->str == "drop") {  // its client left before it ran
        std::fprintf(stderr, "job %s: dropped (its client left)\n", id.c_str());
        finish(e, id, {{"status", 499}, {"detail", "client closed the connection while queued"}});
        return;
    }
    if (e.deliveries > a_.max_attempts) {
        const std::string error = fmt::format("job {} was taken {} times and no worker finished it (a worker died "
                                              "each time); moved to the dead-letter stream {}",
                                              id, e.deliveries - 1, rq::kDead);
        std::fprintf(stderr, "%s\n", error.c_str());
        r_->cmd({"XADD", rq::kDead, "*", "id", id, "stream", e.stream, "error", error, "job", e.job.dump()});
        finish(e, id, {{"status", 500}, {"detail", error}});
        return;
    }
    std::fprintf(stderr, "job %s: started on %s (attempt %lld)\n", id.c_str(), a_.name.c_str(), e.deliveries);
    // While it runs, the job is claimed again every third of --claim-after-ms so that no other worker takes it.
    std::atomic<bool> running{true};
    std::thread heartbeat([&] {
        auto r = Redis::connect(a_.queue);
        for (int64_t last = now_ms(); running; std::this_thread::sleep_for(std::chrono::milliseconds(20)))
            if (r && now_ms() - last > a_.claim_after_ms / 3) {
                (*r)->cmd({"XCLAIM", e.stream, rq::kGroup, a_.name, "0", e.entry_id, "JUSTID"});
                last = now_ms();
            }
    });
    const int64_t t0 = now_ms();
    const json result = execute(e.job, id);
    running = false;
    heartbeat.join();
    loaded_ = e.stream;
    finish(e, id, result);
    std::fprintf(stderr, "job %s: done on %s in %.2f s (status %d)\n", id.c_str(), a_.name.c_str(),
                 double(now_ms() - t0) / 1000.0, result.value("status", 500));
}

int Worker::run() {
    LoadOptions settings;
    settings.precision = a_.load.precision;
    settings.prediction = a_.load.prediction;
    settings.threads = a_.load.threads;
    if (auto v = validate(settings); !v) {
        std::fprintf(stderr, "nanobanana: %s\n", v.error().message.c_str());
        return 2;
    }
    models_.refresh();
    if (models_.checkpoints.empty()) {
        std::fprintf(stderr, "nanobanana: no checkpoints in %s\n",
                     a_.load.models_dir.empty() ? "the demo model's folder" : (a_.load.models_dir + "/Stable-diffusion").c_str());
        return 2;
    }
    auto r = Redis::connect(a_.queue);
    if (!r) {
        std::fprintf(stderr, "nanobanana: %s\n", r.error().message.c_str());
        return 2;
    }
    r_ = std::move(*r);
    for (const auto& c : models_.checkpoints) {
        streams_.push_back(rq::stream(c.stem));
        if (auto g = rq::ensure_group(*r_, streams_.back()); !g) {
            std::fprintf(stderr, "nanobanana: %s\n", g.error().message.c_str());
            return 2;
        }
    }
    if (a_.name.empty()) {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        a_.name = fmt::format("{}-{}", host, getpid());
    }
    std::signal(SIGTERM, [](int) { g_stop = true; });
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::fprintf(stderr, "worker %s: waiting for jobs on %zu stream(s) at %s\n", a_.name.c_str(), streams_.size(),
                 a_.queue.c_str());
    int n_done = 0;
    while (!g_stop && (a_.max_jobs == 0 || n_done < a_.max_jobs))
        for (auto& e : next_jobs()) {
            process(e);
            ++n_done;
        }
    std::fprintf(stderr, "worker %s: stopped after %d job(s)\n", a_.name.c_str(), n_done);
    return 0;
}

}  // namespace

CommandRunner register_worker(CLI::App& app) {
    auto a = std::make_shared<WorkerArgs>();
    auto* s = app.add_subcommand("worker", "Run jobs queued on Redis by `serve --queue` (docs/scale-out.md)");
    s->add_option("--queue", a->queue, "Redis URL: redis://HOST:PORT[/DB]")->required();
    s->add_option("--models-dir", a->load.models_dir,
                  "A1111-layout models folder, as the front's (models are matched by name) [the demo model]");
    s->add_option("--max-models", a->load.max_models, "Checkpoints kept loaded (least recently used goes)")->capture_default_str();
    s->add_option("--name", a->name, "Consumer name in the Redis group [host-pid]");
    s->add_option("--claim-after-ms", a->claim_after_ms,
                  "A job whose worker gave no sign of life this long is taken over (visibility timeout)")
        ->capture_default_str();
    s->add_option("--max-attempts", a->max_attempts, "Deliveries of a job before it goes to the dead-letter stream")
        ->capture_default_str();
    s->add_option("--result-ttl", a->result_ttl_s, "Seconds a result stays in Redis")->capture_default_str();
    s->add_option("--results-dir", a->results_dir,
                  "Write results (PNGs + info as JSON) here, on storage the front shares, instead of into Redis");
    s->add_option("--max-jobs", a->max_jobs, "Stop after this many jobs (0 = never)")->capture_default_str();
    s->add_option("--vocab", a->load.vocab, "CLIP vocabulary for checkpoints without one beside them");
    s->add_option("--precision", a->load.precision, "auto, fp32 or bf16")->capture_default_str();
    s->add_option("--prediction", a->load.prediction, "auto, eps or v")->capture_default_str();
    s->add_option("-t,--threads", a->load.threads, "Threads (0 = all cores)")->capture_default_str();
    return [a] { return Worker(*a).run(); };
}

}  // namespace nb::cli
