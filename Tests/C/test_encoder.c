/*
 * test_encoder.c — the pretrained-encoder C API against the installed library: the
 * transformers / timm / official fixtures (Tests/Fixtures/encoders) through ijepa_encoder_load,
 * a copy of a live model, get_info's struct_size rule, preprocessing, and bad arguments.
 * Runs under the sanitizers and valgrind too (Tests/Sanitize).
 *
 *   test_encoder FIXTURE_DIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"

static st_file expected;

/* max |a - b| <= tol * max |b| */
static int close_to_scale(const float *a, const float *b, size_t n, float tol) {
    float scale = 1e-30f, err = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(b[i]) > scale) scale = fabsf(b[i]);
        float e = fabsf(a[i] - b[i]);
        if (!(e <= err)) err = isnan(e) ? INFINITY : e;
    }
    return err <= tol * scale;
}

/* tokens and pooled of fixture case `key` ("hf.up", ...) */
static void check_case(ijepa_encoder *e, const char *key) {
    char name[128];
    snprintf(name, sizeof name, "%s.images", key);
    const st_tensor *t = st_find(&expected, name);
    CHECK(t != NULL, "fixture has no %s", name);
    if (!t) return;
    int32_t B = (int32_t)t->shape[0], H = (int32_t)t->shape[2], W = (int32_t)t->shape[3];
    float *images = st_read_f32(&expected, name, NULL);
    snprintf(name, sizeof name, "%s.tokens", key);
    size_t nt = 0;
    float *want_tokens = st_read_f32(&expected, name, &nt);
    snprintf(name, sizeof name, "%s.pooled", key);
    size_t np = 0;
    float *want_pooled = st_read_f32(&expected, name, &np);
    int32_t n = ijepa_encoder_num_tokens(e, H, W);
    CHECK(n > 0 && (size_t)n * np == nt, "%s: num_tokens %d for %zu tokens and %zu pooled floats", key, n, nt, np);
    float *tokens = malloc(nt * sizeof(float)), *pooled = malloc(np * sizeof(float));
    CHECK_OK(ijepa_encoder_encode(e, images, B, H, W, tokens, pooled));
    CHECK(close_to_scale(tokens, want_tokens, nt, 1e-5f), "%s tokens", key);
    CHECK(close_to_scale(pooled, want_pooled, np, 1e-5f), "%s pooled", key);
    free(images); free(want_tokens); free(want_pooled); free(tokens); free(pooled);
}

static ijepa_encoder *load(const char *dir, const char *name, int which, int32_t heads) {
    char path[1024];
    snprintf(path, sizeof path, "%s/encoders/%s", dir, name);
    ijepa_encoder_options o = {.struct_size = sizeof o};
    CHECK_OK(ijepa_encoder_options_init(&o));
    o.which_encoder = which;
    o.num_heads = heads;
    o.n_threads = 2;
    ijepa_encoder *e = NULL;
    CHECK_OK(ijepa_encoder_load(path, &o, &e));
    return e;
}

