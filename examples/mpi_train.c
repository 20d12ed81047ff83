/*
 * mpi_train.c — data-parallel I-JEPA training with MPI (one model replica per rank).
 *
 *   build: mpicc -std=c11 -O2 mpi_train.c $(pkg-config --cflags --libs ijepa) -lz -lm -o mpi_train
 *          (or: make -C examples/mpi STAGE=/abs/path/build/stage)
 *   run:   mpirun -np 2 ./mpi_train --steps 20 --batch 16
 *          mpirun -np 8 --hostfile hosts ./mpi_train --preset vit_small --image 96 --batch 256
 *          ./mpi_train --help                       (a single rank works without mpirun)
 *
 * Every step, every rank
 *   1. samples the GLOBAL batch's masks from its own generator (all generators share the seed,
 *      so they advance identically; a 64-bit checksum all-reduce asserts it), and with
 *      --masks bcast (the default) takes rank 0's masks via MPI_Bcast; with a ragged_context
 *      config (e.g. --preset fmnist_tiny_ragged) they are ragged masks
 *      (ijepa_masks_sample_ragged: every image keeps its own context length);
 *   2. builds its shard of the global batch (synthetic gratings/blobs, or Fashion-MNIST with
 *      --fmnist) — a pure function of (data seed, global step, global image index), so no rank
 *      needs I/O or communication for its data — and the matching rows of every mask (ragged:
 *      with their own lengths);
 *   3. ijepa_forward_backward[_ragged] on its shard (fills the gradient buffer); with
 *      --micro-batch N the shard runs as micro-batches of at most N images, each adding
 *      (b_k / b_r) x its gradient (ijepa_forward_backward_accumulate[_ragged]), so the rank holds
 *      its shard's mean gradient with the activation memory of N images;
 *   4. MPI_Allreduce(SUM) of the gradient buffer in place, then divides by the rank count
 *      (--deterministic: rank 0 sums in rank order, then MPI_Bcast);
 *   5. ijepa_optimizer_step (schedules, AdamW, EMA): every replica applies the same update.
 *
 * Why it is exact: the loss is a mean over the shard's predicted elements and every image of a
 * batch holds the same number of them (the same target rows; with ragged contexts too, since
 * only the contexts are ragged), so the mean of the ranks' gradients over equal shards IS the
 * full-batch gradient (unequal shards and micro-batches are weighted by their share of the
 * images, which is their share of the loss elements). Only float rounding differs.
 *
 * Identical initial weights, two ways (--init):
 *   seed   every rank creates its model from the same config seed (the default);
 *   bcast  ranks other than 0 poison their weights with NaN, then PARAMS and TARGET are
 *          broadcast from rank 0 (which may have loaded --weights FILE that only it has).
 * Either way a checksum all-reduce verifies that every rank holds the same config, library
 * version, weights and target encoder before step 1, and the replicas are verified again at
 * the end (and every --check-every steps).
 *
 * Rank 0 saves checkpoints with the training state (--save PATH, --save-every K); --resume PATH
 * makes every rank load it (the file must exist on every host) and training continues exactly.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>
#include <zlib.h>

#include <ijepa.h>

static int g_rank = 0, g_size = 1;

/* ---- errors -------------------------------------------------------------------------------- */

/* A failure on one rank only: the others may be blocked in a collective, so abort the job. */
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[rank %d] error: ", g_rank);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static void check(int status, const char *what) {
    if (status != IJEPA_OK) die("%s failed: %s (%d): %s", what, ijepa_status_string(status), status, ijepa_last_error());
}

static void mpi_check(int rc, const char *what) {
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        die("%s failed: %s", what, msg);
    }
}

/* CPU seconds used by this process (all its threads): unlike wall time, hardly affected by other
 * programs competing for the cores, so timings on a busy machine stay comparable. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *buffer(ijepa_model *m, int which, size_t *n) {
    float *p = ijepa_model_buffer(m, which, n);
    if (!p) die("ijepa_model_buffer(%d) failed: %s", which, ijepa_last_error());
    return p;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

/* ---- hashing (checksums compared across ranks) -------------------------------------------- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* FNV-1a-style over 64-bit words, then a final mix: fast and order-sensitive. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return mix64(h ^ n);
}

static uint64_t hash_u64(uint64_t h, uint64_t v) { return hash_bytes(h, &v, sizeof v); }
static uint64_t hash_f32(uint64_t h, float v) { return hash_bytes(h, &v, sizeof v); }

/* Field by field (the struct has padding). n_threads is per rank and may differ. The seed is
 * left out on purpose: it is verified through what it determines, the initial weights (checksum
 * after setup; with --init bcast they come from rank 0) and the mask generator (every step). */
static uint64_t hash_config(const ijepa_config *c) {
    uint64_t h = 0xCBF29CE484222325ull;
    const int64_t ints[] = {c->image_size, c->patch_size, c->in_chans, c->embed_dim, c->depth, c->num_heads,
                            c->pred_embed_dim, c->pred_depth, c->pred_num_heads, c->num_enc_masks,
                            c->num_pred_masks, c->min_keep, c->allow_overlap, c->full_grid,
                            c->warmup_steps, c->total_steps};
    const float floats[] = {c->mlp_ratio, c->enc_mask_scale[0], c->enc_mask_scale[1], c->pred_mask_scale[0],
                            c->pred_mask_scale[1], c->aspect_ratio[0], c->aspect_ratio[1], c->start_lr, c->lr,
                            c->final_lr, c->weight_decay, c->final_weight_decay, c->ema_start, c->ema_end};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) h = hash_u64(h, (uint64_t)ints[i]);
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) h = hash_f32(h, floats[i]);
    return h;
}

