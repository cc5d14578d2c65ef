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
 *   "precision": "auto" | "fp32" | "bf16"     "type": "auto" | "f32" | "q8_0"     "threads": 0 (all cores) ...
 *   "vocab": CLIP vocabulary path              "lora_dir": folder searched for <lora:name:w> prompt tags
 *   "backend": "cpu" (default) | "ref" (scalar reference kernels: exact, one thread, slow)
 * Returns NULL on failure and, when error is not NULL, sets *error (free with nb_free). */
nb_engine *nb_engine_load(const char *model_path, const char *options_json, char **error);

/* txt2img. request_json uses A1111's /sdapi/v1/txt2img names: "prompt", "negative_prompt", "seed" (-1 random),
 * "steps", "cfg_scale", "width", "height", "sampler_name" (A1111 labels or our short names), "scheduler",
 * "batch_size" (and "n_iter": images = batch_size x n_iter), "clip_skip",
 * "override_settings": {"randn_source": "GPU" | "CPU", "CLIP_stop_at_last_layers": n}. Unknown keys are ignored;
 * a bad value gives NB_ERROR_INPUT and an error naming the field.
 * Returns NB_OK, NB_CANCELLED (then *result holds the images finished before the cancel, or NULL), or an error
 * code with *error set. */
int nb_generate(nb_engine *e, const char *request_json, nb_progress_fn progress, void *user, nb_result **result,
                char **error);

size_t nb_result_count(const nb_result *r);
/* Image i as packed RGB8 rows (width * height * 3 bytes), owned by the result; NULL if i is out of range. */
const unsigned char *nb_result_image(const nb_result *r, size_t i, int *width, int *height);
/* A1111's "info" JSON: prompt, seed, all_seeds, width, height, sampler_name, cfg_scale, steps, infotexts, ... */
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
