/* TLS contexts, their reload, and the bufferevents that carry them (see tls.h). */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/log.h"
#include "util/selfmon.h"

/* TLS 1.2 suites: ECDHE key exchange and AEAD ciphers only (TLS 1.3's defaults are all
 * AEAD). The client picks among them: every one is good. */
#define TLS12_CIPHERS                                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define SESSION_TIMEOUT_S 7200
#define MAX_SERVERS 4

/* A file's identity as last seen: a change of any field means new contents (an ACME client
 * renaming a new file into place changes the inode; an editor writing in place, the time). */
typedef struct fsig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int err; /* errno of stat, 0 when it worked */
} fsig;

struct tr_tls_server {
    tr_tls *t;
    char name[33];
    int alpn, client;
    SSL_CTX *ctx;
};

struct tr_tls {
    char *cert_file, *key_file, *ca_file;
    fsig sig[3]; /* the files as they were at the last attempt */
    tr_tls_server *servers[MAX_SERVERS];
    int nservers;
    unsigned generation;
    struct event *watch;
    int watch_ms;
    tr_metric *expiry, *reloads_ok, *reloads_refused;
    /* what the last load read, used by tr_tls_server_add */
    X509 *leaf;
    STACK_OF(X509) * chain, *cas;
    EVP_PKEY *key;
};

/* ---- errors ---- */

/* OpenSSL's most recent error as text after `what`, then its queue emptied. */
static void ssl_err(char *err, size_t errlen, const char *what) {
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
}

/* PEM keys protected by a passphrase are refused (no prompt on the terminal). */
static int no_password(char *buf, int size, int rwflag, void *u) { return -1; }

/* ---- the files ---- */

typedef struct material {
    X509 *leaf;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
    STACK_OF(X509) * cas;
} material;

static void material_free(material *m) {
    X509_free(m->leaf);
    if (m->chain) sk_X509_pop_free(m->chain, X509_free);
    EVP_PKEY_free(m->key);
    if (m->cas) sk_X509_pop_free(m->cas, X509_free);
    memset(m, 0, sizeof *m);
}

/* Reads the certificates of a PEM file after the first one (or all of them) up to its end:
 * anything that is not a certificate is an error. */
static int read_certs(BIO *b, STACK_OF(X509) * out, const char *path, char *err, size_t errlen) {
    for (;;) {
        X509 *x = PEM_read_bio_X509(b, NULL, no_password, NULL);
        if (!x) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error(); /* the end of the file */
                return 0;
            }
            char what[300];
            snprintf(what, sizeof what, "%s: bad certificate", path);
            ssl_err(err, errlen, what);
            return -1;
        }
        if (!sk_X509_push(out, x)) {
            X509_free(x);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
}

static int load_material(const tr_tls *t, material *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char what[300];
    BIO *b = BIO_new_file(t->cert_file, "r");
    if (!b) {
        snprintf(what, sizeof what, "cannot read %s", t->cert_file);
        ssl_err(err, errlen, what);
        goto fail;
    }
    m->leaf = PEM_read_bio_X509_AUX(b, NULL, no_password, NULL);
    m->chain = sk_X509_new_null();
    if (!m->leaf) {
        snprintf(what, sizeof what, "%s: no PEM certificate", t->cert_file);
        ssl_err(err, errlen, what);
        BIO_free(b);
        goto fail;
    }
    int rc = m->chain ? read_certs(b, m->chain, t->cert_file, err, errlen) : -1;
    BIO_free(b);
    if (rc) goto fail;

    if (!(b = BIO_new_file(t->key_file, "r"))) {
        snprintf(what, sizeof what, "cannot read %s", t->key_file);
        ssl_err(err, errlen, what);
        goto fail;
    }
    m->key = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
    BIO_free(b);
    if (!m->key) {
        snprintf(what, sizeof what, "%s: no unencrypted PEM private key", t->key_file);
        ssl_err(err, errlen, what);
        goto fail;
    }
    if (X509_check_private_key(m->leaf, m->key) != 1) {
        snprintf(what, sizeof what, "the key in %s does not match the certificate in %s", t->key_file,
                 t->cert_file);
        ssl_err(err, errlen, what);
        goto fail;
    }

    if (t->ca_file) {
        if (!(b = BIO_new_file(t->ca_file, "r"))) {
            snprintf(what, sizeof what, "cannot read %s", t->ca_file);
            ssl_err(err, errlen, what);
            goto fail;
        }
        m->cas = sk_X509_new_null();
        rc = m->cas ? read_certs(b, m->cas, t->ca_file, err, errlen) : -1;
        BIO_free(b);
        if (rc) goto fail;
        if (sk_X509_num(m->cas) == 0) {
            snprintf(err, errlen, "%s: no PEM certificate", t->ca_file);
            goto fail;
        }
    }
    return 0;
fail:
    material_free(m);
    return -1;
}

