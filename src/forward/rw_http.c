/* Remote write out: a small HTTP/1.1 client (blocking sockets on the shard threads, never on
 * the event loop), the response-head parser (fuzzed: tests/fuzz/fuzz_rw_http.c) and the
 * back-off rule. */
#include "rw_int.h"

#include "tls/tls.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)

int rw_url_parse(const char *url, rw_url *u, char *err, size_t errlen) {
    memset(u, 0, sizeof *u);
    u->https = strncasecmp(url, "https://", 8) == 0;
    if (!u->https && strncasecmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "remote write URL %s: must start with http:// or https://", url);
        return -1;
    }
    const char *h = url + (u->https ? 8 : 7), *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    const char *hp = h, *pp = NULL;
    size_t hostlen = hl;
    if (hl && h[0] == '[') {
        const char *rb = memchr(h, ']', hl);
        if (!rb) goto bad;
        hp = h + 1;
        hostlen = (size_t)(rb - hp);
        if (rb + 1 < h + hl) {
            if (rb[1] != ':') goto bad;
            pp = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', hl);
        if (colon) {
            hostlen = (size_t)(colon - h);
            pp = colon + 1;
        }
    }
    if (!hostlen || hostlen >= sizeof u->host || strchr(url, '@')) goto bad;
    memcpy(u->host, hp, hostlen);
    if (pp) {
        size_t pl = (size_t)(h + hl - pp);
        if (!pl || pl >= sizeof u->port) goto bad;
        for (size_t i = 0; i < pl; i++)
            if (!isdigit((unsigned char)pp[i])) goto bad;
        memcpy(u->port, pp, pl);
    } else {
        strcpy(u->port, u->https ? "443" : "80");
    }
    snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/");
    if (strlen(slash ? slash : "/") >= sizeof u->path) goto bad;
    for (const char *c = u->path; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) goto bad;
    return 0;
bad:
    snprintf(err, errlen,
             "remote write URL %s: not of the form http[s]://host[:port]/path (credentials go in the "
             "target's basic_auth)",
             url);
    return -1;
}

static int64_t parse_http_date(const char *s, size_t n) {
    char b[64];
    if (n >= sizeof b) return -1;
    memcpy(b, s, n);
    b[n] = 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(b, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!e || *e) return -1;
    return (int64_t)timegm(&tm) * 1000;
}

long rw_http_parse_head(const char *p, size_t n, int64_t now_ms, rw_http_resp *r) {
    r->status = 0;
    r->content_length = -1;
    r->chunked = 0;
    r->close = 0;
    r->retry_after_ms = -1;
    size_t lim = n < MAX_HEAD ? n : MAX_HEAD;
    const char *end = NULL;
    for (size_t i = 0; i + 3 < lim; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            end = p + i + 2;
            break;
        }
    if (!end) return n >= MAX_HEAD ? -1 : 0;
    /* status line: HTTP/1.x NNN reason */
    if (end - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    int http10 = p[7] == '0';
    if (!isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]))
        return -1;
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (r->status < 100) return -1;
    r->close = http10;
    const char *l = memchr(p, '\n', (size_t)(end - p));
    if (!l) return -1;
    l++;
    while (l < end) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        if (!nl || nl == l || nl[-1] != '\r') return -1;
        const char *le = nl - 1; /* at \r */
        const char *colon = memchr(l, ':', (size_t)(le - l));
        if (!colon || colon == l) return -1;
        size_t nlen = (size_t)(colon - l);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
        if (nlen == 14 && strncasecmp(l, "Content-Length", 14) == 0) {
            if (!vl || vl > 15) return -1;
            int64_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                if (!isdigit((unsigned char)v[i])) return -1;
                x = x * 10 + (v[i] - '0');
            }
            r->content_length = x;
        } else if (nlen == 17 && strncasecmp(l, "Transfer-Encoding", 17) == 0) {
            if (vl >= 7 && strncasecmp(ve - 7, "chunked", 7) == 0) r->chunked = 1;
        } else if (nlen == 10 && strncasecmp(l, "Connection", 10) == 0) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0) r->close = 1;
            if (vl == 10 && strncasecmp(v, "keep-alive", 10) == 0) r->close = 0;
        } else if (nlen == 11 && strncasecmp(l, "Retry-After", 11) == 0) {
            int digits = vl > 0 && vl <= 9;
            for (size_t i = 0; digits && i < vl; i++)
                digits = isdigit((unsigned char)v[i]);
            if (digits) {
                int64_t x = 0;
                for (size_t i = 0; i < vl; i++)
                    x = x * 10 + (v[i] - '0');
                r->retry_after_ms = x * 1000;
            } else {
                int64_t at = parse_http_date(v, vl);
                if (at >= 0) r->retry_after_ms = at > now_ms ? at - now_ms : 0;
            }
        }
        l = nl + 1;
    }
    return (long)(end - p + 2);
}

