// The models catalog and the generation job of serve_jobs.h, shared by `nanobanana serve` and `nanobanana worker`.
#include "serve_jobs.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "commands.h"

namespace nb::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

std::string timestamp() {
    std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", std::localtime(&t));
    return buf;
}

JobError job_error(const Error& e) {
    return {e.code == Errc::internal ? 500 : e.code == Errc::missing ? 404 : 422, e.message};
}

void ModelCatalog::refresh() {
    const std::string& dir = settings.models_dir;
    if (dir.empty()) {
        const std::string demo = find_demo_model();
        checkpoints.clear();
        if (!demo.empty()) checkpoints.push_back({"demo.safetensors", "demo", demo, {}, {}, kDemoSize});
        loras = scan(fs::path(demo).parent_path() / "lora", {".safetensors"});
        upscalers.clear();
        vaes.clear();
    } else {
        const fs::path d(dir);
        auto old = std::move(checkpoints);
        checkpoints = scan(d / "Stable-diffusion", {".safetensors", ".ckpt"}, /*folders=*/true);
        vaes = take_vaes(checkpoints, d / "VAE");
        for (auto& c : checkpoints)  // keep hashes (and families) already computed
            for (const auto& o : old)
                if (o.path == c.path) c.short_hash = o.short_hash, c.family = o.family, c.default_size = o.default_size;
        loras = scan(d / "Lora", {".safetensors"});
        upscalers = scan(d / "ESRGAN", {".pth", ".safetensors"});
        auto more = scan(d / "RealESRGAN", {".pth", ".safetensors"});
        upscalers.insert(upscalers.end(), more.begin(), more.end());
    }
}

const ModelFile* ModelCatalog::find_checkpoint(const std::string& t) const {
    for (const auto& c : checkpoints)
        if (t == c.name || t == c.stem || t == title(c) || t == c.name + " [" + c.short_hash + "]") return &c;
    // A title with a hash we have not computed yet: "name.safetensors [abcdef0123]"
    if (const auto sp = t.rfind(" ["); sp != std::string::npos)
        for (const auto& c : checkpoints)
            if (t.substr(0, sp) == c.name) return &c;
    return nullptr;
}

