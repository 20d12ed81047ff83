/*
 * data_parallel_split.c — the data-parallel pattern of libijepa, in one process.
 *
 *   run:  ./build/data_parallel_split [steps=4]
 *
 * A training step is split in two halves so that gradients can be all-reduced in between:
 *
 *     ijepa_forward_backward(model, my_images, my_batch, my_masks, &loss);   // fills GRADS
 *     allreduce_mean(ijepa_model_buffer(model, IJEPA_BUF_GRADS, &n), n);     // e.g. MPI
 *     ijepa_optimizer_step(model, &stats);                                   // AdamW + EMA
 *
 * Here two "replicas" (models created from the same config and seed, hence identical) each
 * take half of a batch, and the all-reduce is a plain average of their two gradient buffers.
 * A third model trained on the full batch is the reference.
 *
 * Why this is exact: the loss is a MEAN over all predicted elements (smooth L1 over
 * num_pred x num_enc x batch x k_pred x D values). Each replica's loss is the mean over its own
 * half, and both halves have the same number of elements (same K for every image of a batch),
 * so full-batch loss = (loss_0 + loss_1) / 2 and full-batch gradient = (grad_0 + grad_1) / 2.
 * The only differences are float rounding (different summation order).
 *
 * Masks: all replicas must use the masks of the FULL batch (sampled once), each taking the
 * rows of its own images. In ijepa_masks, enc is [num_enc][batch][k_enc] and pred is
 * [num_pred][batch][k_pred], with images indexed WITHIN the batch passed to the call, so a
 * replica's masks have batch = its half and, for every mask row, only its images; K stays.
 * (In a real multi-process job every rank can instead sample the full-batch masks itself:
 * models with the same seed draw the same masks.)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ijepa.h>

enum { REPLICAS = 2, BATCH = 8, HALF = BATCH / REPLICAS };

static void check(int status, const char *what) {
    if (status != IJEPA_OK) {
        fprintf(stderr, "%s failed: %s (%d): %s\n", what, ijepa_status_string(status), status, ijepa_last_error());
        exit(1);
    }
}

static float *buffer(ijepa_model *m, int which, size_t *n) {
    float *p = ijepa_model_buffer(m, which, n);
    if (!p) { fprintf(stderr, "ijepa_model_buffer failed: %s\n", ijepa_last_error()); exit(1); }
    return p;
}

/* The masks of images [first, first + count) of `full`, re-indexed for a batch of `count`.
 * The caller owns the arrays (free them with free(), NOT ijepa_masks_free). */
static ijepa_masks slice_masks(const ijepa_masks *full, int first, int count) {
    ijepa_masks s = *full;
    s.batch = count;
    s.enc = malloc(sizeof(int32_t) * (size_t)full->num_enc * count * full->k_enc);
    s.pred = malloc(sizeof(int32_t) * (size_t)full->num_pred * count * full->k_pred);
    if (!s.enc || !s.pred) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (int j = 0; j < full->num_enc; j++)        /* every context mask row ... */
        for (int b = 0; b < count; b++)            /* ... for this replica's images */
            memcpy(s.enc + ((size_t)j * count + b) * full->k_enc,
                   full->enc + ((size_t)j * full->batch + first + b) * full->k_enc, sizeof(int32_t) * full->k_enc);
    for (int k = 0; k < full->num_pred; k++)
        for (int b = 0; b < count; b++)
            memcpy(s.pred + ((size_t)k * count + b) * full->k_pred,
                   full->pred + ((size_t)k * full->batch + first + b) * full->k_pred, sizeof(int32_t) * full->k_pred);
    return s;
}

static void make_images(float *x, size_t n, int step) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(sin(0.013 * (double)i * (step + 1) + step) + 0.3 * cos(0.11 * (double)i));
}

