/* OTLP forwarding senders: one thread per endpoint reads its disk queue and delivers each
 * record, as an OTLP/gRPC call over cleartext HTTP/2 (nghttp2 client session on a blocking
 * socket) or as an OTLP/HTTP POST over HTTP/1.1 keep-alive. Retries with exponential back-off
 * (Retry-After honoured) on the errors the OTLP specification calls retryable; a permanent
 * rejection drops the record and counts it. The position moves only after an answer. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "otlp_fwd.h"
#include "tls/tls.h"
#include "util/buf.h"
#include "util/gzip.h"
#include "util/log.h"
#include "util/selfmon.h"

#define MAX_HEADERS 16
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define RETRY_AFTER_MAX_MS 60000
#define MAX_RESPONSE_HEAD 65536
#define MAX_RESPONSE_BODY (4 << 20)

typedef struct endpoint {
    char url[512]; /* as given, without options: the metric label */
    int grpc;
    char host[256], port[16], authority[300], prefix[256];
    char *hname[MAX_HEADERS], *hval[MAX_HEADERS];
    int nheaders;
    int gzip;
    int timeout_s;
    int skip[2]; /* signals=: metrics (0) or traces (1) not sent to this endpoint */
    int tls;     /* https:// or grpcs:// */
    char *ca, *cert, *key, *server_name;
    int insecure;
} endpoint;

typedef enum { SEND_OK, SEND_RETRY, SEND_PERMANENT } result;

typedef struct sender {
    endpoint ep;
    otlp_fwdq *q;
    pthread_t th;
    int started;
    pthread_mutex_t mu; /* guards fd for shutdown() from otlp_fwd_free, and stop */
    pthread_cond_t cv;
    int stop;
    int fd;
    tr_tls_client *tlsctx; /* tls endpoints: built once from the files */
    tr_tls_conn *tls;      /* over fd */
    nghttp2_session *h2;
    long retry_after_ms;
    char why[640];
    uint64_t seen_dropped_items, seen_dropped_bytes;
    tr_metric *queued_items, *queued_bytes, *sent_items, *sent_bytes, *failed_items, *retries, *dropped_items,
        *dropped_bytes, *queue_bytes;
} sender;

struct otlp_fwd {
    sender *s;
    int n;
};

/* ---- endpoint specs ---- */

static void free_endpoint(endpoint *e) {
    for (int i = 0; i < e->nheaders; i++) {
        free(e->hname[i]);
        free(e->hval[i]);
    }
    e->nheaders = 0;
    free(e->ca);
    free(e->cert);
    free(e->key);
    free(e->server_name);
    e->ca = e->cert = e->key = e->server_name = NULL;
}

/* ca=FILE, cert=FILE, key=FILE, server_name=NAME, insecure */
static int is_tls_option(const char *opt) {
    return strncmp(opt, "ca=", 3) == 0 || strncmp(opt, "cert=", 5) == 0 || strncmp(opt, "key=", 4) == 0 ||
           strncmp(opt, "server_name=", 12) == 0 || strcmp(opt, "insecure") == 0;
}

