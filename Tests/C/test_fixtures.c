/*
 * test_fixtures.c — the C ABI against the PyTorch reference fixtures (Tests/Fixtures/{rgb,gray,multi}.safetensors,
 * written by tools/make_fixtures.py from a faithful re-implementation of the official training
 * step). Usage: test_fixtures <fixture directory> [name ...]   (default names: rgb gray multi)
 *
 * For each fixture: create a model from the metadata config, load init.* into PARAMS through the
 * buffer / tensor-info API, copy the encoder part into TARGET, then for each of the 3 steps run
 * forward_backward on the fixture's images and masks and compare the loss (relative 1e-5); at
 * step 1 compare every gradient (max error <= 1e-4 x the reference tensor's max |value|); set
 * the fixture's lr / wd / ema with ijepa_set_schedule_override and take an optimizer step; after
 * steps 1 and 3 compare every PARAMS and TARGET tensor (<= 1e-5 x max |ref| + 1e-7, see
 * compare()). Also ijepa_encode with the target encoder against step1.target_full (1e-5).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "safetensors.h"

#define LOSS_TOL 1e-5
#define GRAD_TOL 1e-4
#define PARAM_TOL 1e-5
#define PARAM_ATOL 1e-7 /* see compare() */
#define FORWARD_TOL 1e-5

typedef struct {
    double worst_grad, worst_param, worst_loss, worst_fwd; /* worst error / tolerance scale seen */
} worst_t;

static int cfg_int(const json_value *cfg, const char *key, int32_t *out, int required) {
    const json_value *v = json_get(cfg, key);
    if (!v) {
        CHECK(!required, "config has no '%s'", key);
        return 0;
    }
    if (v->type == JSON_BOOL) { *out = v->boolean; return 1; }
    CHECK(v->type == JSON_NUMBER && v->is_integer, "config '%s' is not an integer", key);
    if (v->type == JSON_NUMBER) *out = (int32_t)v->integer;
    return 1;
}

static int cfg_float(const json_value *cfg, const char *key, float *out) {
    const json_value *v = json_get(cfg, key);
    if (!v) return 0;
    CHECK(v->type == JSON_NUMBER, "config '%s' is not a number", key);
    if (v->type == JSON_NUMBER) *out = (float)v->number;
    return 1;
}

/* Reads a list of n numbers (n = 2 for ranges, steps for lr/wd/ema). */
static int cfg_floats(const json_value *cfg, const char *key, float *out, size_t n, int required) {
    const json_value *v = json_get(cfg, key);
    if (!v) { CHECK(!required, "config has no '%s'", key); return 0; }
    CHECK(v->type == JSON_ARRAY && v->count == n, "config '%s' is not a list of %zu numbers", key, n);
    if (v->type != JSON_ARRAY || v->count != n) return 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(v->items[i].type == JSON_NUMBER, "config '%s'[%zu] is not a number", key, i);
        out[i] = (float)v->items[i].number;
    }
    return 1;
}

/* Element-wise |a - ref| <= tol * max |ref| + atol; returns max error / max |ref| for the report.
 *
 * atol is 0 for forward outputs and gradients. For parameters after AdamW steps it is
 * PARAM_ATOL: AdamW's first step moves every element by lr * g / (|g| + 1e-8), so an element
 * whose gradient is pure float32 rounding noise (~1e-13; e.g. the attention KEY bias, whose
 * gradient is exactly zero mathematically since softmax is shift-invariant) moves by a random
 * ~1e-8 in both implementations. That noise is 1e-5 of such a tensor's max |value| (~lr), so
 * it needs an absolute floor; 1e-7 = 1e-4 x lr is still 8x below the smallest real effect
 * checked here (one weight-decay term, lr * wd * |w| ~ 8e-7). */