/* ---- contexts ---- */

/* ALPN: the listener's protocols in the server's order of preference. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
    const tr_tls_server *s = arg;
    static const unsigned char h2[] = "\x02h2", http1[] = "\x08http/1.1\x08http/1.0";
    const unsigned char *want = s->alpn == TR_TLS_ALPN_H2 ? h2 : http1;
    unsigned wlen = s->alpn == TR_TLS_ALPN_H2 ? sizeof h2 - 1 : sizeof http1 - 1;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, want, wlen, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* TR_TLS_CLIENT_OPTIONAL: any certificate (or none) lets the handshake finish; the outcome of
 * the check stays in SSL_get_verify_result for tr_tls_peer_verified. */
static int verify_record_only(int ok, X509_STORE_CTX *x) { return 1; }

/* A plain HTTP request on a TLS port: OpenSSL recognises it in the first record (GET, POST,
 * HEAD, PUT). The client gets a readable answer in plain text instead of a reset, as Go's
 * and nginx's servers do; the handshake then fails and the connection closes. */
static void info_cb(const SSL *ssl, int where, int ret) {
    if (!(where & SSL_CB_ACCEPT_EXIT) || ret > 0) return;
    unsigned long e = ERR_peek_last_error();
    if (!e) return; /* waiting for more input */
    int fd = SSL_get_fd(ssl);
    if (ERR_GET_LIB(e) != ERR_LIB_SSL || ERR_GET_REASON(e) != SSL_R_HTTP_REQUEST || fd < 0) {
        if (tr_log_get_level() > TR_LOG_DEBUG) return;
        /* why a client was refused (no client certificate, no common protocol or suite …) */
        char peer[INET6_ADDRSTRLEN + 8] = "?", ip[INET6_ADDRSTRLEN] = "?", why[256];
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        if (fd >= 0 && getpeername(fd, (struct sockaddr *)&sa, &sl) == 0) {
            int port = 0;
            if (sa.ss_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof ip);
                port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
            } else if (sa.ss_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof ip);
                port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
            }
            snprintf(peer, sizeof peer, "%s:%d", ip, port);
        }
        ERR_error_string_n(e, why, sizeof why);
        char q[300];
        TR_DEBUG("tls: handshake failed", "peer=%s error=%s", peer, tr_log_quote(q, sizeof q, why));
        return;
    }
    static const char body[] = "400 Bad Request: this port speaks HTTPS, use an https:// URL\n";
    char msg[256];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof body - 1, body);
    if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) return;
    /* FIN after the answer, and the request read off the socket: closing with unread input
     * would reset the connection, which can destroy the answer before the client reads it */
    shutdown(fd, SHUT_WR);
    char sink[4096];
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
}

