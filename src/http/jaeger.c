/* Jaeger's HTTP query API (the legacy /api routes Grafana and the Jaeger UI call, and the
 * /api/v3 routes), answered as jaeger-query answers them: the same envelope, JSON model,
 * parameter parsing and error texts. Parameters are parsed on the loop thread; the store is
 * read and the JSON rendered by a job on the work queue (with a reader connection taken from
 * a small pool), and the reply is sent back on the loop thread. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "jaeger.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/text.h"

#define ENVELOPE_TAIL ",\"total\":%d,\"limit\":0,\"offset\":0,\"errors\":null}"
#define MAX_LIMIT 1000         /* traces per search (larger asks are cut to this) */
#define MAX_TRACE_IDS 1000     /* traceID parameters per request */
#define MAX_TAGS 64            /* tag criteria per search */
#define MAX_REPLY (256u << 20) /* one response body */

/* ---- parsers ---- */

int tr_jaeger_parse_int(const char *s, int bits, int64_t *out, char *err, size_t errlen) {
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (!*p) goto syntax;
    uint64_t v = 0, lim = bits >= 64 ? (uint64_t)INT64_MAX : ((uint64_t)1 << (bits - 1)) - 1;
    int range = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') goto syntax;
        if (v > (UINT64_MAX - 9) / 10)
            range = 1;
        else
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (range || v > lim + (uint64_t)neg) {
        snprintf(err, errlen, "strconv.ParseInt: parsing \"%s\": value out of range", s);
        return -1;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
syntax:
    snprintf(err, errlen, "strconv.ParseInt: parsing \"%s\": invalid syntax", s);
    return -1;
}

int tr_jaeger_parse_bool(const char *s, int *out, char *err, size_t errlen) {
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (int i = 0; i < 6; i++) {
        if (strcmp(s, t[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(s, f[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    snprintf(err, errlen, "strconv.ParseBool: parsing \"%s\": invalid syntax", s);
    return -1;
}

int tr_jaeger_parse_duration(const char *orig, int64_t *ns, char *err, size_t errlen) {
    const char *s = orig;
    int neg = 0;
    uint64_t d = 0;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (!*s) goto invalid;
    while (*s) {
        if (*s != '.' && !isdigit((unsigned char)*s)) goto invalid;
        uint64_t v = 0;
        const char *st = s;
        for (; isdigit((unsigned char)*s); s++) {
            if (v > (UINT64_MAX >> 1) / 10) goto invalid;
            v = v * 10 + (uint64_t)(*s - '0');
        }
        int pre = s != st, post = 0;
        double frac = 0, scale = 1;
        if (*s == '.') {
            s++;
            const char *fs = s;
            for (; isdigit((unsigned char)*s); s++)
                if (scale < 1e18) {
                    frac = frac * 10 + (*s - '0');
                    scale *= 10;
                }
            post = s != fs;
        }
        if (!pre && !post) goto invalid;
        const char *u = s;
        while (*s && *s != '.' && !isdigit((unsigned char)*s))
            s++;
        size_t ul = (size_t)(s - u);
        if (ul == 0) {
            snprintf(err, errlen, "time: missing unit in duration \"%s\"", orig);
            return -1;
        }
        uint64_t unit;
        if (ul == 2 && !memcmp(u, "ns", 2))
            unit = 1;
        else if ((ul == 2 && !memcmp(u, "us", 2)) || (ul == 3 && !memcmp(u, "\xc2\xb5s", 3)) ||
                 (ul == 3 && !memcmp(u, "\xce\xbcs", 3)))
            unit = 1000;
        else if (ul == 2 && !memcmp(u, "ms", 2))
            unit = 1000000;
        else if (ul == 1 && *u == 's')
            unit = 1000000000ULL;
        else if (ul == 1 && *u == 'm')
            unit = 60000000000ULL;
        else if (ul == 1 && *u == 'h')
            unit = 3600000000000ULL;
        else {
            snprintf(err, errlen, "time: unknown unit \"%.*s\" in duration \"%s\"", (int)ul, u, orig);
            return -1;
        }
        if (v > (uint64_t)INT64_MAX / unit) goto invalid;
        v *= unit;
        if (frac > 0) v += (uint64_t)(frac * ((double)unit / scale));
        d += v;
        if (d > (uint64_t)INT64_MAX) goto invalid;
    }
    *ns = neg ? -(int64_t)d : (int64_t)d;
    return 0;
invalid:
    snprintf(err, errlen, "time: invalid duration \"%s\"", orig);
    return -1;
}

int tr_jaeger_parse_trace_id(const char *s, uint8_t id[16], char *err, size_t errlen) {
    size_t n = strlen(s);
    if (n > 32) {
        snprintf(err, errlen, "TraceID cannot be longer than 32 hex characters: %s", s);
        return -1;
    }
    if (n == 0) goto bad;
    memset(id, 0, 16);
    for (size_t i = 0; i < n; i++) {
        int v = tr_hex_val((unsigned char)s[n - 1 - i]);
        if (v < 0) goto bad;
        id[15 - i / 2] |= (uint8_t)(i % 2 ? v << 4 : v);
    }
    return 0;
bad:
    snprintf(err, errlen, "strconv.ParseUint: parsing \"%s\": invalid syntax", n > 16 ? s + n - 16 : s);
    return -1;
}

void tr_jaeger_format_trace_id(const uint8_t id[16], char *out) {
    int hi_zero = 1;
    for (int i = 0; i < 8; i++)
        if (id[i]) hi_zero = 0;
    int from = hi_zero ? 8 : 0;
    tr_hex_encode(id + from, (size_t)(16 - from), out);
}

/* ---- legacy Jaeger JSON ---- */

typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;

static void kv_str(tr_json *j, const char *k, const char *v) {
    tr_json_obj_open(j);
    tr_json_key(j, "key");
    tr_json_str(j, k);
    tr_json_key(j, "type");
    tr_json_str(j, "string");
    tr_json_key(j, "value");
    tr_json_str(j, v);
    tr_json_obj_close(j);
}

static void kv_int(tr_json *j, const char *k, int64_t v) {
    tr_json_obj_open(j);
    tr_json_key(j, "key");
    tr_json_str(j, k);
    tr_json_key(j, "type");
    tr_json_str(j, "int64");
    tr_json_key(j, "value");
    if (v > 9007199254740991LL || v < -9007199254740991LL) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)v);
        tr_json_str(j, b);
    } else {
        tr_json_int(j, v);
    }
    tr_json_obj_close(j);
}

/* One attribute as a Jaeger KeyValue with its type. */
static void kv_attr(tr_json *j, const kv_t *kv, tr_buf *tmp) {
    const traces_pb_value *v = kv->value;
    const char *k = kv->key ? kv->key : "";
    int vc = v ? (int)v->value_case : 0;
    switch (vc) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        tr_json_obj_open(j);
        tr_json_key(j, "key");
        tr_json_str(j, k);
        tr_json_key(j, "type");
        tr_json_str(j, "bool");
        tr_json_key(j, "value");
        tr_json_bool(j, v->bool_value);
        tr_json_obj_close(j);
        return;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        kv_int(j, k, v->int_value);
        return;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        tr_json_obj_open(j);
        tr_json_key(j, "key");
        tr_json_str(j, k);
        tr_json_key(j, "type");
        tr_json_str(j, "float64");
        tr_json_key(j, "value");
        if (isfinite(v->double_value)) {
            tr_json_double(j, v->double_value);
        } else {
            char d[40];
            tr_format_double(d, sizeof d, v->double_value);
            tr_json_str(j, d); /* Jaeger fails on NaN/Inf; a string keeps the trace readable */
        }
        tr_json_obj_close(j);
        return;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE: {
        size_t n;
        const char *s = traces_value_form(v, tmp, &n);
        tr_json_obj_open(j);
        tr_json_key(j, "key");
        tr_json_str(j, k);
        tr_json_key(j, "type");
        tr_json_str(j, "binary");
        tr_json_key(j, "value");
        tr_json_strn(j, s, n);
        tr_json_obj_close(j);
        return;
    }
    default: {
        size_t n;
        const char *s = traces_value_form(v, tmp, &n);
        tr_json_obj_open(j);
        tr_json_key(j, "key");
        tr_json_str(j, k);
        tr_json_key(j, "type");
        tr_json_str(j, "string");
        tr_json_key(j, "value");
        tr_json_strn(j, s, n);
        tr_json_obj_close(j);
        return;
    }
    }
}

kv_t **tr_jaeger_sorted_kvs(kv_t **kvs, size_t n) {
    kv_t **o = malloc((n ? n : 1) * sizeof *o);
    if (!o) return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kvs[i]) continue;
        const char *k = kvs[i]->key ? kvs[i]->key : "";
        size_t p = m;
        while (p > 0 && strcmp(o[p - 1]->key ? o[p - 1]->key : "", k) > 0) {
            o[p] = o[p - 1];
            p--;
        }
        o[p] = kvs[i];
        m++;
    }
    if (m < n) o[m] = NULL;
    return o;
}

static size_t count_nonnull(kv_t **kvs, size_t n) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += kvs[i] != NULL;
    return m;
}

