// `nanobanana serve`: AUTOMATIC1111's web API (/sdapi/v1/...) and OpenAI's images API over the public engine.
// One job runs at a time (FIFO, position reported by /progress); interrupt keeps the finished images and the
// current one as it stands, skip keeps the current one as it stands and moves to the next image (A1111). Models come from an A1111-layout folder (Stable-diffusion/, Lora/, VAE/, ESRGAN/, RealESRGAN/)
// or, without one, the built-in demo model. Endpoints and what is supported: docs/api.md.
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "serve_studio.h"
#include "queue_front.h"
#include "serve_jobs.h"
#include "serve_support.h"
#include "nanobanana/a1111.h"

#ifndef NB_VERSION
#define NB_VERSION "0.1.0"
#endif

namespace nb::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct ServeArgs {
    std::string models_dir, ckpt, host = "127.0.0.1", auth, cors, vocab, precision = "auto", prediction = "auto", queue,
                results_dir;
    int port = 7860, threads = 0, max_models = 1, result_ttl_s = 3600;
    bool listen = false, verbose = false;
    size_t max_body_mb = 64;
};

// ---- the server ----

class Server {
public:
    explicit Server(const ServeArgs& a) : a_(a) {
        models_.settings = {a.models_dir, a.vocab, a.precision, a.prediction, a.threads, a.max_models};
    }
    int run();

private:
    // jobs
    struct Ticket;
    void log(const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); }

    // handlers
    void generate(const httplib::Request& req, httplib::Response& res, bool img2img);
    void openai_generations(const httplib::Request& req, httplib::Response& res);
    void progress(const httplib::Request& req, httplib::Response& res);
    void extra_single_image(const httplib::Request& req, httplib::Response& res);
    void png_info(const httplib::Request& req, httplib::Response& res);
    void get_options(httplib::Response& res);
    void post_options(const httplib::Request& req, httplib::Response& res);
    void routes();

    ServeArgs a_;
    httplib::Server svr_;

    ModelCatalog models_;  // its mutex guards current_ and options_ too
    std::string current_;  // name of the current checkpoint
    json options_;         // A1111 options as set by clients (unknown keys kept)
    std::string current() {
        std::lock_guard lk(models_.mu);
        return current_;
    }

    // The job queue: a ticket per request, served in order; one runs at a time.
    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    uint64_t next_ticket_ = 0, serving_ = 0;
    std::set<uint64_t> abandoned_;  // tickets whose clients left while queued: passed over when their turn comes
    JobState job_;                  // the running job (read by /progress from other threads)
    std::unique_ptr<RedisFront> queue_;  // with --queue: jobs go to Redis instead (queue_front.h)

    std::mutex files_mu_;  // OpenAI response_format=url: generated PNGs by id
    std::map<std::string, std::string> files_;
};

// A JSON error body with a status (A1111/FastAPI style: {"error", "detail"}).
void fail(httplib::Response& res, int status, const std::string& msg) {
    res.status = status;
    res.set_content(json{{"error", status == 422 ? "ValidationError" : "HTTPException"}, {"detail", msg}}.dump(),
                    "application/json");
}
void fail(httplib::Response& res, const Error& e) {
    fail(res, e.code == Errc::internal ? 500 : e.code == Errc::missing ? 404 : 422, e.message);
}
void reply(httplib::Response& res, const json& j) { res.set_content(j.dump(), "application/json"); }