static uint64_t hash_masks(const ijepa_masks *m) {
    uint64_t h = 0xCBF29CE484222325ull;
    const int32_t head[5] = {m->batch, m->num_enc, m->k_enc, m->num_pred, m->k_pred};
    h = hash_bytes(h, head, sizeof head);
    h = hash_bytes(h, m->enc, sizeof(int32_t) * (size_t)m->num_enc * m->batch * m->k_enc);
    return hash_bytes(h, m->pred, sizeof(int32_t) * (size_t)m->num_pred * m->batch * m->k_pred);
}

static uint64_t hash_model(ijepa_model *m, int with_optimizer) {
    uint64_t h = 0xCBF29CE484222325ull;
    int which[4] = {IJEPA_BUF_PARAMS, IJEPA_BUF_TARGET, IJEPA_BUF_ADAM_M, IJEPA_BUF_ADAM_V};
    for (int i = 0; i < (with_optimizer ? 4 : 2); i++) {
        size_t n = 0;
        const float *p = buffer(m, which[i], &n);
        h = hash_bytes(h, p, n * sizeof(float));
    }
    return hash_u64(h, (uint64_t)ijepa_model_step(m));
}

/* One all-reduce: do all ranks hold the same value? (max of v and max of ~v = ~min of v) */
static int same_on_all_ranks(uint64_t v) {
    uint64_t in[2] = {v, ~v}, out[2];
    mpi_check(MPI_Allreduce(in, out, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce(checksum)");
    return out[0] == ~out[1];
}

static uint64_t hash_ragged_masks(const ijepa_ragged_masks *m) {
    uint64_t h = 0xCBF29CE484222325ull;
    const int32_t head[5] = {m->batch, m->num_enc, m->k_enc_max, m->num_pred, m->k_pred};
    h = hash_bytes(h, head, sizeof head);
    h = hash_bytes(h, m->enc, sizeof(int32_t) * (size_t)m->num_enc * m->batch * m->k_enc_max);
    h = hash_bytes(h, m->enc_len, sizeof(int32_t) * (size_t)m->num_enc * m->batch);
    return hash_bytes(h, m->pred, sizeof(int32_t) * (size_t)m->num_pred * m->batch * m->k_pred);
}

/* ---- options ------------------------------------------------------------------------------- */

typedef struct options {
    const char *preset;
    int image, patch, chans, embed, depth, heads, pred_embed, pred_depth, pred_heads, min_keep;
    double lr, start_lr, final_lr;
    long long warmup, total_steps, seed, data_seed;
    int steps, batch, micro_batch, threads, log_every, check_every, save_every, deterministic, init_bcast, masks_bcast;
    const char *save, *resume, *weights, *fmnist;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: mpirun -np N mpi_train [options]\n"
            "  model     --preset NAME (tiny32)  --image PX --patch PX --chans C --embed D --depth L\n"
            "            --heads H --pred-embed D --pred-depth L --pred-heads H --min-keep K --seed S\n"
            "  recipe    --lr X --start-lr X --final-lr X --warmup STEPS --total-steps STEPS\n"
            "            (default: total = the steps of this run, warmup = a tenth of them)\n"
            "  run       --steps N (20) --batch GLOBAL_BATCH (16) --threads T per rank (0 = auto)\n"
            "            --log-every K (1) --check-every K (0: only at the end)\n"
            "            --micro-batch N: each rank runs its shard as micro-batches of at most N images\n"
            "            (gradient accumulation: the memory of N images; 0 = the whole shard at once)\n"
            "  data      synthetic gratings/blobs by default; --fmnist [DIR] reads Fashion-MNIST\n"
            "            (DIR/train-images-idx3-ubyte.gz, default /usr/share/datasets/fashion-mnist)\n"
            "            --data-seed S (default: the model seed)\n"
            "  replicas  --init seed|bcast (seed)  --masks bcast|local (bcast)  --deterministic\n"
            "            --weights FILE (safetensors weights; with --init bcast only rank 0 reads it)\n"
            "  files     --save PATH (rank 0, with training state) --save-every K --resume PATH\n");
}

static long long parse_int(const char *name, const char *v) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || !end || *end || end == v) die("%s: not an integer: '%s'", name, v);
    return x;
}

static double parse_double(const char *name, const char *v) {
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || !end || *end || end == v) die("%s: not a number: '%s'", name, v);
    return x;
}

static void parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->preset = "tiny32";
    o->image = o->patch = o->chans = o->embed = o->depth = o->heads = -1;
    o->pred_embed = o->pred_depth = o->pred_heads = o->min_keep = -1;
    o->lr = o->start_lr = o->final_lr = -1;
    o->warmup = o->total_steps = o->seed = o->data_seed = -1;
    o->steps = 20;
    o->batch = 16;
    o->log_every = 1;
    o->masks_bcast = 1;
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *a = argv[i], *val = NULL;
        if (strncmp(a, "--", 2) != 0) die("unexpected argument '%s' (see --help)", a);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) die("unknown option '%s'", a);
        memcpy(name, a, len);
        name[len] = 0;
        if (eq) val = eq + 1;
