/*
 * bench_ijepa.c — times this library's train step and encode through the C ABI.
 *
 *   bench_ijepa train  IMG PATCH CHANS DIM DEPTH HEADS PDIM PDEPTH BATCH THREADS ITERS MASKFILE
 *   bench_ijepa encode IMG PATCH CHANS DIM DEPTH HEADS PDIM PDEPTH BATCH THREADS ITERS
 *   bench_ijepa masks  IMG PATCH CHANS DIM DEPTH HEADS PDIM PDEPTH BATCH COUNT MASKFILE
 *   bench_ijepa sgemm  N THREADS ITERS
 *   bench_ijepa allocs IMG PATCH CHANS DIM DEPTH HEADS PDIM PDEPTH BATCH THREADS ITERS MASKFILE
 *   bench_ijepa variants IMG PATCH CHANS DIM DEPTH HEADS PDIM PDEPTH BATCH THREADS ITERS
 *
 * "variants" times the train step of this library alone (the official code has no such
 * options) for the official masks, ragged contexts, and ragged contexts with full_grid
 * (docs/ragged.md): all three models draw their masks from the same seed, alternate step by
 * step, and report per-iteration seconds and the mean context length per image.
 *
 * "allocs" counts heap allocations inside the library in the steady state: one untimed pass of
 * train steps over every mask batch (so every buffer has reached its largest shape), then a
 * second pass counted, then the same with masks the library samples itself (NULL masks), then
 * encode likewise. This program defines malloc, calloc, realloc,
 * posix_memalign, aligned_alloc and memalign itself (forwarding to glibc's __libc_* entry
 * points), so the library's calls, Swift runtime included, resolve to them and are counted.
 *
 * "masks" samples COUNT mask batches with the official collator (seed 0) and writes them to
 * MASKFILE (int32: count, then per batch num_enc,k_enc,num_pred,k_pred, enc[], pred[]); the
 * train mode (and the PyTorch side, bench/torch_step.py) cycle through the same masks, so
 * both do identical work. Prints one JSON line: per-iteration seconds after warm-up.
 */
#define _POSIX_C_SOURCE 200809L
#include <ijepa.h>
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int);

