/*
 * make_images.c — test helper of ijepa-encode (examples/tests/test_ijepa_encode.sh).
 *
 *   make_images images DIR                 a.png 40x30 RGB, b.jpg 64x48 RGB, c.png 20x50 gray,
 *                                          d.png 33x33 RGBA (stb_image_write)
 *   make_images checkpoint PATH            a "tiny32" libijepa checkpoint (weights only)
 *   make_images reference WEIGHTS OUT IMG...
 *                                          for each image: stbi_load(.., 3), the default
 *                                          ijepa_preprocess_rgb8 for the encoder's image size and
 *                                          ijepa_encoder_encode of that ONE image (pooled); the
 *                                          rows are written to OUT as raw float32 (host order)
 *
 * Exit status 0 on success, 1 on any failure (message on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ijepa.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

/* Prints the library's error for a failed call and returns 1. */
static int fail(const char *what) {
    fprintf(stderr, "make_images: %s failed: %s\n", what, ijepa_last_error());
    return 1;
}

/* A deterministic w x h image with c channels: smooth gradients plus a checkerboard. */
static unsigned char *pattern(int w, int h, int c, int seed) {
    unsigned char *px = malloc((size_t)w * h * c);
    if (!px) return NULL;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                px[((size_t)y * w + x) * c + k] =
                    (unsigned char)((x * 255 / w) * (k % 2) + (y * 255 / h) * ((k + 1) % 2) +
                                    (((x / 4 + y / 4 + seed) % 2) ? 40 : 0) + 17 * k);
    return px;
}

/* Writes one pattern image as PNG or JPEG (by the name's extension); 0 or 1. */
static int write_image(const char *dir, const char *name, int w, int h, int c, int seed) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unsigned char *px = pattern(w, h, c, seed);
    if (!px) { fprintf(stderr, "make_images: out of memory\n"); return 1; }
    int ok = strstr(name, ".jpg") ? stbi_write_jpg(path, w, h, c, px, 90)
                                   : stbi_write_png(path, w, h, c, px, w * c);
    free(px);
    if (!ok) { fprintf(stderr, "make_images: cannot write %s\n", path); return 1; }
    return 0;
}

static int cmd_images(const char *dir) {
    return write_image(dir, "a.png", 40, 30, 3, 0) || write_image(dir, "b.jpg", 64, 48, 3, 1) ||
           write_image(dir, "c.png", 20, 50, 1, 2) || write_image(dir, "d.png", 33, 33, 4, 3);
}

static int cmd_checkpoint(const char *path) {
    ijepa_config cfg = {.struct_size = sizeof cfg};
    ijepa_model *m = NULL;
    if (ijepa_config_preset("tiny32", &cfg) != IJEPA_OK) return fail("ijepa_config_preset");
    if (ijepa_model_create(&cfg, &m) != IJEPA_OK) return fail("ijepa_model_create");
    int r = ijepa_model_save(m, path, IJEPA_SAVE_WEIGHTS) != IJEPA_OK ? fail("ijepa_model_save") : 0;
    ijepa_model_free(m);
    return r;
}

/* Decodes, preprocesses and encodes one image alone; row: embed_dim floats. 0 or 1. */
static int reference_row(ijepa_encoder *e, const ijepa_preprocess *p, const char *path, float *pixels,
                         float *row) {
    int w, h, c;
    unsigned char *rgb = stbi_load(path, &w, &h, &c, 3);
    if (!rgb) { fprintf(stderr, "make_images: %s: %s\n", path, stbi_failure_reason()); return 1; }
    int st = ijepa_preprocess_rgb8(rgb, h, w, p, pixels);
    stbi_image_free(rgb);
    if (st != IJEPA_OK) return fail("ijepa_preprocess_rgb8");
    if (ijepa_encoder_encode(e, pixels, 1, p->crop, p->crop, NULL, row) != IJEPA_OK)
        return fail("ijepa_encoder_encode");
    return 0;
}

static int cmd_reference(const char *weights, const char *out, char **images, int n) {
    ijepa_encoder *e = NULL;
    if (ijepa_encoder_load(weights, NULL, &e) != IJEPA_OK) return fail("ijepa_encoder_load");
    ijepa_encoder_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (ijepa_encoder_get_info(e, &info) != IJEPA_OK) { ijepa_encoder_free(e); return fail("ijepa_encoder_get_info"); }
    ijepa_preprocess p = {.struct_size = sizeof p};
    if (ijepa_preprocess_init(&p, info.image_size) != IJEPA_OK) { ijepa_encoder_free(e); return fail("ijepa_preprocess_init"); }
    float *pixels = malloc(sizeof(float) * 3 * (size_t)p.crop * p.crop);
    float *row = malloc(sizeof(float) * (size_t)info.embed_dim);
    FILE *f = fopen(out, "wb");
    int r = !pixels || !row || !f;
    if (r) fprintf(stderr, "make_images: cannot allocate or open %s\n", out);
    for (int i = 0; i < n && !r; i++) {
        r = reference_row(e, &p, images[i], pixels, row);
        if (!r && fwrite(row, sizeof(float), (size_t)info.embed_dim, f) != (size_t)info.embed_dim) {
            fprintf(stderr, "make_images: cannot write %s\n", out);
            r = 1;
        }
    }
    if (f && fclose(f) != 0) r = 1;
    free(pixels); free(row);
    ijepa_encoder_free(e);
    return r;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "images")) return cmd_images(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "checkpoint")) return cmd_checkpoint(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "reference")) return cmd_reference(argv[2], argv[3], argv + 4, argc - 4);
    fprintf(stderr, "usage: make_images images DIR | checkpoint PATH | reference WEIGHTS OUT IMG...\n");
    return 1;
}
