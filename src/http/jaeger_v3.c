/* The Jaeger API v3 trace body: stored spans written back as OTLP JSON (the pdata encoding:
 * camelCase keys, hex ids of fixed width, 64-bit integers as decimal strings, enums as
 * numbers, default values omitted), one resourceSpans entry per run of spans sharing a
 * resource, within it one scopeSpans entry per run sharing a scope. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jaeger.h"
#include "util/text.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;

static void hexs(tr_json *j, const uint8_t *p, size_t n) {
    char out[65];
    if (n > 32) n = 32;
    tr_hex_encode(p, n, out);
    tr_json_strn(j, out, 2 * n);
}

static void u64s(tr_json *j, uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    tr_json_str(j, b);
}

static void any_value(tr_json *j, const traces_pb_value *v, tr_buf *tmp, int depth);

static void kv_one(tr_json *j, const kv_t *kv, tr_buf *tmp, int depth) {
    tr_json_obj_open(j);
    tr_json_key(j, "key");
    tr_json_str(j, kv->key ? kv->key : "");
    tr_json_key(j, "value");
    any_value(j, kv->value, tmp, depth + 1);
    tr_json_obj_close(j);
}

static void kvs(tr_json *j, kv_t **a, size_t n, tr_buf *tmp, int depth) {
    tr_json_arr_open(j);
    for (size_t i = 0; i < n; i++)
        if (a[i]) kv_one(j, a[i], tmp, depth);
    tr_json_arr_close(j);
}

/* What the adjusters change in one attribute list (v3 output, not raw). */
typedef struct kvadj {
    int ip;                           /* ip / peer.ipv4 dotted */
    unsigned sdk_moved;               /* library attributes left out (moved to the resource) */
    const tr_jaeger_res_extra *extra; /* appended: moved into this resource */
    char **warn;                      /* appended as "@jaeger@warnings" */
    size_t nwarn;
    int link_removed; /* "Invalid span link removed" warned too */
} kvadj;

/* An attribute list as the adjusters leave it: sorted by key, IPs dotted, moved library
 * attributes out, the resource's new ones and the span's warnings appended. The key is
 * written only when the list is not empty. */
static void kvs_adj(tr_json *j, const char *key, kv_t **a, size_t n, const kvadj *x, tr_buf *tmp) {
    kv_t **o = tr_jaeger_sorted_kvs(a, n);
    size_t extra = x->extra ? x->extra->n : 0;
    int warn = x->nwarn || x->link_removed;
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        const kv_t *kv = o ? o[i] : a[i];
        if (o && !kv) break;
        if (kv && !tr_jaeger_sdk_skipped(kv, x->sdk_moved)) shown++;
    }
    if (!shown && !extra && !warn) {
        free(o);
        return;
    }
    tr_json_key(j, key);
    tr_json_arr_open(j);
    for (size_t i = 0; i < n; i++) {
        const kv_t *kv = o ? o[i] : a[i];
        if (o && !kv) break;
        if (!kv || tr_jaeger_sdk_skipped(kv, x->sdk_moved)) continue;
        char ip[16];
        if (x->ip && tr_jaeger_ip_attr(kv, ip)) {
            tr_json_obj_open(j);
            tr_json_key(j, "key");
            tr_json_str(j, kv->key);
            tr_json_key(j, "value");
            tr_json_obj_open(j);
            tr_json_key(j, "stringValue");
            tr_json_str(j, ip);
            tr_json_obj_close(j);
            tr_json_obj_close(j);
            continue;
        }
        kv_one(j, kv, tmp, 0);
    }
    for (size_t i = 0; i < extra; i++)
        kv_one(j, x->extra->kv[i], tmp, 0);
    if (warn) {
        tr_json_obj_open(j);
        tr_json_key(j, "key");
        tr_json_str(j, "@jaeger@warnings");
        tr_json_key(j, "value");
        tr_json_obj_open(j);
        tr_json_key(j, "arrayValue");
        tr_json_obj_open(j);
        tr_json_key(j, "values");
        tr_json_arr_open(j);
        for (size_t i = 0; i < x->nwarn + (x->link_removed ? 1 : 0); i++) {
            tr_json_obj_open(j);
            tr_json_key(j, "stringValue");
            tr_json_str(j, i < x->nwarn ? x->warn[i] : "Invalid span link removed");
            tr_json_obj_close(j);
        }
        tr_json_arr_close(j);
        tr_json_obj_close(j);
        tr_json_obj_close(j);
        tr_json_obj_close(j);
    }
    tr_json_arr_close(j);
    free(o);
}