static int parse_endpoint(const char *spec, endpoint *e, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    e->timeout_s = 10;
    size_t ul = strcspn(spec, ";");
    if (ul >= sizeof e->url) {
        snprintf(err, errlen, "--otlp-forward-endpoint: URL too long");
        return -1;
    }
    memcpy(e->url, spec, ul);
    e->url[ul] = 0;
    const char *rest;
    if (strncmp(e->url, "grpc://", 7) == 0) {
        e->grpc = 1;
        rest = e->url + 7;
    } else if (strncmp(e->url, "http://", 7) == 0) {
        rest = e->url + 7;
    } else if (strncmp(e->url, "grpcs://", 8) == 0) {
        e->grpc = e->tls = 1;
        rest = e->url + 8;
    } else if (strncmp(e->url, "https://", 8) == 0) {
        e->tls = 1;
        rest = e->url + 8;
    } else {
        snprintf(err, errlen,
                 "--otlp-forward-endpoint %s: want grpc[s]://host:port or http[s]://host:port[/path]",
                 e->url);
        return -1;
    }
    size_t hp = strcspn(rest, "/");
    snprintf(e->prefix, sizeof e->prefix, "%s", rest + hp);
    size_t pl = strlen(e->prefix);
    while (pl && e->prefix[pl - 1] == '/')
        e->prefix[--pl] = 0;
    if (e->grpc && pl) {
        snprintf(err, errlen, "--otlp-forward-endpoint %s: a grpc:// endpoint has no path", e->url);
        return -1;
    }
    char hostport[300];
    if (hp >= sizeof hostport) hp = sizeof hostport - 1;
    memcpy(hostport, rest, hp);
    hostport[hp] = 0;
    snprintf(e->authority, sizeof e->authority, "%s", hostport);
    const char *colon = hostport[0] == '[' ? strstr(hostport, "]:") : strrchr(hostport, ':');
    const char *port = colon ? colon + (hostport[0] == '[' ? 2 : 1) : (e->grpc ? "4317" : "4318");
    size_t hl = colon ? (size_t)(colon - hostport) + (hostport[0] == '[' ? 1 : 0) : strlen(hostport);
    const char *h = hostport;
    if (h[0] == '[') h++, hl -= 2;
    if (!hl || hl >= sizeof e->host || !*port || strlen(port) >= sizeof e->port ||
        strspn(port, "0123456789") != strlen(port)) {
        snprintf(err, errlen, "--otlp-forward-endpoint %s: invalid host or port", e->url);
        return -1;
    }
    memcpy(e->host, h, hl);
    e->host[hl] = 0;
    snprintf(e->port, sizeof e->port, "%s", port);
    const char *o = spec + ul;
    while (*o == ';') {
        o++;
        size_t l = strcspn(o, ";");
        char opt[1024];
        if (l >= sizeof opt) {
            snprintf(err, errlen, "--otlp-forward-endpoint %s: option too long", e->url);
            goto fail;
        }
        memcpy(opt, o, l);
        opt[l] = 0;
        o += l;
        if (strncmp(opt, "header=", 7) == 0) {
            char *name = opt + 7, *eq = strchr(name, '=');
            if (!eq || eq == name || e->nheaders == MAX_HEADERS) {
                snprintf(err, errlen, "--otlp-forward-endpoint %s: want header=Name=value (at most %d)",
                         e->url, MAX_HEADERS);
                goto fail;
            }
            *eq = 0;
            for (char *c = name; *c; c++) {
                if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') {
                    snprintf(err, errlen, "--otlp-forward-endpoint %s: invalid header name %s", e->url, name);
                    goto fail;
                }
                *c = (char)tolower((unsigned char)*c); /* HTTP/2 wants lower case; HTTP/1.1 does not mind */
            }
            for (char *c = eq + 1; *c; c++)
                if ((unsigned char)*c < 0x20) {
                    snprintf(err, errlen, "--otlp-forward-endpoint %s: control character in header %s",
                             e->url, name);
                    goto fail;
                }
            e->hname[e->nheaders] = strdup(name);
            e->hval[e->nheaders] = strdup(eq + 1);
            e->nheaders++;
        } else if (strcmp(opt, "signals=traces") == 0 || strcmp(opt, "signals=metrics") == 0) {
            int traces = opt[8] == 't';
            e->skip[0] = traces;
            e->skip[1] = !traces;
        } else if (strcmp(opt, "compression=gzip") == 0) {
            e->gzip = 1;
        } else if (strcmp(opt, "compression=none") == 0) {
            e->gzip = 0;
        } else if (strncmp(opt, "timeout=", 8) == 0 && atoi(opt + 8) > 0 && atoi(opt + 8) <= 600) {
            e->timeout_s = atoi(opt + 8);
        } else if (is_tls_option(opt)) {
            if (!e->tls) {
                snprintf(err, errlen, "--otlp-forward-endpoint %s: %s is for https:// and grpcs:// endpoints",
                         e->url, opt);
                goto fail;
            }
            char *eq = strchr(opt, '=');
            char **dst = opt[0] == 'k'   ? &e->key
                         : opt[0] == 's' ? &e->server_name
                         : opt[1] == 'a' ? &e->ca
                                         : &e->cert;
            if (!eq) {
                e->insecure = 1;
            } else if (!eq[1]) {
                snprintf(err, errlen, "--otlp-forward-endpoint %s: %s needs a value", e->url, opt);
                goto fail;
            } else {
                free(*dst);
                if (!(*dst = strdup(eq + 1))) {
                    snprintf(err, errlen, "out of memory");
                    goto fail;
                }
            }
        } else {
            snprintf(
                err, errlen,
                "--otlp-forward-endpoint %s: unknown option %s (header=Name=value, compression=gzip|none, "
                "timeout=<seconds>, signals=traces|metrics; with TLS ca=, cert=, key=, server_name=, "
                "insecure)",
                e->url, opt);
            goto fail;
        }
    }
    if (!e->cert != !e->key) {
        snprintf(err, errlen, "--otlp-forward-endpoint %s: cert= and key= go together", e->url);
        goto fail;
    }
    return 0;
