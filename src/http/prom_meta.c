/* Prometheus metadata and status APIs over the metrics store: /api/v1/series, /labels,
 * /label/<name>/values, /metadata, /status/buildinfo, /status/tsdb, and the admin calls that
 * cut the head into a block (/api/v1/admin/tsdb/snapshot, /internal/force_flush). Shapes,
 * parameter parsing and error texts follow Prometheus 2.42. */
#include "api.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sys/queue.h>

#include "metrics/metrics.h"
#include "promql/promql.h"
#include "util/log.h"

#ifndef TRICORDER_VERSION
#define TRICORDER_VERSION "dev"
#endif

/* Prometheus' MinTime/MaxTime (as milliseconds) and their formatted forms. */
#define PROM_MIN_TIME (-9223309901257974LL)
#define PROM_MAX_TIME (9223309901257974LL)

/* ---- parameter helpers (shared with prom_export.c) ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 3339 with optional fraction and a Z or ±hh:mm zone. */
static int parse_rfc3339(const char *s, int64_t *ms) {
    int neg = 0;
    if (*s == '-') neg = 1, s++;
    char *end;
    long long y = strtoll(s, &end, 10);
    if (end == s || end - s < 4 || *end != '-') return -1;
    if (neg) y = -y;
    unsigned mo, d, h, mi, se;
    int n = 0;
    if (sscanf(end, "-%2u-%2uT%2u:%2u:%2u%n", &mo, &d, &h, &mi, &se, &n) != 5 || n != 15) return -1;
    const char *p = end + n;
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        int64_t scale = 100;
        while (isdigit((unsigned char)*p)) {
            if (digits < 3) frac_ms += (*p - '0') * scale, scale /= 10;
            digits++;
            p++;
        }
        if (!digits) return -1;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        unsigned oh, om;
        int k = 0;
        if (sscanf(p + 1, "%2u:%2u%n", &oh, &om, &k) != 2 || k != 5) return -1;
        off = (int64_t)(oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

int tr_prom_parse_time(const char *s, int64_t *ms) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double f = strtod(s, &end);
    if (end != s && !*end && !isspace((unsigned char)*s)) {
        if (!isfinite(f)) return -1;
        double ip;
        double frac = modf(f, &ip);
        if (fabs(ip) > 9.2e15) return -1;
        *ms = (int64_t)ip * 1000 + (int64_t)llround(frac * 1000);
        return 0;
    }
    if (strcmp(s, "-292273086-05-16T16:47:06Z") == 0) {
        *ms = PROM_MIN_TIME;
        return 0;
    }
    if (strcmp(s, "292277025-08-18T07:12:54.999999999Z") == 0) {
        *ms = PROM_MAX_TIME;
        return 0;
    }
    return parse_rfc3339(s, ms);
}

/* Reads a time parameter; on error replies 400 and returns -1. */
int tr_prom_time_param(struct evhttp_request *req, struct evkeyvalq *q, const char *name,
                       int64_t def, int64_t *out) {
    const char *v = tr_http_param(q, name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    if (tr_prom_parse_time(v, out) == 0) return 0;
    char msg[600];
    snprintf(msg, sizeof msg, "invalid parameter \"%s\": Invalid time value for '%s': cannot parse \"%.400s\" to a valid timestamp",
             name, name, v);
    tr_http_reply_prom_error(req, 400, "bad_data", msg);
    return -1;
}

/* The parsed match[] parameters. */
typedef struct matchsets {
    tsdb_matcher ***sets;
    size_t *lens;
    size_t n;
} matchsets;

void tr_prom_matchsets_free(matchsets *m) {
    for (size_t i = 0; i < m->n; i++) tsdb_matchers_free(m->sets[i], m->lens[i]);
    free(m->sets);
    free(m->lens);
    memset(m, 0, sizeof *m);
}

/* Parses every match[]; on error replies 400 and returns -1. */
int tr_prom_match_params(struct evhttp_request *req, struct evkeyvalq *q, matchsets *out) {
    memset(out, 0, sizeof *out);
    struct evkeyval *kv;
    size_t cap = 0;
    TAILQ_FOREACH(kv, q, next) {
        if (strcmp(kv->key, "match[]") != 0) continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 4;
            if (cap > 1024) {
                tr_http_reply_prom_error(req, 400, "bad_data", "too many match[] parameters");
                goto fail;
            }
            tsdb_matcher ***ns = realloc(out->sets, cap * sizeof *ns);
            size_t *nl = realloc(out->lens, cap * sizeof *nl);
            if (ns) out->sets = ns;
            if (nl) out->lens = nl;
            if (!ns || !nl) {
                tr_http_reply_prom_error(req, 500, "internal", "out of memory");
                goto fail;
            }
        }
        char err[512], msg[1200];
        int nsel = promql_parse_selector(kv->value, strlen(kv->value), &out->sets[out->n], err, sizeof err);
        if (nsel < 0) {
            snprintf(msg, sizeof msg, "invalid parameter \"match[]\": %s", err);
            tr_http_reply_prom_error(req, 400, "bad_data", msg);
            goto fail;
        }
        out->lens[out->n++] = (size_t)nsel;
        int nonempty = 0;
        for (size_t i = 0; i < out->lens[out->n - 1]; i++)
            if (!tsdb_matcher_matches(out->sets[out->n - 1][i], "")) nonempty = 1;
        if (!nonempty) {
            tr_http_reply_prom_error(req, 400, "bad_data",
                                     "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher");
            goto fail;
        }
    }
    return 0;
fail:
    tr_prom_matchsets_free(out);
    return -1;
}

/* limit=<n>: 0 or absent = none. Replies 400 and returns -1 when malformed. */
static int limit_param(struct evhttp_request *req, struct evkeyvalq *q, const char *name, long *out) {
    const char *v = tr_http_param(q, name);
    *out = 0;
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long l = strtol(v, &end, 10);
    if (errno || *end || end == v) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s must be a number", name);
        tr_http_reply_prom_error(req, 400, "bad_data", msg);
        return -1;
    }
    *out = l < 0 ? 0 : l; /* negative: no limit, as Prometheus' -1 */
    return 0;
}

