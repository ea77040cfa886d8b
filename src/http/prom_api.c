/* The Prometheus API layer: parameters, envelope, errors and the series merge, with the
 * behaviour of Prometheus' web/api/v1 (parseTime, parseDuration, Response) and Go's strconv
 * and time packages underneath it. */
#include "prom_api.h"

#include "promql/promql.h"
#include "util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- errors ---- */

static const struct {
    const char *name;
    int status;
} errtypes[] = {
    [TR_PROM_BAD_DATA] = {"bad_data", 400},   [TR_PROM_EXECUTION] = {"execution", 422},
    [TR_PROM_TIMEOUT] = {"timeout", 503},     [TR_PROM_CANCELED] = {"canceled", 499},
    [TR_PROM_INTERNAL] = {"internal", 500},   [TR_PROM_UNAVAILABLE] = {"unavailable", 503},
    [TR_PROM_NOT_FOUND] = {"not_found", 404},
};

const char *tr_prom_errtype_name(tr_prom_errtype t) { return errtypes[t].name; }
int tr_prom_errtype_status(tr_prom_errtype t) { return errtypes[t].status; }

void tr_prom_reply_error(struct evhttp_request *req, tr_prom_errtype t, const char *msg) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_json_obj_open(&j);
    tr_json_key(&j, "status");
    tr_json_str(&j, "error");
    tr_json_key(&j, "errorType");
    tr_json_str(&j, errtypes[t].name);
    tr_json_key(&j, "error");
    tr_json_str(&j, msg);
    tr_json_obj_close(&j);
    tr_http_reply_buf(req, errtypes[t].status, "application/json", &b);
    tr_buf_free(&b);
}

/* ---- Go's strconv.ParseFloat ---- */

static int digits_ok(const char **pp, int hex, int base_prefix, int *any) {
    /* digits with underscores allowed only between digits and only after a base prefix */
    const char *p = *pp;
    int last_us = 0;
    for (;; p++) {
        if (*p == '_') {
            if (!base_prefix) return 0;
            last_us = 1;
            continue;
        }
        if (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p)) {
            *any = 1;
            last_us = 0;
            continue;
        }
        break;
    }
    *pp = p;
    return !last_us;
}