// One request's turn in the FIFO queue: waits for it in the constructor, hands over in the destructor. A
// client that disconnects while queued gives its turn up (`left`): its job never runs.
struct Server::Ticket {
    Server& s;
    uint64_t n;
    bool left = false;
    Ticket(Server& srv, const httplib::Request& req) : s(srv) {
        std::unique_lock lk(s.queue_mu_);
        n = s.next_ticket_++;
        while (s.serving_ != n) {
            if (s.queue_cv_.wait_for(lk, std::chrono::milliseconds(250)) == std::cv_status::timeout &&
                !client_connected(req.local_port, req.remote_port)) {
                s.abandoned_.insert(n);
                left = true;
                s.log(fmt::format("job {}: client disconnected while queued; dropped", n));
                return;
            }
        }
    }
    ~Ticket() {
        if (left) return;
        std::lock_guard lk(s.queue_mu_);
        ++s.serving_;
        while (s.abandoned_.erase(s.serving_)) ++s.serving_;
        s.queue_cv_.notify_all();
    }
};

void Server::generate(const httplib::Request& req, httplib::Response& res, bool img2img) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return fail(res, 422, "request body is not a JSON object");
    // Server options apply unless the request overrides them (A1111: override_settings wins).
    json& ov = body["override_settings"];
    if (ov.is_null()) ov = json::object();
    if (!ov.is_object()) return fail(res, 422, "request field 'override_settings' must be an object");
    {
        std::lock_guard lk(models_.mu);
        for (const char* k : {"CLIP_stop_at_last_layers", "randn_source", "eta_noise_seed_delta", "sd_vae"})
            if (!ov.contains(k) && options_.contains(k)) ov[k] = options_[k];
    }
    std::expected<PreparedJob, JobError> job;
    {
        std::lock_guard lk(models_.mu);
        job = prepare_generation(std::move(body), img2img, models_);
    }
    if (!job) return fail(res, job.error().status, job.error().detail);
    GenerateParams& p = job->request.params;
    if (p.seed < 0) p.seed = int64_t(std::random_device{}() % 4294967294u);  // A1111 fix_seed
    if (queue_) {  // the model is checked here and found again by name on the worker
        const std::string name = job->checkpoint.empty() ? current() : job->checkpoint;
        std::unique_lock lk(models_.mu);
        const ModelFile* m = models_.find_checkpoint(name);
        if (!m) return fail(res, 422, "unknown checkpoint '" + name + "'");
        const std::string stem = m->stem, file = m->name;
        lk.unlock();
        return queue_->generate(req, res, *job, stem, file);
    }
    Ticket turn(*this, req);
    if (turn.left) return fail(res, 499, "client closed the connection while queued");
    res.set_header("X-Job-Id", std::to_string(turn.n));
    auto out = run_generation(models_, *job, job->checkpoint.empty() ? current() : job->checkpoint, job_);
    if (!out) return fail(res, out.error().status, out.error().detail);
    reply(res, *out);
}

void Server::progress(const httplib::Request& req, httplib::Response& res) {
    const bool with_image = req.get_param_value("skip_current_image") != "true";
    if (queue_) return reply(res, queue_->progress(with_image));
    int queued = 0;
    {
        std::lock_guard lk(queue_mu_);
        queued = int(next_ticket_ - serving_ - abandoned_.size());
    }
    reply(res, progress_json(job_, queued, with_image));
}

