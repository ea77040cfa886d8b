/* logfmt logging to stderr; one write(2) per line so threads never interleave lines. */
#include "log.h"
#include "clock.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile tr_log_level g_level = TR_LOG_INFO;
static volatile int g_fd = 2;
static const char *const names[] = {"debug", "info", "warn", "error"};

void tr_log_set_level(tr_log_level l) { g_level = l; }
tr_log_level tr_log_get_level(void) { return g_level; }

int tr_log_parse_level(const char *s, tr_log_level *out) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (tr_log_level)i;
            return 0;
        }
    return -1;
}

const char *tr_log_quote(char *out, unsigned cap, const char *s) {
    unsigned o = 0;
    if (cap < 3) return "";
    out[o++] = '"';
    for (; s && *s && o + 3 < cap; s++) {
        char c = *s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if ((unsigned char)c < 0x20) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o++] = '"';
    out[o] = 0;
    return out;
}

static void vlog(tr_log_level l, const char *msg, const char *extra, const char *kv_fmt, va_list ap);

void tr_log(tr_log_level l, const char *msg, const char *kv_fmt, ...) {
    va_list ap;
    va_start(ap, kv_fmt);
    vlog(l, msg, NULL, kv_fmt, ap);
    va_end(ap);
}

/* `extra` (may be NULL) is appended after the formatted pairs. */
static void vlog(tr_log_level l, const char *msg, const char *extra, const char *kv_fmt, va_list ap) {
    if (l < g_level) return;
    char line[2048], q[512];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[l], tr_log_quote(q, sizeof q, msg));
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 2) n = sizeof line - 2;
    if (kv_fmt && *kv_fmt) {
        line[n++] = ' ';
        int m = vsnprintf(line + n, sizeof line - n - 1, kv_fmt, ap);
        if (m > 0) n += (size_t)m < sizeof line - n - 1 ? m : (int)(sizeof line - n - 2);
    }
    if (extra && *extra && (size_t)n + 1 < sizeof line - 2) {
        int m = snprintf(line + n, sizeof line - n - 1, " %s", extra);
        if (m > 0) n += (size_t)m < sizeof line - n - 1 ? m : (int)(sizeof line - n - 2);
    }
    for (int i = 0; i < n; i++)
        if (line[i] == '\n') line[i] = ' ';
    line[n++] = '\n';
    ssize_t w = write(g_fd, line, n);
    (void)w;
}

void tr_log_set_fd(int fd) { g_fd = fd; }

/* ---- rate limiting ---- */

#define RL_SLOTS 256

typedef struct rl_state {
    const char *site; /* NULL: free slot */
    char key[48];
    tr_log_level level;
    char msg[128];
    long long window_end; /* ms; occurrences before this are counted only */
    unsigned long long suppressed;
} rl_state;

static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;
static rl_state rl[RL_SLOTS];
static long long (*rl_clock)(void);

void tr_log_set_clock(long long (*now_ms)(void)) { rl_clock = now_ms; }

static long long rl_now(void) {
    if (rl_clock) return rl_clock();
    return tr_mono_ms();
}

void tr_log_limited_reset(void) {
    pthread_mutex_lock(&rl_mu);
    memset(rl, 0, sizeof rl);
    pthread_mutex_unlock(&rl_mu);
}

static void rl_line(tr_log_level l, const char *msg, const char *extra, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(l, msg, extra, fmt, ap);
    va_end(ap);
}

/* Writes "msg repeated=N" for a window that ended with occurrences only counted. */
static void rl_flush(rl_state *st) {
    char extra[96];
    snprintf(extra, sizeof extra, "repeated=%llu window=%ds", st->suppressed, TR_LOG_LIMIT_MS / 1000);
    if (st->key[0])
        rl_line(st->level, st->msg, extra, "key=%s", st->key);
    else
        rl_line(st->level, st->msg, extra, NULL);
    st->suppressed = 0;
}

void tr_log_limited(const char *site, const char *key, tr_log_level l, const char *msg, const char *kv_fmt,
                    ...) {
    if (l < g_level) return;
    if (!key) key = "";
    long long now = rl_now();
    unsigned h = 2166136261u;
    for (const char *p = site; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    pthread_mutex_lock(&rl_mu);
    rl_state *st = NULL, *oldest = NULL;
    for (unsigned i = 0; i < 8 && !st; i++) { /* a short probe; when full, the stalest slot goes */
        rl_state *c = &rl[(h + i) % RL_SLOTS];
        if (!c->site || (strcmp(c->site, site) == 0 && strncmp(c->key, key, sizeof c->key - 1) == 0))
            st = c;
        else if (!oldest || c->window_end < oldest->window_end)
            oldest = c;
    }
    if (!st) {
        if (oldest->suppressed) rl_flush(oldest);
        memset(oldest, 0, sizeof *oldest);
        st = oldest;
    }
    int log_now = 0;
    unsigned long long repeated = 0;
    if (!st->site || now >= st->window_end) {
        repeated = st->suppressed; /* counted in the window that just ended */
        st->site = site;
        snprintf(st->key, sizeof st->key, "%s", key);
        snprintf(st->msg, sizeof st->msg, "%s", msg);
        st->level = l;
        st->window_end = now + TR_LOG_LIMIT_MS;
        st->suppressed = 0;
        log_now = 1;
    } else {
        st->suppressed++;
    }
    pthread_mutex_unlock(&rl_mu);
    if (!log_now) return;
    char extra[64] = "";
    if (repeated) snprintf(extra, sizeof extra, "repeated=%llu", repeated);
    va_list ap;
    va_start(ap, kv_fmt);
    vlog(l, msg, extra, kv_fmt, ap);
    va_end(ap);
}

void tr_log_limited_tick(void) {
    long long now = rl_now();
    pthread_mutex_lock(&rl_mu);
    for (unsigned i = 0; i < RL_SLOTS; i++) {
        rl_state *st = &rl[i];
        if (!st->site || now < st->window_end || !st->suppressed) continue;
        rl_flush(st);
        /* the next occurrence opens a new window and is written at once */
    }
    pthread_mutex_unlock(&rl_mu);
}