static SSL_CTX *ctx_build(tr_tls_server *s, const material *m, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* idle connections give their 34 KiB of record buffers back */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        ssl_err(err, errlen, "cannot set the cipher suites");
        goto fail;
    }
    if (SSL_CTX_use_certificate(ctx, m->leaf) != 1 || SSL_CTX_set1_chain(ctx, m->chain) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, m->key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, errlen, "the certificate and key are not usable together");
        goto fail;
    }
    /* session resumption: a server-side cache and tickets (TLS 1.2 and 1.3), each session
     * bound to this listener's id context */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT_S);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)s->name, (unsigned)strlen(s->name));
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, s);
    SSL_CTX_set_info_callback(ctx, info_cb);
    if (s->client != TR_TLS_CLIENT_NONE && m->cas) {
        X509_STORE *st = SSL_CTX_get_cert_store(ctx);
        STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
        if (!names) goto oom;
        for (int i = 0; i < sk_X509_num(m->cas); i++) {
            X509 *ca = sk_X509_value(m->cas, i);
            X509_NAME *n = X509_NAME_dup(X509_get_subject_name(ca));
            if (X509_STORE_add_cert(st, ca) != 1 || !n || !sk_X509_NAME_push(names, n)) {
                X509_NAME_free(n);
                sk_X509_NAME_pop_free(names, X509_NAME_free);
                ssl_err(err, errlen, "cannot use the client CA");
                goto fail;
            }
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* the context owns names */
        if (s->client == TR_TLS_CLIENT_REQUIRED)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        else
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_record_only);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return ctx;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void stat_files(const tr_tls *t, fsig out[3]) {
    const char *paths[3] = {t->cert_file, t->key_file, t->ca_file};
    memset(out, 0, 3 * sizeof *out);
    for (int i = 0; i < 3; i++) {
        struct stat st;
        if (!paths[i]) continue;
        if (stat(paths[i], &st) != 0) {
            out[i].err = errno;
            continue;
        }
        out[i].dev = st.st_dev;
        out[i].ino = st.st_ino;
        out[i].size = st.st_size;
        out[i].mtime = st.st_mtim;
    }
}

static int fsig_same(const fsig *a, const fsig *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->err == b->err;
}

static void fingerprint(X509 *x, char out[65]) {
    unsigned char md[32];
    unsigned n = 0;
    out[0] = 0;
    if (!x || X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32) return;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void log_loaded(const char *msg, X509 *leaf) {
    char fp[65], subj[256] = "", q[300], after[64] = "";
    fingerprint(leaf, fp);
    X509_NAME_oneline(X509_get_subject_name(leaf), subj, sizeof subj);
    BIO *b = BIO_new(BIO_s_mem());
    if (b && ASN1_TIME_print(b, X509_get0_notAfter(leaf)) == 1) {
        int n = BIO_read(b, after, sizeof after - 1);
        after[n > 0 ? n : 0] = 0;
    }
    BIO_free(b);
    char qa[80];
    TR_INFO(msg, "subject=%s not_after=%s sha256=%s", tr_log_quote(q, sizeof q, subj),
            tr_log_quote(qa, sizeof qa, after), fp);
}

/* Keeps m as the material later tr_tls_server_add calls build from. */
static void keep_material(tr_tls *t, material *m) {
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(m->leaf), &tm) == 1) tr_gauge_set(t->expiry, (double)timegm(&tm));
    material old = {t->leaf, t->chain, t->key, t->cas};
    material_free(&old);
    t->leaf = m->leaf;
    t->chain = m->chain;
    t->key = m->key;
    t->cas = m->cas;
    memset(m, 0, sizeof *m);
}