fail:
    free_endpoint(e);
    return -1;
}

/* The TLS context of a tls endpoint (the files are read and checked here). 0 or -1 (err). */
static int endpoint_tls(const endpoint *e, tr_tls_client **out, char *err, size_t errlen) {
    *out = NULL;
    if (!e->tls) return 0;
    tr_tls_client_opts o = {.ca_file = e->ca,
                            .cert_file = e->cert,
                            .key_file = e->key,
                            .server_name = e->server_name,
                            .insecure = e->insecure,
                            .alpn = e->grpc ? "h2" : "http/1.1"};
    char m[600];
    if (!(*out = tr_tls_client_new(&o, m, sizeof m))) {
        snprintf(err, errlen, "--otlp-forward-endpoint %s: %s", e->url, m);
        return -1;
    }
    return 0;
}

int otlp_fwd_check_endpoint(const char *spec, char *err, size_t errlen) {
    endpoint e;
    if (parse_endpoint(spec, &e, err, errlen)) return -1;
    tr_tls_client *c;
    int rc = endpoint_tls(&e, &c, err, errlen);
    tr_tls_client_free(c);
    free_endpoint(&e);
    return rc;
}

/* ---- connection ---- */

static void disconnect(sender *s) {
    if (s->h2) {
        nghttp2_session_del(s->h2);
        s->h2 = NULL;
    }
    tr_tls_conn_free(s->tls);
    s->tls = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    pthread_mutex_unlock(&s->mu);
}

