/* Clocks and RFC 3339 (util/clock.h). */
#include "util/clock.h"

#include <string.h>
#include <time.h>

int64_t tr_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tr_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tr_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tr_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tr_days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digit(char c) { return c >= '0' && c <= '9'; }

/* n digits at *p (exactly n), advancing *p; -1 when one is not a digit. */
static int num(const char **p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!digit((*p)[i])) return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

static int days_in(int y, int m) {
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return md[m - 1] + (m == 2 && leap);
}

int tr_rfc3339_parse(const char *s, int64_t *sec, int32_t *nsec) {
    const char *p = s;
    int y = num(&p, 4);
    if (y < 0 || *p++ != '-') return -1;
    int mo = num(&p, 2);
    if (mo < 1 || mo > 12 || *p++ != '-') return -1;
    int d = num(&p, 2);
    if (d < 1 || d > days_in(y, mo) || *p++ != 'T') return -1;
    /* Go's "15" takes one or two digits */
    if (!digit(*p)) return -1;
    int h = *p++ - '0';
    if (digit(*p)) h = h * 10 + (*p++ - '0');
    if (h > 23 || *p++ != ':') return -1;
    int mi = num(&p, 2);
    if (mi < 0 || mi > 59 || *p++ != ':') return -1;
    int se = num(&p, 2);
    if (se < 0 || se > 59) return -1;
    int32_t ns = 0;
    if ((*p == '.' || *p == ',') && digit(p[1])) {
        p++;
        int k = 0;
        for (; digit(*p); p++, k++)
            if (k < 9) ns = ns * 10 + (*p - '0');
        for (; k < 9; k++)
            ns *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        const char *q = p + 1;
        int oh = num(&q, 2);
        if (oh < 0 || oh > 24 || *q++ != ':') return -1;
        int om = num(&q, 2);
        if (om < 0 || om > 60) return -1;
        off = (int64_t)(oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
        p = q;
    } else {
        return -1;
    }
    if (*p) return -1;
    *sec = tr_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    *nsec = ns;
    return 0;
}

int tr_rfc3339_ms(const char *s, int64_t *ms) {
    int64_t sec;
    int32_t ns;
    if (tr_rfc3339_parse(s, &sec, &ns)) return -1;
    *ms = sec * 1000 + ns / 1000000;
    return 0;
}

int tr_rfc3339_ns(const char *s, int64_t *ns) {
    int64_t sec;
    int32_t n;
    if (tr_rfc3339_parse(s, &sec, &n)) return -1;
    const int64_t G = 1000000000;
    if (sec > INT64_MAX / G || (sec == INT64_MAX / G && n > INT64_MAX % G) || sec < INT64_MIN / G) return -1;
    *ns = sec * G + n;
    return 0;
}

int tr_parse_model_duration(const char *s, int64_t *ms) {
    static const struct {
        const char *u;
        int64_t ms;
    } units[] = {{"y", 365LL * 86400000},
                 {"w", 7LL * 86400000},
                 {"d", 86400000},
                 {"h", 3600000},
                 {"m", 60000},
                 {"s", 1000},
                 {"ms", 1}};
    if (!s || !*s) return -1;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    size_t next = 0;
    int64_t total = 0;
    for (const char *p = s; *p;) {
        if (*p < '0' || *p > '9') return -1;
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (uint64_t)INT64_MAX / 10) return -1;
            v = v * 10 + (uint64_t)(*p - '0');
        }
        size_t u = next;
        for (; u < 7; u++) {
            size_t l = strlen(units[u].u);
            /* "m" must not take the "m" of "ms" */
            if (strncmp(p, units[u].u, l) == 0 && !(l == 1 && p[0] == 'm' && p[1] == 's')) break;
        }
        if (u == 7) return -1;
        p += strlen(units[u].u);
        next = u + 1;
        if (v > (uint64_t)INT64_MAX / (uint64_t)units[u].ms) return -1;
        int64_t add = (int64_t)v * units[u].ms;
        if (total > INT64_MAX - add) return -1;
        total += add;
    }
    *ms = total;
    return 0;
}
