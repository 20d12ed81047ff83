/*
 * fmnist_pretrain.c — the Fashion-MNIST pretraining loop of `make demo` in plain C: reads the
 * IDX files itself (gzip through zlib), augments with the library's RandomResizedCrop, trains
 * the fmnist-tiny recipe with ijepa_train_step, and saves a checkpoint that the Python probe
 * (examples/fmnist.py) or any PyTorch code can read.
 *
 *   ./fmnist_pretrain [steps=100] [out=fmnist_c.safetensors] [dir=/usr/share/datasets/fashion-mnist]
 *
 * Build: cc -std=c11 -O2 fmnist_pretrain.c $(pkg-config --cflags --libs ijepa zlib) -lm
 */
#define _POSIX_C_SOURCE 200809L
#include <ijepa.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define BATCH 256
static const float MEAN = 0.2860f, STD = 0.3530f;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Reads a (gzipped) IDX file of unsigned bytes; returns the data and its dims (n, rows, cols). */
static uint8_t *read_idx(const char *path, int *n, int *rows, int *cols) {
    gzFile f = gzopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s (Debian: apt-get install dataset-fashion-mnist)\n", path); return NULL; }
    uint8_t hdr[4];
    if (gzread(f, hdr, 4) != 4 || hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08) {
        fprintf(stderr, "%s: not an IDX file of unsigned bytes\n", path); gzclose(f); return NULL;
    }
    int ndim = hdr[3], dims[3] = {1, 1, 1};
    if (ndim < 1 || ndim > 3) { fprintf(stderr, "%s: %d dimensions\n", path, ndim); gzclose(f); return NULL; }
    for (int d = 0; d < ndim; d++) {
        uint8_t b[4];
        if (gzread(f, b, 4) != 4) { fprintf(stderr, "%s: truncated header\n", path); gzclose(f); return NULL; }
        dims[d] = (int)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    }
    size_t total = (size_t)dims[0] * dims[1] * dims[2];
    uint8_t *data = malloc(total ? total : 1);
    if (!data || gzread(f, data, (unsigned)total) != (int)total) {
        fprintf(stderr, "%s: truncated data\n", path); free(data); gzclose(f); return NULL;
    }
    gzclose(f);
    *n = dims[0]; *rows = dims[1]; *cols = dims[2];
    return data;
}

#define CHECK(call) do { int st_ = (call); if (st_ != IJEPA_OK) { \
    fprintf(stderr, "%s failed: %s (%s)\n", #call, ijepa_status_string(st_), ijepa_last_error()); exit(1); } } while (0)

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 100;
    const char *out = argc > 2 ? argv[2] : "fmnist_c.safetensors";
    const char *dir = argc > 3 ? argv[3] : "/usr/share/datasets/fashion-mnist";
    if (steps < 1) { fprintf(stderr, "steps must be >= 1\n"); return 2; }
    char path[4096];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    int n, h, w;
    uint8_t *raw = read_idx(path, &n, &h, &w);
    if (!raw) return 1;
    printf("%d training images of %dx%d\n", n, h, w);

    /* [0,1] floats, NCHW with one channel */
    float *train = malloc(sizeof(float) * (size_t)n * h * w);
    for (size_t i = 0; i < (size_t)n * h * w; i++) train[i] = raw[i] / 255.0f;
    free(raw);

    ijepa_config cfg = {.struct_size = sizeof cfg};
    CHECK(ijepa_config_preset("fmnist_tiny", &cfg));
    cfg.total_steps = steps;
    cfg.warmup_steps = steps / 10 > 0 ? steps / 10 : 1;
    ijepa_model *m;
    CHECK(ijepa_model_create(&cfg, &m));

    float *batch = malloc(sizeof(float) * BATCH * h * w);
    float *crops = malloc(sizeof(float) * BATCH * 32 * 32);
    int *order = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) order[i] = i;
    uint64_t crop_state = 1, shuffle = 0x9E3779B97F4A7C15ull;
    int per_epoch = n / BATCH;
    double t0 = now();
    for (int step = 0; step < steps; step++) {
        int k = step % per_epoch;
        if (k == 0) {   /* reshuffle each epoch (Fisher-Yates with xorshift) */
            for (int i = n - 1; i > 0; i--) {
                shuffle ^= shuffle << 13; shuffle ^= shuffle >> 7; shuffle ^= shuffle << 17;
                int j = (int)(shuffle % (uint64_t)(i + 1)), t = order[i];
                order[i] = order[j]; order[j] = t;
            }
        }
        for (int b = 0; b < BATCH; b++)
            memcpy(batch + (size_t)b * h * w, train + (size_t)order[k * BATCH + b] * h * w, sizeof(float) * h * w);
        CHECK(ijepa_random_resized_crop(batch, BATCH, 1, h, w, 32, 0.3f, 1.0f, 3.0f / 4, 4.0f / 3, &crop_state, crops));
        for (size_t i = 0; i < (size_t)BATCH * 32 * 32; i++) crops[i] = (crops[i] - MEAN) / STD;
        ijepa_step_stats st;
        CHECK(ijepa_train_step(m, crops, BATCH, NULL, &st));
        double el = now() - t0;
        printf("\rstep %d/%d  loss %.4f  lr %.2e  wd %.3f  ema %.5f  %.1f img/s   ", step + 1, steps, st.loss, st.lr,
               st.weight_decay, st.ema_momentum, (step + 1) * BATCH / el);
        fflush(stdout);
    }
    printf("\n");
    CHECK(ijepa_model_save(m, out, IJEPA_SAVE_TRAINING_STATE));
    printf("saved %s (probe it with examples/fmnist.py, or load it with safetensors in PyTorch)\n", out);
    ijepa_model_free(m);
    free(train); free(batch); free(crops); free(order);
    return 0;
}
