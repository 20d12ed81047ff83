/*
 * test_allocs.c — a steady-state training step and encode allocate nothing on the heap.
 *
 * This program defines malloc, calloc, realloc and the aligned allocators itself (forwarding to
 * glibc's __libc_* entry points), so every allocation of the library — Swift runtime included —
 * is counted. After warm-up steps, further steps with caller masks, with masks the library
 * samples itself (uniform and ragged), and encode calls must not allocate. Activation buffers
 * grow when a batch brings a larger shape than any before (legitimately), so the sampled steps
 * are warmed up on their own shapes first: an identically seeded twin model draws the masks
 * the model will draw, and the model trains on them as caller masks (which does not advance its
 * own generator). Not built with the sanitizers (they replace malloc themselves).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static _Atomic long allocs;
void *malloc(size_t n) { allocs++; return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { allocs++; return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { allocs++; return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { allocs++; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { allocs++; return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    allocs++;
    void *p = __libc_memalign(a, n);
    if (!p) return 12;
    *out = p;
    return 0;
}

enum { B = 16, MASKS = 4, WARM = 10, COUNTED = 8 };

int main(void) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = 32; c.patch_size = 4; c.in_chans = 1;
    c.embed_dim = 64; c.depth = 2; c.num_heads = 2;
    c.pred_embed_dim = 32; c.pred_depth = 2; c.min_keep = 4;
    c.warmup_steps = 5; c.total_steps = 1000; c.seed = 5; c.n_threads = 2;
    for (int ragged = 0; ragged <= 1; ragged++) {
        c.ragged_context = ragged;
        ijepa_model *m = NULL, *twin = NULL;
        REQUIRE_OK(ijepa_model_create(&c, &m));
        REQUIRE_OK(ijepa_model_create(&c, &twin));
        size_t n = (size_t)B * 32 * 32;
        float *img = __libc_malloc(n * sizeof(float));
        float *pooled = __libc_malloc((size_t)B * 2 * c.embed_dim * sizeof(float));
        for (size_t i = 0; i < n; i++) img[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        ijepa_masks mk[MASKS];
        for (int k = 0; k < MASKS; k++) REQUIRE_OK(ijepa_masks_sample(m, B, &mk[k]));
        ijepa_step_stats st;
        for (int i = 0; i < WARM; i++) {
            REQUIRE_OK(ijepa_train_step(m, img, B, &mk[i % MASKS], &st));
            REQUIRE_OK(ijepa_train_step(m, img, B, NULL, &st));
            if (ragged) REQUIRE_OK(ijepa_train_step_ragged(twin, img, B, NULL, &st));
            else REQUIRE_OK(ijepa_train_step(twin, img, B, NULL, &st));   /* keeps the twin's generator in step */
        }
        /* the next COUNTED draws of m's generator, as the twin makes them, trained on as caller masks */
        for (int i = 0; i < COUNTED; i++) {
            if (ragged) {
                ijepa_ragged_masks r;
                REQUIRE_OK(ijepa_masks_sample_ragged(twin, B, &r));
                REQUIRE_OK(ijepa_train_step_ragged(m, img, B, &r, &st));
                ijepa_ragged_masks_free(&r);
            } else {
                ijepa_masks u;
                REQUIRE_OK(ijepa_masks_sample(twin, B, &u));
                REQUIRE_OK(ijepa_train_step(m, img, B, &u, &st));
                ijepa_masks_free(&u);
            }
        }
        REQUIRE_OK(ijepa_encode(m, img, B, IJEPA_TARGET_ENCODER, NULL, pooled));
        REQUIRE_OK(ijepa_encode_layers(m, img, B, IJEPA_TARGET_ENCODER, 2, pooled));

        long a0 = allocs;
        for (int i = 0; i < COUNTED; i++) REQUIRE_OK(ijepa_train_step(m, img, B, &mk[i % MASKS], &st));
        long caller = allocs - a0;
        a0 = allocs;
        for (int i = 0; i < COUNTED; i++) REQUIRE_OK(ijepa_train_step(m, img, B, NULL, &st));
        long sampled = allocs - a0;
        a0 = allocs;
        for (int i = 0; i < COUNTED; i++) REQUIRE_OK(ijepa_encode(m, img, B, IJEPA_TARGET_ENCODER, NULL, pooled));
        long enc = allocs - a0;
        CHECK(caller == 0, "ragged_context %d: %ld allocations in %d steps with caller masks", ragged, caller, COUNTED);
        CHECK(sampled == 0, "ragged_context %d: %ld allocations in %d steps with sampled masks", ragged, sampled, COUNTED);
        CHECK(enc == 0, "%ld allocations in %d encode calls", enc, COUNTED);
        printf("ragged_context %d: allocations per steady step: %ld with caller masks, %ld with sampled masks; per encode %ld\n",
               ragged, caller / COUNTED, sampled / COUNTED, enc / COUNTED);
        for (int k = 0; k < MASKS; k++) ijepa_masks_free(&mk[k]);
        free(img); free(pooled);
        ijepa_model_free(m);
        ijepa_model_free(twin);
    }
    return check_summary("test_allocs");
}
