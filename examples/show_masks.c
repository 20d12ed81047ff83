/*
 * show_masks.c — draw I-JEPA's multi-block masks in the terminal.
 *
 *   run:  ./build/show_masks [preset] [seed]      e.g.  ./build/show_masks tiny32 3
 *
 * Samples the masks of one batch of 2 images with ijepa_masks_sample (the official multi-block
 * collator: one context block minus the target blocks, and num_pred_masks target blocks) for
 * the default 224/16 grid (14x14) or the grid of a named preset, and draws each image:
 *
 *   C    patch in the context (what the context encoder sees)
 *   1-9  patch in target block k (what the predictor must predict; lowest k if blocks overlap)
 *   *    patch in the context AND a target (only when the sampler had to relax its constraint)
 *   .    unused
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ijepa.h>

static void check(int status, const char *what) {
    if (status != IJEPA_OK) {
        fprintf(stderr, "%s failed: %s (%d): %s\n", what, ijepa_status_string(status), status, ijepa_last_error());
        exit(1);
    }
}

/* The sampler logs when it relaxes the no-overlap constraint ("Valid mask not found ..."). */
static void on_log(int level, const char *message, void *user) {
    (void)user;
    printf("  [library %s] %s\n", level >= IJEPA_LOG_WARN ? "warning" : "info", message);
}

int main(int argc, char **argv) {
    ijepa_config cfg = {.struct_size = sizeof cfg};
    ijepa_config_default(&cfg); /* 224 px, patch 16: a 14x14 grid */
    const char *name = "default (224/16)";
    if (argc > 1) {
        check(ijepa_config_preset(argv[1], &cfg), "ijepa_config_preset");
        name = argv[1];
    }
    if (argc > 2) cfg.seed = strtoull(argv[2], NULL, 10);
    /* The masks depend only on the grid, the mask fields and the seed, not on the network, so
     * shrink the network to make creating the model instant. */
    cfg.embed_dim = 32;
    cfg.depth = 1;
    cfg.num_heads = 1;
    cfg.pred_embed_dim = 32;
    cfg.pred_depth = 1;
    cfg.pred_num_heads = 1;
    cfg.mlp_ratio = 1;
    cfg.n_threads = 1;

    ijepa_model *model = NULL;
    check(ijepa_model_create(&cfg, &model), "ijepa_model_create");
    const int grid = cfg.image_size / cfg.patch_size, n = ijepa_model_num_patches(model);
    printf("%s: %dx%d patch grid (%d patches), %d context / %d target blocks, min_keep %d, seed %llu\n", name, grid, grid,
           n, cfg.num_enc_masks, cfg.num_pred_masks, cfg.min_keep, (unsigned long long)cfg.seed);

    ijepa_log_set(on_log, NULL);
    const int batch = 2;
    ijepa_masks masks;
    check(ijepa_masks_sample(model, batch, &masks), "ijepa_masks_sample");
    ijepa_log_set(NULL, NULL);

    /* Every image of a batch gets masks of the same lengths (the collator truncates contexts to
     * the batch minimum and all target blocks of a batch have the same size). */
    printf("kept lengths: k_enc = %d patches per context, k_pred = %d patches per target block\n\n", masks.k_enc,
           masks.k_pred);

    char *cell = malloc((size_t)n);
    for (int b = 0; b < batch; b++) {
        for (int j = 0; j < masks.num_enc; j++) {
            memset(cell, '.', (size_t)n);
            /* targets: pred[k][b][i], k = 0..num_pred-1; draw the lowest k on overlaps */
            for (int k = masks.num_pred - 1; k >= 0; k--)
                for (int i = 0; i < masks.k_pred; i++) {
                    int32_t p = masks.pred[((size_t)k * batch + b) * masks.k_pred + i];
                    cell[p] = (char)(k < 9 ? '1' + k : '+');
                }
            /* context j: enc[j][b][i] */
            int overlap = 0;
            for (int i = 0; i < masks.k_enc; i++) {
                int32_t p = masks.enc[((size_t)j * batch + b) * masks.k_enc + i];
                if (cell[p] != '.') { cell[p] = '*'; overlap++; }
                else cell[p] = 'C';
            }
            printf("image %d, context %d%s\n", b, j, overlap ? " (relaxed: context overlaps targets)" : "");
            for (int r = 0; r < grid; r++) {
                printf("  ");
                for (int c = 0; c < grid; c++) printf("%c ", cell[r * grid + c]);
                printf("\n");
            }
            printf("\n");
        }
    }
    printf("legend: C context, 1-%d target block k, * context and target, . unused\n", masks.num_pred < 9 ? masks.num_pred : 9);

    free(cell);
    ijepa_masks_free(&masks); /* frees the arrays the library allocated and zeroes the struct */
    ijepa_model_free(model);
    return 0;
}
