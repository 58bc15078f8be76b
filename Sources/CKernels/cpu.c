// Run-time choice of the instruction-set level (see CKernels.h).
#include "CKernels.h"
#include <stdlib.h>
#include <string.h>

static int detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int level = SDE_LEVEL_GENERIC;
    if (__builtin_cpu_supports("avx2")) level = SDE_LEVEL_AVX2;
    if (level == SDE_LEVEL_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl")) level = SDE_LEVEL_AVX512;
    const char *env = getenv("SCORESDE_SIMD");
    if (env) {
        int cap = level;
        if (strcmp(env, "generic") == 0) cap = SDE_LEVEL_GENERIC;
        else if (strcmp(env, "avx2") == 0) cap = SDE_LEVEL_AVX2;
        if (cap < level) level = cap;
    }
    return level;
#else
    return SDE_LEVEL_GENERIC;
#endif
}

int sde_cpu_level(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) { v = detect(); __atomic_store_n(&cached, v, __ATOMIC_RELAXED); }
    return v;
}
