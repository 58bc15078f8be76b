// Batched standard normals: Philox4x32-10 (Salmon et al., SC 2011) + the ziggurat's fast path
// (Marsaglia & Tsang 2000). Layout and keying: see sde_normals in CKernels.h. Three versions
// (generic, AVX2, AVX-512) with identical results; the rare rejections are finished by the caller.
#include "CKernels.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma clang fp contract(off)

#define M0 0xD2511F53u
#define M1 0xCD9E8D57u
#define W0 0x9E3779B9u
#define W1 0xBB67AE85u

/// Blocks per tile (a multiple of 16): the tile's bits stay in L1 between Philox and ziggurat.
#define TILE 128

typedef struct {
    uint64_t key; uint32_t c2, c3, firstRow;
    size_t d, bpr, wpr, rows;
    const double *zx, *zf;
} Job;

/// Counters (blk, row) of `n` consecutive blocks starting at global block `b`.
static inline void counters(const Job *j, size_t b, int n, uint32_t *c0, uint32_t *c1) {
    size_t row = b / j->bpr, blk = b % j->bpr;
    if (j->bpr == 1) {
        uint32_t r = j->firstRow + (uint32_t)row;
        for (int l = 0; l < n; l++) { c0[l] = 0; c1[l] = r + (uint32_t)l; }
        return;
    }
    for (int l = 0; l < n;) {
        size_t seg = j->bpr - blk;
        if (seg > (size_t)(n - l)) seg = (size_t)(n - l);
        uint32_t r = j->firstRow + (uint32_t)row;
        for (size_t s = 0; s < seg; s++) { c0[l + s] = (uint32_t)(blk + s); c1[l + s] = r; }
        l += (int)seg; blk = 0; row++;
    }
}

static inline void philox_scalar(uint32_t x[4], uint64_t key) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)M0 * x[0], p1 = (uint64_t)M1 * x[2];
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x[1] ^ k0, y2 = (uint32_t)(p0 >> 32) ^ x[3] ^ k1;
        x[1] = (uint32_t)p1; x[3] = (uint32_t)p0; x[0] = y0; x[2] = y2;
        k0 += W0; k1 += W1;
    }
}

/// Ziggurat fast path of one word; returns 0 when rejected (x is still written).
static inline int zig1(uint64_t w, const double *zx, double *o) {
    unsigned i = (unsigned)(w & 0xFF);
    double x = (double)(w >> 11) * 0x1p-53 * zx[i];
    uint64_t b; memcpy(&b, &x, 8); b ^= ((w >> 8) & 1) << 63; memcpy(o, &b, 8);
    return x < zx[i + 1];
}

// MARK: - the rare slow path (≈1.5% of values), on the row's sequential stream

/// Sequential 64-bit words of blocks (first, first + 1, …; row, draw): word a, then word b.
typedef struct { uint64_t key; uint32_t block, row, c2, c3; uint64_t pending; int has; } Stream;

static uint64_t streamNext(Stream *s) {
    if (s->has) { s->has = 0; return s->pending; }
    uint32_t x[4] = {s->block, s->row, s->c2, s->c3};
    philox_scalar(x, s->key);
    s->block++;
    s->pending = (uint64_t)x[2] | (uint64_t)x[3] << 32; s->has = 1;
    return (uint64_t)x[0] | (uint64_t)x[1] << 32;
}

static double uniformPositive(Stream *s) { return (double)((streamNext(s) >> 11) + 1) * 0x1p-53; }

/// The ziggurat's slow path at layer i: the tail beyond r (Marsaglia 1964) or the wedge test.
static int slowNormal(Stream *s, unsigned i, double x, const double *zx, const double *zf, double *v) {
    if (i == 0) {
        double r = zx[1];
        for (;;) {
            double a = -log(uniformPositive(s)) / r;
            double b = -log(uniformPositive(s));
            if (2 * b > a * a) { *v = r + a; return 1; }
        }
    }
    double f0 = zf[i], f1 = zf[i + 1];
    double y = f0 + (f1 - f0) * uniformPositive(s);
    if (y < exp(-0.5 * x * x)) { *v = x; return 1; }
    return 0;
}

