// nanobanana public API: load a checkpoint once, generate many images. The CLI and the server use only
// this header (and error.h / image.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nanobanana/error.h"
#include "nanobanana/image.h"

namespace nb {

struct LoadOptions {
    std::string model_path;  // .safetensors single file, diffusers folder, or torch zip .ckpt
    std::string vocab_path;  // CLIP vocabulary; empty = search (NB_VOCAB, beside the model, data dirs)
    int threads = 0;         // 0 = all cores
    std::string lora_dir;    // folder searched for the prompt's <lora:name:w> files (by file stem)
    // Folder of textual-inversion embeddings (.safetensors, .pt, .bin; stable-diffusion.cpp's --embd-dir): a
    // prompt word equal to a file's stem is replaced by its vectors, as A1111 does. Read once, at load.
    std::string embedding_dir;
    // "auto" (= fp32 for now: bf16 misses the 1e-2 image tolerance on the golden pipeline), "bf16" (about 2x
    // faster UNet steps on CPUs with native bf16) or "fp32" (exact reference math).
    std::string precision = "auto";
    // How the UNet's weights are held in memory (stable-diffusion.cpp's --type): "auto" (fp32 values, in 16 bits
    // where exact -- every weight of an fp16 checkpoint; results identical to f32), "f32" (always 4 bytes: a
    // little faster at small sizes, twice the memory) or "q8_0" (8-bit blocks, 1.125 bytes per weight; lossy,
    // fp32 precision only).
    std::string weight_type = "auto";
    // Frees each component's converted weights once its phase of a generation is over and reloads them from
    // the (mmapped) checkpoint when needed: lower peak memory for one-shot runs (the CLI), at the cost of a
    // reload per generation. Off (default) keeps everything loaded, so later generations pay no load cost.
    bool release_idle_weights = false;
    // Which implementation runs the math: "cpu" (default) or "ref" (the scalar reference kernels: exact,
    // single-threaded, slow; a second backend for checking the first).
    std::string backend = "cpu";
    std::string upscaler_dir;  // folder searched for hires-fix upscaler models named by file name
    // What the UNet predicts (stable-diffusion.cpp's --prediction): "auto" (the file's `parameterization`
    // metadata, else for SD 2.x A1111's test forward, else the family's eps), "eps" or "v" (wins over both).
    std::string prediction = "auto";
    // A TAESD tiny autoencoder (stable-diffusion.cpp's --taesd; madebyollin's taesd_decoder.pth / .safetensors
    // for SD 1.x/2.x): live previews are decoded with it, and with `taesd_decode` so is the final picture
    // (much faster, lower quality; the checkpoint's VAE then never loads for txt2img).
    std::string taesd;
    bool taesd_decode = true;
    // The VAE (encode and decode; stable-diffusion.cpp's --vae, A1111's sd_vae): "auto" (A1111's "Automatic":
    // <model>.vae.safetensors -- or .vae.pt / .vae.ckpt -- beside the checkpoint when there is one, else the
    // checkpoint's own), "none" (the checkpoint's own), or a VAE file: .safetensors or torch zip, LDM names
    // (with or without "first_stage_model.") or diffusers names, fp16 or fp32. Engine::set_vae changes it later.
    std::string vae = "auto";
};

// A textual-inversion embedding file (A1111 /sdapi/v1/embeddings fields, plus path, hash and the skip reason).
struct EmbeddingInfo {
    std::string name;     // the file stem: the word that calls it in a prompt
    std::string path;
    int vectors = 0;      // token slots it takes (of a chunk's 75)
    int shape = 0;        // width of a vector (the text encoder's: 768 SD 1.x, 1024 SD 2.x); 0 when unreadable
    int64_t step = -1;    // training step (A1111 .pt files); -1 unknown
    std::string sd_checkpoint, sd_checkpoint_name;  // what it was trained on, when the file says
    std::string hash;     // sha256 of the file (A1111's "TI hashes" show its first 12 hex digits)
    std::string skipped;  // why it is not used (wrong width, unreadable, ...); "" = loaded
};

// Embedding files under `dir` without a model, so without a width check (A1111 with no model loaded): every
// readable one is loaded, unreadable ones are skipped with the reason.
std::vector<EmbeddingInfo> list_embeddings(const std::string& dir);

// A LoRA file given directly (--lora PATH:WEIGHT); merged after the prompt's <lora:...> tags, in order.
struct LoraWeight {
    std::string path;
    float te_weight = 1.f, unet_weight = 1.f;
};

struct GenerateParams {
    std::string prompt, negative_prompt;
    int steps = 20;
    float cfg_scale = 7.f;
    int64_t seed = -1;                // -1 = random (the chosen seed is reported per image)
    std::string sampler = "euler_a";  // CLI names or A1111 labels
    std::string scheduler;            // "" = A1111 "Automatic" for the sampler
    int width = 512, height = 512;    // multiples of 8
    int clip_skip = 1;                // A1111: 1 = last layer; <= 0 means 1
    int batch_count = 1;              // images with seeds seed, seed+1, ...
    // What a cancel (the progress callback returning false) during sampling does to the image being sampled:
    // false drops it; true (A1111's Interrupt / Skip) returns it decoded from the last step's denoised
    // prediction, marked GeneratedImage::interrupted. Either way the batch stops there.
    bool keep_interrupted = false;
    std::string rng = "cuda";         // "cuda" (A1111 GPU/Philox, default) or "cpu" (torch CPU)
    std::vector<LoraWeight> loras;    // besides <lora:name:w> prompt tags
    // Step caching (stable-diffusion.cpp's --cache-mode): "" or "none" = off; "deepcache" = DeepCache, the UNet's
    // deep features computed on every `cache_interval`-th model call and reused by the calls between, which run
    // only its shallowest branch (faster, slightly different images; infotext "Cache mode", "Cache interval").
    std::string cache_mode;
    int cache_interval = 3;           // 2..10 (deepcache)

