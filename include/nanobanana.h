/* nanobanana C API: local Stable Diffusion image generation, for embedding and for bindings from other
 * languages. Link with -lnanobanana (pkg-config nanobanana).
 *
 * Contract:
 *  - Different engines may run concurrently on different threads; one engine is used by one thread at a time.
 *  - Every failure returns an error string (free it with nb_free); nothing crashes or aborts on bad input.
 *  - Strings are UTF-8. JSON arguments may be NULL or "" for "all defaults".
 */
#ifndef NANOBANANA_H
#define NANOBANANA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NB_OK 0
#define NB_CANCELLED 1       /* the progress callback asked to stop */
#define NB_ERROR_INPUT (-2)  /* bad request: a field, a file, a model */
#define NB_ERROR (-1)        /* failure while working */

typedef struct nb_engine nb_engine;
typedef struct nb_result nb_result;

/* Called after each sampling step (step counts from 1); return non-zero to cancel. */
typedef int (*nb_progress_fn)(int step, int steps, void *user);

/* Loads a checkpoint (.safetensors file, diffusers folder, torch .ckpt). options_json keys (all optional):
 *   "precision": "auto" (fp32; attention in bf16 where the CPU has native bf16) | "fp32" | "bf16"
 *   "type": "auto" | "f32" | "q8_0"            "threads": 0 (all cores) ...
 *   "vocab": CLIP vocabulary path              "lora_dir": folder searched for <lora:name:w> prompt tags
 *   "embd_dir": folder of textual-inversion embeddings (.safetensors/.pt/.bin) a prompt word names by file stem
 *   "upscaler_dir": folder searched for hires-fix upscaler models named by "hr_upscaler"
 *   "backend": "cpu" (default) | "ref" (scalar reference kernels: exact, one thread, slow)
 *   "prediction": "auto" (metadata, else A1111's SD 2.x test forward, else eps) | "eps" | "v"
 *   "taesd": a TAESD decoder file (live previews; the final decode too unless "taesd_decode": false)
 *   "vae": "auto" (<model>.vae.safetensors beside the checkpoint, else its own) | "none" (its own) | a VAE file
 * Returns NULL on failure and, when error is not NULL, sets *error (free with nb_free). */
nb_engine *nb_engine_load(const char *model_path, const char *options_json, char **error);

/* txt2img, img2img, inpaint, outpaint and hires fix. request_json uses the names of A1111's /sdapi/v1/txt2img
 * and /sdapi/v1/img2img payloads (one entry point: "init_images" makes it img2img):
 *   "prompt", "negative_prompt", "seed" (-1 random), "steps", "cfg_scale", "width", "height",
 *   "sampler_name" (A1111 labels or our short names), "scheduler", "batch_size" (and "n_iter": images =
 *   batch_size x n_iter), "clip_skip",
 *   variation seed: "subseed" (-1 random), "subseed_strength" (0..1), "seed_resize_from_w",
 *   "seed_resize_from_h" (<= 0: off);
 *   hires fix (txt2img): "enable_hr", "hr_scale", "hr_resize_x", "hr_resize_y", "hr_upscaler" ("Latent",
 *   "Latent (bicubic)", ..., "Lanczos", "Nearest", or an upscaler model: a path or a name in "upscaler_dir"),
 *   "hr_second_pass_steps", "hr_prompt", "hr_negative_prompt", "denoising_strength";
 *   img2img: "init_images" (array of base64 PNG or JPEG, plain or as "data:image/png;base64,..."; A1111 takes
 *   one per batch item, nanobanana uses only the first for the whole batch), "denoising_strength" (0 returns
 *   the resized input), "resize_mode" (0 resize, 1 crop and resize, 2 resize and fill, 3 latent upscale);
 *   inpaint: "mask" (base64 as above; white = repaint), "mask_blur" (or "mask_blur_x" and "mask_blur_y",
 *   which must be equal), "inpainting_mask_invert" (0/1 or bool), "inpainting_fill" (0 fill, 1 original,
 *   2 latent noise, 3 latent nothing), "inpaint_full_res" (bool or 0/1: only masked),
 *   "inpaint_full_res_padding", "inpainting_mask_weight" (9-channel inpainting models; also read from
 *   override_settings, as A1111 does),
 *   "initial_noise_multiplier" (only 1 is accepted);
 *   outpaint (nanobanana's own): "outpaint": [left, top, right, bottom] pixels added around the init image;
 *   "override_settings": {"randn_source": "GPU" | "CPU", "CLIP_stop_at_last_layers": n,
 *   "inpainting_mask_weight": w}.
 * Absent fields take nanobanana's defaults, which are A1111's web UI defaults; A1111's API differs for three:
 * "inpainting_fill" (API 0, here 1 "original"; 2 for outpaint), "inpaint_full_res" (API true, here false) and
 * "inpaint_full_res_padding" (API 0, here 32). Base64 must be strict (RFC 4648 alphabet with '=' padding;
 * whitespace and line breaks are skipped). Unknown keys are ignored; a bad value (or an undecodable image)
 * gives NB_ERROR_INPUT and an error naming the field.
 * Returns NB_OK, NB_CANCELLED (then *result holds the images finished before the cancel, or NULL), or an error
 * code with *error set. */
int nb_generate(nb_engine *e, const char *request_json, nb_progress_fn progress, void *user, nb_result **result,
                char **error);

size_t nb_result_count(const nb_result *r);
/* Image i as packed RGB8 rows (width * height * 3 bytes), owned by the result; NULL if i is out of range. */
const unsigned char *nb_result_image(const nb_result *r, size_t i, int *width, int *height);
/* A1111's "info" JSON: prompt, seed, all_seeds, subseed, all_subseeds, subseed_strength, width, height,
 * sampler_name, cfg_scale, steps, seed_resize_from_w/h, denoising_strength, infotexts, ... */
const char *nb_result_info(const nb_result *r);
void nb_result_free(nb_result *r);

void nb_engine_free(nb_engine *e);
/* Frees strings the library returned (error messages). */
void nb_free(void *p);
/* "nanobanana 0.1.0" */
const char *nb_version(void);

#ifdef __cplusplus
}
#endif

#endif /* NANOBANANA_H */