int tr_prom_parse_float(const char *s, double *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (strcasecmp(p, "inf") == 0 || strcasecmp(p, "infinity") == 0) {
        *out = *s == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (strcasecmp(p, "nan") == 0) {
        if (p != s) return -1; /* Go takes no sign on NaN */
        *out = NAN;
        return 0;
    }
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    if (hex) p += 2;
    int any = 0;
    if (!digits_ok(&p, hex, hex, &any)) return -1;
    if (*p == '.') {
        p++;
        if (!digits_ok(&p, hex, hex, &any)) return -1;
    }
    if (!any) return -1;
    if (hex ? (*p == 'p' || *p == 'P') : (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-') p++;
        int e = 0;
        if (!digits_ok(&p, 0, hex, &e) || !e) return -1;
    } else if (hex) {
        return -1; /* a hex float needs its p exponent */
    }
    if (*p) return -1;
    /* the syntax is Go's; strtod computes the value (without the underscores) */
    char tmp[512];
    size_t o = 0;
    for (const char *q = s; *q; q++)
        if (*q != '_') {
            if (o + 1 >= sizeof tmp) return -1;
            tmp[o++] = *q;
        }
    tmp[o] = 0;
    errno = 0;
    char *end;
    double v = strtod(tmp, &end);
    if (*end) return -1;
    if (errno == ERANGE && isinf(v)) return -1;
    *out = v;
    return 0;
}

/* Go's float64 → int64 conversion on amd64: NaN and out-of-range values give MinInt64. */
static int64_t go_f2i(double x) {
    if (isnan(x) || x >= 9223372036854775808.0 || x < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

/* time.Unix(sec, nsec) then Prometheus' timestamp.FromTime, in Go's wrapping arithmetic. */
static int64_t unix_to_ms(int64_t sec, int64_t nsec) {
    uint64_t s = (uint64_t)sec;
    if (nsec < 0 || nsec >= 1000000000) {
        int64_t n = nsec / 1000000000;
        s += (uint64_t)n;
        nsec -= n * 1000000000;
        if (nsec < 0) {
            nsec += 1000000000;
            s--;
        }
    }
    return (int64_t)(s * 1000u + (uint64_t)(nsec / 1000000));
}

/* ---- RFC 3339 as Go's time.Parse(time.RFC3339Nano, s) ---- */

int tr_prom_parse_time(const char *s, int64_t *ms) {
    if (!s) return -1;
    double f;
    if (tr_prom_parse_float(s, &f) == 0) {
        double ip, frac = modf(f, &ip);
        if (isinf(f)) frac = NAN; /* Go's math.Modf(±Inf) gives a NaN fraction, C's a zero */
        frac = round(frac * 1000) / 1000;
        *ms = unix_to_ms(go_f2i(ip), go_f2i(frac * 1e9));
        return 0;
    }
    int64_t sec;
    int32_t nsec;
    if (tr_rfc3339_parse(s, &sec, &nsec) == 0) { /* Go's time.Parse(time.RFC3339Nano, s) */
        *ms = unix_to_ms(sec, nsec);
        return 0;
    }
    if (strcmp(s, "-292273086-05-16T16:47:06Z") == 0) {
        *ms = TR_PROM_MIN_TIME;
        return 0;
    }
    if (strcmp(s, "292277025-08-18T07:12:54.999999999Z") == 0) {
        *ms = TR_PROM_MAX_TIME;
        return 0;
    }
    return -1;
}

/* Prometheus' model.ParseDuration, in nanoseconds. Returns 0, or -1. */
static int model_duration(const char *s, int64_t *ns) {
    int64_t ms;
    if (tr_parse_model_duration(s, &ms) != 0 || ms > INT64_MAX / 1000000) return -1;
    *ns = ms * 1000000;
    return 0;
}

int tr_prom_parse_duration(const char *s, int64_t *ns, char *err, size_t errlen) {
    double f;
    if (tr_prom_parse_float(s, &f) == 0) {
        double t = f * 1e9;
        if (t > 9223372036854775807.0 || t < -9223372036854775808.0) {
            snprintf(err, errlen, "cannot parse \"%.200s\" to a valid duration. It overflows int64", s);
            return -1;
        }
        *ns = go_f2i(t);
        return 0;
    }
    if (model_duration(s, ns) == 0) return 0;
    snprintf(err, errlen, "cannot parse \"%.200s\" to a valid duration", s);
    return -1;
}

int tr_prom_time_param(const tr_form *f, const char *name, int64_t def, int64_t *out, char *err,
                       size_t errlen) {
    const char *v = tr_form_get(f, name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    if (tr_prom_parse_time(v, out) == 0) return 0;
    snprintf(
        err, errlen,
        "invalid parameter \"%s\": Invalid time value for '%s': cannot parse \"%.400s\" to a valid timestamp",
        name, name, v);
    return -1;
}

int tr_prom_duration_param(const tr_form *f, const char *name, int64_t def_ns, int64_t *ns, char *err,
                           size_t errlen) {
    const char *v = tr_form_get(f, name);
    if (!v || !*v) {
        *ns = def_ns;
        return 0;
    }
    char e[300];
    if (tr_prom_parse_duration(v, ns, e, sizeof e) == 0) return 0;
    snprintf(err, errlen, "invalid parameter \"%s\": %s", name, e);
    return -1;
}

int tr_prom_limit_param(const tr_form *f, const char *name, long *out, char *err, size_t errlen) {
    const char *v = tr_form_get(f, name);
    *out = 0;
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long l = strtol(v, &end, 10);
    if (errno || *end || end == v || isspace((unsigned char)*v)) {
        snprintf(err, errlen, "%s must be a number", name);
        return -1;
    }
    *out = l < 0 ? 0 : l; /* negative: no limit, as Prometheus' -1 */
    return 0;
}

void tr_prom_matchsets_free(tr_prom_matchsets *m) {
    for (size_t i = 0; i < m->n; i++)
        tsdb_matchers_free(m->sets[i], m->lens[i]);
    free(m->sets);
    free(m->lens);
    memset(m, 0, sizeof *m);
}

int tr_prom_match_params(const tr_form *f, tr_prom_matchsets *out, char *err, size_t errlen) {
    return tr_prom_match_params_ex(f, out, 0, err, errlen);
}

int tr_prom_match_params_ex(const tr_form *f, tr_prom_matchsets *out, int allow_empty, char *err,
                            size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t count = 0;
    for (size_t i = 0; i < f->n; i++)
        count += strcmp(f->kv[i].key, "match[]") == 0;
    if (!count) return 0;
    if (count > TR_PROM_MAX_MATCH) {
        snprintf(err, errlen, "too many match[] parameters (at most %d)", TR_PROM_MAX_MATCH);
        return -1;
    }
    out->sets = calloc(count, sizeof *out->sets);
    out->lens = calloc(count, sizeof *out->lens);
    if (!out->sets || !out->lens) {
        tr_prom_matchsets_free(out);
        snprintf(err, errlen, "out of memory");
        return -2;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->kv[i].key, "match[]") != 0) continue;
        char e[512];
        int nsel = promql_parse_selector(f->kv[i].value, f->kv[i].vlen, &out->sets[out->n], e, sizeof e);
        if (nsel < 0) {
            snprintf(err, errlen, "invalid parameter \"match[]\": %s", e);
            tr_prom_matchsets_free(out);
            return -1;
        }
        out->lens[out->n++] = (size_t)nsel;
        int nonempty = 0;
        for (size_t k = 0; k < out->lens[out->n - 1]; k++)
            if (!tsdb_matcher_matches(out->sets[out->n - 1][k], "")) nonempty = 1;
        if (!nonempty && !allow_empty) {
            snprintf(err, errlen,
                     "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher");
            tr_prom_matchsets_free(out);
            return -1;
        }
    }
    return 0;
}

int tr_prom_form(struct evhttp_request *req, tr_form *f) {
    char err[300], msg[400];
    int rc = tr_http_form(req, f, err, sizeof err);
    if (rc == 0) return 0;
    tr_form_free(f);
    snprintf(msg, sizeof msg, "error parsing form values: %s", err);
    tr_prom_reply_error(req, rc == -2 ? TR_PROM_INTERNAL : TR_PROM_BAD_DATA, msg);
    return -1;
}

/* ---- envelope ---- */

static void note_add(char **v, size_t *n, const char *msg) {
    if (*n < 10) v[*n] = strdup(msg);
    if (*n < 10 && !v[*n]) return;
    (*n)++;
}

void tr_prom_warn(tr_prom_notes *n, const char *msg) { note_add(n->warnings, &n->nwarn, msg); }
void tr_prom_info(tr_prom_notes *n, const char *msg) { note_add(n->infos, &n->ninfo, msg); }

void tr_prom_notes_free(tr_prom_notes *n) {
    for (size_t i = 0; i < 10; i++) {
        free(n->warnings[i]);
        free(n->infos[i]);
    }
    memset(n, 0, sizeof *n);
}

void tr_prom_open_success(tr_json *j) {
    tr_json_obj_open(j);
    tr_json_key(j, "status");
    tr_json_str(j, "success");
    tr_json_key(j, "data");
}

static void notes(tr_json *j, const char *key, char *const *v, size_t n, const char *what) {
    if (!n) return;
    tr_json_key(j, key);
    tr_json_arr_open(j);
    for (size_t i = 0; i < n && i < 10; i++)
        tr_json_str(j, v[i]);
    if (n > 10) {
        char m[96];
        snprintf(m, sizeof m, "%zu more %s annotations omitted", n - 10, what);
        tr_json_str(j, m);
    }
    tr_json_arr_close(j);
}

void tr_prom_close_success(tr_json *j, const tr_prom_notes *n) {
    if (n) {
        notes(j, "warnings", n->warnings, n->nwarn, "warning");
        notes(j, "infos", n->infos, n->ninfo, "info");
    }
    tr_json_obj_close(j);
}

void tr_prom_reply_json(struct evhttp_request *req, const tr_buf *b) {
    if (b->failed)
        tr_prom_reply_error(req, TR_PROM_INTERNAL, "response too large or out of memory");
    else
        tr_http_reply_buf(req, 200, "application/json", b);
}

/* Go's strconv.FormatFloat(v, 'e', -1, 64): the shortest mantissa that round-trips. */
static void format_e(char *out, size_t cap, double v) {
    char m[48];
    /* 15 significant digits that read back are the shortest form padded with zeros (see
     * shortest_digits in util/buf.c); else 16, else 17 */
    for (int prec = fabs(v) >= DBL_MIN ? 14 : 0; prec <= 16; prec++) { /* subnormals: all */
        snprintf(m, sizeof m, "%.*e", prec, v);
        if (prec == 16 || strtod(m, NULL) == v) break;
    }
    char *ep = strchr(m, 'e');
    char *z = ep;
    while (z > m && z[-1] == '0')
        z--;
    if (z > m && z[-1] == '.') z--;
    snprintf(out, cap, "%.*s%s", (int)(z - m), m, ep);
}

void tr_prom_json_float(tr_json *j, double v) {
    char s[TR_DOUBLE_MAX_TEXT];
    double a = fabs(v);
    if (isfinite(v) && a != 0 && (a < 1e-6 || a >= 1e21))
        format_e(s, sizeof s, v);
    else
        tr_format_double(s, sizeof s, v);
    tr_json_str(j, s);
}

void tr_prom_json_ts(tr_json *j, int64_t ms) {
    char s[48], r[24];
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    size_t o = 0;
    int n = 0;
    if (ms < 0) s[o++] = '-';
    uint64_t sec = a / 1000;
    do {
        r[n++] = (char)('0' + sec % 10);
        sec /= 10;
    } while (sec);
    while (n)
        s[o++] = r[--n];
    unsigned frac = (unsigned)(a % 1000);
    if (frac) {
        s[o++] = '.';
        s[o++] = (char)('0' + frac / 100);
        s[o++] = (char)('0' + frac / 10 % 10);
        s[o++] = (char)('0' + frac % 10);
    }
    tr_json_raw(j, s, o);
}

void tr_prom_json_labels(tr_json *j, const tsdb_label *l, size_t n) {
    tr_json_obj_open(j);
    for (size_t i = 0; i < n; i++) {
        tr_json_key(j, l[i].name);
        tr_json_str(j, l[i].value);
    }
    tr_json_obj_close(j);
}

/* ---- merge ---- */

static int labels_cmp(const tsdb_label *a, size_t an, const tsdb_label *b, size_t bn) {
    size_t m = an < bn ? an : bn;
    for (size_t k = 0; k < m; k++) {
        int c = strcmp(a[k].name, b[k].name);
        if (!c) c = strcmp(a[k].value, b[k].value);
        if (c) return c;
    }
    return an < bn ? -1 : an > bn;
}

int tr_prom_merge_init(tr_prom_merge *m, tsdb_seriesset **sets, size_t n) {
    memset(m, 0, sizeof *m);
    m->sets = sets;
    m->n = n;
    m->pos = calloc(n ? n : 1, sizeof *m->pos);
    return m->pos ? 0 : -1;
}

int tr_prom_merge_next(tr_prom_merge *m, tsdb_seriesset **set, size_t *idx, const tsdb_label **l,
                       size_t *nl) {
    for (;;) {
        int best = -1;
        const tsdb_label *bl = NULL;
        size_t bn = 0;
        for (size_t i = 0; i < m->n; i++) {
            if (m->pos[i] >= tsdb_seriesset_len(m->sets[i])) continue;
            const tsdb_label *x;
            size_t xn = tsdb_seriesset_labels(m->sets[i], m->pos[i], &x);
            if (best < 0 || labels_cmp(x, xn, bl, bn) < 0) best = (int)i, bl = x, bn = xn;
        }
        if (best < 0) return 0;
        size_t at = m->pos[best]++;
        if (m->prev && labels_cmp(m->prev, m->prevn, bl, bn) == 0) continue; /* seen in another set */
        m->prev = bl;
        m->prevn = bn;
        *set = m->sets[best];
        *idx = at;
        *l = bl;
        *nl = bn;
        return 1;
    }
}

void tr_prom_merge_free(tr_prom_merge *m) {
    free(m->pos);
    memset(m, 0, sizeof *m);
}
