/*
 * make_seeds.c — writes the seed corpus of the checkpoint fuzzer into a directory:
 *
 *   real checkpoints of the tiny fuzz model (fuzz_common.h), saved by the library: weights and
 *     training-state flavours, two seeds and step counts;
 *   the same weights re-encoded by hand: F16, BF16 and F64 tensors, DDP "module." names, extra
 *     odd tensors (scalar, zero-size, 8-D), tensors in reverse order;
 *   textual edits of a real header (training-state metadata and config fields at and around
 *     their limits), with the header length fixed up so the file stays well formed;
 *   small crafted files: every header-length corner, JSON syntax corners, bad dtypes, shapes
 *     and offsets.
 *
 * None of them may crash the harness: run.sh runs the harness over the seeds before fuzzing.
 *
 *   make_seeds OUTDIR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ijepa.h>

#include "fuzz_common.h"

static const char *outdir;
static int written;

static void die(const char *what) {
    fprintf(stderr, "make_seeds: %s: %s\n", what, ijepa_last_error());
    exit(1);
}

static void put(const char *name, const void *bytes, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    written++;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "make_seeds: cannot read %s\n", path); exit(1); }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)size + 1);
    if (fread(b, 1, (size_t)size, f) != (size_t)size) { fprintf(stderr, "make_seeds: short read\n"); exit(1); }
    fclose(f);
    *n = (size_t)size;
    return b;
}

/* header length (8 bytes LE) + header text + data */
static void put_file(const char *name, const char *header, size_t header_len, const void *data, size_t data_len) {
    size_t n = 8 + header_len + data_len;
    unsigned char *b = malloc(n ? n : 1);
    uint64_t h = header_len;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
    memcpy(b + 8, header, header_len);
    if (data_len) memcpy(b + 8 + header_len, data, data_len);
    put(name, b, n);
    free(b);
}

/* A file whose header is `header` (padded with spaces to 8-byte alignment) and whose data is `data`. */
static void put_st(const char *name, const char *header, const void *data, size_t data_len) {
    size_t hl = strlen(header);
    size_t padded = hl + (8 - (8 + hl) % 8) % 8;
    char *h = malloc(padded + 1);
    memcpy(h, header, hl);
    memset(h + hl, ' ', padded - hl);
    put_file(name, h, padded, data, data_len);
    free(h);
}

/* ---- a real checkpoint, split into header text and data --------------------------------- */
typedef struct {
    unsigned char *bytes;
    size_t size;
    char *header;       /* NUL-terminated copy */
    size_t header_len;
    const unsigned char *data;
    size_t data_len;
} real_file;

static void split(const char *path, real_file *r) {
    r->bytes = slurp(path, &r->size);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | r->bytes[i];
    r->header_len = (size_t)h;
    r->header = malloc(r->header_len + 1);
    memcpy(r->header, r->bytes + 8, r->header_len);
    r->header[r->header_len] = '\0';
    r->data = r->bytes + 8 + r->header_len;
    r->data_len = r->size - 8 - r->header_len;
}

/* The real file with the first occurrence of `from` in its header replaced by `to`. */
static void put_edit(const char *name, const real_file *r, const char *from, const char *to) {
    char *at = strstr(r->header, from);
    if (!at) { fprintf(stderr, "make_seeds: '%s' not in the header (for %s)\n", from, name); exit(1); }
    size_t pre = (size_t)(at - r->header), fl = strlen(from), tl = strlen(to);
    char *h = malloc(r->header_len - fl + tl + 1);
    memcpy(h, r->header, pre);
    memcpy(h + pre, to, tl);
    strcpy(h + pre + tl, at + fl);
    /* drop the old padding, put_st pads again */
    size_t n = strlen(h);
    while (n > 0 && h[n - 1] == ' ') h[--n] = '\0';
    put_st(name, h, r->data, r->data_len);
    free(h);
}

