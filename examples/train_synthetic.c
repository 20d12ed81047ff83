/*
 * train_synthetic.c — train a small I-JEPA model on synthetic images with libijepa.
 *
 *   build:  make -C examples STAGE=/path/to/install      (or: cc -std=c11 train_synthetic.c
 *           $(pkg-config --cflags --libs ijepa) -lm)
 *   run:    ./build/train_synthetic [steps=20] [batch=8]
 *
 * What it shows: configuring a model starting from ijepa_config_default, feeding float32
 * NCHW images, letting the library sample the multi-block masks (masks = NULL), and reading
 * the per-step statistics. Every call's status is checked; on failure the program prints
 * ijepa_last_error(), which names the offending argument.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <ijepa.h>

/* Prints the failing call, the status and the library's message, then exits. */
static void check(int status, const char *what) {
    if (status != IJEPA_OK) {
        fprintf(stderr, "%s failed: %s (%d): %s\n", what, ijepa_status_string(status), status, ijepa_last_error());
        exit(1);
    }
}

/* A tiny deterministic PRNG (xorshift32) for the synthetic data. */
static uint32_t rng_state = 12345u;
static float urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)(rng_state >> 8) / 16777216.0f;
}

/* Synthetic "natural-ish" images with structure a predictor can learn: per image an oriented
 * sinusoidal grating (random angle, frequency, phase; a different colour mix per channel) plus
 * two Gaussian blobs. Then normalized per channel over the batch (mean 0, std 1), as the
 * library expects normalized input. Layout: [batch][chans][size][size]. */
static void make_batch(float *x, int batch, int chans, int size) {
    const float two_pi = 6.28318530718f;
    for (int b = 0; b < batch; b++) {
        float angle = urand() * two_pi, freq = 1.0f + 3.0f * urand(), phase = urand() * two_pi;
        float bx[2], by[2], br[2];
        for (int k = 0; k < 2; k++) { bx[k] = urand() * size; by[k] = urand() * size; br[k] = 2.0f + 4.0f * urand(); }
        for (int c = 0; c < chans; c++) {
            float mix = 0.5f + urand(); /* channel-dependent contrast */
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++) {
                    float u = (j * cosf(angle) + i * sinf(angle)) / size;
                    float v = mix * sinf(two_pi * freq * u + phase);
                    for (int k = 0; k < 2; k++) {
                        float dx = j - bx[k], dy = i - by[k];
                        v += (c == k % chans ? 1.5f : 0.5f) * expf(-(dx * dx + dy * dy) / (2 * br[k] * br[k]));
                    }
                    x[(((size_t)b * chans + c) * size + i) * size + j] = v;
                }
        }
    }
    for (int c = 0; c < chans; c++) { /* normalize each channel over the batch */
        double sum = 0, sq = 0;
        size_t n = (size_t)batch * size * size;
        for (int b = 0; b < batch; b++)
            for (int p = 0; p < size * size; p++) {
                double v = x[((size_t)b * chans + c) * size * size + p];
                sum += v;
                sq += v * v;
            }
        double mean = sum / n, sd = sqrt(sq / n - mean * mean) + 1e-6;
        for (int b = 0; b < batch; b++)
            for (int p = 0; p < size * size; p++) {
                float *v = &x[((size_t)b * chans + c) * size * size + p];
                *v = (float)((*v - mean) / sd);
            }
    }
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    int batch = argc > 2 ? atoi(argv[2]) : 8;
    if (steps < 1 || batch < 1) {
        fprintf(stderr, "usage: %s [steps >= 1] [batch >= 1]\n", argv[0]);
        return 2;
    }
    printf("libijepa %s (ABI %u)\n", ijepa_version(), ijepa_abi_version());

    /* Start from the official recipe and shrink the model: 32x32 images, 4x4 patches (an 8x8
     * grid), a 2-block encoder of width 64 with 4 heads, a 2-block predictor of width 32.
     * min_keep must be smaller than the smallest block the sampler can draw on an 8x8 grid. */
    ijepa_config cfg = {.struct_size = sizeof cfg};
    ijepa_config_default(&cfg);
    cfg.image_size = 32;
    cfg.patch_size = 4;
    cfg.in_chans = 3;
    cfg.embed_dim = 64;
    cfg.depth = 2;
    cfg.num_heads = 4;
    cfg.pred_embed_dim = 32;
    cfg.pred_depth = 2;
    cfg.min_keep = 4;
    /* The schedules (lr warmup + cosine, wd cosine, EMA linear) span the whole run. */
    cfg.total_steps = steps;
    cfg.warmup_steps = steps / 10 > 0 ? steps / 10 : 1;
    cfg.seed = 0;
    cfg.n_threads = 0; /* all cores */

    ijepa_model *model = NULL;
    check(ijepa_model_create(&cfg, &model), "ijepa_model_create");
    size_t n_params = 0;
    if (!ijepa_model_buffer(model, IJEPA_BUF_PARAMS, &n_params)) check(IJEPA_ERR_INTERNAL, "ijepa_model_buffer");
    printf("model: %d patches, width %d, %zu trainable floats\n", ijepa_model_num_patches(model),
           ijepa_model_embed_dim(model), n_params);

    size_t n_img = (size_t)batch * cfg.in_chans * cfg.image_size * cfg.image_size;
    float *images = malloc(n_img * sizeof *images);
    if (!images) { fprintf(stderr, "out of memory\n"); return 1; }

    printf("%5s %10s %10s %8s %8s %10s %9s\n", "step", "loss", "lr", "wd", "ema", "grad_norm", "img/s");
    for (int s = 0; s < steps; s++) {
        make_batch(images, batch, cfg.in_chans, cfg.image_size);
        ijepa_step_stats st;
        double t0 = now_seconds();
        /* masks = NULL: the library samples them from its own seeded multi-block collator */
        check(ijepa_train_step(model, images, batch, NULL, &st), "ijepa_train_step");
        double dt = now_seconds() - t0;
        printf("%5lld %10.6f %10.3e %8.4f %8.5f %10.4f %9.1f\n", (long long)st.step, st.loss, st.lr, st.weight_decay,
               st.ema_momentum, st.grad_norm, batch / dt);
    }

    free(images);
    ijepa_model_free(model);
    return 0;
}
