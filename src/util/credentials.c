/* htpasswd (bcrypt) users, token lists, SipHash and file-change stamps. */
#include "credentials.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "text.h"

typedef struct user {
    char *name;
    char hash[61]; /* $2y$10$ + 53 */
} user;

struct tr_htpasswd {
    user *u;
    size_t n;
    char dummy[61]; /* for unknown users: the cost of the costliest real hash */
};

/* A valid bcrypt hash of a random password nobody knows; its cost is replaced. */
static const char dummy_hash[] = "$2y$10$lXDXJXq4ceJ8ckI07ag9k.3cyAOgs6X9cIzOjU8IZtKiRPF3U6L0S";

static int bcrypt_b64(char c) {
    return c == '.' || c == '/' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* $2a$, $2b$ or $2y$, two cost digits 04..31, '$', 53 characters of bcrypt's base64. */
static int is_bcrypt(const char *h, size_t n) {
    if (n != 60 || h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$')
        return 0;
    if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$') return 0;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < 4 || cost > 31) return 0;
    for (size_t i = 7; i < 60; i++)
        if (!bcrypt_b64(h[i])) return 0;
    return 1;
}

static int user_cmp(const void *a, const void *b) {
    return strcmp(((const user *)a)->name, ((const user *)b)->name);
}

void tr_htpasswd_free(tr_htpasswd *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++)
        free(p->u[i].name);
    free(p->u);
    free(p);
}

/* The next line of text[0..len) from *off: [*line, *line + *n) without its "\n" or "\r\n".
 * Returns 0 at the end. */
static int next_line(const char *text, size_t len, size_t *off, const char **line, size_t *n) {
    if (*off >= len) return 0;
    *line = text + *off;
    const char *nl = memchr(*line, '\n', len - *off);
    *n = nl ? (size_t)(nl - *line) : len - *off;
    *off += *n + (nl ? 1 : 0);
    if (*n && (*line)[*n - 1] == '\r') (*n)--;
    return 1;
}

static int has_control(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 1;
    return 0;
}

/* Grows a vector of elements of size sz by doubling; 0 or -1. */
static int grow_vec(void **v, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *nv = realloc(*v, nc * sz);
    if (!nv) return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

tr_htpasswd *tr_htpasswd_parse(const char *text, size_t len, char *err, size_t errlen) {
    tr_htpasswd *p = calloc(1, sizeof *p);
    size_t cap = 0;
    if (!p) goto oom;
    memcpy(p->dummy, dummy_hash, sizeof dummy_hash);
    if (memchr(text, 0, len)) {
        snprintf(err, errlen, "a NUL byte in the file");
        goto fail;
    }
    size_t lineno = 0, off = 0, n;
    const char *line;
    while (next_line(text, len, &off, &line, &n)) {
        lineno++;
        size_t lead = 0;
        while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
            lead++;
        if (lead == n || line[lead] == '#') continue;
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line) {
            snprintf(err, errlen, "line %zu: not user:hash", lineno);
            goto fail;
        }
        size_t ulen = (size_t)(colon - line);
        const char *h = colon + 1;
        size_t hlen = n - ulen - 1;
        if (ulen > TR_CRED_MAX_LEN) {
            snprintf(err, errlen, "line %zu: user name longer than %d bytes", lineno, TR_CRED_MAX_LEN);
            goto fail;
        }
        if (has_control(line, ulen)) {
            snprintf(err, errlen, "line %zu: control character in the user name", lineno);
            goto fail;
        }
        if (!is_bcrypt(h, hlen)) {
            snprintf(err, errlen,
                     "line %zu: user %.*s: not a bcrypt hash ($2y$, $2b$ or $2a$; use htpasswd -B)", lineno,
                     (int)(ulen > 64 ? 64 : ulen), line);
            goto fail;
        }
        if (p->n == TR_HTPASSWD_MAX_USERS) {
            snprintf(err, errlen, "more than %d users", TR_HTPASSWD_MAX_USERS);
            goto fail;
        }
        if (grow_vec((void **)&p->u, &cap, p->n, sizeof *p->u)) goto oom;
        user *u = &p->u[p->n];
        if (!(u->name = strndup(line, ulen))) goto oom;
        memcpy(u->hash, h, 60);
        u->hash[60] = 0;
        p->n++;
        /* the dummy gets the costliest user's cost (the first user's sets it) */
        if (p->n == 1 || memcmp(h + 4, p->dummy + 4, 2) > 0) memcpy(p->dummy + 4, h + 4, 2);
    }
    if (p->n) qsort(p->u, p->n, sizeof *p->u, user_cmp);
    for (size_t i = 1; i < p->n; i++)
        if (strcmp(p->u[i - 1].name, p->u[i].name) == 0) {
            snprintf(err, errlen, "user %.64s appears twice", p->u[i].name);
            goto fail;
        }
    return p;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    tr_htpasswd_free(p);
    return NULL;
}

size_t tr_htpasswd_count(const tr_htpasswd *p) { return p ? p->n : 0; }

const char *tr_htpasswd_hash(const tr_htpasswd *p, const char *name, size_t ulen, int *known) {
    *known = 0;
    size_t lo = 0, hi = p ? p->n : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *s = p->u[mid].name;
        size_t sl = strlen(s);
        int c = memcmp(s, name, sl < ulen ? sl : ulen);
        if (c == 0) c = sl < ulen ? -1 : sl > ulen ? 1 : 0;
        if (c == 0) {
            *known = 1;
            return p->u[mid].hash;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return p ? p->dummy : dummy_hash;
}

int tr_bcrypt_verify(const char *password, const char *hash) {
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd) return 0;
    const char *out = crypt_r(password, hash, cd);
    /* libxcrypt returns a string starting with '*' on failure, never NULL by default */
    int ok = out && out[0] == '$' && tr_secret_equal(out, hash);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return ok;
}

/* ---- tokens ---- */

struct tr_tokens {
    char **t;
    size_t n;
};

void tr_tokens_free(tr_tokens *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        explicit_bzero(t->t[i], strlen(t->t[i]));
        free(t->t[i]);
    }
    free(t->t);
    free(t);
}

