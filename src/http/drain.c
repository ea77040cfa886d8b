/* Per-connection progress for the shutdown drain: an open-addressing map from evhttp
 * connection to (requests dispatched and not answered, bytes of a next request arrived).
 * Loop thread only. */
#include "drain.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

typedef struct dconn {
    struct evhttp_connection *c; /* NULL: free; TOMB: deleted */
    unsigned busy;
    int reading;
} dconn;

struct tr_drain {
    dconn *v;
    size_t cap, n, used; /* used: live + tombstones */
    int stopping;
};

#define TOMB ((struct evhttp_connection *)1)

static tr_drain *g_drain; /* for the input watch, whose argument is the connection */

tr_drain *tr_drain_new(void) {
    tr_drain *d = calloc(1, sizeof *d);
    if (d) g_drain = d;
    return d;
}

void tr_drain_free(tr_drain *d) {
    if (!d) return;
    if (g_drain == d) g_drain = NULL;
    free(d->v);
    free(d);
}

static size_t hash(const void *c, size_t cap) {
    return ((uintptr_t)c >> 4) * 11400714819323198485ull & (cap - 1);
}

static dconn *find(tr_drain *d, const struct evhttp_connection *c) {
    if (!d || !d->cap || !c) return NULL;
    for (size_t i = hash(c, d->cap), k = 0; k < d->cap && d->v[i].c; k++, i = (i + 1) & (d->cap - 1))
        if (d->v[i].c == c) return &d->v[i];
    return NULL;
}

static int grow(tr_drain *d) {
    size_t ncap = d->cap ? d->cap * 2 : 64;
    while ((d->n + 1) * 2 > ncap)
        ncap *= 2;
    dconn *nv = calloc(ncap, sizeof *nv);
    if (!nv) return -1;
    for (size_t i = 0; i < d->cap; i++) {
        if (!d->v[i].c || d->v[i].c == TOMB) continue;
        size_t j = hash(d->v[i].c, ncap);
        while (nv[j].c)
            j = (j + 1) & (ncap - 1);
        nv[j] = d->v[i];
    }
    free(d->v);
    d->v = nv;
    d->cap = ncap;
    d->used = d->n;
    return 0;
}

/* evhttp moves a request's body out of the socket's input buffer as it arrives, so an empty
 * buffer does not mean that no request is being read: watch what arrives instead. */
static void on_input(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg) {
    (void)b;
    if (!info->n_added) return;
    dconn *e = find(g_drain, arg);
    if (e) e->reading = 1;
}

void tr_drain_request(tr_drain *d, struct evhttp_request *req) {
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    if (!d || !c) return;
    dconn *e = find(d, c);
    if (!e) {
        if ((d->used + 1) * 2 > d->cap && grow(d)) return;
        size_t i = hash(c, d->cap);
        while (d->v[i].c && d->v[i].c != TOMB)
            i = (i + 1) & (d->cap - 1);
        if (!d->v[i].c) d->used++;
        e = &d->v[i];
        *e = (dconn){.c = c};
        d->n++;
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
        if (bev) evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
    }
    e->busy++;
    e->reading = 0; /* what arrived was this request */
}

void tr_drain_reply(tr_drain *d, struct evhttp_request *req) {
    if (!d) return;
    dconn *e = find(d, evhttp_request_get_connection(req));
    if (e && e->busy) e->busy--;
    if (d->stopping) {
        /* the connection's last reply: HTTP/1.1 keep-alive ends here */
        struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
        evhttp_remove_header(oh, "Connection");
        evhttp_add_header(oh, "Connection", "close");
    }
}

void tr_drain_closed(tr_drain *d, struct evhttp_connection *evcon) {
    dconn *e = find(d, evcon);
    if (!e) return;
    e->c = TOMB;
    e->busy = 0;
    e->reading = 0;
    d->n--;
}

void tr_drain_stop(tr_drain *d) {
    if (d) d->stopping = 1;
}

static int idle(const dconn *e) {
    if (e->busy || e->reading) return 0;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(e->c);
    if (!bev) return 0;
    if (evbuffer_get_length(bufferevent_get_input(bev)) || evbuffer_get_length(bufferevent_get_output(bev)))
        return 0;
    int pending = 0;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0 && ioctl(fd, FIONREAD, &pending) == 0 && pending > 0) return 0; /* a request not read yet */
    return 1;
}

unsigned tr_drain_idle_close(tr_drain *d) {
    if (!d || !d->n) return 0;
    /* gather first: freeing a connection runs the close callback, which edits the map */
    struct evhttp_connection **close = malloc(d->n * sizeof *close);
    size_t k = 0;
    for (size_t i = 0; close && i < d->cap; i++)
        if (d->v[i].c && d->v[i].c != TOMB && idle(&d->v[i])) close[k++] = d->v[i].c;
    for (size_t i = 0; i < k; i++)
        evhttp_connection_free(close[i]);
    free(close);
    return (unsigned)d->n;
}