static int method_ok(struct evhttp_request *req, int allow_post) {
    enum evhttp_cmd_type c = evhttp_request_get_command(req);
    if (c == EVHTTP_REQ_GET || c == EVHTTP_REQ_HEAD || (allow_post && c == EVHTTP_REQ_POST)) return 1;
    if (c == EVHTTP_REQ_OPTIONS) {
        tr_http_reply(req, 204, NULL, NULL, 0);
        return 0;
    }
    tr_http_reply_text(req, 405, "Method Not Allowed");
    return 0;
}

static void reply_json(struct evhttp_request *req, tr_buf *b) {
    if (b->failed) {
        tr_http_reply_prom_error(req, 500, "internal", "response too large or out of memory");
        return;
    }
    tr_http_reply_buf(req, 200, "application/json", b);
}

static void open_success(tr_json *j) {
    tr_json_obj_open(j);
    tr_json_key(j, "status");
    tr_json_str(j, "success");
    tr_json_key(j, "data");
}

static void close_success(tr_json *j, int truncated) {
    if (truncated) {
        tr_json_key(j, "warnings");
        tr_json_arr_open(j);
        tr_json_str(j, "results truncated due to limit");
        tr_json_arr_close(j);
    }
    tr_json_obj_close(j);
}

/* ---- /api/v1/series ---- */

