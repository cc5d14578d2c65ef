// The Redis front of queue_front.h.
#include "queue_front.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>

namespace nb::cli {

using json = nlohmann::json;

namespace {

void fail(httplib::Response& res, int status, const std::string& msg) {
    res.status = status;
    res.set_content(json{{"error", status == 422 ? "ValidationError" : "HTTPException"}, {"detail", msg}}.dump(),
                    "application/json");
}

bool valid_id(const std::string& id) {
    return !id.empty() && id.size() <= 64 &&
           std::ranges::all_of(id, [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::string new_id() {
    std::random_device rd;
    return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

Result<std::unique_ptr<RedisFront>> RedisFront::create(const std::string& url, const std::vector<std::string>& models,
                                                       int result_ttl_s, const std::string& results_dir) {
    auto r = Redis::connect(url);
    if (!r) return std::unexpected(r.error());
    std::unique_ptr<RedisFront> f(new RedisFront);
    f->url_ = url;
    f->result_ttl_s_ = result_ttl_s;
    f->results_dir_ = results_dir;
    for (const auto& m : models) {
        f->streams_.push_back(rq::stream(m));
        if (auto g = rq::ensure_group(**r, f->streams_.back()); !g) return std::unexpected(g.error());
    }
    f->r_ = std::move(*r);
    return f;
}

void RedisFront::generate(const httplib::Request& req, httplib::Response& res, const PreparedJob& job,
                          const std::string& model, const std::string& checkpoint) {
    std::string id = req.get_header_value("X-Job-Id");
    if (!id.empty() && !valid_id(id))
        return fail(res, 422, "header X-Job-Id: up to 64 letters, digits, '-', '_' or '.'");
    const bool own_id = id.empty();  // a client's own id may be sent again: its job is never dropped
    if (own_id) id = new_id();
    const json payload = {{"id", id}, {"body", job.body}, {"img2img", job.img2img},
                          {"seed", job.request.params.seed}, {"subseed", job.request.params.subseed},
                          {"checkpoint", checkpoint}};
    auto conn = Redis::connect(url_);  // a connection of its own: waiting must not hold the shared one
    if (!conn) return fail(res, 503, conn.error().message);
    Redis& r = **conn;
    // A job id is queued once: a client sending the same X-Job-Id again waits for the same job.
    auto fresh = r.cmd({"SET", rq::job_key(id), rq::stream(model), "NX", "EX", std::to_string(result_ttl_s_)});
    if (!fresh) return fail(res, 503, fresh.error().message);
    if (!fresh->nil()) {
        auto added = r.cmd({"XADD", rq::stream(model), "*", "id", id, "job", payload.dump()});
        if (!added) {
            r.cmd({"DEL", rq::job_key(id)});
            return fail(res, 503, added.error().message);
        }
        std::fprintf(stderr, "job %s: queued on %s\n", id.c_str(), rq::stream(model).c_str());
    } else {
        std::fprintf(stderr, "job %s: already queued or done; waiting for it\n", id.c_str());
    }
    {
        std::lock_guard lk(mu_);
        in_flight_.push_back(id);
    }
    res.set_header("X-Job-Id", id);
    std::string result;
    std::string why;
    for (int i = 0; !stopping_; ++i) {
        auto v = r.cmd({"GET", rq::result_key(id)});
        if (!v) {
            why = v.error().message;
            break;
        }
        if (!v->nil()) {
            result = v->str;
            break;
        }
        if (own_id && i % 40 == 39 && !client_connected(req.local_port, req.remote_port)) {  // nobody waits: drop if not started
            r.cmd({"SET", rq::cancel_key(id), "drop", "EX", std::to_string(result_ttl_s_)});
            why = "client closed the connection";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    {
        std::lock_guard lk(mu_);
        std::erase(in_flight_, id);
    }
    if (result.empty())
        return fail(res, 503, why.empty() ? "server stopping; job " + id + " stays queued (send X-Job-Id: " + id +
                                                " again to wait for it)"
                                          : why);
    json out = json::parse(result, nullptr, false);
    if (out.is_object() && out.contains("file")) {  // written by a worker with --results-dir
        auto text = rq::read_result_file(results_dir_, out.value("file", std::string()));
        if (!text) return fail(res, 500, "job " + id + ": " + text.error().message);
        out = json::parse(*text, nullptr, false);
    }
    if (out.is_discarded() || !out.is_object()) return fail(res, 500, "job " + id + ": unreadable result");
    const int status = out.value("status", 500);
    if (status != 200) return fail(res, status, out.value("detail", std::string("job failed")));
    res.set_content(out["response"].dump(), "application/json");
}

json RedisFront::progress(bool with_image) {
    JobState st;
    int queued = 0;
    std::string preview;
    std::lock_guard lk(mu_);
    for (const auto& s : streams_)  // acknowledged jobs are deleted: a stream holds the queued and running ones
        if (auto len = r_->cmd({"XLEN", s})) queued += int(len->integer);
    for (const auto& id : in_flight_) {
        auto h = r_->cmd({"HGETALL", rq::progress_key(id)});
        if (!h || h->elements.empty()) continue;
        std::map<std::string, std::string> f;
        for (size_t i = 0; i + 1 < h->elements.size(); i += 2) f[h->elements[i].str] = h->elements[i + 1].str;
        auto num = [&](const char* k) { return f.contains(k) ? std::atoll(f[k].c_str()) : 0; };
        st.busy = true;
        st.image = int(num("image")), st.n_images = int(num("n_images"));
        st.step = int(num("step")), st.steps = int(num("steps"));
        st.started_ms = now_ms() - num("elapsed_ms");
        st.timestamp = f["timestamp"];
        preview = f["preview"];
        auto c = r_->cmd({"MGET", rq::cancel_key(id), rq::skip_key(id)});
        if (c && c->elements.size() == 2)
            st.interrupt = c->elements[0].str == "interrupt", st.skip = c->elements[1].str == f["image"];
        break;
    }
    json j = progress_json(st, queued, false);
    if (with_image && st.busy && !preview.empty()) j["current_image"] = preview;
    return j;
}

void RedisFront::cancel_running(bool skip) {
    std::lock_guard lk(mu_);
    for (const auto& id : in_flight_) {
        auto h = r_->cmd({"HGET", rq::progress_key(id), "image"});
        if (!h || h->nil()) continue;  // still queued: A1111's interrupt and skip act on the running job only
        if (skip)
            r_->cmd({"SET", rq::skip_key(id), h->str, "EX", "3600"});
        else
            r_->cmd({"SET", rq::cancel_key(id), "interrupt", "EX", "3600"});
    }
}

}  // namespace nb::cli
