/* A C program that uses nanobanana as an embedder would: only <nanobanana.h> and -lnanobanana, compiled against
 * an installed copy (tests/capi/run_capi_check.sh). Checks the C API's contract on a model given as argv[1]:
 *  - two engines with different precision and thread counts, generating at the same time on two threads, give
 *    exactly the images each gives alone;
 *  - loading and freeing an engine 10 times leaves the process within 64 MB of the first cycle;
 *  - a truncated model and bad request fields give errors (naming the field), never a crash;
 *  - a progress callback that returns non-zero cancels within one step.
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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.safetensors\n", argv[0]);
        return 2;
    }
    printf("%s\n", nb_version());
    check_errors(argv[1]);
    check_cancel(argv[1]);
    check_concurrent_engines(argv[1]);
    check_load_free_cycles(argv[1]);
    printf("%s\n", failures ? "C API checks FAILED" : "C API checks passed");
    return failures ? 1 : 0;
}
