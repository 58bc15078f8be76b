// The exact score of a diagonal Gaussian mixture (see sde_gmm_score in CKernels.h), written once
// (gmm_kernel.h) and compiled for generic x86-64 (2 × SSE2 per 4 rows), AVX2 (4 rows per vector)
// and AVX-512 (8 rows per vector).
#include "CKernels.h"
#include <math.h>
#include <stdlib.h>

#pragma clang fp contract(off)
// The generic kernel passes 32-byte vectors between always-inlined helpers; no ABI boundary is crossed.
#pragma clang diagnostic ignored "-Wpsabi"

#define GMM_W 4
#define GMM_ATTR
#define GMM_SUFFIX generic
#include "gmm_kernel.h"
#undef GMM_W
#undef GMM_ATTR
#undef GMM_SUFFIX

#if defined(__x86_64__)
#define GMM_W 4
#define GMM_ATTR __attribute__((target("avx2")))
#define GMM_SUFFIX avx2
#include "gmm_kernel.h"
#undef GMM_W
#undef GMM_ATTR
#undef GMM_SUFFIX

#define GMM_W 8
#define GMM_ATTR __attribute__((target("avx512f,avx512dq,avx512vl")))
#define GMM_SUFFIX avx512
#include "gmm_kernel.h"
#undef GMM_W
#undef GMM_ATTR
#undef GMM_SUFFIX
#endif

int sde_gmm_score(const double *x, double *out, double *logp, size_t rows, size_t d, size_t k,
                   const double *mu, const double *iv, const double *mv, const double *lc, int level) {
    if (rows == 0) return 1;
    if (level < 0) level = sde_cpu_level();
    // Scratch: x transposed (d vectors), logits (k vectors), active components (k).
    size_t bytes = (d + k) * 64 + k * sizeof(uint32_t) + 64;
    void *scratch = bytes <= 16384 ? __builtin_alloca(bytes) : malloc(bytes);
    char *base = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    double *xt = (double *)base, *lg = xt + d * 8;
    uint32_t *active = (uint32_t *)(lg + k * 8);
#if defined(__x86_64__)
    int ok;
    if (level >= SDE_LEVEL_AVX512) ok = gmm_score_avx512(x, out, logp, rows, d, k, mu, iv, mv, lc, (void *)xt, (void *)lg, active);
    else if (level >= SDE_LEVEL_AVX2) ok = gmm_score_avx2(x, out, logp, rows, d, k, mu, iv, mv, lc, (void *)xt, (void *)lg, active);
    else
#endif
    ok = gmm_score_generic(x, out, logp, rows, d, k, mu, iv, mv, lc, (void *)xt, (void *)lg, active);
    if (bytes > 16384) free(scratch);
    return ok;
}