int tr_jaeger_ip_attr(const kv_t *kv, char out[16]) {
    if (!kv->key || (strcmp(kv->key, "ip") && strcmp(kv->key, "peer.ipv4")) || !kv->value) return 0;
    uint32_t a;
    if (kv->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE)
        a = (uint32_t)kv->value->int_value;
    else if (kv->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE &&
             isfinite(kv->value->double_value) && fabs(kv->value->double_value) < 9.2e18)
        a = (uint32_t)(int64_t)kv->value->double_value;
    else
        return 0;
    snprintf(out, 16, "%u.%u.%u.%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
    return 1;
}

/* Writes kv dotted when the IP adjuster rewrites it; returns 1 then. */
static int kv_ip(tr_json *j, const kv_t *kv) {
    char b[16];
    if (!tr_jaeger_ip_attr(kv, b)) return 0;
    kv_str(j, kv->key, b);
    return 1;
}

int tr_jaeger_sdk_skipped(const kv_t *kv, unsigned sdk_moved) {
    if (!sdk_moved || !kv->key) return 0;
    for (int q = 0; q < TR_JAEGER_NSDK; q++)
        if ((sdk_moved >> q & 1) && !strcmp(kv->key, tr_jaeger_sdk_keys[q])) return 1;
    return 0;
}

enum { KV_SORT = 1, KV_IP = 2 };

/* Attributes as Jaeger KeyValues: sorted by key and with IPs rewritten unless raw (flags 0),
 * leaving out `skip` and the SDK keys whose bit is set in sdk_skip. */
static void kvs_out(tr_json *j, kv_t **kvs, size_t n, const char *skip, unsigned sdk_skip, int flags,
                    tr_buf *tmp) {
    kv_t **o = flags & KV_SORT ? tr_jaeger_sorted_kvs(kvs, n) : NULL;
    size_t m = o ? count_nonnull(kvs, n) : n;
    for (size_t i = 0; i < m; i++) {
        const kv_t *kv = o ? o[i] : kvs[i];
        if (!kv) continue;
        if (skip && kv->key && strcmp(kv->key, skip) == 0) continue;
        if (tr_jaeger_sdk_skipped(kv, sdk_skip)) continue;
        if ((flags & KV_IP) && kv_ip(j, kv)) continue;
        kv_attr(j, kv, tmp);
    }
    free(o);
}

static int zero_bytes(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void process_json(tr_buf *b, const traces_pb_resource *res, const tr_jaeger_adj *adj, tr_buf *tmp) {
    tr_json j;
    tr_json_init(&j, b);
    tr_json_obj_open(&j);
    tr_json_key(&j, "serviceName");
    tr_json_str(&j, traces_service_name(res));
    tr_json_key(&j, "tags");
    tr_json_arr_open(&j);
    if (res)
        kvs_out(&j, res->attributes, res->n_attributes, "service.name", 0, adj ? KV_SORT | KV_IP : 0, tmp);
    /* span attributes the SDK adjuster moved here come after the sorted ones, as Jaeger
     * appends them */
    const tr_jaeger_res_extra *rx = tr_jaeger_adj_extra(adj, res);
    for (size_t i = 0; rx && i < rx->n; i++)
        kv_attr(&j, rx->kv[i], tmp);
    tr_json_arr_close(&j);
    tr_json_obj_close(&j);
}

typedef Opentelemetry__Proto__Trace__V1__Span__Event ev_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Link link_t;

static const char *link_ref_type(const link_t *l) {
    for (size_t i = 0; i < l->n_attributes; i++) {
        const kv_t *kv = l->attributes[i];
        if (kv && kv->key && strcmp(kv->key, "opentracing.ref_type") == 0 && kv->value &&
            kv->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
            kv->value->string_value && strcmp(kv->value->string_value, "child_of") == 0)
            return "CHILD_OF";
    }
    return "FOLLOWS_FROM";
}

static void ref(tr_json *j, const char *type, const uint8_t *tid, const uint8_t *sid) {
    char t[33], s[17];
    tr_jaeger_format_trace_id(tid, t);
    tr_hex_encode(sid, 8, s);
    tr_json_obj_open(j);
    tr_json_key(j, "refType");
    tr_json_str(j, type);
    tr_json_key(j, "traceID");
    tr_json_str(j, t);
    tr_json_key(j, "spanID");
    tr_json_str(j, s);
    tr_json_obj_close(j);
}

static int ev_name_cmp(const ev_t *a, const ev_t *b) {
    return strcmp(a->name ? a->name : "", b->name ? b->name : "");
}

static void render_span(tr_json *j, const traces_span *ts, const char *pid, const tr_jaeger_span_adj *sa,
                        tr_buf *tmp) {
    const traces_pb_span *sp = ts->span;
    int raw = sa == NULL;
    int64_t delta = sa ? sa->delta_ns : 0;
    int kvf = raw ? 0 : KV_SORT | KV_IP;
    char tid[33], sid[17];
    tr_jaeger_format_trace_id(sp->trace_id.data, tid);
    tr_hex_encode(sp->span_id.data, 8, sid);
    int link_removed = 0;
    tr_json_obj_open(j);
    tr_json_key(j, "traceID");
    tr_json_str(j, tid);
    tr_json_key(j, "spanID");
    tr_json_str(j, sid);
    tr_json_key(j, "operationName");
    tr_json_str(j, sp->name ? sp->name : "");
    tr_json_key(j, "references");
    tr_json_arr_open(j);
    int has_parent = sp->parent_span_id.len == 8 && !zero_bytes(sp->parent_span_id.data, 8);
    if (has_parent) {
        const char *type = "CHILD_OF";
        for (size_t i = 0; i < sp->n_links; i++) {
            const link_t *l = sp->links[i];
            if (l && l->trace_id.len == 16 && l->span_id.len == 8 &&
                !memcmp(l->trace_id.data, sp->trace_id.data, 16) &&
                !memcmp(l->span_id.data, sp->parent_span_id.data, 8))
                type = link_ref_type(l);
        }
        ref(j, type, sp->trace_id.data, sp->parent_span_id.data);
    }
    for (size_t i = 0; i < sp->n_links; i++) {
        const link_t *l = sp->links[i];
        if (!l || l->trace_id.len != 16 || l->span_id.len != 8) continue;
        if (!raw && zero_bytes(l->trace_id.data, 16)) {
            link_removed = 1;
            continue;
        }
        if (has_parent && !memcmp(l->trace_id.data, sp->trace_id.data, 16) &&
            !memcmp(l->span_id.data, sp->parent_span_id.data, 8))
            continue;
        ref(j, link_ref_type(l), l->trace_id.data, l->span_id.data);
    }
    tr_json_arr_close(j);
    tr_json_key(j, "startTime");
    tr_json_int(j, ((int64_t)sp->start_time_unix_nano + delta) / 1000);
    tr_json_key(j, "duration");
    tr_json_uint(j, sp->end_time_unix_nano > sp->start_time_unix_nano
                        ? (sp->end_time_unix_nano - sp->start_time_unix_nano) / 1000
                        : 0);
    tr_json_key(j, "tags");
    tr_json_arr_open(j);
    const traces_pb_scope *sc = ts->scope;
    if (sc && sc->name && *sc->name) kv_str(j, "otel.scope.name", sc->name);
    if (sc && sc->version && *sc->version) kv_str(j, "otel.scope.version", sc->version);
    kvs_out(j, sp->attributes, sp->n_attributes, NULL, sa ? sa->sdk_moved : 0, kvf, tmp);
    const char *kind = traces_kind_name(sp->kind);
    if (*kind) kv_str(j, "span.kind", kind);
    if (sp->status) {
        if (sp->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK)
            kv_str(j, "otel.status_code", "OK");
        if (sp->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR) {
            kv_str(j, "otel.status_code", "ERROR");
            tr_json_obj_open(j);
            tr_json_key(j, "key");
            tr_json_str(j, "error");
            tr_json_key(j, "type");
            tr_json_str(j, "bool");
            tr_json_key(j, "value");
            tr_json_bool(j, 1);
            tr_json_obj_close(j);
        }
        if (sp->status->message && *sp->status->message)
            kv_str(j, "otel.status_description", sp->status->message);
    }
    if (sp->trace_state && *sp->trace_state) kv_str(j, "w3c.tracestate", sp->trace_state);
    if (sp->dropped_attributes_count)
        kv_int(j, "otel.dropped_attributes_count", sp->dropped_attributes_count);
    if (sp->dropped_events_count) kv_int(j, "otel.dropped_events_count", sp->dropped_events_count);
    if (sp->dropped_links_count) kv_int(j, "otel.dropped_links_count", sp->dropped_links_count);
    tr_json_arr_close(j);
    tr_json_key(j, "logs");
    tr_json_arr_open(j);
    /* events by name (a stable sort, as Jaeger's sort adjuster), as stored when raw */
    size_t ne = sp->n_events;
    const ev_t **evs = malloc((ne ? ne : 1) * sizeof *evs);
    size_t m = 0;
    for (size_t i = 0; evs && i < ne; i++) {
        const ev_t *e = sp->events[i];
        if (!e) continue;
        size_t p = m;
        while (!raw && p > 0 && ev_name_cmp(evs[p - 1], e) > 0) {
            evs[p] = evs[p - 1];
            p--;
        }
        evs[p] = e;
        m++;
    }
    for (size_t i = 0; i < m; i++) {
        const ev_t *e = evs[i];
        tr_json_obj_open(j);
        tr_json_key(j, "timestamp");
        tr_json_int(j, ((int64_t)e->time_unix_nano + delta) / 1000);
        tr_json_key(j, "fields");
        tr_json_arr_open(j);
        int has_event_attr = 0;
        for (size_t k = 0; k < e->n_attributes; k++)
            if (e->attributes[k] && e->attributes[k]->key && strcmp(e->attributes[k]->key, "event") == 0)
                has_event_attr = 1;
        if (e->name && *e->name && !has_event_attr) kv_str(j, "event", e->name);
        kvs_out(j, e->attributes, e->n_attributes, NULL, 0, raw ? 0 : KV_SORT, tmp);
        tr_json_arr_close(j);
        tr_json_obj_close(j);
    }
    free(evs);
    tr_json_arr_close(j);
    tr_json_key(j, "processID");
    tr_json_str(j, pid);
    tr_json_key(j, "warnings");
    if (link_removed || (sa && sa->nwarn)) {
        tr_json_arr_open(j);
        for (size_t i = 0; sa && i < sa->nwarn; i++)
            tr_json_str(j, sa->warn[i]);
        if (link_removed) tr_json_str(j, "Invalid span link removed");
        tr_json_arr_close(j);
    } else {
        tr_json_null(j);
    }
    tr_json_obj_close(j);
}

typedef struct proc {
    const traces_pb_resource *res;
    tr_buf json;
    int key; /* pN */
} proc;

static int pkey_cmp(const void *a, const void *b) {
    char x[16], y[16];
    snprintf(x, sizeof x, "p%d", (*(const proc *const *)a)->key);
    snprintf(y, sizeof y, "p%d", (*(const proc *const *)b)->key);
    return strcmp(x, y);
}

void tr_jaeger_render_trace(tr_json *j, const traces_trace *t) {
    tr_jaeger_adj adj;
    if (tr_jaeger_adjust(t, 0, &adj) == 0) {
        tr_jaeger_render_trace_adj(j, t, &adj);
        tr_jaeger_adj_free(&adj);
    } else {
        tr_jaeger_render_trace_adj(j, t, NULL);
    }
}

void tr_jaeger_render_trace_adj(tr_json *j, const traces_trace *t, const tr_jaeger_adj *adj) {
    tr_buf tmp;
    tr_buf_init(&tmp, 0);
    /* processes: equal resources (same service and tags) share one key, numbered in order */
    proc *procs = calloc(t->n ? t->n : 1, sizeof *procs);
    int *span_proc = calloc(t->n ? t->n : 1, sizeof *span_proc);
    size_t np = 0;
    int nkeys = 0;
    for (size_t i = 0; procs && span_proc && i < t->n; i++) {
        const traces_pb_resource *res = t->spans[i].resource;
        size_t p;
        for (p = 0; p < np; p++)
            if (procs[p].res == res) break;
        if (p == np) {
            tr_buf_init(&procs[np].json, 0);
            procs[np].res = res;
            process_json(&procs[np].json, res, adj, &tmp);
            procs[np].key = 0;
            for (size_t q = 0; q < np; q++)
                if (procs[q].json.len == procs[np].json.len &&
                    !memcmp(procs[q].json.data, procs[np].json.data, procs[q].json.len)) {
                    procs[np].key = procs[q].key;
                    break;
                }
            if (!procs[np].key) procs[np].key = ++nkeys;
            np++;
        }
        span_proc[i] = procs[p].key;
    }
    char tid[33];
    tr_jaeger_format_trace_id(t->id, tid);
    tr_json_obj_open(j);
    tr_json_key(j, "traceID");
    tr_json_str(j, tid);
    tr_json_key(j, "spans");
    tr_json_arr_open(j);
    for (size_t i = 0; i < t->n; i++) {
        char pid[16];
        snprintf(pid, sizeof pid, "p%d", span_proc ? span_proc[i] : 1);
        render_span(j, &t->spans[i], pid, adj ? &adj->sp[i] : NULL, &tmp);
    }
    tr_json_arr_close(j);
    tr_json_key(j, "processes");
    tr_json_obj_open(j);
    /* one entry per key, keys in lexicographic order as Go's encoder writes a map */
    proc **uniq = calloc(np ? np : 1, sizeof *uniq);
    size_t nu = 0;
    for (size_t p = 0; uniq && p < np; p++) {
        int dup = 0;
        for (size_t q = 0; q < nu && !dup; q++)
            dup = uniq[q]->key == procs[p].key;
        if (!dup) uniq[nu++] = &procs[p];
    }
    if (uniq) qsort(uniq, nu, sizeof *uniq, pkey_cmp);
    for (size_t p = 0; p < nu; p++) {
        char pid[16];
        snprintf(pid, sizeof pid, "p%d", uniq[p]->key);
        tr_json_key(j, pid);
        tr_json_raw(j, uniq[p]->json.data, uniq[p]->json.len);
    }
    free(uniq);
    tr_json_obj_close(j);
    tr_json_key(j, "warnings");
    tr_json_null(j);
    tr_json_obj_close(j);
    for (size_t p = 0; p < np; p++)
        tr_buf_free(&procs[p].json);
    free(procs);
    free(span_proc);
    tr_buf_free(&tmp);
}

/* ---- replies ---- */

/* The legacy error envelope, as jaeger-query writes it (JSON body, text/plain type). */
static void legacy_error(tr_buf *out, int code, const char *msg) {
    tr_buf_reset(out);
    tr_json j;
    tr_json_init(&j, out);
    tr_json_obj_open(&j);
    tr_json_key(&j, "data");
    tr_json_null(&j);
    tr_json_key(&j, "total");
    tr_json_int(&j, 0);
    tr_json_key(&j, "limit");
    tr_json_int(&j, 0);
    tr_json_key(&j, "offset");
    tr_json_int(&j, 0);
    tr_json_key(&j, "errors");
    tr_json_arr_open(&j);
    tr_json_obj_open(&j);
    tr_json_key(&j, "code");
    tr_json_int(&j, code);
    tr_json_key(&j, "msg");
    tr_json_str(&j, msg);
    tr_json_obj_close(&j);
    tr_json_arr_close(&j);
    tr_json_obj_close(&j);
    tr_buf_putc(out, '\n');
}

static void v3_error(tr_buf *out, int code, const char *msg) {
    tr_buf_reset(out);
    tr_json j;
    tr_json_init(&j, out);
    tr_json_obj_open(&j);
    tr_json_key(&j, "error");
    tr_json_obj_open(&j);
    tr_json_key(&j, "httpCode");
    tr_json_int(&j, code);
    tr_json_key(&j, "message");
    tr_json_str(&j, msg);
    tr_json_obj_close(&j);
    tr_json_obj_close(&j);
    tr_buf_putc(out, '\n');
}

static void reply_error(struct evhttp_request *req, int v3, int code, const char *msg) {
    tr_buf b;
    tr_buf_init(&b, 0);
    if (v3)
        v3_error(&b, code, msg);
    else
        legacy_error(&b, code, msg);
    tr_http_reply_buf(req, code, "text/plain; charset=utf-8", &b);
    tr_buf_free(&b);
}

/* ---- jobs: parsed on the loop thread, run on a reader thread, replied on the loop ---- */

enum {
    J_SERVICES,
    J_SERVICE_OPS,
    J_OPERATIONS,
    J_SEARCH,
    J_GET,
    J_BYIDS,
    J_DEPS,
    J3_SERVICES,
    J3_OPERATIONS,
    J3_SEARCH,
    J3_GET,
    J3_SUMMARIES
};

typedef struct jjob {
    struct evhttp_request *req;
    int pretty; /* prettyPrint: the legacy JSON indented by 4 spaces */
    const tr_api_env *env;
    int op;
    char *service, *operation;
    int kind;
    traces_query q;
    char **tagk, **tagv;
    size_t ntags;
    uint8_t (*ids)[16];
    size_t nids;
    int64_t from, to;
    int raw; /* raw=true: no query-time adjusters */
    int status;
    tr_buf out;
} jjob;

static void job_free(jjob *jb) {
    free(jb->service);
    free(jb->operation);
    for (size_t i = 0; i < jb->ntags; i++) {
        free(jb->tagk[i]);
        free(jb->tagv[i]);
    }
    free(jb->tagk);
    free(jb->tagv);
    free(jb->ids);
    tr_buf_free(&jb->out);
    free(jb);
}

/* prettyPrint: any value but "" and "false" (the first occurrence counts). */
static int want_pretty(struct evhttp_request *req) {
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *qs = u ? evhttp_uri_get_query(u) : NULL;
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    if (!qs || evhttp_parse_query_str(qs, &kv)) return 0;
    const char *v = evhttp_find_header(&kv, "prettyPrint");
    int p = v && *v && strcmp(v, "false") != 0;
    evhttp_clear_headers(&kv);
    return p;
}

/* Go's json.MarshalIndent(v, "", "    ") of compact JSON: a newline and indent after { [ ,
 * and before } ], a space after a key's colon; empty objects and arrays stay {} and []. */
static int json_indent(const tr_buf *in, tr_buf *out) {
    int depth = 0, instr = 0;
    const char *s = in->data;
    size_t n = in->len;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (instr) {
            tr_buf_putc(out, c);
            if (c == '\\' && i + 1 < n)
                tr_buf_putc(out, s[++i]);
            else if (c == '"')
                instr = 0;
            continue;
        }
        switch (c) {
        case '"':
            instr = 1;
            tr_buf_putc(out, c);
            break;
        case '{':
        case '[':
            tr_buf_putc(out, c);
            if (i + 1 < n && (s[i + 1] == '}' || s[i + 1] == ']')) {
                tr_buf_putc(out, s[++i]);
                break;
            }
            depth++;
            tr_buf_putc(out, '\n');
            for (int d = 0; d < depth; d++)
                tr_buf_puts(out, "    ");
            break;
        case '}':
        case ']':
            depth--;
            tr_buf_putc(out, '\n');
            for (int d = 0; d < depth; d++)
                tr_buf_puts(out, "    ");
            tr_buf_putc(out, c);
            break;
        case ',':
            tr_buf_putc(out, c);
            tr_buf_putc(out, '\n');
            for (int d = 0; d < depth; d++)
                tr_buf_puts(out, "    ");
            break;
        case ':':
            tr_buf_puts(out, ": ");
            break;
        default:
            tr_buf_putc(out, c);
        }
    }
    return out->failed ? -1 : 0;
}

static jjob *job_new(struct evhttp_request *req, int op) {
    jjob *jb = calloc(1, sizeof *jb);
    if (!jb) return NULL;
    jb->req = req;
    jb->pretty = op < J3_SERVICES && want_pretty(req);
    jb->op = op;
    jb->kind = -1;
    jb->status = 200;
    tr_buf_init(&jb->out, MAX_REPLY);
    return jb;
}

/* As job_new, replying 500 itself when out of memory. */
static jjob *job_or_reply(struct evhttp_request *req, int op) {
    jjob *jb = job_new(req, op);
    if (!jb) reply_error(req, op >= J3_SERVICES, 500, "out of memory");
    return jb;
}

static int job_add_tag(jjob *jb, const char *k, size_t klen, const char *v) {
    /* a later value for the same key wins, as Go's map assignment does */
    for (size_t i = 0; i < jb->ntags; i++)
        if (strlen(jb->tagk[i]) == klen && !memcmp(jb->tagk[i], k, klen)) {
            char *nv = strdup(v);
            if (!nv) return -1;
            free(jb->tagv[i]);
            jb->tagv[i] = nv;
            return 0;
        }
    if (jb->ntags >= MAX_TAGS) return -2;
    char **nk = realloc(jb->tagk, (jb->ntags + 1) * sizeof *nk);
    if (!nk) return -1;
    jb->tagk = nk;
    char **nv = realloc(jb->tagv, (jb->ntags + 1) * sizeof *nv);
    if (!nv) return -1;
    jb->tagv = nv;
    jb->tagk[jb->ntags] = strndup(k, klen);
    jb->tagv[jb->ntags] = strdup(v);
    if (!jb->tagk[jb->ntags] || !jb->tagv[jb->ntags]) return -1;
    jb->ntags++;
    return 0;
}

static void envelope_open(tr_json *j) {
    tr_json_obj_open(j);
    tr_json_key(j, "data");
    tr_json_arr_open(j);
}

static void envelope_close(tr_json *j, int total, int with_errors) {
    tr_json_arr_close(j);
    tr_json_key(j, "total");
    tr_json_int(j, total);
    tr_json_key(j, "limit");
    tr_json_int(j, 0);
    tr_json_key(j, "offset");
    tr_json_int(j, 0);
    if (!with_errors) {
        tr_json_key(j, "errors");
        tr_json_null(j);
        tr_json_obj_close(j);
    }
}

static void store_failed(jjob *jb, const char *err) {
    TR_WARN("jaeger api: trace store error", "error=\"%s\"", err);
    jb->status = 500;
    int v3 = jb->op >= J3_SERVICES;
    if (v3)
        v3_error(&jb->out, 500, err);
    else
        legacy_error(&jb->out, 500, err);
}

static int trace_start_cmp(const void *a, const void *b) {
    const traces_trace *x = *(const traces_trace *const *)a, *y = *(const traces_trace *const *)b;
    uint64_t sx = UINT64_MAX, sy = UINT64_MAX;
    for (size_t i = 0; i < x->n; i++)
        if (x->spans[i].span->start_time_unix_nano < sx) sx = x->spans[i].span->start_time_unix_nano;
    for (size_t i = 0; i < y->n; i++)
        if (y->spans[i].span->start_time_unix_nano < sy) sy = y->spans[i].span->start_time_unix_nano;
    return sx < sy ? 1 : sx > sy ? -1 : 0;
}

/* One Jaeger error entry per damaged chunk left out of a result (the spans it held are not
 * served; the store quarantines it). */
static int damage_errors_ids(tr_json *j, const int64_t *ids, size_t n, int open) {
    for (size_t i = 0; i < n; i++) {
        if (!open++) {
            tr_json_key(j, "errors");
            tr_json_arr_open(j);
        }
        char msg[200];
        snprintf(msg, sizeof msg,
                 "trace store chunk %lld is damaged (checksum mismatch or undecodable): its spans are left "
                 "out and it is quarantined",
                 (long long)ids[i]);
        tr_json_obj_open(j);
        tr_json_key(j, "code");
        tr_json_int(j, 500);
        tr_json_key(j, "msg");
        tr_json_str(j, msg);
        tr_json_obj_close(j);
    }
    return open;
}

static int damage_errors(tr_json *j, const traces_result *res, int open) {
    const int64_t *ids;
    size_t n = traces_result_damaged(res, &ids);
    return damage_errors_ids(j, ids, n, open);
}

static void job_run(traces_reader *r, void *arg) {
    jjob *jb = arg;
    char err[300];
    tr_json j;
    tr_json_init(&j, &jb->out);
    if (!r) {
        store_failed(jb, "trace store reader unavailable");
        return;
    }
    switch (jb->op) {
    case J_SERVICES:
    case J3_SERVICES: {
        traces_strings l;
        if (traces_services(r, &l, err, sizeof err)) {
            store_failed(jb, err);
            return;
        }
        if (jb->op == J_SERVICES)
            envelope_open(&j);
        else {
            tr_json_obj_open(&j);
            tr_json_key(&j, "services");
            tr_json_arr_open(&j);
        }
        for (size_t i = 0; i < l.n; i++)
            tr_json_str(&j, l.v[i]);
        if (jb->op == J_SERVICES)
            envelope_close(&j, (int)l.n, 0);
        else {
            tr_json_arr_close(&j);
            tr_json_obj_close(&j);
        }
        traces_strings_free(&l);
        return;
    }
    case J_SERVICE_OPS:
    case J_OPERATIONS:
    case J3_OPERATIONS: {
        traces_operations o;
        if (jb->kind == 99) {
            memset(&o, 0, sizeof o); /* an unknown kind matches nothing */
        } else if (traces_operations_list(r, jb->service ? jb->service : "", jb->kind, &o, err, sizeof err)) {
            store_failed(jb, err);
            return;
        }
        size_t n = 0;
        if (jb->op == J3_OPERATIONS) {
            tr_json_obj_open(&j);
            tr_json_key(&j, "operations");
            tr_json_arr_open(&j);
        } else
            envelope_open(&j);
        for (size_t i = 0; i < o.n; i++) {
            if (jb->op == J_SERVICE_OPS) {
                if (i > 0 && strcmp(o.v[i].name, o.v[i - 1].name) == 0) continue; /* unique names */
                tr_json_str(&j, o.v[i].name);
            } else {
                const char *k = traces_kind_name(o.v[i].kind);
                if (jb->op == J3_OPERATIONS && !*k) k = "internal";
                tr_json_obj_open(&j);
                tr_json_key(&j, "name");
                tr_json_str(&j, o.v[i].name);
                tr_json_key(&j, "spanKind");
                tr_json_str(&j, k);
                tr_json_obj_close(&j);
            }
            n++;
        }
        if (jb->op == J3_OPERATIONS) {
            tr_json_arr_close(&j);
            tr_json_obj_close(&j);
        } else
            envelope_close(&j, (int)n, 0);
        traces_operations_free(&o);
        return;
    }
    case J_SEARCH:
    case J_GET:
    case J_BYIDS:
    case J3_SEARCH:
    case J3_GET:
    case J3_SUMMARIES: {
        traces_result *res = NULL;
        int rc;
        int search = jb->op == J_SEARCH || jb->op == J3_SEARCH || jb->op == J3_SUMMARIES;
        if (search) {
            jb->q.tag_keys = (const char *const *)jb->tagk;
            jb->q.tag_values = (const char *const *)jb->tagv;
            jb->q.ntags = jb->ntags;
            jb->q.service = jb->service;
            jb->q.operation = jb->operation;
            rc = traces_search(r, &jb->q, &res, err, sizeof err);
        } else {
            rc = traces_get(r, (const uint8_t(*)[16])jb->ids, jb->nids, &res, err, sizeof err);
        }
        if (rc) {
            store_failed(jb, err);
            return;
        }
        size_t n = traces_result_count(res);
        const traces_trace **ts = calloc(n ? n : 1, sizeof *ts);
        if (!ts) {
            traces_result_free(res);
            store_failed(jb, "out of memory");
            return;
        }
        for (size_t i = 0; i < n; i++)
            ts[i] = traces_result_trace(res, i);
        if (search) qsort(ts, n, sizeof *ts, trace_start_cmp);
        if (jb->op == J3_SUMMARIES) {
            /* no match is an empty list (200), unlike /api/v3/traces */
            if (tr_jaeger_render_v3_summaries(&j, ts, n)) {
                free(ts);
                traces_result_free(res);
                store_failed(jb, "out of memory");
                return;
            }
        } else if (jb->op == J_GET && n == 0 && !traces_result_damaged(res, NULL)) {
            jb->status = 404;
            legacy_error(&jb->out, 404, "trace not found");
        } else if ((jb->op == J3_SEARCH || jb->op == J3_GET) && n == 0) {
            jb->status = 404;
            v3_error(&jb->out, 404, "No traces found");
        } else if (jb->op == J3_SEARCH || jb->op == J3_GET) {
            tr_jaeger_adj *adjs = jb->raw ? NULL : calloc(n, sizeof *adjs);
            size_t na = 0;
            for (; adjs && na < n; na++)
                if (tr_jaeger_adjust(ts[na], jb->env->jaeger_max_skew_ms * 1000000, &adjs[na]) != 0) break;
            if (!jb->raw && na < n) {
                for (size_t i = 0; i < na; i++)
                    tr_jaeger_adj_free(&adjs[i]);
                free(adjs);
                free(ts);
                traces_result_free(res);
                store_failed(jb, "out of memory");
                return;
            }
            tr_jaeger_render_v3_traces(&j, ts, n, adjs);
            for (size_t i = 0; adjs && i < n; i++)
                tr_jaeger_adj_free(&adjs[i]);
            free(adjs);
        } else {
            envelope_open(&j);
            for (size_t i = 0; i < n; i++) {
                tr_jaeger_adj adj;
                if (!jb->raw && tr_jaeger_adjust(ts[i], jb->env->jaeger_max_skew_ms * 1000000, &adj) == 0) {
                    tr_jaeger_render_trace_adj(&j, ts[i], &adj);
                    tr_jaeger_adj_free(&adj);
                } else {
                    tr_jaeger_render_trace_adj(&j, ts[i], NULL);
                }
            }
            if (jb->op == J_BYIDS) {
                envelope_close(&j, 0, 1);
                /* each id not found adds an error entry; still 200 */
                int missing = 0;
                for (size_t i = 0; i < jb->nids; i++) {
                    int found = 0;
                    for (size_t k = 0; k < n && !found; k++)
                        found = !memcmp(ts[k]->id, jb->ids[i], 16);
                    for (size_t k = 0; k < i && !found; k++)
                        found = !memcmp(jb->ids[k], jb->ids[i], 16); /* reported once */
                    if (found) continue;
                    if (!missing++) {
                        tr_json_key(&j, "errors");
                        tr_json_arr_open(&j);
                    }
                    char t[33];
                    tr_jaeger_format_trace_id(jb->ids[i], t);
                    tr_json_obj_open(&j);
                    tr_json_key(&j, "msg");
                    tr_json_str(&j, "trace not found");
                    tr_json_key(&j, "traceID");
                    tr_json_str(&j, t);
                    tr_json_obj_close(&j);
                }
                missing = damage_errors(&j, res, missing);
                if (missing)
                    tr_json_arr_close(&j);
                else {
                    tr_json_key(&j, "errors");
                    tr_json_null(&j);
                }
                tr_json_obj_close(&j);
            } else {
                envelope_close(&j, 0, 1);
                if (damage_errors(&j, res, 0))
                    tr_json_arr_close(&j);
                else {
                    tr_json_key(&j, "errors");
                    tr_json_null(&j);
                }
                tr_json_obj_close(&j);
            }
        }
        free(ts);
        traces_result_free(res);
        return;
    }
    case J_DEPS: {
        traces_dependencies d;
        if (traces_dependencies_list(r, jb->from, jb->to, &d, err, sizeof err)) {
            store_failed(jb, err);
            return;
        }
        envelope_open(&j);
        for (size_t i = 0; i < d.n; i++) {
            if (jb->service && strcmp(d.v[i].parent, jb->service) && strcmp(d.v[i].child, jb->service))
                continue;
            tr_json_obj_open(&j);
            tr_json_key(&j, "parent");
            tr_json_str(&j, d.v[i].parent);
            tr_json_key(&j, "child");
            tr_json_str(&j, d.v[i].child);
            tr_json_key(&j, "callCount");
            tr_json_uint(&j, d.v[i].count);
            tr_json_obj_close(&j);
        }
        envelope_close(&j, 0, 1);
        if (damage_errors_ids(&j, d.damaged, d.ndamaged, 0))
            tr_json_arr_close(&j);
        else {
            tr_json_key(&j, "errors");
            tr_json_null(&j);
        }
        tr_json_obj_close(&j);
        traces_dependencies_free(&d);
        return;
    }
    }
}

static void job_done(void *arg) {
    jjob *jb = arg;
    if (jb->out.failed) {
        reply_error(jb->req, jb->op >= J3_SERVICES, 500, "response too large");
    } else {
        int err = jb->status >= 400;
        tr_buf pretty;
        tr_buf_init(&pretty, MAX_REPLY);
        if (!err && jb->pretty && json_indent(&jb->out, &pretty) == 0)
            tr_http_reply_buf(jb->req, jb->status, "application/json", &pretty);
        else
            tr_http_reply_buf(jb->req, jb->status, err ? "text/plain; charset=utf-8" : "application/json",
                              &jb->out);
        tr_buf_free(&pretty);
    }
    job_free(jb);
}

/* Reader connections for the work queue's threads, reused between jobs. */
#define MAX_POOLED 16
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static traces_reader *pool[MAX_POOLED];
static size_t npool;

static traces_reader *reader_get(traces_store *s) {
    pthread_mutex_lock(&pool_mu);
    traces_reader *r = npool ? pool[--npool] : NULL;
    pthread_mutex_unlock(&pool_mu);
    if (!r) {
        char err[300];
        r = traces_reader_open(s, err, sizeof err);
        if (!r) TR_WARN("jaeger api: cannot open a trace reader", "error=\"%s\"", err);
    }
    return r;
}

static void reader_put(traces_reader *r) {
    if (!r) return;
    pthread_mutex_lock(&pool_mu);
    if (npool < MAX_POOLED) pool[npool++] = r, r = NULL;
    pthread_mutex_unlock(&pool_mu);
    if (r) traces_reader_close(r);
}

void tr_api_jaeger_fini(void) {
    pthread_mutex_lock(&pool_mu);
    while (npool)
        traces_reader_close(pool[--npool]);
    pthread_mutex_unlock(&pool_mu);
}

static void wq_run(void *ctx, const volatile int *cancel) {
    jjob *jb = ctx;
    if (*cancel) return;
    traces_reader *r = reader_get(jb->env->traces);
    job_run(r, jb);
    reader_put(r);
}

static void wq_done(void *ctx, int cancelled) {
    jjob *jb = ctx;
    if (cancelled && jb->status < 400 && !jb->out.len) {
        reply_error(jb->req, jb->op >= J3_SERVICES, 503, "request canceled");
        job_free(jb);
        return;
    }
    job_done(jb);
}

static void submit(const tr_api_env *env, jjob *jb) {
    jb->env = env;
    if (!tr_api_submit(env, jb->req, wq_run, wq_done, jb)) {
        reply_error(jb->req, jb->op >= J3_SERVICES, 503, TR_API_BUSY);
        job_free(jb);
    }
}

/* ---- handlers ---- */

int tr_jaeger_parse_trace_id_b64(const char *s, uint8_t id[16]) {
    size_t n = strlen(s);
    uint8_t out[tr_base64_max(24)];
    if (n == 0 || n > 24) return -1;
    long m = tr_base64_decode(s, n, out);
    if (m != 8 && m != 16) return -1;
    memset(id, 0, 16);
    memcpy(id + 16 - m, out, (size_t)m);
    return 0;
}

static const char *param(const tr_form *q, const char *k) {
    return tr_form_get_nonempty(q, k); /* an empty single-valued parameter counts as absent */
}

static int kind_from_name(const char *k) {
    if (!k || !*k) return -1;
    static const char *const names[] = {"unspecified", "internal", "server",
                                        "client",      "producer", "consumer"};
    for (int i = 0; i < 6; i++)
        if (strcasecmp(k, names[i]) == 0) return i;
    return 99;
}

/* Parses `tags` (JSON object of strings) into the job; returns 0 or -1 with err. */
static int parse_tags_json(jjob *jb, const char *name, const char *v, char *err, size_t errlen) {
    cJSON *o = cJSON_Parse(v);
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        if (!*v || (at && !*at))
            snprintf(err, errlen,
                     "malformed '%s' parameter, cannot unmarshal JSON: unexpected end of JSON input", name);
        else
            snprintf(err, errlen,
                     "malformed '%s' parameter, cannot unmarshal JSON: invalid character '%c' looking for "
                     "beginning of value",
                     name, at ? *at : '?');
        return -1;
    }
    if (!cJSON_IsObject(o)) {
        const char *t = cJSON_IsArray(o)    ? "array"
                        : cJSON_IsString(o) ? "string"
                        : cJSON_IsNumber(o) ? "number"
                        : cJSON_IsBool(o)   ? "bool"
                                            : "null";
        if (cJSON_IsNull(o)) {
            cJSON_Delete(o);
            return 0;
        }
        snprintf(err, errlen,
                 "malformed '%s' parameter, cannot unmarshal JSON: json: cannot unmarshal %s into Go value "
                 "of type map[string]string",
                 name, t);
        cJSON_Delete(o);
        return -1;
    }
    for (cJSON *c = o->child; c; c = c->next) {
        if (!cJSON_IsString(c)) {
            const char *t = cJSON_IsArray(c)    ? "array"
                            : cJSON_IsObject(c) ? "object"
                            : cJSON_IsNumber(c) ? "number"
                            : cJSON_IsBool(c)   ? "bool"
                                                : "null";
            if (cJSON_IsNull(c)) continue;
            snprintf(err, errlen,
                     "malformed '%s' parameter, cannot unmarshal JSON: json: cannot unmarshal %s into Go "
                     "value of type string",
                     name, t);
            cJSON_Delete(o);
            return -1;
        }
        int rc = job_add_tag(jb, c->string, strlen(c->string), c->valuestring);
        if (rc) {
            snprintf(err, errlen, rc == -2 ? "too many tags (at most %d)" : "out of memory", MAX_TAGS);
            cJSON_Delete(o);
            return -1;
        }
    }
    cJSON_Delete(o);
    return 0;
}

