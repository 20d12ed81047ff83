/*
 * fuzz_common.h — what the checkpoint fuzzer (fuzz_checkpoint.c) and its seed generator
 * (make_seeds.c) share: the tiny model whose checkpoints are the seeds, so that every
 * execution is fast (460 trainable floats; a training-state checkpoint is about 19 KB, most of
 * it the JSON header) and ijepa_model_load_weights on the harness's fixed model gets past the
 * shape checks with mutated seeds.
 */
#ifndef IJEPA_FUZZ_COMMON_H
#define IJEPA_FUZZ_COMMON_H

#include <ijepa.h>

/* 4x4 single-channel images, 2x2 patches (a 2x2 grid, the smallest the library accepts),
 * width 4, one block in the encoder and one in the predictor. Masks: 2 targets of 1 patch,
 * min_keep 0, so every draw is valid on the 2x2 grid. */
static inline ijepa_config fuzz_tiny_config(uint64_t seed) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = 4; c.patch_size = 2; c.in_chans = 1;
    c.embed_dim = 4; c.depth = 1; c.num_heads = 1; c.mlp_ratio = 1;
    c.pred_embed_dim = 4; c.pred_depth = 1; c.pred_num_heads = 1;
    c.num_pred_masks = 2; c.min_keep = 0;
    c.pred_mask_scale[0] = 0.25f; c.pred_mask_scale[1] = 0.5f;
    c.warmup_steps = 1; c.total_steps = 10;
    c.seed = seed; c.n_threads = 1;
    return c;
}

#endif
