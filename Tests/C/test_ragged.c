/*
 * test_ragged.c — ragged contexts and last-k-layer features through the C ABI, as a C user
 * calls them: the appended config field (and that a struct from the first release's header
 * never turns it on by accident), ijepa_masks_sample_ragged against ijepa_masks_sample (same
 * draws, no cut), a ragged batch against each image run alone (loss = mean, gradients = mean),
 * the model's own ragged sampling, ijepa_encode_layers against ijepa_encode, and a checkpoint
 * round trip of the field.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

enum { B = 3 };

static ijepa_config small_config(void) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = 32; c.patch_size = 4; c.in_chans = 1;
    c.embed_dim = 32; c.depth = 3; c.num_heads = 2;
    c.pred_embed_dim = 16; c.pred_depth = 1;
    c.min_keep = 4; c.num_enc_masks = 2;
    c.warmup_steps = 2; c.total_steps = 20;
    c.seed = 11; c.n_threads = 2;
    return c;
}

static float *make_images(int batch, const ijepa_config *c) {
    size_t n = (size_t)batch * c->in_chans * c->image_size * c->image_size;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)sin(0.11 * (double)i + 0.3 * (double)(i % 7)) * 1.3f;
    return x;
}

static int test_config_field(void) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    CHECK(c.struct_size == sizeof c, "struct_size %u vs %zu", c.struct_size, sizeof c);
    CHECK(c.ragged_context == 0, "ragged_context is off by default (the official behaviour)");
    /* a struct filled by a program built against the first release's header: its struct_size
     * stops at the old tail padding, so whatever the padding holds, the field is not read */
    ijepa_config old = small_config();
    old.struct_size = (uint32_t)offsetof(ijepa_config, ragged_context);
    old.ragged_context = 1;
    ijepa_model *m = NULL;
    REQUIRE_OK(ijepa_model_create(&old, &m));
    ijepa_config got = {.struct_size = sizeof got};
    CHECK_OK(ijepa_model_get_config(m, &got));
    CHECK(got.ragged_context == 0, "a first-release struct must not enable ragged_context");
    ijepa_model_free(m);
    ijepa_config on = small_config();
    on.ragged_context = 1;
    REQUIRE_OK(ijepa_model_create(&on, &m));
    CHECK_OK(ijepa_model_get_config(m, &got));
    CHECK(got.ragged_context == 1, "ragged_context round trip");
    /* checkpoints keep it */
    char path[] = "/tmp/ijepa_ragged_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    CHECK_OK(ijepa_model_save(m, path, IJEPA_SAVE_WEIGHTS));
    ijepa_model *l = NULL;
    CHECK_OK(ijepa_model_load(path, &l));
    if (l) {
        CHECK_OK(ijepa_model_get_config(l, &got));
        CHECK(got.ragged_context == 1, "ragged_context after save/load");
        ijepa_model_free(l);
    }
    unlink(path);
    ijepa_model_free(m);
    return 0;
}

static int test_sampler(void) {
    ijepa_config c = small_config();
    ijepa_model *a = NULL, *r = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &a));
    REQUIRE_OK(ijepa_model_create(&c, &r));
    for (int it = 0; it < 4; it++) {
        ijepa_masks u;
        ijepa_ragged_masks g;
        REQUIRE_OK(ijepa_masks_sample(a, 8, &u));
        REQUIRE_OK(ijepa_masks_sample_ragged(r, 8, &g));
        CHECK(g.batch == 8 && g.num_enc == u.num_enc && g.num_pred == u.num_pred && g.k_pred == u.k_pred, "shapes");
        CHECK(memcmp(g.pred, u.pred, sizeof(int32_t) * u.num_pred * 8 * u.k_pred) == 0, "same target blocks");
        int32_t lmin = INT32_MAX, lmax = 0;
        for (int row = 0; row < g.num_enc * 8; row++) {
            int32_t L = g.enc_len[row];
            lmin = L < lmin ? L : lmin;
            lmax = L > lmax ? L : lmax;
            CHECK(memcmp(g.enc + (size_t)row * g.k_enc_max, u.enc + (size_t)row * u.k_enc, sizeof(int32_t) * u.k_enc) == 0,
                  "the official context is the ragged one's prefix (row %d)", row);
            for (int i = L; i < g.k_enc_max; i++) CHECK(g.enc[(size_t)row * g.k_enc_max + i] == -1, "padding -1");
        }
        CHECK(lmin == u.k_enc, "shortest ragged context %d = official k_enc %d", lmin, u.k_enc);
        CHECK(lmax == g.k_enc_max, "k_enc_max %d is the longest %d", g.k_enc_max, lmax);
        ijepa_masks_free(&u);
        ijepa_ragged_masks_free(&g);
        CHECK(g.enc == NULL && g.enc_len == NULL && g.pred == NULL, "free zeroes the struct");
    }
    ijepa_ragged_masks_free(NULL);
    ijepa_model_free(a);
    ijepa_model_free(r);
    return 0;
}

/* Image b's part of ragged masks, as a batch of one. Arrays point into `store`. */
static ijepa_ragged_masks one_image(const ijepa_ragged_masks *g, int b, int32_t *store) {
    ijepa_ragged_masks o = *g;
    o.batch = 1;
    int32_t *enc = store, *len = enc + g->num_enc * g->k_enc_max, *pred = len + g->num_enc;
    for (int j = 0; j < g->num_enc; j++) {
        memcpy(enc + j * g->k_enc_max, g->enc + ((size_t)j * g->batch + b) * g->k_enc_max, sizeof(int32_t) * g->k_enc_max);
        len[j] = g->enc_len[j * g->batch + b];
    }
    for (int p = 0; p < g->num_pred; p++)
        memcpy(pred + p * g->k_pred, g->pred + ((size_t)p * g->batch + b) * g->k_pred, sizeof(int32_t) * g->k_pred);
    o.enc = enc; o.enc_len = len; o.pred = pred;
    return o;
}

