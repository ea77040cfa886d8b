/* Ways out of the metrics store in the Prometheus text exposition format:
 * /api/v1/export/prometheus (VictoriaMetrics' export: every sample in [start, end], one line
 * each, with its timestamp) and /federate (Prometheus' federation: the latest sample of each
 * matching series within the 5-minute lookback, under a TYPE line per metric name). Both run
 * on the work queue and stream their reply: one series' samples are in memory at a time, and
 * the producer waits for a slow client. */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "prom_api.h"
#include "util/arena.h"
#include "util/clock.h"
#include "util/pbwire.h"

#define CHUNK (64u << 10)

#define LOOKBACK_MS (5 * 60 * 1000)

static void put_escaped(tr_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            tr_buf_puts(b, "\\\\");
        else if (*s == '"')
            tr_buf_puts(b, "\\\"");
        else if (*s == '\n')
            tr_buf_puts(b, "\\n");
        else
            tr_buf_putc(b, *s);
    }
}

/* name{l="v",…} without __name__; `add_instance` appends instance="" when absent. */
static void put_series(tr_buf *b, const tsdb_label *l, size_t n, int add_instance) {
    const char *name = "";
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, "__name__") == 0) name = l[i].value;
    tr_buf_puts(b, name);
    int first = 1, has_instance = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].name, "__name__") == 0) continue;
        if (strcmp(l[i].name, "instance") == 0) has_instance = 1;
        tr_buf_putc(b, first ? '{' : ',');
        first = 0;
        tr_buf_puts(b, l[i].name);
        tr_buf_puts(b, "=\"");
        put_escaped(b, l[i].value);
        tr_buf_putc(b, '"');
    }
    if (add_instance && !has_instance) {
        tr_buf_puts(b, first ? "{" : ",");
        tr_buf_puts(b, "instance=\"\"");
        first = 0;
    }
    if (!first) tr_buf_putc(b, '}');
}

/* A value as Prometheus' text writer formats it: Go's shortest %g, except that -0 (equal to 0
 * in Go's `f == 0` special case) prints 0. */
static void put_value(char *out, size_t cap, double v) {
    if (v == 0)
        snprintf(out, cap, "0");
    else
        tr_format_double_g(out, cap, v);
}

/* ---- content negotiation (Prometheus' expfmt.Negotiate over goautoneg's ParseAccept) ---- */

#define PROTO_DELIM_CTYPE                                                                                    \
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
#define TEXT_CTYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct accept_ent {
    char type[64], sub[128], proto[96], encoding[32], version[32];
    int has_version;
    double q;
} accept_ent;

