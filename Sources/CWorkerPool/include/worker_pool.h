// CWorkerPool: the threads that share a kernel's work with the calling thread.
//
// One pool per process, of (processor count - 1) threads started on first use. A call publishes its work and
// takes part in it; the pool's threads wait for work by spinning for a short while after each call (kernels
// follow each other a few microseconds apart while a model runs) and then sleep on a condition variable, so
// an idle process costs nothing. Handing work to a spinning thread takes well under a microsecond where
// waking a sleeping one (as Dispatch's `concurrentPerform` does on every call) takes tens.
#ifndef STYLEDIFFUSION_WORKER_POOL_H
#define STYLEDIFFUSION_WORKER_POOL_H

typedef void (*sdWorkerPoolBody)(void *context, long iteration);

/// Calls `body(context, i)` once for every i in 0..<iterations, on the calling thread and the pool's threads,
/// and returns 0 when all have returned. Iterations are claimed one at a time, so a thread that the host has
/// taken away simply runs fewer of them (the calling thread runs them all if need be). Returns -1 without
/// calling `body` when the pool is already running another call (a nested or concurrent one), has no
/// threads, or `iterations` is above 65535: the caller then runs the iterations itself.
int sdWorkerPoolRun(long iterations, sdWorkerPoolBody body, void *context);

/// Hands out chunk indices on demand: returns the value of `*counter` before adding 1 to it, or -1 once that
/// value is not below `count` (the counter may pass `count`; it is only ever compared).
long sdWorkerPoolClaim(long *counter, long count);

/// The pool's threads (not counting callers); starts them if they are not running yet.
int sdWorkerPoolThreads(void);

#endif