/// Finishes the draw of value j of global row `row` whose fast path rejected word w: the slow path,
/// else |a fresh normal| from the stream (2³¹ + 64 j, row, draw), with w's sign.
static double finish(const Job *jb, uint32_t row, size_t j, uint64_t w) {
    const double *zx = jb->zx, *zf = jb->zf;
    unsigned i = (unsigned)(w & 0xFF);
    double x = (double)(w >> 11) * 0x1p-53 * zx[i], v;
    Stream s = { jb->key, 0x80000000u + (uint32_t)j * 64u, row, jb->c2, jb->c3, 0, 0 };
    if (!slowNormal(&s, i, x, zx, zf, &v)) {
        for (;;) {
            uint64_t w2 = streamNext(&s);
            unsigned i2 = (unsigned)(w2 & 0xFF);
            double x2 = (double)(w2 >> 11) * 0x1p-53 * zx[i2], z;
            if (x2 < zx[i2 + 1]) z = x2;
            else if (slowNormal(&s, i2, x2, zx, zf, &z)) {}
            else continue;
            if ((w2 >> 8) & 1) z = -z;
            v = z < 0 ? -z : z;
            break;
        }
    }
    return (w >> 8) & 1 ? -v : v;
}

/// Writes the words of tile blocks [b0, b0 + nb) (2 per block) from `bits` to `out`, finishing
/// with the rejection list. `vals` holds the ziggurat values of all words in order.
static inline void place(const Job *j, size_t b0, size_t nb, const double *vals, const uint8_t *ok,
                         const uint64_t *bits, double *out) {
    size_t q0 = 2 * b0, nw = 2 * nb;
    if ((j->d & 1) == 0) {
        memcpy(out + q0, vals, nw * sizeof(double));
        for (size_t q = 0; q < nw; q++)
            if (!ok[q]) out[q0 + q] = finish(j, j->firstRow + (uint32_t)((q0 + q) / j->d), (q0 + q) % j->d, bits[q]);
        return;
    }
    size_t row = q0 / j->wpr, col = q0 % j->wpr;
    for (size_t q = 0; q < nw; q++) {
        if (col < j->d) {
            size_t idx = row * j->d + col;
            out[idx] = ok[q] ? vals[q] : finish(j, j->firstRow + (uint32_t)row, col, bits[q]);
        }
        if (++col == j->wpr) { col = 0; row++; }
    }
}

/// After a vectorized tile: `masks` has one accept bit per word, `width` words per byte. For even
/// `d` the values are already in `out` and only the rejected ones (a zero bit is rare, so whole
/// bytes are skipped) are finished; for odd `d` the values in `vals` are placed, skipping row pads.
static inline void rejections(const Job *j, size_t b0, size_t nw, const uint8_t *masks, int width,
                              const double *vals, const uint64_t *bits, double *out) {
    size_t groups = (nw + (size_t)width - 1) / (size_t)width;
    uint8_t full = (uint8_t)((1u << width) - 1);
    if ((j->d & 1) == 0) {
        for (size_t g = 0; g < groups; g++) {
            if (masks[g] == full) continue;
            for (int l = 0; l < width; l++) {
                size_t q = g * (size_t)width + (size_t)l, idx = 2 * b0 + q;
                if (q < nw && !((masks[g] >> l) & 1))
                    out[idx] = finish(j, j->firstRow + (uint32_t)(idx / j->d), idx % j->d, bits[q]);
            }
        }
        return;
    }
    uint8_t ok[2 * TILE];
    for (size_t q = 0; q < nw; q++) ok[q] = (uint8_t)((masks[q / (size_t)width] >> (q % (size_t)width)) & 1);
    place(j, b0, nw / 2, vals, ok, bits, out);
}

// MARK: - generic

