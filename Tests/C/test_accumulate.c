/*
 * test_accumulate.c — gradient accumulation through the C ABI, as a C user calls it:
 *   - ijepa_train_step_accumulate (uniform) and _ragged: one step of B images run as micro-batches
 *     of K equals one ijepa_train_step of B (sampled masks: one draw for all B; and caller masks),
 *     2 steps, for K = 1, 3 (3 + 3 + 1) and K >= B: losses within 1e-5 relative, parameters,
 *     target encoder and AdamW moments within 1e-5 of each buffer's largest magnitude;
 *   - the same by hand: ijepa_forward_backward_accumulate[_ragged] on each micro-batch's rows of
 *     one draw, weights b/B, then ijepa_optimizer_step;
 *   - the rules: accumulate without a pending forward_backward is IJEPA_ERR_STATE, a weight <= 0,
 *     NaN or Inf and micro_batch <= 0 are IJEPA_ERR_INVALID_ARGUMENT, a NaN image in a later
 *     micro-batch is IJEPA_ERR_NUMERIC with the model, step counter and mask stream unchanged.
 * Prints the largest differences it measured.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { B = 7, NBUF = 4 };
static const int BUFS[NBUF] = {IJEPA_BUF_PARAMS, IJEPA_BUF_TARGET, IJEPA_BUF_ADAM_M, IJEPA_BUF_ADAM_V};
static const char *BUF_NAMES[NBUF] = {"params", "target", "adam_m", "adam_v"};

static ijepa_config small_config(int ragged) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = 32; c.patch_size = 4; c.in_chans = 1;
    c.embed_dim = 32; c.depth = 2; c.num_heads = 2;
    c.pred_embed_dim = 16; c.pred_depth = 1;
    c.min_keep = 4; c.num_enc_masks = 2;
    c.warmup_steps = 2; c.total_steps = 20;
    c.seed = 13; c.n_threads = 1;
    c.ragged_context = ragged;
    return c;
}

static size_t per_image(const ijepa_config *c) { return (size_t)c->in_chans * c->image_size * c->image_size; }

static float *make_images(int batch, const ijepa_config *c, int step) {
    size_t n = (size_t)batch * per_image(c);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sin(0.13 * (double)i + 0.7 * step + 0.3 * (double)(i % 5)) * 1.2f;
    return x;
}

/* max |a - b| over a buffer of two models, and max |a| */
static double buf_diff(ijepa_model *a, ijepa_model *b, int which, double *scale) {
    size_t n = 0, n2 = 0;
    const float *p = ijepa_model_buffer(a, which, &n), *q = ijepa_model_buffer(b, which, &n2);
    double d = 0, s = 0;
    if (!p || !q || n != n2) return INFINITY;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)p[i] - q[i]);
        if (!(e <= d)) d = e; /* NaN propagates */
        if (fabs(p[i]) > s) s = fabs(p[i]);
    }
    *scale = s;
    return d;
}

static double worst_params = 0, worst_loss = 0, worst_grads = 0;

/* Every buffer of b within 1e-5 x the largest magnitude of a's. */
static void check_models_close(ijepa_model *a, ijepa_model *b, const char *what) {
    for (int i = 0; i < NBUF; i++) {
        double scale = 0, d = buf_diff(a, b, BUFS[i], &scale);
        CHECK(d <= 1e-5 * scale, "%s: %s max |diff| %g, max |x| %g", what, BUF_NAMES[i], d, scale);
        if (BUFS[i] == IJEPA_BUF_PARAMS && d > worst_params) worst_params = d;
    }
}

static void check_loss(float a, float b, double rel, const char *what) {
    double r = fabs((double)a - b) / fabs((double)a);
    CHECK(r <= rel, "%s: loss %.9g vs %.9g (relative %g > %g)", what, a, b, r, rel);
    if (r > worst_loss) worst_loss = r;
}

/* ---- masks: a micro-batch's rows ---------------------------------------------------------- */
/* Rows of images [first, first + count) of uniform masks; arrays in `store`. */
static ijepa_masks rows(const ijepa_masks *m, int first, int count, int32_t *store) {
    ijepa_masks s = *m;
    s.batch = count;
    s.enc = store;
    s.pred = store + (size_t)m->num_enc * count * m->k_enc;
    for (int j = 0; j < m->num_enc; j++)
        memcpy(s.enc + (size_t)j * count * m->k_enc, m->enc + ((size_t)j * m->batch + first) * m->k_enc,
               sizeof(int32_t) * count * m->k_enc);
    for (int k = 0; k < m->num_pred; k++)
        memcpy(s.pred + (size_t)k * count * m->k_pred, m->pred + ((size_t)k * m->batch + first) * m->k_pred,
               sizeof(int32_t) * count * m->k_pred);
    return s;
}

