// A small fork-join pool for ScoreSDE's parallel loops: persistent workers that spin briefly, then
// sleep on a futex, so a parallel loop costs about a microsecond to start instead of the tens of
// microseconds of a dispatch queue. The calling thread takes chunks too, so a worker that is slow to
// wake (a loaded machine) only means the caller does more of the work; which thread runs a chunk
// never changes a result.
#define _GNU_SOURCE
#include "CKernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <limits.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
#endif

#define MAX_WORKERS 63
#define SPIN_ROUNDS 4000      /* ≈ 50–100 µs of PAUSE before a worker sleeps */
#define WAIT_SPINS 2000       /* the caller's spin for in-flight chunks before it yields */

// state = generation (32 bits) | chunk count (16) | next chunk to claim (16)
static _Atomic uint64_t state;
static _Atomic uint32_t wakeWord;        // bumped at every job; futex word
static _Atomic int sleepers;
static _Atomic long done;
static _Atomic int busy;
static sde_chunk_fn jobFn;
static void *jobCtx;
static int workers;
static pthread_mutex_t growLock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int insidePool;

static void futexWait(_Atomic uint32_t *w, uint32_t expected) {
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)w; (void)expected; sched_yield();
#endif
}

static void futexWakeAll(_Atomic uint32_t *w) {
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)w;
#endif
}

/// Claims and runs chunks of the job of generation `gen` until none is left.
static void runChunks(uint32_t gen) {
    for (;;) {
        uint64_t s = atomic_load_explicit(&state, memory_order_acquire);
        for (;;) {
            uint32_t g = (uint32_t)(s >> 32), n = (uint32_t)(s >> 16) & 0xFFFF, next = (uint32_t)s & 0xFFFF;
            if (g != gen || next >= n) return;
            if (atomic_compare_exchange_weak_explicit(&state, &s, s + 1, memory_order_acq_rel, memory_order_acquire)) {
                jobFn(jobCtx, (long)next);   // the job cannot end (nor be replaced) before this chunk is done
                atomic_fetch_add_explicit(&done, 1, memory_order_release);
                break;
            }
        }
    }
}

static void *workerMain(void *arg) {
    (void)arg;
    insidePool = 1;
    uint32_t seen = (uint32_t)(atomic_load(&state) >> 32);
    for (;;) {
        uint32_t gen = seen;
        for (int i = 0; i < SPIN_ROUNDS; i++) {
            gen = (uint32_t)(atomic_load_explicit(&state, memory_order_acquire) >> 32);
            if (gen != seen) break;
            PAUSE();
        }
        while (gen == seen) {
            uint32_t w = atomic_load(&wakeWord);
            atomic_fetch_add(&sleepers, 1);
            gen = (uint32_t)(atomic_load(&state) >> 32);
            if (gen == seen) futexWait(&wakeWord, w);
            atomic_fetch_sub(&sleepers, 1);
            gen = (uint32_t)(atomic_load(&state) >> 32);
        }
        seen = gen;
        runChunks(gen);
    }
    return NULL;
}

static void ensureWorkers(int n) {
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    if (__atomic_load_n(&workers, __ATOMIC_ACQUIRE) >= n) return;
    pthread_mutex_lock(&growLock);
    while (workers < n) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, workerMain, NULL) != 0) { pthread_attr_destroy(&a); break; }
        pthread_attr_destroy(&a);
        __atomic_store_n(&workers, workers + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&growLock);
}

void sde_parallel(long n, int threads, sde_chunk_fn fn, void *ctx) {
    if (n <= 0) return;
    int expected = 0;
    if (threads <= 1 || n == 1 || n > 0xFFFF || insidePool
        || !atomic_compare_exchange_strong(&busy, &expected, 1)) {
        for (long c = 0; c < n; c++) fn(ctx, c);   // nested or concurrent use: run here, in order
        return;
    }
    ensureWorkers(threads - 1);
    jobFn = fn; jobCtx = ctx;
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    uint64_t s = atomic_load(&state);
    uint32_t gen = (uint32_t)(s >> 32) + 1;
    atomic_store_explicit(&state, (uint64_t)gen << 32 | (uint64_t)n << 16, memory_order_release);
    atomic_fetch_add(&wakeWord, 1);
    if (atomic_load(&sleepers) > 0) futexWakeAll(&wakeWord);
    insidePool = 1;
    runChunks(gen);
    insidePool = 0;
    for (long spins = 0; atomic_load_explicit(&done, memory_order_acquire) < n; spins++) {
        if (spins < WAIT_SPINS) PAUSE(); else sched_yield();
    }
    atomic_store_explicit(&busy, 0, memory_order_release);
}
