/* A C program that uses nanobanana as an embedder would: only <nanobanana.h> and -lnanobanana, compiled against
 * an installed copy (tests/capi/run_capi_check.sh). Checks the C API's contract on a model given as argv[1]:
 *  - two engines with different precision and thread counts, generating at the same time on two threads, give
 *    exactly the images each gives alone;
 *  - loading and freeing an engine 10 times leaves the process within 64 MB of the first cycle;
 *  - a truncated model and bad request fields give errors (naming the field), never a crash;
 *  - a progress callback that returns non-zero cancels within one step;
 *  - img2img / inpaint / hires fix through A1111's field names: base64 images in, the requested sizes out,
 *    strength 0 gives back the input pixels, bad images and fields give errors naming the field.
 * Prints one line per check; exits 0 when all pass. */
#define _POSIX_C_SOURCE 200809L
#include <nanobanana.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond, ...)                          \
    do {                                          \
        if (!(cond)) {                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                  \
            printf("\n");                         \
            ++failures;                           \
        }                                         \
    } while (0)

static const char *kRequest =
    "{\"prompt\": \"a red circle on a blue background\", \"seed\": 42, \"steps\": 6, \"width\": 32, \"height\": 32, "
    "\"sampler_name\": \"DPM++ 2M\", \"scheduler\": \"Karras\", \"batch_size\": 2}";

/* Generates kRequest; returns malloc'd bytes of both images, one after the other. */
static unsigned char *generate(nb_engine *e, size_t *size) {
    nb_result *r = NULL;
    char *err = NULL;
    int rc = nb_generate(e, kRequest, NULL, NULL, &r, &err);
    if (rc != NB_OK) {
        printf("FAIL generate: %d %s\n", rc, err ? err : "(no message)");
        nb_free(err);
        ++failures;
        return NULL;
    }
    size_t total = 0;
    unsigned char *out = NULL;
    for (size_t i = 0; i < nb_result_count(r); ++i) {
        int w = 0, h = 0;
        const unsigned char *px = nb_result_image(r, i, &w, &h);
        out = realloc(out, total + (size_t)w * h * 3);
        memcpy(out + total, px, (size_t)w * h * 3);
        total += (size_t)w * h * 3;
    }
    nb_result_free(r);
    *size = total;
    return out;
}

struct job {
    nb_engine *engine;
    unsigned char *bytes;
    size_t size;
};

static void *run_job(void *arg) {
    struct job *j = arg;
    for (int i = 0; i < 2; ++i) { /* twice, so the two threads overlap for sure */
        free(j->bytes);
        j->bytes = generate(j->engine, &j->size);
    }
    return NULL;
}

static nb_engine *load(const char *model, const char *options) {
    char *err = NULL;
    nb_engine *e = nb_engine_load(model, options, &err);
    if (!e) {
        printf("FAIL load %s %s: %s\n", model, options, err ? err : "(no message)");
        ++failures;
    }
    nb_free(err);
    return e;
}