static void normals_generic(const Job *j, const double *zx, double *out) {
    size_t total = j->rows * j->bpr;
    double vals[2 * TILE]; uint8_t ok[2 * TILE]; uint64_t bits[2 * TILE];
    for (size_t b0 = 0; b0 < total; b0 += TILE) {
        size_t nb = total - b0 < TILE ? total - b0 : TILE;
        uint32_t c0[TILE], c1[TILE];
        counters(j, b0, (int)nb, c0, c1);
        for (size_t b = 0; b < nb; b++) {
            uint32_t x[4] = {c0[b], c1[b], j->c2, j->c3};
            philox_scalar(x, j->key);
            bits[2 * b] = (uint64_t)x[0] | (uint64_t)x[1] << 32;
            bits[2 * b + 1] = (uint64_t)x[2] | (uint64_t)x[3] << 32;
            ok[2 * b] = (uint8_t)zig1(bits[2 * b], zx, vals + 2 * b);
            ok[2 * b + 1] = (uint8_t)zig1(bits[2 * b + 1], zx, vals + 2 * b + 1);
        }
        place(j, b0, nb, vals, ok, bits, out);
    }
}

#if defined(__x86_64__)

// MARK: - AVX2

#define AVX2 __attribute__((target("avx2")))

/// One Philox round on 8 blocks (one 32-bit lane each).
#define ROUND8(x0, x1, x2, x3, K0, K1) do { \
    __m256i pe0 = _mm256_mul_epu32(x0, m0), po0 = _mm256_mul_epu32(_mm256_srli_epi64(x0, 32), m0); \
    __m256i pe1 = _mm256_mul_epu32(x2, m1), po1 = _mm256_mul_epu32(_mm256_srli_epi64(x2, 32), m1); \
    __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA); \
    __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA); \
    __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA); \
    __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA); \
    x0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1), K0); x1 = lo1; \
    x2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3), K1); x3 = lo0; \
} while (0)

/// Philox of 16 blocks (two independent groups of 8 for instruction-level parallelism); writes
/// 32 words in block order, half 0 then half 1.
AVX2 static inline void philox16_avx2(const uint32_t *c0, const uint32_t *c1, uint32_t c2, uint32_t c3,
                                      uint64_t key, uint64_t *w) {
    const __m256i m0 = _mm256_set1_epi64x(M0), m1 = _mm256_set1_epi64x(M1);
    __m256i a0 = _mm256_loadu_si256((const __m256i *)c0), a1 = _mm256_loadu_si256((const __m256i *)c1);
    __m256i b0 = _mm256_loadu_si256((const __m256i *)(c0 + 8)), b1 = _mm256_loadu_si256((const __m256i *)(c1 + 8));
    __m256i a2 = _mm256_set1_epi32((int)c2), a3 = _mm256_set1_epi32((int)c3), b2 = a2, b3 = a3;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        __m256i K0 = _mm256_set1_epi32((int)k0), K1 = _mm256_set1_epi32((int)k1);
        ROUND8(a0, a1, a2, a3, K0, K1);
        ROUND8(b0, b1, b2, b3, K0, K1);
        k0 += W0; k1 += W1;
    }
    __m256i g[2][4] = {{a0, a1, a2, a3}, {b0, b1, b2, b3}};
    for (int h = 0; h < 2; h++) {
        __m256i lo01 = _mm256_unpacklo_epi32(g[h][0], g[h][1]), hi01 = _mm256_unpackhi_epi32(g[h][0], g[h][1]);
        __m256i lo23 = _mm256_unpacklo_epi32(g[h][2], g[h][3]), hi23 = _mm256_unpackhi_epi32(g[h][2], g[h][3]);
        __m256i p = _mm256_unpacklo_epi64(lo01, lo23);  // blocks 0, 4
        __m256i q = _mm256_unpackhi_epi64(lo01, lo23);  // blocks 1, 5
        __m256i r = _mm256_unpacklo_epi64(hi01, hi23);  // blocks 2, 6
        __m256i s = _mm256_unpackhi_epi64(hi01, hi23);  // blocks 3, 7
        __m256i *o = (__m256i *)(w + 16 * h);
        _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(p, q, 0x20));
        _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(r, s, 0x20));
        _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(p, q, 0x31));
        _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(r, s, 0x31));
    }
}

