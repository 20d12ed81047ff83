/*
 * ijepa_encode.c — ijepa-encode: image files in, one feature row per image out (NumPy .npy).
 *
 *   ijepa-encode [options] WEIGHTS IMAGE... -o features.npy
 *   ijepa-encode [options] WEIGHTS --save ENCODER.safetensors [IMAGE... -o features.npy]
 *
 *   WEIGHTS   anything ijepa_encoder_load accepts: a libijepa checkpoint, an official
 *             safetensors file, a Hugging Face IJepaModel directory, a timm file
 *   IMAGE     any file stb_image decodes (JPEG, PNG, BMP, GIF, TGA, PSD, HDR, PIC, PNM)
 *
 *   -o, --output PATH   the .npy file (required): float32 '<f4', C order, shape (rows, D), or
 *                       (rows, K*D) with --last-k K; one row per encoded image, input order
 *   --list PATH         a text file with the image path of each output row, one per line
 *   --save PATH         write the loaded encoder as a libijepa encoder file (ijepa_encoder_save):
 *                       given as WEIGHTS later, it is mapped, not read, and loads at once;
 *                       images and -o are then optional
 *   --batch N           images decoded and encoded together (default 8)
 *   --threads N         encoder threads (default: all cores)
 *   --last-k K          concatenate the pooled features of the last K blocks
 *   --encoder WHICH     target (default) or context, for files that hold both
 *   --heads N           number of attention heads, when the weights do not say it
 *   --resize N          shorter side resized to N first (default crop*8/7; 0: no resize)
 *   --crop N            centre crop N x N (default the encoder's image size)
 *   --mean a,b,c        per-channel mean on [0,1] values (default ImageNet's)
 *   --std a,b,c         per-channel std (default ImageNet's)
 *   -q, --quiet         no progress line (only the final summary and the errors)
 *   -h, --help          this text
 *
 * Exit status: 0 every image encoded; 2 some images failed (each named on stderr with the
 * reason; the others are written and --list tells which rows are which); 1 usage errors,
 * weights that cannot be loaded, output that cannot be written, or no image encoded.
 *
 * Build: cc -std=c11 ijepa_encode.c $(pkg-config --cflags --libs ijepa stb) -o ijepa-encode
 * The image decoder is Debian's libstb (libstb-dev), which already contains stb_image's
 * implementation: this file only includes its declarations.
 *
 * Memory: one batch of preprocessed images and one decoded image at a time; the feature rows
 * are streamed to a temporary file next to the output, which is renamed over it at the end
 * (after fsync), so the output is either the complete old file or the complete new one.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ijepa.h>
#include <stb/stb_image.h>

#define PROG "ijepa-encode"
#define NPY_HEADER_BYTES 128 /* fixed, so the row count can be filled in at the end */

static const char USAGE[] =
    "usage: " PROG " [options] WEIGHTS IMAGE... -o features.npy\n"
    "       " PROG " [options] WEIGHTS --save ENCODER.safetensors [IMAGE... -o features.npy]\n"
    "\n"
    "Encodes each IMAGE with the pretrained I-JEPA encoder in WEIGHTS (a libijepa checkpoint,\n"
    "an official safetensors file, a Hugging Face IJepaModel directory or a timm file) and\n"
    "writes one float32 row per encoded image, in input order, to a NumPy .npy file.\n"
    "\n"
    "options:\n"
    "  -o, --output PATH   output .npy file (required); shape (rows, D) or (rows, K*D)\n"
    "  --list PATH         write the image path of each output row, one per line\n"
    "  --save PATH         write the encoder as a libijepa encoder file, which later loads at\n"
    "                      once (mapped); IMAGE and -o are then optional\n"
    "  --batch N           images per batch (default 8)\n"
    "  --threads N         encoder threads (default: all cores)\n"
    "  --last-k K          concatenate the pooled features of the last K blocks\n"
    "  --encoder WHICH     target (default) or context, for weights holding both\n"
    "  --heads N           attention heads, when the weights do not say it\n"
    "  --resize N          resize the shorter side to N (default crop*8/7; 0: no resize)\n"
    "  --crop N            centre crop N x N (default: the encoder's image size)\n"
    "  --mean a,b,c        per-channel mean of [0,1] pixels (default 0.485,0.456,0.406)\n"
    "  --std a,b,c         per-channel std (default 0.229,0.224,0.225)\n"
    "  -q, --quiet         no progress line\n"
    "  -h, --help          show this help\n"
    "\n"
    "Images that cannot be read or decoded are reported on stderr and skipped.\n"
    "Exit status: 0 all images encoded, 2 some skipped, 1 usage or fatal error.\n";