tr_tls *tr_tls_new(const tr_tls_files *f, char *err, size_t errlen) {
    if (!f->cert_file || !f->key_file) {
        snprintf(err, errlen, "TLS needs both a certificate file and a key file");
        return NULL;
    }
    tr_tls *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->cert_file = strdup(f->cert_file);
    t->key_file = strdup(f->key_file);
    t->ca_file = f->client_ca_file ? strdup(f->client_ca_file) : NULL;
    if (!t->cert_file || !t->key_file || (f->client_ca_file && !t->ca_file)) goto oom;
    t->expiry = tr_gauge_new("tricorder_tls_certificate_expiry_timestamp_seconds",
                             "When the served TLS certificate expires (notAfter), in Unix seconds.", NULL);
    t->reloads_ok = tr_counter_new("tricorder_tls_reloads_total", "TLS certificate reloads, by result.",
                                   "result=\"success\"");
    t->reloads_refused = tr_counter_new("tricorder_tls_reloads_total", "TLS certificate reloads, by result.",
                                        "result=\"refused\"");
    stat_files(t, t->sig);
    material m;
    if (load_material(t, &m, err, errlen) != 0) {
        tr_tls_free(t);
        return NULL;
    }
    log_loaded("tls: certificate loaded", m.leaf);
    keep_material(t, &m);
    return t;
oom:
    tr_tls_free(t);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

tr_tls_server *tr_tls_server_add(tr_tls *t, const char *name, int alpn, int client, char *err,
                                 size_t errlen) {
    if (t->nservers >= MAX_SERVERS || strlen(name) >= sizeof t->servers[0]->name) {
        snprintf(err, errlen, "too many TLS listeners");
        return NULL;
    }
    tr_tls_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->t = t;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->alpn = alpn;
    s->client = client;
    material m = {t->leaf, t->chain, t->key, t->cas};
    if (!(s->ctx = ctx_build(s, &m, err, errlen))) {
        free(s);
        return NULL;
    }
    t->servers[t->nservers++] = s;
    return s;
}

int tr_tls_reload(tr_tls *t, int force) {
    fsig now[3];
    stat_files(t, now);
    int changed = 0;
    for (int i = 0; i < 3; i++)
        if (!fsig_same(&now[i], &t->sig[i])) changed = 1;
    if (!changed && !force) return 0;
    memcpy(t->sig, now, sizeof now); /* a refused pair is not retried until a file changes again */
    char err[512], q[600];
    material m;
    SSL_CTX *fresh[MAX_SERVERS] = {0};
    if (load_material(t, &m, err, sizeof err) != 0) goto refused;
    for (int i = 0; i < t->nservers; i++)
        if (!(fresh[i] = ctx_build(t->servers[i], &m, err, sizeof err))) {
            material_free(&m);
            goto refused;
        }
    for (int i = 0; i < t->nservers; i++) {
        SSL_CTX_free(t->servers[i]->ctx); /* connections still using it hold a reference */
        t->servers[i]->ctx = fresh[i];
    }
    log_loaded("tls: certificate reloaded", m.leaf);
    keep_material(t, &m);
    t->generation++;
    tr_counter_add(t->reloads_ok, 1);
    return 1;
refused:
    for (int i = 0; i < t->nservers; i++)
        SSL_CTX_free(fresh[i]);
    TR_ERROR("tls: new certificate refused, the previous one keeps serving", "error=%s",
             tr_log_quote(q, sizeof q, err));
    tr_counter_add(t->reloads_refused, 1);
    return -1;
}

static void on_watch(evutil_socket_t fd, short what, void *arg) {
    tr_tls *t = arg;
    tr_tls_reload(t, 0);
    struct timeval tv = {t->watch_ms / 1000, (t->watch_ms % 1000) * 1000};
    evtimer_add(t->watch, &tv);
}

int tr_tls_watch(tr_tls *t, struct event_base *base, int interval_ms) {
    if (t->watch) return 0;
    t->watch_ms = interval_ms > 0 ? interval_ms : 1000;
    if (!(t->watch = evtimer_new(base, on_watch, t))) return -1;
    struct timeval tv = {t->watch_ms / 1000, (t->watch_ms % 1000) * 1000};
    return evtimer_add(t->watch, &tv);
}

void tr_tls_free(tr_tls *t) {
    if (!t) return;
    if (t->watch) event_free(t->watch);
    for (int i = 0; i < t->nservers; i++) {
        SSL_CTX_free(t->servers[i]->ctx);
        free(t->servers[i]);
    }
    material m = {t->leaf, t->chain, t->key, t->cas};
    material_free(&m);
    free(t->cert_file);
    free(t->key_file);
    free(t->ca_file);
    free(t);
}

int tr_tls_server_client_mode(const tr_tls_server *s) {
    return s->t->ca_file ? s->client : TR_TLS_CLIENT_NONE;
}

unsigned tr_tls_generation(const tr_tls *t) { return t->generation; }

void tr_tls_server_fingerprint(const tr_tls_server *s, char out[65]) {
    fingerprint(SSL_CTX_get0_certificate(s->ctx), out);
}

/* ---- connections ---- */

struct bufferevent *tr_tls_bufferevent(tr_tls_server *s, struct event_base *base, evutil_socket_t fd) {
    SSL *ssl = SSL_new(s->ctx);
    if (!ssl) {
        ERR_clear_error();
        return NULL;
    }
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* a client that closes without close_notify is an ordinary end of connection */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int tr_tls_is_tls(struct bufferevent *bev) { return bev && bufferevent_openssl_get_ssl(bev) != NULL; }

int tr_tls_peer_verified(struct bufferevent *bev) {
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl) return 0;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    int ok = peer && SSL_get_verify_result(ssl) == X509_V_OK;
    X509_free(peer);
    return ok;
}

long tr_tls_client_exchange(int fd, const char *req, size_t n, char *out, size_t cap) {
    long got = -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1 && SSL_write(ssl, req, (int)n) == (int)n) {
        got = 0;
        while ((size_t)got + 1 < cap) {
            int r = SSL_read(ssl, out + got, (int)(cap - 1 - (size_t)got));
            if (r <= 0) break;
            got += r;
        }
        out[got] = 0;
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return got;
}

/* ---- client side ---- */

struct tr_tls_client {
    SSL_CTX *ctx;
    char *server_name;
    int insecure;
};

struct tr_tls_conn {
    SSL *ssl;
    int fd;
};

tr_tls_client *tr_tls_client_new(const tr_tls_client_opts *o, char *err, size_t errlen) {
    tr_tls_client *c = calloc(1, sizeof *c);
    if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method()))) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    SSL_CTX *ctx = c->ctx;
    char what[4200];
    c->insecure = o->insecure;
    if (o->server_name && *o->server_name && !(c->server_name = strdup(o->server_name))) goto oom;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* a server that closes without close_notify ends the stream as EOF (HTTP frames its own ends) */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    SSL_CTX_set_verify(ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (o->ca_file && *o->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            snprintf(what, sizeof what, "CA file %s", o->ca_file);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(what, sizeof what, "the system CA store");
        goto fail;
    }
    int has_cert = o->cert_file && *o->cert_file, has_key = o->key_file && *o->key_file;
    if (has_cert != has_key) {
        snprintf(err, errlen, "a client certificate needs both the certificate and the key file");
        tr_tls_client_free(c);
        return NULL;
    }
    if (has_cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            snprintf(what, sizeof what, "client certificate %s", o->cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(what, sizeof what, "client key %s", o->key_file);
            goto fail;
        }
    }
    if (o->alpn && *o->alpn) {
        unsigned char wire[64];
        size_t l = strlen(o->alpn);
        if (l >= sizeof wire) {
            snprintf(err, errlen, "ALPN protocol too long");
            tr_tls_client_free(c);
            return NULL;
        }
        wire[0] = (unsigned char)l;
        memcpy(wire + 1, o->alpn, l);
        if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)l + 1) != 0) goto oom;
    }
    return c;