static int connect_ep(sender *s) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(s->ep.host, s->ep.port, &hints, &res);
    if (g) {
        snprintf(s->why, sizeof s->why, "resolve %s: %s", s->ep.host, gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {.tv_sec = s->ep.timeout_s};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect() too */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        snprintf(s->why, sizeof s->why, "connect %s: %s", s->ep.authority, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    pthread_mutex_lock(&s->mu);
    s->fd = fd;
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (stop) {
        disconnect(s);
        return -1;
    }
    if (s->tlsctx) {
        char e[600];
        if (!(s->tls = tr_tls_connect(s->tlsctx, fd, s->ep.host, s->ep.timeout_s * 1000, e, sizeof e))) {
            snprintf(s->why, sizeof s->why, "%s", e);
            disconnect(s);
            return -1;
        }
        const char *alpn = tr_tls_conn_alpn(s->tls);
        if (s->ep.grpc && *alpn && strcmp(alpn, "h2") != 0) {
            snprintf(s->why, sizeof s->why, "TLS: the server chose ALPN %s, not h2", alpn);
            disconnect(s);
            return -1;
        }
    }
    return 0;
}

static int write_all(sender *s, const void *p, size_t n) {
    if (s->tls) return tr_tls_write(s->tls, p, n, s->ep.timeout_s * 1000);
    int fd = s->fd;
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* > 0 bytes, 0 at the peer's close, -1 on an error */
static ssize_t read_some(sender *s, void *buf, size_t n) {
    if (s->tls) return tr_tls_read(s->tls, buf, n, s->ep.timeout_s * 1000);
    ssize_t r;
    do
        r = recv(s->fd, buf, n, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

static long parse_retry_after(const char *v) {
    if (!v) return 0;
    while (*v == ' ')
        v++;
    if (!isdigit((unsigned char)*v)) return 0; /* an HTTP date: fall back to our own back-off */
    long sec = strtol(v, NULL, 10);
    return sec > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : sec * 1000;
}

static result classify_http(sender *s, int status) {
    if (status >= 200 && status < 300) return SEND_OK;
    snprintf(s->why, sizeof s->why, "HTTP status %d", status);
    /* the OTLP/HTTP specification's retryable codes */
    if (status == 429 || status == 502 || status == 503 || status == 504) return SEND_RETRY;
    return SEND_PERMANENT;
}

/* ---- OTLP/HTTP over HTTP/1.1 ---- */

typedef struct rbuf {
    char *d;
    size_t len, cap;
} rbuf;

static int fill(sender *s, rbuf *b, size_t want) {
    if (b->len + want > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + want)
            nc *= 2;
        char *nd = realloc(b->d, nc);
        if (!nd) return -1;
        b->d = nd;
        b->cap = nc;
    }
    ssize_t r = read_some(s, b->d + b->len, b->cap - b->len);
    if (r <= 0) {
        snprintf(s->why, sizeof s->why, "read: %s", r == 0 ? "connection closed" : strerror(errno));
        return -1;
    }
    b->len += (size_t)r;
    return 0;
}

/* Reads one response; returns its status or -1 (connection unusable). *keep: keep-alive. */
static int read_http_response(sender *s, int *keep) {
    rbuf b = {0};
    int status = -1;
    char *eoh;
    for (;;) {
        if (b.len && (eoh = memmem(b.d, b.len, "\r\n\r\n", 4))) break;
        if (b.len > MAX_RESPONSE_HEAD || fill(s, &b, 4096)) goto out;
    }
    size_t head = (size_t)(eoh - b.d) + 4;
    *eoh = 0;
    int minor = 0;
    if (sscanf(b.d, "HTTP/1.%d %d", &minor, &status) != 2) {
        snprintf(s->why, sizeof s->why, "not an HTTP/1.x response");
        status = -1;
        goto out;
    }
    *keep = minor >= 1;
    long long clen = -1;
    int chunked = 0;
    s->retry_after_ms = 0;
    for (char *line = strstr(b.d, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "Content-Length:", 15) == 0) clen = strtoll(line + 15, NULL, 10);
        if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strcasestr(line, "chunked")) chunked = 1;
        if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line, "close")) *keep = 0;
        if (strncasecmp(line, "Retry-After:", 12) == 0) s->retry_after_ms = parse_retry_after(line + 12);
    }
    /* consume the body (the partial-success details are not used) */
    size_t pos = head;
    if (chunked) {
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(b.d + pos, b.len - pos, "\r\n", 2))) {
                if (b.len - pos > 64 || fill(s, &b, 4096)) goto bad;
            }
            unsigned long n = strtoul(b.d + pos, NULL, 16);
            if (n > MAX_RESPONSE_BODY) goto bad;
            pos = (size_t)(crlf - b.d) + 2;
            while (b.len - pos < n + 2)
                if (fill(s, &b, n + 2)) goto bad;
            pos += n + 2;
            if (n == 0) break; /* no trailers expected; "0\r\n\r\n" */
        }
    } else if (clen >= 0) {
        if (clen > MAX_RESPONSE_BODY) goto bad;
        while (b.len - pos < (size_t)clen)
            if (fill(s, &b, (size_t)clen)) goto bad;
    } else {
        *keep = 0; /* body ends at close: we do not need it */
    }
    goto out;
bad:
    *keep = 0;
out:
    free(b.d);
    return status;
}

