/* Packed-weight matrix products of inference (see include/ijepa_kernels.h).
 *
 * Loop nest, per block of at most MC rows of A and KC terms of the sum:
 *   pack A's rows, MR at a time, term-major        scratch [MC/MR][KC][MR]
 *   for each pair of weight panels (32 columns)    (the panels stay in L2 across row groups)
 *     for each group of MR rows                    C[MR, 32] += A[MR, KC] · W[KC, 32]
 * The micro-kernel keeps C's tile in registers (12 × 32 floats on AVX-512: 24 registers; 6 × 16
 * on AVX2: 12) and reads one term of each of its rows and one row of the panels per step.
 * Written in C because Swift cannot compile one function for a CPU feature and choose it at run
 * time; everything around the kernels stays in Swift. */
#include "ijepa_kernels.h"
#include <math.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>   /* SSE is part of x86-64: the packing of A uses it on every x86 CPU */
#endif

#define MC 264    /* rows per block: a multiple of both row groups (12 and 6) */
#define KC 2048   /* terms per block; k is cut into equal blocks of at most KC */

static int isa_limit = IJK_ISA_AVX512;

static int detected_isa(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return IJK_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return IJK_ISA_AVX2;
#endif
    return IJK_ISA_C;
}

int ijk_isa(void) {
    static int detected = -1;   /* the CPU's family, read once (every thread finds the same) */
    int d = __atomic_load_n(&detected, __ATOMIC_RELAXED);
    if (d < 0) { d = detected_isa(); __atomic_store_n(&detected, d, __ATOMIC_RELAXED); }
    int l = __atomic_load_n(&isa_limit, __ATOMIC_RELAXED);
    return d < l ? d : l;
}

int ijk_limit_isa(int isa) {
    __atomic_store_n(&isa_limit, isa < IJK_ISA_C ? IJK_ISA_C : isa, __ATOMIC_RELAXED);
    return ijk_isa();
}

size_t ijk_scratch_floats(void) { return (size_t)MC * KC; }

/* panel from its 16 rows of W (row stride k): term-major, each term's 16 floats contiguous */
static void pack_panel(const float *rows, long k, float *panel) {
    for (long kk = 0; kk < k; kk++)
        for (long j = 0; j < IJK_PANEL; j++) panel[kk * IJK_PANEL + j] = rows[j * k + kk];
}

void ijk_pack_weights(const float *w, long n, long k, float *dst) {
    for (long p = 0; p < n / IJK_PANEL; p++) pack_panel(w + p * IJK_PANEL * k, k, dst + p * IJK_PANEL * k);
}

void ijk_pack_weights_in_place(float *w, long k, long p0, long p1, float *scratch) {
    for (long p = p0; p < p1; p++) {   /* panel p takes the place of rows 16p ..< 16p + 16 */
        float *at = w + p * IJK_PANEL * k;
        memcpy(scratch, at, (size_t)(IJK_PANEL * k) * sizeof(float));
        pack_panel(scratch, k, at);
    }
}

/* rows [0, mc) × terms [0, kc) of a (row stride lda) into groups of mr rows, term-major:
 * group g at dst + g·mr·kc, element (kk, r) at kk·mr + r; the last group's missing rows are 0. */
static void pack_rows(const float *a, long lda, long mc, long kc, int mr, float *dst) {
    for (long g0 = 0; g0 < mc; g0 += mr) {
        float *grp = dst + g0 * kc;
        long rows = mc - g0 < mr ? mc - g0 : mr;
#if defined(__SSE__)
        if (rows % 4 == 0) {   /* 4 x 4 transposes: 4 terms of 4 rows per step */
            long kv = kc & ~3L;
            for (long r = 0; r < rows; r += 4) {
                const float *s0 = a + (g0 + r) * lda, *s1 = s0 + lda, *s2 = s1 + lda, *s3 = s2 + lda;
                for (long kk = 0; kk < kv; kk += 4) {
                    __m128 x0 = _mm_loadu_ps(s0 + kk), x1 = _mm_loadu_ps(s1 + kk);
                    __m128 x2 = _mm_loadu_ps(s2 + kk), x3 = _mm_loadu_ps(s3 + kk);
                    _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
                    float *o = grp + kk * mr + r;
                    _mm_storeu_ps(o, x0);
                    _mm_storeu_ps(o + mr, x1);
                    _mm_storeu_ps(o + 2 * mr, x2);
                    _mm_storeu_ps(o + 3 * mr, x3);
                }
                for (long kk = kv; kk < kc; kk++)
                    for (long j = 0; j < 4; j++) grp[kk * mr + r + j] = a[(g0 + r + j) * lda + kk];
            }
            for (long r = rows; r < mr; r++)
                for (long kk = 0; kk < kc; kk++) grp[kk * mr + r] = 0;
            continue;
        }
#endif
        for (long r = 0; r < rows; r++) {
            const float *src = a + (g0 + r) * lda;
            for (long kk = 0; kk < kc; kk++) grp[kk * mr + r] = src[kk];
        }
        for (long r = rows; r < mr; r++)
            for (long kk = 0; kk < kc; kk++) grp[kk * mr + r] = 0;
    }
}