static void api_series(struct evhttp_request *req, const char *path, void *ctx) {
    tsdb *db = ctx;
    struct evkeyvalq q;
    matchsets ms = {0};
    if (!method_ok(req, 1)) return;
    if (tr_http_params(req, &q) != 0) {
        tr_http_reply_prom_error(req, 400, "bad_data", "error parsing form values");
        return;
    }
    int64_t start, end;
    long limit;
    if (!tr_http_param(&q, "match[]")) {
        tr_http_reply_prom_error(req, 400, "bad_data", "no match[] parameter provided");
        goto out;
    }
    if (tr_prom_time_param(req, &q, "start", PROM_MIN_TIME, &start) ||
        tr_prom_time_param(req, &q, "end", PROM_MAX_TIME, &end) || limit_param(req, &q, "limit", &limit) ||
        tr_prom_match_params(req, &q, &ms))
        goto out;
    tsdb_querier *qr = tsdb_querier_open(db, start, end);
    if (!qr) {
        tr_http_reply_prom_error(req, 500, "internal", "out of memory");
        goto out;
    }
    tsdb_seriesset **sets = calloc(ms.n, sizeof *sets);
    char err[512];
    int failed = !sets;
    for (size_t i = 0; sets && i < ms.n && !failed; i++) {
        sets[i] = tsdb_select(qr, ms.sets[i], ms.lens[i], 0, err, sizeof err);
        if (!sets[i]) failed = 1;
    }
    if (failed) {
        tr_http_reply_prom_error(req, 500, "internal", sets ? err : "out of memory");
    } else {
        /* k-way merge of sorted sets, dropping duplicates */
        tr_buf b;
        tr_buf_init(&b, 0);
        tr_json j;
        tr_json_init(&j, &b);
        open_success(&j);
        tr_json_arr_open(&j);
        size_t *pos = calloc(ms.n, sizeof *pos), count = 0;
        int truncated = 0;
        const tsdb_label *prev = NULL;
        size_t prevn = 0;
        for (;;) {
            int best = -1;
            const tsdb_label *bl = NULL;
            size_t bn = 0;
            for (size_t i = 0; pos && i < ms.n; i++) {
                if (pos[i] >= tsdb_seriesset_len(sets[i])) continue;
                const tsdb_label *l;
                size_t n = tsdb_seriesset_labels(sets[i], pos[i], &l);
                int c = 0;
                if (best >= 0) {
                    size_t m = n < bn ? n : bn;
                    for (size_t k = 0; k < m && !c; k++) {
                        c = strcmp(l[k].name, bl[k].name);
                        if (!c) c = strcmp(l[k].value, bl[k].value);
                    }
                    if (!c) c = n < bn ? -1 : n > bn;
                }
                if (best < 0 || c < 0) best = (int)i, bl = l, bn = n;
            }
            if (best < 0) break;
            pos[best]++;
            int dup = prev && prevn == bn;
            for (size_t k = 0; dup && k < bn; k++)
                if (strcmp(prev[k].name, bl[k].name) || strcmp(prev[k].value, bl[k].value)) dup = 0;
            if (dup) continue;
            prev = bl;
            prevn = bn;
            if (limit > 0 && count >= (size_t)limit) {
                truncated = 1;
                break;
            }
            count++;
            tr_json_obj_open(&j);
            for (size_t k = 0; k < bn; k++) {
                tr_json_key(&j, bl[k].name);
                tr_json_str(&j, bl[k].value);
            }
            tr_json_obj_close(&j);
        }
        free(pos);
        tr_json_arr_close(&j);
        close_success(&j, truncated);
        reply_json(req, &b);
        tr_buf_free(&b);
    }
    for (size_t i = 0; sets && i < ms.n; i++) tsdb_seriesset_free(sets[i]);
    free(sets);
    tsdb_querier_close(qr);
out:
    tr_prom_matchsets_free(&ms);
    evhttp_clear_headers(&q);
}

/* ---- /api/v1/labels and /api/v1/label/<name>/values ---- */

static void reply_strings(struct evhttp_request *req, char **v, size_t n, long limit) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    open_success(&j);
    tr_json_arr_open(&j);
    int truncated = limit > 0 && n > (size_t)limit;
    if (truncated) n = (size_t)limit;
    for (size_t i = 0; i < n; i++) tr_json_str(&j, v[i]);
    tr_json_arr_close(&j);
    close_success(&j, truncated);
    reply_json(req, &b);
    tr_buf_free(&b);
}

static void label_api(struct evhttp_request *req, tsdb *db, const char *name, int allow_post) {
    struct evkeyvalq q;
    matchsets ms = {0};
    if (!method_ok(req, allow_post)) return;
    if (tr_http_params(req, &q) != 0) {
        tr_http_reply_prom_error(req, 400, "bad_data", "error parsing form values");
        return;
    }
    int64_t start, end;
    long limit;
    if (tr_prom_time_param(req, &q, "start", PROM_MIN_TIME, &start) ||
        tr_prom_time_param(req, &q, "end", PROM_MAX_TIME, &end) || limit_param(req, &q, "limit", &limit) ||
        tr_prom_match_params(req, &q, &ms))
        goto out;
    tsdb_querier *qr = tsdb_querier_open(db, start, end);
    char **v = NULL, err[512];
    size_t n = 0;
    int rc = !qr ? -1
             : name ? tsdb_label_values(qr, name, ms.sets, ms.lens, ms.n, &v, &n, err, sizeof err)
                    : tsdb_label_names(qr, ms.sets, ms.lens, ms.n, &v, &n, err, sizeof err);
    if (rc != 0) tr_http_reply_prom_error(req, 500, "internal", qr ? err : "out of memory");
    else reply_strings(req, v, n, limit);
    tsdb_strings_free(v, n);
    tsdb_querier_close(qr);
out:
    tr_prom_matchsets_free(&ms);
    evhttp_clear_headers(&q);
}

