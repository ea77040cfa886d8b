/* logfmt logging to stderr; one write(2) per line so threads never interleave lines. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile tr_log_level g_level = TR_LOG_INFO;
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

void tr_log(tr_log_level l, const char *msg, const char *kv_fmt, ...) {
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
        va_list ap;
        va_start(ap, kv_fmt);
        int m = vsnprintf(line + n, sizeof line - n - 1, kv_fmt, ap);
        va_end(ap);
        if (m > 0) n += (size_t)m < sizeof line - n - 1 ? m : (int)(sizeof line - n - 2);
    }
    for (int i = 0; i < n; i++)
        if (line[i] == '\n') line[i] = ' ';
    line[n++] = '\n';
    ssize_t w = write(2, line, n);
    (void)w;
}
