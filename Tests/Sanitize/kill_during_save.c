/*
 * kill_during_save.c — ijepa_model_save is atomic under SIGKILL.
 *
 * A child process saves two different training states (models A and B, different seeds and
 * step counts) to the same path in a loop, A, B, A, B, ...; the parent kills it with SIGKILL at
 * a random moment (uniform over about four saves, so every phase is hit: creating the temporary
 * file, writing, fsync, rename, the directory fsync). After every kill:
 *
 *   - ijepa_model_load(path) succeeds and the model equals A or B bit for bit (step counter,
 *     parameters, target encoder, AdamW m and v, config);
 *   - at most one temporary file (path.tmp-*) is left in the directory: the one the killed save
 *     was writing. Earlier leftovers must not accumulate.
 *
 * The path holds A before the first round, so it always exists. The models are created in the
 * child (the library is deterministic for a given seed with n_threads = 1), so the child shares
 * no library state with the parent across fork().
 *
 *   kill_during_save [ROUNDS [SEED]]      default 50 rounds, seed from the clock (printed)
 *   TMPDIR                                 where the test directory is made (default /tmp)
 *
 * Exit status: 0 all held; 1 a load failed or gave neither A nor B (atomicity broken), or
 * setup failed; 2 only the temporary-file rule failed (leftovers accumulated).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ijepa.h>

static int failures, stray_failures;
#define FAIL(...)                                               \
    do {                                                        \
        failures++;                                             \
        fprintf(stderr, "kill_during_save: FAIL: " __VA_ARGS__); \
        fputc('\n', stderr);                                    \
    } while (0)

static ijepa_config config_for(uint64_t seed) {
    ijepa_config c = {.struct_size = sizeof c};
    ijepa_config_default(&c);
    c.image_size = 32; c.patch_size = 4; c.in_chans = 3;
    c.embed_dim = 64; c.depth = 2; c.num_heads = 4;
    c.pred_embed_dim = 32; c.pred_depth = 2;
    c.min_keep = 4;
    c.warmup_steps = 2; c.total_steps = 20;
    c.seed = seed; c.n_threads = 1;
    return c;
}

/* Model `which` (0 = A, 1 = B): seed 11 + which, trained 1 + which steps. */
static ijepa_model *make_model(int which) {
    ijepa_config c = config_for(11 + (uint64_t)which);
    ijepa_model *m = NULL;
    if (ijepa_model_create(&c, &m) != IJEPA_OK) return NULL;
    size_t n = (size_t)2 * c.in_chans * c.image_size * c.image_size;
    float *img = malloc(n * sizeof *img);
    for (size_t i = 0; i < n; i++) img[i] = (float)sin(0.01 * (double)i * (which + 1));
    for (int s = 0; s < 1 + which; s++)
        if (ijepa_train_step(m, img, 2, NULL, NULL) != IJEPA_OK) { ijepa_model_free(m); m = NULL; break; }
    free(img);
    return m;
}

static int same_model(ijepa_model *x, ijepa_model *y) {
    if (ijepa_model_step(x) != ijepa_model_step(y)) return 0;
    ijepa_config cx = {.struct_size = sizeof cx}, cy = {.struct_size = sizeof cy};
    ijepa_model_get_config(x, &cx);
    ijepa_model_get_config(y, &cy);
    if (memcmp(&cx, &cy, sizeof cx) != 0) return 0;
    const int bufs[4] = {IJEPA_BUF_PARAMS, IJEPA_BUF_TARGET, IJEPA_BUF_ADAM_M, IJEPA_BUF_ADAM_V};
    for (int i = 0; i < 4; i++) {
        size_t nx = 0, ny = 0;
        const float *px = ijepa_model_buffer(x, bufs[i], &nx), *py = ijepa_model_buffer(y, bufs[i], &ny);
        if (!px || !py || nx != ny || memcmp(px, py, nx * sizeof(float)) != 0) return 0;
    }
    return 1;
}

/* Temporary files of saves to `base` in `dir` (names base.tmp-*), and their total size. */
static int count_temps(const char *dir, const char *base, long *bytes) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.tmp", base);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    *bytes = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        n++;
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0) *bytes += (long)st.st_size;
    }
    closedir(d);
    return n;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The child: make A and B, tell the parent, then save A, B, A, B, ... until killed. */