static void api_labels(struct evhttp_request *req, const char *path, void *ctx) {
    label_api(req, ctx, NULL, 1);
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Undoes Prometheus' U__ escaping (`U__http_2e_status` → `http.status`). 0 or -1. */
static int unescape_name(const char *in, char *out, size_t cap) {
    if (strncmp(in, "U__", 3) != 0) {
        if (strlen(in) >= cap) return -1;
        strcpy(out, in);
        return 0;
    }
    size_t o = 0;
    for (const char *p = in + 3; *p; p++) {
        if (o + 5 >= cap) return -1;
        if (*p != '_') {
            out[o++] = *p;
            continue;
        }
        if (p[1] == '_') {
            out[o++] = '_';
            p++;
            continue;
        }
        uint32_t cp = 0;
        const char *e = p + 1;
        while (hexv(*e) >= 0 && e - p < 8) cp = cp * 16 + (uint32_t)hexv(*e++);
        if (*e != '_' || e == p + 1) return -1;
        if (cp < 0x80) out[o++] = (char)cp;
        else if (cp < 0x800) out[o++] = (char)(0xc0 | cp >> 6), out[o++] = (char)(0x80 | (cp & 63));
        else if (cp < 0x10000)
            out[o++] = (char)(0xe0 | cp >> 12), out[o++] = (char)(0x80 | ((cp >> 6) & 63)), out[o++] = (char)(0x80 | (cp & 63));
        else
            out[o++] = (char)(0xf0 | cp >> 18), out[o++] = (char)(0x80 | ((cp >> 12) & 63)),
            out[o++] = (char)(0x80 | ((cp >> 6) & 63)), out[o++] = (char)(0x80 | (cp & 63));
        p = e;
    }
    out[o] = 0;
    return 0;
}

static int valid_label_name(const char *s) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!(isalpha((unsigned char)*p) || *p == '_' || (p > s && isdigit((unsigned char)*p)))) return 0;
    return 1;
}

static void api_label_values(struct evhttp_request *req, const char *path, void *ctx) {
    /* path: /api/v1/label/<name>/values */
    const char *p = path + strlen("/api/v1/label/");
    const char *slash = strchr(p, '/');
    if (!slash || strcmp(slash, "/values") != 0) {
        tr_http_reply_text(req, 404, "404 page not found");
        return;
    }
    char raw[1024], name[1024], msg[1200];
    size_t l = (size_t)(slash - p);
    if (l >= sizeof raw) l = sizeof raw - 1;
    memcpy(raw, p, l);
    raw[l] = 0;
    if (unescape_name(raw, name, sizeof name) != 0 || (!valid_label_name(name) && strncmp(raw, "U__", 3) != 0)) {
        snprintf(msg, sizeof msg, "invalid label name: \"%s\"", raw);
        tr_http_reply_prom_error(req, 400, "bad_data", msg);
        return;
    }
    label_api(req, ctx, name, 0);
}

/* ---- /api/v1/metadata ---- */

typedef struct metactx {
    tr_json *j;
    const char *metric;
    long limit, per_metric;
    long count;
} metactx;

static int meta_fn(void *ctx, const tsdb_metadata *m) {
    metactx *c = ctx;
    if (c->metric && strcmp(c->metric, m->family) != 0) return 0;
    if (c->limit > 0 && c->count >= c->limit) return 1;
    c->count++;
    tr_json_key(c->j, m->family);
    tr_json_arr_open(c->j);
    {
        tr_json_obj_open(c->j);
        tr_json_key(c->j, "type");
        tr_json_str(c->j, m->type);
        tr_json_key(c->j, "help");
        tr_json_str(c->j, m->help);
        tr_json_key(c->j, "unit");
        tr_json_str(c->j, m->unit);
        tr_json_obj_close(c->j);
    }
    tr_json_arr_close(c->j);
    return 0;
}

