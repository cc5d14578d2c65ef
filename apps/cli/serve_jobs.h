// What a generation job needs wherever it runs: in `nanobanana serve` (the in-process queue) or in a
// `nanobanana worker` fed by Redis (queue_redis.h). The models folder with its loaded engines (ModelCatalog),
// the running job's state that /progress, /interrupt and /skip read and write (JobState), and the two halves of
// an A1111 txt2img/img2img request: checking it (prepare_generation, before it is queued) and running it
// (run_generation, which answers with the same JSON A1111 does).
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nanobanana/a1111.h"
#include "nanobanana/engine.h"
#include "serve_support.h"

namespace nb::cli {

// The flags every model load uses (serve and worker share them).
struct LoadSettings {
    std::string models_dir, vocab, precision = "auto", prediction = "auto";
    int threads = 0, max_models = 1;
};

// An A1111-layout models folder (Stable-diffusion/, Lora/, VAE/, ESRGAN/, RealESRGAN/) or, without one, the
// demo model, and the engines loaded from it. Callers hold `mu` around every use.
struct ModelCatalog {
    LoadSettings settings;
    std::mutex mu;
    std::vector<ModelFile> checkpoints, loras, upscalers, vaes;
    std::list<std::pair<std::string, std::unique_ptr<Engine>>> engines;  // most recently used first

    void refresh();
    static std::string title(const ModelFile& m) {
        return m.short_hash.empty() ? m.name : m.name + " [" + m.short_hash + "]";
    }
    const ModelFile* find_checkpoint(const std::string& title_or_name) const;
    // The engine of checkpoint m, loaded when needed; at most max_models stay loaded (least recently used goes).
    Result<Engine*> engine_for(const ModelFile& m);
    std::string upscaler_path(const std::string& name) const;
};

// The running job, as /progress reports it; interrupt and skip are requests to it.
struct JobState {
    std::atomic<bool> interrupt{false}, skip{false}, busy{false};
    std::atomic<int> image{0}, n_images{0}, step{0}, steps{0};
    std::atomic<int64_t> started_ms{0};
    std::mutex mu;  // guards preview and timestamp
    Image preview;  // the latest live preview (A1111 "Approx cheap")
    std::string timestamp;
};

// A1111's /progress answer for the job in `st` with `queued` jobs waiting behind it; the live preview as
// "current_image" when `with_image`.
nlohmann::json progress_json(JobState& st, int queued, bool with_image);

int64_t now_ms();
std::string timestamp();

// A request refused before it runs or while running: the HTTP status and A1111's "detail" text.
struct JobError {
    int status = 500;
    std::string detail;
};
JobError job_error(const Error& e);  // 500 internal, 404 missing, else 422

// A txt2img/img2img body with the server's options already merged into its override_settings: checked and
// parsed (the hires upscaler resolved in `models`, whose lock the caller holds).
struct PreparedJob {
    nlohmann::json body;
    bool img2img = false;
    a1111::Request request;
    std::string checkpoint;  // override_settings.sd_model_checkpoint, "" = the current one
};
std::expected<PreparedJob, JobError> prepare_generation(nlohmann::json body, bool img2img, const ModelCatalog& models);

// Runs a prepared job on checkpoint `checkpoint` (name or title) of `models` one image at a time, so that skip can
// drop one image of a batch, and answers A1111's {"images", "parameters", "info"}. `on_step` is called after each
// step's progress is in `st` (the worker publishes it); returning false interrupts.
std::expected<nlohmann::json, JobError> run_generation(ModelCatalog& models, PreparedJob& job,
                                                       const std::string& checkpoint, JobState& st,
                                                       const std::function<bool()>& on_step = {});

}  // namespace nb::cli
