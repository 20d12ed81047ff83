/*
 * fuzz_checkpoint.c — libFuzzer target for the checkpoint loader: ijepa_model_load and
 * ijepa_model_load_weights on arbitrary bytes.
 *
 * Every input is written to an in-memory file (memfd, opened by the library through
 * /proc/self/fd/N; /dev/shm or /tmp if memfd is missing), then:
 *
 *   1. ijepa_model_load(path, &m). Fails: the status is IO, FORMAT, NUMERIC or OUT_OF_MEMORY,
 *      *out is untouched and ijepa_last_error() has a fresh, non-empty message. Succeeds: the
 *      model works — it samples masks, takes one training step (IJEPA_OK or IJEPA_ERR_NUMERIC;
 *      on OK the reported lr / weight decay / EMA momentum are values ijepa_set_schedule_override
 *      would accept and every parameter is finite), encodes, and a save (training state) +
 *      load round trip gives back the same buffers, step counter, config and mask stream;
 *      after the step the model is saved and loaded once more: whatever the library saves,
 *      it must load.
 *   2. ijepa_model_load_weights(fixed, path, strict) for strict = 1 and 0, on a fixed tiny model
 *      made once. Fails: status IO, FORMAT or NUMERIC, fresh message, and all five buffers and
 *      the step counter bit-identical. Succeeds: gradients, AdamW state and step untouched (the
 *      model is then reset for the next input); strict success implies non-strict success.
 *   3. ijepa_encoder_load on the same bytes: as a file (heads from the file, then 2 heads
 *      asked for), and as the model.safetensors of a Hugging Face directory and of a timm
 *      directory (fixed config.json files beside a link to the input). Fails: status IO,
 *      FORMAT, NUMERIC or OUT_OF_MEMORY (INVALID_ARGUMENT only for the asked-for heads), *out
 *      untouched, a fresh message. Succeeds: get_info is consistent, and one image at the
 *      weights' size and one a patch wider encode to finite features or IJEPA_ERR_NUMERIC, and
 *      the encoder saved as an encoder file (ijepa_encoder_save) loads back (mapped) with the
 *      same description and the same features, bit for bit.
 *
 * Any violated rule calls abort(), which libFuzzer reports as a crash, like a real crash.
 *
 * IJEPA_FUZZ_SKIP=B8,... (run.sh sets it from regressions/KNOWN_FAILING) skips the one call
 * or check that trips each listed, reported and not yet fixed library bug, so that a campaign
 * looks for new bugs instead of stopping at a known one (the regression inputs still trip
 * them, see run.sh). No bug is open now; the ids stay so that old corpora and library versions
 * can be compared (docs/reliability.md, "Library bugs found"):
 *   B8  fixed after 11fed98: the finiteness check after a successful step (a finite but huge lr or weight
 *       decay, from the config or an override, overflows the update), and the second save +
 *       load of a model so poisoned (the save writes non-finite weights, the load refuses them)
 * and, fixed in 11fed98:
 *   B1  ijepa_train_step on a model loaded with ijepa.step = INT64_MAX (overflow trap)
 *   B2  the lr / weight decay / EMA checks after a successful step (schedule overrides from
 *       the file were not validated)
 *   B3  ijepa_model_load returning IJEPA_ERR_INVALID_ARGUMENT (instead of FORMAT) for a config
 *       that the mask sampler rejects
 *   B4  a config that asks for a model of many MB in a few bytes was allocated (and
 *       initialized) before the tensors were checked. Skipping B4 presents a small machine:
 *       the library refuses models larger than 90% of MemAvailable (read from /proc/meminfo)
 *       with IJEPA_ERR_OUT_OF_MEMORY, so this harness answers fopen("/proc/meminfo") with
 *       MemAvailable = IJEPA_FUZZ_MEM_MB (default 32) and the library's own check keeps every
 *       execution small and fast. Without B4 the library sees the real file, and run.sh's
 *       -malloc_limit_mb turns a large allocation into a reported crash.
 *   B7  the second save + load (a mask counter of INT64_MAX wrapped to a negative value that
 *       ijepa_model_load then rejected)
 * and later:
 *   B12 the second save + load (a loaded mask counter of 2^62 - 1, which the load accepts,
 *       advanced by a step to 2^62, which it refuses; found by the CI campaign)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ijepa.h>

#include "fuzz_common.h"

/* ---- the machine the library sees --------------------------------------------------------- */
static char meminfo_text[256];
static size_t meminfo_len; /* 0: pass through */

