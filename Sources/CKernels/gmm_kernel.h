// Body of the Gaussian-mixture score kernel, included once per instruction-set level by gmm.c with
// GMM_W (rows per vector), GMM_ATTR (target attribute) and GMM_SUFFIX defined. Each vector lane is
// one row; lanes never interact, so every level computes the same bits per row.
#define GMM_CAT2(a, b) a##b
#define GMM_CAT(a, b) GMM_CAT2(a, b)
#define VD GMM_CAT(vd_, GMM_SUFFIX)
#define VI GMM_CAT(vi_, GMM_SUFFIX)
#define VEXP GMM_CAT(gmm_exp_, GMM_SUFFIX)
#define VSCORE GMM_CAT(gmm_score_, GMM_SUFFIX)

typedef double VD __attribute__((vector_size(8 * GMM_W), aligned(8)));
typedef long long VI __attribute__((vector_size(8 * GMM_W), aligned(8)));

/// exp(x) for x ≤ 0, the same operations as ScoreSDE's `expNonPositive` (FastMath.swift):
/// x = n ln2 + r, degree-12 Taylor polynomial in r, 2ⁿ from the bits of the rounding constant.
GMM_ATTR __attribute__((always_inline)) static inline VD VEXP(VD x0) {
    const VD lim = (VD){} - 708.0;
    VI small = x0 < lim;
    VD x = (VD)(((VI)x0 & ~small) | ((VI)lim & small));
    VD shifted = x * 1.4426950408889634 + 6755399441055744.0;
    VD n = shifted - 6755399441055744.0;
    VD r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
    VD p = (VD){} + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    VD scale = (VD)(((VI)shifted + 1023) << 52);
    return (VD)((VI)(p * scale) & ~small);
}

GMM_ATTR static int VSCORE(const double *xb, double *ob, double *lb, size_t rows, size_t d, size_t k,
                            const double *m, const double *v, const double *mv, const double *lc,
                            VD *xt, VD *logits, uint32_t *active) {
    VD bad = {};   // accumulates s − s: 0 while every score is finite, NaN after any NaN or ±Inf
    for (size_t lo = 0; lo < rows; lo += GMM_W) {
        size_t lanes = rows - lo < GMM_W ? rows - lo : GMM_W;
        for (size_t j = 0; j < d; j++) {
            VD col;
            for (size_t l = 0; l < GMM_W; l++) col[l] = xb[(lo + (l < lanes ? l : lanes - 1)) * d + j];
            xt[j] = col;
        }
        VD mx = (VD){} - __builtin_inf();
        size_t c = 0;
        // Four components at a time: four independent sums, each in the order of one component alone.
        for (; c + 4 <= k; c += 4) {
            VD q0 = {}, q1 = {}, q2 = {}, q3 = {};
            const double *m0 = m + c * d, *v0 = v + c * d;
            for (size_t j = 0; j < d; j++) {
                VD x = xt[j];
                VD e0 = x - m0[j], e1 = x - m0[d + j], e2 = x - m0[2 * d + j], e3 = x - m0[3 * d + j];
                q0 = q0 + e0 * e0 * v0[j];
                q1 = q1 + e1 * e1 * v0[d + j];
                q2 = q2 + e2 * e2 * v0[2 * d + j];
                q3 = q3 + e3 * e3 * v0[3 * d + j];
            }
            VD qs[4] = {q0, q1, q2, q3};
            for (int i = 0; i < 4; i++) {
                VD l = lc[c + i] - 0.5 * qs[i];
                logits[c + i] = l;
                VI gt = l > mx;
                mx = (VD)(((VI)l & gt) | ((VI)mx & ~gt));
            }
        }
        for (; c < k; c++) {
            VD q = {};
            const double *mc = m + c * d, *vc = v + c * d;
            for (size_t j = 0; j < d; j++) { VD e = xt[j] - mc[j]; q = q + e * e * vc[j]; }
            VD l = lc[c] - 0.5 * q;
            logits[c] = l;
            VI gt = l > mx;
            mx = (VD)(((VI)l & gt) | ((VI)mx & ~gt));
        }
        VD sum = {};
        for (c = 0; c < k; c++) { VD e = VEXP(logits[c] - mx); logits[c] = e; sum = sum + e; }
        VD inv = 1.0 / sum;
        size_t na = 0;
        for (c = 0; c < k; c++) {
            VD r = logits[c] * inv;
            logits[c] = r;
            // A component whose responsibility is exactly 0 in every lane adds exact zeros: skip it.
            VI nz = r != 0.0;
            long long any = 0;
            for (size_t l = 0; l < GMM_W; l++) any |= nz[l];
            if (any) active[na++] = (uint32_t)c;
        }
        if (lb) for (size_t l = 0; l < lanes; l++) lb[lo + l] = mx[l] + log(sum[l]);
        // s_j = Σ_c r_c μ_cj iv_cj − x_j Σ_c r_c iv_cj
        for (size_t j = 0; j < d; j++) {
            VD a = {}, b = {};
            for (size_t i = 0; i < na; i++) {
                size_t cc = active[i], o = cc * d + j;
                VD r = logits[cc];
                a = a + r * mv[o];
                b = b + r * v[o];
            }
            VD s = a - xt[j] * b;
            bad = bad + (s - s);
            for (size_t l = 0; l < lanes; l++) ob[(lo + l) * d + j] = s[l];
        }
    }
    int ok = 1;
    for (size_t l = 0; l < GMM_W; l++) ok &= bad[l] == 0.0;
    return ok;
}

#undef VD
#undef VI
#undef VEXP
#undef VSCORE
