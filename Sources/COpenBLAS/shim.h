// Shim for OpenBLAS (Debian's libopenblas-dev). GSL links its own reference CBLAS (gslcblas), which
// defines the same cblas_* names; the Fortran entry points (dgemm_, ...) exist only in OpenBLAS, so
// calling those guarantees the optimized kernels whatever the link order.
#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
#include <stddef.h>
#include <f77blas.h>
#include <cblas.h>

// LAPACK: Debian's libopenblas bundles reference LAPACK (OpenBLAS's own dpotrf_, declared in
// f77blas.h, and the Fortran routines) but installs no lapack.h / lapacke.h with it, so the
// routines the library calls are declared here. Fortran convention: every argument by pointer,
// column-major arrays, and one hidden length per character argument at the end.
void dsyevd_(char *jobz, char *uplo, blasint *n, double *a, blasint *lda, double *w,
             double *work, blasint *lwork, blasint *iwork, blasint *liwork, blasint *info,
             size_t jobz_len, size_t uplo_len);
#endif