/* ---- allocation counting (see "allocs" above) ------------------------------------------------ */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static _Atomic long alloc_count, alloc_bytes;
static void count_alloc(size_t n) { alloc_count++; alloc_bytes += (long)n; }
void *malloc(size_t n) { count_alloc(n); return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { count_alloc(k * n); return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { count_alloc(n); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { count_alloc(n); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count_alloc(n); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    count_alloc(n);
    void *p = __libc_memalign(a, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "bench_ijepa: %s: %s\n", what, ijepa_last_error());
    exit(1);
}

static ijepa_config make_config(char **a) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = atoi(a[0]); c.patch_size = atoi(a[1]); c.in_chans = atoi(a[2]);
    c.embed_dim = atoi(a[3]); c.depth = atoi(a[4]); c.num_heads = atoi(a[5]);
    c.pred_embed_dim = atoi(a[6]); c.pred_depth = atoi(a[7]);
    /* min_keep 4 as in the fmnist recipe; on smaller grids a 0.15-scale target block can have
     * min_keep patches or fewer (6x6: 2x2 = 4; 4x4: 1x1), which the official sampler would
     * loop on forever (issue #68) and this library refuses, so those grids use a smaller one
     * (4x4: a 1x1 block is possible, so 0). */
    int grid = c.image_size / c.patch_size;
    c.min_keep = grid >= 8 ? 4 : grid >= 5 ? 3 : 0;
    return c;
}

static void fill_images(float *x, size_t n) {
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = (float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

static void print_times(const char *mode, const double *t, int n) {
    printf("{\"impl\":\"ijepa\",\"mode\":\"%s\",\"times\":[", mode);
    for (int i = 0; i < n; i++) printf("%s%.6f", i ? "," : "", t[i]);
    printf("]}\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: see the comment at the top of bench_ijepa.c\n"); return 2; }
    const char *mode = argv[1];
    if (!strcmp(mode, "sgemm")) {
        int n = atoi(argv[2]), threads = atoi(argv[3]), iters = atoi(argv[4]);
        openblas_set_num_threads(threads);
        float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
        fill_images(a, (size_t)n * n); fill_images(b, (size_t)n * n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double *t = malloc(sizeof(double) * iters);
        for (int i = 0; i < iters; i++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            t[i] = now() - t0;
        }
        print_times("sgemm", t, iters);
        return 0;
    }
    if (argc < 11) { fprintf(stderr, "bench_ijepa: too few arguments\n"); return 2; }
    ijepa_config cfg = make_config(argv + 2);
    int batch = atoi(argv[10]);
    if (!strcmp(mode, "masks")) {
        int count = atoi(argv[11]);
        ijepa_model *m;
        if (ijepa_model_create(&cfg, &m)) die("create");
        FILE *f = fopen(argv[12], "wb");
        if (!f) { perror(argv[12]); return 1; }
        fwrite(&count, 4, 1, f);
        for (int k = 0; k < count; k++) {
            ijepa_masks mk;
            if (ijepa_masks_sample(m, batch, &mk)) die("masks");
            int32_t hdr[4] = {mk.num_enc, mk.k_enc, mk.num_pred, mk.k_pred};
            fwrite(hdr, 4, 4, f);
            fwrite(mk.enc, 4, (size_t)mk.num_enc * batch * mk.k_enc, f);
            fwrite(mk.pred, 4, (size_t)mk.num_pred * batch * mk.k_pred, f);
            ijepa_masks_free(&mk);
        }
        fclose(f);
        ijepa_model_free(m);
        return 0;
    }
    cfg.n_threads = atoi(argv[11]);
    int iters = atoi(argv[12]);
    ijepa_model *m;
    if (ijepa_model_create(&cfg, &m)) die("create");
    size_t n = (size_t)batch * cfg.in_chans * cfg.image_size * cfg.image_size;
    float *img = malloc(n * sizeof(float));
    fill_images(img, n);
    double *t = malloc(sizeof(double) * iters);
    if (!strcmp(mode, "variants")) {
        ijepa_model *v[3] = {m, NULL, NULL};
        const char *name[3] = {"official", "ragged", "ragged+full_grid"};
        ijepa_config c1 = cfg, c2 = cfg;
        c1.ragged_context = 1;
        c2.ragged_context = 1; c2.full_grid = 1;
        if (ijepa_model_create(&c1, &v[1]) || ijepa_model_create(&c2, &v[2])) die("create");
        double *tv = malloc(sizeof(double) * 3 * iters), ctx[3] = {0, 0, 0};
        ijepa_step_stats st;
        for (int i = -2; i < iters; i++) {
            for (int k = 0; k < 3; k++) {
                ijepa_ragged_masks r;
                if (ijepa_masks_sample_ragged(v[k], batch, &r)) die("masks");
                int32_t shortest = r.k_enc_max;
                long total = 0;
                for (int j = 0; j < r.num_enc * batch; j++) {
                    total += r.enc_len[j];
                    if (r.enc_len[j] < shortest) shortest = r.enc_len[j];
                }
                if (k == 0) for (int j = 0; j < r.num_enc * batch; j++) r.enc_len[j] = shortest;   /* the official cut */
                double t0 = now();
                if (ijepa_train_step_ragged(v[k], img, batch, &r, &st)) die("train_step");
                if (i >= 0) {
                    tv[k * iters + i] = now() - t0;
                    ctx[k] += (k == 0 ? (double)shortest : (double)total / (r.num_enc * batch)) / iters;
                }
                ijepa_ragged_masks_free(&r);
            }
        }
        for (int k = 0; k < 3; k++) {
            printf("{\"impl\":\"ijepa\",\"mode\":\"train\",\"variant\":\"%s\",\"mean_context\":%.2f,\"times\":[",
                   name[k], ctx[k]);
            for (int i = 0; i < iters; i++) printf("%s%.6f", i ? "," : "", tv[k * iters + i]);
            printf("]}\n");
        }
        ijepa_model_free(v[1]);
        ijepa_model_free(v[2]);
    } else if (!strcmp(mode, "encode")) {
        float *pooled = malloc((size_t)batch * cfg.embed_dim * sizeof(float));
        for (int i = 0; i < 2; i++) if (ijepa_encode(m, img, batch, IJEPA_TARGET_ENCODER, NULL, pooled)) die("encode");
        for (int i = 0; i < iters; i++) {
            double t0 = now();
            if (ijepa_encode(m, img, batch, IJEPA_TARGET_ENCODER, NULL, pooled)) die("encode");
            t[i] = now() - t0;
        }
        print_times("encode", t, iters);
    } else { /* train, allocs */
        FILE *f = fopen(argv[13], "rb");
        if (!f) { perror(argv[13]); return 1; }
        int count = 0;
        if (fread(&count, 4, 1, f) != 1 || count < 1) { fprintf(stderr, "bad mask file\n"); return 1; }
        ijepa_masks *mk = calloc(count, sizeof(ijepa_masks));
        for (int k = 0; k < count; k++) {
            int32_t hdr[4];
            if (fread(hdr, 4, 4, f) != 4) { fprintf(stderr, "bad mask file\n"); return 1; }
            mk[k].batch = batch; mk[k].num_enc = hdr[0]; mk[k].k_enc = hdr[1]; mk[k].num_pred = hdr[2]; mk[k].k_pred = hdr[3];
            size_t ne = (size_t)hdr[0] * batch * hdr[1], np = (size_t)hdr[2] * batch * hdr[3];
            mk[k].enc = malloc(ne * 4); mk[k].pred = malloc(np * 4);
            if (fread(mk[k].enc, 4, ne, f) != ne || fread(mk[k].pred, 4, np, f) != np) { fprintf(stderr, "bad mask file\n"); return 1; }
        }
        fclose(f);
        ijepa_step_stats st;
        if (!strcmp(mode, "allocs")) {
            float *pooled = malloc((size_t)batch * cfg.embed_dim * sizeof(float));
            for (int k = 0; k < count; k++) if (ijepa_train_step(m, img, batch, &mk[k], &st)) die("train_step");
            long c0 = alloc_count, b0 = alloc_bytes;
            for (int k = 0; k < count; k++) if (ijepa_train_step(m, img, batch, &mk[k], &st)) die("train_step");
            long tc = alloc_count - c0, tb = alloc_bytes - b0;
            /* the same with masks sampled by the library (NULL masks) */
            for (int k = 0; k < count; k++) if (ijepa_train_step(m, img, batch, NULL, &st)) die("train_step");
            c0 = alloc_count;
            for (int k = 0; k < count; k++) if (ijepa_train_step(m, img, batch, NULL, &st)) die("train_step");
            long sc = alloc_count - c0;
            for (int i = 0; i < 2; i++) if (ijepa_encode(m, img, batch, IJEPA_TARGET_ENCODER, NULL, pooled)) die("encode");
            c0 = alloc_count; b0 = alloc_bytes;
            for (int i = 0; i < count; i++) if (ijepa_encode(m, img, batch, IJEPA_TARGET_ENCODER, NULL, pooled)) die("encode");
            printf("{\"impl\":\"ijepa\",\"mode\":\"allocs\",\"train_allocs_per_step\":%.2f,\"train_bytes_per_step\":%.1f,"
                   "\"sampled_masks_allocs_per_step\":%.2f,"
                   "\"encode_allocs_per_call\":%.2f,\"encode_bytes_per_call\":%.1f}\n",
                   (double)tc / count, (double)tb / count, (double)sc / count, (double)(alloc_count - c0) / count,
                   (double)(alloc_bytes - b0) / count);
            ijepa_model_free(m);
            return 0;
        }
        for (int i = 0; i < 2; i++) if (ijepa_train_step(m, img, batch, &mk[i % count], &st)) die("train_step");
        for (int i = 0; i < iters; i++) {
            double t0 = now();
            if (ijepa_train_step(m, img, batch, &mk[(i + 2) % count], &st)) die("train_step");
            t[i] = now() - t0;
        }
        print_times("train", t, iters);
    }
    ijepa_model_free(m);
    return 0;
}