static void api_metadata(struct evhttp_request *req, const char *path, void *ctx) {
    struct evkeyvalq q;
    if (!method_ok(req, 0)) return;
    if (tr_http_params(req, &q) != 0) {
        tr_http_reply_prom_error(req, 400, "bad_data", "error parsing form values");
        return;
    }
    metactx c = {0};
    if (limit_param(req, &q, "limit", &c.limit) || limit_param(req, &q, "limit_per_metric", &c.per_metric)) goto out;
    const char *metric = tr_http_param(&q, "metric");
    c.metric = metric && *metric ? metric : NULL;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    c.j = &j;
    open_success(&j);
    tr_json_obj_open(&j);
    tsdb_metadata_foreach(ctx, meta_fn, &c);
    tr_json_obj_close(&j);
    tr_json_obj_close(&j);
    reply_json(req, &b);
    tr_buf_free(&b);
out:
    evhttp_clear_headers(&q);
}

/* ---- status ---- */

static void api_buildinfo(struct evhttp_request *req, const char *path, void *ctx) {
    if (!method_ok(req, 0)) return;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    open_success(&j);
    tr_json_obj_open(&j);
    /* the version is the Prometheus API level we answer as, so that clients that pick features
     * by version (Grafana) use the right ones; the revision names tricorder */
    tr_json_key(&j, "version");
    tr_json_str(&j, "2.42.0");
    tr_json_key(&j, "revision");
    tr_json_str(&j, "tricorder-" TRICORDER_VERSION);
    tr_json_key(&j, "branch");
    tr_json_str(&j, "tricorder");
    tr_json_key(&j, "buildUser");
    tr_json_str(&j, "tricorder");
    tr_json_key(&j, "buildDate");
    tr_json_str(&j, __DATE__);
    tr_json_key(&j, "goVersion");
    tr_json_str(&j, "none (C11)");
    tr_json_obj_close(&j);
    tr_json_obj_close(&j);
    reply_json(req, &b);
    tr_buf_free(&b);
}

static void card_list(tr_json *j, const char *key, const tsdb_card_entry *e, size_t n) {
    tr_json_key(j, key);
    tr_json_arr_open(j);
    for (size_t i = 0; i < n; i++) {
        tr_json_obj_open(j);
        tr_json_key(j, "name");
        tr_json_str(j, e[i].name);
        tr_json_key(j, "value");
        tr_json_uint(j, e[i].value);
        tr_json_obj_close(j);
    }
    tr_json_arr_close(j);
}

static void api_status_tsdb(struct evhttp_request *req, const char *path, void *ctx) {
    tsdb *db = ctx;
    struct evkeyvalq q;
    if (!method_ok(req, 0)) return;
    if (tr_http_params(req, &q) != 0) {
        tr_http_reply_prom_error(req, 400, "bad_data", "error parsing form values");
        return;
    }
    long limit = 10;
    const char *ls = tr_http_param(&q, "limit");
    if (ls && *ls) {
        char *e;
        limit = strtol(ls, &e, 10);
        if (*e || limit <= 0 || limit > 10000) {
            tr_http_reply_prom_error(req, 400, "bad_data", "limit must be a positive number");
            evhttp_clear_headers(&q);
            return;
        }
    }
    evhttp_clear_headers(&q);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    tsdb_card c;
    tsdb_head_cardinality(db, (size_t)limit, &c);
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    open_success(&j);
    tr_json_obj_open(&j);
    tr_json_key(&j, "headStats");
    tr_json_obj_open(&j);
    tr_json_key(&j, "numSeries");
    tr_json_uint(&j, st.head_series);
    tr_json_key(&j, "numLabelPairs");
    tr_json_uint(&j, c.num_label_pairs);
    tr_json_key(&j, "chunkCount");
    tr_json_uint(&j, st.head_chunks + c.open_chunks);
    tr_json_key(&j, "minTime");
    tr_json_int(&j, st.head_mint);
    tr_json_key(&j, "maxTime");
    tr_json_int(&j, st.head_maxt);
    tr_json_obj_close(&j);
    card_list(&j, "seriesCountByMetricName", c.by_metric, c.n_by_metric);
    card_list(&j, "labelValueCountByLabelName", c.label_value_count, c.n_label_value_count);
    card_list(&j, "memoryInBytesByLabelName", c.memory_by_label, c.n_memory_by_label);
    card_list(&j, "seriesCountByLabelValuePair", c.by_pair, c.n_by_pair);
    tr_json_obj_close(&j);
    tr_json_obj_close(&j);
    tsdb_card_free(&c);
    reply_json(req, &b);
    tr_buf_free(&b);
}