#define FLAG(s) (strcmp(name, s) == 0)
#define VALUE() (val ? val : (i + 1 < argc ? argv[++i] : (die("%s needs a value", name), "")))
        if (FLAG("--help") || FLAG("-h")) {
            if (g_rank == 0) usage(stdout);
            MPI_Finalize();
            exit(0);
        } else if (FLAG("--deterministic")) o->deterministic = 1;
        else if (FLAG("--fmnist")) {
            /* optional value: --fmnist DIR or --fmnist=DIR */
            if (val) o->fmnist = val;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) o->fmnist = argv[++i];
            else o->fmnist = "/usr/share/datasets/fashion-mnist";
        }
        else if (FLAG("--preset")) o->preset = VALUE();
        else if (FLAG("--image")) o->image = (int)parse_int(name, VALUE());
        else if (FLAG("--patch")) o->patch = (int)parse_int(name, VALUE());
        else if (FLAG("--chans")) o->chans = (int)parse_int(name, VALUE());
        else if (FLAG("--embed")) o->embed = (int)parse_int(name, VALUE());
        else if (FLAG("--depth")) o->depth = (int)parse_int(name, VALUE());
        else if (FLAG("--heads")) o->heads = (int)parse_int(name, VALUE());
        else if (FLAG("--pred-embed")) o->pred_embed = (int)parse_int(name, VALUE());
        else if (FLAG("--pred-depth")) o->pred_depth = (int)parse_int(name, VALUE());
        else if (FLAG("--pred-heads")) o->pred_heads = (int)parse_int(name, VALUE());
        else if (FLAG("--min-keep")) o->min_keep = (int)parse_int(name, VALUE());
        else if (FLAG("--seed")) o->seed = parse_int(name, VALUE());
        else if (FLAG("--data-seed")) o->data_seed = parse_int(name, VALUE());
        else if (FLAG("--lr")) o->lr = parse_double(name, VALUE());
        else if (FLAG("--start-lr")) o->start_lr = parse_double(name, VALUE());
        else if (FLAG("--final-lr")) o->final_lr = parse_double(name, VALUE());
        else if (FLAG("--warmup")) o->warmup = parse_int(name, VALUE());
        else if (FLAG("--total-steps")) o->total_steps = parse_int(name, VALUE());
        else if (FLAG("--steps")) o->steps = (int)parse_int(name, VALUE());
        else if (FLAG("--batch")) o->batch = (int)parse_int(name, VALUE());
        else if (FLAG("--micro-batch")) o->micro_batch = (int)parse_int(name, VALUE());
        else if (FLAG("--threads")) o->threads = (int)parse_int(name, VALUE());
        else if (FLAG("--log-every")) o->log_every = (int)parse_int(name, VALUE());
        else if (FLAG("--check-every")) o->check_every = (int)parse_int(name, VALUE());
        else if (FLAG("--save-every")) o->save_every = (int)parse_int(name, VALUE());
        else if (FLAG("--save")) o->save = VALUE();
        else if (FLAG("--resume")) o->resume = VALUE();
        else if (FLAG("--weights")) o->weights = VALUE();
        else if (FLAG("--init")) {
            const char *v = VALUE();
            if (strcmp(v, "seed") == 0) o->init_bcast = 0;
            else if (strcmp(v, "bcast") == 0) o->init_bcast = 1;
            else die("--init must be 'seed' or 'bcast', got '%s'", v);
        } else if (FLAG("--masks")) {
            const char *v = VALUE();
            if (strcmp(v, "bcast") == 0) o->masks_bcast = 1;
            else if (strcmp(v, "local") == 0) o->masks_bcast = 0;
            else die("--masks must be 'bcast' or 'local', got '%s'", v);
        } else die("unknown option '%s' (see --help)", a);
#undef FLAG
#undef VALUE
    }
    if (o->steps < 0) die("--steps must be >= 0");
    if (o->batch < g_size) die("--batch (%d, the GLOBAL batch) must be at least the number of ranks (%d)", o->batch, g_size);
    if (o->micro_batch < 0) die("--micro-batch must be >= 0 (0: the whole shard at once)");
    if (o->log_every < 1) o->log_every = 1;
    if (o->save_every < 0 || o->check_every < 0) die("--save-every and --check-every must be >= 0");
    if (o->save_every && !o->save) die("--save-every needs --save PATH");
}

static ijepa_config make_config(const options *o) {
    ijepa_config c = {.struct_size = sizeof c};
    check(ijepa_config_preset(o->preset, &c), "ijepa_config_preset");
    if (o->image > 0) c.image_size = o->image;
    if (o->patch > 0) c.patch_size = o->patch;
    if (o->chans > 0) c.in_chans = o->chans;
    if (o->embed > 0) c.embed_dim = o->embed;
    if (o->depth > 0) c.depth = o->depth;
    if (o->heads > 0) c.num_heads = o->heads;
    if (o->pred_embed > 0) c.pred_embed_dim = o->pred_embed;
    if (o->pred_depth > 0) c.pred_depth = o->pred_depth;
    if (o->pred_heads >= 0) c.pred_num_heads = o->pred_heads;
    if (o->min_keep >= 0) c.min_keep = o->min_keep;
    if (o->fmnist && o->chans <= 0) c.in_chans = 1;
    if (o->lr >= 0) c.lr = (float)o->lr;
    if (o->start_lr >= 0) c.start_lr = (float)o->start_lr;
    if (o->final_lr >= 0) c.final_lr = (float)o->final_lr;
    c.total_steps = o->total_steps >= 0 ? o->total_steps : (o->steps > 0 ? o->steps : 1);
    c.warmup_steps = o->warmup >= 0 ? o->warmup : c.total_steps / 10;
    if (o->seed >= 0) c.seed = (uint64_t)o->seed;
    return c;
}

/* Threads per rank: what the rank is bound to, or the machine's cores shared by its local ranks. */
static int auto_threads(void) {
    MPI_Comm local;
    int local_size = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &local_size);
        MPI_Comm_free(&local);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int bound = online;
    if (sched_getaffinity(0, sizeof set, &set) == 0) bound = CPU_COUNT(&set);
    int t = bound < online ? bound : (int)(online / (local_size > 0 ? local_size : 1));
    return t < 1 ? 1 : t;
}