static void h_search(struct evhttp_request *req, const tr_form *q, const tr_api_env *s) {
    char err[400], inner[300];
    jjob *jb = job_new(req, J_SEARCH);
    if (!jb) {
        reply_error(req, 0, 500, "out of memory");
        return;
    }
    int64_t now = tr_now_ns(), v;
    jb->q.start_ns = now - 48LL * 3600 * 1000000000LL;
    jb->q.end_ns = now;
    jb->q.limit = 100;
    const char *p;
    const tr_form_kv *kv;
    if ((p = param(q, "start"))) {
        if (tr_jaeger_parse_int(p, 64, &v, inner, sizeof inner)) {
            snprintf(err, sizeof err, "unable to parse param 'start': %s", inner);
            goto bad;
        }
        jb->q.start_ns = v > INT64_MAX / 1000 ? INT64_MAX : v < INT64_MIN / 1000 ? INT64_MIN : v * 1000;
    }
    if ((p = param(q, "end"))) {
        if (tr_jaeger_parse_int(p, 64, &v, inner, sizeof inner)) {
            snprintf(err, sizeof err, "unable to parse param 'end': %s", inner);
            goto bad;
        }
        jb->q.end_ns = v > INT64_MAX / 1000 ? INT64_MAX : v < INT64_MIN / 1000 ? INT64_MIN : v * 1000 + 999;
    }
    for (kv = q->kv; kv < q->kv + q->n; kv++) {
        if (strcmp(kv->key, "tag") != 0) continue;
        const char *colon = strchr(kv->value, ':');
        if (!colon) {
            snprintf(err, sizeof err, "malformed 'tag' parameter, expecting key:value, received: %s",
                     kv->value);
            goto bad;
        }
        int rc = job_add_tag(jb, kv->value, (size_t)(colon - kv->value), colon + 1);
        if (rc) {
            snprintf(err, sizeof err, rc == -2 ? "too many tags (at most %d)" : "out of memory", MAX_TAGS);
            goto bad;
        }
    }
    for (kv = q->kv; kv < q->kv + q->n; kv++) {
        if (strcmp(kv->key, "tags") != 0) continue;
        if (parse_tags_json(jb, "tags", kv->value, err, sizeof err)) goto bad;
    }
    if ((p = param(q, "limit"))) {
        if (tr_jaeger_parse_int(p, 32, &v, err, sizeof err)) goto bad;
        if (v <= 0) {
            snprintf(err, sizeof err,
                     "unable to parse param 'limit': must be a positive number of traces, got %s", p);
            goto bad;
        }
        jb->q.limit = v > MAX_LIMIT ? MAX_LIMIT : (int)v;
    }
    if ((p = param(q, "minDuration"))) {
        if (tr_jaeger_parse_duration(p, &v, inner, sizeof inner)) {
            snprintf(err, sizeof err, "unable to parse param 'minDuration': %s", inner);
            goto bad;
        }
        jb->q.min_dur_ns = v;
    }
    if ((p = param(q, "maxDuration"))) {
        if (tr_jaeger_parse_duration(p, &v, inner, sizeof inner)) {
            snprintf(err, sizeof err, "unable to parse param 'maxDuration': %s", inner);
            goto bad;
        }
        jb->q.max_dur_ns = v;
    }
    for (kv = q->kv; kv < q->kv + q->n; kv++) {
        if (strcmp(kv->key, "traceID") != 0) continue;
        if (jb->nids >= MAX_TRACE_IDS) {
            snprintf(err, sizeof err, "too many traceID parameters (at most %d)", MAX_TRACE_IDS);
            goto bad;
        }
        uint8_t(*n)[16] = realloc(jb->ids, (jb->nids + 1) * sizeof *n);
        if (!n) {
            snprintf(err, sizeof err, "out of memory");
            goto bad;
        }
        jb->ids = n;
        if (tr_jaeger_parse_trace_id(kv->value, jb->ids[jb->nids], inner, sizeof inner)) {
            snprintf(err, sizeof err, "cannot parse traceID param: %s", inner);
            goto bad;
        }
        jb->nids++;
    }
    if ((p = param(q, "raw"))) {
        int b;
        if (tr_jaeger_parse_bool(p, &b, inner, sizeof inner)) {
            snprintf(err, sizeof err, "unable to parse param 'raw': %s", inner);
            goto bad;
        }
        jb->raw = b;
    }
    if (jb->nids) {
        jb->op = J_BYIDS;
        submit(s, jb);
        return;
    }
    if (!(p = param(q, "service"))) {
        snprintf(err, sizeof err, "parameter 'service' is required");
        goto bad;
    }
    if (jb->q.min_dur_ns && jb->q.max_dur_ns && jb->q.max_dur_ns < jb->q.min_dur_ns) {
        snprintf(err, sizeof err, "'maxDuration' should be greater than 'minDuration'");
        goto bad;
    }
    jb->service = strdup(p);
    if ((p = param(q, "operation"))) jb->operation = strdup(p);
    submit(s, jb);
    return;
bad:
    reply_error(req, 0, 400, err);
    job_free(jb);
}

