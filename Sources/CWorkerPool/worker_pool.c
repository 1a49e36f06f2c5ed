// CWorkerPool: see include/worker_pool.h.
//
// Protocol. `ticket` holds (generation << 32 | iteration count << 16 | next unclaimed iteration). A call
// stores the job (body, context), resets `finished`, then publishes (generation, count, 0); every thread, the
// caller included, claims iterations by compare-and-swap on `ticket` and counts each one it finishes. The
// count travels in the ticket, not beside it: a thread holding the previous generation's exhausted ticket
// must not read the next call's count (stored before its ticket) and claim past the old one. A claim that
// succeeds for generation g was unclaimed, so generation g had not finished and the body and context read
// before the claim were g's. The caller returns once `finished` reaches the count; only then can a new
// generation start.
// Sleep: a thread that spun for SPIN_NS without a new generation counts itself in `sleepers` and waits on
// the condition variable while the generation is unchanged (checked under the mutex); a caller that sees
// sleepers after publishing broadcasts under the mutex. Both sides use sequentially consistent operations on
// `ticket` and `sleepers`, so either the thread sees the new generation or the caller sees the sleeper.
#define _GNU_SOURCE
#include "worker_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 255
#define MAX_ITERATIONS 0xFFFFL
#define SPIN_NS 300000L          /* how long an idle thread spins before it sleeps */

static _Atomic uint64_t ticket;
static _Atomic long finished;
static _Atomic(sdWorkerPoolBody) jobBody;
static _Atomic(void *) jobContext;
static _Atomic int busy;
static _Atomic int sleepers;
static uint32_t generation;      /* owned by the caller holding `busy` */
static int threadCount;
static pthread_once_t startOnce = PTHREAD_ONCE_INIT;
static pthread_mutex_t sleepLock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline long nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static inline uint32_t generationOf(uint64_t t) { return (uint32_t)(t >> 32); }
static inline long countOf(uint64_t t) { return (long)((t >> 16) & MAX_ITERATIONS); }
static inline long indexOf(uint64_t t) { return (long)(t & MAX_ITERATIONS); }

/// Claims and runs iterations of generation `g` until none is left.
static void runClaims(uint32_t g) {
    uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
    for (;;) {
        if (generationOf(t) != g) return;
        long index = indexOf(t);
        if (index >= countOf(t)) return;
        sdWorkerPoolBody body = atomic_load_explicit(&jobBody, memory_order_relaxed);
        void *context = atomic_load_explicit(&jobContext, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire)) {
            body(context, index);
            atomic_fetch_add_explicit(&finished, 1, memory_order_release);
            t = atomic_load_explicit(&ticket, memory_order_acquire);
        }
    }
}

static void *threadMain(void *unused) {
    (void)unused;
    uint32_t seen = 0;
    for (;;) {
        long spinStart = nanoseconds();
        unsigned spins = 0;
        uint32_t g;
        while ((g = generationOf(atomic_load_explicit(&ticket, memory_order_acquire))) == seen) {
            relax();
            if ((++spins & 255) != 0 || nanoseconds() - spinStart < SPIN_NS) continue;
            pthread_mutex_lock(&sleepLock);
            atomic_fetch_add(&sleepers, 1);
            while (generationOf(atomic_load(&ticket)) == seen) pthread_cond_wait(&wake, &sleepLock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleepLock);
            spinStart = nanoseconds();
        }
        seen = g;
        runClaims(g);
    }
    return 0;
}

static void startThreads(void) {
    long processors = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef __linux__
    cpu_set_t allowed;                            /* `taskset` and cgroup cpusets narrow what this process may use */
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0) processors = CPU_COUNT(&allowed);
#endif
    long wanted = processors > 1 ? processors - 1 : 0;
    if (wanted > MAX_THREADS) wanted = MAX_THREADS;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, 8u << 20);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    for (long i = 0; i < wanted; i++) {
        pthread_t thread;
        if (pthread_create(&thread, &attributes, threadMain, 0) == 0) threadCount++;
    }
    pthread_attr_destroy(&attributes);
}

long sdWorkerPoolClaim(long *counter, long count) {
    long claimed = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    return claimed < count ? claimed : -1;
}

int sdWorkerPoolThreads(void) {
    pthread_once(&startOnce, startThreads);
    return threadCount;
}

int sdWorkerPoolRun(long iterations, sdWorkerPoolBody body, void *context) {
    if (iterations <= 0) return 0;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&busy, &expected, 1)) return -1;
    if (sdWorkerPoolThreads() == 0 || iterations > MAX_ITERATIONS) {
        atomic_store(&busy, 0);
        return -1;
    }
    atomic_store_explicit(&jobBody, body, memory_order_relaxed);
    atomic_store_explicit(&jobContext, context, memory_order_relaxed);
    atomic_store_explicit(&finished, 0, memory_order_relaxed);
    generation += 1;
    if (generation == 0) generation = 1;          /* 0 is the threads' initial "seen" */
    uint32_t g = generation;
    atomic_store(&ticket, (uint64_t)g << 32 | (uint64_t)iterations << 16);   /* seq_cst: pairs with `sleepers` */
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleepLock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleepLock);
    }
    runClaims(g);
    unsigned spins = 0;
    while (atomic_load_explicit(&finished, memory_order_acquire) < iterations) {
        relax();
        if (++spins >= 4096) { sched_yield(); spins = 0; }   /* a thread holding an iteration was descheduled */
    }
    atomic_store_explicit(&busy, 0, memory_order_release);
    return 0;
}
