/* Request authentication: basic (plain or htpasswd/bcrypt), bearer tokens, the cache of
 * verified pairs and the per-address back-off. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "util/clock.h"
#include "util/ratelimit.h"
#include "util/selfmon.h"
#include "util/text.h"

#define CACHE_SLOTS 1024              /* verified pairs remembered (direct-mapped) */
#define CACHE_TTL_MS (10 * 60 * 1000) /* then bcrypt again */
#define RL_CAPACITY 4096              /* client addresses tracked */
#define RL_FREE_FAILURES 5            /* failures before the back-off starts */
#define RL_BASE_MS 1000               /* first back-off */
#define RL_MAX_MS (5 * 60 * 1000)     /* longest back-off */

typedef struct cached {
    uint64_t h, gen;
    int64_t until_ms;
} cached;

struct tr_auth {
    tr_credstore *creds;
    tr_workq *wq;
    tr_ratelimit *rl;
    uint8_t key[16];
    cached cache[CACHE_SLOTS];
    tr_metric *failures, *throttled;
    int open_reads;
};

static const char basic_challenge[] = "Basic realm=\"tricorder\", charset=\"UTF-8\"";
static const char bearer_challenge[] = "Bearer realm=\"tricorder\"";

tr_auth *tr_auth_new(tr_credstore *creds, tr_workq *wq, int open_reads) {
    tr_auth *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->open_reads = open_reads;
    a->creds = creds;
    a->wq = wq;
    a->rl = tr_ratelimit_new(RL_CAPACITY, RL_FREE_FAILURES, RL_BASE_MS, RL_MAX_MS);
    if (!a->rl || tr_random_bytes(a->key, sizeof a->key)) {
        tr_auth_free(a);
        return NULL;
    }
    a->failures = tr_counter_new("tricorder_auth_failures_total",
                                 "Requests refused for missing or wrong credentials (401).", NULL);
    a->throttled =
        tr_counter_new("tricorder_auth_throttled_total",
                       "Requests refused because their address failed to log in too often (429).", NULL);
    return a;
}

void tr_auth_free(tr_auth *a) {
    if (!a) return;
    tr_ratelimit_free(a->rl);
    explicit_bzero(a->key, sizeof a->key);
    free(a);
}

/* Splits `Basic <base64(user:password)>` into out (user, NUL, password, NUL). Refuses a
 * NUL inside either, and lengths past TR_CRED_MAX_LEN. Returns the user length or -1. */
static long basic_split(const char *auth, char out[2 * TR_CRED_MAX_LEN + 4], const char **pass) {
    if (!auth || strncasecmp(auth, "Basic ", 6) != 0) return -1;
    const char *b64 = auth + 6;
    while (*b64 == ' ')
        b64++;
    size_t n = strlen(b64);
    if (tr_base64_max(n) >= 2 * TR_CRED_MAX_LEN + 4) return -1;
    long o = tr_base64_decode(b64, n, (uint8_t *)out);
    if (o < 0 || memchr(out, 0, (size_t)o)) return -1;
    out[o] = 0;
    char *colon = memchr(out, ':', (size_t)o);
    if (!colon || colon == out || (colon - out) > TR_CRED_MAX_LEN || o - (colon - out) - 1 > TR_CRED_MAX_LEN)
        return -1;
    *colon = 0;
    *pass = colon + 1;
    return colon - out;
}

static uint64_t pair_hash(const tr_auth *a, const char *user, const char *pass) {
    char buf[2 * TR_CRED_MAX_LEN + 4];
    size_t ul = strlen(user), pl = strlen(pass);
    memcpy(buf, user, ul + 1);
    memcpy(buf + ul + 1, pass, pl);
    uint64_t h = tr_siphash(a->key, buf, ul + 1 + pl);
    explicit_bzero(buf, sizeof buf);
    return h;
}

static int cache_hit(const tr_auth *a, uint64_t h) {
    const cached *c = &a->cache[h % CACHE_SLOTS];
    return c->h == h && c->gen == tr_credstore_generation(a->creds) && c->until_ms > tr_mono_ms();
}

static int basic_decide(tr_auth *a, const char *auth) {
    char buf[2 * TR_CRED_MAX_LEN + 4];
    const char *pass;
    long ul = basic_split(auth, buf, &pass);
    int rc = TR_AUTH_DENY;
    if (ul < 0) goto out;
    const char *pu = tr_credstore_plain_user(a->creds);
    if (pu) {
        int u = tr_secret_equal(buf, pu);
        int p = tr_secret_equal(pass, tr_credstore_plain_pass(a->creds));
        if (u & p) {
            rc = TR_AUTH_OK;
            goto out;
        }
    }
    if (tr_credstore_users(a->creds))
        rc = cache_hit(a, pair_hash(a, buf, pass)) ? TR_AUTH_OK : TR_AUTH_VERIFY;
out:
    explicit_bzero(buf, sizeof buf);
    return rc;
}

