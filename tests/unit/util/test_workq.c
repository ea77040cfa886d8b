/* The work queue: its bound, cancellation, and completions delivered on the loop thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "util/workq.h"

static struct event_base *B;
static pthread_t loop_thread;

static void setup(void) {
    evthread_use_pthreads();
    B = event_base_new();
    loop_thread = pthread_self();
}
static void teardown(void) { event_base_free(B); }
TestSuite(workq, .init = setup, .fini = teardown);

typedef struct t {
    volatile int release, started, ran, done, cancelled, polled;
    int done_on_loop;
} t;

/* Waits until released or cancelled. */
static void blocking(void *ctx, const volatile int *cancel) {
    t *x = ctx;
    x->started = 1;
    while (!x->release && !*cancel)
        usleep(1000);
    x->polled = *cancel;
    x->ran = 1;
}
static void done(void *ctx, int cancelled) {
    t *x = ctx;
    x->done = 1;
    x->cancelled = cancelled;
    x->done_on_loop = pthread_equal(pthread_self(), loop_thread);
}

static void run_until(volatile int *flag) {
    for (int i = 0; i < 5000 && !*flag; i++) {
        event_base_loop(B, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

Test(workq, completes_on_the_loop_thread) {
    char err[100];
    tr_workq *q = tr_workq_new(B, 2, 8, err, sizeof err);
    cr_assert_not_null(q);
    t x = {.release = 1};
    cr_assert_not_null(tr_workq_submit(q, blocking, done, &x));
    for (int i = 0; i < 2000 && !x.ran; i++)
        usleep(1000);
    cr_assert(x.ran);
    usleep(5000);
    cr_assert_eq(x.done, 0, "done must wait for the loop");
    run_until(&x.done);
    cr_assert(x.done);
    cr_assert(x.done_on_loop);
    cr_assert_eq(x.cancelled, 0);
    cr_assert_eq(tr_workq_busy(q), 0);
    tr_workq_free(q);
}

Test(workq, bound_on_queued_jobs) {
    char err[100];
    tr_workq *q = tr_workq_new(B, 1, 2, err, sizeof err);
    t running = {0}, q1 = {0}, q2 = {0}, over = {0};
    cr_assert_not_null(tr_workq_submit(q, blocking, done, &running));
    /* wait until the worker holds it, so that the queue is empty (busy counts it from the
     * submit on, so it cannot tell) */
    for (int i = 0; i < 5000 && !running.started; i++)
        usleep(1000);
    cr_assert(running.started);
    cr_assert_not_null(tr_workq_submit(q, blocking, done, &q1));
    cr_assert_not_null(tr_workq_submit(q, blocking, done, &q2));
    cr_assert_null(tr_workq_submit(q, blocking, done, &over), "a full queue refuses");
    running.release = q1.release = q2.release = 1;
    run_until(&q2.done);
    cr_assert(running.done && q1.done && q2.done);
    cr_assert_eq(over.ran, 0);
    /* room again */
    t again = {.release = 1};
    cr_assert_not_null(tr_workq_submit(q, blocking, done, &again));
    run_until(&again.done);
    tr_workq_free(q);
}

Test(workq, cancel_flag_stops_a_running_job) {
    char err[100];
    tr_workq *q = tr_workq_new(B, 1, 4, err, sizeof err);
    t x = {0};
    volatile int *flag = tr_workq_submit(q, blocking, done, &x);
    cr_assert_not_null(flag);
    usleep(10000);
    *flag = 1; /* what tr_http_watch does when the client goes away */
    run_until(&x.done);
    cr_assert(x.done);
    cr_assert(x.polled, "the job saw the flag");
    cr_assert(x.cancelled);
    tr_workq_free(q);
}

Test(workq, stop_cancels_and_calls_every_done) {
    char err[100];
    tr_workq *q = tr_workq_new(B, 1, 4, err, sizeof err);
    t a = {0}, b = {0};
    cr_assert_not_null(tr_workq_submit(q, blocking, done, &a));
    cr_assert_not_null(tr_workq_submit(q, blocking, done, &b));
    usleep(10000);
    tr_workq_free(q);
    cr_assert(a.done && b.done);
    cr_assert(a.cancelled && b.cancelled);
}

static volatile int woke;
static void on_wake(void *arg) { woke += *(int *)arg; }
static void *waker_thread(void *w) {
    for (int i = 0; i < 100; i++)
        tr_workq_wake(w);
    return NULL;
}

Test(workq, wakers_merge_and_run_on_the_loop) {
    char err[100];
    tr_workq *q = tr_workq_new(B, 1, 4, err, sizeof err);
    int one = 1;
    tr_workq_waker *w = tr_workq_waker_new(q, on_wake, &one);
    pthread_t th;
    pthread_create(&th, NULL, waker_thread, w);
    pthread_join(th, NULL);
    cr_assert_eq(woke, 0);
    run_until(&woke);
    event_base_loop(B, EVLOOP_NONBLOCK);
    cr_assert_eq(woke, 1, "100 wakes before the loop ran are one call");
    tr_workq_waker_free(w);
    tr_workq_free(q);
}