/// Ziggurat fast path on 4 words; returns the 4-bit mask of accepted lanes.
AVX2 static inline int zig4_avx2(__m256i w, const double *zx, double *o) {
    const __m256i byte = _mm256_set1_epi64x(0xFF), one = _mm256_set1_epi64x(1);
    const __m256i expOne = _mm256_set1_epi64x(0x3FF0000000000000LL), half = _mm256_set1_epi64x(0x3CA0000000000000LL);
    __m256i idx = _mm256_and_si256(w, byte);
    uint64_t id[4] __attribute__((aligned(32)));   // four scalar loads per table beat a gather
    _mm256_store_si256((__m256i *)id, idx);
    __m256d xi = _mm256_setr_pd(zx[id[0]], zx[id[1]], zx[id[2]], zx[id[3]]);
    __m256d xi1 = _mm256_setr_pd(zx[id[0] + 1], zx[id[1] + 1], zx[id[2] + 1], zx[id[3] + 1]);
    // (w >> 11) · 2⁻⁵³ exactly: (w >> 12) · 2⁻⁵² from the mantissa of [1, 2), plus bit 11 · 2⁻⁵³.
    __m256d hi = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(w, 12), expOne)), _mm256_set1_pd(1.0));
    __m256i bit = _mm256_and_si256(_mm256_srli_epi64(w, 11), one);
    __m256d lo = _mm256_castsi256_pd(_mm256_and_si256(_mm256_sub_epi64(_mm256_setzero_si256(), bit), half));
    __m256d x = _mm256_mul_pd(_mm256_add_pd(hi, lo), xi);
    __m256i sign = _mm256_slli_epi64(_mm256_and_si256(_mm256_srli_epi64(w, 8), one), 63);
    _mm256_storeu_pd(o, _mm256_xor_pd(x, _mm256_castsi256_pd(sign)));
    return _mm256_movemask_pd(_mm256_cmp_pd(x, xi1, _CMP_LT_OQ));
}

AVX2 static void normals_avx2(const Job *j, const double *zx, double *out) {
    int even = (j->d & 1) == 0;
    size_t total = j->rows * j->bpr;
    uint64_t bits[2 * TILE] __attribute__((aligned(32)));
    double vals[2 * TILE] __attribute__((aligned(32)));
    uint8_t masks[2 * TILE / 4];
    uint32_t c0[TILE], c1[TILE];
    for (size_t b0 = 0; b0 < total; b0 += TILE) {
        size_t nb = total - b0 < TILE ? total - b0 : TILE;
        size_t nb16 = (nb + 15) & ~(size_t)15;
        counters(j, b0, (int)nb16, c0, c1);
        for (size_t b = 0; b < nb16; b += 16) philox16_avx2(c0 + b, c1 + b, j->c2, j->c3, j->key, bits + 2 * b);
        size_t nw = 2 * nb;
        double *dst = even ? out + 2 * b0 : vals;
        size_t q = 0;
        for (; q + 4 <= nw; q += 4) masks[q / 4] = (uint8_t)zig4_avx2(_mm256_load_si256((const __m256i *)(bits + q)), zx, dst + q);
        for (; q < nw; q++) { int a = zig1(bits[q], zx, dst + q); masks[q / 4] = (uint8_t)(q % 4 == 0 ? a : masks[q / 4] | a << (q % 4)); }
        rejections(j, b0, nw, masks, 4, vals, bits, out);
    }
}


// MARK: - AVX-512

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))