/* ---- command line ------------------------------------------------------------------------ */

typedef struct args {
    const char *weights, *output, *list, *save;
    const char **images;          /* borrowed from argv */
    int n_images;
    int32_t batch, threads, last_k, which, heads, resize, crop;
    int have_mean, have_std, quiet;
    float mean[3], std[3];
} args;

/* Prints "ijepa-encode: <message>" on stderr. */
static void message(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Reports a usage error and returns -1 (for `return usage_error(...)`). */
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry '" PROG " --help'.\n", stderr);
    va_end(ap);
    return -1;
}

/* Parses a whole decimal integer in [min, INT32_MAX] into *out; 0 or -1 (reported). */
static int parse_int(const char *opt, const char *s, long min, int32_t *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || v > INT32_MAX)
        return usage_error("%s: '%s' is not a valid integer", opt, s);
    if (v < min)
        return usage_error("%s: must be %s, got %ld", opt, min > 0 ? "positive" : "at least 0", v);
    *out = (int32_t)v;
    return 0;
}

/* Parses "a,b,c" (finite floats, positive when `positive`) into out[3]; 0 or -1 (reported). */
static int parse_triple(const char *opt, const char *s, int positive, float out[3]) {
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(v) || (i < 2 ? *end != ',' : *end != '\0'))
            return usage_error("%s: expected three comma-separated numbers, got '%s'", opt, s);
        if (positive && !(v > 0))
            return usage_error("%s: values must be positive, got '%s'", opt, s);
        out[i] = (float)v;
        p = end + 1;
    }
    return 0;
}

/* Handles one option that takes a value; 0 or -1 (reported). */
static int parse_valued(args *a, const char *opt, const char *v) {
    if (!strcmp(opt, "-o") || !strcmp(opt, "--output")) { a->output = v; return 0; }
    if (!strcmp(opt, "--list")) { a->list = v; return 0; }
    if (!strcmp(opt, "--save")) { a->save = v; return 0; }
    if (!strcmp(opt, "--batch")) return parse_int(opt, v, 1, &a->batch);
    if (!strcmp(opt, "--threads")) return parse_int(opt, v, 1, &a->threads);
    if (!strcmp(opt, "--last-k")) return parse_int(opt, v, 1, &a->last_k);
    if (!strcmp(opt, "--heads")) return parse_int(opt, v, 1, &a->heads);
    if (!strcmp(opt, "--resize")) return parse_int(opt, v, 0, &a->resize);
    if (!strcmp(opt, "--crop")) return parse_int(opt, v, 1, &a->crop);
    if (!strcmp(opt, "--mean")) { a->have_mean = 1; return parse_triple(opt, v, 0, a->mean); }
    if (!strcmp(opt, "--std")) { a->have_std = 1; return parse_triple(opt, v, 1, a->std); }
    if (!strcmp(opt, "--encoder")) {
        if (!strcmp(v, "target")) a->which = IJEPA_TARGET_ENCODER;
        else if (!strcmp(v, "context")) a->which = IJEPA_CONTEXT_ENCODER;
        else return usage_error("--encoder: expected 'target' or 'context', got '%s'", v);
        return 0;
    }
    return usage_error("unknown option '%s'", opt);
}

/* True for the options that take a value. */
static int takes_value(const char *opt) {
    static const char *const names[] = {"-o", "--output", "--list", "--save", "--batch", "--threads",
                                        "--last-k", "--encoder", "--heads", "--resize", "--crop",
                                        "--mean", "--std"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(opt, names[i])) return 1;
    return 0;
}

