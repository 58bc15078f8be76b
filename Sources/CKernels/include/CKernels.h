// Hot loops of ScoreSDE in C, each in a baseline x86-64 / generic version and, where the CPU has
// them, AVX2 and AVX-512 versions chosen at run time (per-function `target` attributes, so the
// package needs no CPU flags). Every version gives the same bits: integer Philox is exact, and no
// floating-point operation is contracted (no FMA) or reordered between versions.
#ifndef SCORESDE_CKERNELS_H
#define SCORESDE_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set levels: 0 generic C, 1 AVX2, 2 AVX-512 (F, DQ, VL).
enum { SDE_LEVEL_GENERIC = 0, SDE_LEVEL_AVX2 = 1, SDE_LEVEL_AVX512 = 2 };

/// The best level this CPU supports (cached). `SCORESDE_SIMD=generic|avx2|avx512` lowers it.
int sde_cpu_level(void);

/// Standard normals of one draw by the ziggurat (Marsaglia & Tsang 2000, 256 layers) on
/// Philox4x32-10 bits (Salmon et al. 2011). Value j of chunk row i comes from the 64-bit half j % 2
/// of the block with counter (j / 2, firstRow + i, draw low, draw high) under `key`: layer = bits &
/// 255, sign = bit 8, u = (bits >> 11) · 2⁻⁵³, x = u · zx[layer], accepted when x < zx[layer + 1].
/// A rejected value (≈1.5%) is finished on the sequential stream of blocks (2³¹ + 64 j, row, draw):
/// the tail (layer 0) or wedge test, else |a fresh normal| from the stream, with the original sign.
/// Writes `rows × d` values to `out` (row-major). `zx` has 257 entries (x[0] = v / f(r), x[1] = r,
/// x[256] = 0), `zf[i] = exp(−zx[i]² / 2)`.
void sde_normals(uint64_t key, uint64_t draw, uint32_t firstRow, size_t rows, size_t d,
                 const double *zx, const double *zf, double *out, int level);

/// The score of a diagonal Gaussian mixture for `rows` rows of dimension `d`, `k` components:
/// logits l_c = lc_c − ½ Σ_j (x_j − mu_cj)² iv_cj, responsibilities r = softmax(l) (exp as in
/// `sde_exp_nonpositive`), s_j = Σ_c r_c mv_cj − x_j Σ_c r_c iv_cj with mv = mu ∘ iv. Four rows per
/// vector in the order of ScoreSDE's Swift kernel, so the bits match it. `logp` (nullable) gets
/// max + log Σ exp per row. Returns 1 when every score is finite, 0 otherwise.
int sde_gmm_score(const double *x, double *out, double *logp, size_t rows, size_t d, size_t k,
                   const double *mu, const double *iv, const double *mv, const double *lc, int level);

/// `out[r] = ‖row r‖` for the `rows × d` row-major `x`, the same bits as ScoreSDE's `Tensor.rowNorm`
/// (partial sums over columns j mod 4, combined as (s0 + s1) + (s2 + s3), then the square root).
void sde_row_norms(const double *x, size_t rows, size_t d, double *out, int level);

/// A chunk of a parallel loop: `fn(ctx, chunk)`.
typedef void (*sde_chunk_fn)(void *ctx, long chunk);

/// Runs `fn(ctx, c)` for every `c` in `[0, n)` on the calling thread and up to `threads − 1`
/// persistent pool workers, returning when all are done. Nested or concurrent calls run their
/// chunks on the calling thread, in order. Chunks must not depend on which thread runs them.
void sde_parallel(long n, int threads, sde_chunk_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