/// One Philox round on 16 blocks: the 64-bit products of even and odd lanes, their high and low
/// halves gathered back into 32-bit lanes by one two-source permute each, XORs as one ternary op.
#define ROUND16(x0, x1, x2, x3, K0, K1) do { \
    __m512i pe0 = _mm512_mul_epu32(x0, m0), po0 = _mm512_mul_epu32(_mm512_srli_epi64(x0, 32), m0); \
    __m512i pe1 = _mm512_mul_epu32(x2, m1), po1 = _mm512_mul_epu32(_mm512_srli_epi64(x2, 32), m1); \
    __m512i hi0 = _mm512_permutex2var_epi32(pe0, oddIdx, po0), lo0 = _mm512_permutex2var_epi32(pe0, evenIdx, po0); \
    __m512i hi1 = _mm512_permutex2var_epi32(pe1, oddIdx, po1), lo1 = _mm512_permutex2var_epi32(pe1, evenIdx, po1); \
    x0 = _mm512_ternarylogic_epi32(hi1, x1, K0, 0x96); x1 = lo1; \
    x2 = _mm512_ternarylogic_epi32(hi0, x3, K1, 0x96); x3 = lo0; \
} while (0)

/// Philox of 32 blocks (two groups of 16); writes 64 words in block order, half 0 then half 1.
AVX512 static inline void philox32_avx512(const uint32_t *c0, const uint32_t *c1, uint32_t c2, uint32_t c3,
                                          uint64_t key, uint64_t *w) {
    const __m512i m0 = _mm512_set1_epi64(M0), m1 = _mm512_set1_epi64(M1);
    // Lane 2i of the result takes dword 2i+1 (high half) of the even product, lane 2i+1 dword 2i+1 of the odd one.
    const __m512i oddIdx = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    const __m512i evenIdx = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    __m512i a0 = _mm512_loadu_si512(c0), a1 = _mm512_loadu_si512(c1);
    __m512i b0 = _mm512_loadu_si512(c0 + 16), b1 = _mm512_loadu_si512(c1 + 16);
    __m512i a2 = _mm512_set1_epi32((int)c2), a3 = _mm512_set1_epi32((int)c3), b2 = a2, b3 = a3;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        __m512i K0 = _mm512_set1_epi32((int)k0), K1 = _mm512_set1_epi32((int)k1);
        ROUND16(a0, a1, a2, a3, K0, K1);
        ROUND16(b0, b1, b2, b3, K0, K1);
        k0 += W0; k1 += W1;
    }
    __m512i g[2][4] = {{a0, a1, a2, a3}, {b0, b1, b2, b3}};
    for (int h = 0; h < 2; h++) {
        __m512i lo01 = _mm512_unpacklo_epi32(g[h][0], g[h][1]), hi01 = _mm512_unpackhi_epi32(g[h][0], g[h][1]);
        __m512i lo23 = _mm512_unpacklo_epi32(g[h][2], g[h][3]), hi23 = _mm512_unpackhi_epi32(g[h][2], g[h][3]);
        __m512i P = _mm512_unpacklo_epi64(lo01, lo23);   // blocks 0, 4, 8, 12 (one per 128-bit lane)
        __m512i Q = _mm512_unpackhi_epi64(lo01, lo23);   // 1, 5, 9, 13
        __m512i R = _mm512_unpacklo_epi64(hi01, hi23);   // 2, 6, 10, 14
        __m512i S = _mm512_unpackhi_epi64(hi01, hi23);   // 3, 7, 11, 15
        __m512i T0 = _mm512_shuffle_i64x2(P, Q, 0x44), T1 = _mm512_shuffle_i64x2(R, S, 0x44);
        __m512i T2 = _mm512_shuffle_i64x2(P, Q, 0xEE), T3 = _mm512_shuffle_i64x2(R, S, 0xEE);
        uint64_t *o = w + 32 * h;
        _mm512_storeu_si512(o + 0, _mm512_shuffle_i64x2(T0, T1, 0x88));    // blocks 0-3
        _mm512_storeu_si512(o + 8, _mm512_shuffle_i64x2(T0, T1, 0xDD));    // 4-7
        _mm512_storeu_si512(o + 16, _mm512_shuffle_i64x2(T2, T3, 0x88));   // 8-11
        _mm512_storeu_si512(o + 24, _mm512_shuffle_i64x2(T2, T3, 0xDD));   // 12-15
    }
}