tr_tokens *tr_tokens_parse(const char *text, size_t len, char *err, size_t errlen) {
    tr_tokens *t = calloc(1, sizeof *t);
    size_t cap = 0, lineno = 0;
    if (!t) goto oom;
    if (memchr(text, 0, len)) {
        snprintf(err, errlen, "a NUL byte in the file");
        goto fail;
    }
    size_t off = 0, n;
    const char *line;
    while (next_line(text, len, &off, &line, &n)) {
        lineno++;
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        while (n && (*line == ' ' || *line == '\t'))
            line++, n--;
        if (!n || *line == '#') continue;
        if (n > TR_CRED_MAX_LEN) {
            snprintf(err, errlen, "line %zu: token longer than %d bytes", lineno, TR_CRED_MAX_LEN);
            goto fail;
        }
        if (has_control(line, n)) {
            snprintf(err, errlen, "line %zu: control character in the token", lineno);
            goto fail;
        }
        if (t->n == TR_HTPASSWD_MAX_USERS) {
            snprintf(err, errlen, "more than %d tokens", TR_HTPASSWD_MAX_USERS);
            goto fail;
        }
        if (grow_vec((void **)&t->t, &cap, t->n, sizeof *t->t)) goto oom;
        if (!(t->t[t->n] = strndup(line, n))) goto oom;
        t->n++;
    }
    return t;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    tr_tokens_free(t);
    return NULL;
}

size_t tr_tokens_count(const tr_tokens *t) { return t ? t->n : 0; }

int tr_tokens_match(const tr_tokens *t, const char *given) {
    int ok = 0;
    for (size_t i = 0; t && i < t->n; i++)
        ok |= tr_secret_equal(given, t->t[i]);
    return ok;
}

/* ---- SipHash-2-4 (Aumasson & Bernstein), 64-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#define SIPROUND                                                                                             \
    do {                                                                                                     \
        v0 += v1;                                                                                            \
        v1 = ROTL(v1, 13);                                                                                   \
        v1 ^= v0;                                                                                            \
        v0 = ROTL(v0, 32);                                                                                   \
        v2 += v3;                                                                                            \
        v3 = ROTL(v3, 16);                                                                                   \
        v3 ^= v2;                                                                                            \
        v0 += v3;                                                                                            \
        v3 = ROTL(v3, 21);                                                                                   \
        v3 ^= v0;                                                                                            \
        v2 += v1;                                                                                            \
        v1 = ROTL(v1, 17);                                                                                   \
        v1 ^= v2;                                                                                            \
        v2 = ROTL(v2, 32);                                                                                   \
    } while (0)

uint64_t tr_siphash(const uint8_t key[16], const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = n & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++)
        last |= (uint64_t)p[full + i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

int tr_random_bytes(void *key, size_t n) {
    uint8_t *p = key;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- files ---- */

int tr_file_changed(const char *path, tr_file_stamp *st) {
    struct stat s;
    tr_file_stamp now = {0};
    if (stat(path, &s) == 0) {
        now.exists = 1;
        now.dev = s.st_dev;
        now.ino = s.st_ino;
        now.size = s.st_size;
        now.mtime_ns = (int64_t)s.st_mtim.tv_sec * 1000000000 + s.st_mtim.tv_nsec;
    }
    if (memcmp(&now, st, sizeof now) == 0) return 0;
    *st = now;
    return 1;
}