/* The text of the "__metadata__" object of a header: {...} (strings may hold braces). */
static char *metadata_object(const char *header) {
    const char *k = strstr(header, "\"__metadata__\":");
    if (!k) return NULL;
    const char *p = strchr(k + 15, '{');
    int depth = 0, in_str = 0;
    for (const char *q = p; *q; q++) {
        if (in_str) {
            if (*q == '\\') q++;
            else if (*q == '"') in_str = 0;
            continue;
        }
        if (*q == '"') in_str = 1;
        else if (*q == '{') depth++;
        else if (*q == '}' && --depth == 0) return strndup(p, (size_t)(q - p + 1));
    }
    return NULL;
}

/* ---- hand-written files from the model's buffers ----------------------------------------- */
typedef enum { AS_F32, AS_F16, AS_BF16, AS_F64 } encoding;

static uint16_t to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xFF, m = x & 0x7FFFFF;
    int ee = (int)e - 127 + 15;
    if (e == 0xFF) return (uint16_t)(sign | 0x7C00 | (m ? 0x200 : 0));
    if (ee >= 31) return (uint16_t)(sign | 0x7C00);
    if (ee <= 0) {
        if (ee < -10) return (uint16_t)sign;
        m |= 0x800000;
        return (uint16_t)(sign | (m >> (14 - ee)));
    }
    return (uint16_t)(sign | (uint32_t)ee << 10 | (m >> 13));
}

typedef struct {
    char *header;
    size_t hlen, hcap;
    unsigned char *data;
    size_t dlen, dcap;
} builder;

static void b_text(builder *b, const char *s) {
    size_t n = strlen(s);
    if (b->hlen + n + 1 > b->hcap) {
        b->hcap = (b->hlen + n + 1) * 2;
        b->header = realloc(b->header, b->hcap);
    }
    memcpy(b->header + b->hlen, s, n + 1);
    b->hlen += n;
}

static void b_data(builder *b, const void *p, size_t n) {
    if (b->dlen + n > b->dcap) {
        b->dcap = (b->dlen + n) * 2 + 64;
        b->data = realloc(b->data, b->dcap);
    }
    if (n) memcpy(b->data + b->dlen, p, n);
    b->dlen += n;
}

static void b_tensor(builder *b, const char *name, const char *dtype, int ndim, const int64_t *shape,
                     const void *bytes, size_t nbytes) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", b->hlen > 1 ? "," : "", name, dtype);
    b_text(b, buf);
    for (int i = 0; i < ndim; i++) {
        snprintf(buf, sizeof buf, "%s%lld", i ? "," : "", (long long)shape[i]);
        b_text(b, buf);
    }
    snprintf(buf, sizeof buf, "],\"data_offsets\":[%zu,%zu]}", b->dlen, b->dlen + nbytes);
    b_text(b, buf);
    b_data(b, bytes, nbytes);
}

static void b_float_tensor(builder *b, const char *name, int ndim, const int64_t *shape, const float *v, size_t n,
                           encoding enc) {
    static const char *names[] = {"F32", "F16", "BF16", "F64"};
    static const size_t sizes[] = {4, 2, 2, 8};
    unsigned char *out = malloc(n * sizes[enc] + 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &v[i], 4);
        switch (enc) {
        case AS_F32: memcpy(out + 4 * i, &v[i], 4); break;
        case AS_F16: { uint16_t h = to_f16(v[i]); memcpy(out + 2 * i, &h, 2); } break;
        case AS_BF16: { uint16_t h = (uint16_t)(x >> 16); memcpy(out + 2 * i, &h, 2); } break;
        case AS_F64: { double d = v[i]; memcpy(out + 8 * i, &d, 8); } break;
        }
    }
    b_tensor(b, name, names[enc], ndim, shape, out, n * sizes[enc]);
    free(out);
}