/* The same for ragged masks: each image keeps its own context lengths. */
static ijepa_ragged_masks rows_ragged(const ijepa_ragged_masks *m, int first, int count, int32_t *store) {
    ijepa_ragged_masks s = *m;
    s.batch = count;
    s.enc = store;
    s.enc_len = store + (size_t)m->num_enc * count * m->k_enc_max;
    s.pred = s.enc_len + (size_t)m->num_enc * count;
    for (int j = 0; j < m->num_enc; j++) {
        memcpy(s.enc + (size_t)j * count * m->k_enc_max, m->enc + ((size_t)j * m->batch + first) * m->k_enc_max,
               sizeof(int32_t) * count * m->k_enc_max);
        memcpy(s.enc_len + (size_t)j * count, m->enc_len + (size_t)j * m->batch + first, sizeof(int32_t) * count);
    }
    for (int k = 0; k < m->num_pred; k++)
        memcpy(s.pred + (size_t)k * count * m->k_pred, m->pred + ((size_t)k * m->batch + first) * m->k_pred,
               sizeof(int32_t) * count * m->k_pred);
    return s;
}

/* ---- 1 x B against K x B/K ----------------------------------------------------------------- */

/* Sampled masks (NULL): the reference takes ijepa_train_step(NULL), which samples ragged masks
 * when the config says; the other ijepa_train_step_accumulate(NULL) with one draw for all B. */
static int test_sampled(int ragged, int micro) {
    ijepa_config c = small_config(ragged);
    ijepa_model *whole = NULL, *split = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &whole));
    REQUIRE_OK(ijepa_model_create(&c, &split));
    char what[96];
    snprintf(what, sizeof what, "%s, sampled masks, micro_batch %d", ragged ? "ragged" : "uniform", micro);
    for (int step = 0; step < 2; step++) {
        float *x = make_images(B, &c, step);
        ijepa_step_stats a, b;
        REQUIRE_OK(ijepa_train_step(whole, x, B, NULL, &a));
        REQUIRE_OK(ijepa_train_step_accumulate(split, x, B, micro, NULL, &b));
        CHECK(a.step == b.step && a.lr == b.lr && a.weight_decay == b.weight_decay && a.ema_momentum == b.ema_momentum,
              "%s: schedules", what);
        check_loss(a.loss, b.loss, 1e-5, what);
        CHECK_NEAR(b.grad_norm, a.grad_norm, 1e-5 * a.grad_norm, "%s: grad_norm", what);
        free(x);
    }
    check_models_close(whole, split, what);
    /* one draw per step: the generators are at the same place */
    ijepa_ragged_masks p, q;
    REQUIRE_OK(ijepa_masks_sample_ragged(whole, B, &p));
    REQUIRE_OK(ijepa_masks_sample_ragged(split, B, &q));
    CHECK(p.k_enc_max == q.k_enc_max && memcmp(p.enc_len, q.enc_len, sizeof(int32_t) * p.num_enc * B) == 0 &&
              memcmp(p.pred, q.pred, sizeof(int32_t) * p.num_pred * B * p.k_pred) == 0,
          "%s: the mask streams stay together", what);
    ijepa_ragged_masks_free(&p);
    ijepa_ragged_masks_free(&q);
    ijepa_model_free(whole);
    ijepa_model_free(split);
    return 0;
}

