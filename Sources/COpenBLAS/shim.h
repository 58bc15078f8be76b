// Shim for OpenBLAS (Debian's libopenblas-dev). GSL links its own reference CBLAS (gslcblas), which
// defines the same cblas_* names; the Fortran entry points (dgemm_, ...) exist only in OpenBLAS, so
// calling those guarantees the optimized kernels whatever the link order.
#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
#include <f77blas.h>
#include <cblas.h>
#endif