/* max |a - b| and max |b| over n floats */
static void diff(const float *a, const float *b, size_t n, double *maxdiff, double *maxref) {
    *maxdiff = 0;
    *maxref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), r = fabs((double)b[i]);
        if (d > *maxdiff) *maxdiff = d;
        if (r > *maxref) *maxref = r;
    }
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 4;
    if (steps < 1) steps = 1;

    ijepa_config cfg = {.struct_size = sizeof cfg};
    ijepa_config_default(&cfg);
    cfg.image_size = 32; cfg.patch_size = 4; cfg.in_chans = 3;
    cfg.embed_dim = 64; cfg.depth = 2; cfg.num_heads = 4;
    cfg.pred_embed_dim = 32; cfg.pred_depth = 2;
    cfg.min_keep = 4;
    cfg.warmup_steps = 2; cfg.total_steps = 100;
    cfg.seed = 42;
    cfg.n_threads = 1;

    /* Same config and seed: the replicas and the reference start bit-identical. */
    ijepa_model *rep[REPLICAS], *full = NULL;
    for (int r = 0; r < REPLICAS; r++) check(ijepa_model_create(&cfg, &rep[r]), "ijepa_model_create(replica)");
    check(ijepa_model_create(&cfg, &full), "ijepa_model_create(full)");

    const size_t per_image = (size_t)cfg.in_chans * cfg.image_size * cfg.image_size;
    float *images = malloc(sizeof(float) * BATCH * per_image);
    size_t n_params = 0;
    float *grads[REPLICAS];
    for (int r = 0; r < REPLICAS; r++) grads[r] = buffer(rep[r], IJEPA_BUF_GRADS, &n_params);
    const float *full_grads = buffer(full, IJEPA_BUF_GRADS, NULL);

    printf("%d replicas x %d images vs one model on %d images\n", REPLICAS, HALF, BATCH);
    printf("%4s %12s %12s %12s %14s\n", "step", "loss rep 0", "loss rep 1", "mean", "full batch");
    for (int s = 0; s < steps; s++) {
        make_images(images, BATCH * per_image, s);
        /* 1. masks for the whole batch, sampled once (here from the reference model) */
        ijepa_masks masks;
        check(ijepa_masks_sample(full, BATCH, &masks), "ijepa_masks_sample");

        /* 2. each replica: forward + backward on its half, with its slice of the masks */
        float loss[REPLICAS];
        for (int r = 0; r < REPLICAS; r++) {
            ijepa_masks mine = slice_masks(&masks, r * HALF, HALF);
            check(ijepa_forward_backward(rep[r], images + (size_t)r * HALF * per_image, HALF, &mine, &loss[r]),
                  "ijepa_forward_backward(replica)");
            free(mine.enc);
            free(mine.pred);
        }

        /* 3. all-reduce (mean) of the gradient buffers, in place — MPI_Allreduce + divide */
        for (size_t i = 0; i < n_params; i++) {
            float sum = 0;
            for (int r = 0; r < REPLICAS; r++) sum += grads[r][i];
            for (int r = 0; r < REPLICAS; r++) grads[r][i] = sum / REPLICAS;
        }

        /* 4. every replica applies the same averaged gradients */
        for (int r = 0; r < REPLICAS; r++) check(ijepa_optimizer_step(rep[r], NULL), "ijepa_optimizer_step(replica)");

        /* the reference: one model, the whole batch, the same masks */
        float full_loss;
        check(ijepa_forward_backward(full, images, BATCH, &masks, &full_loss), "ijepa_forward_backward(full)");
        if (s == 0) {
            double d, ref;
            diff(grads[0], full_grads, n_params, &d, &ref);
            printf("     step 1 gradients: max |averaged - full batch| = %.3e (max |grad| %.3e, relative %.2e)\n", d,
                   ref, d / ref);
        }
        check(ijepa_optimizer_step(full, NULL), "ijepa_optimizer_step(full)");
        printf("%4d %12.7f %12.7f %12.7f %14.7f\n", s + 1, loss[0], loss[1], (loss[0] + loss[1]) / 2, full_loss);
        ijepa_masks_free(&masks);
    }

    /* The replicas applied identical updates to identical weights: they must be EQUAL. */
    size_t n_target = 0;
    double d, ref;
    diff(buffer(rep[0], IJEPA_BUF_PARAMS, NULL), buffer(rep[1], IJEPA_BUF_PARAMS, NULL), n_params, &d, &ref);
    printf("\nreplica 0 vs replica 1 PARAMS: max |difference| = %g (must be 0)\n", d);
    int ok = d == 0;
    diff(buffer(rep[0], IJEPA_BUF_TARGET, &n_target), buffer(rep[1], IJEPA_BUF_TARGET, NULL), n_target, &d, &ref);
    printf("replica 0 vs replica 1 TARGET: max |difference| = %g (must be 0)\n", d);
    ok &= d == 0;

    /* Against the full-batch model: equal up to float rounding. AdamW divides by sqrt(v) + 1e-8,
     * which amplifies rounding in gradients that are ~0 (e.g. attention key biases, whose
     * gradient is exactly zero mathematically), so compare relative to the buffer's scale. */
    diff(buffer(rep[0], IJEPA_BUF_PARAMS, NULL), buffer(full, IJEPA_BUF_PARAMS, NULL), n_params, &d, &ref);
    printf("replicas vs full batch PARAMS: max |difference| = %.3e, relative to max |param| %.3e: %.2e\n", d, ref,
           d / ref);
    ok &= d / ref < 1e-5;
    {   /* per tensor: the worst max|diff| / max|ref| over the named tensors */
        const float *a = buffer(rep[0], IJEPA_BUF_PARAMS, NULL), *b = buffer(full, IJEPA_BUF_PARAMS, NULL);
        double worst = 0;
        const char *worst_name = "";
        int32_t nt = ijepa_model_num_tensors(full, IJEPA_BUF_PARAMS);
        for (int32_t i = 0; i < nt; i++) {
            ijepa_tensor_info t;
            check(ijepa_model_tensor_info(full, IJEPA_BUF_PARAMS, i, &t), "ijepa_model_tensor_info");
            size_t cnt = (size_t)(t.shape[0] * t.shape[1] * t.shape[2] * t.shape[3]);
            double td, tr;
            diff(a + t.offset, b + t.offset, cnt, &td, &tr);
            if (tr > 0 && td / tr > worst) { worst = td / tr; worst_name = t.name; }
        }
        printf("  worst single tensor: %s, max |difference| / its max |value| = %.2e\n", worst_name, worst);
    }
    diff(buffer(rep[0], IJEPA_BUF_TARGET, NULL), buffer(full, IJEPA_BUF_TARGET, NULL), n_target, &d, &ref);
    printf("replicas vs full batch TARGET: max |difference| = %.3e, relative %.2e\n", d, d / ref);
    ok &= d / ref < 1e-5;
    printf("%s\n", ok ? "OK: the split step equals the full-batch step" : "MISMATCH");

    free(images);
    for (int r = 0; r < REPLICAS; r++) ijepa_model_free(rep[r]);
    ijepa_model_free(full);
    return ok ? 0 : 1;
}