/* Caller masks: ijepa_train_step[_ragged](masks) against ijepa_train_step_accumulate[_ragged]. */
static int test_caller_masks(int ragged, int micro) {
    ijepa_config c = small_config(0);
    ijepa_model *whole = NULL, *split = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &whole));
    REQUIRE_OK(ijepa_model_create(&c, &split));
    char what[96];
    snprintf(what, sizeof what, "%s, caller masks, micro_batch %d", ragged ? "ragged" : "uniform", micro);
    for (int step = 0; step < 2; step++) {
        float *x = make_images(B, &c, step + 5);
        ijepa_step_stats a, b;
        if (ragged) {
            ijepa_ragged_masks g, unused;
            REQUIRE_OK(ijepa_masks_sample_ragged(whole, B, &g));
            REQUIRE_OK(ijepa_masks_sample_ragged(split, B, &unused)); /* keep the generators together */
            REQUIRE_OK(ijepa_train_step_ragged(whole, x, B, &g, &a));
            REQUIRE_OK(ijepa_train_step_accumulate_ragged(split, x, B, micro, &g, &b));
            ijepa_ragged_masks_free(&g);
            ijepa_ragged_masks_free(&unused);
        } else {
            ijepa_masks g, unused;
            REQUIRE_OK(ijepa_masks_sample(whole, B, &g));
            REQUIRE_OK(ijepa_masks_sample(split, B, &unused));
            REQUIRE_OK(ijepa_train_step(whole, x, B, &g, &a));
            REQUIRE_OK(ijepa_train_step_accumulate(split, x, B, micro, &g, &b));
            ijepa_masks_free(&g);
            ijepa_masks_free(&unused);
        }
        check_loss(a.loss, b.loss, 1e-5, what);
        free(x);
    }
    check_models_close(whole, split, what);
    ijepa_model_free(whole);
    ijepa_model_free(split);
    return 0;
}

/* By hand: forward_backward_accumulate over the rows of one draw (2 + 4 + 1), weights b/B, then
 * ijepa_optimizer_step, against ijepa_train_step with the same masks. */
static int test_by_hand(int ragged) {
    ijepa_config c = small_config(0);
    ijepa_model *whole = NULL, *hand = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &whole));
    REQUIRE_OK(ijepa_model_create(&c, &hand));
    const char *what = ragged ? "by hand, ragged" : "by hand, uniform";
    const size_t per = per_image(&c);
    const int sizes[3] = {2, 4, 1};
    size_t ng = 0;
    float *grads = ijepa_model_buffer(hand, IJEPA_BUF_GRADS, &ng);
    REQUIRE(grads != NULL, "grads");
    float *ref_grads = malloc(ng * sizeof(float));
    int32_t *store = malloc(sizeof(int32_t) * 4096);
    for (int step = 0; step < 2; step++) {
        float *x = make_images(B, &c, step + 9);
        ijepa_step_stats a, b;
        ijepa_masks u = {0}, ud = {0};
        ijepa_ragged_masks g = {0}, gd = {0};
        if (ragged) {
            REQUIRE_OK(ijepa_masks_sample_ragged(whole, B, &g));
            REQUIRE_OK(ijepa_masks_sample_ragged(hand, B, &gd));
            REQUIRE((size_t)g.num_enc * B * (g.k_enc_max + 1) + (size_t)g.num_pred * B * g.k_pred <= 4096, "store");
            /* the whole batch's gradient buffer, for the comparison below */
            REQUIRE_OK(ijepa_forward_backward_ragged(hand, x, B, &g, NULL));
        } else {
            REQUIRE_OK(ijepa_masks_sample(whole, B, &u));
            REQUIRE_OK(ijepa_masks_sample(hand, B, &ud));
            REQUIRE((size_t)u.num_enc * B * u.k_enc + (size_t)u.num_pred * B * u.k_pred <= 4096, "store");
            REQUIRE_OK(ijepa_forward_backward(hand, x, B, &u, NULL));
        }
        memcpy(ref_grads, grads, ng * sizeof(float));
        double weighted = 0;
        for (int k = 0, first = 0; k < 3; first += sizes[k], k++) {
            float l = 0, w = (float)sizes[k] / B;
            if (ragged) {
                ijepa_ragged_masks r = rows_ragged(&g, first, sizes[k], store);
                REQUIRE_OK(ijepa_forward_backward_accumulate_ragged(hand, x + first * per, sizes[k], &r, w, k > 0, &l));
            } else {
                ijepa_masks r = rows(&u, first, sizes[k], store);
                REQUIRE_OK(ijepa_forward_backward_accumulate(hand, x + first * per, sizes[k], &r, w, k > 0, &l));
            }
            weighted += (double)w * l;
        }
        double gd_max = 0, gscale = 0;
        for (size_t i = 0; i < ng; i++) {
            double e = fabs((double)grads[i] - ref_grads[i]);
            if (!(e <= gd_max)) gd_max = e;
            if (fabs(ref_grads[i]) > gscale) gscale = fabs(ref_grads[i]);
        }
        CHECK(gd_max <= 1e-5 * gscale, "%s: accumulated gradients differ by %g (max |g| %g)", what, gd_max, gscale);
        if (gd_max / gscale > worst_grads) worst_grads = gd_max / gscale;
        REQUIRE_OK(ijepa_optimizer_step(hand, &b));
        if (ragged) REQUIRE_OK(ijepa_train_step_ragged(whole, x, B, &g, &a));
        else REQUIRE_OK(ijepa_train_step(whole, x, B, &u, &a));
        check_loss(a.loss, b.loss, 1e-5, what);
        CHECK_NEAR(weighted, b.loss, 1e-6 * b.loss, "%s: the step's loss is the weighted sum", what);
        CHECK_NEAR(b.grad_norm, a.grad_norm, 1e-5 * a.grad_norm, "%s: grad_norm", what);
        ijepa_masks_free(&u);
        ijepa_masks_free(&ud);
        ijepa_ragged_masks_free(&g);
        ijepa_ragged_masks_free(&gd);
        free(x);
    }
    check_models_close(whole, hand, what);
    free(ref_grads);
    free(store);
    ijepa_model_free(whole);
    ijepa_model_free(hand);
    return 0;
}