/* Writes `key` and the attributes, adjusted when x is set. */
static void attrs(tr_json *j, const char *key, kv_t **a, size_t n, const kvadj *x, tr_buf *tmp) {
    if (x) {
        kvs_adj(j, key, a, n, x, tmp);
    } else if (n) {
        tr_json_key(j, key);
        kvs(j, a, n, tmp, 0);
    }
}

static int zero16(const uint8_t *p, size_t n) {
    if (n != 16) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int ev_name_cmp(const void *a, const void *b) {
    const Opentelemetry__Proto__Trace__V1__Span__Event *x = *(const void *const *)a,
                                                       *y = *(const void *const *)b;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static void any_value(tr_json *j, const traces_pb_value *v, tr_buf *tmp, int depth) {
    tr_json_obj_open(j);
    if (v && depth < 32) {
        switch (v->value_case) {
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
            tr_json_key(j, "stringValue");
            tr_json_str(j, v->string_value ? v->string_value : "");
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
            tr_json_key(j, "boolValue");
            tr_json_bool(j, v->bool_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE: {
            char b[24];
            snprintf(b, sizeof b, "%lld", (long long)v->int_value);
            tr_json_key(j, "intValue");
            tr_json_str(j, b);
            break;
        }
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
            tr_json_key(j, "doubleValue");
            tr_json_double(j, v->double_value);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE: {
            size_t n;
            const char *s = traces_value_form(v, tmp, &n);
            tr_json_key(j, "bytesValue");
            tr_json_strn(j, s, n);
            break;
        }
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
            tr_json_key(j, "arrayValue");
            tr_json_obj_open(j);
            if (v->array_value && v->array_value->n_values) {
                tr_json_key(j, "values");
                tr_json_arr_open(j);
                for (size_t i = 0; i < v->array_value->n_values; i++)
                    any_value(j, v->array_value->values[i], tmp, depth + 1);
                tr_json_arr_close(j);
            }
            tr_json_obj_close(j);
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
            tr_json_key(j, "kvlistValue");
            tr_json_obj_open(j);
            if (v->kvlist_value && v->kvlist_value->n_values) {
                tr_json_key(j, "values");
                kvs(j, v->kvlist_value->values, v->kvlist_value->n_values, tmp, depth);
            }
            tr_json_obj_close(j);
            break;
        default:
            break;
        }
    }
    tr_json_obj_close(j);
}

static void span_json(tr_json *j, const traces_pb_span *sp, const tr_jaeger_span_adj *sa, tr_buf *tmp) {
    static const kvadj sorted = {0};
    int64_t delta = sa ? sa->delta_ns : 0;
    int link_removed = 0;
    for (size_t i = 0; sa && i < sp->n_links; i++)
        if (sp->links[i] && zero16(sp->links[i]->trace_id.data, sp->links[i]->trace_id.len)) link_removed = 1;
    tr_json_obj_open(j);
    tr_json_key(j, "traceId");
    hexs(j, sp->trace_id.data, sp->trace_id.len);
    tr_json_key(j, "spanId");
    hexs(j, sp->span_id.data, sp->span_id.len);
    if (sp->trace_state && *sp->trace_state) {
        tr_json_key(j, "traceState");
        tr_json_str(j, sp->trace_state);
    }
    if (sp->parent_span_id.len) {
        tr_json_key(j, "parentSpanId");
        hexs(j, sp->parent_span_id.data, sp->parent_span_id.len);
    }
    if (sp->flags) {
        tr_json_key(j, "flags");
        tr_json_uint(j, sp->flags);
    }
    tr_json_key(j, "name");
    tr_json_str(j, sp->name ? sp->name : "");
    if (sp->kind) {
        tr_json_key(j, "kind");
        tr_json_int(j, sp->kind);
    }
    tr_json_key(j, "startTimeUnixNano");
    u64s(j, sp->start_time_unix_nano + (uint64_t)delta);
    tr_json_key(j, "endTimeUnixNano");
    u64s(j, sp->end_time_unix_nano + (uint64_t)delta);
    kvadj sx = {.ip = 1, .link_removed = link_removed};
    if (sa) sx.sdk_moved = sa->sdk_moved, sx.warn = sa->warn, sx.nwarn = sa->nwarn;
    attrs(j, "attributes", sp->attributes, sp->n_attributes, sa ? &sx : NULL, tmp);
    if (sp->dropped_attributes_count) {
        tr_json_key(j, "droppedAttributesCount");
        tr_json_uint(j, sp->dropped_attributes_count);
    }
    if (sp->n_events) {
        /* adjusted: by name (a stable sort, as pdata's Sort) */
        const Opentelemetry__Proto__Trace__V1__Span__Event **evs = malloc(sp->n_events * sizeof *evs);
        size_t ne = 0;
        for (size_t i = 0; evs && i < sp->n_events; i++)
            if (sp->events[i]) evs[ne++] = sp->events[i];
        for (size_t i = 1; sa && evs && i < ne; i++)
            for (size_t k = i; k > 0 && ev_name_cmp(&evs[k - 1], &evs[k]) > 0; k--) {
                const Opentelemetry__Proto__Trace__V1__Span__Event *t = evs[k];
                evs[k] = evs[k - 1];
                evs[k - 1] = t;
            }
        tr_json_key(j, "events");
        tr_json_arr_open(j);
        for (size_t i = 0; i < (evs ? ne : sp->n_events); i++) {
            const Opentelemetry__Proto__Trace__V1__Span__Event *e = evs ? evs[i] : sp->events[i];
            if (!e) continue;
            tr_json_obj_open(j);
            tr_json_key(j, "timeUnixNano");
            u64s(j, e->time_unix_nano + (uint64_t)delta);
            if (e->name && *e->name) {
                tr_json_key(j, "name");
                tr_json_str(j, e->name);
            }
            attrs(j, "attributes", e->attributes, e->n_attributes, sa ? &sorted : NULL, tmp);
            if (e->dropped_attributes_count) {
                tr_json_key(j, "droppedAttributesCount");
                tr_json_uint(j, e->dropped_attributes_count);
            }
            tr_json_obj_close(j);
        }
        tr_json_arr_close(j);
        free(evs);
    }
    if (sp->dropped_events_count) {
        tr_json_key(j, "droppedEventsCount");
        tr_json_uint(j, sp->dropped_events_count);
    }
    size_t nlinks = 0;
    for (size_t i = 0; i < sp->n_links; i++)
        nlinks += sp->links[i] && !(sa && zero16(sp->links[i]->trace_id.data, sp->links[i]->trace_id.len));
    if (nlinks) {
        tr_json_key(j, "links");
        tr_json_arr_open(j);
        for (size_t i = 0; i < sp->n_links; i++) {
            const Opentelemetry__Proto__Trace__V1__Span__Link *l = sp->links[i];
            if (!l || (sa && zero16(l->trace_id.data, l->trace_id.len))) continue;
            tr_json_obj_open(j);
            tr_json_key(j, "traceId");
            hexs(j, l->trace_id.data, l->trace_id.len);
            tr_json_key(j, "spanId");
            hexs(j, l->span_id.data, l->span_id.len);
            if (l->trace_state && *l->trace_state) {
                tr_json_key(j, "traceState");
                tr_json_str(j, l->trace_state);
            }
            attrs(j, "attributes", l->attributes, l->n_attributes, sa ? &sorted : NULL, tmp);
            if (l->dropped_attributes_count) {
                tr_json_key(j, "droppedAttributesCount");
                tr_json_uint(j, l->dropped_attributes_count);
            }
            if (l->flags) {
                tr_json_key(j, "flags");
                tr_json_uint(j, l->flags);
            }
            tr_json_obj_close(j);
        }
        tr_json_arr_close(j);
    }
    if (sp->dropped_links_count) {
        tr_json_key(j, "droppedLinksCount");
        tr_json_uint(j, sp->dropped_links_count);
    }
    tr_json_key(j, "status");
    tr_json_obj_open(j);
    if (sp->status) {
        if (sp->status->message && *sp->status->message) {
            tr_json_key(j, "message");
            tr_json_str(j, sp->status->message);
        }
        if (sp->status->code) {
            tr_json_key(j, "code");
            tr_json_int(j, sp->status->code);
        }
    }
    tr_json_obj_close(j);
    tr_json_obj_close(j);
}

void tr_jaeger_render_v3_traces(tr_json *j, const traces_trace *const *traces, size_t n,
                                const tr_jaeger_adj *adjs) {
    static const kvadj sorted = {0};
    tr_buf tmp;
    tr_buf_init(&tmp, 0);
    tr_json_obj_open(j);
    tr_json_key(j, "result");
    tr_json_obj_open(j);
    tr_json_key(j, "resourceSpans");
    tr_json_arr_open(j);
    for (size_t t = 0; t < n; t++) {
        const traces_trace *tr = traces[t];
        const tr_jaeger_adj *adj = adjs ? &adjs[t] : NULL;
        size_t i = 0;
        while (i < tr->n) {
            const traces_pb_resource *res = tr->spans[i].resource;
            tr_json_obj_open(j);
            tr_json_key(j, "resource");
            tr_json_obj_open(j);
            kvadj rx = {.ip = 1, .extra = tr_jaeger_adj_extra(adj, res)};
            attrs(j, "attributes", res ? res->attributes : NULL, res ? res->n_attributes : 0,
                  adj ? &rx : NULL, &tmp);
            if (res && res->dropped_attributes_count) {
                tr_json_key(j, "droppedAttributesCount");
                tr_json_uint(j, res->dropped_attributes_count);
            }
            tr_json_obj_close(j);
            tr_json_key(j, "scopeSpans");
            tr_json_arr_open(j);
            while (i < tr->n && tr->spans[i].resource == res) {
                const traces_pb_scope *sc = tr->spans[i].scope;
                tr_json_obj_open(j);
                tr_json_key(j, "scope");
                tr_json_obj_open(j);
                if (sc && sc->name && *sc->name) {
                    tr_json_key(j, "name");
                    tr_json_str(j, sc->name);
                }
                if (sc && sc->version && *sc->version) {
                    tr_json_key(j, "version");
                    tr_json_str(j, sc->version);
                }
                if (sc) attrs(j, "attributes", sc->attributes, sc->n_attributes, adj ? &sorted : NULL, &tmp);
                tr_json_obj_close(j);
                tr_json_key(j, "spans");
                tr_json_arr_open(j);
                while (i < tr->n && tr->spans[i].resource == res && tr->spans[i].scope == sc) {
                    span_json(j, tr->spans[i].span, adj && i < adj->n ? &adj->sp[i] : NULL, &tmp);
                    i++;
                }
                tr_json_arr_close(j);
                tr_json_obj_close(j);
            }
            tr_json_arr_close(j);
            tr_json_obj_close(j);
        }
    }
    tr_json_arr_close(j);
    tr_json_obj_close(j);
    tr_json_obj_close(j);
    tr_buf_free(&tmp);
}

/* ---- trace summaries (/api/v3/trace-summaries, Jaeger UI 2.19+'s search list) ---- */

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t id8(const ProtobufCBinaryData *d) {
    uint64_t v = 0;
    if (d->len != 8) return 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | d->data[i];
    return v;
}

typedef struct svc_count {
    const char *name;
    uint64_t spans, errors;
} svc_count;

static int svc_cmp(const void *a, const void *b) {
    return strcmp(((const svc_count *)a)->name, ((const svc_count *)b)->name);
}

static int is_error(const traces_pb_span *sp) {
    return sp->status &&
           sp->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
}

/* One summary; returns -1 when out of memory (nothing written). */
static int summary_json(tr_json *j, const traces_trace *tr) {
    uint64_t *ids = malloc((tr->n ? tr->n : 1) * sizeof *ids);
    svc_count *svc = malloc((tr->n ? tr->n : 1) * sizeof *svc);
    if (!ids || !svc) {
        free(ids);
        free(svc);
        return -1;
    }
    size_t nids = 0, nsvc = 0;
    for (size_t i = 0; i < tr->n; i++) {
        uint64_t v = id8(&tr->spans[i].span->span_id);
        if (v) ids[nids++] = v;
    }
    qsort(ids, nids, sizeof *ids, u64_cmp);
    const traces_span *root = NULL;
    uint64_t min_start = UINT64_MAX, max_end = 0, errors = 0, orphans = 0;
    for (size_t i = 0; i < tr->n; i++) {
        const traces_pb_span *sp = tr->spans[i].span;
        if (sp->start_time_unix_nano < min_start) min_start = sp->start_time_unix_nano;
        if (sp->end_time_unix_nano > max_end) max_end = sp->end_time_unix_nano;
        int err = is_error(sp);
        errors += err;
        uint64_t parent = id8(&sp->parent_span_id);
        if (!parent) {
            if (!root || sp->start_time_unix_nano < root->span->start_time_unix_nano) root = &tr->spans[i];
        } else if (!bsearch(&parent, ids, nids, sizeof *ids, u64_cmp)) {
            orphans++;
        }
        const char *name = traces_service_name(tr->spans[i].resource);
        size_t k = 0;
        while (k < nsvc && strcmp(svc[k].name, name))
            k++;
        if (k == nsvc) svc[nsvc++] = (svc_count){name, 0, 0};
        svc[k].spans++;
        svc[k].errors += err;
    }
    qsort(svc, nsvc, sizeof *svc, svc_cmp);
    tr_json_obj_open(j);
    tr_json_key(j, "traceId");
    hexs(j, tr->id, 16);
    if (root) {
        const char *rs = traces_service_name(root->resource);
        if (*rs) {
            tr_json_key(j, "rootServiceName");
            tr_json_str(j, rs);
        }
        if (root->span->name && *root->span->name) {
            tr_json_key(j, "rootOperationName");
            tr_json_str(j, root->span->name);
        }
    }
    if (tr->n && min_start) {
        tr_json_key(j, "minStartTimeUnixNano");
        u64s(j, min_start);
    }
    if (max_end) {
        tr_json_key(j, "maxEndTimeUnixNano");
        u64s(j, max_end);
    }
    if (tr->n) {
        tr_json_key(j, "spanCount");
        tr_json_uint(j, tr->n);
    }
    if (errors) {
        tr_json_key(j, "errorSpanCount");
        tr_json_uint(j, errors);
    }
    if (orphans) {
        tr_json_key(j, "orphanSpanCount");
        tr_json_uint(j, orphans);
    }
    if (nsvc) {
        tr_json_key(j, "services");
        tr_json_arr_open(j);
        for (size_t k = 0; k < nsvc; k++) {
            tr_json_obj_open(j);
            if (*svc[k].name) {
                tr_json_key(j, "name");
                tr_json_str(j, svc[k].name);
            }
            tr_json_key(j, "spanCount");
            tr_json_uint(j, svc[k].spans);
            if (svc[k].errors) {
                tr_json_key(j, "errorSpanCount");
                tr_json_uint(j, svc[k].errors);
            }
            tr_json_obj_close(j);
        }
        tr_json_arr_close(j);
    }
    tr_json_obj_close(j);
    free(ids);
    free(svc);
    return 0;
}

int tr_jaeger_render_v3_summaries(tr_json *j, const traces_trace *const *traces, size_t n) {
    tr_json_obj_open(j);
    tr_json_key(j, "summaries");
    tr_json_arr_open(j);
    for (size_t t = 0; t < n; t++)
        if (summary_json(j, traces[t])) return -1;
    tr_json_arr_close(j);
    tr_json_obj_close(j);
    return 0;
}