static void child_main(const char *path, int ready_fd) {
    ijepa_model *m[2] = {make_model(0), make_model(1)};
    if (!m[0] || !m[1]) _exit(3);
    char one = 1;
    if (write(ready_fd, &one, 1) != 1) _exit(4);
    for (unsigned long i = 0;; i++)
        if (ijepa_model_save(m[i & 1], path, IJEPA_SAVE_TRAINING_STATE) != IJEPA_OK) _exit(5);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    unsigned seed = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : (unsigned)(time(NULL) ^ getpid());
    srand(seed);

    const char *tmp = getenv("TMPDIR");
    char dir[512], path[640];
    snprintf(dir, sizeof dir, "%s/ijepa-kill-save-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    const char *base = "ckpt.safetensors";
    snprintf(path, sizeof path, "%s/%s", dir, base);

    ijepa_model *ref[2] = {make_model(0), make_model(1)};
    if (!ref[0] || !ref[1]) { fprintf(stderr, "kill_during_save: setup: %s\n", ijepa_last_error()); return 1; }
    if (same_model(ref[0], ref[1])) { fprintf(stderr, "kill_during_save: A and B are equal\n"); return 1; }
    /* how long one save takes here, to spread the kills over whole saves */
    double t0 = now();
    for (int i = 0; i < 4; i++)
        if (ijepa_model_save(ref[i & 1], path, IJEPA_SAVE_TRAINING_STATE) != IJEPA_OK) {
            fprintf(stderr, "kill_during_save: save: %s\n", ijepa_last_error());
            return 1;
        }
    double save_s = (now() - t0) / 4;
    ijepa_model_save(ref[0], path, IJEPA_SAVE_TRAINING_STATE);
    struct stat st;
    stat(path, &st);
    printf("kill_during_save: %d rounds, seed %u, checkpoint %lld bytes, one save %.2f ms, in %s\n", rounds, seed,
           (long long)st.st_size, save_s * 1e3, dir);

    int seen[2] = {0, 0}, max_temps = 0, rounds_with_extra = 0;
    long temp_bytes = 0;
    for (int r = 0; r < rounds; r++) {
        int pfd[2];
        if (pipe(pfd) != 0) { perror("pipe"); return 1; }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            close(pfd[0]);
            child_main(path, pfd[1]);
        }
        close(pfd[1]);
        char b;
        ssize_t got = read(pfd[0], &b, 1);
        close(pfd[0]);
        if (got != 1) FAIL("round %d: the child did not start", r);
        /* a random moment within about four saves (A, B, A, B: both transitions) */
        double delay = 4.0 * save_s * ((double)rand() / RAND_MAX);
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            FAIL("round %d: the child ended by itself (status %#x) before the kill", r, status);

        ijepa_model *m = NULL;
        int lst = ijepa_model_load(path, &m);
        if (lst != IJEPA_OK) {
            FAIL("round %d (killed after %.2f ms): ijepa_model_load: %d %s", r, delay * 1e3, lst, ijepa_last_error());
        } else {
            int a = same_model(m, ref[0]), bb = same_model(m, ref[1]);
            if (!a && !bb) FAIL("round %d: the checkpoint loads but is neither A nor B", r);
            seen[a ? 0 : 1]++;
            ijepa_model_free(m);
        }
        long bytes = 0;
        int temps = count_temps(dir, base, &bytes);
        if (temps > max_temps) max_temps = temps;
        temp_bytes = bytes;
        if (temps > 1) {
            if (rounds_with_extra++ == 0)
                fprintf(stderr, "kill_during_save: FAIL: round %d: %d temporary files (%ld bytes) in %s: leftovers of "
                        "killed saves accumulate\n", r, temps, bytes, dir);
            stray_failures = 1;
        }
    }
    long bytes = 0;
    int left = count_temps(dir, base, &bytes);
    printf("kill_during_save: after %d kills the path held A %d times, B %d times; temporary files: at most %d at "
           "once, %d at the end (%ld bytes); rounds with more than one: %d\n",
           rounds, seen[0], seen[1], max_temps, left, bytes, rounds_with_extra);
    (void)temp_bytes;

    /* a save that is not interrupted leaves no temporary file of its own */
    int before = left;
    if (ijepa_model_save(ref[1], path, IJEPA_SAVE_TRAINING_STATE) != IJEPA_OK) FAIL("final save: %s", ijepa_last_error());
    int after = count_temps(dir, base, &bytes);
    if (after > before) FAIL("a completed save left a temporary file (%d before, %d after)", before, after);

    remove_dir(dir);
    ijepa_model_free(ref[0]);
    ijepa_model_free(ref[1]);
    printf("kill_during_save: atomicity %s, temporary files %s\n", failures ? "FAIL" : "PASS",
           stray_failures ? "FAIL (accumulate)" : "PASS");
    return failures ? 1 : stray_failures ? 2 : 0;
}