/* All named tensors of PARAMS and TARGET (names rewritten by `rename`), optionally reversed. */
static void b_model(builder *b, ijepa_model *m, encoding enc, const char *prefix, int reverse) {
    const int bufs[2] = {IJEPA_BUF_PARAMS, IJEPA_BUF_TARGET};
    for (int k = 0; k < 2; k++) {
        int w = bufs[reverse ? 1 - k : k];
        int32_t nt = ijepa_model_num_tensors(m, w);
        const float *base = ijepa_model_buffer(m, w, NULL);
        for (int32_t j = 0; j < nt; j++) {
            int32_t i = reverse ? nt - 1 - j : j;
            ijepa_tensor_info t;
            if (ijepa_model_tensor_info(m, w, i, &t) != IJEPA_OK) die("tensor_info");
            size_t n = 1;
            for (int d = 0; d < t.ndim; d++) n *= (size_t)t.shape[d];
            char name[512];
            snprintf(name, sizeof name, "%s%s", prefix, t.name);
            b_float_tensor(b, name, t.ndim, t.shape, base + t.offset, n, enc);
        }
    }
}

static void b_start(builder *b, const char *metadata) {
    memset(b, 0, sizeof *b);
    b_text(b, "{");
    if (metadata) {
        b_text(b, "\"__metadata__\":");
        b_text(b, metadata);
    }
}

static void b_finish(builder *b, const char *name) {
    b_text(b, "}");
    put_st(name, b->header, b->data, b->dlen);
    free(b->header);
    free(b->data);
}