FILE *fopen(const char *path, const char *mode) {
    static FILE *(*real_fopen)(const char *, const char *);
    if (!real_fopen) real_fopen = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
    if (meminfo_len && path && strcmp(path, "/proc/meminfo") == 0 && mode && mode[0] == 'r')
        return fmemopen(meminfo_text, meminfo_len, "r");
    return real_fopen(path, mode);
}

/* ---- state made once ----------------------------------------------------------------------- */
static int memfd = -1;
static char input_path[600];
static char save_dir[512], save_path[600];
static ijepa_model *fixed;                 /* load_weights target */
static float *fixed_snap[5];
static size_t fixed_n[5];
static int64_t fixed_step;
static int skip_b1, skip_b2, skip_b3, skip_b4, skip_b7, skip_b8;

#define BUG(...)                                                               \
    do {                                                                       \
        fprintf(stderr, "\nFUZZ INVARIANT VIOLATED (%s:%d): ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n  last error: %s\n", ijepa_last_error());           \
        abort();                                                               \
    } while (0)

/* A message no call of the harness produces, set before each call so a stale one is detected
 * (compared whole: the fuzzer learns the sentinel's words from the comparisons and puts them
 * into tensor names). */
static char *sentinel_message;

static void set_sentinel_error(void) {
    ijepa_config c = {.struct_size = sizeof c};
    (void)ijepa_config_preset("fuzz-sentinel-preset", &c);
}

/* The failure left a fresh, non-empty message. */
static void check_message(const char *what, int st) {
    const char *e = ijepa_last_error();
    if (!e || !e[0] || strcmp(e, sentinel_message) == 0) BUG("%s failed with %d but left no fresh message", what, st);
}

/* Hugging Face and timm directories: a fixed config.json beside a link to the input. */
static char hf_dir[700], timm_dir[700];

static void remove_save_dir(void) {
    if (!save_dir[0]) return;
    unlink(save_path);
    char p[800];
    const char *dirs[2] = {hf_dir, timm_dir};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i][0]) continue;
        snprintf(p, sizeof p, "%s/config.json", dirs[i]); unlink(p);
        snprintf(p, sizeof p, "%s/model.safetensors", dirs[i]); unlink(p);
        rmdir(dirs[i]);
    }
    rmdir(save_dir);
}

static void make_model_dir(char *dir, const char *name, const char *config_json) {
    snprintf(dir, 700, "%s/%s", save_dir, name);
    if (mkdir(dir, 0700) != 0) BUG("mkdir %s: %s", dir, strerror(errno));
    char p[800];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f || fputs(config_json, f) < 0 || fclose(f) != 0) BUG("writing %s", p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (symlink(input_path, p) != 0) BUG("symlink %s: %s", p, strerror(errno));
}

