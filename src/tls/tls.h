/* TLS for the listeners: OpenSSL behind libevent's bufferevent_openssl. One tr_tls holds the
 * certificate source (the PEM files) and reloads it; each listener adds a tr_tls_server with
 * its own SSL_CTX (ALPN protocols, client-certificate policy, session id context), all rebuilt
 * from the same files at each reload. Loop thread only. */
#ifndef TR_TLS_H
#define TR_TLS_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

typedef struct tr_tls tr_tls;
typedef struct tr_tls_server tr_tls_server;

typedef struct tr_tls_files {
    const char *cert_file;      /* PEM: the certificate, then the chain, sent to clients whole */
    const char *key_file;       /* PEM private key, unencrypted */
    const char *client_ca_file; /* PEM CA certificate(s) for client certificates; NULL: none */
} tr_tls_files;

/* What a listener negotiates with ALPN: HTTP/1.1 (also http/1.0), or h2 only (gRPC). A client
 * that offers ALPN without any of these is refused with the no_application_protocol alert; a
 * client that offers no ALPN at all is served. */
enum { TR_TLS_ALPN_HTTP1 = 0, TR_TLS_ALPN_H2 = 1 };
/* Client certificates (only with a client CA file): none asked; asked and recorded, the
 * handshake succeeds either way (tr_tls_peer_verified tells); required, signed by the CA. */
enum { TR_TLS_CLIENT_NONE = 0, TR_TLS_CLIENT_OPTIONAL = 1, TR_TLS_CLIENT_REQUIRED = 2 };

/* Loads and checks the files (the key must match the certificate). Returns NULL with a
 * message in err. */
tr_tls *tr_tls_new(const tr_tls_files *f, char *err, size_t errlen);
/* A listener's context, built from the current files. `name` (up to 32 bytes) separates its
 * sessions from other listeners' (a session resumes only where it was made). The server lives
 * as long as t. Returns NULL with err set. */
tr_tls_server *tr_tls_server_add(tr_tls *t, const char *name, int alpn, int client, char *err, size_t errlen);
/* Rebuilds every listener's context from the files. force = 0: only when a file changed
 * (identity, size or modification time) since the last attempt. Returns 1 when new contexts
 * serve new connections (connections already open keep theirs), 0 when nothing changed, -1
 * when the new files were refused (one log line; the previous contexts keep serving). */
int tr_tls_reload(tr_tls *t, int force);
/* Checks the files every interval_ms on the loop and reloads when they change. 0 or -1. */
int tr_tls_watch(tr_tls *t, struct event_base *base, int interval_ms);
void tr_tls_free(tr_tls *t);

/* A server-side TLS bufferevent over fd (-1: set later, as evhttp does). NULL on failure. */
struct bufferevent *tr_tls_bufferevent(tr_tls_server *s, struct event_base *base, evutil_socket_t fd);
/* Whether bev is a TLS bufferevent. */
int tr_tls_is_tls(struct bufferevent *bev);
/* Whether the client of a TLS bufferevent presented a certificate that chains to the client
 * CA (1) or not (0; also for a plain bufferevent). */
int tr_tls_peer_verified(struct bufferevent *bev);
/* The client-certificate policy s was added with (TR_TLS_CLIENT_*; NONE without a CA file). */
int tr_tls_server_client_mode(const tr_tls_server *s);
/* The SHA-256 fingerprint (64 hex digits) of the certificate s serves now. */
void tr_tls_server_fingerprint(const tr_tls_server *s, char out[65]);
/* Completed reloads since start (the first load not counted). */
unsigned tr_tls_generation(const tr_tls *t);

/* A TLS client exchange on a connected blocking socket for --healthcheck: handshake (the
 * server certificate is not verified: the check talks to its own process), send req, read
 * up to cap - 1 bytes of the answer into out (NUL-terminated). Returns the bytes read or -1. */
long tr_tls_client_exchange(int fd, const char *req, size_t n, char *out, size_t cap);

/* ---- client side: the forwarders' outgoing TLS (blocking worker threads, not the loop) ---- */

typedef struct tr_tls_client tr_tls_client;
typedef struct tr_tls_conn tr_tls_conn;

typedef struct tr_tls_client_opts {
    const char *ca_file;     /* PEM CA certificate(s) the server must chain to; NULL: the system store */
    const char *cert_file;   /* client certificate (PEM, chain after it) for mutual TLS; NULL: none */
    const char *key_file;    /* its key (PEM, unencrypted); with cert_file */
    const char *server_name; /* name checked in the server certificate and sent as SNI; NULL: the host */
    int insecure;            /* 1: the server certificate is not verified at all */
    const char *alpn;        /* one ALPN protocol to offer ("h2", "http/1.1"); NULL: none */
} tr_tls_client_opts;

/* Builds a client context (TLS 1.2 minimum, the server certificate and name verified unless
 * insecure). Returns NULL with a message in err. Thread-safe to use from several threads. */
tr_tls_client *tr_tls_client_new(const tr_tls_client_opts *o, char *err, size_t errlen);
void tr_tls_client_free(tr_tls_client *c);
/* Handshakes over the connected socket fd (blocking or not) to host (a name or an IP address;
 * the options' server_name wins), within timeout_ms. Returns NULL with a message in err (e.g.
 * the verification failure). The connection does not own fd. */
tr_tls_conn *tr_tls_connect(tr_tls_client *c, int fd, const char *host, int timeout_ms, char *err,
                            size_t errlen);
/* Reads up to n bytes, waiting up to timeout_ms. Returns the count, 0 when the peer closed,
 * -1 on an error or time-out (errno set: ETIMEDOUT, EPROTO or the socket's). */
long tr_tls_read(tr_tls_conn *t, void *buf, size_t n, int timeout_ms);
/* Writes all n bytes within timeout_ms. 0 or -1 (errno set). */
int tr_tls_write(tr_tls_conn *t, const void *buf, size_t n, int timeout_ms);
/* The ALPN protocol the server chose ("" when none). */
const char *tr_tls_conn_alpn(tr_tls_conn *t);
/* Frees the connection (without close_notify: the caller closes the socket next). */
void tr_tls_conn_free(tr_tls_conn *t);

#endif
