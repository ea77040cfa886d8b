/* Streamed replies: a worker produces the body in pieces, the loop sends each piece as a
 * chunk (Transfer-Encoding: chunked), and the worker waits while the client has not taken
 * what was sent, so a reply of any size uses a bounded amount of memory. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "http.h"
#include "http_int.h"
#include "util/workq.h"

struct tr_http_stream {
    struct evhttp_request *req;
    const volatile int *cancel;
    tr_workq_waker *waker;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tr_buf pending; /* produced, not yet handed to libevent (under mu) */
    size_t unacked; /* handed to libevent, not yet written to the socket (under mu) */
    int started;    /* loop only: the status line went out */
};

/* Loop: the connection's output buffer has drained. */
static void drained(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    tr_http_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    s->unacked = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Loop: moves what the worker produced into a chunk. */
static void send_pending(tr_http_stream *s) {
    struct evbuffer *eb = evbuffer_new();
    if (!eb) return;
    pthread_mutex_lock(&s->mu);
    size_t n = s->pending.len;
    if (n && evbuffer_add(eb, s->pending.data, n) == 0) {
        tr_buf_reset(&s->pending);
        s->unacked += n;
    } else {
        n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (n) {
        if (!s->started) {
            tr_http__reply_starting(s->req);
            evhttp_send_reply_start(s->req, 200, "OK");
            s->started = 1;
        }
        evhttp_send_reply_chunk_with_cb(s->req, eb, drained, s);
    }
    evbuffer_free(eb);
}

static void on_wake(void *arg) { send_pending(arg); }

static const volatile int never = 0;

void tr_http_stream_bind(tr_http_stream *s, const volatile int *cancel) { s->cancel = cancel; }

tr_http_stream *tr_http_stream_new(struct evhttp_request *req, struct tr_workq *q) {
    tr_http_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->req = req;
    s->cancel = &never;
    tr_buf_init(&s->pending, 0);
    if (!(s->waker = tr_workq_waker_new(q, on_wake, s))) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return s;
}

int tr_http_stream_write(tr_http_stream *s, const void *p, size_t n) {
    pthread_mutex_lock(&s->mu);
    while (s->pending.len + s->unacked > TR_HTTP_STREAM_HIGH && !*s->cancel) {
        /* the drain callback never comes when the client goes away: look at the flag often */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    int rc = *s->cancel ? -1 : tr_buf_append(&s->pending, p, n);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) tr_workq_wake(s->waker);
    return rc;
}

int tr_http_stream_flush(tr_http_stream *s, tr_buf *b, size_t at_least) {
    if (b->failed) return -1;
    if (b->len < at_least || (b->len == 0)) return *s->cancel ? -1 : 0;
    int rc = tr_http_stream_write(s, b->data, b->len);
    tr_buf_reset(b);
    return rc;
}

int tr_http_stream_end(tr_http_stream *s, int ok) {
    int rc = 0;
    struct evhttp_request *req = s->req;
    tr_workq_waker_free(s->waker);
    tr_http_unwatch(req);
    if (ok) {
        if (!s->started) {
            /* small enough to have never left: one ordinary reply */
            tr_http_reply(req, 200, NULL, s->pending.data, s->pending.len);
        } else {
            send_pending(s);
            evhttp_send_reply_end(req);
            tr_http__count_reply(200);
            tr_http__request_finished();
        }
    } else if (!s->started) {
        rc = -1;
    } else {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        tr_http__count_reply(200);
        tr_http__request_finished();
        if (evcon)
            evhttp_connection_free(evcon); /* the client must not take a cut body for a whole one */
        else
            evhttp_send_reply_end(req); /* frees the orphaned request */
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    tr_buf_free(&s->pending);
    free(s);
    return rc;
}