static void h_get(struct evhttp_request *req, const tr_form *q, const tr_api_env *s, const char *id, int v3) {
    char err[400], inner[300];
    jjob *jb = job_new(req, v3 ? J3_GET : J_GET);
    if (!jb) {
        reply_error(req, v3, 500, "out of memory");
        return;
    }
    jb->ids = malloc(sizeof *jb->ids);
    if (!jb->ids) {
        snprintf(err, sizeof err, "out of memory");
        goto bad;
    }
    if (tr_jaeger_parse_trace_id(id, jb->ids[0], inner, sizeof inner) &&
        tr_jaeger_parse_trace_id_b64(id, jb->ids[0])) {
        if (v3)
            snprintf(err, sizeof err, "malformed parameter trace_id: %s", inner);
        else
            snprintf(err, sizeof err, "%s", inner);
        goto bad;
    }
    jb->nids = 1;
    const char *p;
    int64_t v;
    if (!v3) {
        /* start/end are only hints: validated, never used to hide a stored trace */
        static const char *const names[] = {"start", "end"};
        for (int i = 0; i < 2; i++)
            if ((p = param(q, names[i])) && tr_jaeger_parse_int(p, 64, &v, inner, sizeof inner)) {
                snprintf(err, sizeof err, "unable to parse param '%s': %s", names[i], inner);
                goto bad;
            }
    } else {
        static const char *const names[][2] = {{"startTime", "start_time"}, {"endTime", "end_time"}};
        for (int i = 0; i < 2; i++) {
            const char *nm = names[i][0];
            if (!(p = param(q, nm))) p = param(q, nm = names[i][1]);
            if (p && tr_rfc3339_ns(p, &v)) {
                snprintf(err, sizeof err,
                         "malformed parameter %s: parsing time \"%s\" as "
                         "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse",
                         nm, p);
                goto bad;
            }
        }
    }
    const char *raw =
        v3 ? (param(q, "rawTraces") ? param(q, "rawTraces") : param(q, "raw_traces")) : param(q, "raw");
    if (raw) {
        int b;
        if (tr_jaeger_parse_bool(raw, &b, inner, sizeof inner)) {
            if (v3)
                snprintf(err, sizeof err, "malformed parameter rawTraces: %s", inner);
            else
                snprintf(err, sizeof err, "unable to parse param 'raw': %s", inner);
            goto bad;
        }
        jb->raw = b;
    }
    submit(s, jb);
    return;
bad:
    reply_error(req, v3, 400, err);
    job_free(jb);
}