static void write_input(const uint8_t *data, size_t size) {
    if (ftruncate(memfd, 0) != 0) BUG("ftruncate: %s", strerror(errno));
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(memfd, data + done, size - done, (off_t)done);
        if (n < 0) { if (errno == EINTR) continue; BUG("pwrite: %s", strerror(errno)); }
        done += (size_t)n;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    set_sentinel_error();
    sentinel_message = strdup(ijepa_last_error());
    const char *skip = getenv("IJEPA_FUZZ_SKIP");
    if (skip) {
        skip_b1 = strstr(skip, "B1") != NULL;
        skip_b2 = strstr(skip, "B2") != NULL;
        skip_b3 = strstr(skip, "B3") != NULL;
        skip_b4 = strstr(skip, "B4") != NULL;
        skip_b7 = strstr(skip, "B7") != NULL;
        skip_b8 = strstr(skip, "B8") != NULL;
    }
    const char *mb = getenv("IJEPA_FUZZ_MEM_MB");
    long mem_mb = mb && mb[0] ? strtol(mb, NULL, 10) : 32;
    if (skip_b4 && mem_mb > 0) {
        int n = snprintf(meminfo_text, sizeof meminfo_text,
                         "MemTotal:       %ld kB\nMemFree:        %ld kB\nMemAvailable:   %ld kB\n",
                         mem_mb * 1024, mem_mb * 1024, mem_mb * 1024);
        meminfo_len = (size_t)n;
    }
    memfd = memfd_create("ijepa-fuzz-input", MFD_CLOEXEC);
    if (memfd >= 0) {
        snprintf(input_path, sizeof input_path, "/proc/self/fd/%d", memfd);
    } else {
        snprintf(input_path, sizeof input_path, "%s/ijepa-fuzz-input-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        memfd = mkstemp(input_path);
        if (memfd < 0) BUG("no temporary file for the inputs: %s", strerror(errno));
    }
    /* round trips are saved under IJEPA_FUZZ_TMP (run.sh makes one and removes it at the end:
     * libFuzzer's -fork workers end without running atexit handlers), else /dev/shm or /tmp */
    const char *tmp = getenv("IJEPA_FUZZ_TMP");
    if (!tmp || !tmp[0]) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(save_dir, sizeof save_dir, "%s/ijepa-fuzz-save-XXXXXX", tmp);
    if (!mkdtemp(save_dir)) BUG("mkdtemp(%s): %s", save_dir, strerror(errno));
    snprintf(save_path, sizeof save_path, "%s/roundtrip.safetensors", save_dir);
    atexit(remove_save_dir);
    /* the configs of Tests/Fixtures/encoders/hf_v5 and timm (the seeds' sizes) */
    make_model_dir(hf_dir, "hf", "{\"architectures\": [\"IJepaModel\"], \"hidden_act\": \"gelu\", \"hidden_size\": 32, "
                   "\"image_size\": 24, \"intermediate_size\": 80, \"layer_norm_eps\": 1e-05, \"model_type\": \"ijepa\", "
                   "\"num_attention_heads\": 2, \"num_channels\": 3, \"num_hidden_layers\": 3, \"patch_size\": 4}");
    make_model_dir(timm_dir, "timm", "{\"architecture\": \"vit_huge_patch14_gap_224\", \"num_features\": 48, "
                   "\"model_args\": {\"patch_size\": 8, \"embed_dim\": 48, \"depth\": 2, \"num_heads\": 4}}");

    ijepa_config c = fuzz_tiny_config(7);
    if (ijepa_model_create(&c, &fixed) != IJEPA_OK) BUG("create the fixed model");
    float img[2 * 16];
    for (int i = 0; i < 32; i++) img[i] = (float)sin(0.7 * i);
    if (ijepa_train_step(fixed, img, 2, NULL, NULL) != IJEPA_OK) BUG("a step of the fixed model");
    for (int w = 0; w < 5; w++) {
        const float *p = ijepa_model_buffer(fixed, w, &fixed_n[w]);
        fixed_snap[w] = malloc(fixed_n[w] * sizeof(float));
        memcpy(fixed_snap[w], p, fixed_n[w] * sizeof(float));
    }
    fixed_step = ijepa_model_step(fixed);
    return 0;
}

/* Which buffers of the fixed model differ from the snapshot (bit mask). */
static int fixed_changed(void) {
    int mask = 0;
    for (int w = 0; w < 5; w++) {
        size_t n = 0;
        const float *p = ijepa_model_buffer(fixed, w, &n);
        if (!p || n != fixed_n[w] || memcmp(p, fixed_snap[w], n * sizeof(float)) != 0) mask |= 1 << w;
    }
    return mask;
}

static void fixed_reset(void) {
    for (int w = 0; w < 5; w++) {
        float *p = ijepa_model_buffer(fixed, w, NULL);
        memcpy(p, fixed_snap[w], fixed_n[w] * sizeof(float));
    }
}

static int all_finite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

static int same_buffer(ijepa_model *a, ijepa_model *b, int which) {
    size_t na = 0, nb = 0;
    const float *pa = ijepa_model_buffer(a, which, &na), *pb = ijepa_model_buffer(b, which, &nb);
    return pa && pb && na == nb && memcmp(pa, pb, na * sizeof(float)) == 0;
}

static int same_masks(const ijepa_masks *x, const ijepa_masks *y) {
    if (x->batch != y->batch || x->num_enc != y->num_enc || x->k_enc != y->k_enc || x->num_pred != y->num_pred ||
        x->k_pred != y->k_pred)
        return 0;
    size_t ne = (size_t)x->num_enc * x->batch * x->k_enc, np = (size_t)x->num_pred * x->batch * x->k_pred;
    return memcmp(x->enc, y->enc, ne * sizeof(int32_t)) == 0 && memcmp(x->pred, y->pred, np * sizeof(int32_t)) == 0;
}

/* A model that ijepa_model_load accepted must be usable, and must survive a save/load round trip. */
static void exercise_loaded(ijepa_model *m) {
    ijepa_config c = {.struct_size = sizeof c};
    if (ijepa_model_get_config(m, &c) != IJEPA_OK) BUG("get_config on a loaded model");
    int32_t N = ijepa_model_num_patches(m), D = ijepa_model_embed_dim(m);
    if (N <= 0 || D <= 0) BUG("loaded model has %d patches, width %d", N, D);

    /* the round trip first, before this function changes the model */
    int st = ijepa_model_save(m, save_path, IJEPA_SAVE_TRAINING_STATE);
    if (st != IJEPA_OK && st != IJEPA_ERR_IO) BUG("saving a loaded model: status %d", st);
    if (st == IJEPA_OK) {
        ijepa_model *r = NULL;
        st = ijepa_model_load(save_path, &r);
        if (st != IJEPA_OK) BUG("a checkpoint the library just saved does not load: status %d", st);
        ijepa_config cr = {.struct_size = sizeof cr};
        memset(&c, 0, sizeof c);
        memset(&cr, 0, sizeof cr);
        c.struct_size = sizeof c;
        cr.struct_size = sizeof cr;
        ijepa_model_get_config(m, &c);
        ijepa_model_get_config(r, &cr);
        if (memcmp(&c, &cr, sizeof c) != 0) BUG("round trip changed the config");
        if (ijepa_model_step(m) != ijepa_model_step(r)) BUG("round trip changed the step counter");
        const int which[4] = {IJEPA_BUF_PARAMS, IJEPA_BUF_TARGET, IJEPA_BUF_ADAM_M, IJEPA_BUF_ADAM_V};
        for (int i = 0; i < 4; i++)
            if (!same_buffer(m, r, which[i])) BUG("round trip changed buffer %d", which[i]);
        ijepa_masks km, kr;
        int sm = ijepa_masks_sample(m, 1, &km), sr = ijepa_masks_sample(r, 1, &kr);
        if (sm != sr) BUG("mask sampling: %d before the round trip, %d after", sm, sr);
        if (sm == IJEPA_OK) {
            if (!same_masks(&km, &kr)) BUG("round trip changed the mask stream");
            ijepa_masks_free(&km);
            ijepa_masks_free(&kr);
        } else {
            BUG("a loaded model cannot sample masks: status %d", sm);
        }
        ijepa_model_free(r);
        unlink(save_path);
    }

    size_t n_img = (size_t)c.in_chans * (size_t)c.image_size * (size_t)c.image_size;
    if (n_img > (1u << 20)) return; /* large images: skip the compute (the file bounds N*D, not pixels) */
    float *img = calloc(n_img, sizeof(float));
    float *pooled = malloc((size_t)D * sizeof(float));
    if (!img || !pooled) BUG("harness out of memory");
    for (size_t i = 0; i < n_img; i++) img[i] = (float)((i * 37) % 11) * 0.1f - 0.5f;

    st = ijepa_encode(m, img, 1, IJEPA_TARGET_ENCODER, NULL, pooled);
    if (st != IJEPA_OK && st != IJEPA_ERR_NUMERIC && st != IJEPA_ERR_OUT_OF_MEMORY) BUG("encode: status %d", st);
    if (st != IJEPA_OK) check_message("encode", st);

    if (!(skip_b1 && ijepa_model_step(m) == INT64_MAX)) {
        ijepa_step_stats s;
        set_sentinel_error();
        st = ijepa_train_step(m, img, 1, NULL, &s);
        /* a step at the last step number the library keeps (2^62 - 1) is refused (B12) */
        int at_limit = ijepa_model_step(m) == (int64_t)((UINT64_C(1) << 62) - 1);
        if (st == IJEPA_ERR_STATE && !(at_limit && strstr(ijepa_last_error(), "cannot advance")))
            BUG("train_step: status %d below the step limit (%s)", st, ijepa_last_error());
        if (st != IJEPA_OK && st != IJEPA_ERR_NUMERIC && st != IJEPA_ERR_OUT_OF_MEMORY && st != IJEPA_ERR_STATE)
            BUG("train_step: status %d", st);
        if (st != IJEPA_OK) check_message("train_step", st);
        if (st == IJEPA_OK && !skip_b2) {
            if (!isfinite(s.lr) || s.lr < 0) BUG("a step ran with lr %g", s.lr);
            if (!isfinite(s.weight_decay) || s.weight_decay < 0) BUG("a step ran with weight decay %g", s.weight_decay);
            if (!(s.ema_momentum >= 0 && s.ema_momentum <= 1)) BUG("a step ran with EMA momentum %g", s.ema_momentum);
        }
        if (st == IJEPA_OK && !skip_b8) {
            size_t n = 0;
            const float *p = ijepa_model_buffer(m, IJEPA_BUF_PARAMS, &n);
            if (!all_finite(p, n)) BUG("a successful step left non-finite parameters");
            p = ijepa_model_buffer(m, IJEPA_BUF_TARGET, &n);
            if (!all_finite(p, n)) BUG("a successful step left a non-finite target encoder");
        }
    }
    /* with B8 skipped, a step may have left non-finite weights, which the save writes and the
     * load refuses (the library writes a checkpoint it cannot read, reported with B8) */
    int poisoned = 0;
    if (skip_b8) {
        size_t n = 0;
        const float *p = ijepa_model_buffer(m, IJEPA_BUF_PARAMS, &n);
        poisoned = !all_finite(p, n);
    }
    if (!skip_b7 && !poisoned) {
        /* whatever the library saves, it loads: also after the step advanced the counters */
        st = ijepa_model_save(m, save_path, IJEPA_SAVE_TRAINING_STATE);
        if (st != IJEPA_OK && st != IJEPA_ERR_IO) BUG("saving a loaded model after a step: status %d", st);
        if (st == IJEPA_OK) {
            ijepa_model *r = NULL;
            st = ijepa_model_load(save_path, &r);
            if (st != IJEPA_OK) BUG("the library cannot load what it saved after a step: status %d", st);
            if (ijepa_model_step(r) != ijepa_model_step(m)) BUG("second round trip changed the step counter");
            ijepa_model_free(r);
            unlink(save_path);
        }
    }
    free(img);
    free(pooled);
}

static void check_load(void) {
    ijepa_model *const sentinel = (ijepa_model *)(uintptr_t)0x5EA1;
    ijepa_model *m = sentinel;
    set_sentinel_error();
    int st = ijepa_model_load(input_path, &m);
    if (st == IJEPA_OK) {
        if (m == sentinel || m == NULL) BUG("load succeeded without a model");
        exercise_loaded(m);
        ijepa_model_free(m);
        return;
    }
    if (st != IJEPA_ERR_IO && st != IJEPA_ERR_FORMAT && st != IJEPA_ERR_NUMERIC && st != IJEPA_ERR_OUT_OF_MEMORY &&
        !(skip_b3 && st == IJEPA_ERR_INVALID_ARGUMENT))
        BUG("ijepa_model_load: unexpected status %d (%s)", st, ijepa_status_string(st));
    if (m != sentinel) BUG("ijepa_model_load failed (%d) but wrote *out", st);
    check_message("ijepa_model_load", st);
}

static void check_load_weights(void) {
    int ok_strict = 0;
    for (int strict = 1; strict >= 0; strict--) {
        set_sentinel_error();
        int st = ijepa_model_load_weights(fixed, input_path, strict);
        int changed = fixed_changed();
        if (st == IJEPA_OK) {
            /* only PARAMS and TARGET may change; gradients and AdamW state are not in a weights load */
            if (changed & ~((1 << IJEPA_BUF_PARAMS) | (1 << IJEPA_BUF_TARGET)))
                BUG("load_weights(strict %d) changed buffers %#x", strict, changed);
            if (ijepa_model_step(fixed) != fixed_step) BUG("load_weights changed the step counter");
            size_t n = 0;
            const float *p = ijepa_model_buffer(fixed, IJEPA_BUF_PARAMS, &n);
            if (!all_finite(p, n)) BUG("load_weights accepted non-finite parameters");
            if (strict) ok_strict = 1;
            fixed_reset();
            continue;
        }
        if (st != IJEPA_ERR_IO && st != IJEPA_ERR_FORMAT && st != IJEPA_ERR_NUMERIC)
            BUG("ijepa_model_load_weights(strict %d): unexpected status %d (%s)", strict, st, ijepa_status_string(st));
        check_message("ijepa_model_load_weights", st);
        if (changed) BUG("load_weights(strict %d) failed (%d) but changed buffers %#x", strict, st, changed);
        if (ijepa_model_step(fixed) != fixed_step) BUG("failed load_weights changed the step counter");
        if (ok_strict) BUG("load_weights succeeded with strict = 1 but failed (%d) with strict = 0", st);
    }
}

/* One image of h x w through a loaded encoder: IJEPA_OK with finite features, or NUMERIC
 * (weights whose activations overflow). Sizes past a small budget are not tried. */
static void encode_one(ijepa_encoder *e, const ijepa_encoder_info *info, int32_t h, int32_t w) {
    int32_t n = ijepa_encoder_num_tokens(e, h, w), P = info->patch_size;
    if (n != (h / P) * (w / P)) BUG("num_tokens(%d, %d) = %d with patch %d", h, w, n, P);
    size_t pixels = (size_t)info->in_chans * (size_t)h * (size_t)w, outs = (size_t)n * (size_t)info->embed_dim;
    if (pixels > (1u << 20) || outs > (1u << 20)) return;
    float *img = malloc(pixels * sizeof(float)), *tok = malloc(outs * sizeof(float));
    float *pooled = malloc((size_t)info->embed_dim * sizeof(float));
    for (size_t i = 0; i < pixels; i++) img[i] = (float)sin(0.37 * (double)i);
    set_sentinel_error();
    int st = ijepa_encoder_encode(e, img, 1, h, w, tok, pooled);
    if (st == IJEPA_OK) {
        if (!all_finite(tok, outs) || !all_finite(pooled, (size_t)info->embed_dim))
            BUG("ijepa_encoder_encode succeeded with non-finite features");
    } else if (st == IJEPA_ERR_NUMERIC || st == IJEPA_ERR_OUT_OF_MEMORY) {
        check_message("ijepa_encoder_encode", st);
    } else {
        BUG("ijepa_encoder_encode(%dx%d): unexpected status %d (%s)", h, w, st, ijepa_status_string(st));
    }
    free(img); free(tok); free(pooled);
}

/* Whatever the library saves, it must load: e saved as an encoder file (ijepa_encoder_save) loads
 * back with the same description and encodes an image to the same features, bit for bit (or
 * fails it with the same status). */
static void check_encoder_roundtrip(ijepa_encoder *e, const ijepa_encoder_info *info, const char *what) {
    set_sentinel_error();
    int st = ijepa_encoder_save(e, save_path);
    if (st != IJEPA_OK) {
        if (st != IJEPA_ERR_IO) BUG("ijepa_encoder_save (%s): unexpected status %d (%s)", what, st, ijepa_status_string(st));
        check_message("ijepa_encoder_save", st);
        return;
    }
    ijepa_encoder_options o = {.struct_size = sizeof o};
    if (ijepa_encoder_options_init(&o) != IJEPA_OK) BUG("ijepa_encoder_options_init");
    o.n_threads = 1;
    ijepa_encoder *back = NULL;
    st = ijepa_encoder_load(save_path, &o, &back);
    if (st != IJEPA_OK) BUG("the encoder file saved from %s does not load: %d (%s)", what, st, ijepa_last_error());
    ijepa_encoder_info again;
    memset(&again, 0, sizeof again);
    again.struct_size = sizeof again;
    if (ijepa_encoder_get_info(back, &again) != IJEPA_OK) BUG("get_info of a saved and loaded encoder");
    if (memcmp(info, &again, sizeof again) != 0) BUG("the encoder saved from %s loads with another description", what);
    int32_t h = info->image_size, w = info->image_size;
    size_t pixels = (size_t)info->in_chans * (size_t)h * (size_t)w, D = (size_t)info->embed_dim;
    if (pixels <= (1u << 20) && D <= (1u << 16)) {
        float *img = malloc(pixels * sizeof(float)), *a = malloc(D * sizeof(float)), *b = malloc(D * sizeof(float));
        for (size_t i = 0; i < pixels; i++) img[i] = (float)cos(0.41 * (double)i);
        int sa = ijepa_encoder_encode(e, img, 1, h, w, NULL, a), sb = ijepa_encoder_encode(back, img, 1, h, w, NULL, b);
        if (sa != sb) BUG("the encoder saved from %s encodes with status %d, the original %d", what, sb, sa);
        if (sa == IJEPA_OK && memcmp(a, b, D * sizeof(float)) != 0)
            BUG("the encoder saved from %s encodes to other features", what);
        free(img); free(a); free(b);
    }
    ijepa_encoder_free(back);
    unlink(save_path);
}

static void check_encoder_load(const char *what, const char *path, int32_t num_heads) {
    ijepa_encoder_options o = {.struct_size = sizeof o};
    if (ijepa_encoder_options_init(&o) != IJEPA_OK) BUG("ijepa_encoder_options_init");
    o.num_heads = num_heads;
    o.n_threads = 1;
    ijepa_encoder *const sentinel = (ijepa_encoder *)(uintptr_t)0x5151;
    ijepa_encoder *e = sentinel;
    set_sentinel_error();
    int st = ijepa_encoder_load(path, &o, &e);
    if (st != IJEPA_OK) {
        if (st != IJEPA_ERR_IO && st != IJEPA_ERR_FORMAT && st != IJEPA_ERR_NUMERIC && st != IJEPA_ERR_OUT_OF_MEMORY &&
            !(st == IJEPA_ERR_INVALID_ARGUMENT && num_heads > 0))
            BUG("ijepa_encoder_load (%s): unexpected status %d (%s)", what, st, ijepa_status_string(st));
        if (e != sentinel) BUG("ijepa_encoder_load (%s) failed (%d) but wrote *out", what, st);
        check_message("ijepa_encoder_load", st);
        return;
    }
    ijepa_encoder_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (ijepa_encoder_get_info(e, &info) != IJEPA_OK) BUG("get_info of a loaded encoder");
    if (info.embed_dim < 1 || info.num_heads < 1 || info.embed_dim % info.num_heads || info.depth < 1 ||
        info.patch_size < 1 || info.image_size < info.patch_size || info.image_size % info.patch_size ||
        (num_heads > 0 && info.num_heads != num_heads) || !(info.layer_norm_eps > 0))
        BUG("ijepa_encoder_load (%s): inconsistent info D %d heads %d depth %d patch %d image %d eps %g", what,
            info.embed_dim, info.num_heads, info.depth, info.patch_size, info.image_size, info.layer_norm_eps);
    encode_one(e, &info, info.image_size, info.image_size);
    encode_one(e, &info, info.image_size, info.image_size + info.patch_size);
    check_encoder_roundtrip(e, &info, what);
    ijepa_encoder_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    write_input(data, size);
    check_load();
    check_load_weights();
    check_encoder_load("file", input_path, 0);
    check_encoder_load("file, 2 heads", input_path, 2);
    check_encoder_load("Hugging Face directory", hf_dir, 0);
    check_encoder_load("timm directory", timm_dir, 0);
    return 0;
}