static result send_http(sender *s, const otlp_fwdq_rec *r) {
    tr_buf body;
    tr_buf_init(&body, 0);
    const uint8_t *p = r->payload;
    size_t n = r->len;
    if (s->ep.gzip) {
        if (tr_gzip(r->payload, r->len, &body) != 0) {
            tr_buf_free(&body);
            snprintf(s->why, sizeof s->why, "out of memory");
            return SEND_RETRY;
        }
        p = (const uint8_t *)body.data;
        n = body.len;
    }
    tr_buf h;
    tr_buf_init(&h, 0);
    tr_buf_printf(&h,
                  "POST %s/v1/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\n"
                  "Content-Length: %zu\r\nUser-Agent: tricorder-otlp-forward\r\n%s",
                  s->ep.prefix, r->signal ? "traces" : "metrics", s->ep.authority, n,
                  s->ep.gzip ? "Content-Encoding: gzip\r\n" : "");
    for (int i = 0; i < s->ep.nheaders; i++)
        tr_buf_printf(&h, "%s: %s\r\n", s->ep.hname[i], s->ep.hval[i]);
    tr_buf_puts(&h, "\r\n");
    result res = SEND_RETRY;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* a kept-alive connection the server closed meanwhile fails at once: try a fresh one */
        int reused = s->fd >= 0;
        if (!reused && connect_ep(s)) break;
        int keep = 0, st = -1;
        if (write_all(s, h.data, h.len) == 0 && write_all(s, p, n) == 0)
            st = read_http_response(s, &keep);
        else
            snprintf(s->why, sizeof s->why, "write: %s", strerror(errno));
        if (st < 0) {
            disconnect(s);
            if (reused) continue;
            break;
        }
        if (!keep) disconnect(s);
        res = classify_http(s, st);
        break;
    }
    tr_buf_free(&h);
    tr_buf_free(&body);
    return res;
}

/* ---- OTLP/gRPC over HTTP/2 (h2c, prior knowledge) ---- */

typedef struct h2call {
    sender *s;
    int32_t stream;
    const uint8_t *body;
    size_t len, off;
    int closed;
    uint32_t rst;
    int http_status, grpc_status;
    char grpc_message[160];
} h2call;

static ssize_t h2_send(nghttp2_session *ss, const uint8_t *data, size_t len, int flags, void *u) {
    h2call *c = u;
    if (!c) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return write_all(c->s, data, len) == 0 ? (ssize_t)len : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int h2_header(nghttp2_session *ss, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *u) {
    h2call *c = u;
    if (!c || f->hd.stream_id != c->stream) return 0;
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        c->http_status = atoi((const char *)value);
    else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        c->grpc_status = atoi((const char *)value);
    else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0)
        snprintf(c->grpc_message, sizeof c->grpc_message, "%.*s", (int)vl, (const char *)value);
    else if (nl == 11 && memcmp(name, "retry-after", 11) == 0)
        c->s->retry_after_ms = parse_retry_after((const char *)value);
    return 0;
}

static int h2_close(nghttp2_session *ss, int32_t stream, uint32_t code, void *u) {
    h2call *c = u;
    if (c && stream == c->stream) {
        c->closed = 1;
        c->rst = code;
    }
    return 0;
}