oom:
    snprintf(what, sizeof what, "out of memory");
fail:
    ssl_err(err, errlen, what);
    tr_tls_client_free(c);
    return NULL;
}

void tr_tls_client_free(tr_tls_client *c) {
    if (!c) return;
    SSL_CTX_free(c->ctx);
    free(c->server_name);
    free(c);
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After an SSL call returned r <= 0: 1 when it should be retried once the socket is ready
 * (waited for here, up to deadline), 0 for a clean close, -1 on an error (errno set). */
static int ssl_wait(SSL *ssl, int fd, int r, int64_t deadline) {
    int e = SSL_get_error(ssl, r);
    short ev;
    if (e == SSL_ERROR_WANT_READ)
        ev = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        ev = POLLOUT;
    else if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return 0;
    } else {
        if (e != SSL_ERROR_SYSCALL || !errno) errno = EPROTO;
        ERR_clear_error();
        return -1;
    }
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pf = {.fd = fd, .events = ev};
        int p = poll(&pf, 1, (int)left);
        if (p > 0) return 1;
        if (p < 0 && errno != EINTR) return -1;
    }
}

tr_tls_conn *tr_tls_connect(tr_tls_client *c, int fd, const char *host, int timeout_ms, char *err,
                            size_t errlen) {
    tr_tls_conn *t = calloc(1, sizeof *t);
    if (!t || !(t->ssl = SSL_new(c->ctx)) || SSL_set_fd(t->ssl, fd) != 1) {
        ssl_err(err, errlen, "TLS set-up");
        goto fail;
    }
    t->fd = fd;
    const char *name = c->server_name ? c->server_name : host;
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    if (!is_ip && SSL_set_tlsext_host_name(t->ssl, name) != 1) { /* SNI carries names, never addresses */
        ssl_err(err, errlen, "TLS server name");
        goto fail;
    }
    if (!c->insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : X509_VERIFY_PARAM_set1_host(vp, name, 0);
        if (ok != 1) {
            ssl_err(err, errlen, "TLS server name");
            goto fail;
        }
    }
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    for (;;) {
        errno = 0;
        int r = SSL_connect(t->ssl);
        if (r == 1) break;
        long vr = SSL_get_verify_result(t->ssl);
        int w = ssl_wait(t->ssl, fd, r, deadline);
        if (w == 1) continue;
        if (vr != X509_V_OK)
            snprintf(err, errlen, "TLS handshake with %s: certificate verify failed: %s", name,
                     X509_verify_cert_error_string(vr));
        else if (errno == EPROTO || errno == 0)
            snprintf(err, errlen, "TLS handshake with %s failed (not a TLS server, or no common protocol)",
                     name);
        else
            snprintf(err, errlen, "TLS handshake with %s: %s", name, strerror(errno));
        goto fail;
    }
    return t;
fail:
    ERR_clear_error();
    tr_tls_conn_free(t);
    return NULL;
}

