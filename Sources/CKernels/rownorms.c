// Euclidean norms of the rows of a row-major matrix — narrow rows several per vector (one row per
// lane), wide rows one at a time with the four partial sums as the lanes of one vector — with exactly the operations of ScoreSDE's `Tensor.rowNorm`: four partial sums of squares over
// the columns j ≡ 0, 1, 2, 3 (mod 4) in column order, combined as (s0 + s1) + (s2 + s3), then a
// correctly rounded square root, so every level gives the same bits as the Swift code.
#include "CKernels.h"
#include <math.h>

#pragma clang fp contract(off)

#define ROWNORMS(SUFFIX, W, ATTR) \
ATTR static void rownorms_##SUFFIX(const double *x, size_t rows, size_t d, double *out) { \
    typedef double V __attribute__((vector_size(8 * W), aligned(8))); \
    for (size_t lo = 0; lo < rows; lo += W) { \
        size_t lanes = rows - lo < W ? rows - lo : W; \
        const double *p[W]; \
        for (size_t l = 0; l < W; l++) p[l] = x + (lo + (l < lanes ? l : lanes - 1)) * d; \
        V s0 = {}, s1 = {}, s2 = {}, s3 = {}; \
        size_t j = 0; \
        for (; j + 4 <= d; j += 4) { \
            V a, b, c, e; \
            for (size_t l = 0; l < W; l++) { a[l] = p[l][j]; b[l] = p[l][j + 1]; c[l] = p[l][j + 2]; e[l] = p[l][j + 3]; } \
            s0 = s0 + a * a; s1 = s1 + b * b; s2 = s2 + c * c; s3 = s3 + e * e; \
        } \
        for (; j < d; j++) { \
            V a; \
            for (size_t l = 0; l < W; l++) a[l] = p[l][j]; \
            s0 = s0 + a * a; \
        } \
        V n = __builtin_elementwise_sqrt((s0 + s1) + (s2 + s3)); \
        for (size_t l = 0; l < lanes; l++) out[lo + l] = n[l]; \
    } \
}

#pragma clang diagnostic ignored "-Wpsabi"
ROWNORMS(generic, 4, )
#if defined(__x86_64__)
ROWNORMS(avx2, 4, __attribute__((target("avx2"))))
ROWNORMS(avx512, 8, __attribute__((target("avx512f,avx512dq,avx512vl"))))
#endif

/// Wide rows: the partial sums s0…s3 are the four lanes of one vector.
static void rownorms_wide(const double *x, size_t rows, size_t d, double *out) {
    typedef double V4 __attribute__((vector_size(32), aligned(8)));
    for (size_t r = 0; r < rows; r++) {
        const double *p = x + r * d;
        V4 s = {};
        size_t j = 0;
        for (; j + 4 <= d; j += 4) { V4 a = *(const V4 *)(p + j); s = s + a * a; }
        for (; j < d; j++) s[0] = s[0] + p[j] * p[j];
        out[r] = sqrt((s[0] + s[1]) + (s[2] + s[3]));
    }
}

void sde_row_norms(const double *x, size_t rows, size_t d, double *out, int level) {
    if (rows == 0) return;
    if (d >= 16) { rownorms_wide(x, rows, d, out); return; }
    if (level < 0) level = sde_cpu_level();
#if defined(__x86_64__)
    if (level >= SDE_LEVEL_AVX512) { rownorms_avx512(x, rows, d, out); return; }
    if (level >= SDE_LEVEL_AVX2) { rownorms_avx2(x, rows, d, out); return; }
#endif
    rownorms_generic(x, rows, d, out);
}