static double compare(const float *a, const float *ref, size_t n, double tol, double atol, const char *what) {
    double maxref = 0, maxerr = 0, worst_excess = -INFINITY;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]);
        if (r > maxref) maxref = r;
    }
    double scale = maxref > 0 ? maxref : 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)ref[i]);
        if (!isfinite(a[i])) { bad++; e = INFINITY; }
        if (e > maxerr) maxerr = e;
        double excess = e - (tol * scale + atol);
        if (excess > worst_excess) { worst_excess = excess; at = i; }
    }
    CHECK(bad == 0 && worst_excess <= 0,
          "%s: error %.3g at [%zu] (%.9g vs %.9g) exceeds %g x max |ref| (%.3g) + %g; max error / max |ref| = %.3g",
          what, n ? fabs((double)a[at] - ref[at]) : 0.0, at, n ? a[at] : 0.f, n ? ref[at] : 0.f, tol, maxref, atol,
          maxerr / scale);
    return maxerr / scale;
}

/* Compares every tensor of buffer `which` with "<prefix><name>" of the fixture. */
static double compare_buffer(ijepa_model *m, int which, const st_file *f, const char *prefix, double tol,
                             double atol, const char *fixture) {
    double worst = 0;
    const float *buf = ijepa_model_buffer(m, which, NULL);
    int32_t n = ijepa_model_num_tensors(m, which);
    CHECK(buf != NULL && n > 0, "%s: buffer %d: %s", fixture, which, ijepa_last_error());
    if (!buf || n <= 0) return INFINITY;
    for (int32_t i = 0; i < n; i++) {
        ijepa_tensor_info t;
        if (ijepa_model_tensor_info(m, which, i, &t) != IJEPA_OK) { CHECK(0, "tensor_info: %s", ijepa_last_error()); continue; }
        char key[512], what[600];
        snprintf(key, sizeof key, "%s%s", prefix, t.name);
        snprintf(what, sizeof what, "%s %s", fixture, key);
        size_t cnt = 0;
        float *ref = st_read_f32(f, key, &cnt);
        CHECK(ref != NULL, "%s: missing from the fixture (or not F32)", what);
        if (!ref) { worst = INFINITY; continue; }
        size_t numel = 1;
        for (int d = 0; d < 4; d++) numel *= (size_t)t.shape[d];
        CHECK(cnt == numel, "%s: fixture has %zu values, the model %zu", what, cnt, numel);
        if (cnt == numel) {
            double r = compare(buf + t.offset, ref, cnt, tol, atol, what);
            if (r > worst) worst = r;
        }
        free(ref);
    }
    return worst;
}

/* I64 [num, B, K] -> int32 with range checks. */
static int32_t *to_i32(const st_file *f, const char *key, int64_t shape[3]) {
    const st_tensor *t = st_find(f, key);
    CHECK(t && t->dtype == ST_I64 && t->ndim == 3, "%s: missing or not I64 [n,B,K]", key);
    if (!t || t->dtype != ST_I64 || t->ndim != 3) return NULL;
    memcpy(shape, t->shape, 3 * sizeof(int64_t));
    size_t n = 0;
    int64_t *v = st_read_i64(f, key, &n);
    int32_t *o = malloc((n ? n : 1) * sizeof *o);
    for (size_t i = 0; i < n; i++) {
        CHECK(v[i] >= INT32_MIN && v[i] <= INT32_MAX, "%s[%zu] = %lld does not fit int32", key, i, (long long)v[i]);
        o[i] = (int32_t)v[i];
    }
    free(v);
    return o;
}