void Server::extra_single_image(const httplib::Request& req, httplib::Response& res) {
    json b = json::parse(req.body, nullptr, false);
    if (b.is_discarded() || !b.is_object()) return fail(res, 422, "request body is not a JSON object");
    if (!b.contains("image") || !b["image"].is_string()) return fail(res, 422, "request field 'image' must be a base64 image");
    auto img = a1111::decode_image_field(b["image"].get<std::string>(), "image");
    if (!img) return fail(res, img.error());
    const std::string name = b.value("upscaler_1", std::string("None"));
    UpscaleParams up;
    const int mode = b.value("resize_mode", 0);
    if (mode == 1) {
        up.width = b.value("upscaling_resize_w", 512);
        up.height = b.value("upscaling_resize_h", 512);
    } else {
        up.scale = b.value("upscaling_resize", 2.0);
    }
    const int w = up.width ? up.width : int(img->width * up.scale), h = up.height ? up.height : int(img->height * up.scale);
    if (w < 1 || h < 1 || w > 16384 || h > 16384) return fail(res, 422, "upscaled size out of range");
    Result<Image> out;
    std::string info;
    if (name == "None" || name == "Lanczos" || name == "Nearest") {
        out = resize_picture(*img, w, h, name == "Nearest");
        info = name == "None" ? "" : fmt::format("Postprocess upscaler: {}, Postprocess upscale to: {}x{}", name, w, h);
    } else {
        std::string path;
        {
            std::lock_guard lk(models_.mu);
            path = models_.upscaler_path(name);
        }
        if (path.empty()) return fail(res, 422, "request field 'upscaler_1': unknown upscaler '" + name + "'");
        Ticket turn(*this, req);
        if (turn.left) return fail(res, 499, "client closed the connection while queued");
        auto u = Upscaler::load(path, a_.threads);
        if (!u) return fail(res, u.error());
        out = (*u)->upscale(*img, up);
        info = (*u)->postprocess_info(up);
    }
    if (!out) return fail(res, out.error());
    // A1111 keeps the picture's parameters and adds the upscale to them (postprocessing's infotext).
    std::string text = source_parameters(b["image"].get<std::string>());
    if (!text.empty() && !info.empty()) text += ", " + info;
    auto png = encode_png(*out, text);
    if (!png) return fail(res, png.error());
    reply(res, {{"html_info", "<p>" + info + "</p>"}, {"image", a1111::encode_base64(*png)}});
}

void Server::png_info(const httplib::Request& req, httplib::Response& res) {
    json b = json::parse(req.body, nullptr, false);
    if (b.is_discarded() || !b.is_object() || !b.contains("image") || !b["image"].is_string())
        return fail(res, 422, "request field 'image' must be a base64 PNG");
    std::string_view text = b["image"].get_ref<const std::string&>();
    if (text.starts_with("data:") && text.find(',') != std::string_view::npos) text.remove_prefix(text.find(',') + 1);
    auto bytes = a1111::decode_base64(text, "request field 'image'");
    if (!bytes) return fail(res, bytes.error());
    auto params = png_parameters(*bytes);
    if (!params) return fail(res, 422, "request field 'image': " + params.error().message);
    json parsed = json::object();
    if (!params->empty())
        for (const auto& [k, v] : parse_infotext(*params)) parsed[k] = v;
    reply(res, {{"info", *params}, {"items", params->empty() ? json::object() : json{{"parameters", *params}}},
                {"parameters", parsed}});
}

void Server::get_options(httplib::Response& res) {
    std::lock_guard lk(models_.mu);
    json o = options_;
    const ModelFile* m = models_.find_checkpoint(current_);
    o["sd_model_checkpoint"] = m ? ModelCatalog::title(*m) : current_;
    reply(res, o);
}

void Server::post_options(const httplib::Request& req, httplib::Response& res) {
    json b = json::parse(req.body, nullptr, false);
    if (b.is_discarded() || !b.is_object()) return fail(res, 422, "request body is not a JSON object");
    std::string switch_to;
    if (b.contains("sd_model_checkpoint") && b["sd_model_checkpoint"].is_string())
        switch_to = b["sd_model_checkpoint"].get<std::string>();
    {
        std::lock_guard lk(models_.mu);
        if (!switch_to.empty() && !models_.find_checkpoint(switch_to))
            return fail(res, 422, "option 'sd_model_checkpoint': unknown checkpoint '" + switch_to + "'");
        std::string vae_error;  // applied by the next generation (txt2img / img2img)
        if (b.contains("sd_vae") && b["sd_vae"].is_string()) vae_choice(b["sd_vae"].get<std::string>(), models_.vaes, vae_error);
        if (!vae_error.empty()) return fail(res, 422, "option 'sd_vae': " + vae_error);
        for (auto& [k, v] : b.items())
            if (k != "sd_model_checkpoint") options_[k] = v;  // unknown keys are kept, as A1111 does
    }
    if (!switch_to.empty() && queue_) {  // with --queue the workers load it, with their first job for it
        std::lock_guard lk(models_.mu);
        current_ = models_.find_checkpoint(switch_to)->name;
    } else if (!switch_to.empty()) {  // A1111 loads the model before answering
        Ticket turn(*this, req);
        if (turn.left) return fail(res, 499, "client closed the connection while queued");
        std::lock_guard lk(models_.mu);
        const ModelFile* m = models_.find_checkpoint(switch_to);
        auto e = models_.engine_for(*m);
        if (!e) return fail(res, e.error());
        current_ = m->name;
    }
    reply(res, nullptr);
}

