/*
 * test_encoder_memory.c — the memory bound of a pretrained encoder at real size.
 *
 * Writes a ViT-H/14 encoder (official names, 224 px, random weights: 2.5 GB of float32) to a
 * temporary safetensors file with a small streaming buffer, then loads it with
 * ijepa_encoder_load and encodes a batch of 8 images. The process's peak RSS (ru_maxrss) must
 * stay at most 1.25 x the weight bytes: the weights once, read straight into place, plus the
 * activations of the batch. Prints the load and encode times.
 *
 * Then saves the encoder as an encoder file (ijepa_encoder_save) and loads that: it must be
 * mapped, not read (the process's anonymous memory grows by less than 5% of the weight bytes
 * during the load), and encode two images to the same features, bit for bit.
 *
 * Needs about 2.6 GB of free disk in $TMPDIR (default /tmp) and 3.2 GB of memory; takes about
 * a minute on 2 cores. Not run under the sanitizers (their shadow memory is RSS too).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

enum { D = 1280, DEPTH = 32, HEADS = 16, HIDDEN = 5120, PATCH = 14, IMG = 224, GRID = IMG / PATCH, C = 3 };

typedef struct { const char *name; int64_t shape[4]; int ndim; } tensor;

static tensor tensors[3 + 12 * DEPTH + 2];
static int n_tensors;
static char names[3 + 12 * DEPTH + 2][64];

static void add(const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
    tensor *t = &tensors[n_tensors];
    snprintf(names[n_tensors], sizeof names[0], "%s", name);
    t->name = names[n_tensors];
    t->ndim = ndim;
    t->shape[0] = a; t->shape[1] = b; t->shape[2] = c; t->shape[3] = d;
    n_tensors++;
}

static int64_t numel(const tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A field of /proc/self/status in KiB ("RssAnon"), or -1. */
static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') { v = atol(line + n + 1); break; }
    fclose(f);
    return v;
}

static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* The official encoder's state_dict, bare keys. */
static void layout(void) {
    add("pos_embed", 3, 1, GRID * GRID, D, 0);
    add("patch_embed.proj.weight", 4, D, C, PATCH, PATCH);
    add("patch_embed.proj.bias", 1, D, 0, 0, 0);
    for (int i = 0; i < DEPTH; i++) {
        char b[64];
#define BLK(suffix, nd, a, bb) (snprintf(b, sizeof b, "blocks.%d." suffix, i), add(b, nd, a, bb, 0, 0))
        BLK("norm1.weight", 1, D, 0); BLK("norm1.bias", 1, D, 0);
        BLK("attn.qkv.weight", 2, 3 * D, D); BLK("attn.qkv.bias", 1, 3 * D, 0);
        BLK("attn.proj.weight", 2, D, D); BLK("attn.proj.bias", 1, D, 0);
        BLK("norm2.weight", 1, D, 0); BLK("norm2.bias", 1, D, 0);
        BLK("mlp.fc1.weight", 2, HIDDEN, D); BLK("mlp.fc1.bias", 1, HIDDEN, 0);
        BLK("mlp.fc2.weight", 2, D, HIDDEN); BLK("mlp.fc2.bias", 1, D, 0);
#undef BLK
    }
    add("norm.weight", 1, D, 0, 0, 0);
    add("norm.bias", 1, D, 0, 0, 0);
}

/* Streams the file through a 1 MiB buffer; returns the weight bytes (-1 on an I/O error). */
static int64_t write_file(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t cap = 1 << 20, len = 0;
    char *h = malloc(cap);
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    int64_t off = 0;
    for (int i = 0; i < n_tensors; i++) {
        const tensor *t = &tensors[i];
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name);
        for (int k = 0; k < t->ndim; k++) len += (size_t)snprintf(h + len, cap - len, k ? ",%lld" : "%lld", (long long)t->shape[k]);
        int64_t bytes = numel(t) * 4;
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%lld,%lld]}", (long long)off, (long long)(off + bytes));
        off += bytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';
    uint64_t hl = len;
    int ok = fwrite(&hl, 8, 1, f) == 1 && fwrite(h, 1, len, f) == len;
    free(h);
    float *buf = malloc(1 << 20);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; ok && i < n_tensors; i++) {
        const tensor *t = &tensors[i];
        int is_norm_weight = strstr(t->name, "norm") && strstr(t->name, "weight");
        int is_bias = strstr(t->name, "bias") != NULL;
        int64_t n = numel(t);
        while (ok && n > 0) {
            int64_t m = n < (1 << 18) ? n : (1 << 18);
            for (int64_t j = 0; j < m; j++) {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                float u = (float)((s >> 40) * (1.0 / 16777216.0)) - 0.5f;   /* uniform in [-0.5, 0.5) */
                buf[j] = is_norm_weight ? 1.0f + 0.1f * u : is_bias ? 0.02f * u : 0.05f * u;
            }
            ok = fwrite(buf, 4, (size_t)m, f) == (size_t)m;
            n -= m;
        }
    }
    free(buf);
    if (fclose(f) != 0) ok = 0;
    return ok ? off : -1;
}