int64_t rw_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, int64_t retry_after_ms) {
    int64_t d = min_ms > 0 ? min_ms : 1;
    for (unsigned i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms) d = max_ms;
    /* the server's word wins when it asks for longer (a Retry-After of hours is capped, as
     * Prometheus does not wait past its own maximum either... but no less than asked up to 5 min) */
    if (retry_after_ms >= 0) {
        int64_t cap = 5 * 60 * 1000;
        int64_t ra = retry_after_ms < cap ? retry_after_ms : cap;
        if (ra > d) d = ra;
    }
    return d;
}

int rw_url_tls_setup(rw_url *u, const rw_target_config *c, char *err, size_t errlen) {
    if (!u->https) return 0;
    tr_tls_client_opts o = {.ca_file = c->tls_ca_file,
                            .cert_file = c->tls_cert_file,
                            .key_file = c->tls_key_file,
                            .server_name = c->tls_server_name,
                            .insecure = c->tls_insecure};
    char e[600];
    if (!(u->tls = tr_tls_client_new(&o, e, sizeof e))) {
        snprintf(err, errlen, "remote write %s: tls_config: %s", c->url, e);
        return -1;
    }
    return 0;
}

void rw_url_free(rw_url *u) {
    tr_tls_client_free(u->tls);
    u->tls = NULL;
}

void rw_conn_close(rw_conn *c) {
    tr_tls_conn_free(c->tls);
    c->tls = NULL;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int dial(const rw_url *u, int64_t timeout_ms, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(u->host, u->port, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "resolve %s: %s", u->host, gai_strerror(g));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int pr = poll(&pf, 1, (int)timeout_ms);
            socklen_t sl = sizeof e;
            if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 && e == 0) break;
            if (pr == 0) e = ETIMEDOUT;
        } else {
            e = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "connect %s:%s: %s", u->host, u->port, strerror(e ? e : ECONNREFUSED));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* poll-bounded I/O on a non-blocking socket */
static int io_wait(int fd, short ev, int64_t deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t left = deadline - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    if (left <= 0) return -1;
    struct pollfd pf = {.fd = fd, .events = ev};
    return poll(&pf, 1, (int)left) == 1 ? 0 : -1;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline) {
    int64_t l = deadline - now_ms();
    return l <= 0 ? 0 : l > INT32_MAX ? INT32_MAX : (int)l;
}