static void trim_copy(char *dst, size_t cap, const char *s, size_t n) {
    while (n && *s == ' ')
        s++, n--;
    while (n && s[n - 1] == ' ')
        n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* goautoneg's order: higher q first, then concrete types before wildcards; Go's sort.Sort on
 * so short a list is an insertion sort, which keeps the header's order among equals. */
static int accept_less(const accept_ent *a, const accept_ent *b) {
    if (a->q > b->q) return 1;
    if (strcmp(a->type, "*") != 0 && strcmp(b->type, "*") == 0) return 1;
    if (strcmp(a->sub, "*") != 0 && strcmp(b->sub, "*") == 0) return 1;
    return 0;
}

int tr_prom_wants_protobuf(const char *h) {
    if (!h) return 0;
    accept_ent e[12];
    size_t n = 0;
    for (const char *p = h; n < 12;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        accept_ent a = {.q = 1.0};
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *mr_end = semi ? semi : end;
        const char *slash = memchr(p, '/', (size_t)(mr_end - p));
        int ok = 1;
        if (slash) {
            trim_copy(a.type, sizeof a.type, p, (size_t)(slash - p));
            if (memchr(slash + 1, '/', (size_t)(mr_end - slash - 1))) ok = 0;
            trim_copy(a.sub, sizeof a.sub, slash + 1, (size_t)(mr_end - slash - 1));
        } else {
            trim_copy(a.type, sizeof a.type, p, (size_t)(mr_end - p));
            if (strcmp(a.type, "*") == 0)
                strcpy(a.sub, "*");
            else
                ok = 0;
        }
        for (const char *q = semi; ok && q && q < end;) {
            const char *next = memchr(q + 1, ';', (size_t)(end - q - 1));
            const char *pend = next ? next : end;
            const char *eq = memchr(q + 1, '=', (size_t)(pend - q - 1));
            if (eq) {
                char key[32], val[128];
                trim_copy(key, sizeof key, q + 1, (size_t)(eq - q - 1));
                trim_copy(val, sizeof val, eq + 1, (size_t)(pend - eq - 1));
                if (strcmp(key, "q") == 0) {
                    char raw[64]; /* ParseFloat sees the value untrimmed; a bad one is 0 */
                    size_t rn =
                        (size_t)(pend - eq - 1) < sizeof raw - 1 ? (size_t)(pend - eq - 1) : sizeof raw - 1;
                    memcpy(raw, eq + 1, rn);
                    raw[rn] = 0;
                    char *x;
                    a.q = strtod(raw, &x);
                    if (x == raw || *x || raw[0] == ' ' || raw[0] == '\t') a.q = 0;
                } else if (strcmp(key, "proto") == 0) {
                    trim_copy(a.proto, sizeof a.proto, val, strlen(val));
                } else if (strcmp(key, "encoding") == 0) {
                    trim_copy(a.encoding, sizeof a.encoding, val, strlen(val));
                } else if (strcmp(key, "version") == 0) {
                    trim_copy(a.version, sizeof a.version, val, strlen(val));
                    a.has_version = 1;
                }
            }
            q = next;
        }
        if (ok) e[n++] = a;
        if (!comma) break;
        p = comma + 1;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && accept_less(&e[j], &e[j - 1]); j--) {
            accept_ent t = e[j];
            e[j] = e[j - 1];
            e[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].type, "application") == 0 && strcmp(e[i].sub, "vnd.google.protobuf") == 0 &&
            strcmp(e[i].proto, "io.prometheus.client.MetricFamily") == 0 &&
            strcmp(e[i].encoding, "delimited") == 0)
            return 1;
        if (strcmp(e[i].type, "text") == 0 && strcmp(e[i].sub, "plain") == 0 &&
            (!e[i].has_version || !*e[i].version || strcmp(e[i].version, "0.0.4") == 0))
            return 0;
    }
    return 0;
}

/* ---- federation output: one family per metric name, in name order ---- */

/* A series whose labels include a name sorting before __name__ (upper case, "_A") comes out of
 * the label-ordered merge before every series that starts with __name__, whatever its name:
 * such series are held back, ordered by name and emitted inside their family. */
typedef struct held {
    const char *name;
    tsdb_label *l;
    size_t nl, seq;
    int64_t t;
    double v;
} held;

typedef struct fed {
    tr_buf *out;
    int proto;
    char family[1024];
    int have_family;
    tr_buf fam; /* protobuf: the Metric messages of the open family */
    held *held; /* sorted by (name, seq) once the first ordinary series arrives */
    size_t nheld, capheld, next_held;
    int held_sorted;
    tr_arena *arena; /* the held series' labels */
} fed;

static void pb_tag_len(tr_buf *b, unsigned field, size_t len) {
    uint8_t v[20];
    size_t k = tr_pb_put_varint(v, (uint64_t)field << 3 | TR_PB_LEN);
    k += tr_pb_put_varint(v + k, len);
    tr_buf_append(b, v, k);
}

static void pb_string(tr_buf *b, unsigned field, const char *s) {
    size_t n = strlen(s);
    pb_tag_len(b, field, n);
    tr_buf_append(b, s, n);
}

static size_t varint_len(uint64_t v) {
    uint8_t t[10];
    return tr_pb_put_varint(t, v);
}

/* io.prometheus.client.MetricFamily {name = 1; type = 3 (UNTYPED = 3); metric = 4}, written
 * with its varint length before it (expfmt's delimited encoding). */