static ssize_t h2_read(nghttp2_session *ss, int32_t stream, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *u) {
    h2call *c = u;
    size_t n = c->len - c->off < len ? c->len - c->off : len;
    memcpy(buf, c->body + c->off, n);
    c->off += n;
    if (c->off == c->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int h2_open(sender *s, h2call *c) {
    if (connect_ep(s)) return -1;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) return -1;
    nghttp2_session_callbacks_set_send_callback(cb, h2_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_close);
    int rc = nghttp2_session_client_new(&s->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc) {
        s->h2 = NULL;
        return -1;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, iv, 1);
    return 0;
}

/* gRPC codes the OTLP specification calls retryable */
static int grpc_retryable(int code) {
    return code == 1 || code == 4 || code == 8 || code == 10 || code == 11 || code == 14 || code == 15;
}

static result send_grpc(sender *s, const otlp_fwdq_rec *r) {
    tr_buf msg;
    tr_buf_init(&msg, 0);
    uint8_t pre[5] = {0};
    tr_buf_append(&msg, pre, 5);
    if (s->ep.gzip ? tr_gzip(r->payload, r->len, &msg) != 0 : tr_buf_append(&msg, r->payload, r->len) != 0) {
        tr_buf_free(&msg);
        snprintf(s->why, sizeof s->why, "out of memory");
        return SEND_RETRY;
    }
    size_t mlen = msg.len - 5;
    uint8_t *m = (uint8_t *)msg.data;
    m[0] = (uint8_t)s->ep.gzip;
    m[1] = (uint8_t)(mlen >> 24);
    m[2] = (uint8_t)(mlen >> 16);
    m[3] = (uint8_t)(mlen >> 8);
    m[4] = (uint8_t)mlen;
    h2call c = {.s = s, .body = m, .len = msg.len, .http_status = 0, .grpc_status = -1};
    result res = SEND_RETRY;
    s->retry_after_ms = 0;
    int reused = s->h2 != NULL;
    if (reused) nghttp2_session_set_user_data(s->h2, &c);
    if (!reused && h2_open(s, &c)) goto out;
    const char *path = r->signal ? "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                                 : "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv nv[8 + MAX_HEADERS] = {NV(":method", "POST"),
                                      NV(":scheme", s->ep.tls ? "https" : "http"),
                                      NV(":path", path),
                                      NV(":authority", s->ep.authority),
                                      NV("content-type", "application/grpc"),
                                      NV("te", "trailers"),
                                      NV("user-agent", "tricorder-otlp-forward")};
    size_t nnv = 7;
    if (s->ep.gzip) nv[nnv++] = (nghttp2_nv)NV("grpc-encoding", "gzip");
    for (int i = 0; i < s->ep.nheaders; i++)
        nv[nnv++] = (nghttp2_nv)NV(s->ep.hname[i], s->ep.hval[i]);
#undef NV
    nghttp2_data_provider dp = {.read_callback = h2_read};
    c.stream = nghttp2_submit_request(s->h2, NULL, nv, nnv, &dp, &c);
    if (c.stream < 0) {
        snprintf(s->why, sizeof s->why, "HTTP/2: %s", nghttp2_strerror(c.stream));
        disconnect(s);
        goto out;
    }
    uint8_t buf[16384];
    while (!c.closed) {
        if (nghttp2_session_send(s->h2) != 0) {
            snprintf(s->why, sizeof s->why, "HTTP/2 write: %s", strerror(errno));
            break;
        }
        if (c.closed) break;
        if (!nghttp2_session_want_read(s->h2)) {
            snprintf(s->why, sizeof s->why, "HTTP/2: connection ended (GOAWAY)");
            break;
        }
        ssize_t n = read_some(s, buf, sizeof buf);
        if (n <= 0) {
            snprintf(s->why, sizeof s->why, "read: %s", n == 0 ? "connection closed" : strerror(errno));
            break;
        }
        ssize_t used = nghttp2_session_mem_recv(s->h2, buf, (size_t)n);
        if (used < 0) {
            snprintf(s->why, sizeof s->why, "HTTP/2: %s", nghttp2_strerror((int)used));
            break;
        }
    }
    if (!c.closed) {
        disconnect(s);
        goto out;
    }
    nghttp2_session_send(s->h2); /* window updates and the like; errors surface next time */
    if (!nghttp2_session_want_read(s->h2) && !nghttp2_session_want_write(s->h2)) disconnect(s);
    if (c.grpc_status == 0 && c.http_status == 200) {
        res = SEND_OK;
    } else if (c.grpc_status > 0) {
        snprintf(s->why, sizeof s->why, "grpc-status %d: %s", c.grpc_status, c.grpc_message);
        res = grpc_retryable(c.grpc_status) ? SEND_RETRY : SEND_PERMANENT;
    } else if (c.http_status && c.http_status != 200) {
        res = classify_http(s, c.http_status);
    } else {
        snprintf(s->why, sizeof s->why, "stream closed without grpc-status (error code %u)", c.rst);
    }
out:
    if (s->h2) nghttp2_session_set_user_data(s->h2, NULL);
    tr_buf_free(&msg);
    return res;
}

/* ---- the sender thread ---- */

static void update_queue_metrics(sender *s) {
    otlp_fwdq_stats st;
    otlp_fwdq_stats_get(s->q, &st);
    tr_gauge_set(s->queue_bytes, (double)st.pending_bytes);
    tr_counter_add(s->dropped_items, st.dropped_items - s->seen_dropped_items);
    tr_counter_add(s->dropped_bytes, st.dropped_bytes - s->seen_dropped_bytes);
    if (st.dropped_records && st.dropped_items != s->seen_dropped_items)
        TR_WARN("otlp forward queue full: oldest exports dropped", "endpoint=%s dropped_items_total=%" PRIu64,
                s->ep.url, st.dropped_items);
    s->seen_dropped_items = st.dropped_items;
    s->seen_dropped_bytes = st.dropped_bytes;
}

static int stopping(sender *s) {
    pthread_mutex_lock(&s->mu);
    int st = s->stop;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void pause_ms(sender *s, long ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&s->mu);
}

static void *sender_main(void *arg) {
    sender *s = arg;
    uint8_t *buf = NULL;
    size_t cap = 0;
    long backoff = BACKOFF_MIN_MS;
    int failing = 0;
    struct timespec last_sync;
    clock_gettime(CLOCK_MONOTONIC, &last_sync);
    while (!stopping(s)) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec != last_sync.tv_sec) { /* about once a second: see the README on durability */
            otlp_fwdq_sync(s->q);
            last_sync = now;
        }
        update_queue_metrics(s);
        otlp_fwdq_rec r;
        int got = otlp_fwdq_peek(s->q, 1000, &buf, &cap, &r);
        if (got < 0) {
            TR_ERROR("otlp forward queue read failed", "endpoint=%s errno=%d", s->ep.url, errno);
            pause_ms(s, 1000);
            continue;
        }
        if (got == 0) continue;
        result res = s->ep.grpc ? send_grpc(s, &r) : send_http(s, &r);
        if (res == SEND_RETRY) {
            if (stopping(s)) break;
            tr_counter_add(s->retries, 1);
            long wait = s->retry_after_ms > backoff ? s->retry_after_ms : backoff;
            if (!failing)
                TR_WARN("otlp forward failed, retrying", "endpoint=%s reason=\"%s\" retry_in_ms=%ld",
                        s->ep.url, s->why, wait);
            failing = 1;
            pause_ms(s, wait);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        if (res == SEND_OK) {
            tr_counter_add(s->sent_items, r.items);
            tr_counter_add(s->sent_bytes, r.len);
            if (failing) TR_INFO("otlp forward recovered", "endpoint=%s", s->ep.url);
        } else {
            tr_counter_add(s->failed_items, r.items);
            TR_WARN("otlp forward rejected, dropped", "endpoint=%s reason=\"%s\" items=%" PRIu32, s->ep.url,
                    s->why, r.items);
        }
        failing = 0;
        backoff = BACKOFF_MIN_MS;
        if (otlp_fwdq_commit(s->q) != 0)
            TR_ERROR("otlp forward position not saved", "endpoint=%s errno=%d", s->ep.url, errno);
    }
    update_queue_metrics(s);
    otlp_fwdq_sync(s->q);
    disconnect(s);
    free(buf);
    return NULL;
}