static void h_v3_search(struct evhttp_request *req, const tr_form *q, const tr_api_env *s, int op) {
    char err[400], inner[300];
    jjob *jb = job_new(req, op);
    if (!jb) {
        reply_error(req, 1, 500, "out of memory");
        return;
    }
    const char *p, *nm;
#define V3P(canon, alias) ((p = param(q, nm = canon)) || (alias && (p = param(q, nm = alias))))
    if (V3P("query.serviceName", "query.service_name")) jb->service = strdup(p);
    if (V3P("query.operationName", "query.operation_name")) jb->operation = strdup(p);
    const char *tmin =
        param(q, "query.startTimeMin") ? param(q, "query.startTimeMin") : param(q, "query.start_time_min");
    const char *tmax =
        param(q, "query.startTimeMax") ? param(q, "query.startTimeMax") : param(q, "query.start_time_max");
    if (!tmin || !tmax) {
        snprintf(err, sizeof err, "query.startTimeMin and query.startTimeMax are required");
        goto bad;
    }
    if (tr_rfc3339_ns(tmin, &jb->q.start_ns)) {
        snprintf(err, sizeof err,
                 "malformed parameter query.startTimeMin: parsing time \"%s\" as "
                 "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse",
                 tmin);
        goto bad;
    }
    if (tr_rfc3339_ns(tmax, &jb->q.end_ns)) {
        snprintf(err, sizeof err,
                 "malformed parameter query.startTimeMax: parsing time \"%s\" as "
                 "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse",
                 tmax);
        goto bad;
    }
    if (jb->q.start_ns >= jb->q.end_ns) {
        snprintf(err, sizeof err, "query.startTimeMin must be before query.startTimeMax");
        goto bad;
    }
    int64_t v;
    if (V3P("query.durationMin", "query.duration_min")) {
        if (tr_jaeger_parse_duration(p, &v, inner, sizeof inner)) {
            snprintf(err, sizeof err, "malformed parameter %s: %s", nm, inner);
            goto bad;
        }
        jb->q.min_dur_ns = v;
    }
    if (V3P("query.durationMax", "query.duration_max")) {
        if (tr_jaeger_parse_duration(p, &v, inner, sizeof inner)) {
            snprintf(err, sizeof err, "malformed parameter %s: %s", nm, inner);
            goto bad;
        }
        jb->q.max_dur_ns = v;
    }
    jb->q.limit = 100;
    if (V3P("query.searchDepth", "query.search_depth") || (p = param(q, nm = "query.num_traces"))) {
        if (tr_jaeger_parse_int(p, 64, &v, inner, sizeof inner)) {
            snprintf(err, sizeof err, "malformed parameter %s: strconv.Atoi: parsing \"%s\": invalid syntax",
                     nm, p);
            goto bad;
        }
        if (v <= 0) {
            snprintf(err, sizeof err, "malformed parameter %s: must be a positive number of traces", nm);
            goto bad;
        }
        jb->q.limit = v > MAX_LIMIT ? MAX_LIMIT : (int)v;
    }
    if (V3P("query.rawTraces", "query.raw_traces")) {
        int b;
        if (tr_jaeger_parse_bool(p, &b, inner, sizeof inner)) {
            snprintf(err, sizeof err, "malformed parameter %s: %s", nm, inner);
            goto bad;
        }
    }
    if ((p = param(q, "query.attributes"))) {
        if (parse_tags_json(jb, "query.attributes", p, inner, sizeof inner)) {
            snprintf(err, sizeof err, "malformed parameter query.attributes: %s", inner);
            goto bad;
        }
    }
#undef V3P
    submit(s, jb);
    return;
bad:
    reply_error(req, 1, 400, err);
    job_free(jb);
}

