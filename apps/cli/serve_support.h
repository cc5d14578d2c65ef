// What `nanobanana serve` needs besides its routes (cmd_serve.cpp): the A1111-layout models folder, OpenAI edit
// requests as A1111 payloads, the /memory report and basic-auth tokens. Free functions, no server state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "nanobanana/engine.h"

namespace nb::cli {

struct ModelFile {
    std::string name;        // file name relative to its folder ("sub/model.safetensors")
    std::string stem;        // without extension (A1111 model_name / LoRA name / upscaler name)
    std::string path;        // absolute
    std::string short_hash;  // first 10 hex of sha256, once computed (A1111 computes it on load)
    std::string family;      // ModelInfo::family ("SD 1.x", ...), known once loaded
    int default_size = 0;    // its txt2img side in pixels (ModelInfo; the demo model: 64); 0 = not known yet
};

// Bytes on disk of a checkpoint file, or of every file in a diffusers folder (symlinks followed); 0 if unreadable.
uint64_t size_on_disk(const std::filesystem::path& path);

// The `parameters` text of a base64 PNG (or a data: URL of one); "" for none, another format or bad input.
std::string source_parameters(const std::string& base64_image);

// Files under `dir` (recursively) with one of `exts`; with `folders`, diffusers folders (model_index.json) too.
std::vector<ModelFile> scan(const std::filesystem::path& dir, std::initializer_list<const char*> exts,
                            bool folders = false);

// A1111's VAE list (sd_vae.refresh_vae_list): the *.vae.safetensors / .vae.ckpt / .vae.pt files among the
// checkpoints, which are moved out of `checkpoints` (A1111 does not offer them as checkpoints), then every VAE file
// under `vae_dir`. A1111 names a VAE by its file name (with extension).
std::vector<ModelFile> take_vaes(std::vector<ModelFile>& checkpoints, const std::filesystem::path& vae_dir);
// A1111's sd_vae setting -> LoadOptions::vae: "Automatic" -> "auto" (<model>.vae.* beside the checkpoint, else
// its own), "None" -> "none", a listed VAE's file name -> its path; "" with `error` set for any other name.
std::string vae_choice(const std::string& sd_vae, const std::vector<ModelFile>& vaes, std::string& error);

// OpenAI /v1/images/edits (multipart) -> an A1111 img2img payload; `error` set on bad input.
void openai_edits_to_a1111(const httplib::Request& req, nlohmann::json& a1111, std::string& error);

// The textual-inversion folder: <models dir>/embeddings, or embeddings/ beside the model without a models dir.
std::string embeddings_folder(const std::string& models_dir, const std::string& model_path);
// A1111 /sdapi/v1/embeddings: {"loaded": {name: {step, sd_checkpoint, sd_checkpoint_name, shape, vectors}},
// "skipped": {...}}; a skipped one also has "reason" (nanobanana's addition).
nlohmann::json embeddings_json(const std::vector<EmbeddingInfo>& embeddings);

// A1111 /memory: ram {free, used, total} from /proc/meminfo, this process's peak RSS, cuda as an error object.
nlohmann::json memory();

// Whether the client of a request is still connected, as the kernel sees the TCP connection between the
// server's `local_port` and the client's `remote_port` (/proc/net/tcp and tcp6): false once the client has
// closed or reset it (the server's side is then CLOSE_WAIT, or gone). cpp-httplib 0.11 keeps the socket from
// handlers, so a queued request has no other way to learn that nobody waits for its answer.
bool client_connected(int local_port, int remote_port);

// base64 of "user:pass" for each pair of --api-auth "user:pass[,user2:pass2]".
std::vector<std::string> auth_tokens(const std::string& spec);

}  // namespace nb::cli