/* Handles argv[*i], an option (consuming its value); 0, 1 for --help, or -1 (reported). */
static int parse_option(args *a, int argc, char **argv, int *i) {
    char *arg = argv[*i];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) return 1;
    if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) { a->quiet = 1; return 0; }
    char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (eq) { /* --name=value */
        *eq = '\0';
        int r = takes_value(arg) ? parse_valued(a, arg, eq + 1) : usage_error("unknown option '%s'", arg);
        *eq = '=';
        return r;
    }
    if (!takes_value(arg)) return usage_error("unknown option '%s'", arg);
    if (*i + 1 >= argc) return usage_error("option '%s' needs a value", arg);
    *i += 1;
    return parse_valued(a, arg, argv[*i]);
}

/* Fills *a from the command line (options anywhere, "--" ends them); 0, 1 for --help, -1. */
static int parse_args(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->batch = 8;
    a->which = IJEPA_TARGET_ENCODER;
    a->resize = -1; /* -1: the preprocessing default */
    a->images = calloc((size_t)argc, sizeof *a->images);
    if (!a->images) return usage_error("out of memory");
    int positional = 0, only_files = 0;
    for (int i = 1; i < argc; i++) {
        if (!only_files && !strcmp(argv[i], "--")) { only_files = 1; continue; }
        if (!only_files && argv[i][0] == '-' && argv[i][1] != '\0') {
            int r = parse_option(a, argc, argv, &i);
            if (r != 0) return r;
        } else if (positional++ == 0) {
            a->weights = argv[i];
        } else {
            a->images[a->n_images++] = argv[i];
        }
    }
    if (!a->weights) return usage_error("missing WEIGHTS and IMAGE arguments");
    if (a->save && a->n_images == 0 && !a->output) return 0;   /* only saving */
    if (a->n_images == 0) return usage_error("no IMAGE given");
    if (!a->output) return usage_error("missing -o/--output PATH");
    return 0;
}

/* ---- atomic output files ----------------------------------------------------------------- */

typedef struct atomic_file {
    FILE *f;
    char *tmp;        /* the temporary file next to path, NULL once renamed or removed */
    const char *path;
} atomic_file;

/* Creates a temporary file in path's directory, with the permissions a new file would get. */
static int atomic_open(atomic_file *af, const char *path) {
    af->path = path;
    af->f = NULL;
    af->tmp = malloc(strlen(path) + sizeof ".tmp.XXXXXX");
    if (!af->tmp) { message("%s: out of memory", path); return -1; }
    sprintf(af->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        message("%s: cannot create a temporary file: %s", path, strerror(errno));
        free(af->tmp); af->tmp = NULL;
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(af->f = fdopen(fd, "wb"))) {
        message("%s: %s", af->tmp, strerror(errno));
        close(fd); unlink(af->tmp); free(af->tmp); af->tmp = NULL;
        return -1;
    }
    return 0;
}

/* Removes the temporary file (after a failure). Safe to call twice or after atomic_commit. */
static void atomic_abort(atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    af->f = NULL; af->tmp = NULL;
}

/* fsyncs the directory holding path, so that the rename itself is durable. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) { (void)fsync(fd); close(fd); }
    free(dir);
}

/* Flushes, fsyncs and renames the temporary file over path; 0 or -1 (reported, removed). */
static int atomic_commit(atomic_file *af) {
    if (fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0) {
        message("%s: write failed: %s", af->path, strerror(errno));
        atomic_abort(af);
        return -1;
    }
    FILE *f = af->f;
    af->f = NULL;
    if (fclose(f) != 0 || rename(af->tmp, af->path) != 0) {
        message("%s: %s", af->path, strerror(errno));
        atomic_abort(af);
        return -1;
    }
    free(af->tmp); af->tmp = NULL;
    sync_parent_dir(af->path);
    return 0;
}

/* ---- .npy output ------------------------------------------------------------------------- */

/* Writes the NPY 1.0 header for a (rows, cols) '<f4' C-order array, padded to
 * NPY_HEADER_BYTES so that it can be rewritten in place with the final row count. */