/* ---- data ---------------------------------------------------------------------------------- */
/* Every image is a pure function of (data seed, global step, global index): each rank makes just
 * its shard. examples/mpi_train.py generates the same images (same draws, same formulas). */

static uint64_t image_state(uint64_t data_seed, int64_t step, int64_t index) {
    return mix64(mix64(mix64(data_seed + 0x9E3779B97F4A7C15ull) + (uint64_t)step) + (uint64_t)index);
}

static uint64_t next_u64(uint64_t *s) { return mix64(*s += 0x9E3779B97F4A7C15ull); }
static double next_unit(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; } /* [0, 1) */

/* A grating (orientation, frequency, phase, per-channel contrast) or 1-3 Gaussian blobs with
 * per-channel signed amplitudes; values in about [-1, 1]. */
static void synthetic_image(float *out, int chans, int size, uint64_t data_seed, int64_t step, int64_t index) {
    const double two_pi = 6.283185307179586;
    uint64_t s = image_state(data_seed, step, index);
    const size_t plane = (size_t)size * size;
    if (next_unit(&s) < 0.5) {
        double theta = two_pi * next_unit(&s), freq = 1.5 + 4.5 * next_unit(&s), phase = two_pi * next_unit(&s);
        double ct = cos(theta), st = sin(theta);
        for (int c = 0; c < chans; c++) {
            double amp = 0.5 + 0.5 * next_unit(&s);
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    double u = (double)x / size, v = (double)y / size;
                    out[c * plane + (size_t)y * size + x] = (float)(amp * sin(two_pi * freq * (ct * u + st * v) + phase));
                }
        }
    } else {
        int blobs = 1 + (int)(3 * next_unit(&s));
        memset(out, 0, sizeof(float) * chans * plane);
        for (int b = 0; b < blobs; b++) {
            double cx = next_unit(&s), cy = next_unit(&s), sigma = 0.05 + 0.15 * next_unit(&s);
            double inv = 1.0 / (2 * sigma * sigma);
            for (int c = 0; c < chans; c++) {
                double amp = 2 * next_unit(&s) - 1;
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++) {
                        double u = (double)x / size - cx, v = (double)y / size - cy;
                        out[c * plane + (size_t)y * size + x] += (float)(amp * exp(-(u * u + v * v) * inv));
                    }
            }
        }
    }
}

typedef struct fmnist {
    int32_t count, rows, cols;
    unsigned char *pixels; /* count * rows * cols */
} fmnist;

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static fmnist fmnist_load(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    gzFile f = gzopen(path, "rb");
    if (!f) die("cannot open %s (apt-get install dataset-fashion-mnist, or pass --fmnist DIR)", path);
    unsigned char head[16];
    if (gzread(f, head, 16) != 16 || be32(head) != 2051) die("%s is not an IDX image file", path);
    fmnist d = {(int32_t)be32(head + 4), (int32_t)be32(head + 8), (int32_t)be32(head + 12), NULL};
    if (d.count <= 0 || d.rows <= 0 || d.cols <= 0 || d.rows > 4096 || d.cols > 4096) die("%s: bad IDX header", path);
    size_t n = (size_t)d.count * d.rows * d.cols;
    d.pixels = xmalloc(n);
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, d.pixels + got, chunk);
        if (r <= 0) die("%s: truncated (%zu of %zu pixels)", path, got, n);
        got += (size_t)r;
    }
    gzclose(f);
    return d;
}

/* Image `index` of step `step`: a training image drawn (with replacement) by the same hash as
 * the synthetic data, normalized with the Fashion-MNIST mean/std, resized to the model's size,
 * repeated over the channels. */
static void fmnist_image(const fmnist *d, float *out, int chans, int size, uint64_t data_seed, int64_t step,
                         int64_t index, float *scratch) {
    uint64_t s = image_state(data_seed, step, index);
    size_t j = (size_t)(next_u64(&s) % (uint64_t)d->count);
    const unsigned char *p = d->pixels + j * d->rows * d->cols;
    const size_t n = (size_t)d->rows * d->cols, plane = (size_t)size * size;
    for (size_t i = 0; i < n; i++) scratch[i] = ((float)p[i] / 255.0f - 0.2860f) / 0.3530f;
    if (d->rows == size && d->cols == size) memcpy(out, scratch, sizeof(float) * plane);
    else check(ijepa_resize_bilinear(scratch, 1, 1, d->rows, d->cols, size, size, out), "ijepa_resize_bilinear");
    for (int c = 1; c < chans; c++) memcpy(out + c * plane, out, sizeof(float) * plane);
}

/* ---- masks --------------------------------------------------------------------------------- */

/* Rank 0's global masks to every rank: the header (5 ints), then enc and pred in one message. */
static void bcast_masks(const ijepa_masks *mine, ijepa_masks *global) {
    int32_t head[5] = {mine->batch, mine->num_enc, mine->k_enc, mine->num_pred, mine->k_pred};
    mpi_check(MPI_Bcast(head, 5, MPI_INT32_T, 0, MPI_COMM_WORLD), "MPI_Bcast(mask header)");
    memset(global, 0, sizeof *global);
    global->batch = head[0]; global->num_enc = head[1]; global->k_enc = head[2];
    global->num_pred = head[3]; global->k_pred = head[4];
    size_t ne = (size_t)head[1] * head[0] * head[2], np = (size_t)head[3] * head[0] * head[4];
    int32_t *buf = xmalloc(sizeof(int32_t) * (ne + np));
    if (g_rank == 0) {
        memcpy(buf, mine->enc, sizeof(int32_t) * ne);
        memcpy(buf + ne, mine->pred, sizeof(int32_t) * np);
    }
    mpi_check(MPI_Bcast(buf, (int)(ne + np), MPI_INT32_T, 0, MPI_COMM_WORLD), "MPI_Bcast(masks)");
    global->enc = buf;
    global->pred = buf + ne;
}