static int test_each_image_alone(void) {
    ijepa_config c = small_config();
    ijepa_model *m = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &m));
    float *img = make_images(B, &c);
    size_t per = (size_t)c.in_chans * c.image_size * c.image_size, n = 0;
    ijepa_ragged_masks g;
    REQUIRE_OK(ijepa_masks_sample_ragged(m, B, &g));
    int differ = 0;
    for (int i = 1; i < g.num_enc * B; i++) differ |= g.enc_len[i] != g.enc_len[0];
    CHECK(differ, "the sampled contexts have different lengths (otherwise this test proves little)");
    float loss = 0;
    REQUIRE_OK(ijepa_forward_backward_ragged(m, img, B, &g, &loss));
    float *grads = ijepa_model_buffer(m, IJEPA_BUF_GRADS, &n);
    REQUIRE(grads != NULL, "grads");
    float *batch_grads = malloc(n * sizeof(float)), *mean = calloc(n, sizeof(float));
    memcpy(batch_grads, grads, n * sizeof(float));
    double mean_loss = 0;
    int32_t *store = malloc(sizeof(int32_t) * (size_t)(g.num_enc * (g.k_enc_max + 1) + g.num_pred * g.k_pred));
    for (int b = 0; b < B; b++) {
        ijepa_ragged_masks o = one_image(&g, b, store);
        float l = 0;
        REQUIRE_OK(ijepa_forward_backward_ragged(m, img + b * per, 1, &o, &l));
        mean_loss += l / (double)B;
        for (size_t i = 0; i < n; i++) mean[i] += grads[i] / (float)B;
    }
    CHECK(fabs(loss - mean_loss) <= 1e-5 * fabs(mean_loss), "loss %.9g vs mean of single losses %.9g", loss, mean_loss);
    float scale = 0;
    for (size_t i = 0; i < n; i++) scale = fabsf(mean[i]) > scale ? fabsf(mean[i]) : scale;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(batch_grads[i] - mean[i]) <= 1e-6f * scale + 1e-4f * fabsf(mean[i]))) bad++;
    CHECK(bad == 0, "%zu of %zu gradient entries differ from the mean of the single-image gradients", bad, n);
    /* a full step with these masks and one with masks sampled by the model */
    ijepa_step_stats s;
    CHECK_OK(ijepa_train_step_ragged(m, img, B, &g, &s));
    CHECK(s.step == 1 && isfinite(s.loss), "ragged train step %lld loss %g", (long long)s.step, s.loss);
    CHECK_OK(ijepa_train_step_ragged(m, img, B, NULL, &s));
    CHECK(s.step == 2 && isfinite(s.loss), "ragged train step with sampled masks");
    free(store); free(batch_grads); free(mean); free(img);
    ijepa_ragged_masks_free(&g);
    ijepa_model_free(m);

    /* ragged_context = 1: ijepa_train_step(NULL masks) samples ragged masks */
    c.ragged_context = 1;
    ijepa_model *a = NULL, *r = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &a));
    c.ragged_context = 0;
    REQUIRE_OK(ijepa_model_create(&c, &r));
    img = make_images(B, &c);
    ijepa_step_stats sa, sr;
    CHECK_OK(ijepa_train_step(a, img, B, NULL, &sa));
    CHECK_OK(ijepa_train_step_ragged(r, img, B, NULL, &sr));
    CHECK(sa.loss == sr.loss, "config ragged_context %.9g = explicit ragged sampling %.9g", sa.loss, sr.loss);
    free(img);
    ijepa_model_free(a);
    ijepa_model_free(r);
    return 0;
}

static int test_encode_layers(void) {
    ijepa_config c = small_config();
    ijepa_model *m = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &m));
    float *img = make_images(B, &c);
    for (int s = 0; s < 3; s++) CHECK_OK(ijepa_train_step(m, img, B, NULL, NULL));   /* target != init */
    int D = c.embed_dim, K = c.depth;
    float *pooled = malloc(sizeof(float) * B * D), *one = malloc(sizeof(float) * B * D);
    float *all = malloc(sizeof(float) * (B * K * D + 1));
    CHECK_OK(ijepa_encode(m, img, B, IJEPA_TARGET_ENCODER, NULL, pooled));
    CHECK_OK(ijepa_encode_layers(m, img, B, IJEPA_TARGET_ENCODER, 1, one));
    CHECK(memcmp(one, pooled, sizeof(float) * B * D) == 0, "last_k 1 = ijepa_encode's pooled output");
    all[B * K * D] = 12345.0f;
    CHECK_OK(ijepa_encode_layers(m, img, B, IJEPA_TARGET_ENCODER, K, all));
    CHECK(all[B * K * D] == 12345.0f, "writes exactly batch*last_k*D floats");
    for (int b = 0; b < B; b++)
        CHECK(memcmp(all + ((size_t)b * K + K - 1) * D, pooled + (size_t)b * D, sizeof(float) * D) == 0,
              "the last block's slice of image %d = ijepa_encode", b);
    int distinct = memcmp(all, all + D, sizeof(float) * D) != 0;
    CHECK(distinct, "blocks give different features");
    free(pooled); free(one); free(all); free(img);
    ijepa_model_free(m);
    return 0;
}

int main(void) {
    (void)test_config_field();
    (void)test_sampler();
    (void)test_each_image_alone();
    (void)test_encode_layers();
    return check_summary("test_ragged");
}