/* The form of a request; on error replies 400 and returns -1. */
static int form_or_reply(struct evhttp_request *req, tr_form *q, int v3) {
    char err[300], msg[400];
    if (tr_http_form(req, q, err, sizeof err) == 0) return 0;
    tr_form_free(q);
    snprintf(msg, sizeof msg, "malformed query string: %s", err);
    reply_error(req, v3, 400, msg);
    return -1;
}

static void h_services(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    jjob *jb = job_or_reply(req, J_SERVICES);
    if (jb) submit(ctx, jb);
}

static void h_service_ops(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    jjob *jb = job_or_reply(req, J_SERVICE_OPS);
    if (!jb) return;
    if (!(jb->service = strdup(tr_http_var(m, "service")))) {
        reply_error(req, 0, 500, "out of memory");
        job_free(jb);
        return;
    }
    submit(ctx, jb);
}

static void h_operations(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    const char *p;
    jjob *jb;
    if (form_or_reply(req, &q, 0)) return;
    if (!(p = param(&q, "service"))) {
        reply_error(req, 0, 400, "parameter 'service' is required");
    } else if ((jb = job_or_reply(req, J_OPERATIONS))) {
        jb->service = strdup(p);
        jb->kind = kind_from_name(param(&q, "spanKind"));
        submit(ctx, jb);
    }
    tr_form_free(&q);
}

