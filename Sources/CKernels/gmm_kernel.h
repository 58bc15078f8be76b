// Body of the Gaussian-mixture score kernel, included once per instruction-set level by gmm.c with
// GMM_W (rows per vector), GMM_ATTR (target attribute) and GMM_SUFFIX defined. Each vector lane is
// one row; lanes never interact, so every level computes the same bits per row.
#define GMM_CAT2(a, b) a##b
#define GMM_CAT(a, b) GMM_CAT2(a, b)
#define VD GMM_CAT(vd_, GMM_SUFFIX)
#define VI GMM_CAT(vi_, GMM_SUFFIX)
#define VEXP GMM_CAT(gmm_exp_, GMM_SUFFIX)
#define VEXP4 GMM_CAT(gmm_exp4_, GMM_SUFFIX)
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

/// `VEXP` on four vectors at once: four independent dependency chains keep the FP pipes busy
/// (the polynomial is latency-bound one vector at a time). Same operations per lane.
GMM_ATTR __attribute__((always_inline)) static inline void VEXP4(VD *v) {
    const VD lim = (VD){} - 708.0;
    VI small[4]; VD shifted[4], r[4], p[4];
    for (int i = 0; i < 4; i++) {
        small[i] = v[i] < lim;
        VD x = (VD)(((VI)v[i] & ~small[i]) | ((VI)lim & small[i]));
        shifted[i] = x * 1.4426950408889634 + 6755399441055744.0;
        VD n = shifted[i] - 6755399441055744.0;
        r[i] = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
        p[i] = (VD){} + 1.0 / 479001600.0;
    }
    static const double coef[12] = {1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
                                     1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    for (int c = 0; c < 12; c++)
        for (int i = 0; i < 4; i++) p[i] = p[i] * r[i] + coef[c];
    for (int i = 0; i < 4; i++) {
        VD scale = (VD)(((VI)shifted[i] + 1023) << 52);
        v[i] = (VD)((VI)(p[i] * scale) & ~small[i]);
    }
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
        const VD cut = (VD){} - 708.0;
        for (c = 0; c + 4 <= k; c += 4) {
            VD e[4] = {logits[c] - mx, logits[c + 1] - mx, logits[c + 2] - mx, logits[c + 3] - mx};
            // exp is exactly 0 below −708 (see VEXP): four such components need no polynomial.
            VI live = (e[0] >= cut) | (e[1] >= cut) | (e[2] >= cut) | (e[3] >= cut);
            long long anyLive = 0;
            for (size_t l = 0; l < GMM_W; l++) anyLive |= live[l];
            if (!anyLive) { for (int i = 0; i < 4; i++) logits[c + i] = (VD){}; continue; }
            VEXP4(e);
            for (int i = 0; i < 4; i++) { logits[c + i] = e[i]; sum = sum + e[i]; }
        }
        for (; c < k; c++) { VD e = VEXP(logits[c] - mx); logits[c] = e; sum = sum + e; }
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
        // s_j = Σ_c r_c μ_cj iv_cj − x_j Σ_c r_c iv_cj, four j at a time (eight independent sums,
        // each over c in order, so the same bits as one j at a time).
        size_t j = 0;
        for (; j + 4 <= d; j += 4) {
            VD a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {};
            for (size_t i = 0; i < na; i++) {
                size_t o = active[i] * d + j;
                VD r = logits[active[i]];
                a0 = a0 + r * mv[o]; b0 = b0 + r * v[o];
                a1 = a1 + r * mv[o + 1]; b1 = b1 + r * v[o + 1];
                a2 = a2 + r * mv[o + 2]; b2 = b2 + r * v[o + 2];
                a3 = a3 + r * mv[o + 3]; b3 = b3 + r * v[o + 3];
            }
            VD s0 = a0 - xt[j] * b0, s1 = a1 - xt[j + 1] * b1, s2 = a2 - xt[j + 2] * b2, s3 = a3 - xt[j + 3] * b3;
            bad = bad + (s0 - s0) + (s1 - s1) + (s2 - s2) + (s3 - s3);
            for (size_t l = 0; l < lanes; l++) {
                double *o = ob + (lo + l) * d + j;
                o[0] = s0[l]; o[1] = s1[l]; o[2] = s2[l]; o[3] = s3[l];
            }
        }
        for (; j < d; j++) {
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
#undef VEXP4
#undef VSCORE