/// Ziggurat fast path on 8 words; returns the 8-bit mask of accepted lanes.
AVX512 static inline int zig8_avx512(__m512i w, const double *zx, double *o) {
    const __m512i byte = _mm512_set1_epi64(0xFF), one = _mm512_set1_epi64(1);
    __m512i idx = _mm512_and_si512(w, byte);
    // Eight scalar loads per table beat a gather on current cores (e.g. Zen 4).
    uint64_t id[8] __attribute__((aligned(64)));
    _mm512_store_si512(id, idx);
    __m512d xi = _mm512_setr_pd(zx[id[0]], zx[id[1]], zx[id[2]], zx[id[3]], zx[id[4]], zx[id[5]], zx[id[6]], zx[id[7]]);
    __m512d xi1 = _mm512_setr_pd(zx[id[0] + 1], zx[id[1] + 1], zx[id[2] + 1], zx[id[3] + 1],
                                 zx[id[4] + 1], zx[id[5] + 1], zx[id[6] + 1], zx[id[7] + 1]);
    __m512d u = _mm512_mul_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(w, 11)), _mm512_set1_pd(0x1p-53));   // exact
    __m512d x = _mm512_mul_pd(u, xi);
    __m512i sign = _mm512_slli_epi64(_mm512_and_si512(_mm512_srli_epi64(w, 8), one), 63);
    _mm512_storeu_pd(o, _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x), sign)));
    return (int)_mm512_cmp_pd_mask(x, xi1, _CMP_LT_OQ);
}

AVX512 static void normals_avx512(const Job *j, const double *zx, double *out) {
    size_t total = j->rows * j->bpr;
    uint64_t bits[2 * TILE] __attribute__((aligned(64)));
    double vals[2 * TILE] __attribute__((aligned(64)));
    uint8_t masks[2 * TILE / 8];
    uint32_t c0[TILE], c1[TILE];
    int even = (j->d & 1) == 0;
    for (size_t b0 = 0; b0 < total; b0 += TILE) {
        size_t nb = total - b0 < TILE ? total - b0 : TILE;
        size_t nb32 = (nb + 31) & ~(size_t)31;
        counters(j, b0, (int)nb32, c0, c1);
        for (size_t b = 0; b < nb32; b += 32) philox32_avx512(c0 + b, c1 + b, j->c2, j->c3, j->key, bits + 2 * b);
        size_t nw = 2 * nb, q = 0;
        double *dst = even ? out + 2 * b0 : vals;
        for (; q + 8 <= nw; q += 8) masks[q / 8] = (uint8_t)zig8_avx512(_mm512_load_si512(bits + q), zx, dst + q);
        for (; q < nw; q++) { int a = zig1(bits[q], zx, dst + q); masks[q / 8] = (uint8_t)(q % 8 == 0 ? a : masks[q / 8] | a << (q % 8)); }
        rejections(j, b0, nw, masks, 8, vals, bits, out);
    }
}
#endif

void sde_normals(uint64_t key, uint64_t draw, uint32_t firstRow, size_t rows, size_t d,
                 const double *zx, const double *zf, double *out, int level) {
    if (rows == 0 || d == 0) return;
    Job j = { key, (uint32_t)draw, (uint32_t)(draw >> 32), firstRow, d, (d + 1) / 2, 2 * ((d + 1) / 2), rows, zx, zf };
    if (level < 0) level = sde_cpu_level();
#if defined(__x86_64__)
    if (level >= SDE_LEVEL_AVX512) { normals_avx512(&j, zx, out); return; }
    if (level >= SDE_LEVEL_AVX2) { normals_avx2(&j, zx, out); return; }
#endif
    normals_generic(&j, zx, out);
}