/* ---- admin: flush / snapshot ---- */

/* Cutting the head into a block takes a while on a big head: it runs on its own thread and
 * the reply goes out from the loop when it is done, so ingest keeps flowing meanwhile. */
typedef struct flushjob {
    struct evhttp_request *req;
    tsdb *db;
    int snapshot;
    int rc;
    char err[512], name[128];
    struct event *ev;
} flushjob;

static void flush_reply(evutil_socket_t fd, short what, void *arg) {
    flushjob *j = arg;
    if (j->snapshot) {
        if (j->rc) {
            tr_http_reply_prom_error(j->req, 500, "internal", j->err);
        } else {
            tr_buf b;
            tr_buf_init(&b, 0);
            tr_json js;
            tr_json_init(&js, &b);
            open_success(&js);
            tr_json_obj_open(&js);
            tr_json_key(&js, "name");
            tr_json_str(&js, j->name);
            tr_json_obj_close(&js);
            tr_json_obj_close(&js);
            reply_json(j->req, &b);
            tr_buf_free(&b);
        }
    } else if (j->rc) {
        tr_http_reply_text(j->req, 500, j->err);
    } else {
        tr_http_reply(j->req, 200, NULL, NULL, 0);
    }
    event_free(j->ev);
    free(j);
}

static void *flush_main(void *arg) {
    flushjob *j = arg;
    j->rc = j->snapshot ? tsdb_snapshot(j->db, j->name, sizeof j->name, j->err, sizeof j->err)
                        : tsdb_flush(j->db, j->err, sizeof j->err);
    event_active(j->ev, EV_READ, 0);
    return NULL;
}

static void start_flush(struct evhttp_request *req, tsdb *db, int snapshot) {
    flushjob *j = calloc(1, sizeof *j);
    struct event_base *base = evhttp_connection_get_base(evhttp_request_get_connection(req));
    pthread_t th;
    if (!j || !base || !(j->ev = event_new(base, -1, 0, flush_reply, j))) {
        free(j);
        tr_http_reply_prom_error(req, 500, "internal", "out of memory");
        return;
    }
    j->req = req;
    j->db = db;
    j->snapshot = snapshot;
    if (pthread_create(&th, NULL, flush_main, j) != 0) {
        event_free(j->ev);
        free(j);
        tr_http_reply_prom_error(req, 500, "internal", "cannot start the flush");
        return;
    }
    pthread_detach(th);
}

static void api_force_flush(struct evhttp_request *req, const char *path, void *ctx) {
    if (!method_ok(req, 1)) return;
    start_flush(req, ctx, 0);
}

static void api_snapshot(struct evhttp_request *req, const char *path, void *ctx) {
    enum evhttp_cmd_type c = evhttp_request_get_command(req);
    if (c != EVHTTP_REQ_POST && c != EVHTTP_REQ_PUT) {
        tr_http_reply_text(req, 405, "Method Not Allowed");
        return;
    }
    start_flush(req, ctx, 1);
}

void tr_api_export(struct evhttp_request *req, const char *path, void *ctx);
void tr_api_federate(struct evhttp_request *req, const char *path, void *ctx);
void tr_api_prom_exemplars_route(tr_http *h, tsdb *db); /* prom_exemplars.c */

void tr_api_prom_routes(tr_http *h, tsdb *db) {
    tr_http_route(h, "/api/v1/series", 0, api_series, db);
    tr_http_route(h, "/api/v1/labels", 0, api_labels, db);
    tr_http_route(h, "/api/v1/label/", TR_HTTP_PREFIX, api_label_values, db);
    tr_http_route(h, "/api/v1/metadata", 0, api_metadata, db);
    tr_http_route(h, "/api/v1/status/buildinfo", 0, api_buildinfo, db);
    tr_http_route(h, "/api/v1/status/tsdb", 0, api_status_tsdb, db);
    tr_http_route(h, "/api/v1/admin/tsdb/snapshot", 0, api_snapshot, db);
    tr_http_route(h, "/internal/force_flush", 0, api_force_flush, db);
    tr_http_route(h, "/api/v1/export/prometheus", 0, tr_api_export, db);
    tr_http_route(h, "/federate", 0, tr_api_federate, db);
    tr_api_prom_exemplars_route(h, db);
}