static int run_fixture(const char *dir, const char *name, worst_t *w) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    st_file f;
    if (st_open(path, &f, err, sizeof err) != 0) {
        CHECK(0, "fixture %s: %s (generate the fixtures with tools/make_fixtures.py)", name, err);
        return 1;
    }
    const char *cfg_text = st_metadata(&f, "config");
    json_value cfg;
    CHECK(cfg_text != NULL, "%s: no __metadata__.config", name);
    if (!cfg_text || json_parse(cfg_text, strlen(cfg_text), &cfg, err, sizeof err) != 0) {
        CHECK(cfg_text == NULL, "%s: metadata config is not JSON: %s", name, err);
        st_close(&f);
        return 1;
    }

    /* ---- the config: the default recipe, overridden by every field the fixture gives ---- */
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    int32_t batch = 0, steps = 0;
    cfg_int(&cfg, "image_size", &c.image_size, 1);
    cfg_int(&cfg, "patch_size", &c.patch_size, 1);
    cfg_int(&cfg, "in_chans", &c.in_chans, 1);
    cfg_int(&cfg, "embed_dim", &c.embed_dim, 1);
    cfg_int(&cfg, "depth", &c.depth, 1);
    cfg_int(&cfg, "num_heads", &c.num_heads, 1);
    cfg_float(&cfg, "mlp_ratio", &c.mlp_ratio);
    cfg_int(&cfg, "pred_embed_dim", &c.pred_embed_dim, 1);
    cfg_int(&cfg, "pred_depth", &c.pred_depth, 1);
    cfg_int(&cfg, "pred_num_heads", &c.pred_num_heads, 0);
    cfg_int(&cfg, "num_enc_masks", &c.num_enc_masks, 1);
    cfg_int(&cfg, "num_pred_masks", &c.num_pred_masks, 1);
    cfg_int(&cfg, "min_keep", &c.min_keep, 1);
    cfg_int(&cfg, "allow_overlap", &c.allow_overlap, 0);
    cfg_floats(&cfg, "enc_mask_scale", c.enc_mask_scale, 2, 0);
    cfg_floats(&cfg, "pred_mask_scale", c.pred_mask_scale, 2, 0);
    cfg_floats(&cfg, "aspect_ratio", c.aspect_ratio, 2, 0);
    const json_value *seed = json_get(&cfg, "seed");
    if (seed && seed->type == JSON_NUMBER && seed->is_integer) c.seed = (uint64_t)seed->integer;
    cfg_int(&cfg, "batch", &batch, 1);
    cfg_int(&cfg, "steps", &steps, 1);
    c.n_threads = 2;
    /* mlp_ratio is the ENCODER's; the predictor's MLP ratio is always 4, as in the official
     * vit_predictor factory (the header does not say so). */
    float pred_mlp = 4.0f;
    if (cfg_float(&cfg, "pred_mlp_ratio", &pred_mlp))
        CHECK(pred_mlp == 4.0f, "%s: the fixture's predictor mlp_ratio is %g; the library's is always 4", name, pred_mlp);
    float lr[16], wd[16], ema[16];
    int ok = steps >= 1 && steps <= 16 && batch >= 1;
    CHECK(ok, "%s: steps %d batch %d", name, steps, batch);
    ok = ok && cfg_floats(&cfg, "lr", lr, (size_t)steps, 1) && cfg_floats(&cfg, "wd", wd, (size_t)steps, 1) &&
         cfg_floats(&cfg, "ema", ema, (size_t)steps, 1);
    json_free(&cfg);
    ijepa_model *m = NULL;
    if (ok) {
        int st = ijepa_model_create(&c, &m);
        CHECK(st == IJEPA_OK, "%s: create: %s", name, ijepa_last_error());
        ok = st == IJEPA_OK;
    }
    if (!ok) { st_close(&f); return 1; }

    /* ---- init.* -> PARAMS, encoder part -> TARGET ---- */
    size_t n_params = 0, n_target = 0;
    float *params = ijepa_model_buffer(m, IJEPA_BUF_PARAMS, &n_params);
    float *target = ijepa_model_buffer(m, IJEPA_BUF_TARGET, &n_target);
    int32_t nt = ijepa_model_num_tensors(m, IJEPA_BUF_PARAMS);
    size_t n_init = 0;
    for (size_t i = 0; i < f.count; i++) n_init += strncmp(f.tensors[i].name, "init.", 5) == 0;
    CHECK(n_init == (size_t)nt, "%s: fixture has %zu init.* tensors, the model %d", name, n_init, nt);
    for (int32_t i = 0; i < nt; i++) {
        ijepa_tensor_info t;
        CHECK_OK(ijepa_model_tensor_info(m, IJEPA_BUF_PARAMS, i, &t));
        char key[512];
        snprintf(key, sizeof key, "init.%s", t.name);
        const st_tensor *ft = st_find(&f, key);
        CHECK(ft != NULL, "%s: %s missing from the fixture", name, key);
        if (!ft) { ok = 0; continue; }
        int same_shape = ft->ndim == t.ndim;
        for (int d = 0; same_shape && d < t.ndim; d++) same_shape = ft->shape[d] == t.shape[d];
        CHECK(same_shape, "%s: %s has shape [%lld,%lld,%lld,%lld] (ndim %d) in the model, ndim %d [%lld,%lld,...] in the fixture",
              name, key, (long long)t.shape[0], (long long)t.shape[1], (long long)t.shape[2], (long long)t.shape[3],
              t.ndim, ft->ndim, (long long)ft->shape[0], (long long)(ft->ndim > 1 ? ft->shape[1] : 1));
        if (!same_shape) { ok = 0; continue; }
        size_t cnt = 0;
        float *v = st_read_f32(&f, key, &cnt);
        CHECK(v != NULL, "%s: %s is not F32", name, key);
        if (!v) { ok = 0; continue; }
        memcpy(params + t.offset, v, cnt * sizeof(float));
        free(v);
    }
    /* TARGET tensor i <-> PARAMS tensor i for the encoder tensors: same offsets */
    memcpy(target, params, n_target * sizeof(float));
    if (!ok) { ijepa_model_free(m); st_close(&f); return 1; }

    /* ---- the steps ---- */
    for (int s = 1; s <= steps; s++) {
        char key[128], what[160];
        snprintf(key, sizeof key, "step%d.images", s);
        const st_tensor *ti = st_find(&f, key);
        int img_ok = ti && ti->dtype == ST_F32 && ti->ndim == 4 && ti->shape[0] == batch &&
                     ti->shape[1] == c.in_chans && ti->shape[2] == c.image_size && ti->shape[3] == c.image_size;
        CHECK(img_ok, "%s: %s missing or not F32 [B,C,H,W]", name, key);
        if (!img_ok) { ok = 0; break; }
        float *img = st_read_f32(&f, key, NULL);
        int64_t se[3], sp[3];
        snprintf(key, sizeof key, "step%d.masks_enc", s);
        int32_t *enc = to_i32(&f, key, se);
        snprintf(key, sizeof key, "step%d.masks_pred", s);
        int32_t *pred = to_i32(&f, key, sp);
        snprintf(key, sizeof key, "step%d.loss", s);
        float *ref_loss = st_read_f32(&f, key, NULL);
        CHECK(ref_loss != NULL, "%s: %s missing", name, key);
        if (!enc || !pred || !ref_loss) { free(img); free(enc); free(pred); free(ref_loss); ok = 0; break; }
        CHECK(se[1] == batch && sp[1] == batch, "%s step %d: masks for batch %lld/%lld, images %d", name, s,
              (long long)se[1], (long long)sp[1], batch);
        ijepa_masks k = {.batch = (int32_t)se[1], .num_enc = (int32_t)se[0], .k_enc = (int32_t)se[2],
                         .num_pred = (int32_t)sp[0], .k_pred = (int32_t)sp[2], .enc = enc, .pred = pred};
        if (s == 1 && st_find(&f, "step1.target_full")) {
            /* the target encoder's forward pass, through ijepa_encode (tokens after its final norm) */
            size_t nref = 0;
            float *ref = st_read_f32(&f, "step1.target_full", &nref);
            const size_t N = (size_t)ijepa_model_num_patches(m), D = (size_t)ijepa_model_embed_dim(m);
            CHECK(nref == (size_t)batch * N * D, "%s: step1.target_full has %zu values", name, nref);
            if (ref && nref == (size_t)batch * N * D) {
                float *tok = malloc(nref * sizeof(float));
                CHECK_OK(ijepa_encode(m, img, batch, IJEPA_TARGET_ENCODER, tok, NULL));
                snprintf(what, sizeof what, "%s step1.target_full (ijepa_encode)", name);
                double r = compare(tok, ref, nref, FORWARD_TOL, 0, what);
                if (r > w->worst_fwd) w->worst_fwd = r;
                free(tok);
            }
            free(ref);
        }
        float loss = NAN;
        int st = ijepa_forward_backward(m, img, batch, &k, &loss);
        CHECK(st == IJEPA_OK, "%s step %d: forward_backward: %s", name, s, ijepa_last_error());
        if (st == IJEPA_OK) {
            double e = fabs((double)loss - ref_loss[0]) / fabs((double)ref_loss[0]);
            CHECK(e <= LOSS_TOL, "%s step %d: loss %.9g vs reference %.9g (relative %.3g)", name, s, loss, ref_loss[0], e);
            if (e > w->worst_loss) w->worst_loss = e;
            if (s == 1) {
                double r = compare_buffer(m, IJEPA_BUF_GRADS, &f, "step1.grad.", GRAD_TOL, 0, name);
                if (r > w->worst_grad) w->worst_grad = r;
            }
            CHECK_OK(ijepa_set_schedule_override(m, lr[s - 1], wd[s - 1], ema[s - 1]));
            ijepa_step_stats stats;
            st = ijepa_optimizer_step(m, &stats);
            CHECK(st == IJEPA_OK, "%s step %d: optimizer_step: %s", name, s, ijepa_last_error());
            CHECK(st != IJEPA_OK || stats.step == s, "%s: step counter %lld after step %d", name, (long long)stats.step, s);
            CHECK(st != IJEPA_OK || (stats.lr == lr[s - 1] && stats.weight_decay == wd[s - 1] &&
                                     stats.ema_momentum == ema[s - 1]),
                  "%s step %d: schedule override not applied (%g %g %g)", name, s, stats.lr, stats.weight_decay,
                  stats.ema_momentum);
            if (st == IJEPA_OK && (s == 1 || s == steps)) {
                char prefix[32];
                snprintf(prefix, sizeof prefix, "after%d.", s);
                snprintf(what, sizeof what, "%s (%s)", name, prefix);
                double r1 = compare_buffer(m, IJEPA_BUF_PARAMS, &f, prefix, PARAM_TOL, PARAM_ATOL, what);
                double r2 = compare_buffer(m, IJEPA_BUF_TARGET, &f, prefix, PARAM_TOL, PARAM_ATOL, what);
                if (r1 > w->worst_param) w->worst_param = r1;
                if (r2 > w->worst_param) w->worst_param = r2;
            }
        } else {
            ok = 0;
        }
        free(img); free(enc); free(pred); free(ref_loss);
        if (!ok) break;
    }
    printf("  %-6s batch %d, %d steps: worst relative error: loss %.2e, encode %.2e, grads %.2e, params/target %.2e\n",
           name, batch, steps, w->worst_loss, w->worst_fwd, w->worst_grad, w->worst_param);
    ijepa_model_free(m);
    st_close(&f);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <fixture directory> [fixture name ...]\n", argv[0]);
        return 2;
    }
    static const char *defaults[] = {"rgb", "gray", "multi"};
    const char **names = argc > 2 ? (const char **)argv + 2 : defaults;
    int n = argc > 2 ? argc - 2 : 3;
    for (int i = 0; i < n; i++) {
        worst_t w = {0, 0, 0, 0};
        long before = check_failures;
        run_fixture(argv[1], names[i], &w);
        printf("  %-6s %s\n", names[i], check_failures == before ? "ok" : "FAILED");
    }
    return check_summary("test_fixtures");
}