int main(int argc, char **argv) {
    REQUIRE(argc == 2, "usage: %s FIXTURE_DIR", argv[0]);
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/encoders/expected.safetensors", argv[1]);
    REQUIRE(st_open(path, &expected, err, sizeof err) == 0, "%s: %s", path, err);

    /* every source, three sizes */
    const char *cases[3] = {"native", "up", "down"};
    struct { const char *file, *key; int which; int32_t heads; int source; } src[] = {
        {"hf_v5", "hf", IJEPA_TARGET_ENCODER, 0, IJEPA_SOURCE_HF},
        {"hf_v4", "hf", IJEPA_TARGET_ENCODER, 0, IJEPA_SOURCE_HF},
        {"timm", "timm", IJEPA_TARGET_ENCODER, 0, IJEPA_SOURCE_TIMM},
        {"official.safetensors", "official_target", IJEPA_TARGET_ENCODER, 4, IJEPA_SOURCE_OFFICIAL},
        {"official.safetensors", "official_context", IJEPA_CONTEXT_ENCODER, 4, IJEPA_SOURCE_OFFICIAL},
    };
    for (size_t s = 0; s < sizeof src / sizeof src[0]; s++) {
        ijepa_encoder *e = load(argv[1], src[s].file, src[s].which, src[s].heads);
        if (!e) continue;
        ijepa_encoder_info info;
        info.struct_size = sizeof info;
        CHECK_OK(ijepa_encoder_get_info(e, &info));
        CHECK(info.source == src[s].source, "%s: source %d", src[s].file, info.source);
        CHECK(info.which_encoder == (info.source == IJEPA_SOURCE_OFFICIAL ? src[s].which : -1), "%s: which %d",
              src[s].file, info.which_encoder);
        for (int z = 0; z < 3; z++) {
            char key[64];
            snprintf(key, sizeof key, "%s.%s", src[s].key, cases[z]);
            check_case(e, key);
        }
        ijepa_encoder_free(e);
    }

    /* get_info writes only what struct_size covers */
    ijepa_encoder *e = load(argv[1], "hf_v5", IJEPA_TARGET_ENCODER, 0);
    REQUIRE(e != NULL, "hf_v5 loads");
    ijepa_encoder_info small;
    memset(&small, 0x7f, sizeof small);
    small.struct_size = 8;
    CHECK_OK(ijepa_encoder_get_info(e, &small));
    CHECK(small.image_size == 24 && small.patch_size == 0x7f7f7f7f, "struct_size 8: image %d, patch %#x", small.image_size,
          (unsigned)small.patch_size);
    small.struct_size = 3;
    CHECK(ijepa_encoder_get_info(e, &small) == IJEPA_ERR_INVALID_ARGUMENT, "struct_size 3 refused");

    /* bad arguments: clear errors, never a crash */
    float img[3 * 24 * 24] = {0}, out[64];
    CHECK(ijepa_encoder_encode(e, NULL, 1, 24, 24, NULL, out) == IJEPA_ERR_INVALID_ARGUMENT, "NULL images");
    CHECK(ijepa_encoder_encode(e, img, 1, 24, 24, NULL, NULL) == IJEPA_ERR_INVALID_ARGUMENT, "no outputs");
    CHECK(ijepa_encoder_encode(e, img, 0, 24, 24, NULL, out) == IJEPA_ERR_INVALID_ARGUMENT, "batch 0");
    CHECK(ijepa_encoder_encode(e, img, 1, 3, 24, NULL, out) == IJEPA_ERR_SHAPE, "smaller than a patch");
    CHECK(ijepa_encoder_encode(e, img, 1, -5, 24, NULL, out) == IJEPA_ERR_SHAPE, "negative height");
    CHECK(ijepa_encoder_encode_layers(e, img, 1, 24, 24, 4, out) == IJEPA_ERR_INVALID_ARGUMENT, "last_k > depth");
    CHECK(ijepa_encoder_num_tokens(e, 1 << 30, 1 << 30) == -1, "too many tokens");
    img[7] = NAN;
    CHECK(ijepa_encoder_encode(e, img, 1, 24, 24, NULL, out) == IJEPA_ERR_NUMERIC, "NaN image");
    ijepa_encoder_options o = {.struct_size = sizeof o};
    CHECK_OK(ijepa_encoder_options_init(&o));
    o.pos_interpolation = 9;
    ijepa_encoder *none = NULL;
    snprintf(path, sizeof path, "%s/encoders/hf_v5", argv[1]);
    CHECK(ijepa_encoder_load(path, &o, &none) == IJEPA_ERR_INVALID_ARGUMENT && none == NULL, "bad pos_interpolation");
    o.pos_interpolation = IJEPA_POS_AUTO;
    o.struct_size = 4;
    CHECK(ijepa_encoder_load(path, &o, &none) == IJEPA_ERR_INVALID_ARGUMENT, "short options");
    CHECK(ijepa_encoder_load(NULL, NULL, &none) == IJEPA_ERR_INVALID_ARGUMENT, "NULL path");
    CHECK(ijepa_encoder_load(argv[1], NULL, &none) == IJEPA_ERR_FORMAT, "a directory without model.safetensors");
    ijepa_encoder_free(e);
    CHECK(ijepa_encoder_encode(e, img, 1, 24, 24, NULL, out) == IJEPA_ERR_INVALID_ARGUMENT, "freed handle");
    ijepa_encoder_free(e);   /* a second free is a no-op */
    ijepa_encoder_free(NULL);

    /* a copy of a live model encodes as the model; a model handle is not an encoder */
    ijepa_config c = {.struct_size = sizeof c};
    REQUIRE_OK(ijepa_config_preset("tiny32", &c));
    c.n_threads = 1;
    ijepa_model *m = NULL;
    REQUIRE_OK(ijepa_model_create(&c, &m));
    size_t per = (size_t)c.in_chans * c.image_size * c.image_size;
    float *images = malloc(2 * per * sizeof(float));
    for (size_t i = 0; i < 2 * per; i++) images[i] = sinf(0.1f * (float)i);
    CHECK_OK(ijepa_train_step(m, images, 2, NULL, NULL));
    ijepa_encoder *copy = NULL;
    CHECK_OK(ijepa_encoder_from_model(m, IJEPA_CONTEXT_ENCODER, &copy));
    CHECK(ijepa_encoder_encode((ijepa_encoder *)m, images, 1, c.image_size, c.image_size, NULL, out) ==
          IJEPA_ERR_INVALID_ARGUMENT, "a model handle as an encoder");
    float *a = malloc(2 * (size_t)c.embed_dim * sizeof(float)), *b = malloc(2 * (size_t)c.embed_dim * sizeof(float));
    CHECK_OK(ijepa_encode(m, images, 2, IJEPA_CONTEXT_ENCODER, NULL, a));
    CHECK_OK(ijepa_encoder_encode(copy, images, 2, c.image_size, c.image_size, NULL, b));
    /* the copy runs packed-weight products where the model runs BLAS's: equal to rounding */
    float diff = 0, scale = 0;
    for (int i = 0; i < 2 * c.embed_dim; i++) {
        diff = fmaxf(diff, fabsf(a[i] - b[i]));
        scale = fmaxf(scale, fabsf(a[i]));
    }
    CHECK(diff <= 1e-5f * scale, "copy == model to rounding: max diff %g of %g", diff, scale);

    /* saved as an encoder file and loaded back (mapped): the same features bit for bit, the
       same description; a save that cannot be written is an IO error naming the path */
    char saved[4096];
    snprintf(saved, sizeof saved, "%s/test_encoder_saved_%d.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    CHECK_OK(ijepa_encoder_save(copy, saved));
    ijepa_encoder *back = NULL;
    CHECK_OK(ijepa_encoder_load(saved, NULL, &back));
    if (back) {
        ijepa_encoder_set_n_threads(back, 1);
        float *c2 = malloc(2 * (size_t)c.embed_dim * sizeof(float));
        CHECK_OK(ijepa_encoder_encode(back, images, 2, c.image_size, c.image_size, NULL, c2));
        CHECK(memcmp(b, c2, 2 * (size_t)c.embed_dim * sizeof(float)) == 0, "saved encoder == the encoder, bit for bit");
        ijepa_encoder_info i1 = {.struct_size = sizeof i1}, i2 = {.struct_size = sizeof i2};
        CHECK_OK(ijepa_encoder_get_info(copy, &i1));
        CHECK_OK(ijepa_encoder_get_info(back, &i2));
        CHECK(memcmp(&i1, &i2, sizeof i1) == 0 && i2.which_encoder == IJEPA_CONTEXT_ENCODER && i2.source == IJEPA_SOURCE_MODEL,
              "saved encoder's info: source %d, which %d", i2.source, i2.which_encoder);
        ijepa_encoder_free(back);
        free(c2);
    }
    unlink(saved);
    CHECK(ijepa_encoder_save(copy, "/nonexistent-dir/e.safetensors") == IJEPA_ERR_IO &&
          strstr(ijepa_last_error(), "/nonexistent-dir/e.safetensors") != NULL, "unwritable path: %s", ijepa_last_error());
    CHECK(ijepa_encoder_save(copy, NULL) == IJEPA_ERR_INVALID_ARGUMENT, "NULL path");
    CHECK(ijepa_encoder_save(NULL, saved) == IJEPA_ERR_INVALID_ARGUMENT, "NULL encoder");
    ijepa_encoder_free(copy);
    ijepa_model_free(m);
    free(images); free(a); free(b);

    /* preprocessing */
    ijepa_preprocess p = {.struct_size = sizeof p};
    CHECK_OK(ijepa_preprocess_init(&p, 224));
    CHECK(p.resize == 256 && p.crop == 224, "defaults %d/%d", p.resize, p.crop);
    /* a caller built against a smaller (older) struct gets only its fields */
    ijepa_preprocess older;
    memset(&older, 0x55, sizeof older);
    older.struct_size = 12;
    CHECK_OK(ijepa_preprocess_init(&older, 224));
    CHECK(older.struct_size == 12 && older.resize == 256 && older.crop == 224 && older.mean[0] != 0.485f,
          "struct_size 12: resize %d crop %d, mean untouched", older.resize, older.crop);
    older.struct_size = 0;
    CHECK(ijepa_preprocess_init(&older, 224) == IJEPA_ERR_INVALID_ARGUMENT, "struct_size 0 refused");
    CHECK(ijepa_preprocess_init(&p, 0) == IJEPA_ERR_INVALID_ARGUMENT, "crop 0 refused");
    CHECK(ijepa_encoder_options_init(NULL) == IJEPA_ERR_INVALID_ARGUMENT, "NULL options");
    uint8_t rgb[40 * 30 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    p.resize = 32; p.crop = 28;
    float pix[3 * 28 * 28];
    CHECK_OK(ijepa_preprocess_rgb8(rgb, 40, 30, &p, pix));
    p.resize = 0; p.crop = 31;
    CHECK(ijepa_preprocess_rgb8(rgb, 40, 30, &p, pix) == IJEPA_ERR_INVALID_ARGUMENT, "crop wider than the image");
    p.crop = 28; p.std[1] = 0;
    CHECK(ijepa_preprocess_rgb8(rgb, 40, 30, &p, pix) == IJEPA_ERR_INVALID_ARGUMENT, "std 0");
    CHECK(ijepa_preprocess_rgb8(NULL, 40, 30, &p, pix) == IJEPA_ERR_INVALID_ARGUMENT, "NULL rgb");

    st_close(&expected);
    return check_summary("test_encoder");
}