    // Variation seeds (A1111 subseed): the initial noise is slerp(subseed_strength, noise(seed),
    // noise(subseed)); -1 = random. seed_resize_from_w/h > 0: the noise is made at that size and pasted
    // centred into the real size, so a seed keeps its look at another size.
    int64_t subseed = -1;
    float subseed_strength = 0.f;
    int seed_resize_from_w = 0, seed_resize_from_h = 0;
    // A1111's eta noise seed delta (ENSD, e.g. 31337 in NovelAI-style recipes): after the initial noise, the
    // sampler's noise comes from a generator seeded with seed + ENSD. 0 = off.
    int64_t eta_noise_seed_delta = 0;

    // ---- img2img / inpaint / outpaint (A1111 /sdapi/v1/img2img fields); no init_image = txt2img ----
    Image init_image;                 // RGB or RGBA (flattened over white, as A1111 does)
    Image mask;                       // white = repaint; RGBA with alpha: the alpha, thresholded; empty = img2img
    float denoising_strength = 0.75f; // img2img and hires fix (A1111 uses the one field for both); img2img at 0
                                      // returns the (resized) input
    int resize_mode = 0;              // 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale
    int mask_blur = 4;                // Gaussian sigma in pixels (A1111 mask_blur_x = mask_blur_y)
    bool inpainting_mask_invert = false;
    int inpainting_fill = -1;         // 0 fill, 1 original, 2 latent noise, 3 latent nothing; -1 = 1 (outpaint: 2)
    bool inpaint_full_res = false;    // "Only masked": crop to the mask (+ padding), process at WxH, paste back
    int inpaint_full_res_padding = 32;
    float inpainting_mask_weight = 1.f;  // 9-channel inpainting models: 1 = full mask, 0 = plain img2img
    // Outpaint: the canvas grows by these many pixels; the new area is the mask (init_image required, mask
    // must be empty). width/height are the processing size (the grown canvas for no resizing).
    int outpaint_left = 0, outpaint_top = 0, outpaint_right = 0, outpaint_bottom = 0;