int tr_auth_decide(tr_auth *a, int route_flags, int ingest_only, const char *addr, const char *authorization,
                   const char **challenge, int64_t *retry_s) {
    *challenge = NULL;
    *retry_s = 0;
    if (!a || !a->creds || (route_flags & TR_HTTP_PUBLIC)) return TR_AUTH_OK;
    if (a->open_reads && !(route_flags & (TR_HTTP_INGEST | TR_HTTP_ADMIN))) return TR_AUTH_OK;
    int basic = tr_credstore_has_basic(a->creds);
    int tokens = tr_credstore_has_tokens(a->creds);
    /* admin calls take the token when it is the only credential: never open then */
    int bearer_only = (route_flags & TR_HTTP_INGEST || (route_flags & TR_HTTP_ADMIN && !basic)) && tokens;
    if (!bearer_only && !basic) return TR_AUTH_OK;
    if ((route_flags & TR_HTTP_INGEST) && ingest_only && !tokens)
        return TR_AUTH_OK; /* OTLP without a token */
    *challenge = bearer_only ? bearer_challenge : basic_challenge;
    /* no credentials: no guess either; neither counted nor throttled */
    if (!authorization) return TR_AUTH_MISSING;
    int64_t wait = tr_ratelimit_blocked(a->rl, addr ? addr : "", tr_mono_ms());
    if (wait > 0) {
        *retry_s = (wait + 999) / 1000;
        return TR_AUTH_THROTTLED;
    }
    int rc = bearer_only ? (tr_credstore_bearer_ok(a->creds, authorization) ? TR_AUTH_OK : TR_AUTH_DENY)
                         : basic_decide(a, authorization);
    if (rc == TR_AUTH_OK)
        tr_ratelimit_success(a->rl, addr ? addr : ""); /* a login: the address starts over */
    return rc;
}

void tr_auth_failed(tr_auth *a, const char *addr) {
    if (!a) return;
    tr_counter_add(a->failures, 1);
    tr_ratelimit_fail(a->rl, addr ? addr : "", tr_mono_ms());
}

void tr_auth_throttled(tr_auth *a) {
    if (a) tr_counter_add(a->throttled, 1);
}

typedef struct vjob {
    tr_auth *a;
    struct evhttp_request *req;
    void (*done)(struct evhttp_request *req, int ok, void *arg);
    void *arg;
    char addr[48];
    char hash[61];
    int known, ok;
    uint64_t pair, gen;
    char pass[TR_CRED_MAX_LEN + 1];
} vjob;

static void verify_run(void *ctx, const volatile int *cancel) {
    (void)cancel; /* one bcrypt: not worth stopping halfway, and a failure must take as long */
    vjob *j = ctx;
    j->ok = tr_bcrypt_verify(j->pass, j->hash) && j->known;
}

static void verify_done(void *ctx, int cancelled) {
    vjob *j = ctx;
    int ok = !cancelled && j->ok;
    if (ok) {
        tr_ratelimit_success(j->a->rl, j->addr);
        cached *c = &j->a->cache[j->pair % CACHE_SLOTS];
        *c = (cached){.h = j->pair, .gen = j->gen, .until_ms = tr_mono_ms() + CACHE_TTL_MS};
    } else {
        tr_auth_failed(j->a, j->addr);
    }
    j->done(j->req, ok, j->arg);
    explicit_bzero(j, sizeof *j);
    free(j);
}

int tr_auth_verify(tr_auth *a, struct evhttp_request *req, const char *addr, const char *authorization,
                   void (*done)(struct evhttp_request *req, int ok, void *arg), void *arg) {
    vjob *j = calloc(1, sizeof *j);
    if (!j) return -1;
    char buf[2 * TR_CRED_MAX_LEN + 4];
    const char *pass;
    long ul = basic_split(authorization, buf, &pass);
    if (ul < 0) { /* tr_auth_decide said VERIFY: it was well-formed */
        free(j);
        return -1;
    }
    *j = (vjob){.a = a, .req = req, .done = done, .arg = arg, .gen = tr_credstore_generation(a->creds)};
    snprintf(j->addr, sizeof j->addr, "%s", addr ? addr : "");
    const char *h = tr_htpasswd_hash(tr_credstore_users(a->creds), buf, (size_t)ul, &j->known);
    memcpy(j->hash, h, 60);
    snprintf(j->pass, sizeof j->pass, "%s", pass);
    j->pair = pair_hash(a, buf, pass);
    explicit_bzero(buf, sizeof buf);
    if (!tr_workq_submit(a->wq, verify_run, verify_done, j)) {
        explicit_bzero(j, sizeof *j);
        free(j);
        return -1;
    }
    return 0;
}
