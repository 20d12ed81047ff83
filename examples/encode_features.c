/*
 * encode_features.c — extract features with the target (EMA) and the context encoder.
 *
 *   run:  ./build/encode_features [train_steps=5]
 *
 * ijepa_encode runs an encoder on FULL images (no masking) and returns the tokens after the
 * final norm, [B, N, D], and/or their mean over the N patches, [B, D] ("pooled", the usual
 * input of a linear probe). The target encoder is the one the paper evaluates. Right after
 * creation both encoders hold the same weights; training moves the context encoder by AdamW
 * and the target encoder only by the EMA, so they drift apart.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <ijepa.h>

static void check(int status, const char *what) {
    if (status != IJEPA_OK) {
        fprintf(stderr, "%s failed: %s (%d): %s\n", what, ijepa_status_string(status), status, ijepa_last_error());
        exit(1);
    }
}

/* Deterministic smooth test images, already normalized-ish (values in about [-1.5, 1.5]). */
static void make_images(float *x, int batch, int chans, int size, int seed) {
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < chans; c++)
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++)
                    x[(((size_t)b * chans + c) * size + i) * size + j] =
                        (float)(sin(0.3 * (b + 1) * i + 0.7 * c + seed) + 0.5 * cos(0.2 * (b + 2) * j));
}

/* Encodes with one encoder, prints shapes and norms, and checks pooled == mean over N. */
static void describe(ijepa_model *m, const float *images, int B, int which, float *tokens, float *pooled) {
    const int N = ijepa_model_num_patches(m), D = ijepa_model_embed_dim(m);
    const char *name = which == IJEPA_TARGET_ENCODER ? "target encoder" : "context encoder";
    check(ijepa_encode(m, images, B, which, tokens, pooled), "ijepa_encode");
    printf("%s: tokens [B=%d, N=%d, D=%d], pooled [B=%d, D=%d]\n", name, B, N, D, B, D);
    double worst = 0;
    for (int b = 0; b < B; b++) {
        double norm = 0;
        for (int d = 0; d < D; d++) {
            double mean = 0; /* the token mean over the N patches of image b, feature d */
            for (int n = 0; n < N; n++) mean += tokens[((size_t)b * N + n) * D + d];
            mean /= N;
            double p = pooled[(size_t)b * D + d];
            if (fabs(mean - p) > worst) worst = fabs(mean - p);
            norm += p * p;
        }
        printf("  image %d: |pooled|_2 = %.5f\n", b, sqrt(norm));
    }
    printf("  max |mean over N of tokens - pooled| = %.2e  (pooled is that mean)\n", worst);
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    return ab / (sqrt(aa * bb) + 1e-30);
}

int main(int argc, char **argv) {
    int train_steps = argc > 1 ? atoi(argv[1]) : 5;
    if (train_steps < 0) train_steps = 0;

    ijepa_config cfg = {.struct_size = sizeof cfg};
    ijepa_config_default(&cfg);
    cfg.image_size = 32; cfg.patch_size = 4; cfg.in_chans = 3;
    cfg.embed_dim = 64; cfg.depth = 2; cfg.num_heads = 4;
    cfg.pred_embed_dim = 32; cfg.pred_depth = 2;
    cfg.min_keep = 4;
    cfg.warmup_steps = 1; cfg.total_steps = 100;
    cfg.ema_start = 0.9f; /* a fast EMA so that a few steps show the target encoder lagging */

    ijepa_model *m = NULL;
    check(ijepa_model_create(&cfg, &m), "ijepa_model_create");
    const int B = 4, N = ijepa_model_num_patches(m), D = ijepa_model_embed_dim(m);
    float *images = malloc(sizeof(float) * B * cfg.in_chans * cfg.image_size * cfg.image_size);
    float *tokens = malloc(sizeof(float) * B * N * D);
    float *pooled_t = malloc(sizeof(float) * B * D), *pooled_c = malloc(sizeof(float) * B * D);
    if (!images || !tokens || !pooled_t || !pooled_c) { fprintf(stderr, "out of memory\n"); return 1; }
    make_images(images, B, cfg.in_chans, cfg.image_size, 0);

    printf("== right after ijepa_model_create\n");
    describe(m, images, B, IJEPA_TARGET_ENCODER, tokens, pooled_t);
    describe(m, images, B, IJEPA_CONTEXT_ENCODER, tokens, pooled_c);
    printf("  cosine(target, context) of image 0's pooled features: %.6f (same weights)\n",
           cosine(pooled_t, pooled_c, D));

    if (train_steps > 0) {
        for (int s = 0; s < train_steps; s++) {
            make_images(images, B, cfg.in_chans, cfg.image_size, s + 1);
            check(ijepa_train_step(m, images, B, NULL, NULL), "ijepa_train_step");
        }
        make_images(images, B, cfg.in_chans, cfg.image_size, 0);
        printf("\n== after %d training steps\n", train_steps);
        describe(m, images, B, IJEPA_TARGET_ENCODER, tokens, pooled_t);
        describe(m, images, B, IJEPA_CONTEXT_ENCODER, tokens, pooled_c);
        printf("  cosine(target, context) of image 0's pooled features: %.6f (the EMA lags behind)\n",
               cosine(pooled_t, pooled_c, D));
    }
    /* pooled only: pass NULL for tokens when you only need the image-level features */
    check(ijepa_encode(m, images, B, IJEPA_TARGET_ENCODER, NULL, pooled_t), "ijepa_encode(pooled only)");

    free(images); free(tokens); free(pooled_t); free(pooled_c);
    ijepa_model_free(m);
    return 0;
}
