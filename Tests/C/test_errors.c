/*
 * test_errors.c — bad inputs to every function of ijepa.h. Each case expects a specific negative
 * status and a fresh, non-empty ijepa_last_error() that contains a given substring (usually the
 * argument's name); none may crash, and none may change the model's five buffers or write its
 * outputs. Covers config, model, masks, training, buffers, encode, checkpoints (with corrupt and
 * hand-made files) and augmentation. Then: NaN/Inf images leave all five buffers bit-identical
 * and the step counter unchanged, freed handles are refused, create-free-create works, and the
 * last error is per thread (pthreads).
 *
 *   IJEPA_TEST_VERBOSE=1     print every case's status and message
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"

enum { B = 2 };

typedef struct {
    ijepa_model *m;        /* live model, small config */
    ijepa_config cfg;      /* its config */
    float *img;            /* B good images */
    float *img_nan;        /* B images, one NaN */
    ijepa_masks good;      /* masks sampled for B images */
    ijepa_masks bad;       /* scratch copy the case edits (own arrays) */
    ijepa_ragged_masks rag; /* f->good as ragged masks (see make_ragged) */
    int32_t n_patches;
    char dir[512];         /* temporary directory with checkpoint files */
} fixture;

/* Paths of the checkpoint files the cases use (made by make_files). */
static char P_GOOD[640], P_EMPTY[640], P_TRUNC[640], P_GARBAGE[640], P_HUGEHDR[640], P_BADOFF[640],
    P_NOCONFIG[640], P_BADCONFIG[640], P_MISSING[640], P_UNEXPECTED[640], P_SHAPE[640], P_NAN[640],
    P_DTYPE[640], P_F64[640], P_NODIR[640], P_SAVED[640];

static ijepa_config small_config(void) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = 32; c.patch_size = 4; c.in_chans = 3;
    c.embed_dim = 64; c.depth = 2; c.num_heads = 4;
    c.pred_embed_dim = 32; c.pred_depth = 2;
    c.min_keep = 4;
    c.warmup_steps = 5; c.total_steps = 50;
    c.seed = 3; c.n_threads = 1;
    return c;
}

static size_t image_floats(const ijepa_config *c, int batch) {
    return (size_t)batch * c->in_chans * c->image_size * c->image_size;
}

static float *make_images(const ijepa_config *c, int batch) {
    size_t n = image_floats(c, batch);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)sin(0.37 * (double)i) * 1.5f;
    return x;
}

/* A copy of `src` with arrays of our own (edited by the cases, freed by free_copy). */
static void copy_masks(ijepa_masks *dst, const ijepa_masks *src) {
    *dst = *src;
    size_t ne = (size_t)src->num_enc * src->batch * src->k_enc, np = (size_t)src->num_pred * src->batch * src->k_pred;
    dst->enc = malloc(ne * sizeof(int32_t));
    dst->pred = malloc(np * sizeof(int32_t));
    memcpy(dst->enc, src->enc, ne * sizeof(int32_t));
    memcpy(dst->pred, src->pred, np * sizeof(int32_t));
}

static void free_copy(ijepa_masks *k) {
    free(k->enc);
    free(k->pred);
    memset(k, 0, sizeof *k);
}

/* ---- helpers for functions that do not return a status --------------------------------- */
static int st_of_ptr(const void *p) { return p ? IJEPA_OK : IJEPA_ERR_INVALID_ARGUMENT; }
static int st_of_int(int32_t v) { return v >= 0 ? IJEPA_OK : IJEPA_ERR_INVALID_ARGUMENT; }

static int create_with(ijepa_config c) {
    ijepa_model *m = NULL;
    int st = ijepa_model_create(&c, &m);
    if (st == IJEPA_OK) ijepa_model_free(m); /* should not happen: reported by the case */
    return st;
}

/* ---- the cases --------------------------------------------------------------------------- */
/* A message no case can produce, set before each case so that a stale message is detected. */
static void set_sentinel_error(void) {
    ijepa_config c = {.struct_size = sizeof c};
    (void)ijepa_config_preset("sentinel-preset-xyzzy", &c);
}

#define CASE(id) static int id(fixture *f)
#define UNUSED (void)f

/* config / preset */
CASE(preset_null_name) { UNUSED; ijepa_config c = {.struct_size = sizeof c}; return ijepa_config_preset(NULL, &c); }
CASE(preset_null_out) { UNUSED; return ijepa_config_preset("vit_tiny", NULL); }
CASE(preset_unknown) { UNUSED; ijepa_config c = {.struct_size = sizeof c}; return ijepa_config_preset("vit_nope", &c); }
CASE(preset_empty) { UNUSED; ijepa_config c = {.struct_size = sizeof c}; return ijepa_config_preset("", &c); }
/* outputs need the caller's struct_size, at least the first release's 152 bytes */
CASE(config_field_negative) { UNUSED; const char *n = NULL; return ijepa_config_field(-1, &n, NULL, NULL); }
CASE(config_field_past_end) { UNUSED; return ijepa_config_field(ijepa_config_field_count(), NULL, NULL, NULL); }
CASE(config_field_max) { UNUSED; size_t o = 0; return ijepa_config_field(INT32_MAX, NULL, NULL, &o); }
CASE(config_field_min) { UNUSED; int32_t t = 0; return ijepa_config_field(INT32_MIN, NULL, &t, NULL); }
CASE(preset_out_size0) { UNUSED; ijepa_config c = {.struct_size = 0}; return ijepa_config_preset("tiny32", &c); }
CASE(default_out_size_small) { UNUSED; ijepa_config c = {.struct_size = 100}; return ijepa_config_default(&c); }
CASE(default_null_out) { UNUSED; return ijepa_config_default(NULL); }
CASE(get_config_size0) { ijepa_config c = {.struct_size = 0}; return ijepa_model_get_config(f->m, &c); }

/* model_create */
CASE(create_null_cfg) { UNUSED; ijepa_model *m = NULL; return ijepa_model_create(NULL, &m); }
CASE(create_null_out) { return ijepa_model_create(&f->cfg, NULL); }
CASE(create_size0) { ijepa_config c = f->cfg; c.struct_size = 0; return create_with(c); }
/* smaller than the first release's struct (which ended with n_threads and 4 bytes of padding) */
CASE(create_size_small) { ijepa_config c = f->cfg; c.struct_size = offsetof(ijepa_config, reserved0); return create_with(c); }
CASE(create_nan_lr) { ijepa_config c = f->cfg; c.lr = NAN; return create_with(c); }
CASE(create_inf_start_lr) { ijepa_config c = f->cfg; c.start_lr = INFINITY; return create_with(c); }
CASE(create_neg_final_lr) { ijepa_config c = f->cfg; c.final_lr = -1e-3f; return create_with(c); }
CASE(create_inf_mlp) { ijepa_config c = f->cfg; c.mlp_ratio = INFINITY; return create_with(c); }
CASE(create_nan_mlp) { ijepa_config c = f->cfg; c.mlp_ratio = NAN; return create_with(c); }
CASE(create_zero_mlp) { ijepa_config c = f->cfg; c.mlp_ratio = 0; return create_with(c); }
CASE(create_nan_wd) { ijepa_config c = f->cfg; c.weight_decay = NAN; return create_with(c); }
CASE(create_inf_final_wd) { ijepa_config c = f->cfg; c.final_weight_decay = -INFINITY; return create_with(c); }
CASE(create_nan_ema) { ijepa_config c = f->cfg; c.ema_start = NAN; return create_with(c); }
CASE(create_ema_gt1) { ijepa_config c = f->cfg; c.ema_end = 1.5f; return create_with(c); }
CASE(create_nan_enc_scale) { ijepa_config c = f->cfg; c.enc_mask_scale[0] = NAN; return create_with(c); }
CASE(create_inf_pred_scale) { ijepa_config c = f->cfg; c.pred_mask_scale[1] = INFINITY; return create_with(c); }
CASE(create_scale_reversed) { ijepa_config c = f->cfg; c.pred_mask_scale[0] = 0.5f; c.pred_mask_scale[1] = 0.2f; return create_with(c); }
CASE(create_nan_aspect) { ijepa_config c = f->cfg; c.aspect_ratio[1] = NAN; return create_with(c); }
CASE(create_zero_aspect) { ijepa_config c = f->cfg; c.aspect_ratio[0] = 0; return create_with(c); }
CASE(create_not_divisible) { ijepa_config c = f->cfg; c.image_size = 30; return create_with(c); }
CASE(create_patch0) { ijepa_config c = f->cfg; c.patch_size = 0; return create_with(c); }
CASE(create_patch_gt_image) { ijepa_config c = f->cfg; c.patch_size = 64; return create_with(c); }
CASE(create_image_neg) { ijepa_config c = f->cfg; c.image_size = -32; return create_with(c); }
CASE(create_chans0) { ijepa_config c = f->cfg; c.in_chans = 0; return create_with(c); }
CASE(create_heads_not_divisor) { ijepa_config c = f->cfg; c.num_heads = 5; return create_with(c); }
CASE(create_heads0) { ijepa_config c = f->cfg; c.num_heads = 0; return create_with(c); }
CASE(create_pred_heads_not_divisor) { ijepa_config c = f->cfg; c.pred_num_heads = 5; return create_with(c); }
CASE(create_pred_heads_neg) { ijepa_config c = f->cfg; c.pred_num_heads = -1; return create_with(c); }
CASE(create_depth0) { ijepa_config c = f->cfg; c.depth = 0; return create_with(c); }
CASE(create_pred_depth_neg) { ijepa_config c = f->cfg; c.pred_depth = -2; return create_with(c); }
CASE(create_embed0) { ijepa_config c = f->cfg; c.embed_dim = 0; return create_with(c); }
CASE(create_nenc0) { ijepa_config c = f->cfg; c.num_enc_masks = 0; return create_with(c); }
CASE(create_npred_neg) { ijepa_config c = f->cfg; c.num_pred_masks = -4; return create_with(c); }
CASE(create_min_keep_neg) { ijepa_config c = f->cfg; c.min_keep = -1; return create_with(c); }
CASE(create_never_valid_mask) {
    /* 4x4 grid, blocks clipped to 3x3 = 9 patches: never more than min_keep 10 (upstream issue #68) */
    ijepa_config c = f->cfg; c.image_size = 32; c.patch_size = 8; c.min_keep = 10; return create_with(c);
}
CASE(create_total0) { ijepa_config c = f->cfg; c.total_steps = 0; return create_with(c); }
CASE(create_warmup_gt_total) { ijepa_config c = f->cfg; c.warmup_steps = c.total_steps + 1; return create_with(c); }
CASE(create_warmup_neg) { ijepa_config c = f->cfg; c.warmup_steps = -1; return create_with(c); }
CASE(create_threads_huge) { ijepa_config c = f->cfg; c.n_threads = 1 << 20; return create_with(c); }
CASE(create_too_big) {
    /* fits every per-field limit but needs terabytes: refused before any allocation */
    ijepa_config c = f->cfg; c.embed_dim = 16384; c.num_heads = 16; c.depth = 512; return create_with(c);
}
CASE(create_grid_huge) { ijepa_config c = f->cfg; c.image_size = 16384; c.patch_size = 1; return create_with(c); }

