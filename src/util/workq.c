/* The work queue: workers take jobs from a FIFO under one mutex; finished jobs and wakers go
 * on a completion list that one libevent event (made active from the worker) drains on the
 * loop thread. */
#include "workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

typedef struct job {
    tr_workq_fn fn;
    tr_workq_done_fn done;
    void *ctx;
    volatile int cancel;
    int ran;
    struct job *next;
} job;

struct tr_workq_waker {
    tr_workq *q;
    void (*fn)(void *);
    void *arg;
    int pending, dead; /* under q->mu */
    struct tr_workq_waker *next;
};

struct tr_workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail; /* waiting to start */
    unsigned queued, running, max_queued;
    job *done_head, *done_tail;
    tr_workq_waker *wakes; /* pending wakers */
    int stopping;
    struct event *ev;
    pthread_t *th;
    unsigned nth;
    /* running jobs, so that shutdown can cancel them */
    job **active;
};

static void push_done(tr_workq *q, job *j) {
    j->next = NULL;
    if (q->done_tail)
        q->done_tail->next = j;
    else
        q->done_head = j;
    q->done_tail = j;
}

/* Workers yield the CPU to the loop thread: on a busy machine an export must not make
 * /healthz or ingestion wait (Linux keeps a nice value per thread). */
#define WORKER_NICE 5

static void *worker(void *arg) {
    tr_workq *q = arg;
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && setpriority(PRIO_PROCESS, tid, prio + WORKER_NICE) != 0) { /* best effort */
    }
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head) break;
        job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->queued--;
        q->running++;
        for (unsigned i = 0; i < q->nth; i++)
            if (!q->active[i]) {
                q->active[i] = j;
                break;
            }
        if (q->stopping) j->cancel = 1;
        pthread_mutex_unlock(&q->mu);
        if (!j->cancel) {
            j->fn(j->ctx, &j->cancel);
            j->ran = 1;
        }
        pthread_mutex_lock(&q->mu);
        for (unsigned i = 0; i < q->nth; i++)
            if (q->active[i] == j) q->active[i] = NULL;
        q->running--;
        push_done(q, j);
        event_active(q->ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Loop thread: finished jobs' done callbacks, then the wakers. */
static void deliver(tr_workq *q) {
    pthread_mutex_lock(&q->mu);
    job *d = q->done_head;
    q->done_head = q->done_tail = NULL;
    tr_workq_waker *w = q->wakes;
    q->wakes = NULL;
    pthread_mutex_unlock(&q->mu);
    while (d) {
        job *n = d->next;
        d->done(d->ctx, d->cancel || !d->ran);
        free(d);
        d = n;
    }
    while (w) {
        pthread_mutex_lock(&q->mu);
        tr_workq_waker *n = w->next;
        w->pending = 0;
        int dead = w->dead;
        pthread_mutex_unlock(&q->mu);
        if (dead)
            free(w);
        else
            w->fn(w->arg);
        w = n;
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    deliver(arg);
}

tr_workq *tr_workq_new(struct event_base *base, unsigned threads, unsigned max_queued, char *err,
                       size_t errlen) {
    tr_workq *q = calloc(1, sizeof *q);
    if (threads < 1) threads = 1;
    if (!q || !(q->th = calloc(threads, sizeof *q->th)) ||
        !(q->active = calloc(threads, sizeof *q->active))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    q->max_queued = max_queued;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (!(q->ev = event_new(base, -1, 0, on_event, q))) {
        snprintf(err, errlen, "cannot create the work queue's event");
        goto fail;
    }
    for (; q->nth < threads; q->nth++)
        if (pthread_create(&q->th[q->nth], NULL, worker, q) != 0) {
            snprintf(err, errlen, "cannot start a worker thread");
            tr_workq_free(q); /* joins the ones started */
            return NULL;
        }
    return q;
fail:
    if (q) {
        if (q->ev) event_free(q->ev);
        free(q->th);
        free(q->active);
        free(q);
    }
    return NULL;
}

volatile int *tr_workq_submit(tr_workq *q, tr_workq_fn fn, tr_workq_done_fn done, void *ctx) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->fn = fn;
    j->done = done;
    j->ctx = ctx;
    pthread_mutex_lock(&q->mu);
    if (q->stopping || q->queued >= q->max_queued) {
        pthread_mutex_unlock(&q->mu);
        free(j);
        return NULL;
    }
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->queued++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return &j->cancel;
}

unsigned tr_workq_busy(tr_workq *q) {
    pthread_mutex_lock(&q->mu);
    unsigned n = q->queued + q->running;
    for (job *d = q->done_head; d; d = d->next)
        n++;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void tr_workq_stop(tr_workq *q) {
    if (!q || q->nth == 0) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    for (job *j = q->head; j; j = j->next)
        j->cancel = 1;
    for (unsigned i = 0; i < q->nth; i++)
        if (q->active[i]) q->active[i]->cancel = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (unsigned i = 0; i < q->nth; i++)
        pthread_join(q->th[i], NULL);
    q->nth = 0;
    deliver(q);
}

void tr_workq_free(tr_workq *q) {
    if (!q) return;
    tr_workq_stop(q);
    deliver(q); /* wakers freed meanwhile */
    event_free(q->ev);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->th);
    free(q->active);
    free(q);
}

tr_workq_waker *tr_workq_waker_new(tr_workq *q, void (*fn)(void *arg), void *arg) {
    tr_workq_waker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->q = q;
    w->fn = fn;
    w->arg = arg;
    return w;
}

void tr_workq_wake(tr_workq_waker *w) {
    tr_workq *q = w->q;
    pthread_mutex_lock(&q->mu);
    if (!w->pending && !w->dead) {
        w->pending = 1;
        w->next = q->wakes;
        q->wakes = w;
        event_active(q->ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&q->mu);
}

void tr_workq_waker_free(tr_workq_waker *w) {
    if (!w) return;
    tr_workq *q = w->q;
    pthread_mutex_lock(&q->mu);
    int pending = w->pending;
    w->dead = 1;
    pthread_mutex_unlock(&q->mu);
    if (!pending) free(w); /* else the delivery frees it */
}
