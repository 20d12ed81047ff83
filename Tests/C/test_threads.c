/*
 * test_threads.c — distinct models are independent: several models trained and encoded in
 * parallel pthreads end bit-identical (all five buffers, step stats, encoder outputs, masks) to
 * the same models run one after the other. n_threads is 1 per model, so every result is
 * deterministic; OpenBLAS's process-wide thread count is then 1 for every call.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { MODELS = 3, STEPS = 5, BATCH = 3, ROUNDS = 3 };

typedef struct {
    ijepa_config cfg;
    /* results */
    int status;                 /* first failing status, IJEPA_OK if none */
    char error[256];
    float *buf[5];
    size_t n[5];
    ijepa_step_stats stats[STEPS];
    float *tokens, *pooled;
    size_t n_tokens, n_pooled;
    int32_t *mask_enc, *mask_pred;
    size_t n_mask_enc, n_mask_pred;
} job;

static ijepa_config config_for(int i) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = 32; c.patch_size = 4; c.in_chans = 3;
    c.embed_dim = 64; c.depth = 2; c.num_heads = 4;
    c.pred_embed_dim = 32; c.pred_depth = 2;
    c.min_keep = 4;
    c.warmup_steps = 2; c.total_steps = 20;
    c.n_threads = 1;
    c.seed = 100 + (uint64_t)i;
    if (i == 1) { c.image_size = 28; c.in_chans = 1; c.embed_dim = 48; c.num_heads = 3; c.pred_num_heads = 4; }
    if (i == 2) { c.num_enc_masks = 2; c.num_pred_masks = 3; c.enc_mask_scale[0] = 0.6f; c.enc_mask_scale[1] = 0.8f; }
    return c;
}

static float *images_for(const ijepa_config *c, int step) {
    size_t hw = (size_t)c->image_size * c->image_size, n = (size_t)BATCH * c->in_chans * hw;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        size_t p = i % hw;
        double u = (double)(p % (size_t)c->image_size), v = (double)(p / (size_t)c->image_size);
        x[i] = (float)(sin(0.3 * u * (1 + step % 3) + 0.1 * (double)(i / hw)) * cos(0.2 * v + step));
    }
    return x;
}

static void fail(job *j, int st, const char *what) {
    if (j->status == IJEPA_OK) {
        j->status = st;
        snprintf(j->error, sizeof j->error, "%s: %s", what, ijepa_last_error());
    }
}

/* Everything one model does: train, sample masks, encode; results copied into the job. */
static void *run_job(void *arg) {
    job *j = arg;
    ijepa_model *m = NULL;
    ijepa_config c = j->cfg;
    int st = ijepa_model_create(&c, &m);
    if (st != IJEPA_OK) { fail(j, st, "create"); return NULL; }
    for (int s = 0; s < STEPS; s++) {
        float *x = images_for(&c, s);
        if (s % 2 == 0) {
            st = ijepa_train_step(m, x, BATCH, NULL, &j->stats[s]);
            if (st != IJEPA_OK) fail(j, st, "train_step");
        } else { /* the split step, with masks sampled explicitly */
            ijepa_masks k;
            st = ijepa_masks_sample(m, BATCH, &k);
            if (st != IJEPA_OK) { fail(j, st, "masks_sample"); free(x); break; }
            st = ijepa_forward_backward(m, x, BATCH, &k, NULL);
            if (st != IJEPA_OK) fail(j, st, "forward_backward");
            else if ((st = ijepa_optimizer_step(m, &j->stats[s])) != IJEPA_OK) fail(j, st, "optimizer_step");
            ijepa_masks_free(&k);
        }
        free(x);
    }
    ijepa_masks k;
    st = ijepa_masks_sample(m, BATCH, &k);
    if (st == IJEPA_OK) {
        j->n_mask_enc = (size_t)k.num_enc * k.batch * k.k_enc;
        j->n_mask_pred = (size_t)k.num_pred * k.batch * k.k_pred;
        j->mask_enc = malloc(j->n_mask_enc * sizeof(int32_t));
        j->mask_pred = malloc(j->n_mask_pred * sizeof(int32_t));
        memcpy(j->mask_enc, k.enc, j->n_mask_enc * sizeof(int32_t));
        memcpy(j->mask_pred, k.pred, j->n_mask_pred * sizeof(int32_t));
        ijepa_masks_free(&k);
    } else {
        fail(j, st, "masks_sample");
    }
    size_t N = (size_t)ijepa_model_num_patches(m), D = (size_t)ijepa_model_embed_dim(m);
    j->n_tokens = BATCH * N * D;
    j->n_pooled = BATCH * D;
    j->tokens = malloc(2 * j->n_tokens * sizeof(float));
    j->pooled = malloc(2 * j->n_pooled * sizeof(float));
    float *x = images_for(&c, 99);
    for (int e = 0; e < 2; e++) {
        st = ijepa_encode(m, x, BATCH, e, j->tokens + e * j->n_tokens, j->pooled + e * j->n_pooled);
        if (st != IJEPA_OK) fail(j, st, "encode");
    }
    free(x);
    for (int w = 0; w < 5; w++) {
        const float *p = ijepa_model_buffer(m, w, &j->n[w]);
        if (!p) { fail(j, IJEPA_ERR_INTERNAL, "model_buffer"); continue; }
        j->buf[w] = malloc(j->n[w] * sizeof(float));
        memcpy(j->buf[w], p, j->n[w] * sizeof(float));
    }
    ijepa_model_free(m);
    return NULL;
}

