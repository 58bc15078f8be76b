// Shim for oneDNN (Intel's Deep Neural Network Library, Debian's libdnnl-dev 2.6: C API dnnl.h).
// Debian ships no pkg-config file for it, so the modulemap links "dnnl" directly.
// Debian builds oneDNN with the OpenMP CPU runtime (libgomp): the thread count of its primitives is
// OpenMP's. omp_set_num_threads is looked up at run time in the already-loaded libgomp (a dependency
// of libdnnl), so that linking needs no -lgomp (whose .so lives in GCC's private directory).
#ifndef CDNNL_SHIM_H
#define CDNNL_SHIM_H
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>

/// Sets OpenMP's thread count for parallel regions started by the calling thread (oneDNN's
/// primitives and dnnl_sgemm). Returns 0 when libgomp's entry point was not found.
static inline int cdnnl_set_num_threads(int n) {
    void (*f)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!f) return 0;
    f(n);
    return 1;
}

/// OpenMP's current upper bound on threads for the calling thread (0 when libgomp was not found).
static inline int cdnnl_max_threads(void) {
    int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    return f ? f() : 0;
}
/// DNNL_MEMORY_ALLOCATE (a macro Swift cannot import): let oneDNN allocate a memory object's buffer.
static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
#endif