    // ---- hires fix (txt2img only; A1111 enable_hr) ----
    bool enable_hr = false;
    float hr_scale = 2.f;                 // used when hr_resize_x/y are 0
    int hr_resize_x = 0, hr_resize_y = 0;
    // "Latent" (bilinear), "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
    // "Latent (nearest)", "Latent (nearest-exact)", "Lanczos", "Nearest", or an upscaler model: a .pth /
    // .safetensors path, or a file name (with or without extension) in LoadOptions::upscaler_dir.
    std::string hr_upscaler = "Latent";
    int hr_second_pass_steps = 0;         // 0 = steps
    std::string hr_prompt, hr_negative_prompt;  // empty = prompt / negative prompt
};

struct Progress {
    int image = 0, n_images = 1;
    int step = 0, total = 0;  // sampling steps of the current image
    std::string phase;        // "encode", "sample", "decode"
    // A rough picture of the current step's prediction at latent resolution (A1111's "Approx cheap" live
    // preview); valid only during the callback.
    std::function<Image()> preview;
};
// Return false to cancel. generate() then returns the images of a batch that were finished before the
// cancel (as A1111 keeps them), or Errc::cancelled when there are none.
using ProgressFn = std::function<bool(const Progress&)>;

struct GeneratedImage {
    Image image;
    int64_t seed = 0;             // with a variation seed every image keeps the seed (A1111) ...
    int64_t subseed = 0;          // ... and the subseed advances: subseed + i
    std::string parameters;       // A1111 infotext for the PNG "parameters" chunk
    std::vector<float> latent;    // final sampler output [4, H/8, W/8] (for debugging / tests)
    std::vector<std::string> warnings;  // e.g. LoRA modules that match no model weight
    bool interrupted = false;     // sampling was cancelled: decoded from the last step (keep_interrupted)
};

// Checks what needs no model, so that callers can refuse a bad request before a long load: size, steps, CFG
// scale, batch count, sampler, scheduler and noise source (Errc::invalid_argument naming the field).
// Engine::generate() checks it again, with what needs the model (clip skip against the text encoder's layers).
Result<void> validate(const GenerateParams& p);
// Precision, weight type, thread count, backend and prediction.
Result<void> validate(const LoadOptions& o);

// What a loaded checkpoint is (Engine::info): its model family and what was decided from it.
struct ModelInfo {
    std::string family;             // "SD 1.x", "SD 1.x inpainting", "SD 2.x", "SD 2.x inpainting"
    std::vector<std::string> text_encoders;  // "CLIP ViT-L/14", ...
    std::string prediction;         // "eps" or "v"
    std::string prediction_source;  // "family default", "metadata", "test forward" (A1111's SD 2.x check), "option"
    float vae_scale = 0.18215f;     // latents = vae_scale * VAE posterior
    int default_width = 512, default_height = 512;  // the family's txt2img size (SD 2.x v-prediction: 768)
    std::string vae;  // path of the external VAE file in use; "" = the checkpoint's own
};

class Engine {
public:
    static Result<std::unique_ptr<Engine>> load(const LoadOptions& opt);
    ~Engine();

