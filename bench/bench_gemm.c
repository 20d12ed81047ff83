/* The encoder's block products alone: the library's packed-weight kernels (ijk_sgemm_packed,
 * weights packed once) against OpenBLAS's cblas_sgemm (which packs the weights on every call),
 * one thread, on the four products of one image's layer (qkv, proj, fc1, fc2), each of the
 * model's layers with its own weights so that they come from memory as in a forward pass.
 *
 *   make bench-gemm            # ViT-B/16 (197 rows) and ViT-H/14 (256 rows) at 224 px
 *   bench/build/bench_gemm 1   # the same with the kernels capped at family 1 (AVX2 + FMA)
 *
 * Prints GFLOP/s per product (best of 5 passes over all layers) and the time ratio, and the
 * largest difference of the results relative to the largest |output|. */
#define _POSIX_C_SOURCE 199309L
#include "ijepa_kernels.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void openblas_set_num_threads(int n);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *random_floats(long n) {
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (long i = 0; i < n; i++) p[i] = (float)((double)rand() / RAND_MAX - 0.5);
    return p;
}

/* one model: rows, width W, MLP width, layers */
static void run(const char *name, long M, long W, long Hd, int layers) {
    const char *what[4] = {"qkv", "proj", "fc1", "fc2"};
    long N[4] = {3 * W, W, Hd, W}, K[4] = {W, W, W, Hd};
    float *a[4], *c_blas[4], *c_ours[4], *w[64][4], *packed[64][4];
    float *scratch = malloc(ijk_scratch_floats() * sizeof(float));
    for (int i = 0; i < 4; i++) {
        a[i] = random_floats(M * K[i]);
        c_blas[i] = random_floats(M * N[i]);
        c_ours[i] = random_floats(M * N[i]);
        for (int l = 0; l < layers; l++) {
            w[l][i] = random_floats(N[i] * K[i]);
            packed[l][i] = random_floats(N[i] * K[i]);
            ijk_pack_weights(w[l][i], N[i], K[i], packed[l][i]);
        }
    }
    double best_blas[4] = {1e30, 1e30, 1e30, 1e30}, best_ours[4] = {1e30, 1e30, 1e30, 1e30};
    for (int pass = 0; pass < 5; pass++) {
        double t_blas[4] = {0}, t_ours[4] = {0};
        for (int l = 0; l < layers; l++)
            for (int i = 0; i < 4; i++) {
                double t = now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N[i], K[i], 1, a[i], K[i], w[l][i], K[i], 0,
                            c_blas[i], N[i]);
                t_blas[i] += now() - t;
            }
        for (int l = 0; l < layers; l++)
            for (int i = 0; i < 4; i++) {
                double t = now();
                ijk_sgemm_packed(M, K[i], a[i], K[i], packed[l][i], 0, N[i], c_ours[i], N[i], 0, scratch);
                t_ours[i] += now() - t;
            }
        for (int i = 0; i < 4; i++) {
            if (t_blas[i] < best_blas[i]) best_blas[i] = t_blas[i];
            if (t_ours[i] < best_ours[i]) best_ours[i] = t_ours[i];
        }
    }
    double sum_blas = 0, sum_ours = 0;
    for (int i = 0; i < 4; i++) {
        double flop = 2.0 * M * N[i] * K[i] * layers;
        float diff = 0, scale = 0;
        for (long j = 0; j < M * N[i]; j++) {
            diff = fmaxf(diff, fabsf(c_blas[i][j] - c_ours[i][j]));
            scale = fmaxf(scale, fabsf(c_blas[i][j]));
        }
        printf("%-9s %-4s [%4ld x %4ld] x [%4ld x %4ld]: OpenBLAS %6.1f GFLOP/s, packed %6.1f GFLOP/s, %.2fx, max diff %.1e\n",
               name, what[i], M, K[i], K[i], N[i], flop / best_blas[i] / 1e9, flop / best_ours[i] / 1e9,
               best_blas[i] / best_ours[i], diff / scale);
        sum_blas += best_blas[i];
        sum_ours += best_ours[i];
    }
    printf("%-9s all four: packed %.2fx OpenBLAS's speed\n", name, sum_blas / sum_ours);
    for (int i = 0; i < 4; i++) {
        free(a[i]); free(c_blas[i]); free(c_ours[i]);
        for (int l = 0; l < layers; l++) { free(w[l][i]); free(packed[l][i]); }
    }
    free(scratch);
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1);
    if (argc > 1) ijk_limit_isa(atoi(argv[1]));
    static const char *family[] = {"portable C", "AVX2 + FMA", "AVX-512F"};
    printf("packed kernels: %s; 1 thread\n", family[ijk_isa()]);
    run("ViT-B/16", 197, 768, 3072, 12);
    run("ViT-H/14", 256, 1280, 5120, 4);
    return 0;
}