Result<Engine*> ModelCatalog::engine_for(const ModelFile& m) {
    for (auto it = engines.begin(); it != engines.end(); ++it)
        if (it->first == m.path) {
            engines.splice(engines.begin(), engines, it);
            return engines.front().second.get();
        }
    while (!engines.empty() && int(engines.size()) >= std::max(1, settings.max_models)) engines.pop_back();
    LoadOptions o;
    o.model_path = m.path;
    o.vocab_path = settings.vocab;
    o.threads = settings.threads;
    o.precision = settings.precision;
    o.prediction = settings.prediction;
    o.lora_dir = settings.models_dir.empty() ? (fs::path(m.path).parent_path() / "lora").string()
                                             : (fs::path(settings.models_dir) / "Lora").string();
    o.embedding_dir = embeddings_folder(settings.models_dir, m.path);
    const auto t0 = Clock::now();
    auto e = Engine::load(o);
    if (!e) return std::unexpected(e.error());
    for (const auto& w : (*e)->load_warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
    std::fprintf(stderr, "loaded %s in %.1f s\n", m.name.c_str(),
                 std::chrono::duration<double>(Clock::now() - t0).count());
    engines.emplace_front(m.path, std::move(*e));
    // A1111 hashes a checkpoint when it loads it; from then on its title carries the short hash.
    const std::string hash = engines.front().second->model_hash();
    for (auto& c : checkpoints)
        if (c.path == m.path) {
            const ModelInfo info = engines.front().second->info();
            c.short_hash = hash, c.family = info.family;
            if (!c.default_size) c.default_size = info.default_width;
        }
    return engines.front().second.get();
}

std::string ModelCatalog::upscaler_path(const std::string& name) const {
    for (const auto& u : upscalers)
        if (name == u.stem || name == u.name) return u.path;
    return "";
}

std::expected<PreparedJob, JobError> prepare_generation(json body, bool img2img, const ModelCatalog& models) {
    PreparedJob job;
    if (!img2img && (body.contains("init_images") || body.contains("mask"))) {
        body.erase("init_images");
        body.erase("mask");
    }
    if (img2img && (!body.contains("init_images") || !body["init_images"].is_array() || body["init_images"].empty()))
        return std::unexpected(JobError{422, "request field 'init_images' must be a non-empty array of base64 images"});
    auto parsed = a1111::parse_request(body.dump());
    if (!parsed) return std::unexpected(job_error(parsed.error()));
    job.request = std::move(*parsed);
    GenerateParams& p = job.request.params;
    // hires-fix upscaler by name from ESRGAN/ / RealESRGAN/
    if (p.enable_hr && !p.hr_upscaler.starts_with("Latent") && p.hr_upscaler != "Lanczos" && p.hr_upscaler != "Nearest" &&
        p.hr_upscaler != "None") {
        const std::string path = models.upscaler_path(p.hr_upscaler);
        if (path.empty())
            return std::unexpected(JobError{422, "request field 'hr_upscaler': unknown upscaler '" + p.hr_upscaler + "'"});
        p.hr_upscaler = path;
    }
    const json& ov = body["override_settings"];
    if (ov.contains("sd_model_checkpoint") && ov["sd_model_checkpoint"].is_string())
        job.checkpoint = ov["sd_model_checkpoint"].get<std::string>();
    job.body = std::move(body);
    job.img2img = img2img;
    return job;
}

std::expected<json, JobError> run_generation(ModelCatalog& models, PreparedJob& job, const std::string& checkpoint,
                                             JobState& st, const std::function<bool()>& on_step) {
    const json& ov = job.body["override_settings"];
    std::unique_lock lk_models(models.mu);
    const ModelFile* m = models.find_checkpoint(checkpoint);
    if (!m) return std::unexpected(JobError{422, "unknown checkpoint '" + checkpoint + "'"});
    auto engine = models.engine_for(*m);
    if (!engine) return std::unexpected(job_error(engine.error()));
    if (ov.contains("sd_vae") && ov["sd_vae"].is_string()) {  // the engine swaps its VAE only when it changes
        std::string error;
        const std::string vae = vae_choice(ov["sd_vae"].get<std::string>(), models.vaes, error);
        if (!error.empty()) return std::unexpected(JobError{422, "setting 'sd_vae': " + error});
        if (auto r = (*engine)->set_vae(vae); !r) return std::unexpected(job_error(r.error()));
    }
    const ModelFile model = *m;  // a copy: refresh-checkpoints may rebuild the list while this job runs
    lk_models.unlock();

    const GenerateParams& p = job.request.params;
    const int n = p.batch_count;
    st.interrupt = false;
    st.skip = false;
    st.n_images = n;
    st.image = 0;
    st.step = 0;
    st.steps = p.steps;
    st.started_ms = now_ms();
    const std::string stamp = timestamp();
    {
        std::lock_guard lk(st.mu);
        st.timestamp = stamp;
    }
    st.busy = true;
    std::vector<GeneratedImage> images;
    Result<void> status;
    // One image at a time, so that skip can drop one image of a batch; seeds as A1111 assigns them.
    for (int i = 0; i < n && !st.interrupt; ++i) {
        GenerateParams pi = p;
        pi.batch_count = 1;
        pi.keep_interrupted = true;  // A1111: an interrupted or skipped image is returned as it stands
        pi.seed = p.seed + (p.subseed_strength == 0.f ? i : 0);
        pi.subseed = p.subseed + i;
        st.image = i;
        st.skip = false;
        auto out = (*engine)->generate(pi, [&](const Progress& pr) {
            st.step = pr.step;
            st.steps = pr.total;
            if (pr.preview) {
                Image im = pr.preview();
                std::lock_guard lk(st.mu);
                st.preview = std::move(im);
            }
            if (on_step && !on_step()) st.interrupt = true;
            return !st.interrupt && !st.skip;
        });
        if (!out) {
            if (out.error().code == Errc::cancelled) continue;  // stopped before its first step: nothing to keep
            status = std::unexpected(out.error());
            break;
        }
        for (auto& g : *out) images.push_back(std::move(g));
    }
    st.busy = false;
    {
        std::lock_guard lk(st.mu);
        st.preview = {};
    }
    if (!status) return std::unexpected(job_error(status.error()));

    json imgs = json::array();
    for (const auto& g : images) {
        auto png = encode_png(g.image, g.parameters);
        if (!png) return std::unexpected(job_error(png.error()));
        imgs.push_back(a1111::encode_base64(*png));
    }
    json info = json::parse(a1111::info_json(job.request, images, fs::path(model.stem).filename().string()));
    info["sd_model_hash"] = model.short_hash.empty() ? json(nullptr) : json(model.short_hash);
    info["job_timestamp"] = stamp;
    info["sd_model_name"] = fs::path(model.stem).filename().string();
    info["sd_vae_name"] = info["sd_vae_hash"] = nullptr;  // A1111: set while a VAE file is in use
    if (!images.empty())
        for (const auto& [k, v] : parse_infotext(images.front().parameters))
            if (k == "VAE" || k == "VAE hash") info[k == "VAE" ? "sd_vae_name" : "sd_vae_hash"] = v;
    json params = job.body;
    if (job.img2img) params["init_images"] = nullptr, params["mask"] = nullptr;  // A1111: include_init_images false
    return json{{"images", imgs}, {"parameters", params}, {"info", info.dump()}};
}

json progress_json(JobState& st, int queued, bool with_image) {
    const bool running = st.busy;
    double prog = 0, eta = 0;
    if (running && st.n_images > 0 && st.steps > 0) {
        prog = (double(st.image) + double(st.step) / st.steps) / st.n_images;
        const double elapsed = double(now_ms() - st.started_ms) / 1000.0;
        eta = prog > 0 ? elapsed / prog - elapsed : 0;
    }
    json current = nullptr;
    std::string stamp;
    Image im;
    {
        std::lock_guard lk(st.mu);
        stamp = st.timestamp;
        if (running && with_image) im = st.preview;
    }
    if (!im.pixels.empty())
        if (auto png = encode_png(im, "")) current = a1111::encode_base64(*png);
    return json{{"progress", prog},
                {"eta_relative", eta},
                {"state",
                 {{"skipped", bool(st.skip)},
                  {"interrupted", bool(st.interrupt)},
                  {"stopping_generation", false},
                  {"job", running ? "job" : ""},
                  {"job_count", queued},
                  {"job_timestamp", stamp.empty() ? "0" : stamp},
                  {"job_no", running ? int(st.image) : 0},
                  {"sampling_step", running ? int(st.step) : 0},
                  {"sampling_steps", running ? int(st.steps) : 0}}},
                {"current_image", current},
                {"textinfo", running ? json(fmt::format("queue: {} job(s)", queued)) : json(nullptr)}};
}


}  // namespace nb::cli