static void fed_close_family(fed *f) {
    if (!f->have_family || !f->proto) return;
    size_t nlen = strlen(f->family);
    size_t body = 1 + varint_len(nlen) + nlen + 2 + f->fam.len;
    uint8_t v[10];
    tr_buf_append(f->out, v, tr_pb_put_varint(v, body));
    pb_string(f->out, 1, f->family);
    tr_buf_append(f->out, "\x18\x03", 2);
    tr_buf_append(f->out, f->fam.data, f->fam.len);
    f->fam.len = 0;
}

static void fed_emit(fed *f, const char *name, const tsdb_label *l, size_t nl, int64_t t, double v) {
    if (!f->have_family || strcmp(f->family, name) != 0) {
        fed_close_family(f);
        snprintf(f->family, sizeof f->family, "%s", name);
        f->have_family = 1;
        if (!f->proto) tr_buf_printf(f->out, "# TYPE %s untyped\n", name);
    }
    if (!f->proto) {
        char num[64];
        put_series(f->out, l, nl, 1);
        put_value(num, sizeof num, v);
        tr_buf_printf(f->out, " %s %lld\n", num, (long long)t);
        return;
    }
    /* Metric {label = 1 (LabelPair {name = 1; value = 2}); untyped = 5 (Untyped {value = 1});
     * timestamp_ms = 6}: the series' labels but __name__, then instance="" when absent */
    tr_buf m;
    tr_buf_init(&m, 0);
    int has_instance = 0;
    for (size_t i = 0; i <= nl; i++) {
        const char *ln, *lv;
        if (i < nl) {
            ln = l[i].name, lv = l[i].value;
            if (strcmp(ln, "__name__") == 0 || !*lv) continue;
            if (strcmp(ln, "instance") == 0) has_instance = 1;
        } else {
            if (has_instance) break;
            ln = "instance", lv = "";
        }
        size_t a = strlen(ln), b = strlen(lv);
        pb_tag_len(&m, 1, 1 + varint_len(a) + a + 1 + varint_len(b) + b);
        pb_string(&m, 1, ln);
        pb_string(&m, 2, lv);
    }
    uint8_t d[9] = {0x09};
    memcpy(d + 1, &v, 8); /* fixed64, little-endian as the hosts this builds for */
    pb_tag_len(&m, 5, 9);
    tr_buf_append(&m, d, 9);
    uint8_t ts[11] = {0x30};
    tr_buf_append(&m, ts, 1 + tr_pb_put_varint(ts + 1, (uint64_t)t));
    pb_tag_len(&f->fam, 4, m.len);
    tr_buf_append(&f->fam, m.data, m.len);
    if (m.failed) f->fam.failed = 1;
    tr_buf_free(&m);
}