static void h_traces(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    if (form_or_reply(req, &q, 0)) return;
    h_search(req, &q, ctx);
    tr_form_free(&q);
}

static void h_trace(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    if (form_or_reply(req, &q, 0)) return;
    h_get(req, &q, ctx, tr_http_var(m, "id"), 0);
    tr_form_free(&q);
}

static void h_dependencies(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    char err[400], inner[300];
    const char *p;
    jjob *jb;
    if (form_or_reply(req, &q, 0)) return;
    int64_t end = tr_now_ns() / 1000000, lookback = 86400000;
    if ((p = param(&q, "endTs")) && tr_jaeger_parse_int(p, 64, &end, inner, sizeof inner)) {
        snprintf(err, sizeof err, "unable to parse param 'endTs': %s", inner);
        reply_error(req, 0, 400, err);
    } else if ((p = param(&q, "lookback")) && tr_jaeger_parse_int(p, 64, &lookback, inner, sizeof inner)) {
        snprintf(err, sizeof err, "unable to parse param 'lookback': %s", inner);
        reply_error(req, 0, 400, err);
    } else if ((jb = job_or_reply(req, J_DEPS))) {
        if (end > INT64_MAX / 1000000) end = INT64_MAX / 1000000;
        if (lookback < 0) lookback = 0;
        jb->to = end * 1000000 + 999999;
        jb->from = (end - lookback) * 1000000;
        if ((p = param(&q, "service"))) jb->service = strdup(p);
        submit(ctx, jb);
    }
    tr_form_free(&q);
}