void Server::openai_generations(const httplib::Request& req, httplib::Response& res) {
    const bool edit = req.path == "/v1/images/edits";
    json b;
    json a1111;
    if (edit) {
        if (!req.is_multipart_form_data()) return fail(res, 400, "/v1/images/edits takes multipart/form-data");
        std::string error;
        openai_edits_to_a1111(req, a1111, error);
        if (!error.empty()) return fail(res, 400, error);
        b = {{"prompt", a1111["prompt"]}};
        if (req.has_file("response_format")) b["response_format"] = req.get_file_value("response_format").content;
    } else {
        b = json::parse(req.body, nullptr, false);
        if (b.is_discarded() || !b.is_object()) return fail(res, 400, "request body is not a JSON object");
        if (!b.contains("prompt") || !b["prompt"].is_string()) return fail(res, 400, "'prompt' is required");
        a1111 = {{"prompt", b["prompt"]}};
    }
    if (b.contains("n")) a1111["batch_size"] = b["n"];
    if (b.contains("size") && b["size"].is_string()) {
        int w = 0, h = 0;
        if (std::sscanf(b["size"].get<std::string>().c_str(), "%dx%d", &w, &h) != 2)
            return fail(res, 400, "'size' must be WIDTHxHEIGHT");
        a1111["width"] = w, a1111["height"] = h;
    }
    for (const char* k : {"negative_prompt", "seed", "steps", "cfg_scale", "sampler_name", "scheduler"})
        if (b.contains(k)) a1111[k] = b[k];
    if (b.contains("extra") && b["extra"].is_object())
        for (auto& [k, v] : b["extra"].items()) a1111[k] = v;
    httplib::Request inner = req;
    inner.body = a1111.dump();
    httplib::Response r;
    generate(inner, r, edit);
    if (r.status >= 400 && r.status != -1) {
        res.status = r.status == 422 ? 400 : r.status;
        const json e = json::parse(r.body, nullptr, false);
        return reply(res, {{"error", {{"message", e.is_object() ? e.value("detail", r.body) : r.body},
                                      {"type", "invalid_request_error"}}}});
    }
    const json out = json::parse(r.body);
    const bool url = b.value("response_format", std::string("b64_json")) == "url";
    json data = json::array();
    for (const auto& im : out["images"]) {
        if (url) {
            const std::string id = fmt::format("{:016x}", std::random_device{}() * 4294967296ull + std::random_device{}());
            auto bytes = a1111::decode_base64(im.get<std::string>(), "image");
            std::lock_guard lk(files_mu_);
            files_[id] = std::string(bytes->begin(), bytes->end());
            const std::string host = req.get_header_value("Host");
            data.push_back({{"url", "http://" + host + "/v1/files/" + id + ".png"}, {"revised_prompt", b["prompt"]}});
        } else {
            data.push_back({{"b64_json", im}, {"revised_prompt", b["prompt"]}});
        }
    }
    reply(res, {{"created", int64_t(std::time(nullptr))}, {"data", data}});
}

