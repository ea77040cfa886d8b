/* The one work queue: a fixed pool of worker threads for everything that can take long
 * (reads of the stores, exports, searches, flushes, PromQL), so that the event-loop thread
 * does I/O and ingestion only. Jobs are bounded in number (a full queue is refused, and the
 * caller answers 503), carry a cancellation flag that the loop sets when the client goes
 * away and the job polls, and complete back on the loop thread through one libevent event
 * (libevent must have threads enabled: evthread_use_pthreads()). The same event delivers
 * "wakers": other threads' requests to run a function on the loop (the trace store's
 * acknowledgements, a streamed reply's next chunk). */
#ifndef TR_WORKQ_H
#define TR_WORKQ_H

#include <stddef.h>

struct event_base;
typedef struct tr_workq tr_workq;

/* Runs on a worker thread. `cancel` becomes non-zero when the work is no longer wanted
 * (client gone, shutdown): poll it between units of work and stop early. */
typedef void (*tr_workq_fn)(void *ctx, const volatile int *cancel);
/* Runs on the loop thread once the job has run (cancelled: the flag was set by then, or the
 * job never ran because the queue was stopping). Frees ctx. */
typedef void (*tr_workq_done_fn)(void *ctx, int cancelled);

/* A queue of `threads` workers (at least 1) holding at most `max_queued` jobs waiting to
 * start. Returns NULL with err set. */
tr_workq *tr_workq_new(struct event_base *base, unsigned threads, unsigned max_queued, char *err,
                       size_t errlen);
/* Queues a job (loop thread). Returns its cancellation flag, which the caller may set
 * (`*flag = 1`, e.g. through tr_http_watch) and may hand to the job's code as a
 * `const volatile int *` (promql_opts.cancel); it lives until `done` returns. Returns NULL
 * when the queue is full or stopping: then neither fn nor done is called. */
volatile int *tr_workq_submit(tr_workq *q, tr_workq_fn fn, tr_workq_done_fn done, void *ctx);
/* Jobs queued or running. */
unsigned tr_workq_busy(tr_workq *q);
/* Cancels every job, waits for the running ones and calls every pending `done` (with
 * cancelled = 1 for jobs that never ran) on the calling thread. Later submits are refused;
 * wakers still work (until the loop runs again nothing is delivered). */
void tr_workq_stop(tr_workq *q);
/* Stops the queue if needed and frees it. Free every waker first. */
void tr_workq_free(tr_workq *q);

/* A waker runs fn(arg) on the loop thread after tr_workq_wake (from any thread); wakes that
 * come while one is pending are merged into one call. */
typedef struct tr_workq_waker tr_workq_waker;
tr_workq_waker *tr_workq_waker_new(tr_workq *q, void (*fn)(void *arg), void *arg);
void tr_workq_wake(tr_workq_waker *w);
/* Loop thread. A wake still pending is dropped. */
void tr_workq_waker_free(tr_workq_waker *w);

#endif