static int held_cmp(const void *a, const void *b) {
    const held *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Emits the held series whose name sorts at or before `upto` (all of them for NULL). */
static void fed_flush_held(fed *f, const char *upto) {
    if (!f->held_sorted) {
        if (f->nheld) qsort(f->held, f->nheld, sizeof *f->held, held_cmp);
        f->held_sorted = 1;
    }
    for (; f->next_held < f->nheld; f->next_held++) {
        held *h = &f->held[f->next_held];
        if (upto && strcmp(h->name, upto) > 0) break;
        fed_emit(f, h->name, h->l, h->nl, h->t, h->v);
    }
}

static int fed_hold(fed *f, const char *name, const tsdb_label *l, size_t nl, int64_t t, double v) {
    if (f->nheld == f->capheld) {
        size_t nc = f->capheld ? f->capheld * 2 : 16;
        held *nh = realloc(f->held, nc * sizeof *nh);
        if (!nh) return -1;
        f->held = nh;
        f->capheld = nc;
    }
    if (!f->arena && !(f->arena = tr_arena_new(64 << 10))) return -1;
    held *h = &f->held[f->nheld];
    h->l = tr_arena_alloc(f->arena, nl * sizeof *h->l);
    if (!h->l) return -1;
    h->name = "";
    for (size_t i = 0; i < nl; i++) {
        h->l[i].name = tr_arena_strndup(f->arena, l[i].name, strlen(l[i].name));
        h->l[i].value = tr_arena_strndup(f->arena, l[i].value, strlen(l[i].value));
        if (!h->l[i].name || !h->l[i].value) return -1;
        if (strcmp(l[i].name, "__name__") == 0) h->name = h->l[i].value;
    }
    h->nl = nl;
    h->seq = f->nheld++;
    h->t = t;
    h->v = v;
    return 0;
}

typedef struct xjob {
    struct evhttp_request *req;
    const tr_api_env *env;
    int federate, proto;
    int64_t start, end;
    tr_prom_matchsets ms;
    tr_http_stream *st;
    int failed;
    char err[512];
} xjob;

static void xjob_free(xjob *j) {
    tr_prom_matchsets_free(&j->ms);
    free(j);
}

/* Worker thread. */
static void export_run(void *ctx, const volatile int *cancel) {
    xjob *j = ctx;
    tr_http_stream_bind(j->st, cancel);
    tsdb_querier *qr = tsdb_querier_open(j->env->db, j->start, j->end);
    tsdb_seriesset **sets = calloc(j->ms.n + 1, sizeof *sets);
    tr_prom_merge m = {0};
    tr_buf b;
    tr_buf_init(&b, 0);
    if (!qr || !sets || tr_prom_merge_init(&m, sets, j->ms.n)) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < j->ms.n; i++)
        /* labels only: samples are loaded one series at a time below */
        if (!(sets[i] = tsdb_select(qr, j->ms.sets[i], j->ms.lens[i], 0, j->err, sizeof j->err))) {
            j->failed = 1;
            goto out;
        }
    char num[64];
    fed fd = {.out = &b, .proto = j->proto};
    tr_buf_init(&fd.fam, 0);
    tsdb_seriesset *set;
    size_t idx, nl;
    const tsdb_label *l;
    while (tr_prom_merge_next(&m, &set, &idx, &l, &nl)) {
        if (*cancel) break;
        const int64_t *ts;
        const double *vs;
        if (tsdb_seriesset_load(set, idx, j->err, sizeof j->err) != 0) {
            j->failed = 1;
            break;
        }
        size_t k = tsdb_seriesset_samples(set, idx, &ts, &vs);
        if (k && j->federate) {
            const char *name = NULL;
            for (size_t i = 0; i < nl; i++)
                if (strcmp(l[i].name, "__name__") == 0) name = l[i].value;
            if (!name || !*name || tsdb_is_stale_nan(vs[k - 1])) {
                /* nameless series are skipped, as Prometheus' federation does */
            } else if (nl && strcmp(l[0].name, "__name__") < 0) {
                if (fed_hold(&fd, name, l, nl, ts[k - 1], vs[k - 1]) != 0) {
                    j->failed = 1;
                    snprintf(j->err, sizeof j->err, "out of memory");
                }
            } else {
                fed_flush_held(&fd, name);
                fed_emit(&fd, name, l, nl, ts[k - 1], vs[k - 1]);
            }
        } else {
            for (size_t x = 0; x < k; x++) {
                if (tsdb_is_stale_nan(vs[x])) continue;
                put_series(&b, l, nl, 0);
                put_value(num, sizeof num, vs[x]);
                tr_buf_printf(&b, " %s %lld\n", num, (long long)ts[x]);
            }
        }
        tsdb_seriesset_unload(set, idx);
        if (j->failed || tr_http_stream_flush(j->st, &b, CHUNK) != 0) break;
    }
    if (j->federate && !j->failed && !*cancel) {
        fed_flush_held(&fd, NULL);
        fed_close_family(&fd);
    }
    if (!j->failed && (b.failed || fd.fam.failed)) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "out of memory");
    }
    /* a streamed reply has sent its headers already: a damaged block left out is said in
     * comment lines at the end, which every reader of the text format skips */
    const char *const *warns;
    size_t nw = tsdb_querier_warnings(qr, &warns);
    for (size_t w = 0; w < nw && w < 8 && !j->failed && !j->proto; w++)
        tr_buf_printf(&b, "# warning: %s\n", warns[w]);
    if (!j->failed) tr_http_stream_flush(j->st, &b, 0);
    tr_buf_free(&fd.fam);
    free(fd.held);
    tr_arena_free(fd.arena);