/* The masks of images [first, first + count) of `full`, re-indexed for a batch of `count`:
 * every mask row keeps its length (k_enc / k_pred), only this rank's images are kept. */
static ijepa_masks slice_masks(const ijepa_masks *full, int first, int count) {
    ijepa_masks s = *full;
    s.batch = count;
    s.enc = xmalloc(sizeof(int32_t) * (size_t)full->num_enc * count * full->k_enc);
    s.pred = xmalloc(sizeof(int32_t) * (size_t)full->num_pred * count * full->k_pred);
    for (int j = 0; j < full->num_enc; j++)
        memcpy(s.enc + (size_t)j * count * full->k_enc, full->enc + ((size_t)j * full->batch + first) * full->k_enc,
               sizeof(int32_t) * count * full->k_enc);
    for (int k = 0; k < full->num_pred; k++)
        memcpy(s.pred + (size_t)k * count * full->k_pred,
               full->pred + ((size_t)k * full->batch + first) * full->k_pred, sizeof(int32_t) * count * full->k_pred);
    return s;
}

/* The same for ragged masks: the header, then enc, enc_len and pred in one message. */
static void bcast_ragged_masks(const ijepa_ragged_masks *mine, ijepa_ragged_masks *global) {
    int32_t head[5] = {mine->batch, mine->num_enc, mine->k_enc_max, mine->num_pred, mine->k_pred};
    mpi_check(MPI_Bcast(head, 5, MPI_INT32_T, 0, MPI_COMM_WORLD), "MPI_Bcast(mask header)");
    memset(global, 0, sizeof *global);
    global->batch = head[0]; global->num_enc = head[1]; global->k_enc_max = head[2];
    global->num_pred = head[3]; global->k_pred = head[4];
    size_t ne = (size_t)head[1] * head[0] * head[2], nl = (size_t)head[1] * head[0];
    size_t np = (size_t)head[3] * head[0] * head[4];
    int32_t *buf = xmalloc(sizeof(int32_t) * (ne + nl + np));
    if (g_rank == 0) {
        memcpy(buf, mine->enc, sizeof(int32_t) * ne);
        memcpy(buf + ne, mine->enc_len, sizeof(int32_t) * nl);
        memcpy(buf + ne + nl, mine->pred, sizeof(int32_t) * np);
    }
    mpi_check(MPI_Bcast(buf, (int)(ne + nl + np), MPI_INT32_T, 0, MPI_COMM_WORLD), "MPI_Bcast(masks)");
    global->enc = buf;
    global->enc_len = buf + ne;
    global->pred = buf + ne + nl;
}

/* Images [first, first + count) of ragged masks: every image keeps its own context lengths
 * (k_enc_max stays the global batch's, the padding is ignored). */
static ijepa_ragged_masks slice_ragged_masks(const ijepa_ragged_masks *full, int first, int count) {
    ijepa_ragged_masks s = *full;
    s.batch = count;
    s.enc = xmalloc(sizeof(int32_t) * (size_t)full->num_enc * count * full->k_enc_max);
    s.enc_len = xmalloc(sizeof(int32_t) * (size_t)full->num_enc * count);
    s.pred = xmalloc(sizeof(int32_t) * (size_t)full->num_pred * count * full->k_pred);
    for (int j = 0; j < full->num_enc; j++) {
        memcpy(s.enc + (size_t)j * count * full->k_enc_max,
               full->enc + ((size_t)j * full->batch + first) * full->k_enc_max, sizeof(int32_t) * count * full->k_enc_max);
        memcpy(s.enc_len + (size_t)j * count, full->enc_len + (size_t)j * full->batch + first, sizeof(int32_t) * count);
    }
    for (int k = 0; k < full->num_pred; k++)
        memcpy(s.pred + (size_t)k * count * full->k_pred,
               full->pred + ((size_t)k * full->batch + first) * full->k_pred, sizeof(int32_t) * count * full->k_pred);
    return s;
}

/* One step's masks, uniform or ragged (the config's ragged_context). */
typedef struct step_masks {
    int ragged;
    ijepa_masks u;
    ijepa_ragged_masks r;
} step_masks;

static void free_sliced(step_masks *m) {
    free(m->u.enc); free(m->u.pred);
    free(m->r.enc); free(m->r.enc_len); free(m->r.pred);
}

/* Rows [first, first + count) of the step's masks. */
static step_masks slice_step_masks(const step_masks *full, int first, int count) {
    step_masks s = {full->ragged, {0}, {0}};
    if (full->ragged) s.r = slice_ragged_masks(&full->r, first, count);
    else s.u = slice_masks(&full->u, first, count);
    return s;
}

/* forward_backward on `count` images with their rows `mk`: the plain call for a whole shard
 * (weight 1, no accumulation: bitwise what ijepa_forward_backward does), else the accumulating
 * one. *loss: this batch's own loss. */