static int npy_write_header(FILE *f, int64_t rows, int64_t cols) {
    char buf[NPY_HEADER_BYTES];
    const int dict_len = NPY_HEADER_BYTES - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(dict_len & 0xff);
    buf[9] = (char)(dict_len >> 8);
    int n = snprintf(buf + 10, (size_t)dict_len, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)rows, (long long)cols);
    if (n < 0 || n >= dict_len) return -1;
    memset(buf + 10 + n, ' ', (size_t)(dict_len - n - 1));
    buf[NPY_HEADER_BYTES - 1] = '\n';
    return fseek(f, 0, SEEK_SET) == 0 && fwrite(buf, 1, sizeof buf, f) == sizeof buf ? 0 : -1;
}

/* Appends n floats as little-endian float32 (whatever the host's byte order). */
static int npy_write_floats(FILE *f, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                              (unsigned char)(u >> 24)};
        if (fwrite(b, 1, 4, f) != 4) return -1;
    }
    return 0;
}

/* ---- decoding and encoding --------------------------------------------------------------- */

typedef struct job {
    const args *a;
    ijepa_encoder *enc;
    ijepa_preprocess pre;
    int32_t crop, cols, embed_dim;
    size_t image_floats;          /* 3 * crop * crop */
    float *pixels;                /* [batch][3][crop][crop] */
    float *features;              /* [batch][cols] */
    int *index;                   /* input index of each image in the batch */
    atomic_file out, list;
    int64_t rows, failed;
    int progress_shown;
    struct timespec start;
} job;

/* Erases the progress line before another message goes to stderr. */
static void clear_progress(job *j) {
    if (j->progress_shown) fputs("\r\033[K", stderr);
    j->progress_shown = 0;
}

/* Reports a failed image: "ijepa-encode: PATH: reason". */
static void image_failed(job *j, const char *path, const char *reason) {
    clear_progress(j);
    message("%s: %s", path, reason);
    j->failed++;
}

/* Decodes one image file to RGB and preprocesses it into out; 0, or -1 (reported). */
static int load_image(job *j, const char *path, float *out) {
    FILE *f = fopen(path, "rb");
    if (!f) { image_failed(j, path, strerror(errno)); return -1; }
    int w = 0, h = 0, channels = 0;
    unsigned char *rgb = stbi_load_from_file(f, &w, &h, &channels, 3);
    fclose(f);
    if (!rgb) {
        const char *why = stbi_failure_reason();
        char reason[256];
        snprintf(reason, sizeof reason, "cannot decode image: %s", why ? why : "unknown error");
        image_failed(j, path, reason);
        return -1;
    }
    int status = ijepa_preprocess_rgb8(rgb, h, w, &j->pre, out);
    stbi_image_free(rgb);
    if (status != IJEPA_OK) {
        char reason[512];
        snprintf(reason, sizeof reason, "preprocessing failed: %s", ijepa_last_error());
        image_failed(j, path, reason);
        return -1;
    }
    return 0;
}

/* Runs the encoder on n preprocessed images at j->pixels, rows into j->features. */
static int encode_pixels(job *j, const float *pixels, int32_t n, float *features) {
    if (j->a->last_k > 0)
        return ijepa_encoder_encode_layers(j->enc, pixels, n, j->crop, j->crop, j->a->last_k, features);
    return ijepa_encoder_encode(j->enc, pixels, n, j->crop, j->crop, NULL, features);
}

/* Appends row i of the batch (input image j->index[i]) to the output and the list. */
static int write_row(job *j, int i) {
    if (npy_write_floats(j->out.f, j->features + (size_t)i * (size_t)j->cols, (size_t)j->cols) != 0) {
        message("%s: write failed: %s", j->out.path, strerror(errno));
        return -1;
    }
    if (j->list.f && fprintf(j->list.f, "%s\n", j->a->images[j->index[i]]) < 0) {
        message("%s: write failed: %s", j->list.path, strerror(errno));
        return -1;
    }
    j->rows++;
    return 0;
}

/* Encodes the n images of the batch and writes their rows. If the batch is refused, each
 * image is retried alone so that one bad image does not cost the others. -1 on write errors. */
