/*
 * compat.c — a program built against the BASELINE header (Tests/ABI/baseline/ijepa.h), run
 * against the library being tested: what a user compiled against the frozen ABI still gets.
 * Exercises the calls that pass structs and handles: config, model, masks, a training step,
 * encoding, a checkpoint, a pretrained encoder and its info, preprocessing.
 *
 *   compat FIXTURE_DIR TMP_DIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ijepa.h"   /* the baseline copy: -I Tests/ABI/baseline */

static int failures;
#define EXPECT(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "compat: FAIL %s: ", #cond); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s)\n", ijepa_last_error()); } } while (0)

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s FIXTURE_DIR TMP_DIR\n", argv[0]); return 2; }
    EXPECT(ijepa_abi_version() == IJEPA_ABI_VERSION, "library ABI %u, baseline header %d", ijepa_abi_version(),
           IJEPA_ABI_VERSION);
    ijepa_config c = {.struct_size = sizeof c};
    EXPECT(ijepa_config_preset("tiny32", &c) == IJEPA_OK, "preset");
    c.n_threads = 1; c.total_steps = 10; c.warmup_steps = 2;
    ijepa_model *m = NULL;
    EXPECT(ijepa_model_create(&c, &m) == IJEPA_OK, "create");
    if (!m) return 1;
    size_t per = (size_t)c.in_chans * c.image_size * c.image_size;
    float *img = malloc(4 * per * sizeof(float));
    for (size_t i = 0; i < 4 * per; i++) img[i] = sinf(0.05f * (float)i);
    ijepa_masks mk;
    EXPECT(ijepa_masks_sample(m, 4, &mk) == IJEPA_OK, "masks");
    ijepa_step_stats st;
    EXPECT(ijepa_train_step(m, img, 4, &mk, &st) == IJEPA_OK && st.step == 1 && isfinite(st.loss), "step");
    ijepa_masks_free(&mk);
    float *pooled = malloc(4 * (size_t)c.embed_dim * sizeof(float));
    EXPECT(ijepa_encode(m, img, 4, IJEPA_TARGET_ENCODER, NULL, pooled) == IJEPA_OK, "encode");
    ijepa_config back = {.struct_size = sizeof back};
    EXPECT(ijepa_model_get_config(m, &back) == IJEPA_OK && back.embed_dim == c.embed_dim, "get_config");
    ijepa_tensor_info ti;
    EXPECT(ijepa_model_tensor_info(m, IJEPA_BUF_PARAMS, 0, &ti) == IJEPA_OK && ti.name, "tensor_info");
    char path[1024];
    snprintf(path, sizeof path, "%s/compat.safetensors", argv[2]);
    EXPECT(ijepa_model_save(m, path, IJEPA_SAVE_WEIGHTS) == IJEPA_OK, "save");

    /* the pretrained encoder of the checkpoint, then a Hugging Face fixture */
    ijepa_encoder_options o = {.struct_size = sizeof o};
    EXPECT(ijepa_encoder_options_init(&o) == IJEPA_OK, "options");
    o.n_threads = 1;
    ijepa_encoder *e = NULL;
    EXPECT(ijepa_encoder_load(path, &o, &e) == IJEPA_OK, "encoder from the checkpoint");
    float *pooled2 = malloc(4 * (size_t)c.embed_dim * sizeof(float));
    /* an encoder may run its own products (packed weights) where the model runs BLAS's: equal to rounding */
    float diff = 0, scale = 0;
    int encoded = e && ijepa_encoder_encode(e, img, 4, c.image_size, c.image_size, NULL, pooled2) == IJEPA_OK;
    for (int i = 0; encoded && i < 4 * c.embed_dim; i++) {
        diff = fmaxf(diff, fabsf(pooled[i] - pooled2[i]));
        scale = fmaxf(scale, fabsf(pooled[i]));
    }
    EXPECT(encoded && diff <= 1e-5f * scale, "encoder == model to rounding");
    ijepa_encoder_free(e);
    snprintf(path, sizeof path, "%s/encoders/hf_v5", argv[1]);
    e = NULL;
    EXPECT(ijepa_encoder_load(path, &o, &e) == IJEPA_OK, "encoder from Hugging Face files");
    ijepa_encoder_info info = {.struct_size = sizeof info};
    EXPECT(e && ijepa_encoder_get_info(e, &info) == IJEPA_OK && info.struct_size == sizeof info &&
           info.embed_dim == 32 && info.source == IJEPA_SOURCE_HF, "info");
    ijepa_preprocess p = {.struct_size = sizeof p};
    EXPECT(ijepa_preprocess_init(&p, 24) == IJEPA_OK && p.crop == 24, "preprocess_init");
    unsigned char rgb[30 * 40 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (unsigned char)(i * 13);
    float pix[3 * 24 * 24], feat[32];
    EXPECT(ijepa_preprocess_rgb8(rgb, 30, 40, &p, pix) == IJEPA_OK, "preprocess");
    EXPECT(e && ijepa_encoder_encode(e, pix, 1, 24, 24, NULL, feat) == IJEPA_OK && isfinite(feat[0]), "encode");
    ijepa_encoder_free(e);
    ijepa_model_free(m);
    free(img); free(pooled); free(pooled2);
    printf("compat: %s (library %s, ABI %u)\n", failures ? "FAIL" : "ok", ijepa_version(), ijepa_abi_version());
    return failures ? 1 : 0;
}