char *tr_read_small_file(const char *path, size_t max, size_t *len, char *err, size_t errlen) {
    if (errlen) err[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat s;
    if (fstat(fd, &s) != 0 || (size_t)s.st_size > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        close(fd);
        return NULL;
    }
    char *b = malloc(max + 1);
    size_t n = 0;
    while (b) {
        ssize_t r = read(fd, b + n, max + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(b);
            b = NULL;
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            free(b);
            b = NULL;
            break;
        }
    }
    if (!b && !*err) snprintf(err, errlen, "out of memory");
    close(fd);
    if (b) {
        b[n] = 0;
        *len = n;
    }
    return b;
}

/* ---- the store ---- */

struct tr_credstore {
    tr_credstore_config cfg;
    tr_htpasswd *users;
    tr_tokens *tokens; /* the file's */
    tr_file_stamp users_st, tokens_st;
    uint64_t generation;
    struct event *timer;
};

static int load_users(tr_credstore *s, char *err, size_t errlen) {
    size_t len;
    char *text = tr_read_small_file(s->cfg.htpasswd_file, TR_HTPASSWD_MAX_BYTES, &len, err, errlen);
    if (!text) return -1;
    char perr[200];
    tr_htpasswd *p = tr_htpasswd_parse(text, len, perr, sizeof perr);
    free(text);
    if (!p) {
        snprintf(err, errlen, "%s: %s", s->cfg.htpasswd_file, perr);
        return -1;
    }
    tr_htpasswd_free(s->users);
    s->users = p;
    s->generation++;
    return 0;
}

static int load_tokens(tr_credstore *s, char *err, size_t errlen) {
    size_t len;
    char *text = tr_read_small_file(s->cfg.token_file, TR_HTPASSWD_MAX_BYTES, &len, err, errlen);
    if (!text) return -1;
    char perr[200];
    tr_tokens *t = tr_tokens_parse(text, len, perr, sizeof perr);
    explicit_bzero(text, len);
    free(text);
    if (!t) {
        snprintf(err, errlen, "%s: %s", s->cfg.token_file, perr);
        return -1;
    }
    tr_tokens_free(s->tokens);
    s->tokens = t;
    return 0;
}

void tr_credstore_check(tr_credstore *s) {
    char err[400], q[420];
    if (s->cfg.htpasswd_file && tr_file_changed(s->cfg.htpasswd_file, &s->users_st)) {
        if (load_users(s, err, sizeof err) == 0)
            TR_INFO("basic-auth file reloaded", "users=%zu", tr_htpasswd_count(s->users));
        else
            TR_WARN("basic-auth file not reloaded, the previous users stay", "error=%s",
                    tr_log_quote(q, sizeof q, err));
    }
    if (s->cfg.token_file && tr_file_changed(s->cfg.token_file, &s->tokens_st)) {
        if (load_tokens(s, err, sizeof err) == 0)
            TR_INFO("ingest token file reloaded", "tokens=%zu", tr_tokens_count(s->tokens));
        else
            TR_WARN("ingest token file not reloaded, the previous tokens stay", "error=%s",
                    tr_log_quote(q, sizeof q, err));
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    tr_credstore_check(arg);
}

tr_credstore *tr_credstore_new(struct event_base *base, const tr_credstore_config *cfg, char *err,
                               size_t errlen) {
    tr_credstore *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    if (cfg->htpasswd_file) {
        tr_file_changed(cfg->htpasswd_file, &s->users_st);
        if (load_users(s, err, errlen)) goto fail;
    }
    if (cfg->token_file) {
        tr_file_changed(cfg->token_file, &s->tokens_st);
        if (load_tokens(s, err, errlen)) goto fail;
    }
    if (base && (cfg->htpasswd_file || cfg->token_file)) {
        int64_t ms = cfg->check_interval_ms > 0 ? cfg->check_interval_ms : 2000;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
        s->timer = event_new(base, -1, EV_PERSIST, on_timer, s);
        if (!s->timer || event_add(s->timer, &tv)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return s;
fail:
    tr_credstore_free(s);
    return NULL;
}

void tr_credstore_free(tr_credstore *s) {
    if (!s) return;
    if (s->timer) event_free(s->timer);
    tr_htpasswd_free(s->users);
    tr_tokens_free(s->tokens);
    free(s);
}

int tr_credstore_has_basic(const tr_credstore *s) { return s && (s->cfg.basic_user || s->cfg.htpasswd_file); }
int tr_credstore_has_tokens(const tr_credstore *s) { return s && (s->cfg.token || s->cfg.token_file); }

int tr_credstore_bearer_ok(const tr_credstore *s, const char *auth) {
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
    const char *t = auth + 7;
    while (*t == ' ')
        t++;
    int ok = 0;
    if (s->cfg.token) ok |= tr_secret_equal(t, s->cfg.token);
    ok |= tr_tokens_match(s->tokens, t);
    return ok;
}

const char *tr_credstore_plain_user(const tr_credstore *s) { return s ? s->cfg.basic_user : NULL; }
const char *tr_credstore_plain_pass(const tr_credstore *s) { return s ? s->cfg.basic_pass : NULL; }
const tr_htpasswd *tr_credstore_users(const tr_credstore *s) { return s ? s->users : NULL; }
uint64_t tr_credstore_generation(const tr_credstore *s) { return s ? s->generation : 0; }