/* ---- portable C: the same sums (fmaf in order of kk, block by block) ---- */

static void block_c(long m, long kc, const float *a, long lda, const float *wp, long k, long col0, long col1,
                    float *c, long ldc, int acc) {
    for (long r = 0; r < m; r++)
        for (long o = col0; o < col1; o++) {
            const float *w = wp + (o / IJK_PANEL) * IJK_PANEL * k + o % IJK_PANEL;
            float s = 0;
            for (long kk = 0; kk < kc; kk++) s = fmaf(a[r * lda + kk], w[kk * IJK_PANEL], s);
            c[r * ldc + o] = acc ? c[r * ldc + o] + s : s;
        }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

/* the row loops of the micro-kernels, unrolled so that the tile lives in registers */
#define UNROLL _Pragma("GCC unroll 12")

/* ---- AVX-512F: 12 rows × 32 columns (two panels), or × 16 for a last odd panel ---- */

#define AVX512 __attribute__((target("avx512f")))

static inline __attribute__((always_inline)) AVX512 void
tile512(const int R, const int two, long kc, const float *ap, const float *b0, const float *b1,
        float *c, long ldc, int acc) {
    __m512 x[12], y[12];
    UNROLL for (int r = 0; r < R; r++) { x[r] = _mm512_setzero_ps(); y[r] = _mm512_setzero_ps(); }
    for (long kk = 0; kk < kc; kk++) {
        __m512 p = _mm512_loadu_ps(b0 + kk * IJK_PANEL);
        __m512 q = two ? _mm512_loadu_ps(b1 + kk * IJK_PANEL) : p;
        UNROLL for (int r = 0; r < R; r++) {
            __m512 v = _mm512_set1_ps(ap[kk * 12 + r]);
            x[r] = _mm512_fmadd_ps(v, p, x[r]);
            if (two) y[r] = _mm512_fmadd_ps(v, q, y[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        float *o = c + r * ldc;
        _mm512_storeu_ps(o, acc ? _mm512_add_ps(_mm512_loadu_ps(o), x[r]) : x[r]);
        if (two) _mm512_storeu_ps(o + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(o + 16), y[r]) : y[r]);
    }
}

#define TILE512(R) \
    case R: if (two) tile512(R, 1, kc, ap, b0, b1, c, ldc, acc); else tile512(R, 0, kc, ap, b0, b1, c, ldc, acc); break;

static AVX512 void tile512_any(int R, int two, long kc, const float *ap, const float *b0, const float *b1,
                               float *c, long ldc, int acc) {
    switch (R) {
    TILE512(1) TILE512(2) TILE512(3) TILE512(4) TILE512(5) TILE512(6)
    TILE512(7) TILE512(8) TILE512(9) TILE512(10) TILE512(11) TILE512(12)
    }
}

static AVX512 void block512(long mc, long kc, const float *ap, const float *wp, long k, long p0, long p1,
                            float *c, long ldc, int acc) {
    for (long p = p0; p < p1; p += 2) {
        int two = p + 1 < p1;
        const float *b0 = wp + p * IJK_PANEL * k, *b1 = b0 + IJK_PANEL * k;
        for (long g0 = 0; g0 < mc; g0 += 12)
            tile512_any(mc - g0 < 12 ? (int)(mc - g0) : 12, two, kc, ap + g0 * kc, b0, b1,
                        c + g0 * ldc + p * IJK_PANEL, ldc, acc);
    }
}

/* ---- AVX2 + FMA: 6 rows × 16 columns (one panel) ---- */

#define AVX2 __attribute__((target("avx2,fma")))

static inline __attribute__((always_inline)) AVX2 void
tile256(const int R, long kc, const float *ap, const float *b, float *c, long ldc, int acc) {
    __m256 x[6], y[6];
    UNROLL for (int r = 0; r < R; r++) { x[r] = _mm256_setzero_ps(); y[r] = _mm256_setzero_ps(); }
    for (long kk = 0; kk < kc; kk++) {
        __m256 p = _mm256_loadu_ps(b + kk * IJK_PANEL), q = _mm256_loadu_ps(b + kk * IJK_PANEL + 8);
        UNROLL for (int r = 0; r < R; r++) {
            __m256 v = _mm256_broadcast_ss(ap + kk * 6 + r);
            x[r] = _mm256_fmadd_ps(v, p, x[r]);
            y[r] = _mm256_fmadd_ps(v, q, y[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        float *o = c + r * ldc;
        _mm256_storeu_ps(o, acc ? _mm256_add_ps(_mm256_loadu_ps(o), x[r]) : x[r]);
        _mm256_storeu_ps(o + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(o + 8), y[r]) : y[r]);
    }
}

static AVX2 void block256(long mc, long kc, const float *ap, const float *wp, long k, long p0, long p1,
                          float *c, long ldc, int acc) {
    for (long p = p0; p < p1; p++) {
        const float *b = wp + p * IJK_PANEL * k;
        for (long g0 = 0; g0 < mc; g0 += 6) {
            const float *a = ap + g0 * kc;
            float *o = c + g0 * ldc + p * IJK_PANEL;
            switch (mc - g0 < 6 ? (int)(mc - g0) : 6) {
            case 1: tile256(1, kc, a, b, o, ldc, acc); break;
            case 2: tile256(2, kc, a, b, o, ldc, acc); break;
            case 3: tile256(3, kc, a, b, o, ldc, acc); break;
            case 4: tile256(4, kc, a, b, o, ldc, acc); break;
            case 5: tile256(5, kc, a, b, o, ldc, acc); break;
            case 6: tile256(6, kc, a, b, o, ldc, acc); break;
            }
        }
    }
}
#endif

void ijk_sgemm_packed(long m, long k, const float *a, long lda, const float *wp, long col0, long col1,
                      float *c, long ldc, int accumulate, float *scratch) {
    if (m <= 0 || col1 <= col0) return;
    long blocks = (k + KC - 1) / KC, kcs = blocks > 0 ? (k + blocks - 1) / blocks : 0;
    int isa = ijk_isa();
    if (k == 0) {   /* an empty sum */
        for (long r = 0; r < m; r++)
            if (!accumulate) memset(c + r * ldc + col0, 0, (size_t)(col1 - col0) * sizeof(float));
        return;
    }
    for (long m0 = 0; m0 < m; m0 += MC) {
        long mc = m - m0 < MC ? m - m0 : MC;
        for (long k0 = 0; k0 < k; k0 += kcs) {
            long kc = k - k0 < kcs ? k - k0 : kcs;
            int acc = accumulate || k0 > 0;
            const float *ab = a + m0 * lda + k0, *wb = wp + k0 * IJK_PANEL;
            float *cb = c + m0 * ldc;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
            if (isa == IJK_ISA_AVX512) {
                pack_rows(ab, lda, mc, kc, 12, scratch);
                block512(mc, kc, scratch, wb, k, col0 / IJK_PANEL, col1 / IJK_PANEL, cb, ldc, acc);
                continue;
            }
            if (isa == IJK_ISA_AVX2) {
                pack_rows(ab, lda, mc, kc, 6, scratch);
                block256(mc, kc, scratch, wb, k, col0 / IJK_PANEL, col1 / IJK_PANEL, cb, ldc, acc);
                continue;
            }
#endif
            (void)scratch;
            block_c(mc, kc, ab, lda, wb, k, col0, col1, cb, ldc, acc);
        }
    }
}