/* ---- small crafted files ----------------------------------------------------------------- */
static void crafted(void) {
    static const unsigned char four_floats[16] = {0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64};
    put("empty", "", 0);
    put("short-7-bytes", "\x02\0\0\0\0\0\0", 7);
    put_file("hlen-0", "", 0, NULL, 0);
    put_file("hlen-2-empty-object", "{}", 2, NULL, 0);
    {   /* header length larger than the file, and the largest value */
        unsigned char b[24] = {0x10, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
        put("hlen-past-end", b, sizeof b);
        memset(b, 0xFF, 8);
        put("hlen-max", b, sizeof b);
        memset(b, 0, 8);
        b[6] = 0x40; /* 2^54 */
        put("hlen-2p54", b, sizeof b);
    }
    put_st("header-array", "[]", NULL, 0);
    put_st("header-string", "\"x\"", NULL, 0);
    put_st("header-trailing", "{} x", NULL, 0);
    put_st("metadata-not-object", "{\"__metadata__\":[1]}", NULL, 0);
    put_st("metadata-not-string", "{\"__metadata__\":{\"ijepa.config\":1}}", NULL, 0);
    put_st("metadata-config-not-json", "{\"__metadata__\":{\"ijepa.config\":\"{not json\"}}", NULL, 0);
    put_st("metadata-config-empty", "{\"__metadata__\":{\"ijepa.config\":\"{}\"}}", NULL, 0);
    put_st("one-tensor", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("scalar-tensor", "{\"t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", four_floats, 16);
    put_st("zero-size-tensor", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", NULL, 0);
    put_st("zero-dims-product-huge",
           "{\"t\":{\"dtype\":\"F32\",\"shape\":[0,2147483647,2147483647,2147483647],\"data_offsets\":[0,0]}}", NULL, 0);
    put_st("shape-huge", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647],\"data_offsets\":[0,16]}}",
           four_floats, 16);
    put_st("shape-9-dims", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}",
           four_floats, 16);
    put_st("shape-negative", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("shape-fraction", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("shape-1e300", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("shape-string", "{\"t\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("dtype-unknown", "{\"t\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("dtype-int", "{\"t\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("dtype-f8", "{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[16],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("offsets-reversed", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", four_floats, 16);
    put_st("offsets-past-end", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", four_floats, 16);
    put_st("offsets-three", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,16]}}", four_floats, 16);
    put_st("offsets-1e20", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[1e20,1e20]}}", four_floats, 16);
    put_st("offsets-negative-zero", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-0,16]}}", four_floats, 16);
    put_st("overlap",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]}}", four_floats, 16);
    put_st("duplicate-key",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", four_floats, 16);
    put_st("module-duplicate",
           "{\"module.encoder.norm.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
           "\"encoder.norm.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("escapes", "{\"\\u00e9\\ud83d\\ude00\\n\\\"\\/\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
           four_floats, 16);
    put_st("lone-surrogate", "{\"\\ud800x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("bad-utf8", "{\"\xC3\x28\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("nul-in-key", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats, 16);
    put_st("numbers", "{\"__metadata__\":{},\"x\":[-0,1E+2,1e-400,1e400,0.5e1,-1.25E-3]}", NULL, 0);
    put_st("literals", "{\"x\":[true,false,null,tru]}", NULL, 0);
    {   /* nesting at and past the parser's depth limit (64) */
        char deep[400];
        size_t k = 0;
        deep[k++] = '{'; memcpy(deep + k, "\"x\":", 4); k += 4;
        for (int i = 0; i < 63; i++) deep[k++] = '[';
        for (int i = 0; i < 63; i++) deep[k++] = ']';
        deep[k++] = '}'; deep[k] = '\0';
        put_st("nesting-64", deep, NULL, 0);
        k = 5;
        for (int i = 0; i < 150; i++) deep[k++] = '[';
        for (int i = 0; i < 150; i++) deep[k++] = ']';
        deep[k++] = '}'; deep[k] = '\0';
        put_st("nesting-150", deep, NULL, 0);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: make_seeds OUTDIR\n"); return 2; }
    outdir = argv[1];
    mkdir(outdir, 0755);
    char path[1024];

    /* ---- real checkpoints ---- */
    ijepa_config c = fuzz_tiny_config(7);
    ijepa_model *m = NULL;
    if (ijepa_model_create(&c, &m) != IJEPA_OK) die("create");
    float img[2 * 16];
    for (int i = 0; i < 32; i++) img[i] = (float)cos(0.3 * i);
    if (ijepa_train_step(m, img, 2, NULL, NULL) != IJEPA_OK) die("train_step");
    snprintf(path, sizeof path, "%s/real-weights.safetensors", outdir);
    if (ijepa_model_save(m, path, IJEPA_SAVE_WEIGHTS) != IJEPA_OK) die("save weights");
    written++;
    snprintf(path, sizeof path, "%s/real-training.safetensors", outdir);
    if (ijepa_model_save(m, path, IJEPA_SAVE_TRAINING_STATE) != IJEPA_OK) die("save training state");
    written++;
    {
        ijepa_config c9 = fuzz_tiny_config(9);
        c9.allow_overlap = 1; c9.full_grid = 1; c9.num_enc_masks = 2;
        ijepa_model *m9 = NULL;
        if (ijepa_model_create(&c9, &m9) != IJEPA_OK) die("create seed 9");
        for (int s = 0; s < 3; s++)
            if (ijepa_train_step(m9, img, 2, NULL, NULL) != IJEPA_OK) die("train_step seed 9");
        if (ijepa_set_schedule_override(m9, 1e-4f, -1, 0.5f) != IJEPA_OK) die("override");
        snprintf(path, sizeof path, "%s/real-training-seed9-step3.safetensors", outdir);
        if (ijepa_model_save(m9, path, IJEPA_SAVE_TRAINING_STATE) != IJEPA_OK) die("save seed 9");
        written++;
        ijepa_model_free(m9);
    }

    real_file w, t;
    snprintf(path, sizeof path, "%s/real-weights.safetensors", outdir);
    split(path, &w);
    snprintf(path, sizeof path, "%s/real-training.safetensors", outdir);
    split(path, &t);
    char *meta = metadata_object(w.header);
    if (!meta) { fprintf(stderr, "make_seeds: no __metadata__ in the saved header\n"); return 1; }

    /* ---- the same weights, encoded by hand ---- */
    builder b;
    b_start(&b, meta); b_model(&b, m, AS_F32, "", 0); b_finish(&b, "hand-f32");
    b_start(&b, meta); b_model(&b, m, AS_F16, "", 0); b_finish(&b, "hand-f16");
    b_start(&b, meta); b_model(&b, m, AS_BF16, "", 1); b_finish(&b, "hand-bf16-reversed");
    b_start(&b, meta); b_model(&b, m, AS_F64, "", 0); b_finish(&b, "hand-f64");
    b_start(&b, NULL); b_model(&b, m, AS_F32, "module.", 0); b_finish(&b, "hand-module-prefix-no-metadata");
    {   /* unexpected extra tensors of odd shapes */
        static const float one = 1;
        static const int64_t s8[8] = {1, 1, 1, 1, 1, 1, 1, 1}, s0[1] = {0};
        b_start(&b, meta);
        b_model(&b, m, AS_F32, "", 0);
        b_tensor(&b, "extra.scalar", "F32", 0, NULL, &one, 4);
        b_tensor(&b, "extra.empty", "F32", 1, s0, NULL, 0);
        b_tensor(&b, "extra.eight_dims", "F32", 8, s8, &one, 4);
        b_tensor(&b, "extra.bool", "BOOL", 1, s8, "\1", 1);
        b_finish(&b, "hand-extra-tensors");
    }

    /* ---- encoder files (ijepa_encoder_save): the fuzz model's encoder (plain: widths not
       multiples of 16) and a 16-wide one (packed panels where the CPU has AVX2), and edits of
       their metadata ---- */
    {
        ijepa_encoder *e = NULL;
        if (ijepa_encoder_from_model(m, IJEPA_TARGET_ENCODER, &e) != IJEPA_OK) die("encoder_from_model");
        snprintf(path, sizeof path, "%s/encoder-file-plain.safetensors", outdir);
        if (ijepa_encoder_save(e, path) != IJEPA_OK) die("encoder_save");
        written++;
        ijepa_encoder_free(e);
        ijepa_config c16 = fuzz_tiny_config(11);
        c16.embed_dim = 16; c16.num_heads = 2; c16.pred_embed_dim = 4;
        ijepa_model *m16 = NULL;
        if (ijepa_model_create(&c16, &m16) != IJEPA_OK) die("create 16-wide");
        if (ijepa_encoder_from_model(m16, IJEPA_CONTEXT_ENCODER, &e) != IJEPA_OK) die("encoder_from_model 16");
        snprintf(path, sizeof path, "%s/encoder-file-16.safetensors", outdir);
        if (ijepa_encoder_save(e, path) != IJEPA_OK) die("encoder_save 16");
        written++;
        ijepa_encoder_free(e);
        ijepa_model_free(m16);
        real_file ef;
        split(path, &ef);
        put_edit("encoder-file-version2", &ef, "\\\"version\\\":1", "\\\"version\\\":2");
        put_edit("encoder-file-panel8", &ef, "\\\"packed_panel\\\":16", "\\\"packed_panel\\\":8");
        put_edit("encoder-file-unpacked", &ef, "\\\"packed_panel\\\":16", "\\\"packed_panel\\\":0");
        put_edit("encoder-file-heads3", &ef, "\\\"num_heads\\\":2", "\\\"num_heads\\\":3");
        put_edit("encoder-file-grid3", &ef, "\\\"grid\\\":2", "\\\"grid\\\":3");
        put_edit("encoder-file-eps-neg", &ef, "\\\"layer_norm_eps\\\":", "\\\"layer_norm_eps\\\":-");
        put_edit("encoder-file-source", &ef, "\\\"source\\\":\\\"model\\\"", "\\\"source\\\":\\\"onnx\\\"");
        put_edit("encoder-file-which", &ef, "\\\"which_encoder\\\":\\\"context\\\"", "\\\"which_encoder\\\":1");
        put_edit("encoder-file-offsets", &ef, "\"data_offsets\":[0,", "\"data_offsets\":[4,");
    }

    /* ---- textual edits of real headers (training-state metadata, config fields) ---- */
    put_edit("edit-step-neg", &t, "\"ijepa.step\":\"1\"", "\"ijepa.step\":\"-1\"");
    put_edit("edit-step-text", &t, "\"ijepa.step\":\"1\"", "\"ijepa.step\":\"one\"");
    put_edit("edit-step-big", &t, "\"ijepa.step\":\"1\"", "\"ijepa.step\":\"4611686018427387904\"");
    put_edit("edit-step-overflow", &t, "\"ijepa.step\":\"1\"", "\"ijepa.step\":\"9223372036854775808\"");
    put_edit("edit-counter-max", &t, "\"ijepa.mask_counter\":\"1\"", "\"ijepa.mask_counter\":\"9223372036854775807\"");
    put_edit("edit-mask-rng-zero", &t, "\"ijepa.mask_rng\":\"", "\"ijepa.mask_rng\":\"0,0,0,0\",\"x\":\"");
    put_edit("edit-mask-rng-short", &t, "\"ijepa.mask_rng\":\"", "\"ijepa.mask_rng\":\"1,2,3\",\"x\":\"");
    put_edit("edit-override-short", &t, "\"ijepa.override\":\"", "\"ijepa.override\":\"1,2\",\"y\":\"");
    put_edit("edit-override-small", &t, "\"ijepa.override\":\"", "\"ijepa.override\":\"953267991,4294967295,1056964608\",\"y\":\"");
    put_edit("edit-contents-weights", &t, "\"training_state\"", "\"weights\"");
    put_edit("edit-contents-training", &w, "\"ijepa.contents\":\"weights\"", "\"ijepa.contents\":\"training_state\"");
    put_edit("edit-no-config", &w, "\"ijepa.config\"", "\"ijepa.konfig\"");
    put_edit("edit-cfg-huge", &w, "\\\"embed_dim\\\":4", "\\\"embed_dim\\\":16384");
    put_edit("edit-cfg-width8", &w, "\\\"embed_dim\\\":4", "\\\"embed_dim\\\":8");
    put_edit("edit-cfg-patch3", &w, "\\\"patch_size\\\":2", "\\\"patch_size\\\":3");
    put_edit("edit-cfg-patch1", &w, "\\\"patch_size\\\":2", "\\\"patch_size\\\":1");
    put_edit("edit-cfg-threads0", &w, "\\\"n_threads\\\":1", "\\\"n_threads\\\":0");
    put_edit("edit-cfg-threads2", &w, "\\\"n_threads\\\":1", "\\\"n_threads\\\":2");
    put_edit("edit-cfg-threads-neg", &w, "\\\"n_threads\\\":1", "\\\"n_threads\\\":-3");
    put_edit("edit-cfg-seed-text", &w, "\\\"seed\\\":\\\"7\\\"", "\\\"seed\\\":\\\"x\\\"");
    put_edit("edit-cfg-seed-max", &w, "\\\"seed\\\":\\\"7\\\"", "\\\"seed\\\":\\\"18446744073709551615\\\"");
    put_edit("edit-cfg-total-max", &w, "\\\"total_steps\\\":\\\"10\\\"", "\\\"total_steps\\\":\\\"9223372036854775807\\\"");
    put_edit("edit-cfg-mlp-ratio", &w, "\\\"mlp_ratio\\\":1", "\\\"mlp_ratio\\\":1e-30");
    put_edit("edit-cfg-minkeep", &w, "\\\"min_keep\\\":0", "\\\"min_keep\\\":3");
    put_edit("edit-cfg-bool-as-int", &w, "\\\"full_grid\\\":false", "\\\"full_grid\\\":0");
    put_edit("edit-cfg-depth0", &w, "\\\"depth\\\":1", "\\\"depth\\\":0");
    put_edit("edit-dtype-f16-mismatch", &w, "\"dtype\":\"F32\"", "\"dtype\":\"F16\"");
    put_edit("edit-shape-transposed", &w, "\"shape\":[4,1,2,2]", "\"shape\":[1,4,2,2]");

    crafted();

    free(meta);
    free(w.bytes); free(w.header);
    free(t.bytes); free(t.header);
    ijepa_model_free(m);
    printf("make_seeds: %d seed files in %s\n", written, outdir);
    return 0;
}