/* ---- the rules ------------------------------------------------------------------------------ */

static int test_errors(void) {
    ijepa_config c = small_config(0);
    ijepa_model *m = NULL, *fresh = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &m));
    REQUIRE_OK(ijepa_model_create(&c, &fresh));
    float *x = make_images(B, &c, 0);
    const size_t per = per_image(&c);
    float *saved[NBUF];
    size_t counts[NBUF];
    for (int i = 0; i < NBUF; i++) {
        const float *p = ijepa_model_buffer(m, BUFS[i], &counts[i]);
        REQUIRE(p != NULL, "buffer");
        saved[i] = malloc(counts[i] * sizeof(float));
        memcpy(saved[i], p, counts[i] * sizeof(float));
    }
    ijepa_step_stats st;
    float loss = 0;

    /* a NaN image in the last micro-batch: NUMERIC, nothing changed (mask stream included) */
    x[(size_t)(B - 1) * per + 3] = NAN;
    CHECK(ijepa_train_step_accumulate(m, x, B, 3, NULL, &st) == IJEPA_ERR_NUMERIC, "NaN image in micro-batch 3");
    CHECK(ijepa_train_step_accumulate_ragged(m, x, B, 2, NULL, &st) == IJEPA_ERR_NUMERIC, "NaN image, ragged");
    x[(size_t)(B - 1) * per + 3] = 0.5f;
    CHECK(ijepa_model_step(m) == 0, "the step counter did not move");
    for (int i = 0; i < NBUF; i++) {
        const float *p = ijepa_model_buffer(m, BUFS[i], NULL);
        CHECK(memcmp(p, saved[i], counts[i] * sizeof(float)) == 0, "%s unchanged after the failed step", BUF_NAMES[i]);
    }
    ijepa_masks p, q;
    REQUIRE_OK(ijepa_masks_sample(m, B, &p));
    REQUIRE_OK(ijepa_masks_sample(fresh, B, &q));
    CHECK(p.k_enc == q.k_enc && memcmp(p.enc, q.enc, sizeof(int32_t) * p.num_enc * B * p.k_enc) == 0 &&
              memcmp(p.pred, q.pred, sizeof(int32_t) * p.num_pred * B * p.k_pred) == 0,
          "the failed steps did not consume masks");

    /* a failure in the C layer's own checks (NULL images, masks of another batch) after a
     * successful forward_backward leaves no gradients pending: optimizer_step refuses */
    for (int kind = 0; kind < 3; kind++) {
        REQUIRE_OK(ijepa_forward_backward(m, x, B, &p, &loss));
        int st_fb = kind == 0 ? ijepa_forward_backward(m, NULL, B, &p, &loss)
                  : kind == 1 ? ijepa_forward_backward_accumulate(m, x, B - 1, &p, 0.5f, 1, &loss)
                              : ijepa_forward_backward_accumulate(m, NULL, B, &p, 0.5f, 1, &loss);
        CHECK(st_fb != IJEPA_OK, "bad call %d fails", kind);
        CHECK(ijepa_optimizer_step(m, &st) == IJEPA_ERR_STATE, "no gradients pending after bad call %d", kind);
    }
    CHECK(ijepa_model_step(m) == 0, "no step was taken");

    /* micro_batch <= 0 */
    CHECK(ijepa_train_step_accumulate(m, x, B, 0, NULL, &st) == IJEPA_ERR_INVALID_ARGUMENT, "micro_batch 0");
    CHECK(ijepa_train_step_accumulate(m, x, B, -3, &p, &st) == IJEPA_ERR_INVALID_ARGUMENT, "micro_batch -3");
    CHECK(ijepa_train_step_accumulate_ragged(m, x, B, 0, NULL, &st) == IJEPA_ERR_INVALID_ARGUMENT, "ragged, micro_batch 0");
    CHECK(ijepa_train_step_accumulate(m, NULL, B, 2, NULL, &st) == IJEPA_ERR_INVALID_ARGUMENT, "NULL images");
    CHECK(ijepa_train_step_accumulate(NULL, x, B, 2, NULL, &st) == IJEPA_ERR_INVALID_ARGUMENT, "NULL model");

    /* accumulate first: STATE; the same after an optimizer step consumed the gradients */
    ijepa_model *n = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &n));
    CHECK(ijepa_forward_backward_accumulate(n, x, 3, NULL, 0.5f, 1, &loss) == IJEPA_ERR_STATE, "accumulate first");
    CHECK(ijepa_forward_backward_accumulate_ragged(n, x, 3, NULL, 0.5f, 1, &loss) == IJEPA_ERR_STATE,
          "accumulate first, ragged");
    REQUIRE_OK(ijepa_forward_backward_accumulate(n, x, 3, NULL, 0.5f, 0, &loss));
    REQUIRE_OK(ijepa_forward_backward_accumulate(n, x + 3 * per, 3, NULL, 0.5f, 1, &loss));
    REQUIRE_OK(ijepa_optimizer_step(n, &st));
    CHECK(ijepa_forward_backward_accumulate(n, x, 3, NULL, 0.5f, 1, &loss) == IJEPA_ERR_STATE,
          "accumulate after the optimizer step consumed the gradients");
    /* weights: finite and > 0 */
    const float bad[4] = {0.0f, -0.25f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        CHECK(ijepa_forward_backward_accumulate(n, x, 3, NULL, bad[i], 0, &loss) == IJEPA_ERR_INVALID_ARGUMENT,
              "weight %g", bad[i]);
        CHECK(ijepa_forward_backward_accumulate_ragged(n, x, 3, NULL, bad[i], 0, &loss) == IJEPA_ERR_INVALID_ARGUMENT,
              "ragged, weight %g", bad[i]);
    }
    /* a failure in the engine leaves no gradients pending */
    REQUIRE_OK(ijepa_forward_backward_accumulate(n, x, 3, NULL, 0.5f, 0, &loss));
    CHECK(ijepa_forward_backward_accumulate(n, x, 3, NULL, NAN, 1, &loss) == IJEPA_ERR_INVALID_ARGUMENT, "NaN weight");
    CHECK(ijepa_optimizer_step(n, &st) == IJEPA_ERR_STATE, "no gradients pending after a failed accumulation");
    /* weight 1, accumulate 0 is ijepa_forward_backward */
    ijepa_model *a = NULL, *b = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &a));
    REQUIRE_OK(ijepa_model_create(&c, &b));
    float la = 0, lb = 0;
    REQUIRE_OK(ijepa_forward_backward(a, x, B, NULL, &la));
    REQUIRE_OK(ijepa_forward_backward_accumulate(b, x, B, NULL, 1.0f, 0, &lb));
    CHECK(la == lb, "weight 1 loss %g vs %g", la, lb);
    size_t ng = 0;
    CHECK(memcmp(ijepa_model_buffer(a, IJEPA_BUF_GRADS, &ng), ijepa_model_buffer(b, IJEPA_BUF_GRADS, NULL),
                 ng * sizeof(float)) == 0, "weight 1 gradients are bitwise ijepa_forward_backward's");

    ijepa_masks_free(&p);
    ijepa_masks_free(&q);
    for (int i = 0; i < NBUF; i++) free(saved[i]);
    free(x);
    ijepa_model_free(a);
    ijepa_model_free(b);
    ijepa_model_free(n);
    ijepa_model_free(m);
    ijepa_model_free(fresh);
    return 0;
}

int main(void) {
    const int micro[3] = {1, 3, B + 2};
    for (int ragged = 0; ragged < 2; ragged++) {
        for (int i = 0; i < 3; i++) {
            if (test_sampled(ragged, micro[i])) return check_summary("test_accumulate");
            if (test_caller_masks(ragged, micro[i])) return check_summary("test_accumulate");
        }
        if (test_by_hand(ragged)) return check_summary("test_accumulate");
    }
    if (test_errors()) return check_summary("test_accumulate");
    printf("largest differences, 1 x %d against micro-batches (2 steps): parameters %.3g, relative loss %.3g, "
           "accumulated gradients %.3g of max |g|\n", B, worst_params, worst_loss, worst_grads);
    return check_summary("test_accumulate");
}