static int encode_batch(job *j, int32_t n) {
    if (n == 0) return 0;
    if (encode_pixels(j, j->pixels, n, j->features) == IJEPA_OK) {
        for (int i = 0; i < n; i++)
            if (write_row(j, i) != 0) return -1;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (encode_pixels(j, j->pixels + (size_t)i * j->image_floats, 1,
                          j->features + (size_t)i * (size_t)j->cols) != IJEPA_OK) {
            char reason[512];
            snprintf(reason, sizeof reason, "encoding failed: %s", ijepa_last_error());
            image_failed(j, j->a->images[j->index[i]], reason);
        } else if (write_row(j, i) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Seconds since the encoding started (0 if the clock cannot be read). */
static double elapsed(const job *j) {
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) return 0;
    return (double)(now.tv_sec - j->start.tv_sec) + 1e-9 * (double)(now.tv_nsec - j->start.tv_nsec);
}

/* The carriage-return progress line (TTY only, not with -q). */
static void show_progress(job *j, int done) {
    if (j->a->quiet || !isatty(STDERR_FILENO)) return;
    double t = elapsed(j);
    fprintf(stderr, "\rencoded %lld/%d images, %.1f img/s", (long long)j->rows, j->a->n_images,
            t > 0 ? (double)done / t : 0.0);
    if (j->failed) fprintf(stderr, ", %lld failed", (long long)j->failed);
    fputs("\033[K", stderr); /* erase what a longer previous line left */
    fflush(stderr);
    j->progress_shown = 1;
}

/* Decodes, preprocesses and encodes every image, one batch at a time; -1 on write errors. */
static int encode_all(job *j) {
    if (clock_gettime(CLOCK_MONOTONIC, &j->start) != 0) memset(&j->start, 0, sizeof j->start);
    for (int first = 0; first < j->a->n_images; first += j->a->batch) {
        int last = first + j->a->batch < j->a->n_images ? first + j->a->batch : j->a->n_images;
        int32_t n = 0;
        for (int k = first; k < last; k++)
            if (load_image(j, j->a->images[k], j->pixels + (size_t)n * j->image_floats) == 0)
                j->index[n++] = k;
        if (encode_batch(j, n) != 0) return -1;
        show_progress(j, last);
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------------------- */

/* Loads the encoder as the options say and checks it can take RGB crops; 0 or -1 (reported). */
static int load_encoder(job *j) {
    const args *a = j->a;
    ijepa_encoder_options o = {.struct_size = sizeof o};
    if (ijepa_encoder_options_init(&o) != IJEPA_OK) {
        message("ijepa_encoder_options_init: %s", ijepa_last_error());
        return -1;
    }
    o.which_encoder = a->which;
    o.num_heads = a->heads;
    o.n_threads = a->threads;
    if (ijepa_encoder_load(a->weights, &o, &j->enc) != IJEPA_OK) {
        message("cannot load weights '%s': %s", a->weights, ijepa_last_error());
        return -1;
    }
    ijepa_encoder_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (ijepa_encoder_get_info(j->enc, &info) != IJEPA_OK) {
        message("ijepa_encoder_get_info: %s", ijepa_last_error());
        return -1;
    }
    if (info.in_chans != 3) {
        message("'%s' expects %d-channel images; " PROG " feeds RGB", a->weights, info.in_chans);
        return -1;
    }
    if (a->last_k > info.depth) {
        message("--last-k %d: the encoder has only %d blocks", a->last_k, info.depth);
        return -1;
    }
    j->crop = a->crop > 0 ? a->crop : info.image_size;
    j->embed_dim = info.embed_dim;
    j->cols = info.embed_dim * (a->last_k > 0 ? a->last_k : 1);
    if (ijepa_encoder_num_tokens(j->enc, j->crop, j->crop) <= 0) {
        message("--crop %d: smaller than one %d-pixel patch", j->crop, info.patch_size);
        return -1;
    }
    return 0;
}

/* Fills the preprocessing from the defaults for the crop and the options; 0 or -1 (reported). */
static int setup_preprocess(job *j) {
    const args *a = j->a;
    j->pre.struct_size = sizeof j->pre;
    if (ijepa_preprocess_init(&j->pre, j->crop) != IJEPA_OK) {
        message("--crop %d: %s", j->crop, ijepa_last_error());
        return -1;
    }
    if (a->resize >= 0) j->pre.resize = a->resize;
    if (a->have_mean) memcpy(j->pre.mean, a->mean, sizeof j->pre.mean);
    if (a->have_std) memcpy(j->pre.std, a->std, sizeof j->pre.std);
    return 0;
}

/* Allocates the batch buffers, with the sizes checked against overflow; 0 or -1 (reported). */
static int alloc_buffers(job *j) {
    size_t batch = (size_t)j->a->batch;
    j->image_floats = (size_t)3 * (size_t)j->crop * (size_t)j->crop;
    if (j->image_floats > SIZE_MAX / sizeof(float) / batch ||
        (size_t)j->cols > SIZE_MAX / sizeof(float) / batch) {
        message("--batch %d with --crop %d is too large", j->a->batch, j->crop);
        return -1;
    }
    j->pixels = malloc(batch * j->image_floats * sizeof(float));
    j->features = malloc(batch * (size_t)j->cols * sizeof(float));
    j->index = malloc(batch * sizeof(int));
    if (!j->pixels || !j->features || !j->index) {
        message("out of memory for a batch of %d images of %dx%d (try a smaller --batch)", j->a->batch,
                j->crop, j->crop);
        return -1;
    }
    return 0;
}

/* Opens the temporary output (with a placeholder header) and list files; 0 or -1 (reported). */
static int open_outputs(job *j) {
    if (atomic_open(&j->out, j->a->output) != 0) return -1;
    if (npy_write_header(j->out.f, 0, j->cols) != 0) {
        message("%s: write failed: %s", j->out.path, strerror(errno));
        return -1;
    }
    if (j->a->list && atomic_open(&j->list, j->a->list) != 0) return -1;
    return 0;
}

/* Writes the final header and renames both files into place; 0 or -1 (reported). */
static int commit_outputs(job *j) {
    if (npy_write_header(j->out.f, j->rows, j->cols) != 0 || fseek(j->out.f, 0, SEEK_END) != 0) {
        message("%s: write failed: %s", j->out.path, strerror(errno));
        return -1;
    }
    if (atomic_commit(&j->out) != 0) return -1;
    return j->list.f ? atomic_commit(&j->list) : 0;
}

/* Prints the final summary line (always, even with -q). */
static void summary(job *j) {
    clear_progress(j);
    double t = elapsed(j);
    fprintf(stderr, PROG ": encoded %lld/%d images (%lld failed) in %.1f s, %.1f img/s -> %s [%lld x %d]\n",
            (long long)j->rows, j->a->n_images, (long long)j->failed, t,
            t > 0 ? (double)(j->rows + j->failed) / t : 0.0, j->a->output, (long long)j->rows, j->cols);
}

/* Everything after the command line; the exit status. */
static int run(job *j) {
    if (load_encoder(j) != 0) return 1;
    if (j->a->save) {
        if (ijepa_encoder_save(j->enc, j->a->save) != IJEPA_OK) {
            message("cannot save the encoder: %s", ijepa_last_error());
            return 1;
        }
        if (!j->a->quiet) fprintf(stderr, PROG ": saved the encoder to %s\n", j->a->save);
        if (j->a->n_images == 0) return 0;
    }
    if (alloc_buffers(j) != 0 || setup_preprocess(j) != 0) return 1;
    if (open_outputs(j) != 0 || encode_all(j) != 0) return 1;
    if (j->rows == 0) {
        clear_progress(j);
        message("no image could be encoded; %s not written", j->a->output);
        return 1;
    }
    if (commit_outputs(j) != 0) return 1;
    summary(j);
    return j->failed ? 2 : 0;
}

int main(int argc, char **argv) {
    args a;
    int r = parse_args(argc, argv, &a);
    if (r != 0) {
        if (r > 0) fputs(USAGE, stdout);
        free(a.images);
        return r > 0 ? 0 : 1;
    }
    job j;
    memset(&j, 0, sizeof j);
    j.a = &a;
    int status = run(&j);
    atomic_abort(&j.out);  /* no-ops after a commit */
    atomic_abort(&j.list);
    ijepa_encoder_free(j.enc);
    free(j.pixels); free(j.features); free(j.index); free(a.images);
    return status;
}
