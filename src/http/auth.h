/* The HTTP server's authentication (internal to the http module): decides from a request's
 * headers alone whether it may go on, and runs bcrypt checks of --basic-auth-file users on
 * the work queue. Verified (user, password) pairs are remembered for a while as a keyed hash
 * (SipHash under a random key; never the password), so a client that logged in once does
 * not pay bcrypt again and the loop never waits for it; failures always pay it. Failures
 * are counted per client address and back off exponentially (429 with Retry-After). */
#ifndef TR_HTTP_AUTH_H
#define TR_HTTP_AUTH_H

#include <stdint.h>

#include "util/credentials.h"
#include "util/workq.h"

struct evhttp_request;
typedef struct tr_auth tr_auth;

enum {
    TR_AUTH_OK = 0,
    TR_AUTH_DENY,      /* 401: wrong credentials (a failed login) */
    TR_AUTH_MISSING,   /* 401: none at all (a browser's first request: not a failed login) */
    TR_AUTH_THROTTLED, /* 429, Retry-After */
    TR_AUTH_VERIFY,    /* well-formed basic credentials of the users file, not in the cache */
};

/* creds may be NULL (no authentication); wq runs the bcrypt checks; open_reads: routes that
 * are neither ingest nor admin need no credentials (--auth-reads=false). */
tr_auth *tr_auth_new(tr_credstore *creds, tr_workq *wq, int open_reads);
void tr_auth_free(tr_auth *a);
/* What a request to a route with these TR_HTTP_* flags gets from its Authorization header
 * (NULL: none) and client address. *challenge: the WWW-Authenticate value for a 401;
 * *retry_s: Retry-After for a 429. Valid credentials clear the address' failures. */
int tr_auth_decide(tr_auth *a, int route_flags, int ingest_only, const char *addr, const char *authorization,
                   const char **challenge, int64_t *retry_s);
/* A 401 was sent to addr: counts it and extends its back-off. */
void tr_auth_failed(tr_auth *a, const char *addr);
/* A 429 was sent. */
void tr_auth_throttled(tr_auth *a);
/* For TR_AUTH_VERIFY: checks the basic credentials on the work queue and calls
 * done(req, ok, arg) on the loop (a failure is already counted then). Returns -1 when the
 * queue is full (done is not called; answer 503). */
int tr_auth_verify(tr_auth *a, struct evhttp_request *req, const char *addr, const char *authorization,
                   void (*done)(struct evhttp_request *req, int ok, void *arg), void *arg);

#endif