static long rss_kb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void check_concurrent_engines(const char *model) {
    nb_engine *a = load(model, "{\"precision\": \"fp32\", \"threads\": 1}");
    nb_engine *b = load(model, "{\"precision\": \"bf16\", \"threads\": 2}");
    if (!a || !b) return;
    size_t sa = 0, sb = 0;
    unsigned char *alone_a = generate(a, &sa), *alone_b = generate(b, &sb);
    struct job ja = {a, NULL, 0}, jb = {b, NULL, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_job, &ja);
    pthread_create(&tb, NULL, run_job, &jb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(alone_a && ja.bytes && sa == ja.size && memcmp(alone_a, ja.bytes, sa) == 0,
          "fp32 engine: concurrent images differ from its images alone");
    CHECK(alone_b && jb.bytes && sb == jb.size && memcmp(alone_b, jb.bytes, sb) == 0,
          "bf16 engine: concurrent images differ from its images alone");
    CHECK(alone_a && alone_b && sa == sb && memcmp(alone_a, alone_b, sa) != 0,
          "fp32 and bf16 engines gave identical images: the precision setting did not apply");
    printf("concurrent engines (fp32 x1 thread, bf16 x2 threads): %s\n",
           failures ? "see failures above" : "each gives exactly its images alone");
    free(alone_a), free(alone_b), free(ja.bytes), free(jb.bytes);
    nb_engine_free(a);
    nb_engine_free(b);
}

static void check_load_free_cycles(const char *model) {
    long first = 0, last = 0;
    for (int i = 0; i < 10; ++i) {
        nb_engine *e = load(model, NULL);
        if (!e) return;
        size_t n = 0;
        free(generate(e, &n));
        nb_engine_free(e);
        last = rss_kb();
        if (i == 0) first = last;
    }
    printf("load/generate/free x10: RSS after cycle 1 %ld MB, after cycle 10 %ld MB\n", first / 1024, last / 1024);
    CHECK(last - first <= 64 * 1024, "RSS grew by %ld MB over 10 load/free cycles", (last - first) / 1024);
}

static void check_errors(const char *model) {
    /* A truncated copy of the model. */
    char path[] = "/tmp/nb_capi_truncXXXXXX";
    int fd = mkstemp(path);
    FILE *in = fopen(model, "rb");
    char buf[4096];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (in) fclose(in);
    if (fd >= 0 && write(fd, buf, n) != (ssize_t)n) n = 0;
    if (fd >= 0) close(fd);
    char *err = NULL;
    nb_engine *e = nb_engine_load(path, NULL, &err);
    CHECK(e == NULL && err && strstr(err, path), "truncated model: engine %p, error '%s'", (void *)e, err ? err : "");
    printf("truncated model: %s\n", err ? err : "(no error)");
    nb_free(err);
    unlink(path);
    err = NULL;
    e = nb_engine_load(model, "{\"precision\": \"fp8\"}", &err);
    CHECK(e == NULL && err && strstr(err, "fp8"), "bad option: '%s'", err ? err : "");
    nb_free(err);

    e = load(model, NULL);
    if (!e) return;
    const char *bad[][2] = {{"{\"steps\": \"x\"}", "steps"},
                            {"{\"width\": 100}", "width"},
                            {"{\"cfg_scale\": -3}", "cfg"},
                            {"{\"sampler_name\": \"nope\"}", "nope"},
                            {"{\"batch_size\": 0}", "batch_size"},
                            {"{\"override_settings\": {\"randn_source\": \"TPU\"}}", "randn_source"},
                            {"{\"prompt\": 7}", "prompt"},
                            {"not json", "request_json"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        nb_result *r = NULL;
        err = NULL;
        int rc = nb_generate(e, bad[i][0], NULL, NULL, &r, &err);
        CHECK(rc == NB_ERROR_INPUT && r == NULL && err && strstr(err, bad[i][1]), "request %s: rc %d, error '%s'",
              bad[i][0], rc, err ? err : "");
        nb_free(err);
    }
    /* Unknown keys are ignored. */
    nb_result *r = NULL;
    err = NULL;
    int rc = nb_generate(e, "{\"steps\": 2, \"width\": 32, \"height\": 32, \"no_such_key\": [1, 2]}", NULL, NULL, &r,
                         &err);
    CHECK(rc == NB_OK && nb_result_count(r) == 1, "unknown key: rc %d %s", rc, err ? err : "");
    CHECK(r && strstr(nb_result_info(r), "\"all_seeds\""), "info lacks all_seeds");
    nb_result_free(r);
    nb_free(err);
    nb_engine_free(e);
    printf("bad options and request fields: errors naming the field\n");
}

static int calls = 0;
static int stop_at_3(int step, int steps, void *user) {
    (void)steps, (void)user;
    ++calls;
    return step >= 3;
}

static void check_cancel(const char *model) {
    nb_engine *e = load(model, NULL);
    if (!e) return;
    nb_result *r = NULL;
    char *err = NULL;
    int rc = nb_generate(e, "{\"steps\": 50, \"width\": 32, \"height\": 32}", stop_at_3, NULL, &r, &err);
    CHECK(rc == NB_CANCELLED, "cancel: rc %d (%s)", rc, err ? err : "");
    CHECK(calls == 3, "progress called %d times after asking to stop at step 3", calls);
    printf("cancel from the progress callback: rc %d after %d steps\n", rc, calls);
    nb_result_free(r);
    nb_free(err);
    nb_engine_free(e);
}

/* Test images, written by python3 with only zlib/struct/base64 (no PIL on the build machine):
 *   def png(w, h, rows, color_type):  # 8-bit, one filter-0 byte per row, one IDAT, zlib level 9
 *       chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
 *       return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, color_type, 0, 0, 0))
 *               + chunk(b'IDAT', zlib.compress(b''.join(b'\0' + r for r in rows), 9)) + chunk(b'IEND', b''))
 * kGradient: 16x16 RGB, pixel (x, y) = (16x, 16y, 128)  -- png(16, 16, [bytes(v for x in range(16) for v in
 *            (x * 16, y * 16, 128)) for y in range(16)], 2)
 * kBlackMask: 8x8 gray, all 0                              -- png(8, 8, [bytes(8)] * 8, 0)
 * kLeftMask: 16x16 gray, 255 where x < 8, else 0           -- png(16, 16, [bytes(255 if x < 8 else 0 for x in
 *            range(16))] * 16, 0)
 * each base64.b64encode()d. */
static const char *kGradient =
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAABlklEQVR42hXRURVEIQhFUSMYgQhGMAIRiGCEE8EIRiACEYhABCLMG7/ZrMt1jMEc"
    "yGAN9kAHNjgDBnfwBj6IQQ5q0IMxJnMikzXZE53Y5EyY3Mmb+CQmOalJzw8IUxBhCVtQwYQjIFzhCS6EkEIJLR9YzIUs1mIvdGGLs2BxF2/hi1jk"
    "oha9PrCZG9mszd7oxjZnw+Zu3sY3sclNbXp/QJmKKEvZiiqmHAXlKk9xJZRUSmn9gDENMZaxDTXMOAbGNZ7hRhhplNH2gcM8yGEd9kEPdjgHDvfw"
    "Dn6IQx7q0OcD/wK/Sr4jv9hfkG/1N/x/Fx44BCQU9Pc94zIvclmXfdGLXc79j9/Lu/glLnmpS98PPOZDHuuxH/qwx3n/5ffxHv6IRz7q0e8DznTE"
    "Wc521DHn+D/KdZ7jTjjplNP+gWAGEqxgBxpYcOIf/AYv8CCCDCro+EAyE0lWshNNLDn5P/MmL/Ekkkwq6fxAMQspVrELLaw49S/lFq/wIoosquj6"
    "QDMbaVazG22sOf2v8Dav8SaabKrp5geIAnAQC3NfwAAAAABJRU5ErkJggg==";
static const char *kBlackMask =
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAADElEQVR42mNgoA4AAABIAAEQRe/SAAAAAElFTkSuQmCC";
static const char *kLeftMask =
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAAAAAA6mKC9AAAAEElEQVR42mP4DwUMMDCyBQC/G3+BgyoEXQAAAABJRU5ErkJggg==";

/* tests/data/gray_8x8.jpg (see tests/unit/image_edit_test.cpp), base64 -w0: decoded as RGB, (5, 3) is
 * (156, 156, 156) and (7, 7) is (224, 224, 224). */
static const char *kGrayJpeg =
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsK"
    "DAkKCgr/wAALCAAIAAgBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEG"
    "E1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJ"
    "ipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APP/APg3c8Nf"
    "8gL93/zz7fSv/9k=";

/* Runs one request; returns the result (NULL on failure, reported as a FAIL naming `what`). */
static nb_result *run_request(nb_engine *e, const char *what, const char *request) {
    nb_result *r = NULL;
    char *err = NULL;
    int rc = nb_generate(e, request, NULL, NULL, &r, &err);
    CHECK(rc == NB_OK && r && nb_result_count(r) >= 1, "%s: rc %d, error '%s'", what, rc, err ? err : "");
    nb_free(err);
    if (rc != NB_OK) {
        nb_result_free(r);
        return NULL;
    }
    return r;
}

static void check_size(nb_result *r, const char *what, int width, int height) {
    int w = 0, h = 0;
    const unsigned char *px = r ? nb_result_image(r, 0, &w, &h) : NULL;
    CHECK(px && w == width && h == height, "%s: image %dx%d, expected %dx%d", what, w, h, width, height);
}

static void check_info_has(nb_result *r, const char *what, const char *needle) {
    const char *info = r ? nb_result_info(r) : NULL;
    CHECK(info && strstr(info, needle), "%s: info lacks %s: %s", what, needle, info ? info : "(none)");
}

static void check_edit(const char *model) {
    nb_engine *e = load(model, NULL);
    if (!e) return;
    static char req[4096];
    const int half = (int)strlen(kGradient) / 2;

    /* img2img: a 16x16 input resized to the requested 64x64. */
    snprintf(req, sizeof req,
             "{\"prompt\": \"a red circle\", \"seed\": 3, \"steps\": 4, \"width\": 64, \"height\": 64, "
             "\"init_images\": [\"%s\"], \"denoising_strength\": 0.5}", kGradient);
    nb_result *r = run_request(e, "img2img 16x16 -> 64x64", req);
    check_size(r, "img2img 16x16 -> 64x64", 64, 64);
    check_info_has(r, "img2img", "\"denoising_strength\":0.5");
    nb_result_free(r);

    /* Strength 0 returns the input as it is: here as a data URL with a JSON-escaped line break inside. */
    snprintf(req, sizeof req,
             "{\"steps\": 4, \"width\": 16, \"height\": 16, \"denoising_strength\": 0, "
             "\"init_images\": [\"data:image/png;base64,%.*s\\n%s\"]}", half, kGradient, kGradient + half);
    r = run_request(e, "img2img strength 0", req);
    check_size(r, "img2img strength 0", 16, 16);
    if (r) {
        int w = 0, h = 0, differ = 0;
        const unsigned char *px = nb_result_image(r, 0, &w, &h);
        for (int y = 0; px && y < h && y < 16; ++y)
            for (int x = 0; x < w && x < 16; ++x) {
                const unsigned char *p = px + (y * w + x) * 3;
                differ += p[0] != x * 16 || p[1] != y * 16 || p[2] != 128;
            }
        CHECK(differ == 0, "img2img strength 0: %d of 256 pixels differ from the input", differ);
    }
    nb_result_free(r);

    /* A JPEG comes back as decoded (gray replicated to RGB). */
    snprintf(req, sizeof req, "{\"width\": 8, \"height\": 8, \"denoising_strength\": 0, \"init_images\": [\"%s\"]}",
             kGrayJpeg);
    r = run_request(e, "img2img from a JPEG", req);
    check_size(r, "img2img from a JPEG", 8, 8);
    if (r) {
        const unsigned char *px = nb_result_image(r, 0, NULL, NULL);
        const unsigned char *a = px + (3 * 8 + 5) * 3, *b = px + (7 * 8 + 7) * 3;
        CHECK(a[0] == 156 && a[1] == 156 && a[2] == 156 && b[0] == 224,
              "img2img from a JPEG: pixel (5, 3) = (%d, %d, %d), (7, 7) = %d; expected 156 x 3 and 224", a[0], a[1],
              a[2], b[0]);
    }
    nb_result_free(r);

    /* Inpaint the left half at 32x32. */
    snprintf(req, sizeof req,
             "{\"steps\": 2, \"seed\": 5, \"width\": 32, \"height\": 32, \"denoising_strength\": 0.75, "
             "\"init_images\": [\"%s\"], \"mask\": \"%s\", \"mask_blur\": 2, \"inpainting_fill\": 1, "
             "\"inpaint_full_res\": 0, \"inpainting_mask_invert\": false}", kGradient, kLeftMask);
    r = run_request(e, "inpaint", req);
    check_size(r, "inpaint", 32, 32);
    nb_result_free(r);

    /* Hires fix 32x32 x1.5 -> 48x48, with a variation seed reported in info. */
    r = run_request(e, "hires fix",
                    "{\"steps\": 2, \"seed\": 9, \"width\": 32, \"height\": 32, \"enable_hr\": true, "
                    "\"hr_scale\": 1.5, \"hr_second_pass_steps\": 2, \"denoising_strength\": 0.6, "
                    "\"subseed\": 7, \"subseed_strength\": 0.25, \"seed_resize_from_w\": -1}");
    check_size(r, "hires fix", 48, 48);
    check_info_has(r, "hires fix", "\"subseed\":7");
    check_info_has(r, "hires fix", "\"all_subseeds\":[7]");
    check_info_has(r, "hires fix", "\"subseed_strength\":0.25");
    check_info_has(r, "hires fix", "\"seed_resize_from_w\":-1");
    nb_result_free(r);

    /* Bad images and fields: errors naming the field. */
    enum { kBad = 11 };
    static char bad[kBad][4096];
    const char *needle[kBad] = {"mask", "init_images[0]", "init_images[0]': not a PNG or JPEG", "subseed",
                                "mask_blur_y", "initial_noise_multiplier", "outpaint",
                                "init_images[0]': invalid or truncated PNG", "init_images[0]': not valid base64",
                                "not valid base64 ('-' at offset 8)", "not valid base64 (data after the '=' padding"};
    snprintf(bad[0], sizeof bad[0], "{\"width\": 32, \"height\": 32, \"init_images\": [\"%s\"], \"mask\": \"%s\"}",
             kGradient, kBlackMask);
    snprintf(bad[1], sizeof bad[1], "{\"init_images\": [\"iVBORw0K%%%%GgoAAAA\"]}");
    snprintf(bad[2], sizeof bad[2], "{\"init_images\": [\"aGVsbG8sIHdvcmxk\"]}"); /* "hello, world" */
    snprintf(bad[3], sizeof bad[3], "{\"steps\": 2, \"width\": 32, \"height\": 32, \"subseed_strength\": 1.5}");
    snprintf(bad[4], sizeof bad[4], "{\"init_images\": [\"%s\"], \"mask_blur_x\": 4, \"mask_blur_y\": 8}", kGradient);
    snprintf(bad[5], sizeof bad[5], "{\"init_images\": [\"%s\"], \"initial_noise_multiplier\": 0.5}", kGradient);
    snprintf(bad[6], sizeof bad[6], "{\"init_images\": [\"%s\"], \"outpaint\": [8, 8]}", kGradient);
    snprintf(bad[7], sizeof bad[7], "{\"init_images\": [\"%.*s\"]}", half / 4 * 4, kGradient); /* a PNG cut short */
    snprintf(bad[8], sizeof bad[8], "{\"init_images\": [\"iVBORw0KGgo\"]}"); /* base64 cut short */
    snprintf(bad[9], sizeof bad[9], "{\"init_images\": [\"iVBORw0K-_oA\"]}"); /* the URL-safe alphabet */
    snprintf(bad[10], sizeof bad[10], "{\"init_images\": [\"iVBORw0KGg==AAAA\"]}");
    for (int i = 0; i < kBad; ++i) {
        char *err = NULL;
        r = NULL;
        int rc = nb_generate(e, bad[i], NULL, NULL, &r, &err);
        CHECK(rc == NB_ERROR_INPUT && r == NULL && err && strstr(err, needle[i]),
              "bad edit request %d: rc %d, error '%s' (expected one containing \"%s\")", i, rc, err ? err : "",
              needle[i]);
        if (i == 1 || i == 2 || i == 7) printf("  %s\n", err ? err : "(no error)");
        nb_free(err);
    }
    nb_engine_free(e);
    printf("img2img / inpaint / hires fix through base64 images: sizes, strength 0, field errors\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.safetensors\n", argv[0]);
        return 2;
    }
    printf("%s\n", nb_version());
    check_errors(argv[1]);
    check_edit(argv[1]);
    check_cancel(argv[1]);
    check_concurrent_engines(argv[1]);
    check_load_free_cycles(argv[1]);
    printf("%s\n", failures ? "C API checks FAILED" : "C API checks passed");
    return failures ? 1 : 0;
}