void Server::routes() {
    auto& s = svr_;
    const std::string v1 = "/sdapi/v1";
    s.Post(v1 + "/txt2img", [this](const auto& q, auto& r) { generate(q, r, false); });
    s.Post(v1 + "/img2img", [this](const auto& q, auto& r) { generate(q, r, true); });
    s.Get(v1 + "/progress", [this](const auto& q, auto& r) { progress(q, r); });
    s.Post(v1 + "/interrupt", [this](const auto&, auto& r) {
        if (queue_) queue_->interrupt();
        job_.interrupt = true;
        reply(r, nullptr);
    });
    s.Post(v1 + "/skip", [this](const auto&, auto& r) {
        if (queue_) queue_->skip();
        job_.skip = true;
        reply(r, nullptr);
    });
    s.Get(v1 + "/options", [this](const auto&, auto& r) { get_options(r); });
    s.Post(v1 + "/options", [this](const auto& q, auto& r) { post_options(q, r); });
    s.Get(v1 + "/sd-models", [this](const auto&, auto& r) {
        std::lock_guard lk(models_.mu);
        json a = json::array();
        for (const auto& c : models_.checkpoints)
            a.push_back({{"title", ModelCatalog::title(c)}, {"model_name", c.stem}, {"hash", c.short_hash.empty() ? json(nullptr) : json(c.short_hash)},
                         {"sha256", nullptr}, {"filename", c.path}, {"config", nullptr},  // nanobanana extras below
                         {"family", c.family.empty() ? json(nullptr) : json(c.family)}, {"size_bytes", size_on_disk(c.path)},
                         {"default_size", c.default_size ? json(c.default_size) : json(nullptr)}});
        reply(r, a);
    });
    s.Get(v1 + "/samplers", [](const auto&, auto& r) {
        json a = json::array();
        for (const auto& n : sampler_names())
            a.push_back({{"name", n.label}, {"aliases", json::array({n.name})}, {"options", json::object()}});
        reply(r, a);
    });
    s.Get(v1 + "/schedulers", [](const auto&, auto& r) {
        json a = json::array({{{"name", "automatic"}, {"label", "Automatic"}, {"aliases", nullptr},
                               {"default_rho", -1}, {"need_inner_model", false}}});
        for (const auto& n : scheduler_names()) {
            std::string name = n.label;
            std::ranges::transform(name, name.begin(), [](unsigned char c) { return c == ' ' ? '_' : char(std::tolower(c)); });
            a.push_back({{"name", name}, {"label", n.label}, {"aliases", json::array({n.name})},
                         {"default_rho", n.name == std::string("karras") ? 7.0 : -1.0}, {"need_inner_model", false}});
        }
        reply(r, a);
    });
    s.Get(v1 + "/upscalers", [this](const auto&, auto& r) {
        json a = json::array();
        for (const char* n : {"None", "Lanczos", "Nearest"})
            a.push_back({{"name", n}, {"model_name", nullptr}, {"model_path", nullptr}, {"model_url", nullptr}, {"scale", 4}});
        std::lock_guard lk(models_.mu);
        for (const auto& u : models_.upscalers)
            a.push_back({{"name", u.stem}, {"model_name", "ESRGAN"}, {"model_path", u.path}, {"model_url", nullptr}, {"scale", 4}});
        reply(r, a);
    });
    s.Get(v1 + "/latent-upscale-modes", [](const auto&, auto& r) {
        json a = json::array();
        for (const char* n : {"Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                              "Latent (nearest)", "Latent (nearest-exact)"})
            a.push_back({{"name", n}});
        reply(r, a);
    });
    s.Get(v1 + "/sd-vae", [this](const auto&, auto& r) {
        std::lock_guard lk(models_.mu);
        json a = json::array();
        for (const auto& v : models_.vaes) a.push_back({{"model_name", fs::path(v.name).filename().string()}, {"filename", v.path}});
        reply(r, a);
    });
    s.Get(v1 + "/loras", [this](const auto&, auto& r) {
        std::lock_guard lk(models_.mu);
        json a = json::array();
        for (const auto& l : models_.loras)
            a.push_back({{"name", fs::path(l.stem).filename().string()}, {"alias", fs::path(l.stem).filename().string()},
                         {"path", l.path}, {"metadata", json::object()}});
        reply(r, a);
    });
    s.Get(v1 + "/embeddings", [this](const auto&, auto& r) {  // the last used model's, else the files unchecked
        std::lock_guard lk(models_.mu);
        reply(r, embeddings_json(models_.engines.empty()
                                     ? list_embeddings(embeddings_folder(a_.models_dir, find_demo_model()))
                                     : models_.engines.front().second->embeddings()));
    });
    s.Get(v1 + "/scripts", [](const auto&, auto& r) { reply(r, {{"txt2img", json::array()}, {"img2img", json::array()}}); });
    // Lists clients read that nanobanana has nothing in (yet): empty, in A1111's shapes.
    for (const char* empty : {"/script-info", "/sd-modules", "/face-restorers", "/realesrgan-models", "/prompt-styles",
                              "/hypernetworks", "/extensions"})
        s.Get(v1 + empty, [](const auto&, auto& r) { reply(r, json::array()); });
    s.Get(v1 + "/memory", [](const auto&, auto& r) { reply(r, memory()); });
    s.Post(v1 + "/refresh-checkpoints", [this](const auto&, auto& r) {
        std::lock_guard lk(models_.mu);
        models_.refresh();
        reply(r, nullptr);
    });
    s.Post(v1 + "/refresh-loras", [this](const auto&, auto& r) {
        std::lock_guard lk(models_.mu);
        models_.refresh();
        reply(r, nullptr);
    });
    s.Post(v1 + "/refresh-vae", [this](const auto&, auto& r) {
        std::lock_guard lk(models_.mu);
        models_.refresh();
        reply(r, nullptr);
    });
    s.Get(v1 + "/cmd-flags", [this](const auto&, auto& r) {
        reply(r, {{"ckpt_dir", a_.models_dir.empty() ? json(nullptr) : json((fs::path(a_.models_dir) / "Stable-diffusion").string())},
                  {"lora_dir", a_.models_dir.empty() ? json(nullptr) : json((fs::path(a_.models_dir) / "Lora").string())},
                  {"listen", a_.listen}, {"port", a_.port}, {"api", true}, {"nowebui", true},
                  {"api_auth", a_.auth.empty() ? json(nullptr) : json("<set>")}});
    });
    s.Post(v1 + "/extra-single-image", [this](const auto& q, auto& r) { extra_single_image(q, r); });
    s.Post(v1 + "/png-info", [this](const auto& q, auto& r) { png_info(q, r); });
    s.Post("/v1/images/generations", [this](const auto& q, auto& r) { openai_generations(q, r); });
    s.Post("/v1/images/edits", [this](const auto& q, auto& r) { openai_generations(q, r); });
    s.Get(R"(/v1/files/([0-9a-f]+)\.png)", [this](const auto& q, auto& r) {
        std::lock_guard lk(files_mu_);
        auto it = files_.find(q.matches[1]);
        if (it == files_.end()) return fail(r, 404, "no such file");
        r.set_content(it->second, "image/png");
    });
    s.Get("/internal/ping", [](const auto&, auto& r) { reply(r, nullptr); });
    add_studio_routes(s);  // the web UI at / (serve_studio.h)
}

std::atomic<bool> g_stop{false};
thread_local int64_t t_request_start = 0;  // for the request log (a request runs on one thread)

int Server::run() {
    LoadOptions settings;  // the flags every load uses, refused before the server starts
    settings.precision = a_.precision;
    settings.prediction = a_.prediction;
    settings.threads = a_.threads;
    if (auto r = validate(settings); !r) {
        std::fprintf(stderr, "nanobanana: %s\n", r.error().message.c_str());
        return 2;
    }
    models_.refresh();
    if (models_.checkpoints.empty()) {
        std::fprintf(stderr, "nanobanana: no checkpoints in %s\n",
                     a_.models_dir.empty() ? "the demo model's folder" : (a_.models_dir + "/Stable-diffusion").c_str());
        return 2;
    }
    if (!a_.ckpt.empty()) {
        const ModelFile* m = models_.find_checkpoint(a_.ckpt);
        if (!m) {
            std::fprintf(stderr, "nanobanana: --ckpt: no checkpoint '%s' in the models folder\n", a_.ckpt.c_str());
            return 2;
        }
        current_ = m->name;
    } else {
        current_ = models_.checkpoints.front().name;
    }
    options_ = {{"CLIP_stop_at_last_layers", 1}, {"randn_source", "GPU"}, {"eta_noise_seed_delta", 0},
                {"sd_vae", "Automatic"}, {"samples_format", "png"}, {"sd_checkpoint_cache", 0}};
    if (!a_.queue.empty()) {
        std::vector<std::string> stems;
        for (const auto& c : models_.checkpoints) stems.push_back(c.stem);
        auto q = RedisFront::create(a_.queue, stems, a_.result_ttl_s, a_.results_dir);
        if (!q) {
            std::fprintf(stderr, "nanobanana: %s\n", q.error().message.c_str());
            return 2;
        }
        queue_ = std::move(*q);
    }
    routes();
    // A connection holds a thread while a request waits for its picture and, between requests, for up to the
    // keep-alive timeout (5 s; a connection that sends nothing too). With 32 threads, 48 idle keep-alive clients
    // made a new client's /progress wait seconds (ServerLoad.IdleKeepAliveConnectionsDoNotStarveNewClients), so
    // 256: an idle thread costs a sleeping stack, not CPU. More idle clients than that: a reverse proxy in front
    // (docs/security.md).
    svr_.new_task_queue = [] { return new httplib::ThreadPool(256); };
    svr_.set_payload_max_length(a_.max_body_mb << 20);
    svr_.set_read_timeout(30, 0);  // a stalled upload ends instead of holding a thread
    const auto tokens = auth_tokens(a_.auth);
    const std::string cors = a_.cors;
    svr_.set_pre_routing_handler([tokens, cors](const httplib::Request& q, httplib::Response& r) {
        t_request_start = now_ms();
        if (!cors.empty()) {
            r.set_header("Access-Control-Allow-Origin", cors);
            r.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization");
            r.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            if (q.method == "OPTIONS") {
                r.status = 204;
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        if (!tokens.empty()) {
            const std::string h = q.get_header_value("Authorization");
            const bool ok = h.starts_with("Basic ") && std::ranges::find(tokens, h.substr(6)) != tokens.end();
            if (!ok) {
                r.status = 401;
                r.set_header("WWW-Authenticate", "Basic realm=\"nanobanana\"");
                r.set_content(json{{"detail", "Incorrect username or password"}}.dump(), "application/json");
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    const bool verbose = a_.verbose;
    svr_.set_logger([verbose](const httplib::Request& q, const httplib::Response& r) {
        const std::string job = r.get_header_value("X-Job-Id");
        std::fprintf(stderr, "%s %s %d %lld ms%s\n", q.method.c_str(), q.path.c_str(), r.status,
                     (long long)(now_ms() - t_request_start), job.empty() ? "" : (" job " + job).c_str());
        if (verbose && r.status >= 400) std::fprintf(stderr, "  %s\n", r.body.substr(0, 300).c_str());
    });
    svr_.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what += std::string(": ") + e.what();
        } catch (...) {
        }
        fail(r, 500, what);
    });
    // cpp-httplib 0.11 (Debian's shared library) listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed
    // when the library was built): a burst of clients connecting at once overflows it, and the kernel drops the
    // handshakes it has no room for, so those clients wait seconds for an answer or time out (measured: 3 to 20
    // of 100 simultaneous connections got nothing within 10 s; tests/e2e/server_load_test.cpp). listen() again on
    // the bound socket with the system's limit (Linux only updates the backlog of a listening socket).
    int listen_fd = -1;
    svr_.set_socket_options([&listen_fd](socket_t sock) {
        httplib::default_socket_options(sock);
        listen_fd = sock;
    });
    const std::string host = a_.listen ? "0.0.0.0" : a_.host;
    int port = a_.port;
    if (port == 0) {
        port = svr_.bind_to_any_port(host);
    } else if (!svr_.bind_to_port(host, port)) {
        std::fprintf(stderr, "nanobanana: cannot listen on %s:%d\n", host.c_str(), port);
        return 2;
    }
    if (port <= 0) {
        std::fprintf(stderr, "nanobanana: cannot listen on %s\n", host.c_str());
        return 2;
    }
    if (listen_fd >= 0 && ::listen(listen_fd, SOMAXCONN) != 0)
        std::fprintf(stderr, "warning: cannot raise the listen backlog: %s\n", std::strerror(errno));
    std::fprintf(stderr, "listening on http://%s:%d (model %s)\n", host.c_str(), port, current_.c_str());
    std::signal(SIGTERM, [](int) { g_stop = true; });
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::thread watcher([this] {
        while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        job_.interrupt = true;  // the running job ends at its next step and answers with what it has
        if (queue_) queue_->stop();
        svr_.stop();
    });
    svr_.listen_after_bind();
    g_stop = true;
    watcher.join();
    std::fprintf(stderr, "stopped\n");
    return 0;
}

}  // namespace

CommandRunner register_serve(CLI::App& app) {
    auto a = std::make_shared<ServeArgs>();
    auto* s = app.add_subcommand("serve", "HTTP server: the AUTOMATIC1111 API (/sdapi/v1) and OpenAI images API");
    s->add_option("--models-dir", a->models_dir,
                  "A1111-layout models folder: Stable-diffusion/, Lora/, VAE/, ESRGAN/, RealESRGAN/ [the demo model]");
    s->add_option("--ckpt", a->ckpt, "Checkpoint to use first (name or title)");
    s->add_option("--port,--listen-port", a->port, "Port (0 = any free port)")->capture_default_str();
    s->add_option("--listen-ip", a->host, "Address to bind")->capture_default_str();
    s->add_flag("--listen", a->listen, "Bind all interfaces (0.0.0.0)");
    s->add_option("--api-auth", a->auth, "HTTP basic auth: user:pass[,user2:pass2]");
    s->add_option("--cors-allow-origins", a->cors, "Access-Control-Allow-Origin value");
    s->add_option("--max-models", a->max_models, "Checkpoints kept loaded (least recently used goes)")->capture_default_str();
    s->add_option("--max-body-mb", a->max_body_mb, "Request body limit in MB (413 beyond)")->capture_default_str();
    s->add_option("--vocab", a->vocab, "CLIP vocabulary for checkpoints without one beside them");
    s->add_option("--precision", a->precision, "auto, fp32 or bf16")->capture_default_str();
    s->add_option("--prediction", a->prediction, "auto (metadata, else A1111's SD 2.x test forward), eps or v")
        ->capture_default_str();
    s->add_option("-t,--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
    s->add_flag("-v,--verbose", a->verbose, "Log error bodies");
    s->add_option("--queue", a->queue,
                  "redis://HOST:PORT[/DB]: queue txt2img/img2img on Redis for `nanobanana worker`s (docs/scale-out.md)");
    s->add_option("--result-ttl", a->result_ttl_s, "With --queue: seconds a job id and its result are kept")
        ->capture_default_str();
    s->add_option("--results-dir", a->results_dir, "With --queue: the workers' --results-dir as this machine sees it");
    return [a] { return Server(*a).run(); };
}

}  // namespace nb::cli