static void free_job(job *j) {
    for (int w = 0; w < 5; w++) free(j->buf[w]);
    free(j->tokens); free(j->pooled); free(j->mask_enc); free(j->mask_pred);
    memset(j, 0, sizeof *j);
}

static void compare_jobs(const job *a, const job *b, int model, int round) {
    static const char *names[5] = {"PARAMS", "GRADS", "TARGET", "ADAM_M", "ADAM_V"};
    CHECK(a->status == IJEPA_OK, "model %d sequential: %s", model, a->error);
    CHECK(b->status == IJEPA_OK, "model %d parallel round %d: %s", model, round, b->error);
    if (a->status != IJEPA_OK || b->status != IJEPA_OK) return;
    for (int w = 0; w < 5; w++)
        CHECK(a->n[w] == b->n[w] && memcmp(a->buf[w], b->buf[w], a->n[w] * sizeof(float)) == 0,
              "model %d round %d: buffer %s differs between the sequential and the parallel run", model, round, names[w]);
    for (int s = 0; s < STEPS; s++) {
        const ijepa_step_stats *x = &a->stats[s], *y = &b->stats[s];
        CHECK(x->step == y->step && x->loss == y->loss && x->lr == y->lr && x->weight_decay == y->weight_decay &&
              x->ema_momentum == y->ema_momentum && x->grad_norm == y->grad_norm,
              "model %d round %d: step %d stats differ (loss %.9g vs %.9g)", model, round, s, x->loss, y->loss);
    }
    CHECK(a->n_tokens == b->n_tokens && memcmp(a->tokens, b->tokens, 2 * a->n_tokens * sizeof(float)) == 0,
          "model %d round %d: encoder tokens differ", model, round);
    CHECK(memcmp(a->pooled, b->pooled, 2 * a->n_pooled * sizeof(float)) == 0, "model %d round %d: pooled differs",
          model, round);
    CHECK(a->n_mask_enc == b->n_mask_enc && a->n_mask_pred == b->n_mask_pred &&
          memcmp(a->mask_enc, b->mask_enc, a->n_mask_enc * sizeof(int32_t)) == 0 &&
          memcmp(a->mask_pred, b->mask_pred, a->n_mask_pred * sizeof(int32_t)) == 0,
          "model %d round %d: sampled masks differ", model, round);
    CHECK(a->stats[STEPS - 1].step == STEPS, "model %d: step counter %lld", model, (long long)a->stats[STEPS - 1].step);
}

/* The log callback may be called from any thread: count messages atomically. */
static _Atomic long log_messages = 0;
static void on_log(int level, const char *message, void *user) {
    (void)level; (void)user;
    if (message && message[0]) log_messages++;
}

int main(void) {
    ijepa_log_set(on_log, NULL);
    job seq[MODELS];
    memset(seq, 0, sizeof seq);
    for (int i = 0; i < MODELS; i++) {
        seq[i].cfg = config_for(i);
        seq[i].status = IJEPA_OK;
        run_job(&seq[i]);
    }
    /* the models really are different (distinct configs / seeds) */
    CHECK(seq[0].n[0] != seq[1].n[0] || memcmp(seq[0].buf[0], seq[1].buf[0], seq[0].n[0] * 4) != 0, "models 0 and 1 equal");
    for (int round = 0; round < ROUNDS; round++) {
        job par[MODELS];
        memset(par, 0, sizeof par);
        pthread_t th[MODELS];
        for (int i = 0; i < MODELS; i++) {
            par[i].cfg = config_for(i);
            par[i].status = IJEPA_OK;
            int rc = pthread_create(&th[i], NULL, run_job, &par[i]);
            REQUIRE(rc == 0, "pthread_create: %d", rc);
        }
        for (int i = 0; i < MODELS; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < MODELS; i++) {
            compare_jobs(&seq[i], &par[i], i, round);
            free_job(&par[i]);
        }
    }
    /* the same model twice at once (two handles from one config) */
    {
        job twin[2];
        memset(twin, 0, sizeof twin);
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            twin[i].cfg = config_for(0);
            pthread_create(&th[i], NULL, run_job, &twin[i]);
        }
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        compare_jobs(&seq[0], &twin[0], 0, 100);
        compare_jobs(&seq[0], &twin[1], 0, 101);
        for (int i = 0; i < 2; i++) free_job(&twin[i]);
    }
    for (int i = 0; i < MODELS; i++) free_job(&seq[i]);
    ijepa_log_set(NULL, NULL);
    printf("test_threads: %ld library log messages (mask sampler relaxations) seen from %d threads\n", (long)log_messages, MODELS);
    return check_summary("test_threads");
}