/* model accessors */
CASE(free_null) { UNUSED; ijepa_model_free(NULL); return IJEPA_ERR_INVALID_ARGUMENT; } /* no crash; no message */
CASE(get_config_null_m) { UNUSED; ijepa_config c = {.struct_size = sizeof c}; return ijepa_model_get_config(NULL, &c); }
CASE(get_config_null_out) { return ijepa_model_get_config(f->m, NULL); }
CASE(set_threads_null) { UNUSED; return ijepa_model_set_n_threads(NULL, 1); }
CASE(set_threads_huge) { return ijepa_model_set_n_threads(f->m, 1 << 20); }
CASE(num_patches_null) { UNUSED; return st_of_int(ijepa_model_num_patches(NULL)); }
CASE(embed_dim_null) { UNUSED; return st_of_int(ijepa_model_embed_dim(NULL)); }
CASE(step_null) { UNUSED; return ijepa_model_step(NULL) >= 0 ? IJEPA_OK : IJEPA_ERR_INVALID_ARGUMENT; }

/* masks_sample */
CASE(sample_null_m) { UNUSED; ijepa_masks k; return ijepa_masks_sample(NULL, B, &k); }
CASE(sample_null_out) { return ijepa_masks_sample(f->m, B, NULL); }
CASE(sample_batch0) { ijepa_masks k; return ijepa_masks_sample(f->m, 0, &k); }
CASE(sample_batch_neg) { ijepa_masks k; return ijepa_masks_sample(f->m, -3, &k); }
CASE(sample_batch_huge) { ijepa_masks k; return ijepa_masks_sample(f->m, INT32_MAX, &k); }
CASE(sample_batch_min) { ijepa_masks k; return ijepa_masks_sample(f->m, INT32_MIN, &k); }