static int send_all(rw_conn *c, const void *p, size_t n, int64_t deadline) {
    if (c->tls) return left_ms(deadline) ? tr_tls_write(c->tls, p, n, left_ms(deadline)) : -1;
    int fd = c->fd;
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k > 0) {
            b += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (io_wait(fd, POLLOUT, deadline) != 0) return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* head, headers, the blank line and the body: one writev when the socket takes it all */
static int send_parts(rw_conn *c, const char *head, size_t hl, const char *headers, const uint8_t *body,
                      size_t len, int64_t deadline) {
    struct iovec v[4] = {
        {(void *)head, hl}, {(void *)headers, strlen(headers)}, {(void *)"\r\n", 2}, {(void *)body, len}};
    size_t total = hl + v[1].iov_len + 2 + len;
    struct msghdr m = {.msg_iov = v, .msg_iovlen = 4};
    ssize_t k = c->tls ? 0 : sendmsg(c->fd, &m, MSG_NOSIGNAL);
    if (k == (ssize_t)total) return 0;
    if (k < 0 && errno != EAGAIN && errno != EINTR) return -1;
    size_t done = k > 0 ? (size_t)k : 0;
    /* the rest piece by piece */
    for (int i = 0; i < 4; i++) {
        if (done >= v[i].iov_len) {
            done -= v[i].iov_len;
            continue;
        }
        if (send_all(c, (const char *)v[i].iov_base + done, v[i].iov_len - done, deadline) != 0) return -1;
        done = 0;
    }
    return 0;
}

/* a read buffer */
typedef struct rbuf {
    char *p;
    size_t len, cap;
} rbuf;

static int fill(rw_conn *c, rbuf *b, int64_t deadline) {
    if (b->len == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        if (nc > (size_t)MAX_HEAD * 4) return -1;
        char *np = realloc(b->p, nc);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    if (c->tls) {
        long k =
            left_ms(deadline) ? tr_tls_read(c->tls, b->p + b->len, b->cap - b->len, left_ms(deadline)) : -1;
        if (k <= 0) return -1;
        b->len += (size_t)k;
        return 0;
    }
    int fd = c->fd;
    for (;;) {
        ssize_t k = recv(fd, b->p + b->len, b->cap - b->len, 0);
        if (k > 0) {
            b->len += (size_t)k;
            return 0;
        }
        if (k == 0) return -1;
        if (errno != EAGAIN && errno != EINTR) return -1;
        if (io_wait(fd, POLLIN, deadline) != 0) return -1;
    }
}

static void consume(rbuf *b, size_t n, char *keep, size_t keepcap, size_t *kept) {
    if (keep && *kept + 1 < keepcap) {
        size_t k = n < keepcap - 1 - *kept ? n : keepcap - 1 - *kept;
        memcpy(keep + *kept, b->p, k);
        *kept += k;
        keep[*kept] = 0;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* Reads and discards (keeping a prefix) a body of `len` bytes. */
static int skip_body(rw_conn *c, rbuf *b, int64_t len, int64_t deadline, char *keep, size_t keepcap,
                     size_t *kept) {
    while (len > 0) {
        if (!b->len && fill(c, b, deadline) != 0) return -1;
        size_t k = (size_t)len < b->len ? (size_t)len : b->len;
        consume(b, k, keep, keepcap, kept);
        len -= (int64_t)k;
    }
    return 0;
}

static int read_line(rw_conn *conn, rbuf *b, int64_t deadline, char *line, size_t cap) {
    for (;;) {
        char *nl = b->len ? memchr(b->p, '\n', b->len) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - b->p) + 1;
            size_t c = l < cap ? l : cap - 1;
            memcpy(line, b->p, c);
            line[c] = 0;
            consume(b, l, NULL, 0, NULL);
            return 0;
        }
        if (b->len > 4096 || fill(conn, b, deadline) != 0) return -1;
    }
}

int rw_http_post(rw_conn *c, const rw_url *u, const char *headers, const uint8_t *body, size_t len,
                 int64_t timeout_ms, rw_http_resp *r, char *errbody, size_t errcap, char *err,
                 size_t errlen) {
    int64_t deadline = now_ms() + timeout_ms;
    const char *dport = u->https ? "443" : "80";
    if (errcap) errbody[0] = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = c->fd >= 0;
        if (c->fd < 0) {
            if ((c->fd = dial(u, timeout_ms, err, errlen)) < 0) return -1;
            if (u->tls &&
                !(c->tls = tr_tls_connect(u->tls, c->fd, u->host, left_ms(deadline), err, errlen))) {
                rw_conn_close(c);
                return -1;
            }
        }
        char head[4096];
        int hl =
            snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nContent-Length: %zu\r\n",
                     u->path, strchr(u->host, ':') ? "[" : "", u->host, strchr(u->host, ':') ? "]" : "",
                     strcmp(u->port, dport) ? ":" : "", strcmp(u->port, dport) ? u->port : "", len);
        rbuf rb = {0};
        int ok = hl > 0 && (size_t)hl < sizeof head &&
                 send_parts(c, head, (size_t)hl, headers, body, len, deadline) == 0;
        long h = 0;
        while (ok) {
            h = rw_http_parse_head(rb.p ? rb.p : "", rb.len, now_ms(), r);
            if (h != 0) break;
            if (fill(c, &rb, deadline) != 0) ok = 0;
        }
        if (ok && h < 0) {
            snprintf(err, errlen, "malformed HTTP response from %s:%s", u->host, u->port);
            free(rb.p);
            rw_conn_close(c);
            return -1;
        }
        if (!ok) {
            int got_nothing = rb.len == 0;
            free(rb.p);
            rw_conn_close(c);
            /* a kept-alive connection the server had closed: one fresh try */
            if (reused && got_nothing && attempt == 0) continue;
            snprintf(err, errlen, "HTTP exchange with %s:%s failed: %s", u->host, u->port,
                     errno ? strerror(errno) : "connection closed");
            return -1;
        }
        consume(&rb, (size_t)h, NULL, 0, NULL);
        size_t kept = 0;
        int bodyok = 1;
        if (r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200)) {
        } else if (r->chunked) {
            char line[128];
            for (;;) {
                if (read_line(c, &rb, deadline, line, sizeof line) != 0) {
                    bodyok = 0;
                    break;
                }
                char *e;
                unsigned long long cl = strtoull(line, &e, 16);
                if (e == line || cl > (1ull << 30)) {
                    bodyok = 0;
                    break;
                }
                if (cl == 0) { /* trailers until the blank line */
                    do {
                        if (read_line(c, &rb, deadline, line, sizeof line) != 0) bodyok = 0;
                    } while (bodyok && strcmp(line, "\r\n") != 0);
                    break;
                }
                if (skip_body(c, &rb, (int64_t)cl + 2, deadline, errbody, errcap, &kept) != 0) {
                    bodyok = 0;
                    break;
                }
            }
        } else if (r->content_length >= 0) {
            bodyok = skip_body(c, &rb, r->content_length, deadline, errbody, errcap, &kept) == 0;
        } else {
            /* until close */
            while (fill(c, &rb, deadline) == 0)
                consume(&rb, rb.len, errbody, errcap, &kept);
            consume(&rb, rb.len, errbody, errcap, &kept);
            r->close = 1;
        }
        free(rb.p);
        if (!bodyok || r->close) rw_conn_close(c);
        return 0;
    }
    return -1;
}