/* ---- set-up ---- */

static uint64_t fnv1a(const char *p) {
    uint64_t h = 1469598103934665603ULL;
    for (; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return h;
}

otlp_fwd *otlp_fwd_new(const char *specs, const char *dir, uint64_t max_queue_bytes, char *err,
                       size_t errlen) {
    otlp_fwd *f = calloc(1, sizeof *f);
    if (!f) goto oom;
    int n = 0;
    for (const char *p = specs; *p; p += strcspn(p, "\n"), p += *p == '\n')
        if (p[0] != '\n') n++;
    f->s = calloc((size_t)n + 1, sizeof *f->s);
    if (!f->s) goto oom;
    for (const char *p = specs; *p;) {
        size_t l = strcspn(p, "\n");
        char spec[2048];
        if (l >= sizeof spec) {
            snprintf(err, errlen, "--otlp-forward-endpoint: value too long");
            goto fail;
        }
        memcpy(spec, p, l);
        spec[l] = 0;
        p += l + (p[l] == '\n');
        if (!*spec) continue;
        sender *s = &f->s[f->n];
        s->fd = -1;
        if (parse_endpoint(spec, &s->ep, err, errlen)) goto fail;
        if (endpoint_tls(&s->ep, &s->tlsctx, err, errlen)) {
            free_endpoint(&s->ep);
            goto fail;
        }
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        f->n++;
        for (int i = 0; i < f->n - 1; i++)
            if (strcmp(f->s[i].ep.url, s->ep.url) == 0) {
                snprintf(err, errlen, "--otlp-forward-endpoint %s given twice", s->ep.url);
                goto fail;
            }
        char qd[4300];
        snprintf(qd, sizeof qd, "%s/%016" PRIx64, dir, fnv1a(s->ep.url));
        if (!(s->q = otlp_fwdq_open(qd, max_queue_bytes, err, errlen))) goto fail;
        char lb[600];
        snprintf(lb, sizeof lb, "endpoint=\"%s\"", s->ep.url);
        const char *l2 = lb;
        s->queued_items = tr_counter_new("tricorder_otlp_forward_queued_items_total",
                                         "Spans and metric points appended to the forwarding queue.", l2);
        s->queued_bytes = tr_counter_new("tricorder_otlp_forward_queued_bytes_total",
                                         "Protobuf bytes appended to the forwarding queue.", l2);
        s->sent_items = tr_counter_new("tricorder_otlp_forward_sent_items_total",
                                       "Spans and metric points the endpoint accepted.", l2);
        s->sent_bytes = tr_counter_new("tricorder_otlp_forward_sent_bytes_total",
                                       "Protobuf bytes (before compression) the endpoint accepted.", l2);
        s->failed_items =
            tr_counter_new("tricorder_otlp_forward_failed_items_total",
                           "Spans and metric points the endpoint rejected permanently (dropped).", l2);
        s->retries = tr_counter_new("tricorder_otlp_forward_retries_total",
                                    "Sends that failed with a retryable error and will be retried.", l2);
        s->dropped_items = tr_counter_new(
            "tricorder_otlp_forward_dropped_items_total",
            "Spans and metric points dropped unsent: queue full (oldest first) or corrupt on disk.", l2);
        s->dropped_bytes = tr_counter_new("tricorder_otlp_forward_dropped_bytes_total",
                                          "Queue bytes dropped unsent (see dropped_items).", l2);
        s->queue_bytes = tr_gauge_new("tricorder_otlp_forward_queue_bytes",
                                      "Bytes of unsent exports in the forwarding queue (on disk).", l2);
        otlp_fwdq_stats st;
        otlp_fwdq_stats_get(s->q, &st);
        tr_gauge_set(s->queue_bytes, (double)st.pending_bytes);
    }
    for (int i = 0; i < f->n; i++) {
        if (pthread_create(&f->s[i].th, NULL, sender_main, &f->s[i]) != 0) {
            snprintf(err, errlen, "cannot start the forwarding thread");
            goto fail;
        }
        f->s[i].started = 1;
    }
    return f;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    otlp_fwd_free(f);
    return NULL;
}

int otlp_fwd_enqueue(otlp_fwd *f, int signal, uint32_t items, const uint8_t *p, size_t n) {
    int rc = 0;
    for (int i = 0; i < f->n; i++) {
        sender *s = &f->s[i];
        if (s->ep.skip[signal ? 1 : 0]) continue;
        int a = otlp_fwdq_append(s->q, (uint8_t)signal, items, p, n);
        if (a < 0) {
            TR_ERROR("otlp forward queue write failed", "endpoint=%s errno=%d", s->ep.url, errno);
            rc = -1;
            continue;
        }
        tr_counter_add(s->queued_items, items);
        tr_counter_add(s->queued_bytes, n);
    }
    return rc;
}

void otlp_fwd_free(otlp_fwd *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        sender *s = &f->s[i];
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        if (s->fd >= 0) shutdown(s->fd, SHUT_RDWR); /* unblocks a send or a wait for the answer */
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (s->q) otlp_fwdq_wake(s->q);
    }
    for (int i = 0; i < f->n; i++) {
        sender *s = &f->s[i];
        if (s->started) pthread_join(s->th, NULL);
        otlp_fwdq_close(s->q);
        free_endpoint(&s->ep);
        tr_tls_client_free(s->tlsctx);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    free(f->s);
    free(f);
}