static void h3_services(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    jjob *jb = job_or_reply(req, J3_SERVICES);
    if (jb) submit(ctx, jb);
}

static void h3_operations(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    jjob *jb;
    if (form_or_reply(req, &q, 1)) return;
    if ((jb = job_or_reply(req, J3_OPERATIONS))) {
        const char *p = param(&q, "service");
        jb->service = p ? strdup(p) : NULL;
        const char *k = param(&q, "spanKind") ? param(&q, "spanKind") : param(&q, "span_kind");
        jb->kind = kind_from_name(k);
        if (!p) jb->kind = 99; /* no service: nothing, as Jaeger's storage answers */
        submit(ctx, jb);
    }
    tr_form_free(&q);
}

static void h3_traces(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    if (form_or_reply(req, &q, 1)) return;
    h_v3_search(req, &q, ctx, J3_SEARCH);
    tr_form_free(&q);
}

/* Jaeger UI 2.19+'s search: the same parameters as /api/v3/traces, summaries only. */
static void h3_summaries(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    if (form_or_reply(req, &q, 1)) return;
    h_v3_search(req, &q, ctx, J3_SUMMARIES);
    tr_form_free(&q);
}

static void h3_trace(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form q;
    if (form_or_reply(req, &q, 1)) return;
    h_get(req, &q, ctx, tr_http_var(m, "id"), 1);
    tr_form_free(&q);
}

void tr_api_jaeger_routes(tr_http *h, const tr_api_env *env) {
    void *e = (void *)env;
    tr_http_route(h, TR_GET, "/api/services", TR_HTTP_NO_405, h_services, e);
    tr_http_route(h, TR_GET, "/api/services/{service}/operations", TR_HTTP_NO_405, h_service_ops, e);
    tr_http_route(h, TR_GET, "/api/operations", TR_HTTP_NO_405, h_operations, e);
    tr_http_route(h, TR_GET, "/api/traces", TR_HTTP_NO_405, h_traces, e);
    tr_http_route(h, TR_GET, "/api/traces/{id}", TR_HTTP_NO_405, h_trace, e);
    tr_http_route(h, TR_GET, "/api/dependencies", TR_HTTP_NO_405, h_dependencies, e);
    tr_http_route(h, TR_GET, "/api/v3/services", TR_HTTP_NO_405, h3_services, e);
    tr_http_route(h, TR_GET, "/api/v3/operations", TR_HTTP_NO_405, h3_operations, e);
    tr_http_route(h, TR_GET, "/api/v3/traces", TR_HTTP_NO_405, h3_traces, e);
    tr_http_route(h, TR_GET, "/api/v3/traces/{id}", TR_HTTP_NO_405, h3_trace, e);
    tr_http_route(h, TR_GET, "/api/v3/trace-summaries", TR_HTTP_NO_405, h3_summaries, e);
}
