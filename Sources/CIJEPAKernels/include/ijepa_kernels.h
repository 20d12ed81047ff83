#ifndef IJEPA_KERNELS_H
#define IJEPA_KERNELS_H
/* Matrix products of inference with the weights packed once (at encoder load) instead of on
 * every call, as BLAS does. Internal to the library: not part of include/ijepa.h.
 *
 * Packed weights: W [n, k] row-major (out features × in features, PyTorch's layout), n a
 * multiple of IJK_PANEL, stored as n / IJK_PANEL panels of IJK_PANEL columns; panel p holds,
 * for kk = 0 ..< k, the IJK_PANEL floats W[p·IJK_PANEL + j][kk] (j = 0 ..< IJK_PANEL) at
 * p·IJK_PANEL·k + kk·IJK_PANEL + j. The same n·k floats as W, so W can be packed in place.
 *
 * The products run on AVX-512F or AVX2 + FMA kernels, chosen at run time from the CPU (the
 * library may be built for a lower CPU than it runs on), or on portable C. Each output is
 * C + Σ_kk A[r][kk]·W[o][kk] summed in order of kk with fused multiply-adds, in blocks of at
 * most IJK_KC terms added to C in turn: the same floats on every kernel for a given k. */
#include <stddef.h>

#define IJK_PANEL 16

/* Kernel families: IJK_ISA_C (portable), IJK_ISA_AVX2 (AVX2 + FMA), IJK_ISA_AVX512 (AVX-512F). */
#define IJK_ISA_C 0
#define IJK_ISA_AVX2 1
#define IJK_ISA_AVX512 2

/* The best family this CPU (and OS) runs, or a lower one set by ijk_limit_isa. Thread-safe. */
int ijk_isa(void);

/* Caps the family ijk_isa returns (tests run every family on one machine); returns the family
 * now in effect. Not to be called while products run. */
int ijk_limit_isa(int isa);

/* Floats of the scratch one ijk_sgemm_packed call needs (its packed rows of A). */
size_t ijk_scratch_floats(void);

/* Packs W [n, k] (n % IJK_PANEL == 0) into dst (n·k floats, not overlapping w). */
void ijk_pack_weights(const float *w, long n, long k, float *dst);

/* Packs panels p0 ..< p1 of W [n, k] in place: panel p takes the place of W's rows
 * p·IJK_PANEL ..< (p+1)·IJK_PANEL, so disjoint panel ranges can be packed side by side.
 * scratch: IJK_PANEL·k floats. */
void ijk_pack_weights_in_place(float *w, long k, long p0, long p1, float *scratch);

/* C[r][o] (+)= Σ_kk A[r][kk] · W[o][kk] for rows r < m and columns col0 <= o < col1, with W
 * packed (n columns in all: the panels' stride is k). col0 is a multiple of IJK_PANEL, col1 too
 * or n. accumulate = 0: C is overwritten; otherwise added to. A is m × k with row stride lda, C
 * has row stride ldc (c points at column 0). scratch: ijk_scratch_floats() floats, one caller at
 * a time. */
void ijk_sgemm_packed(long m, long k, const float *a, long lda, const float *wp, long col0, long col1,
                      float *c, long ldc, int accumulate, float *scratch);

#endif