/* train_step / forward_backward: the same argument checks */
typedef int (*step_fn)(ijepa_model *, const float *, int32_t, const ijepa_masks *);
static int ts(ijepa_model *m, const float *x, int32_t b, const ijepa_masks *k) {
    ijepa_step_stats s;
    return ijepa_train_step(m, x, b, k, &s);
}
static int fb(ijepa_model *m, const float *x, int32_t b, const ijepa_masks *k) {
    float loss;
    return ijepa_forward_backward(m, x, b, k, &loss);
}
#define STEP_CASES(P, FN)                                                                               \
    CASE(P##_null_m) { return FN(NULL, f->img, B, &f->good); }                                          \
    CASE(P##_null_images) { return FN(f->m, NULL, B, &f->good); }                                       \
    CASE(P##_null_images_nomask) { return FN(f->m, NULL, B, NULL); }                                    \
    CASE(P##_batch0) { return FN(f->m, f->img, 0, NULL); }                                              \
    CASE(P##_batch_neg) { return FN(f->m, f->img, -1, NULL); }                                          \
    CASE(P##_batch_huge) { return FN(f->m, f->img, INT32_MAX, NULL); }                                  \
    CASE(P##_batch_2pow21) { return FN(f->m, f->img, 1 << 21, NULL); }                                  \
    CASE(P##_mask_batch) { return FN(f->m, f->img, 1, &f->good); }                                      \
    CASE(P##_mask_batch_field) { f->bad.batch = B + 1; return FN(f->m, f->img, B, &f->bad); }           \
    CASE(P##_mask_num_enc) { f->bad.num_enc += 1; return FN(f->m, f->img, B, &f->bad); }                \
    CASE(P##_mask_num_enc0) { f->bad.num_enc = 0; return FN(f->m, f->img, B, &f->bad); }                \
    CASE(P##_mask_num_pred) { f->bad.num_pred -= 1; return FN(f->m, f->img, B, &f->bad); }              \
    CASE(P##_mask_num_pred_neg) { f->bad.num_pred = -4; return FN(f->m, f->img, B, &f->bad); }          \
    CASE(P##_mask_k_enc0) { f->bad.k_enc = 0; return FN(f->m, f->img, B, &f->bad); }                    \
    CASE(P##_mask_k_enc_neg) { f->bad.k_enc = -5; return FN(f->m, f->img, B, &f->bad); }                \
    CASE(P##_mask_k_enc_big) { f->bad.k_enc = f->n_patches + 1; return FN(f->m, f->img, B, &f->bad); }  \
    CASE(P##_mask_k_pred_big) { f->bad.k_pred = INT32_MAX; return FN(f->m, f->img, B, &f->bad); }       \
    CASE(P##_mask_k_pred0) { f->bad.k_pred = 0; return FN(f->m, f->img, B, &f->bad); }                  \
    CASE(P##_mask_null_enc) { int32_t *p = f->bad.enc; f->bad.enc = NULL;                               \
        int st = FN(f->m, f->img, B, &f->bad); f->bad.enc = p; return st; }                             \
    CASE(P##_mask_null_pred) { int32_t *p = f->bad.pred; f->bad.pred = NULL;                            \
        int st = FN(f->m, f->img, B, &f->bad); f->bad.pred = p; return st; }                            \
    CASE(P##_mask_enc_index_big) { f->bad.enc[f->bad.k_enc - 1] = f->n_patches;                         \
        return FN(f->m, f->img, B, &f->bad); }                                                          \
    CASE(P##_mask_enc_index_neg) { f->bad.enc[0] = -1; return FN(f->m, f->img, B, &f->bad); }           \
    CASE(P##_mask_pred_index_big) {                                                                     \
        f->bad.pred[(size_t)f->bad.num_pred * B * f->bad.k_pred - 1] = INT32_MAX;                       \
        return FN(f->m, f->img, B, &f->bad); }                                                          \
    CASE(P##_mask_pred_dup) { f->bad.pred[1] = f->bad.pred[0]; return FN(f->m, f->img, B, &f->bad); }   \
    CASE(P##_mask_enc_dup) { /* last row, last two entries */                                           \
        size_t e = (size_t)f->bad.num_enc * B * f->bad.k_enc;                                           \
        f->bad.enc[e - 1] = f->bad.enc[e - 2]; return FN(f->m, f->img, B, &f->bad); }                   \
    CASE(P##_nan_images) { return FN(f->m, f->img_nan, B, &f->good); }

STEP_CASES(train, ts)
STEP_CASES(fwbw, fb)

/* ragged masks: f->good as ragged masks (every length k_enc) in f->rag, whose arrays the case edits */
static int32_t rag_len[64];
static int32_t rag_enc[4096];
static void make_ragged(fixture *f) {
    ijepa_ragged_masks *r = &f->rag;
    r->batch = f->good.batch; r->num_enc = f->good.num_enc; r->k_enc_max = f->good.k_enc;
    r->num_pred = f->good.num_pred; r->k_pred = f->good.k_pred;
    memcpy(rag_enc, f->good.enc, (size_t)r->num_enc * r->batch * r->k_enc_max * sizeof(int32_t));
    for (int i = 0; i < r->num_enc * r->batch; i++) rag_len[i] = r->k_enc_max;
    r->enc = rag_enc; r->enc_len = rag_len; r->pred = f->good.pred;
}
static int tsr(ijepa_model *m, const float *x, int32_t b, const ijepa_ragged_masks *k) {
    ijepa_step_stats s;
    return ijepa_train_step_ragged(m, x, b, k, &s);
}
static int fbr(ijepa_model *m, const float *x, int32_t b, const ijepa_ragged_masks *k) {
    float loss;
    return ijepa_forward_backward_ragged(m, x, b, k, &loss);
}
#define RAGGED_CASES(P, FN)                                                                             \
    CASE(P##_null_m) { make_ragged(f); return FN(NULL, f->img, B, &f->rag); }                            \
    CASE(P##_null_images) { make_ragged(f); return FN(f->m, NULL, B, &f->rag); }                         \
    CASE(P##_batch0) { return FN(f->m, f->img, 0, NULL); }                                              \
    CASE(P##_mask_batch) { make_ragged(f); return FN(f->m, f->img, 1, &f->rag); }                        \
    CASE(P##_null_len) { make_ragged(f); f->rag.enc_len = NULL; return FN(f->m, f->img, B, &f->rag); }   \
    CASE(P##_null_enc) { make_ragged(f); f->rag.enc = NULL; return FN(f->m, f->img, B, &f->rag); }       \
    CASE(P##_kmax0) { make_ragged(f); f->rag.k_enc_max = 0; return FN(f->m, f->img, B, &f->rag); }       \
    CASE(P##_len0) { make_ragged(f); rag_len[1] = 0; return FN(f->m, f->img, B, &f->rag); }              \
    CASE(P##_len_neg) { make_ragged(f); rag_len[0] = -3; return FN(f->m, f->img, B, &f->rag); }          \
    CASE(P##_len_big) { make_ragged(f); rag_len[0] = f->rag.k_enc_max + 1; return FN(f->m, f->img, B, &f->rag); } \
    CASE(P##_index_big) { make_ragged(f); rag_enc[0] = f->n_patches; return FN(f->m, f->img, B, &f->rag); } \
    CASE(P##_dup) { make_ragged(f); rag_enc[1] = rag_enc[0]; return FN(f->m, f->img, B, &f->rag); }      \
    CASE(P##_nan_images) { make_ragged(f); return FN(f->m, f->img_nan, B, &f->rag); }

RAGGED_CASES(train_ragged, tsr)
RAGGED_CASES(fwbw_ragged, fbr)
CASE(sample_ragged_null_m) { UNUSED; ijepa_ragged_masks r; return ijepa_masks_sample_ragged(NULL, B, &r); }
CASE(sample_ragged_null_out) { return ijepa_masks_sample_ragged(f->m, B, NULL); }
CASE(sample_ragged_batch0) { ijepa_ragged_masks r; return ijepa_masks_sample_ragged(f->m, 0, &r); }

/* optimizer_step / schedule override */
CASE(opt_null) { UNUSED; return ijepa_optimizer_step(NULL, NULL); }
CASE(opt_without_grads) { return ijepa_optimizer_step(f->m, NULL); }
CASE(opt_twice) {
    int st = ijepa_forward_backward(f->m, f->img, B, &f->good, NULL);
    if (st != IJEPA_OK) return IJEPA_ERR_INTERNAL;
    st = ijepa_optimizer_step(f->m, NULL);
    if (st != IJEPA_OK) return IJEPA_ERR_INTERNAL;
    return ijepa_optimizer_step(f->m, NULL);
}
CASE(opt_after_failed_fb) {
    /* a successful forward_backward, then one that fails: its gradients must not be applied */
    if (ijepa_forward_backward(f->m, f->img, B, &f->good, NULL) != IJEPA_OK) return IJEPA_ERR_INTERNAL;
    if (ijepa_forward_backward(f->m, f->img_nan, B, &f->good, NULL) != IJEPA_ERR_NUMERIC) return IJEPA_ERR_INTERNAL;
    return ijepa_optimizer_step(f->m, NULL);
}
CASE(override_null) { UNUSED; return ijepa_set_schedule_override(NULL, 1e-3f, 0.04f, 0.996f); }
CASE(override_nan_lr) { return ijepa_set_schedule_override(f->m, NAN, -1, -1); }
CASE(override_inf_wd) { return ijepa_set_schedule_override(f->m, -1, INFINITY, -1); }
CASE(override_ema_gt1) { return ijepa_set_schedule_override(f->m, -1, -1, 1.5f); }
CASE(override_nan_ema) { return ijepa_set_schedule_override(f->m, -1, -1, NAN); }

/* buffers and tensor info */
CASE(buffer_null_m) { UNUSED; size_t n; return st_of_ptr(ijepa_model_buffer(NULL, IJEPA_BUF_PARAMS, &n)); }
CASE(buffer_which_neg) { size_t n; return st_of_ptr(ijepa_model_buffer(f->m, -1, &n)); }
CASE(buffer_which_big) { size_t n; return st_of_ptr(ijepa_model_buffer(f->m, 5, &n)); }
CASE(num_tensors_null_m) { UNUSED; return st_of_int(ijepa_model_num_tensors(NULL, 0)); }
CASE(num_tensors_which) { return st_of_int(ijepa_model_num_tensors(f->m, 7)); }
CASE(num_tensors_which_neg) { return st_of_int(ijepa_model_num_tensors(f->m, INT32_MIN)); }
CASE(info_null_m) { UNUSED; ijepa_tensor_info t; return ijepa_model_tensor_info(NULL, 0, 0, &t); }
CASE(info_null_out) { return ijepa_model_tensor_info(f->m, 0, 0, NULL); }
CASE(info_which) { ijepa_tensor_info t; return ijepa_model_tensor_info(f->m, 5, 0, &t); }
CASE(info_index_neg) { ijepa_tensor_info t; return ijepa_model_tensor_info(f->m, 0, -1, &t); }
CASE(info_index_end) {
    ijepa_tensor_info t; return ijepa_model_tensor_info(f->m, 0, ijepa_model_num_tensors(f->m, 0), &t);
}
CASE(info_index_end_target) {
    ijepa_tensor_info t; return ijepa_model_tensor_info(f->m, 2, ijepa_model_num_tensors(f->m, 2), &t);
}

/* encode */
static float enc_out[B * 64 * 64 + 16];
CASE(encode_null_m) { return ijepa_encode(NULL, f->img, B, 0, enc_out, NULL); }
CASE(encode_null_images) { return ijepa_encode(f->m, NULL, B, 0, enc_out, NULL); }
CASE(encode_batch0) { return ijepa_encode(f->m, f->img, 0, 0, enc_out, NULL); }
CASE(encode_batch_neg) { return ijepa_encode(f->m, f->img, -7, 0, enc_out, NULL); }
CASE(encode_batch_huge) { return ijepa_encode(f->m, f->img, INT32_MAX, 0, enc_out, NULL); }
CASE(encode_kind_big) { return ijepa_encode(f->m, f->img, B, 2, enc_out, NULL); }
CASE(encode_kind_neg) { return ijepa_encode(f->m, f->img, B, -1, enc_out, NULL); }
CASE(encode_no_outputs) { return ijepa_encode(f->m, f->img, B, 0, NULL, NULL); }
CASE(encode_nan_images) { return ijepa_encode(f->m, f->img_nan, B, 1, enc_out, NULL); }
CASE(layers_null_m) { return ijepa_encode_layers(NULL, f->img, B, 0, 1, enc_out); }
CASE(layers_null_images) { return ijepa_encode_layers(f->m, NULL, B, 0, 1, enc_out); }
CASE(layers_batch0) { return ijepa_encode_layers(f->m, f->img, 0, 0, 1, enc_out); }
CASE(layers_kind) { return ijepa_encode_layers(f->m, f->img, B, 3, 1, enc_out); }
CASE(layers_k0) { return ijepa_encode_layers(f->m, f->img, B, 0, 0, enc_out); }
CASE(layers_k_neg) { return ijepa_encode_layers(f->m, f->img, B, 0, -2, enc_out); }
CASE(layers_k_big) { return ijepa_encode_layers(f->m, f->img, B, 0, f->cfg.depth + 1, enc_out); }
CASE(layers_null_pooled) { return ijepa_encode_layers(f->m, f->img, B, 0, 1, NULL); }
CASE(layers_nan_images) { return ijepa_encode_layers(f->m, f->img_nan, B, 1, 2, enc_out); }


/* checkpoints */
CASE(save_null_m) { UNUSED; return ijepa_model_save(NULL, P_SAVED, IJEPA_SAVE_WEIGHTS); }
CASE(save_null_path) { return ijepa_model_save(f->m, NULL, IJEPA_SAVE_WEIGHTS); }
CASE(save_empty_path) { return ijepa_model_save(f->m, "", IJEPA_SAVE_WEIGHTS); }
CASE(save_flags0) { return ijepa_model_save(f->m, P_SAVED, 0); }
CASE(save_flags_unknown) { return ijepa_model_save(f->m, P_SAVED, 4); }
CASE(save_flags_all) { return ijepa_model_save(f->m, P_SAVED, 0xFFFFFFFFu); }
CASE(save_no_dir) { return ijepa_model_save(f->m, P_NODIR, IJEPA_SAVE_WEIGHTS); }
CASE(save_to_dir) { return ijepa_model_save(f->m, f->dir, IJEPA_SAVE_WEIGHTS); }

static ijepa_model *const OUT_SENTINEL = (ijepa_model *)(uintptr_t)0x5EA1;
static int load_expect_untouched(const char *path) {
    ijepa_model *m = OUT_SENTINEL;
    int st = ijepa_model_load(path, &m);
    if (st == IJEPA_OK) { ijepa_model_free(m); return st; }
    CHECK(m == OUT_SENTINEL, "ijepa_model_load(%s) failed (%d) but wrote *out", path ? path : "NULL", st);
    return st;
}
CASE(load_null_path) { UNUSED; return load_expect_untouched(NULL); }
CASE(load_null_out) { UNUSED; return ijepa_model_load(P_GOOD, NULL); }
CASE(load_empty_path) { UNUSED; return load_expect_untouched(""); }
CASE(load_missing_file) { UNUSED; return load_expect_untouched(P_NODIR); }
CASE(load_directory) { return load_expect_untouched(f->dir); }
CASE(load_empty_file) { UNUSED; return load_expect_untouched(P_EMPTY); }
CASE(load_truncated) { UNUSED; return load_expect_untouched(P_TRUNC); }
CASE(load_garbage) { UNUSED; return load_expect_untouched(P_GARBAGE); }
CASE(load_huge_header) { UNUSED; return load_expect_untouched(P_HUGEHDR); }
CASE(load_bad_offsets) { UNUSED; return load_expect_untouched(P_BADOFF); }
CASE(load_no_config) { UNUSED; return load_expect_untouched(P_NOCONFIG); }
CASE(load_bad_config) { UNUSED; return load_expect_untouched(P_BADCONFIG); }
CASE(load_missing_tensor) { UNUSED; return load_expect_untouched(P_MISSING); }
CASE(lw_null_m) { UNUSED; return ijepa_model_load_weights(NULL, P_GOOD, 1); }
CASE(lw_null_path) { return ijepa_model_load_weights(f->m, NULL, 1); }
CASE(lw_empty_path) { return ijepa_model_load_weights(f->m, "", 0); }
CASE(lw_missing_file) { return ijepa_model_load_weights(f->m, P_NODIR, 0); }
CASE(lw_truncated) { return ijepa_model_load_weights(f->m, P_TRUNC, 0); }
CASE(lw_garbage) { return ijepa_model_load_weights(f->m, P_GARBAGE, 0); }
CASE(lw_missing_strict) { return ijepa_model_load_weights(f->m, P_MISSING, 1); }
CASE(lw_unexpected_strict) { return ijepa_model_load_weights(f->m, P_UNEXPECTED, 1); }
CASE(lw_shape) { return ijepa_model_load_weights(f->m, P_SHAPE, 0); }
CASE(lw_shape_strict) { return ijepa_model_load_weights(f->m, P_SHAPE, 1); }
CASE(lw_nan) { return ijepa_model_load_weights(f->m, P_NAN, 0); }
CASE(lw_dtype) { return ijepa_model_load_weights(f->m, P_DTYPE, 0); }
CASE(lw_other_model) {
    /* a checkpoint of a model with another width */
    ijepa_config c = f->cfg; c.embed_dim = 32; c.num_heads = 4;
    ijepa_model *o = NULL;
    if (ijepa_model_create(&c, &o) != IJEPA_OK) return IJEPA_ERR_INTERNAL;
    int st = ijepa_model_save(o, P_SAVED, IJEPA_SAVE_WEIGHTS);
    ijepa_model_free(o);
    if (st != IJEPA_OK) return IJEPA_ERR_INTERNAL;
    set_sentinel_error(); /* the setup above succeeded; only the load below may set it */
    return ijepa_model_load_weights(f->m, P_SAVED, 0);
}

/* data augmentation: x is [2][3][8][12] (f->img is large enough), out up to 2*3*16*16 */
static float aug_out[2 * 3 * 16 * 16];
static uint64_t aug_state = 7;
#define RRC(imgs, b, c, h, w, o, s0, s1, r0, r1, st, out) \
    ijepa_random_resized_crop(imgs, b, c, h, w, o, s0, s1, r0, r1, st, out)
CASE(rrc_null_images) { UNUSED; return RRC(NULL, 2, 3, 8, 12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_null_out) { return RRC(f->img, 2, 3, 8, 12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, NULL); }
CASE(rrc_null_state) { return RRC(f->img, 2, 3, 8, 12, 6, 0.5f, 1, 0.75f, 1.33f, NULL, aug_out); }
CASE(rrc_batch0) { return RRC(f->img, 0, 3, 8, 12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_batch_neg) { return RRC(f->img, -2, 3, 8, 12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_batch_huge) { return RRC(f->img, INT32_MAX, 3, 8, 12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_too_large) { return RRC(f->img, 1 << 20, 64, 16384, 16384, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_channels0) { return RRC(f->img, 2, 0, 8, 12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_height0) { return RRC(f->img, 2, 3, 0, 12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_width_neg) { return RRC(f->img, 2, 3, 8, -12, 6, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_out0) { return RRC(f->img, 2, 3, 8, 12, 0, 0.5f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_scale0) { return RRC(f->img, 2, 3, 8, 12, 6, 0.0f, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_scale_reversed) { return RRC(f->img, 2, 3, 8, 12, 6, 0.9f, 0.5f, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_scale_gt1) { return RRC(f->img, 2, 3, 8, 12, 6, 0.5f, 1.5f, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_scale_nan) { return RRC(f->img, 2, 3, 8, 12, 6, NAN, 1, 0.75f, 1.33f, &aug_state, aug_out); }
CASE(rrc_ratio0) { return RRC(f->img, 2, 3, 8, 12, 6, 0.5f, 1, 0.0f, 1.33f, &aug_state, aug_out); }
CASE(rrc_ratio_inf) { return RRC(f->img, 2, 3, 8, 12, 6, 0.5f, 1, 0.75f, INFINITY, &aug_state, aug_out); }
CASE(rrc_ratio_nan) { return RRC(f->img, 2, 3, 8, 12, 6, 0.5f, 1, NAN, 1.33f, &aug_state, aug_out); }
CASE(rrc_ratio_reversed) { return RRC(f->img, 2, 3, 8, 12, 6, 0.5f, 1, 2.0f, 1.0f, &aug_state, aug_out); }
CASE(rs_null_images) { UNUSED; return ijepa_resize_bilinear(NULL, 2, 3, 8, 12, 4, 6, aug_out); }
CASE(rs_null_out) { return ijepa_resize_bilinear(f->img, 2, 3, 8, 12, 4, 6, NULL); }
CASE(rs_batch0) { return ijepa_resize_bilinear(f->img, 0, 3, 8, 12, 4, 6, aug_out); }
CASE(rs_channels_big) { return ijepa_resize_bilinear(f->img, 2, 65, 8, 12, 4, 6, aug_out); }
CASE(rs_height_neg) { return ijepa_resize_bilinear(f->img, 2, 3, -8, 12, 4, 6, aug_out); }
CASE(rs_width0) { return ijepa_resize_bilinear(f->img, 2, 3, 8, 0, 4, 6, aug_out); }
CASE(rs_out_height0) { return ijepa_resize_bilinear(f->img, 2, 3, 8, 12, 0, 6, aug_out); }
CASE(rs_out_width_big) { return ijepa_resize_bilinear(f->img, 2, 3, 8, 12, 4, 1 << 20, aug_out); }
CASE(rs_too_large) { return ijepa_resize_bilinear(f->img, 1 << 20, 64, 16384, 16384, 4, 6, aug_out); }

typedef struct {
    const char *name;
    int (*fn)(fixture *);
    int expect;            /* status */
    const char *substr;    /* must occur in ijepa_last_error(); NULL: no message expected */
} error_case;

#define INV IJEPA_ERR_INVALID_ARGUMENT
#define SHP IJEPA_ERR_SHAPE
#define STEP_TABLE(P)                                                                \
    {#P "_null_m", P##_null_m, INV, "m is NULL"},                                   \
    {#P "_null_images", P##_null_images, INV, "images"},                            \
    {#P "_null_images_nomask", P##_null_images_nomask, INV, "images"},              \
    {#P "_batch0", P##_batch0, INV, "batch"},                                       \
    {#P "_batch_neg", P##_batch_neg, INV, "batch"},                                 \
    {#P "_batch_huge", P##_batch_huge, INV, "batch"},                               \
    {#P "_batch_2pow21", P##_batch_2pow21, INV, "batch"},                           \
    {#P "_mask_batch", P##_mask_batch, SHP, "batch"},                               \
    {#P "_mask_batch_field", P##_mask_batch_field, SHP, "batch"},                   \
    {#P "_mask_num_enc", P##_mask_num_enc, SHP, "num_enc"},                         \
    {#P "_mask_num_enc0", P##_mask_num_enc0, SHP, "num_enc"},                       \
    {#P "_mask_num_pred", P##_mask_num_pred, SHP, "num_pred"},                      \
    {#P "_mask_num_pred_neg", P##_mask_num_pred_neg, SHP, "num_pred"},              \
    {#P "_mask_k_enc0", P##_mask_k_enc0, SHP, "k_enc"},                             \
    {#P "_mask_k_enc_neg", P##_mask_k_enc_neg, SHP, "k_enc"},                       \
    {#P "_mask_k_enc_big", P##_mask_k_enc_big, SHP, "k_enc"},                       \
    {#P "_mask_k_pred_big", P##_mask_k_pred_big, SHP, "k_pred"},                    \
    {#P "_mask_k_pred0", P##_mask_k_pred0, SHP, "k_pred"},                          \
    {#P "_mask_null_enc", P##_mask_null_enc, INV, "enc"},                           \
    {#P "_mask_null_pred", P##_mask_null_pred, INV, "pred"},                        \
    {#P "_mask_enc_index_big", P##_mask_enc_index_big, INV, "enc"},                 \
    {#P "_mask_enc_index_neg", P##_mask_enc_index_neg, INV, "enc"},                 \
    {#P "_mask_pred_index_big", P##_mask_pred_index_big, INV, "pred"},              \
    {#P "_mask_pred_dup", P##_mask_pred_dup, INV, "pred"},                          \
    {#P "_mask_enc_dup", P##_mask_enc_dup, INV, "enc"},                             \
    {#P "_nan_images", P##_nan_images, IJEPA_ERR_NUMERIC, "images"}

#define RAGGED_ROWS(P)                                                              \
    {#P "_null_m", P##_null_m, INV, "m is NULL"},                                   \
    {#P "_null_images", P##_null_images, INV, "images"},                            \
    {#P "_batch0", P##_batch0, INV, "batch"},                                       \
    {#P "_mask_batch", P##_mask_batch, SHP, "batch"},                               \
    {#P "_null_len", P##_null_len, INV, "enc_len"},                                 \
    {#P "_null_enc", P##_null_enc, INV, "enc"},                                     \
    {#P "_kmax0", P##_kmax0, SHP, "k_enc_max"},                                     \
    {#P "_len0", P##_len0, SHP, "enc_len"},                                          \
    {#P "_len_neg", P##_len_neg, SHP, "enc_len"},                                    \
    {#P "_len_big", P##_len_big, SHP, "enc_len"},                                    \
    {#P "_index_big", P##_index_big, INV, "enc"},                                   \
    {#P "_dup", P##_dup, INV, "enc"},                                               \
    {#P "_nan_images", P##_nan_images, IJEPA_ERR_NUMERIC, "images"}

static const error_case CASES[] = {
    {"preset_null_name", preset_null_name, INV, "name"},
    {"preset_null_out", preset_null_out, INV, "out"},
    {"preset_unknown", preset_unknown, INV, "vit_nope"},
    {"preset_empty", preset_empty, INV, "preset"},
    {"preset_out_size0", preset_out_size0, INV, "struct_size"},
    {"config_field_negative", config_field_negative, INV, "index"},
    {"config_field_past_end", config_field_past_end, INV, "index"},
    {"config_field_max", config_field_max, INV, "index"},
    {"config_field_min", config_field_min, INV, "index"},
    {"default_out_size_small", default_out_size_small, INV, "struct_size"},
    {"default_null_out", default_null_out, INV, "out"},
    {"get_config_size0", get_config_size0, INV, "struct_size"},
    {"create_null_cfg", create_null_cfg, INV, "cfg"},
    {"create_null_out", create_null_out, INV, "out"},
    {"create_size0", create_size0, INV, "struct_size"},
    {"create_size_small", create_size_small, INV, "struct_size"},
    {"create_nan_lr", create_nan_lr, INV, "lr"},
    {"create_inf_start_lr", create_inf_start_lr, INV, "start_lr"},
    {"create_neg_final_lr", create_neg_final_lr, INV, "final_lr"},
    {"create_inf_mlp", create_inf_mlp, INV, "mlp_ratio"},
    {"create_nan_mlp", create_nan_mlp, INV, "mlp_ratio"},
    {"create_zero_mlp", create_zero_mlp, INV, "mlp_ratio"},
    {"create_nan_wd", create_nan_wd, INV, "weight_decay"},
    {"create_inf_final_wd", create_inf_final_wd, INV, "final_weight_decay"},
    {"create_nan_ema", create_nan_ema, INV, "ema_start"},
    {"create_ema_gt1", create_ema_gt1, INV, "ema_end"},
    {"create_nan_enc_scale", create_nan_enc_scale, INV, "enc_mask_scale"},
    {"create_inf_pred_scale", create_inf_pred_scale, INV, "pred_mask_scale"},
    {"create_scale_reversed", create_scale_reversed, INV, "pred_mask_scale"},
    {"create_nan_aspect", create_nan_aspect, INV, "aspect_ratio"},
    {"create_zero_aspect", create_zero_aspect, INV, "aspect_ratio"},
    {"create_not_divisible", create_not_divisible, INV, "divisible"},
    {"create_patch0", create_patch0, INV, "patch_size"},
    {"create_patch_gt_image", create_patch_gt_image, INV, "patch_size"},
    {"create_image_neg", create_image_neg, INV, "image_size"},
    {"create_chans0", create_chans0, INV, "in_chans"},
    {"create_heads_not_divisor", create_heads_not_divisor, INV, "num_heads"},
    {"create_heads0", create_heads0, INV, "num_heads"},
    {"create_pred_heads_not_divisor", create_pred_heads_not_divisor, INV, "pred"},
    {"create_pred_heads_neg", create_pred_heads_neg, INV, "pred_num_heads"},
    {"create_depth0", create_depth0, INV, "depth"},
    {"create_pred_depth_neg", create_pred_depth_neg, INV, "pred_depth"},
    {"create_embed0", create_embed0, INV, "embed_dim"},
    {"create_nenc0", create_nenc0, INV, "num_enc_masks"},
    {"create_npred_neg", create_npred_neg, INV, "num_pred_masks"},
    {"create_min_keep_neg", create_min_keep_neg, INV, "min_keep"},
    {"create_never_valid_mask", create_never_valid_mask, INV, "min_keep"},
    {"create_total0", create_total0, INV, "total_steps"},
    {"create_warmup_gt_total", create_warmup_gt_total, INV, "warmup_steps"},
    {"create_warmup_neg", create_warmup_neg, INV, "warmup_steps"},
    {"create_threads_huge", create_threads_huge, INV, "n_threads"},
    {"create_too_big", create_too_big, IJEPA_ERR_OUT_OF_MEMORY, "memory"},
    {"create_grid_huge", create_grid_huge, INV, "patches"},
    {"free_null", free_null, INV, NULL},
    {"get_config_null_m", get_config_null_m, INV, "m is NULL"},
    {"get_config_null_out", get_config_null_out, INV, "out"},
    {"set_threads_null", set_threads_null, INV, "m is NULL"},
    {"set_threads_huge", set_threads_huge, INV, "n_threads"},
    {"num_patches_null", num_patches_null, INV, "m is NULL"},
    {"embed_dim_null", embed_dim_null, INV, "m is NULL"},
    {"step_null", step_null, INV, "m is NULL"},
    {"sample_null_m", sample_null_m, INV, "m is NULL"},
    {"sample_null_out", sample_null_out, INV, "out"},
    {"sample_batch0", sample_batch0, INV, "batch"},
    {"sample_batch_neg", sample_batch_neg, INV, "batch"},
    {"sample_batch_huge", sample_batch_huge, INV, "batch"},
    {"sample_batch_min", sample_batch_min, INV, "batch"},
    STEP_TABLE(train),
    STEP_TABLE(fwbw),
    {"opt_null", opt_null, INV, "m is NULL"},
    {"opt_without_grads", opt_without_grads, IJEPA_ERR_STATE, "forward_backward"},
    {"opt_twice", opt_twice, IJEPA_ERR_STATE, "forward_backward"},
    {"opt_after_failed_fb", opt_after_failed_fb, IJEPA_ERR_STATE, "forward_backward"},
    {"override_null", override_null, INV, "m is NULL"},
    {"override_nan_lr", override_nan_lr, INV, "lr"},
    {"override_inf_wd", override_inf_wd, INV, "weight_decay"},
    {"override_ema_gt1", override_ema_gt1, INV, "ema_momentum"},
    {"override_nan_ema", override_nan_ema, INV, "ema_momentum"},
    {"buffer_null_m", buffer_null_m, INV, "m is NULL"},
    {"buffer_which_neg", buffer_which_neg, INV, "which"},
    {"buffer_which_big", buffer_which_big, INV, "which"},
    {"num_tensors_null_m", num_tensors_null_m, INV, "m is NULL"},
    {"num_tensors_which", num_tensors_which, INV, "which"},
    {"num_tensors_which_neg", num_tensors_which_neg, INV, "which"},
    {"info_null_m", info_null_m, INV, "m is NULL"},
    {"info_null_out", info_null_out, INV, "out"},
    {"info_which", info_which, INV, "which"},
    {"info_index_neg", info_index_neg, INV, "index"},
    {"info_index_end", info_index_end, INV, "index"},
    {"info_index_end_target", info_index_end_target, INV, "index"},
    {"encode_null_m", encode_null_m, INV, "m is NULL"},
    {"encode_null_images", encode_null_images, INV, "images"},
    {"encode_batch0", encode_batch0, INV, "batch"},
    {"encode_batch_neg", encode_batch_neg, INV, "batch"},
    {"encode_batch_huge", encode_batch_huge, INV, "batch"},
    {"encode_kind_big", encode_kind_big, INV, "which_encoder"},
    {"encode_kind_neg", encode_kind_neg, INV, "which_encoder"},
    {"encode_no_outputs", encode_no_outputs, INV, "tokens"},
    {"encode_nan_images", encode_nan_images, IJEPA_ERR_NUMERIC, "images"},
    {"layers_null_m", layers_null_m, INV, "m is NULL"},
    {"layers_null_images", layers_null_images, INV, "images"},
    {"layers_batch0", layers_batch0, INV, "batch"},
    {"layers_kind", layers_kind, INV, "which_encoder"},
    {"layers_k0", layers_k0, INV, "last_k"},
    {"layers_k_neg", layers_k_neg, INV, "last_k"},
    {"layers_k_big", layers_k_big, INV, "last_k"},
    {"layers_null_pooled", layers_null_pooled, INV, "pooled"},
    {"layers_nan_images", layers_nan_images, IJEPA_ERR_NUMERIC, "images"},
    RAGGED_ROWS(train_ragged),
    RAGGED_ROWS(fwbw_ragged),
    {"sample_ragged_null_m", sample_ragged_null_m, INV, "m is NULL"},
    {"sample_ragged_null_out", sample_ragged_null_out, INV, "out"},
    {"sample_ragged_batch0", sample_ragged_batch0, INV, "batch"},
    {"save_null_m", save_null_m, INV, "m is NULL"},
    {"save_null_path", save_null_path, INV, "path"},
    {"save_empty_path", save_empty_path, INV, "path"},
    {"save_flags0", save_flags0, INV, "flags"},
    {"save_flags_unknown", save_flags_unknown, INV, "flags"},
    {"save_flags_all", save_flags_all, INV, "flags"},
    {"save_no_dir", save_no_dir, IJEPA_ERR_IO, "no-such-dir"},
    {"save_to_dir", save_to_dir, IJEPA_ERR_IO, "ijepa-test-errors"},
    {"load_null_path", load_null_path, INV, "path"},
    {"load_null_out", load_null_out, INV, "out"},
    {"load_empty_path", load_empty_path, INV, "path"},
    {"load_missing_file", load_missing_file, IJEPA_ERR_IO, "no-such-dir"},
    {"load_directory", load_directory, IJEPA_ERR_IO, "ijepa-test-errors"},
    {"load_empty_file", load_empty_file, IJEPA_ERR_FORMAT, "0 bytes"},
    {"load_truncated", load_truncated, IJEPA_ERR_FORMAT, "trunc"},
    {"load_garbage", load_garbage, IJEPA_ERR_FORMAT, "header length"},
    {"load_huge_header", load_huge_header, IJEPA_ERR_FORMAT, "header"},
    {"load_bad_offsets", load_bad_offsets, IJEPA_ERR_FORMAT, "encoder.norm.bias"},
    {"load_no_config", load_no_config, IJEPA_ERR_FORMAT, "ijepa.config"},
    {"load_bad_config", load_bad_config, IJEPA_ERR_FORMAT, "patch_size"},
    {"load_missing_tensor", load_missing_tensor, IJEPA_ERR_FORMAT, "predictor.mask_token"},
    {"lw_null_m", lw_null_m, INV, "m is NULL"},
    {"lw_null_path", lw_null_path, INV, "path"},
    {"lw_empty_path", lw_empty_path, INV, "path"},
    {"lw_missing_file", lw_missing_file, IJEPA_ERR_IO, "no-such-dir"},
    {"lw_truncated", lw_truncated, IJEPA_ERR_FORMAT, "trunc"},
    {"lw_garbage", lw_garbage, IJEPA_ERR_FORMAT, "header length"},
    {"lw_missing_strict", lw_missing_strict, IJEPA_ERR_FORMAT, "predictor.mask_token"},
    {"lw_unexpected_strict", lw_unexpected_strict, IJEPA_ERR_FORMAT, "encoder.extra_tensor"},
    {"lw_shape", lw_shape, IJEPA_ERR_FORMAT, "encoder.norm.weight"},
    {"lw_shape_strict", lw_shape_strict, IJEPA_ERR_FORMAT, "encoder.norm.weight"},
    {"lw_nan", lw_nan, IJEPA_ERR_NUMERIC, "encoder.norm.bias"},
    {"lw_dtype", lw_dtype, IJEPA_ERR_FORMAT, "encoder.norm.weight"},
    {"lw_other_model", lw_other_model, IJEPA_ERR_FORMAT, "shape"},
    {"rrc_null_images", rrc_null_images, INV, "images"},
    {"rrc_null_out", rrc_null_out, INV, "out"},
    {"rrc_null_state", rrc_null_state, INV, "rng_state"},
    {"rrc_batch0", rrc_batch0, INV, "batch"},
    {"rrc_batch_neg", rrc_batch_neg, INV, "batch"},
    {"rrc_batch_huge", rrc_batch_huge, INV, "batch"},
    {"rrc_too_large", rrc_too_large, SHP, "batch"},
    {"rrc_channels0", rrc_channels0, INV, "channels"},
    {"rrc_height0", rrc_height0, INV, "height"},
    {"rrc_width_neg", rrc_width_neg, INV, "width"},
    {"rrc_out0", rrc_out0, INV, "out_size"},
    {"rrc_scale0", rrc_scale0, INV, "scale"},
    {"rrc_scale_reversed", rrc_scale_reversed, INV, "scale"},
    {"rrc_scale_gt1", rrc_scale_gt1, INV, "scale"},
    {"rrc_scale_nan", rrc_scale_nan, INV, "scale"},
    {"rrc_ratio0", rrc_ratio0, INV, "ratio"},
    {"rrc_ratio_inf", rrc_ratio_inf, INV, "ratio"},
    {"rrc_ratio_nan", rrc_ratio_nan, INV, "ratio"},
    {"rrc_ratio_reversed", rrc_ratio_reversed, INV, "ratio"},
    {"rs_null_images", rs_null_images, INV, "images"},
    {"rs_null_out", rs_null_out, INV, "out"},
    {"rs_batch0", rs_batch0, INV, "batch"},
    {"rs_channels_big", rs_channels_big, INV, "channels"},
    {"rs_height_neg", rs_height_neg, INV, "height"},
    {"rs_width0", rs_width0, INV, "width"},
    {"rs_out_height0", rs_out_height0, INV, "out_height"},
    {"rs_out_width_big", rs_out_width_big, INV, "out_width"},
    {"rs_too_large", rs_too_large, SHP, "batch"},
};


/* ---- NaN / Inf images leave every buffer bit-identical ---------------------------------- */
typedef struct { float *copy[5]; size_t n[5]; } snapshot;

static void snap(ijepa_model *m, snapshot *s) {
    for (int w = 0; w < 5; w++) {
        float *p = ijepa_model_buffer(m, w, &s->n[w]);
        s->copy[w] = malloc(s->n[w] * sizeof(float));
        memcpy(s->copy[w], p, s->n[w] * sizeof(float));
    }
}

static int same_as(ijepa_model *m, const snapshot *s, const char *what) {
    static const char *names[5] = {"PARAMS", "GRADS", "TARGET", "ADAM_M", "ADAM_V"};
    int ok = 1;
    for (int w = 0; w < 5; w++) {
        size_t n = 0;
        float *p = ijepa_model_buffer(m, w, &n);
        int same = n == s->n[w] && memcmp(p, s->copy[w], n * sizeof(float)) == 0;
        CHECK(same, "%s changed buffer %s", what, names[w]);
        ok &= same;
    }
    return ok;
}

static void unsnap(snapshot *s) { for (int w = 0; w < 5; w++) free(s->copy[w]); }

/* Cases that take successful steps on purpose before the failing call. */
static int mutates(const char *name) {
    return strcmp(name, "opt_twice") == 0 || strcmp(name, "opt_after_failed_fb") == 0;
}

static void run_table(fixture *f) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const error_case *tc = &CASES[i];
        copy_masks(&f->bad, &f->good);
        snapshot before;
        snap(f->m, &before);
        uint64_t state_before = aug_state;
        for (size_t k = 0; k < sizeof aug_out / sizeof aug_out[0]; k++) aug_out[k] = -777.0f;
        set_sentinel_error();
        int st = tc->fn(f);
        int aug_touched = 0;
        for (size_t k = 0; k < sizeof aug_out / sizeof aug_out[0]; k++) aug_touched += aug_out[k] != -777.0f;
        CHECK(st == IJEPA_OK || (aug_touched == 0 && aug_state == state_before),
              "%s failed but wrote its output (%d floats) or advanced rng_state", tc->name, aug_touched);
        const char *msg = ijepa_last_error();
        CHECK(st == tc->expect, "%s: status %d (%s), expected %d (%s); last error: %s", tc->name, st,
              ijepa_status_string(st), tc->expect, ijepa_status_string(tc->expect), msg);
        CHECK(msg != NULL, "%s: ijepa_last_error() is NULL", tc->name);
        if (msg && tc->substr) {
            CHECK(msg[0] != '\0' && strstr(msg, "xyzzy") == NULL, "%s: no fresh error message (got '%s')",
                  tc->name, msg);
            CHECK(strstr(msg, tc->substr) != NULL, "%s: message '%s' does not mention '%s'", tc->name, msg,
                  tc->substr);
        }
        /* "On failure ... outputs are left untouched": the model's buffers too */
        if (!mutates(tc->name)) {
            char what[96];
            snprintf(what, sizeof what, "failed call %s", tc->name);
            same_as(f->m, &before, what);
        }
        unsnap(&before);
        if (getenv("IJEPA_TEST_VERBOSE")) printf("  %-36s %3d  %s\n", tc->name, st, msg ? msg : "(null)");
        free_copy(&f->bad);
    }
}


/* ---- checkpoint files for the cases --------------------------------------------------------- */
static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    int ok = fwrite(p, 1, n, fp) == n;
    return (fclose(fp) == 0 && ok) ? 0 : -1;
}

/* Copies the good checkpoint's tensors with one edit. drop: leave this tensor out; add: append
 * a tensor of this name; reshape: give this tensor one element more; nan: put a NaN into it;
 * retype: store this tensor as retype_to ("F64" or "I64", 8 bytes per value). Metadata: kept
 * when keep_meta, with ijepa.config replaced by config_override if given. */
static int write_variant(const char *dst, const char *drop, const char *add, const char *reshape,
                         const char *nan_in, const char *retype, const char *retype_to, int keep_meta,
                         const char *config_override) {
    st_file g;
    char err[256];
    if (st_open(P_GOOD, &g, err, sizeof err)) { CHECK(0, "%s", err); return -1; }
    st_out_tensor *t = calloc(g.count + 1, sizeof *t);
    void **owned = calloc(g.count + 1, sizeof *owned);
    size_t n = 0;
    static const float extra[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < g.count; i++) {
        const st_tensor *src = &g.tensors[i];
        if (drop && strcmp(src->name, drop) == 0) continue;
        st_out_tensor *o = &t[n];
        o->name = src->name;
        o->dtype = src->dtype_name;
        o->ndim = src->ndim;
        memcpy(o->shape, src->shape, sizeof o->shape);
        o->data = g.bytes + src->begin;
        o->nbytes = src->end - src->begin;
        if (reshape && strcmp(src->name, reshape) == 0) {
            o->shape[o->ndim - 1] += 1;
            float *d = calloc(src->numel + 1, sizeof(float));
            memcpy(d, g.bytes + src->begin, src->numel * sizeof(float));
            o->data = d; o->nbytes = (src->numel + 1) * sizeof(float); owned[n] = d;
        }
        if (nan_in && strcmp(src->name, nan_in) == 0) {
            float *d = malloc(src->numel * sizeof(float));
            memcpy(d, g.bytes + src->begin, src->numel * sizeof(float));
            d[src->numel > 3 ? 3 : 0] = NAN;
            o->data = d; owned[n] = d;
        }
        if (retype && strcmp(src->name, retype) == 0) {
            void *d = malloc(src->numel * 8);
            for (size_t k = 0; k < src->numel; k++) {
                float v;
                memcpy(&v, g.bytes + src->begin + 4 * k, 4);
                if (strcmp(retype_to, "F64") == 0) ((double *)d)[k] = v;
                else ((int64_t *)d)[k] = (int64_t)(v * 1000);
            }
            o->dtype = retype_to; o->data = d; o->nbytes = src->numel * 8; owned[n] = d;
        }
        n++;
    }
    if (add) {
        t[n].name = add; t[n].dtype = "F32"; t[n].ndim = 1; t[n].shape[0] = 4; t[n].data = extra; t[n].nbytes = sizeof extra;
        n++;
    }
    const char *meta[16];
    size_t nm = 0;
    const json_value *md = json_get(&g.header, "__metadata__");
    for (size_t i = 0; keep_meta && md && i < md->count && nm < 8; i++) {
        meta[2 * nm] = md->keys[i];
        meta[2 * nm + 1] = (config_override && strcmp(md->keys[i], "ijepa.config") == 0) ? config_override : md->items[i].string;
        nm++;
    }
    int r = st_write(dst, t, n, meta, nm, err, sizeof err);
    CHECK(r == 0, "write %s: %s", dst, err);
    for (size_t i = 0; i <= g.count; i++) free(owned[i]);
    free(owned); free(t);
    st_close(&g);
    return r;
}

static int make_files(fixture *f) {
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/ijepa-test-errors-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) { CHECK(0, "mkdtemp(%s)", f->dir); return -1; }
#define P(var, file) snprintf(var, sizeof var, "%s/%s", f->dir, file)
    P(P_GOOD, "good.safetensors"); P(P_EMPTY, "empty.safetensors"); P(P_TRUNC, "trunc.safetensors");
    P(P_GARBAGE, "garbage.safetensors"); P(P_HUGEHDR, "hugehdr.safetensors"); P(P_BADOFF, "badoff.safetensors");
    P(P_NOCONFIG, "noconfig.safetensors"); P(P_BADCONFIG, "badconfig.safetensors"); P(P_MISSING, "missing.safetensors");
    P(P_UNEXPECTED, "unexpected.safetensors"); P(P_SHAPE, "shape.safetensors"); P(P_NAN, "nan.safetensors");
    P(P_DTYPE, "dtype.safetensors"); P(P_F64, "f64.safetensors"); P(P_NODIR, "no-such-dir/x.safetensors"); P(P_SAVED, "saved.safetensors");
#undef P
    int st = ijepa_model_save(f->m, P_GOOD, IJEPA_SAVE_TRAINING_STATE);
    CHECK(st == IJEPA_OK, "save: %s", ijepa_last_error());
    if (st != IJEPA_OK) return -1;
    /* raw corruptions */
    FILE *fp = fopen(P_GOOD, "rb");
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)size);
    size_t got = fread(bytes, 1, (size_t)size, fp);
    fclose(fp);
    CHECK(got == (size_t)size, "read back");
    int ok = write_bytes(P_EMPTY, "", 0) == 0 && write_bytes(P_TRUNC, bytes, (size_t)size - 100) == 0;
    unsigned char g[64];
    memset(g, 'x', sizeof g);
    ok = ok && write_bytes(P_GARBAGE, g, sizeof g) == 0;
    unsigned char h[64];
    memcpy(h, bytes, sizeof h);
    memset(h, 0x7F, 8);
    ok = ok && write_bytes(P_HUGEHDR, h, sizeof h) == 0;
    free(bytes);
    CHECK(ok, "writing the corrupt files");
    /* structured variants */
    ok = write_variant(P_NOCONFIG, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL) == 0;
    const char *bad_cfg = NULL;
    {   /* the saved config with patch_size 5 (32 is not divisible by 5) */
        st_file gf;
        char err[128];
        static char cfgbuf[8192];
        if (st_open(P_GOOD, &gf, err, sizeof err) == 0) {
            const char *c = st_metadata(&gf, "ijepa.config");
            const char *ps = c ? strstr(c, "\"patch_size\"") : NULL;
            if (ps && strlen(c) < sizeof cfgbuf - 8) {
                const char *num = strchr(ps, ':') + 1;
                while (*num == ' ') num++;
                size_t pre = (size_t)(num - c);
                const char *after = num;
                while (*after >= '0' && *after <= '9') after++;
                snprintf(cfgbuf, sizeof cfgbuf, "%.*s5%s", (int)pre, c, after);
                bad_cfg = cfgbuf;
            }
            st_close(&gf);
        }
        CHECK(bad_cfg != NULL, "could not find patch_size in the saved config");
    }
    ok = ok && bad_cfg && write_variant(P_BADCONFIG, NULL, NULL, NULL, NULL, NULL, NULL, 1, bad_cfg) == 0;
    ok = ok && write_variant(P_MISSING, "predictor.mask_token", NULL, NULL, NULL, NULL, NULL, 1, NULL) == 0;
    ok = ok && write_variant(P_UNEXPECTED, NULL, "encoder.extra_tensor", NULL, NULL, NULL, NULL, 1, NULL) == 0;
    ok = ok && write_variant(P_SHAPE, NULL, NULL, "encoder.norm.weight", NULL, NULL, NULL, 1, NULL) == 0;
    ok = ok && write_variant(P_NAN, NULL, NULL, NULL, "encoder.norm.bias", NULL, NULL, 1, NULL) == 0;
    ok = ok && write_variant(P_F64, NULL, NULL, NULL, NULL, "encoder.norm.weight", "F64", 1, NULL) == 0;
    ok = ok && write_variant(P_DTYPE, NULL, NULL, NULL, NULL, "encoder.norm.weight", "I64", 1, NULL) == 0;
    {   /* data_offsets past the end: rewrite the last tensor's end offset in the header text */
        ok = ok && write_variant(P_BADOFF, NULL, NULL, NULL, NULL, NULL, NULL, 1, NULL) == 0;
        fp = fopen(P_BADOFF, "r+b");
        unsigned char l8[8];
        if (fp && fread(l8, 1, 8, fp) == 8) {
            uint64_t hl = 0;
            for (int i = 7; i >= 0; i--) hl = (hl << 8) | l8[i];
            char *hdr = calloc(hl + 1, 1);
            if (fread(hdr, 1, hl, fp) == hl) {
                char *key = strstr(hdr, "\"encoder.norm.bias\"");
                char *offs = key ? strstr(key, "data_offsets\":[") : NULL;
                if (offs) {
                    char *comma = strchr(offs, ',');
                    /* make the end offset 9999999..., same length */
                    for (char *q = comma + 1; *q >= '0' && *q <= '9'; q++) *q = '9';
                    fseek(fp, 8, SEEK_SET);
                    fwrite(hdr, 1, hl, fp);
                } else ok = 0;
            }
            free(hdr);
        }
        if (fp) fclose(fp);
    }
    CHECK(ok, "writing the checkpoint variants");
    return ok ? 0 : -1;
}

static void remove_files(fixture *f) {
    const char *all[] = {P_GOOD, P_EMPTY, P_TRUNC, P_GARBAGE, P_HUGEHDR, P_BADOFF, P_NOCONFIG, P_BADCONFIG,
                         P_MISSING, P_UNEXPECTED, P_SHAPE, P_NAN, P_DTYPE, P_F64, P_SAVED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) unlink(all[i]);
    if (rmdir(f->dir) != 0) CHECK(0, "%s is not empty after the test (temporary files left by a save?)", f->dir);
    /* save_to_dir wrote its temporary file next to the directory; the failed save must remove it */
    char parent[512];
    snprintf(parent, sizeof parent, "%s", f->dir);
    char *slash = strrchr(parent, '/');
    if (slash) {
        const char *base = slash + 1;
        *slash = '\0';
        DIR *d = opendir(parent[0] ? parent : "/");
        struct dirent *e;
        int left = 0;
        while (d && (e = readdir(d)) != NULL) left += strncmp(e->d_name, base, strlen(base)) == 0;
        if (d) closedir(d);
        CHECK(left == 0, "%d temporary file(s) named %s* left in %s by a failed save", left, base, parent);
    }
}

/* load_weights non-strict with a tensor missing: the rest is loaded, the missing one kept. */
static void test_load_weights_partial(fixture *f) {
    ijepa_config c = f->cfg;
    c.seed += 77;
    ijepa_model *m = NULL, *ref = NULL;
    if (ijepa_model_create(&c, &m) != IJEPA_OK || ijepa_model_load(P_GOOD, &ref) != IJEPA_OK) {
        CHECK(0, "setup: %s", ijepa_last_error());
        ijepa_model_free(m);
        return;
    }
    ijepa_tensor_info mt;
    int32_t nt = ijepa_model_num_tensors(m, IJEPA_BUF_PARAMS), imt = -1;
    for (int32_t i = 0; i < nt; i++) {
        ijepa_model_tensor_info(m, IJEPA_BUF_PARAMS, i, &mt);
        if (strcmp(mt.name, "predictor.mask_token") == 0) { imt = i; break; }
    }
    CHECK(imt >= 0, "no predictor.mask_token");
    size_t n = 0;
    float *p = ijepa_model_buffer(m, IJEPA_BUF_PARAMS, &n);
    size_t cnt = (size_t)(mt.shape[0] * mt.shape[1] * mt.shape[2] * mt.shape[3]);
    float *keep = malloc(cnt * sizeof(float));
    memcpy(keep, p + mt.offset, cnt * sizeof(float));
    CHECK_OK(ijepa_model_load_weights(m, P_MISSING, 0));
    const float *r = ijepa_model_buffer(ref, IJEPA_BUF_PARAMS, NULL);
    CHECK(memcmp(p + mt.offset, keep, cnt * sizeof(float)) == 0, "the missing tensor was changed");
    CHECK(memcmp(p, r, mt.offset * sizeof(float)) == 0 &&
          memcmp(p + mt.offset + cnt, r + mt.offset + cnt, (n - mt.offset - cnt) * sizeof(float)) == 0,
          "the present tensors were not loaded");
    /* non-strict ignores unexpected tensors */
    CHECK_OK(ijepa_model_load_weights(m, P_UNEXPECTED, 0));
    /* F64 tensors are converted (the loader accepts F32, F64, F16, BF16) */
    ijepa_model *m2 = NULL;
    CHECK_OK(ijepa_model_create(&c, &m2));
    if (m2) {
        CHECK_OK(ijepa_model_load_weights(m2, P_F64, 1));
        CHECK(memcmp(ijepa_model_buffer(m2, IJEPA_BUF_PARAMS, NULL), r, n * sizeof(float)) == 0,
              "an F64 copy of the weights does not load to the same values");
        ijepa_model_free(m2);
    }
    free(keep);
    ijepa_model_free(m);
    ijepa_model_free(ref);
}

/* ---- NaN / Inf images ------------------------------------------------------------------- */
static void test_nonfinite_images(const ijepa_config *cfg) {
    ijepa_config c = *cfg;
    ijepa_model *m = NULL;
    if (ijepa_model_create(&c, &m) != IJEPA_OK) { CHECK(0, "create: %s", ijepa_last_error()); return; }
    float *img = make_images(&c, B);
    ijepa_step_stats s;
    /* two good steps first, so that the optimizer state and the gradients are not all zero */
    CHECK_OK(ijepa_train_step(m, img, B, NULL, &s));
    CHECK_OK(ijepa_train_step(m, img, B, NULL, &s));
    CHECK(s.step == 2, "step %lld", (long long)s.step);
    ijepa_masks k;
    CHECK_OK(ijepa_masks_sample(m, B, &k));
    const size_t n = image_floats(&c, B);
    const float bad_values[3] = {NAN, INFINITY, -INFINITY};
    const size_t positions[3] = {0, n / 2 + 1, n - 1};
    snapshot before;
    snap(m, &before);
    for (int v = 0; v < 3; v++)
        for (int p = 0; p < 3; p++) {
            float *x = make_images(&c, B);
            x[positions[p]] = bad_values[v];
            char what[96];
            int st = ijepa_train_step(m, x, B, &k, &s);
            snprintf(what, sizeof what, "train_step(value %g at %zu)", bad_values[v], positions[p]);
            CHECK(st == IJEPA_ERR_NUMERIC, "%s: status %d: %s", what, st, ijepa_last_error());
            same_as(m, &before, what);
            st = ijepa_train_step(m, x, B, NULL, &s);
            CHECK(st == IJEPA_ERR_NUMERIC, "%s with sampled masks: status %d", what, st);
            same_as(m, &before, what);
            st = ijepa_forward_backward(m, x, B, &k, NULL);
            snprintf(what, sizeof what, "forward_backward(value %g at %zu)", bad_values[v], positions[p]);
            CHECK(st == IJEPA_ERR_NUMERIC, "%s: status %d", what, st);
            same_as(m, &before, what);
            const int N = ijepa_model_num_patches(m), D = ijepa_model_embed_dim(m);
            float *tok = malloc(sizeof(float) * B * N * D);
            for (int i = 0; i < B * N * D; i++) tok[i] = 12345.f;
            st = ijepa_encode(m, x, B, IJEPA_TARGET_ENCODER, tok, NULL);
            CHECK(st == IJEPA_ERR_NUMERIC, "encode with non-finite images: status %d", st);
            int touched = 0;
            for (int i = 0; i < B * N * D; i++) touched += tok[i] != 12345.f;
            CHECK(touched == 0, "encode failed but wrote %d output floats", touched);
            free(tok);
            free(x);
        }
    /* the step counter did not move: the next good step is step 3 */
    CHECK_OK(ijepa_train_step(m, img, B, &k, &s));
    CHECK(s.step == 3, "step counter %lld after failed steps, expected 3", (long long)s.step);
    unsnap(&before);
    ijepa_masks_free(&k);
    free(img);
    ijepa_model_free(m);
}

/* ---- freed handles, create-free-create --------------------------------------------------- */
static void test_freed_handle(const ijepa_config *cfg) {
    ijepa_config c = *cfg;
    ijepa_model *m = NULL;
    if (ijepa_model_create(&c, &m) != IJEPA_OK) { CHECK(0, "create: %s", ijepa_last_error()); return; }
    ijepa_model_free(m);
    /* m is stale now; every call must refuse it, even after a new model was created (handles
     * are ids that are never reused, so the new model cannot take the old handle's value) */
    ijepa_model *fresh = NULL;
    CHECK_OK(ijepa_model_create(&c, &fresh));
    CHECK(fresh != m, "a new model got the freed model's handle");
    float *img = make_images(&c, B);
    ijepa_config o = {.struct_size = sizeof o};
    ijepa_masks k;
    ijepa_tensor_info t;
    size_t n;
    float out[64 * 2];
    struct { const char *what; int st; } r[] = {
        {"num_patches", st_of_int(ijepa_model_num_patches(m))},
        {"embed_dim", st_of_int(ijepa_model_embed_dim(m))},
        {"step", ijepa_model_step(m) >= 0 ? IJEPA_OK : IJEPA_ERR_INVALID_ARGUMENT},
        {"get_config", ijepa_model_get_config(m, &o)},
        {"set_n_threads", ijepa_model_set_n_threads(m, 1)},
        {"masks_sample", ijepa_masks_sample(m, B, &k)},
        {"train_step", ijepa_train_step(m, img, B, NULL, NULL)},
        {"forward_backward", ijepa_forward_backward(m, img, B, NULL, NULL)},
        {"optimizer_step", ijepa_optimizer_step(m, NULL)},
        {"set_schedule_override", ijepa_set_schedule_override(m, -1, -1, -1)},
        {"model_buffer", st_of_ptr(ijepa_model_buffer(m, 0, &n))},
        {"num_tensors", st_of_int(ijepa_model_num_tensors(m, 0))},
        {"tensor_info", ijepa_model_tensor_info(m, 0, 0, &t)},
        {"encode", ijepa_encode(m, img, B, 0, NULL, out)},
        {"model_save", ijepa_model_save(m, "/nonexistent-dir/x.safetensors", IJEPA_SAVE_WEIGHTS)},
        {"model_load_weights", ijepa_model_load_weights(m, "/nonexistent-dir/x.safetensors", 0)},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        CHECK(r[i].st == IJEPA_ERR_INVALID_ARGUMENT, "%s on a freed model: status %d", r[i].what, r[i].st);
    }
    set_sentinel_error();
    CHECK(ijepa_model_num_patches(m) == -1, "freed model has patches");
    CHECK(strstr(ijepa_last_error(), "live") != NULL, "freed-handle message: '%s'", ijepa_last_error());
    ijepa_model_free(m); /* double free: a no-op, not a crash */
    CHECK(ijepa_model_num_patches(fresh) > 0, "the fresh model was hurt by the stale handle's calls");
    ijepa_model_free(fresh);
    /* a pointer that never came from ijepa_model_create */
    int junk[64] = {0};
    CHECK(ijepa_model_num_patches((ijepa_model *)junk) == -1, "a random pointer was taken for a model");
    CHECK(ijepa_train_step((ijepa_model *)junk, img, B, NULL, NULL) == IJEPA_ERR_INVALID_ARGUMENT, "random pointer");
    ijepa_model_free((ijepa_model *)junk); /* not ours: ignored */

    /* create - free - create: the second model works */
    for (int round = 0; round < 3; round++) {
        ijepa_model *a = NULL;
        int st = ijepa_model_create(&c, &a);
        CHECK(st == IJEPA_OK && a, "create round %d: %s", round, ijepa_last_error());
        if (st != IJEPA_OK) break;
        ijepa_step_stats s;
        CHECK_OK(ijepa_train_step(a, img, B, NULL, &s));
        CHECK(s.step == 1, "round %d step %lld", round, (long long)s.step);
        ijepa_model_free(a);
    }
    free(img);
}


/* ---- regressions: library bugs found by this suite, fixed, and kept as checks ---------------- */
static void test_regressions(const ijepa_config *cfg) {
    /* 1. "IJEPA_ERR_NUMERIC ... nothing updated": a train_step with masks = NULL and NaN images
     *    still advances the model's mask generator, so later masks differ from a model that never
     *    saw the failed call (the generator is part of the training state checkpoints save). */
    ijepa_config c = *cfg;
    ijepa_model *x = NULL, *y = NULL;
    if (ijepa_model_create(&c, &x) == IJEPA_OK && ijepa_model_create(&c, &y) == IJEPA_OK) {
        float *bad = make_images(&c, B);
        bad[5] = NAN;
        CHECK(ijepa_train_step(x, bad, B, NULL, NULL) == IJEPA_ERR_NUMERIC, "NaN step");
        CHECK(ijepa_forward_backward(x, bad, B, NULL, NULL) == IJEPA_ERR_NUMERIC, "NaN forward_backward");
        ijepa_masks a, b;
        CHECK_OK(ijepa_masks_sample(x, B, &a));
        CHECK_OK(ijepa_masks_sample(y, B, &b));
        CHECK(a.k_enc == b.k_enc && a.k_pred == b.k_pred &&
              memcmp(a.enc, b.enc, sizeof(int32_t) * a.num_enc * B * a.k_enc) == 0 &&
              memcmp(a.pred, b.pred, sizeof(int32_t) * a.num_pred * B * a.k_pred) == 0,
              "regression: a failed (NaN) train_step/forward_backward with masks = NULL advanced the mask generator");
        ijepa_masks_free(&a);
        ijepa_masks_free(&b);
        free(bad);
    }
    ijepa_model_free(x);
    ijepa_model_free(y);

    /* 2. A config that ijepa_model_create accepts must be able to sample masks: image 32, patch 8
     *    (4x4 grid), min_keep 3. Create only checks the LARGEST possible block (2x2 = 4 > 3), but
     *    batch 0 draws a 1x1 target block, and since a failed draw does not advance the collator,
     *    every ijepa_masks_sample / ijepa_train_step(masks = NULL) then fails the same way, with
     *    IJEPA_ERR_INVALID_ARGUMENT although the batch argument is valid. */
    c = *cfg;
    c.image_size = 32; c.patch_size = 8; c.min_keep = 3;
    ijepa_model *m = NULL;
    int st = ijepa_model_create(&c, &m);
    if (st == IJEPA_OK) {
        int failures = 0;
        for (int i = 0; i < 5; i++) {
            ijepa_masks k;
            if (ijepa_masks_sample(m, B, &k) == IJEPA_OK) ijepa_masks_free(&k);
            else failures++;
        }
        CHECK(failures == 0, "regression: model created with image 32 / patch 8 / min_keep 3, but %d of 5 "
              "ijepa_masks_sample calls failed: %s", failures, ijepa_last_error());
        ijepa_model_free(m);
    }
    /* 3. ijepa_resize_bilinear names its output size "out_size" (an argument of
     *    ijepa_random_resized_crop) when out_height / out_width is bad. */
    {
        float img[2 * 2], out[4];
        img[0] = img[1] = img[2] = img[3] = 1;
        ijepa_resize_bilinear(img, 1, 1, 2, 2, 0, 2, out);
        CHECK(strstr(ijepa_last_error(), "out_height") != NULL, "regression: bad out_height reported as: %s",
              ijepa_last_error());
        ijepa_resize_bilinear(img, 1, 1, 2, 2, 2, 0, out);
        CHECK(strstr(ijepa_last_error(), "out_width") != NULL, "regression: bad out_width reported as: %s",
              ijepa_last_error());
    }
}

/* ---- per-thread last error ---------------------------------------------------------------- */
static pthread_barrier_t barrier;

typedef struct { const char *preset; int ok_initial; int ok_own; char seen[256]; } thread_arg;

static void *thread_main(void *p) {
    thread_arg *a = p;
    a->ok_initial = ijepa_last_error() != NULL && ijepa_last_error()[0] == '\0'; /* fresh thread: "" */
    ijepa_config c = {.struct_size = sizeof c};
    int st = ijepa_config_preset(a->preset, &c);
    pthread_barrier_wait(&barrier); /* both threads have failed */
    pthread_barrier_wait(&barrier); /* ... and neither reads before both did */
    const char *msg = ijepa_last_error();
    snprintf(a->seen, sizeof a->seen, "%s", msg ? msg : "(null)");
    a->ok_own = st == IJEPA_ERR_INVALID_ARGUMENT && msg && strstr(msg, a->preset) != NULL;
    /* a successful call does not clear it */
    ijepa_config_preset("tiny32", &c);
    a->ok_own &= strstr(ijepa_last_error(), a->preset) != NULL;
    return NULL;
}

static void test_thread_local_error(void) {
    set_sentinel_error(); /* the main thread's own message */
    pthread_barrier_init(&barrier, NULL, 2);
    thread_arg a = {"thread-A-preset", 0, 0, ""}, b = {"thread-B-preset", 0, 0, ""};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, thread_main, &a);
    pthread_create(&tb, NULL, thread_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(a.ok_initial && b.ok_initial, "a new thread's last error is not \"\"");
    CHECK(a.ok_own, "thread A sees '%s'", a.seen);
    CHECK(b.ok_own, "thread B sees '%s'", b.seen);
    CHECK(strstr(ijepa_last_error(), "xyzzy") != NULL, "main thread's message was overwritten: '%s'",
          ijepa_last_error());
}

int main(void) {
    fixture f;
    memset(&f, 0, sizeof f);
    f.cfg = small_config();
    REQUIRE_OK(ijepa_model_create(&f.cfg, &f.m));
    f.n_patches = ijepa_model_num_patches(f.m);
    REQUIRE(f.n_patches == 64 && ijepa_model_embed_dim(f.m) == 64, "unexpected model size");
    f.img = make_images(&f.cfg, B);
    f.img_nan = make_images(&f.cfg, B);
    f.img_nan[17] = NAN;
    REQUIRE_OK(ijepa_masks_sample(f.m, B, &f.good));
    REQUIRE(f.good.k_enc >= 2 && f.good.k_pred >= 2, "masks too small for the cases");

    /* one good step so that the optimizer state is not all zero */
    REQUIRE_OK(ijepa_train_step(f.m, f.img, B, NULL, NULL));
    REQUIRE(make_files(&f) == 0, "could not make the checkpoint files");
    run_table(&f);
    test_load_weights_partial(&f);
    remove_files(&f);
    test_nonfinite_images(&f.cfg);
    test_freed_handle(&f.cfg);
    test_thread_local_error();
    test_regressions(&f.cfg);

    ijepa_masks_free(&f.good);
    free(f.img);
    free(f.img_nan);
    ijepa_model_free(f.m);
    return check_summary("test_errors");
}