long tr_tls_read(tr_tls_conn *t, void *buf, size_t n, int timeout_ms) {
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    int k = n > INT_MAX ? INT_MAX : (int)n;
    for (;;) {
        errno = 0;
        int r = SSL_read(t->ssl, buf, k);
        if (r > 0) return r;
        int w = ssl_wait(t->ssl, t->fd, r, deadline);
        if (w <= 0) return w;
    }
}

int tr_tls_write(tr_tls_conn *t, const void *buf, size_t n, int timeout_ms) {
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    const char *p = buf;
    while (n) {
        int k = n > INT_MAX ? INT_MAX : (int)n;
        errno = 0;
        int r = SSL_write(t->ssl, p, k); /* without partial writes: r == k, or retry the same call */
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        int w = ssl_wait(t->ssl, t->fd, r, deadline);
        if (w == 0) errno = EPIPE;
        if (w <= 0) return -1;
    }
    return 0;
}

const char *tr_tls_conn_alpn(tr_tls_conn *t) {
    static __thread char out[32];
    const unsigned char *p = NULL;
    unsigned l = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &l);
    snprintf(out, sizeof out, "%.*s", (int)l, p ? (const char *)p : "");
    return out;
}

void tr_tls_conn_free(tr_tls_conn *t) {
    if (!t) return;
    SSL_free(t->ssl);
    free(t);
}
