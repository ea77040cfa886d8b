/* The trace store's encodings: index key hashing, the string form of attribute values that
 * tag searches compare with, the list of tags a span is searchable by, index blobs, and the
 * chunk format (a single-pass protobuf writer, and views that unpack only what is asked).
 * Ingest, retention and search all go through these, so the index always agrees with the
 * exact check a search makes on decoded spans. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "traces_int.h"
#include "util/crc32c.h"

/* A small 64-bit hash (multiply-xorshift over 8-byte words). It is part of the file format:
 * changing it needs a schema version bump. */
uint64_t tr_hash64(const void *p, size_t n, uint64_t seed) {
    const unsigned char *s = p;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ tr_mix64(w)) * 0x9e3779b97f4a7c15ULL;
        h = (h << 29) | (h >> 35);
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)s[i] << (8 * i);
    h ^= tr_mix64(w + n);
    return tr_mix64(h);
}

#define SEED_SVC 0x5356430000000001ULL
#define SEED_OP 0x4f50000000000002ULL
#define SEED_TAG 0x5441470000000003ULL

uint64_t key_service(const char *svc) { return tr_hash64(svc, strlen(svc), SEED_SVC); }

uint64_t key_operation(const char *svc, const char *op) {
    return tr_hash64(op, strlen(op), key_service(svc) ^ SEED_OP);
}

uint64_t key_tag(const char *k, const char *v, size_t vlen) {
    return tr_hash64(v, vlen, tr_hash64(k, strlen(k), SEED_TAG));
}

int64_t key_trace(const uint8_t *id16) {
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = (v << 8) | id16[i];
    return (int64_t)v;
}

const char *traces_kind_name(int kind) {
    switch (kind) {
    case 1:
        return "internal";
    case 2:
        return "server";
    case 3:
        return "client";
    case 4:
        return "producer";
    case 5:
        return "consumer";
    default:
        return "";
    }
}

const char *traces_service_name(const traces_pb_resource *res) {
    if (!res || res->n_attributes == 0) return "OTLPResourceNoServiceName";
    for (size_t i = 0; i < res->n_attributes; i++) {
        const pb_kv *kv = res->attributes[i];
        if (kv && kv->key && strcmp(kv->key, "service.name") == 0) {
            if (kv->value &&
                kv->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                kv->value->string_value)
                return kv->value->string_value;
            return "";
        }
    }
    return "";
}

/* ---- string forms ---- */

