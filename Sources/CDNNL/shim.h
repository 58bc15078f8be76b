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
/// A register-resident FMA loop for measuring the float32 peak (benchmarks only): 12 independent
/// 16-lane accumulators, `iterations` rounds of 12 fused multiply-adds each, i.e.
/// 12 · 16 · 2 · iterations flops. Compiled for AVX-512F by a function attribute (no build flags);
/// call it only when the CPU has AVX-512F. Returns a value that depends on every accumulator.
#if defined(__x86_64__)
#include <immintrin.h>
static inline int cdnnl_has_avx512f(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx512f"); }
__attribute__((target("avx512f"))) static inline float cdnnl_fma_loop_avx512(long iterations) {
    __m512 a0 = _mm512_set1_ps(0.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m512 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iterations; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y); a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y); a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y); a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}
#endif

/// DNNL_MEMORY_ALLOCATE (a macro Swift cannot import): let oneDNN allocate a memory object's buffer.
static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
#endif