out:
    tr_buf_free(&b);
    tr_prom_merge_free(&m);
    for (size_t i = 0; sets && i < j->ms.n; i++)
        tsdb_seriesset_free(sets[i]);
    free(sets);
    tsdb_querier_close(qr);
}

/* Loop thread. */
static void export_done(void *ctx, int cancelled) {
    xjob *j = ctx;
    if (cancelled && !j->failed) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "request canceled");
    }
    if (tr_http_stream_end(j->st, !j->failed) != 0) tr_http_reply_text(j->req, 500, j->err);
    xjob_free(j);
}

static void run(struct evhttp_request *req, const tr_api_env *env, int federate) {
    tr_form f;
    char err[1200];
    int rc = tr_http_form(req, &f, err, sizeof err);
    xjob *j = NULL;
    if (rc) {
        char msg[1300];
        snprintf(msg, sizeof msg, "error parsing form values: %s", err);
        tr_http_reply_text(req, 400, msg);
        goto out;
    }
    if (!(j = calloc(1, sizeof *j))) {
        tr_http_reply_text(req, 500, "out of memory");
        goto out;
    }
    j->req = req;
    j->env = env;
    j->federate = federate;
    int64_t now = tr_now_ms();
    if (federate) {
        j->start = now - LOOKBACK_MS;
        j->end = now;
    } else if (tr_prom_time_param(&f, "start", INT64_MIN, &j->start, err, sizeof err) ||
               tr_prom_time_param(&f, "end", now, &j->end, err, sizeof err)) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, err);
        goto out;
    }
    if (!federate && !tr_form_get(&f, "match[]")) {
        tr_http_reply_text(req, 400, "missing `match[]` arg");
        goto out;
    }
    if ((rc = tr_prom_match_params_ex(&f, &j->ms, federate, err, sizeof err)) != 0) {
        static const char prefix[] = "invalid parameter \"match[]\": ";
        if (federate) /* Prometheus' federation answers the parser's error alone, in text */
            tr_http_reply_text(req, rc == -1 ? 400 : 500,
                               strncmp(err, prefix, sizeof prefix - 1) ? err : err + sizeof prefix - 1);
        else
            tr_prom_reply_error(req, rc == -1 ? TR_PROM_BAD_DATA : TR_PROM_INTERNAL, err);
        goto out;
    }
    if (federate) {
        /* `{}` (no matcher at all) selects nothing in Prometheus' federation */
        size_t w = 0;
        for (size_t i = 0; i < j->ms.n; i++) {
            if (j->ms.lens[i] == 0) {
                tsdb_matchers_free(j->ms.sets[i], 0);
                continue;
            }
            j->ms.sets[w] = j->ms.sets[i];
            j->ms.lens[w++] = j->ms.lens[i];
        }
        j->ms.n = w;
    }
    if (!(j->st = tr_http_stream_new(req, env->wq))) {
        tr_http_reply_text(req, 500, "out of memory");
        goto out;
    }
    j->proto = federate && tr_prom_wants_protobuf(tr_http_header(req, "Accept"));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      j->proto ? PROTO_DELIM_CTYPE : TEXT_CTYPE);
    if (!tr_api_submit(env, req, export_run, export_done, j)) {
        tr_http_stream_end(j->st, 0);
        tr_http_reply_text(req, 503, TR_API_BUSY);
        goto out;
    }
    j = NULL; /* the job owns it now */
out:
    if (j) xjob_free(j);
    tr_form_free(&f);
}

static void api_export(struct evhttp_request *req, const tr_http_match *m, void *ctx) { run(req, ctx, 0); }
static void api_federate(struct evhttp_request *req, const tr_http_match *m, void *ctx) { run(req, ctx, 1); }

void tr_api_prom_export_routes(tr_http *h, const tr_api_env *env) {
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/export/prometheus", 0, api_export, (void *)env);
    tr_http_route(h, TR_GET, "/federate", 0, api_federate, (void *)env);
}