/* JSON form of a value inside an array or map (Go's AsRaw marshalling). */
static void json_value(tr_json *j, tr_buf *tmp, const traces_pb_value *v, int depth) {
    if (!v || depth > 32) {
        tr_json_null(j);
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        tr_json_str(j, v->string_value ? v->string_value : "");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        tr_json_bool(j, v->bool_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        tr_json_int(j, v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        tr_json_double(j, v->double_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        tr_buf_reset(tmp);
        tr_base64_encode(tmp, v->bytes_value.data, v->bytes_value.len);
        tr_json_strn(j, tmp->data ? tmp->data : "", tmp->len);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        tr_json_arr_open(j);
        if (v->array_value)
            for (size_t i = 0; i < v->array_value->n_values; i++)
                json_value(j, tmp, v->array_value->values[i], depth + 1);
        tr_json_arr_close(j);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        tr_json_obj_open(j);
        if (v->kvlist_value)
            for (size_t i = 0; i < v->kvlist_value->n_values; i++) {
                const pb_kv *kv = v->kvlist_value->values[i];
                if (!kv) continue;
                tr_json_key(j, kv->key ? kv->key : "");
                json_value(j, tmp, kv->value, depth + 1);
            }
        tr_json_obj_close(j);
        break;
    default:
        tr_json_null(j);
        break;
    }
}

/* Writes the string form of `v` into `b` (reset first). Strings are not copied: the returned
 * pointer is the value itself; otherwise it is b->data. Sets *len. */
const char *traces_value_form(const traces_pb_value *v, tr_buf *b, size_t *len) {
    tr_buf_reset(b);
    if (!v) {
        *len = 0;
        return "";
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        *len = v->string_value ? strlen(v->string_value) : 0;
        return v->string_value ? v->string_value : "";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        tr_buf_puts(b, v->bool_value ? "true" : "false");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE: {
        /* by hand: every int attribute of every span passes here at ingest, printf was a hot spot */
        char d[24], *e = d + sizeof d, *q = e;
        uint64_t u = v->int_value < 0 ? 0 - (uint64_t)v->int_value : (uint64_t)v->int_value;
        do {
            *--q = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (v->int_value < 0) *--q = '-';
        tr_buf_append(b, q, (size_t)(e - q));
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE: {
        char d[40];
        int n = tr_format_double(d, sizeof d, v->double_value);
        tr_buf_append(b, d, (size_t)n);
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        tr_base64_encode(b, v->bytes_value.data, v->bytes_value.len);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        tr_buf tmp;
        tr_buf_init(&tmp, 0);
        tr_json j;
        tr_json_init(&j, b);
        json_value(&j, &tmp, v, 0);
        tr_buf_free(&tmp);
        break;
    }
    default:
        break;
    }
    *len = b->len;
    return b->data ? b->data : "";
}

size_t traces_value_string(const traces_pb_value *v, char *out, size_t cap) {
    tr_buf b;
    tr_buf_init(&b, 0);
    size_t n;
    const char *s = traces_value_form(v, &b, &n);
    if (cap) {
        size_t c = n < cap - 1 ? n : cap - 1;
        memcpy(out, s, c);
        out[c] = 0;
    }
    tr_buf_free(&b);
    return n;
}

/* ---- the tags a span can be found by ---- */

static int each_kv(pb_kv **kvs, size_t n, tr_buf *tmp, tag_fn fn, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        const pb_kv *kv = kvs[i];
        if (!kv) continue;
        size_t len;
        const char *s = traces_value_form(kv->value, tmp, &len);
        int rc = fn(ctx, kv->key ? kv->key : "", s, len);
        if (rc) return rc;
    }
    return 0;
}

#define EMIT(k, v)                                                                                           \
    do {                                                                                                     \
        const char *v_ = (v);                                                                                \
        int rc_ = fn(ctx, (k), v_, strlen(v_));                                                              \
        if (rc_) {                                                                                           \
            tr_buf_free(&tmp);                                                                               \
            return rc_;                                                                                      \
        }                                                                                                    \
    } while (0)

int span_each_tag(const traces_pb_span *sp, const traces_pb_resource *res, const traces_pb_scope *sc,
                  int with_resource, tag_fn fn, void *ctx) {
    tr_buf tmp;
    tr_buf_init(&tmp, 0);
    int rc;
    if (sc) {
        if (sc->name && *sc->name) EMIT("otel.scope.name", sc->name);
        if (sc->version && *sc->version) EMIT("otel.scope.version", sc->version);
        if ((rc = each_kv(sc->attributes, sc->n_attributes, &tmp, fn, ctx))) goto out;
    }
    if ((rc = each_kv(sp->attributes, sp->n_attributes, &tmp, fn, ctx))) goto out;
    const char *kind = traces_kind_name(sp->kind);
    if (*kind) EMIT("span.kind", kind);
    if (sp->status) {
        if (sp->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK)
            EMIT("otel.status_code", "OK");
        if (sp->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR) {
            EMIT("otel.status_code", "ERROR");
            EMIT("error", "true");
        }
        if (sp->status->message && *sp->status->message) EMIT("otel.status_description", sp->status->message);
    }
    if (sp->trace_state && *sp->trace_state) EMIT("w3c.tracestate", sp->trace_state);
    for (size_t i = 0; i < sp->n_events; i++) {
        const pb_event *e = sp->events[i];
        if (!e) continue;
        if (e->name && *e->name) EMIT("event", e->name);
        if ((rc = each_kv(e->attributes, e->n_attributes, &tmp, fn, ctx))) goto out;
    }
    for (size_t i = 0; i < sp->n_links; i++) {
        const pb_link *l = sp->links[i];
        if (l && (rc = each_kv(l->attributes, l->n_attributes, &tmp, fn, ctx))) goto out;
    }
    if (with_resource && res) {
        if ((rc = each_kv(res->attributes, res->n_attributes, &tmp, fn, ctx))) goto out;
    }
    rc = 0;
out:
    tr_buf_free(&tmp);
    return rc;
}

int resource_each_tag(const traces_pb_resource *res, tag_fn fn, void *ctx) {
    if (!res) return 0;
    tr_buf tmp;
    tr_buf_init(&tmp, 0);
    int rc = each_kv(res->attributes, res->n_attributes, &tmp, fn, ctx);
    tr_buf_free(&tmp);
    return rc;
}

/* ---- index blobs ---- */

void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

long blob_find(const uint8_t *p, size_t n, size_t stride, uint64_t k) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t m = get_u64(p + mid * stride);
        if (m == k) return (long)mid;
        if (m < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- chunk encoding ---- */

#define MAX_CHUNK_RAW (256u << 20) /* a chunk's protobuf: far above CHUNK_SPANS spans at the limits */

/* protobuf-c's packer sizes every nested message once per enclosing level (an attribute of a
 * span in a chunk is sized five times), which made packing the writer's biggest cost after
 * SQLite. Filling the buffer from its end needs no sizes in advance: a message's length is
 * known once its content is written. Fields are written in descending number (so they read in
 * protobuf-c's ascending order) with its proto3 rules: scalars, strings and bytes at their
 * default are left out, absent messages too, and a oneof member is written whenever it is
 * the one set (even "" or 0). */

#define ENC_MAX_DEPTH 64 /* AnyValue nesting; the receivers allow much less */

static int cw_grow(chunk_writer *w, size_t need) {
    size_t used = w->cap - w->pos, nc = w->cap ? w->cap * 2 : 65536;
    while (nc - used < need)
        nc *= 2;
    uint8_t *nb = malloc(nc);
    if (!nb) {
        w->oom = 1;
        return -1;
    }
    if (used) memcpy(nb + nc - used, w->buf + w->pos, used);
    free(w->buf);
    w->buf = nb;
    w->pos = nc - used;
    w->cap = nc;
    return 0;
}

static inline void cw_bytes(chunk_writer *w, const void *p, size_t n) {
    if (w->pos < n && cw_grow(w, n)) return;
    w->pos -= n;
    if (n) memcpy(w->buf + w->pos, p, n);
}

static inline void cw_varint(chunk_writer *w, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    } while (v);
    t[n - 1] &= 0x7f;
    cw_bytes(w, t, n);
}

static inline size_t cw_len(const chunk_writer *w) { return w->cap - w->pos; }
static inline void cw_tag(chunk_writer *w, uint32_t field, int wt) {
    cw_varint(w, (uint64_t)field << 3 | (uint64_t)wt);
}
/* Closes a length-delimited field whose content was written since `mark`. */
static inline void cw_close(chunk_writer *w, uint32_t field, size_t mark) {
    cw_varint(w, cw_len(w) - mark);
    cw_tag(w, field, 2);
}

static void cw_fixed64(chunk_writer *w, uint32_t field, uint64_t v) {
    if (!v) return;
    uint8_t b[8];
    put_u64(b, v);
    cw_bytes(w, b, 8);
    cw_tag(w, field, 1);
}

static void cw_fixed32(chunk_writer *w, uint32_t field, uint32_t v) {
    if (!v) return;
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    cw_bytes(w, b, 4);
    cw_tag(w, field, 5);
}

static void cw_uint(chunk_writer *w, uint32_t field, uint64_t v) {
    if (!v) return;
    cw_varint(w, v);
    cw_tag(w, field, 0);
}

/* int32 and enums: a negative value takes ten bytes (sign-extended), as protobuf-c writes it. */
static void cw_int32(chunk_writer *w, uint32_t field, int32_t v) {
    if (!v) return;
    cw_varint(w, (uint64_t)(int64_t)v);
    cw_tag(w, field, 0);
}

static void cw_string(chunk_writer *w, uint32_t field, const char *s) {
    if (!s || !*s) return;
    size_t n = strlen(s);
    cw_bytes(w, s, n);
    cw_varint(w, n);
    cw_tag(w, field, 2);
}

static void cw_bin(chunk_writer *w, uint32_t field, ProtobufCBinaryData b) {
    if (!b.len) return;
    cw_bytes(w, b.data, b.len);
    cw_varint(w, b.len);
    cw_tag(w, field, 2);
}

static void enc_kvs(chunk_writer *w, uint32_t field, pb_kv *const *kvs, size_t n, int depth);

/* The fields of an AnyValue (the caller closes the message). */
static void enc_value_body(chunk_writer *w, const traces_pb_value *v, int depth) {
    if (depth > ENC_MAX_DEPTH) return;
    size_t mark;
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        if (v->string_value) {
            size_t n = strlen(v->string_value);
            cw_bytes(w, v->string_value, n);
            cw_varint(w, n);
            cw_tag(w, 1, 2);
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        cw_varint(w, v->bool_value ? 1 : 0);
        cw_tag(w, 2, 0);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        cw_varint(w, (uint64_t)v->int_value);
        cw_tag(w, 3, 0);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE: {
        uint64_t bits;
        uint8_t b[8];
        memcpy(&bits, &v->double_value, 8);
        put_u64(b, bits);
        cw_bytes(w, b, 8);
        cw_tag(w, 4, 1);
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        if (v->array_value) {
            mark = cw_len(w);
            for (size_t i = v->array_value->n_values; i-- > 0;) {
                const traces_pb_value *e = v->array_value->values[i];
                if (!e) continue;
                size_t m2 = cw_len(w);
                enc_value_body(w, e, depth + 1);
                cw_close(w, 1, m2);
            }
            cw_close(w, 5, mark);
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        if (v->kvlist_value) {
            mark = cw_len(w);
            enc_kvs(w, 1, v->kvlist_value->values, v->kvlist_value->n_values, depth + 1);
            cw_close(w, 6, mark);
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        cw_bytes(w, v->bytes_value.data, v->bytes_value.len);
        cw_varint(w, v->bytes_value.len);
        cw_tag(w, 7, 2);
        break;
    default:
        break;
    }
}

/* A repeated KeyValue field, elements in order. */
static void enc_kvs(chunk_writer *w, uint32_t field, pb_kv *const *kvs, size_t n, int depth) {
    for (size_t i = n; i-- > 0;) {
        const pb_kv *kv = kvs[i];
        if (!kv) continue;
        size_t mark = cw_len(w);
        if (kv->value) {
            size_t m2 = cw_len(w);
            enc_value_body(w, kv->value, depth);
            cw_close(w, 2, m2);
        }
        cw_string(w, 1, kv->key);
        cw_close(w, field, mark);
    }
}

static void enc_span(chunk_writer *w, const traces_pb_span *sp) {
    size_t mark = cw_len(w);
    cw_fixed32(w, 16, sp->flags);
    if (sp->status) {
        size_t m2 = cw_len(w);
        cw_int32(w, 3, (int32_t)sp->status->code);
        cw_string(w, 2, sp->status->message);
        cw_close(w, 15, m2);
    }
    cw_uint(w, 14, sp->dropped_links_count);
    for (size_t i = sp->n_links; i-- > 0;) {
        const pb_link *l = sp->links[i];
        if (!l) continue;
        size_t m2 = cw_len(w);
        cw_fixed32(w, 6, l->flags);
        cw_uint(w, 5, l->dropped_attributes_count);
        enc_kvs(w, 4, l->attributes, l->n_attributes, 0);
        cw_string(w, 3, l->trace_state);
        cw_bin(w, 2, l->span_id);
        cw_bin(w, 1, l->trace_id);
        cw_close(w, 13, m2);
    }
    cw_uint(w, 12, sp->dropped_events_count);
    for (size_t i = sp->n_events; i-- > 0;) {
        const pb_event *e = sp->events[i];
        if (!e) continue;
        size_t m2 = cw_len(w);
        cw_uint(w, 4, e->dropped_attributes_count);
        enc_kvs(w, 3, e->attributes, e->n_attributes, 0);
        cw_string(w, 2, e->name);
        cw_fixed64(w, 1, e->time_unix_nano);
        cw_close(w, 11, m2);
    }
    cw_uint(w, 10, sp->dropped_attributes_count);
    enc_kvs(w, 9, sp->attributes, sp->n_attributes, 0);
    cw_fixed64(w, 8, sp->end_time_unix_nano);
    cw_fixed64(w, 7, sp->start_time_unix_nano);
    cw_int32(w, 6, (int32_t)sp->kind);
    cw_string(w, 5, sp->name);
    cw_bin(w, 4, sp->parent_span_id);
    cw_string(w, 3, sp->trace_state);
    cw_bin(w, 2, sp->span_id);
    cw_bin(w, 1, sp->trace_id);
    cw_close(w, 2, mark); /* ScopeSpans.spans */
}

const uint8_t *chunk_encode(chunk_writer *w, const traces_request *req, size_t *len) {
    w->pos = w->cap;
    w->oom = 0;
    for (size_t i = req->n_resource_spans; i-- > 0;) {
        const pb_rspans *rs = req->resource_spans[i];
        if (!rs) continue;
        size_t mr = cw_len(w);
        cw_string(w, 3, rs->schema_url);
        for (size_t j = rs->n_scope_spans; j-- > 0;) {
            const pb_sspans *ss = rs->scope_spans[j];
            if (!ss) continue;
            size_t ms = cw_len(w);
            cw_string(w, 3, ss->schema_url);
            for (size_t k = ss->n_spans; k-- > 0;)
                if (ss->spans[k]) enc_span(w, ss->spans[k]);
            if (ss->scope) {
                const traces_pb_scope *sc = ss->scope;
                size_t m2 = cw_len(w);
                cw_uint(w, 4, sc->dropped_attributes_count);
                enc_kvs(w, 3, sc->attributes, sc->n_attributes, 0);
                cw_string(w, 2, sc->version);
                cw_string(w, 1, sc->name);
                cw_close(w, 1, m2);
            }
            cw_close(w, 2, ms);
        }
        if (rs->resource) {
            size_t m2 = cw_len(w);
            cw_uint(w, 2, rs->resource->dropped_attributes_count);
            enc_kvs(w, 1, rs->resource->attributes, rs->resource->n_attributes, 0);
            cw_close(w, 1, m2);
        }
        cw_close(w, 1, mr);
    }
    if (w->oom) return NULL;
    *len = cw_len(w);
    return w->buf ? w->buf + w->pos : (const uint8_t *)"";
}

void chunk_writer_free(chunk_writer *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* ---- chunk views ---- */

typedef struct view_group { /* one ResourceSpans or ScopeSpans */
    const uint8_t *p;       /* the resource or scope message bytes (NULL: absent) */
    size_t n;
    void *msg; /* unpacked, once */
    int tried;
    size_t rs;          /* scope groups: their ResourceSpans */
    const char *needle; /* the last needle looked for in p (every span of the group asks) */
    size_t needle_len;
    int has;
} view_group;

typedef struct view_span {
    const uint8_t *p;
    size_t n;
    size_t ss; /* its ScopeSpans */
    traces_pb_span *msg;
    int tried;
    int peeked; /* 1: peek holds its fields, -1: damaged */
    span_peek peek;
} view_span;

static void *pb_alloc(void *ctx, size_t n) { return tr_arena_alloc(ctx, n); }
static void pb_free(void *ctx, void *p) { (void)ctx, (void)p; }
ProtobufCAllocator traces__arena_allocator(tr_arena *a) {
    ProtobufCAllocator al = {.alloc = pb_alloc, .free = pb_free, .allocator_data = a};
    return al;
}

struct chunk_view {
    tr_arena *a;
    ProtobufCAllocator al;
    view_group *rs, *ss;
    size_t nrs, nss, caprs, capss;
    view_span *sp;
    size_t nsp, capsp;
};

/* Reads one field: its number, wire type and, for LEN fields, the payload (*data, *dlen);
 * fixed and varint values land in *num. Returns 0 or -1 (damaged). */
static int wire_field(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wt, const uint8_t **data,
                      size_t *dlen, uint64_t *num) {
    uint64_t key;
    if (tr_pb_varint(p, end, &key) || key >> 3 == 0 || key >> 3 > 0x1fffffff) return -1;
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    switch (*wt) {
    case 0:
        return tr_pb_varint(p, end, num);
    case 1:
        if (end - *p < 8) return -1;
        *num = get_u64(*p);
        *p += 8;
        return 0;
    case 2: {
        uint64_t n;
        if (tr_pb_varint(p, end, &n) || n > (uint64_t)(end - *p)) return -1;
        *data = *p;
        *dlen = (size_t)n;
        *p += n;
        return 0;
    }
    case 5:
        if (end - *p < 4) return -1;
        *num = (uint64_t)(*p)[0] | (uint64_t)(*p)[1] << 8 | (uint64_t)(*p)[2] << 16 | (uint64_t)(*p)[3] << 24;
        *p += 4;
        return 0;
    default:
        return -1; /* groups are not in OTLP */
    }
}

#define VIEW_PUSH(v, arr, n, cap)                                                                            \
    do {                                                                                                     \
        if ((v)->n == (v)->cap) {                                                                            \
            size_t nc_ = (v)->cap ? (v)->cap * 2 : 16;                                                       \
            void *na_ = tr_arena_alloc((v)->a, nc_ * sizeof *(v)->arr);                                      \
            if (!na_) return NULL;                                                                           \
            if ((v)->n) memcpy(na_, (v)->arr, (v)->n * sizeof *(v)->arr);                                    \
            (v)->arr = na_;                                                                                  \
            (v)->cap = nc_;                                                                                  \
        }                                                                                                    \
        memset(&(v)->arr[(v)->n], 0, sizeof *(v)->arr);                                                      \
    } while (0)

uint32_t chunk_crc(int64_t id, int64_t rawlen, int64_t nspans, const void *data, size_t len) {
    uint8_t hdr[24];
    put_u64(hdr, (uint64_t)id);
    put_u64(hdr + 8, (uint64_t)rawlen);
    put_u64(hdr + 16, (uint64_t)nspans);
    return crc32c_update(crc32c_update(0, hdr, sizeof hdr), data, len);
}

uint32_t operation_crc(const char *service, const char *name, int kind) {
    uint8_t k[4] = {(uint8_t)kind, (uint8_t)((unsigned)kind >> 8), (uint8_t)((unsigned)kind >> 16),
                    (uint8_t)((unsigned)kind >> 24)};
    uint32_t c = crc32c_update(0, service, strlen(service) + 1);
    c = crc32c_update(c, name, strlen(name) + 1);
    return crc32c_update(c, k, 4);
}

const char *chunk_check(int64_t id, const void *blob, size_t len, int64_t rawlen, int64_t nspans, int has_crc,
                        uint32_t crc, tr_arena *a, void *dctx, chunk_view **out) {
    if (has_crc && chunk_crc(id, rawlen, nspans, blob, len) != crc) return "checksum mismatch";
    if (rawlen < 0) return "undecodable";
    chunk_view *v = chunk_open(blob, len, (size_t)rawlen, a, dctx);
    if (!v || (int64_t)chunk_nspans(v) != nspans) return "undecodable";
    if (out) *out = v;
    return NULL;
}

chunk_view *chunk_open(const void *blob, size_t len, size_t rawlen, tr_arena *a, void *dctx) {
    if (!blob || rawlen > MAX_CHUNK_RAW) return NULL;
    unsigned long long fr = ZSTD_getFrameContentSize(blob, len);
    if (fr == ZSTD_CONTENTSIZE_ERROR || (fr != ZSTD_CONTENTSIZE_UNKNOWN && fr != rawlen)) return NULL;
    chunk_view *v = tr_arena_calloc(a, 1, sizeof *v);
    uint8_t *raw = tr_arena_alloc(a, rawlen ? rawlen : 1);
    if (!v || !raw) return NULL;
    size_t got =
        dctx ? ZSTD_decompressDCtx(dctx, raw, rawlen, blob, len) : ZSTD_decompress(raw, rawlen, blob, len);
    if (ZSTD_isError(got) || got != rawlen) return NULL;
    v->a = a;
    v->al = traces__arena_allocator(a);
    const uint8_t *p = raw, *end = raw + rawlen, *d, *d2, *d3;
    size_t dl, dl2, dl3;
    uint64_t num;
    uint32_t f;
    int wt;
    while (p < end) { /* ExportTraceServiceRequest */
        if (wire_field(&p, end, &f, &wt, &d, &dl, &num)) return NULL;
        if (f != 1 || wt != 2) continue;
        VIEW_PUSH(v, rs, nrs, caprs);
        size_t rsi = v->nrs++;
        const uint8_t *q = d, *qe = d + dl;
        while (q < qe) { /* ResourceSpans */
            if (wire_field(&q, qe, &f, &wt, &d2, &dl2, &num)) return NULL;
            if (wt != 2) continue;
            if (f == 1) {
                v->rs[rsi].p = d2;
                v->rs[rsi].n = dl2;
            } else if (f == 2) {
                VIEW_PUSH(v, ss, nss, capss);
                size_t ssi = v->nss++;
                v->ss[ssi].rs = rsi;
                const uint8_t *r = d2, *re = d2 + dl2;
                while (r < re) { /* ScopeSpans */
                    if (wire_field(&r, re, &f, &wt, &d3, &dl3, &num)) return NULL;
                    if (wt != 2) continue;
                    if (f == 1) {
                        v->ss[ssi].p = d3;
                        v->ss[ssi].n = dl3;
                    } else if (f == 2) {
                        VIEW_PUSH(v, sp, nsp, capsp);
                        v->sp[v->nsp].p = d3;
                        v->sp[v->nsp].n = dl3;
                        v->sp[v->nsp].ss = ssi;
                        v->nsp++;
                    }
                }
            }
        }
    }
    return v;
}

size_t chunk_nspans(const chunk_view *v) { return v->nsp; }

static int peek_bytes(const uint8_t *p, size_t n, span_peek *o);

int chunk_peek(const chunk_view *v, size_t i, span_peek *o) {
    view_span *s = &((chunk_view *)v)->sp[i]; /* the cache is not part of the view's value */
    if (!s->peeked) s->peeked = peek_bytes(s->p, s->n, &s->peek) ? -1 : 1;
    *o = s->peek;
    return s->peeked < 0 ? -1 : 0;
}

static int peek_bytes(const uint8_t *p, size_t n, span_peek *o) {
    memset(o, 0, sizeof *o);
    o->name = "";
    const uint8_t *end = p + n, *d = NULL;
    size_t dl = 0;
    uint64_t num = 0;
    uint32_t f;
    int wt;
    while (p < end) {
        if (wire_field(&p, end, &f, &wt, &d, &dl, &num)) return -1;
        /* the last occurrence wins, as when unpacking */
        if (wt == 2 && f == 1) {
            o->tid = d;
            o->tid_len = dl;
        } else if (wt == 2 && f == 2) {
            o->sid = d;
            o->sid_len = dl;
        } else if (wt == 2 && f == 4) {
            o->parent = d;
            o->parent_len = dl;
        } else if (wt == 2 && f == 5) {
            o->name = (const char *)d;
            o->name_len = dl;
        } else if (wt == 1 && f == 7)
            o->start = num;
        else if (wt == 1 && f == 8)
            o->end = num;
        else if (wt == 0 && f == 6)
            o->kind = (int)(int32_t)num;
        else if (wt == 2 && f == 15) { /* Status: code is field 3 */
            const uint8_t *q = d, *qe = d + dl, *d2;
            size_t dl2;
            uint64_t n2;
            while (q < qe) {
                if (wire_field(&q, qe, &f, &wt, &d2, &dl2, &n2)) return -1;
                if (wt == 0 && f == 3) o->status_code = (int)(int32_t)n2;
            }
        }
    }
    return 0;
}

const traces_pb_span *chunk_span(chunk_view *v, size_t i) {
    view_span *s = &v->sp[i];
    if (!s->tried) {
        s->tried = 1;
        s->msg = opentelemetry__proto__trace__v1__span__unpack(&v->al, s->n, s->p);
    }
    return s->msg;
}

const traces_pb_resource *chunk_resource(chunk_view *v, size_t i) {
    view_group *g = &v->rs[v->ss[v->sp[i].ss].rs];
    if (!g->tried) {
        g->tried = 1;
        if (g->p) g->msg = opentelemetry__proto__resource__v1__resource__unpack(&v->al, g->n, g->p);
    }
    return g->msg;
}

const traces_pb_scope *chunk_scope(chunk_view *v, size_t i) {
    view_group *g = &v->ss[v->sp[i].ss];
    if (!g->tried) {
        g->tried = 1;
        if (g->p)
            g->msg = opentelemetry__proto__common__v1__instrumentation_scope__unpack(&v->al, g->n, g->p);
    }
    return g->msg;
}

const char *chunk_service(chunk_view *v, size_t i) { return traces_service_name(chunk_resource(v, i)); }

static int bytes_have(const uint8_t *p, size_t n, const char *needle, size_t nl) {
    return p && memmem(p, n, needle, nl) != NULL;
}

static int group_has(view_group *g, const char *needle, size_t n) {
    if (g->needle != needle || g->needle_len != n) {
        g->needle = needle;
        g->needle_len = n;
        g->has = bytes_have(g->p, g->n, needle, n);
    }
    return g->has;
}

int chunk_bytes_contain(const chunk_view *cv, size_t i, const char *needle, size_t n) {
    if (n == 0) return 1;
    chunk_view *v = (chunk_view *)cv; /* only the needle caches change */
    const view_span *s = &v->sp[i];
    view_group *ss = &v->ss[s->ss], *rs = &v->rs[ss->rs];
    return bytes_have(s->p, s->n, needle, n) || group_has(rs, needle, n) || group_has(ss, needle, n);
}

/* Whether `s` could be the string form of a value that is not a string (see
 * traces_value_form): a number, a bool, base64 bytes, or JSON of an array or map. */
static int maybe_not_string(const char *s) {
    size_t n = strlen(s);
    if (n == 0) return 1;
    if (!strcmp(s, "true") || !strcmp(s, "false")) return 1;
    if (s[0] == '[' || s[0] == '{') return 1;
    if (strchr("0123456789-+.", s[0]) || strcasestr(s, "nan") || strcasestr(s, "inf")) return 1;
    int b64 = n % 4 == 0;
    for (size_t i = 0; b64 && i < n; i++)
        b64 = isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '/' || s[i] == '=';
    return b64;
}

/* Why this is sound: span_each_tag gives a span tag k=v either as a synthetic tag or from an
 * attribute (of the span, an event, a link, the scope or the resource). Synthetic tags:
 * span.kind, otel.status_code and error follow from the kind and status code (read here
 * exactly); event, otel.status_description, w3c.tracestate and otel.scope.name/version copy a
 * non-empty string field, so the bytes of v are in the span's or scope's bytes. Attributes:
 * the key is a protobuf string, so the bytes of k are in the span's, scope's or resource's
 * bytes; a string value puts the bytes of v there too, any other value has a formatted form
 * that maybe_not_string admits. */
int chunk_may_have_tag(const chunk_view *v, size_t i, const char *k, const char *val) {
    static const char *const from_string[] = {"event", "otel.status_description", "w3c.tracestate",
                                              "otel.scope.name", "otel.scope.version"};
    span_peek pk;
    if (chunk_peek(v, i, &pk)) return 1; /* let the exact check decide */
    const char *kind = traces_kind_name(pk.kind);
    if (!strcmp(k, "span.kind") && *kind && !strcmp(val, kind)) return 1;
    if (!strcmp(k, "otel.status_code") &&
        ((pk.status_code == 1 && !strcmp(val, "OK")) || (pk.status_code == 2 && !strcmp(val, "ERROR"))))
        return 1;
    if (!strcmp(k, "error") && pk.status_code == 2 && !strcmp(val, "true")) return 1;
    size_t vl = strlen(val);
    int val_in = chunk_bytes_contain(v, i, val, vl);
    for (size_t j = 0; j < sizeof from_string / sizeof *from_string; j++)
        if (!strcmp(k, from_string[j]) && vl && val_in) return 1;
    if (!chunk_bytes_contain(v, i, k, strlen(k))) return 0;
    return val_in || maybe_not_string(val);
}

/* ---- u64set ---- */

static int u64set_grow(u64set *s) {
    size_t ncap = s->cap ? s->cap * 2 : 256;
    uint64_t *nv = calloc(ncap, sizeof *nv);
    if (!nv) return -1;
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t k = s->v[i];
        if (!k) continue;
        size_t j = tr_mix64(k) & (ncap - 1);
        while (nv[j])
            j = (j + 1) & (ncap - 1);
        nv[j] = k;
    }
    free(s->v);
    s->v = nv;
    s->cap = ncap;
    return 0;
}

int u64set_add(u64set *s, uint64_t k) {
    if (k == 0) {
        if (s->has_zero) return 0;
        s->has_zero = 1;
        return 1;
    }
    if ((s->n + 1) * 4 > s->cap * 3 && u64set_grow(s)) return -1;
    size_t j = tr_mix64(k) & (s->cap - 1);
    while (s->v[j]) {
        if (s->v[j] == k) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->v[j] = k;
    s->n++;
    return 1;
}

int u64set_has(const u64set *s, uint64_t k) {
    if (k == 0) return s->has_zero;
    if (!s->cap) return 0;
    size_t j = tr_mix64(k) & (s->cap - 1);
    while (s->v[j]) {
        if (s->v[j] == k) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t u64set_sorted(const u64set *s, uint64_t *out) {
    size_t n = 0;
    if (s->has_zero) out[n++] = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i]) out[n++] = s->v[i];
    if (n > 1) qsort(out, n, sizeof *out, u64_cmp);
    return n;
}

void u64set_clear(u64set *s) {
    if (s->v) memset(s->v, 0, s->cap * sizeof *s->v);
    s->n = 0;
    s->has_zero = 0;
}

void u64set_free(u64set *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}