static void forward_backward(ijepa_model *m, const float *images, int count, const step_masks *mk, float weight,
                             int accumulate, float *loss) {
    if (weight == 1.0f && !accumulate) {
        if (mk->ragged) check(ijepa_forward_backward_ragged(m, images, count, &mk->r, loss), "ijepa_forward_backward_ragged");
        else check(ijepa_forward_backward(m, images, count, &mk->u, loss), "ijepa_forward_backward");
    } else if (mk->ragged) {
        check(ijepa_forward_backward_accumulate_ragged(m, images, count, &mk->r, weight, accumulate, loss),
              "ijepa_forward_backward_accumulate_ragged");
    } else {
        check(ijepa_forward_backward_accumulate(m, images, count, &mk->u, weight, accumulate, loss),
              "ijepa_forward_backward_accumulate");
    }
}

/* ---- the gradient all-reduce --------------------------------------------------------------- */

enum { CHUNK = 1 << 22 }; /* floats per message: 16 MiB, well below MPI's int count limit */

/* Sum over ranks in place, in a fixed order: rank 0 adds rank 1's, then rank 2's, ... chunk by
 * chunk, and broadcasts the sums. Bitwise reproducible for any MPI library, algorithm, network
 * or rank placement; costs p-1 messages into rank 0 instead of a bandwidth-optimal ring. */