    Result<std::vector<GeneratedImage>> generate(const GenerateParams& p, const ProgressFn& progress = {});
    // Architecture and component summary, for `nanobanana info`.
    std::string describe() const;
    ModelInfo info() const;
    const std::string& model_name() const;
    // A1111's short model hash (first 10 hex digits of the file's SHA-256; computed on first use, "" for a
    // diffusers folder).
    std::string model_hash();
    // The textual-inversion embeddings read from LoadOptions::embedding_dir: loaded ones, then skipped ones.
    std::vector<EmbeddingInfo> embeddings() const;
    // What load noticed but did not refuse (one line per embedding file skipped, naming it and why).
    std::vector<std::string> load_warnings() const;
    // Swaps the VAE without reloading the rest of the checkpoint; `vae` as LoadOptions::vae ("auto", "none" or a
    // file). Choosing the VAE already in use costs nothing. On error (naming the file) the current VAE stays.
    // Images made with an external VAE carry A1111's "VAE hash" and "VAE" infotext fields.
    Result<void> set_vae(const std::string& vae);

private:
    Engine();
    static Result<std::unique_ptr<Engine>> load_impl(const LoadOptions& opt);
    Result<std::vector<GeneratedImage>> generate_impl(const GenerateParams& p, const ProgressFn& progress);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// ---- AI upscaling (Real-ESRGAN family: SRVGGNetCompact, RRDBNet), src/pipeline/upscale_api.cpp ----
struct UpscaleParams {
    double scale = 0;                    // target factor 1..8; 0 = the model's own factor
    int width = 0, height = 0;           // explicit target size (overrides scale when both set)
    int tile = 192, tile_overlap = 16;   // input pixels; tile <= 0 runs the whole image at once
};

class Upscaler {
public:
    // .pth (torch zip, params_ema/params) or .safetensors; architecture and factor read from the tensors.
    static Result<std::unique_ptr<Upscaler>> load(const std::string& model_path, int threads = 0);
    ~Upscaler();
    const std::string& name() const;  // file name without extension, as A1111 lists upscalers
    int native_scale() const;
    std::string describe() const;     // "SRVGGNetCompact x4 (num_feat 64, num_conv 16)"
    // RGB(A) -> target size; alpha is resized. Progress: image/n_images = pass, step/total = tile, phase "upscale".
    Result<Image> upscale(const Image& in, const UpscaleParams& p, const ProgressFn& progress = {}) const;
    // A1111 extras info: "Postprocess upscaler: <name>, Postprocess upscale by: <s>" (or "upscale to: WxH").
    std::string postprocess_info(const UpscaleParams& p) const;

private:
    Upscaler();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Any PNG as 8-bit RGB or RGBA.
Result<Image> load_png(const std::string& path);
// Plain resampling (A1111's "Lanczos" / "Nearest" upscalers: Pillow LANCZOS / NEAREST, exact).
Result<Image> resize_picture(const Image& in, int width, int height, bool nearest = false);
// A PNG or JPEG (told by its bytes, not its name) as 8-bit RGB or RGBA.
Result<Image> load_image(const std::string& path);
// The same from bytes in memory (e.g. decoded base64); `what` starts each error message ("what: not a PNG or
// JPEG image").
Result<Image> decode_image(const std::vector<uint8_t>& bytes, const std::string& what = "image data");
// Upscaled PNG, written atomically: `parameters` (when not empty) with `postprocessing` appended to its settings
// line, and A1111's separate "postprocessing" chunk.
Result<void> save_upscaled_png(const std::string& path, const Image& image, const std::string& parameters,
                               const std::string& postprocessing);

// `info`: format, dtype mix, components, architecture, parameter counts and unused tensors of a checkpoint.
Result<std::string> describe_checkpoint(const std::string& path);
// A .safetensors file holding LoRA tensors (kohya or diffusers/PEFT names)?
bool is_lora_file(const std::string& path);
// `info` for a LoRA: modules (unet / text encoder, linear / conv), ranks, alphas, addnet hash, ss_* metadata.
Result<std::string> describe_lora(const std::string& path);


// `bench`: per-component timings on one model (text encode, CFG UNet steps, VAE decode).
struct BenchOptions {
    std::string model_path;  // empty: a random-weight checkpoint of `random_layout` (written once to a cache file)
    std::string random_layout = "sd15";  // "sd15" or "sd2" (768-v layout: OpenCLIP ViT-H, context 1024)
    std::string vocab_path;  // empty: search; the random checkpoint falls back to a synthetic tokenizer-free prompt
    int width = 512, height = 512;
    int steps = 3;  // UNet CFG steps timed after one warm-up step (median reported)
    int threads = 0;
    std::string precision = "auto";
    std::string weight_type = "auto";  // as LoadOptions::weight_type
    bool profile = false;  // per-op time of the UNet steps
    // Also measure this machine's matmul peak on the spot (a 2048^3 linear through the same kernels, at the
    // bench's precision) and give each profiled op class's GFLOP/s as a share of it.
    bool peak = false;
    // With precision bf16: the op classes that run in bf16 ("linear,conv,attention" = all; the others fp32), to
    // measure what each class's bf16 buys.
    std::string bf16_ops = "linear,conv,attention";
    std::string taesd;     // also time a TAESD decoder's decode of the same latent (lcm4-taesd: the decoder used)
    // A whole image instead of the parts: "lcm4-taesd" (4-step LCM, CFG 1, TAESD decode), "lcm4" (the same with
    // the VAE) or "dpm20" (20-step DPM++ 2M Karras, CFG 7, VAE); `steps` is then the number of timed images
    // (median reported, after one untimed first image).
    std::string scenario;
    std::string cache_mode;  // GenerateParams::cache_mode for the scenario
    int cache_interval = 3;
};
struct BenchPart {
    std::string name;
    double median_s = 0;  // per run
    int runs = 0;
    double gflop = 0;     // work per run (2 x MACs)
};
struct BenchReport {
    std::string model;
    std::string cpu;       // /proc/cpuinfo model name (and family)
    std::string scenario;  // "" for the parts benchmark
    int threads = 0;
    std::string precision;
    std::string weight_type;
    int width = 0, height = 0;
    double load_s = 0;
    std::vector<BenchPart> parts;
    double peak_rss_mb = 0;
    std::vector<std::string> profile;  // one line per op, slowest first
    double peak_gflops = 0;            // BenchOptions::peak: the matmul peak measured
};
using BenchLog = std::function<void(const std::string&)>;
Result<BenchReport> run_benchmark(const BenchOptions& opt, const BenchLog& log = {});

// CLIP token ids of `text`, with BOS and EOS (`nanobanana tokenize`). The vocabulary is found as for a model:
// `vocab_path` if given, else NB_VOCAB, beside `model_path` (may be ""), then the data dirs.
Result<std::vector<int>> tokenize(const std::string& text, const std::string& vocab_path,
                                  const std::string& model_path = "");

// A PNG file's bytes with an A1111 "parameters" text chunk (none when empty), for sending over the network.
Result<std::vector<uint8_t>> encode_png(const Image& image, const std::string& parameters);
// The "parameters" chunk of PNG bytes ("" when absent).
Result<std::string> png_parameters(const std::vector<uint8_t>& png_bytes);

// A1111 parse_generation_parameters: "Prompt", "Negative prompt", then every "Key: value" of the settings line.
std::vector<std::pair<std::string, std::string>> parse_infotext(const std::string& infotext);

// Sampler and scheduler names as the A1111 API lists them: CLI name + A1111 label.
struct NamedChoice {
    std::string name, label;
};
std::vector<NamedChoice> sampler_names();
std::vector<NamedChoice> scheduler_names();

// PNG with an A1111 "parameters" text chunk, written atomically.
Result<void> save_png(const std::string& path, const Image& image, const std::string& parameters);
// The "parameters" chunk of a PNG ("" when absent).
Result<std::string> read_png_parameters(const std::string& path);
// Fills `p` from A1111 infotext (prompt, negative prompt, steps, sampler, schedule, CFG, seed, size, clip skip,
// RNG). A LoRA given as a file (GenerateParams::loras) is written into the infotext's prompt as a
// <lora:name:weight> tag, so it comes back as a tag, found by name in the LoRA folder.
Result<void> params_from_infotext(const std::string& infotext, GenerateParams& p);

}  // namespace nb