int main(void) {
    layout();
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/ijepa-vith14-%ld.safetensors", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    double t0 = now();
    int64_t weight_bytes = write_file(path);
    REQUIRE(weight_bytes > 0, "could not write %s (needs about 2.6 GB of free disk)", path);
    long rss_before = peak_rss_kb();
    printf("wrote ViT-H/14 (%.2f GB of float32 weights) in %.1f s; peak RSS so far %.0f MiB\n",
           weight_bytes / 1e9, now() - t0, rss_before / 1024.0);

    ijepa_encoder_options o = {.struct_size = sizeof o};
    REQUIRE_OK(ijepa_encoder_options_init(&o));
    o.num_heads = HEADS;
    o.n_threads = 2;
    ijepa_encoder *e = NULL;
    double t1 = now();
    int st = ijepa_encoder_load(path, &o, &e);
    unlink(path);
    REQUIRE_OK(st);
    double load_s = now() - t1;
    long rss_loaded = peak_rss_kb();

    ijepa_encoder_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(ijepa_encoder_get_info(e, &info));
    CHECK(info.embed_dim == D && info.depth == DEPTH && info.num_heads == HEADS && info.mlp_hidden == HIDDEN &&
          info.image_size == IMG && info.patch_size == PATCH && info.source == IJEPA_SOURCE_OFFICIAL,
          "info: D %d depth %d heads %d hidden %d image %d patch %d source %d", info.embed_dim, info.depth,
          info.num_heads, info.mlp_hidden, info.image_size, info.patch_size, info.source);

    enum { B = 8 };
    size_t n_img = (size_t)B * C * IMG * IMG;
    float *images = malloc(n_img * sizeof(float));
    float *pooled = malloc((size_t)B * D * sizeof(float));
    uint64_t s = 12345;
    for (size_t i = 0; i < n_img; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        images[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 4.0f - 2.0f;
    }
    double t2 = now();
    CHECK_OK(ijepa_encoder_encode(e, images, B, IMG, IMG, NULL, pooled));
    double enc_s = now() - t2;
    int finite = 1;
    for (int i = 0; i < B * D; i++) finite &= isfinite(pooled[i]) != 0;
    CHECK(finite, "pooled features are finite");
    long rss_peak = peak_rss_kb();
    double bound_kb = 1.25 * (double)weight_bytes / 1024.0;
    printf("load %.1f s (peak RSS %.0f MiB); encode of %d images %.1f s (%.2f images/s); peak RSS %.0f MiB = %.3f x the "
           "weight bytes (bound 1.25)\n", load_s, rss_loaded / 1024.0, B, enc_s, B / enc_s, rss_peak / 1024.0,
           rss_peak * 1024.0 / (double)weight_bytes);
    CHECK(rss_peak <= bound_kb, "peak RSS %ld KiB exceeds 1.25 x %lld weight bytes (%.0f KiB)", rss_peak,
          (long long)weight_bytes, bound_kb);

    /* the encoder file: saved, then mapped, not read */
    float *want = malloc(2 * (size_t)D * sizeof(float)), *got = malloc(2 * (size_t)D * sizeof(float));
    CHECK_OK(ijepa_encoder_encode(e, images, 2, IMG, IMG, NULL, want));
    char saved[600];
    snprintf(saved, sizeof saved, "%s.encoder", path);
    double t3 = now();
    st = ijepa_encoder_save(e, saved);
    double save_s = now() - t3;
    ijepa_encoder_free(e);
    REQUIRE(st == IJEPA_OK, "ijepa_encoder_save: %s (needs about 2.6 GB of free disk)", ijepa_last_error());
    long anon_before = status_kb("RssAnon");
    double t4 = now();
    st = ijepa_encoder_load(saved, &o, &e);
    double mapped_s = now() - t4;
    long anon_after = status_kb("RssAnon");
    unlink(saved);
    REQUIRE_OK(st);
    printf("saved the encoder file in %.1f s; loaded it in %.2f s, anonymous memory %+.0f MiB (the weights: %.0f MiB)\n",
           save_s, mapped_s, (anon_after - anon_before) / 1024.0, weight_bytes / 1048576.0);
    CHECK(anon_before >= 0 && anon_after - anon_before < 0.05 * (double)weight_bytes / 1024.0,
          "the encoder file was read into anonymous memory (%+ld KiB), not mapped", anon_after - anon_before);
    CHECK_OK(ijepa_encoder_encode(e, images, 2, IMG, IMG, NULL, got));
    CHECK(memcmp(want, got, 2 * (size_t)D * sizeof(float)) == 0, "the mapped encoder file encodes as the encoder, bit for bit");
    ijepa_encoder_free(e);
    free(want);
    free(got);
    free(images);
    free(pooled);
    return check_summary("test_encoder_memory");
}