static void allreduce_sum_ordered(float *g, size_t n, float *tmp) {
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (g_rank == 0) {
            for (int r = 1; r < g_size; r++) {
                mpi_check(MPI_Recv(tmp, cnt, MPI_FLOAT, r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv(grads)");
                for (int i = 0; i < cnt; i++) g[off + i] += tmp[i];
            }
        } else {
            mpi_check(MPI_Send(g + off, cnt, MPI_FLOAT, 0, 7, MPI_COMM_WORLD), "MPI_Send(grads)");
        }
        mpi_check(MPI_Bcast(g + off, cnt, MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Bcast(grads)");
    }
}

static void allreduce_sum(float *g, size_t n) {
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        mpi_check(MPI_Allreduce(MPI_IN_PLACE, g + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce(grads)");
    }
}

/* ---- main ---------------------------------------------------------------------------------- */

static void verify_replicas(ijepa_model *m, const char *when) {
    uint64_t h = hash_model(m, 1);
    if (!same_on_all_ranks(h)) {
        if (g_rank == 0) fprintf(stderr, "error: replicas DIFFER %s (weights/target/AdamW checksums)\n", when);
        MPI_Finalize();
        exit(1);
    }
    if (g_rank == 0) printf("replicas identical on all %d ranks %s (checksum %016llx)\n", g_size, when, (unsigned long long)h);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (ijepa_abi_version() != IJEPA_ABI_VERSION) die("libijepa ABI %u, header %d", ijepa_abi_version(), IJEPA_ABI_VERSION);

    options o;
    parse_options(argc, argv, &o);
    int threads = o.threads > 0 ? o.threads : auto_threads();

    /* ---- the replicas ---- */
    ijepa_model *m = NULL;
    if (o.resume) {
        check(ijepa_model_load(o.resume, &m), "ijepa_model_load(--resume)");
    } else {
        ijepa_config cfg = make_config(&o);
        cfg.n_threads = threads;
        check(ijepa_model_create(&cfg, &m), "ijepa_model_create");
    }
    check(ijepa_model_set_n_threads(m, threads), "ijepa_model_set_n_threads");
    ijepa_config cfg = {.struct_size = sizeof cfg};
    check(ijepa_model_get_config(m, &cfg), "ijepa_model_get_config");
    /* ragged contexts (e.g. --preset fmnist_tiny_ragged, or a checkpoint of such a run): the
     * global batch's masks are ragged, each rank takes its images' rows with their lengths */
    const int ragged = cfg.ragged_context != 0;

    const uint64_t data_seed = o.data_seed >= 0 ? (uint64_t)o.data_seed : cfg.seed;

    /* Same config, library and run options on every rank (the command line must be the same
     * everywhere): a rank with another --deterministic, --masks or --init would deadlock in a
     * different collective, one with another --batch would train on other shards. */
    uint64_t run_hash = hash_bytes(hash_config(&cfg), ijepa_version(), strlen(ijepa_version()));
    const int64_t run_opts[] = {o.batch, o.steps, o.deterministic, o.masks_bcast, o.init_bcast, o.check_every,
                                o.fmnist != NULL, (int64_t)data_seed, o.micro_batch};
    run_hash = hash_bytes(run_hash, run_opts, sizeof run_opts);
    if (!same_on_all_ranks(run_hash)) {
        if (g_rank == 0) fprintf(stderr, "error: the ranks have different configs, options or libijepa versions\n");
        MPI_Finalize();
        return 1;
    }

    size_t n_params = 0, n_target = 0;
    float *params = buffer(m, IJEPA_BUF_PARAMS, &n_params);
    float *target = buffer(m, IJEPA_BUF_TARGET, &n_target);
    float *grads = buffer(m, IJEPA_BUF_GRADS, NULL);

    if (o.weights && (g_rank == 0 || !o.init_bcast))
        check(ijepa_model_load_weights(m, o.weights, 1), "ijepa_model_load_weights(--weights)");
    if (o.init_bcast) {
        /* Rank 0's weights to everyone. To show that the broadcast (not the seed) makes the
         * replicas equal, the other ranks first poison their own weights with NaN: a float the
         * broadcast missed would fail the checksum and the first step. */
        if (g_rank != 0) {
            for (size_t i = 0; i < n_params; i++) params[i] = NAN;
            for (size_t i = 0; i < n_target; i++) target[i] = NAN;
        }
        int differed = !same_on_all_ranks(hash_model(m, 0));
        for (size_t off = 0; off < n_params; off += CHUNK)
            mpi_check(MPI_Bcast(params + off, (int)(n_params - off < CHUNK ? n_params - off : CHUNK), MPI_FLOAT, 0,
                                MPI_COMM_WORLD), "MPI_Bcast(PARAMS)");
        for (size_t off = 0; off < n_target; off += CHUNK)
            mpi_check(MPI_Bcast(target + off, (int)(n_target - off < CHUNK ? n_target - off : CHUNK), MPI_FLOAT, 0,
                                MPI_COMM_WORLD), "MPI_Bcast(TARGET)");
        if (g_rank == 0)
            printf("init: PARAMS (%zu floats) and TARGET (%zu floats) broadcast from rank 0; before it the ranks %s\n",
                   n_params, n_target, differed ? "differed" : "were already equal");
    } else if (g_rank == 0) {
        if (o.weights) printf("init: every rank loaded --weights %s\n", o.weights);
        else if (o.resume) printf("init: every rank loaded --resume %s\n", o.resume);
        else printf("init: every rank created its model from seed %llu\n", (unsigned long long)cfg.seed);
    }
    verify_replicas(m, "after setup");

    const int B = o.batch;
    const int base = B / g_size, rem = B % g_size;
    const int my_count = base + (g_rank < rem), my_first = g_rank * base + (g_rank < rem ? g_rank : rem);
    /* Weight of this rank's mean loss/gradient in the global mean (1 for equal shards). */
    const double weight = (double)my_count * g_size / B;
    /* Images per forward/backward: the whole shard, or micro-batches of --micro-batch. */
    const int micro = o.micro_batch > 0 && o.micro_batch < my_count ? o.micro_batch : my_count;
    const int C = cfg.in_chans, S = cfg.image_size;
    const size_t per_image = (size_t)C * S * S;
    float *images = xmalloc(sizeof(float) * my_count * per_image);
    float *tmp = o.deterministic && g_rank == 0 && g_size > 1 ? xmalloc(sizeof(float) * CHUNK) : NULL;
    fmnist data = {0};
    float *scratch = NULL;
    if (o.fmnist) {
        data = fmnist_load(o.fmnist);
        scratch = xmalloc(sizeof(float) * data.rows * data.cols);
    }

    if (g_rank == 0) {
        printf("config: image %d patch %d chans %d | encoder %d x %d (%d heads) | predictor %d x %d | seed %llu\n",
               cfg.image_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim, cfg.depth, cfg.num_heads,
               cfg.pred_embed_dim, cfg.pred_depth, (unsigned long long)cfg.seed);
        printf("ranks %d x %d thread(s) | global batch %d (rank 0: %d images", g_size, threads, B, my_count);
        if (micro < my_count) printf(" in micro-batches of %d", micro);
        printf(") | data %s | masks %s%s | reduce %s\n", o.fmnist ? "Fashion-MNIST" : "synthetic",
               ragged ? "ragged, " : "", o.masks_bcast ? "broadcast from rank 0" : "sampled by every rank",
               o.deterministic ? "ordered (deterministic)" : "MPI_Allreduce");
        printf("gradient buffer %zu floats = %.2f MB per all-reduce; step %lld of %lld\n", n_params,
               n_params * 4.0 / 1e6, (long long)ijepa_model_step(m), (long long)cfg.total_steps);
        printf("%6s %10s %10s %8s %8s %10s %10s\n", "step", "loss", "lr", "wd", "ema", "grad_norm", "images/s");
        fflush(stdout);
    }

    double t_data = 0, t_masks = 0, t_fb = 0, t_reduce = 0, t_opt = 0, t_total = 0, c_fb = 0, c_total = 0;
    double mask_bytes = 0;
    const int timed_from = o.steps > 2 ? 1 : 0, timed = o.steps - timed_from;
    int status = 0;
    for (int s = 0; s < o.steps; s++) {
        const int64_t step = ijepa_model_step(m); /* global step: images and resume depend on it */
        double t0 = MPI_Wtime(), c0 = cpu_seconds();

        /* 1. this rank's images */
        for (int b = 0; b < my_count; b++) {
            if (o.fmnist) fmnist_image(&data, images + b * per_image, C, S, data_seed, step, my_first + b, scratch);
            else synthetic_image(images + b * per_image, C, S, data_seed, step, my_first + b);
        }
        double t1 = MPI_Wtime();

        /* 2. the global batch's masks: every rank samples (its generator advances as all do),
         *    the checksums must agree; then rank 0's are broadcast (or each rank's own used). */
        step_masks own = {ragged, {0}, {0}}, global = {ragged, {0}, {0}};
        if (ragged) check(ijepa_masks_sample_ragged(m, B, &own.r), "ijepa_masks_sample_ragged");
        else check(ijepa_masks_sample(m, B, &own.u), "ijepa_masks_sample");
        if (!same_on_all_ranks(ragged ? hash_ragged_masks(&own.r) : hash_masks(&own.u))) {
            if (g_rank == 0) fprintf(stderr, "error: step %lld: the ranks' mask generators disagree (same seed, "
                                             "config and checkpoint on every rank?)\n", (long long)step + 1);
            status = 1;
            ijepa_masks_free(&own.u);
            ijepa_ragged_masks_free(&own.r);
            break;
        }
        if (o.masks_bcast) {
            if (ragged) {
                bcast_ragged_masks(&own.r, &global.r);
                mask_bytes = 4.0 * (5 + (double)global.r.batch * (global.r.num_enc * (global.r.k_enc_max + 1) +
                                                                  global.r.num_pred * global.r.k_pred));
            } else {
                bcast_masks(&own.u, &global.u);
                mask_bytes = 4.0 * (5 + (double)global.u.batch * (global.u.num_enc * global.u.k_enc +
                                                                  global.u.num_pred * global.u.k_pred));
            }
        } else {
            global = own;
        }
        double t2 = MPI_Wtime(), c2 = cpu_seconds();

        /* 3. forward + backward on the shard: at once, or as micro-batches of `micro` images, each
         *    weighted by its share of the shard (b_k / b_r), so the buffer holds the shard's mean */
        double shard_loss = 0;
        for (int b0 = 0; b0 < my_count; b0 += micro) {
            const int n = my_count - b0 < micro ? my_count - b0 : micro;
            const float w = (float)((double)n / (double)my_count);
            step_masks mine = slice_step_masks(&global, my_first + b0, n);
            float l = 0;
            forward_backward(m, images + (size_t)b0 * per_image, n, &mine, w, b0 > 0, &l);
            shard_loss += (double)w * l;
            free_sliced(&mine);
        }
        const float loss = (float)shard_loss; /* the shard's mean loss (w = 1 for a whole shard) */
        double t3 = MPI_Wtime(), c3 = cpu_seconds();

        /* 4. mean of the gradients over the ranks, in place */
        if (g_size > 1) {
            if (my_count * g_size != B)
                for (size_t i = 0; i < n_params; i++) grads[i] *= (float)weight;
            if (o.deterministic) allreduce_sum_ordered(grads, n_params, tmp);
            else allreduce_sum(grads, n_params);
            const float p = (float)g_size;
            for (size_t i = 0; i < n_params; i++) grads[i] /= p;
        }
        double t4 = MPI_Wtime();

        /* 5. the same AdamW + EMA update on every replica */
        ijepa_step_stats st;
        check(ijepa_optimizer_step(m, &st), "ijepa_optimizer_step");
        double t5 = MPI_Wtime(), c5 = cpu_seconds();

        /* the reported loss: the mean over ranks (weighted by shard size) */
        double wl = loss * weight, sum_loss = 0;
        mpi_check(MPI_Allreduce(&wl, &sum_loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce(loss)");
        double mean_loss = sum_loss / g_size;

        if (s >= timed_from) { /* the first step (allocations, page faults) is not timed */
            t_data += t1 - t0; t_masks += t2 - t1; t_fb += t3 - t2; t_reduce += t4 - t3; t_opt += t5 - t4;
            t_total += t5 - t0;
            c_fb += c3 - c2;
            c_total += c5 - c0;
        }
        if (g_rank == 0 && ((s + 1) % o.log_every == 0 || s + 1 == o.steps)) {
            printf("%6lld %10.6f %10.3e %8.4f %8.5f %10.4f %10.1f\n", (long long)st.step, mean_loss, st.lr,
                   st.weight_decay, st.ema_momentum, st.grad_norm, B / (t5 - t0));
            fflush(stdout);
        }
        if (o.masks_bcast) free(ragged ? global.r.enc : global.u.enc); /* one allocation: enc (enc_len) pred */
        ijepa_masks_free(&own.u);
        ijepa_ragged_masks_free(&own.r);

        if (o.check_every && (s + 1) % o.check_every == 0 && s + 1 != o.steps) {
            char when[64];
            snprintf(when, sizeof when, "after step %lld", (long long)st.step);
            verify_replicas(m, when);
        }
        if (o.save_every && (s + 1) % o.save_every == 0 && s + 1 != o.steps && g_rank == 0) {
            check(ijepa_model_save(m, o.save, IJEPA_SAVE_WEIGHTS | IJEPA_SAVE_TRAINING_STATE), "ijepa_model_save");
            printf("saved %s (step %lld)\n", o.save, (long long)st.step);
        }
    }

    if (status == 0) {
        verify_replicas(m, "at the end");
        /* Time per phase: the slowest rank's, since every step waits for it. */
        double local[8] = {t_data, t_masks, t_fb, t_reduce, t_opt, t_total, c_fb, c_total}, slow[8];
        MPI_Reduce(local, slow, 8, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        if (g_rank == 0 && o.steps > 0) {
            double ring = g_size > 1 ? 2.0 * (g_size - 1) / g_size : 0;
            printf("throughput: %.1f images/s over steps %d-%d (%d ranks x %d threads, global batch %d)\n",
                   (double)B * timed / slow[5], timed_from + 1, o.steps, g_size, threads, B);
            printf("time per step (slowest rank, ms): data %.2f | masks %.2f | forward+backward %.2f | "
                   "all-reduce %.2f | optimizer %.2f\n", 1e3 * slow[0] / timed, 1e3 * slow[1] / timed,
                   1e3 * slow[2] / timed, 1e3 * slow[3] / timed, 1e3 * slow[4] / timed);
            printf("CPU time per step (slowest rank, ms): forward+backward %.2f | whole step %.2f "
                   "(MPI waits by polling: the all-reduce counts in full)\n", 1e3 * slow[6] / timed, 1e3 * slow[7] / timed);
            printf("communication per step and rank: gradients %.2f MB (ring all-reduce: %zu floats x 4 B x %.3f)"
                   ", masks %.1f kB\n", n_params * 4.0 * ring / 1e6, n_params, ring, mask_bytes / 1e3);
        }
        if (g_rank == 0 && o.save) {
            check(ijepa_model_save(m, o.save, IJEPA_SAVE_WEIGHTS | IJEPA_SAVE_TRAINING_STATE), "ijepa_model_save");
            printf("saved %s (step %lld, training state)\n", o.save, (long long)ijepa_model_step(m));
        }
    }

    free(images);
    free(tmp);
    free(scratch);
    free(data.pixels);
    ijepa_model_free(m);
    MPI_Finalize();
    return status;
}
