/* The trace store's encodings: index key hashing, the string form of attribute values that
 * tag searches compare with, the list of tags a span is searchable by, and chunk decoding.
 * Ingest, retention and search all go through these, so the index always agrees with the
 * exact check a search makes on decoded spans. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "traces_int.h"

/* A small 64-bit hash (multiply-xorshift over 8-byte words). It is part of the file format:
 * changing it needs a schema version bump. */
static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t tr_hash64(const void *p, size_t n, uint64_t seed) {
    const unsigned char *s = p;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ULL;
        h = (h << 29) | (h >> 35);
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    h ^= mix(w + n);
    return mix(h);
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
    for (int i = 8; i < 16; i++) v = (v << 8) | id16[i];
    return (int64_t)v;
}

const char *traces_kind_name(int kind) {
    switch (kind) {
    case 1: return "internal";
    case 2: return "server";
    case 3: return "client";
    case 4: return "producer";
    case 5: return "consumer";
    default: return "";
    }
}

const char *traces_service_name(const traces_pb_resource *res) {
    if (!res || res->n_attributes == 0) return "OTLPResourceNoServiceName";
    for (size_t i = 0; i < res->n_attributes; i++) {
        const pb_kv *kv = res->attributes[i];
        if (kv && kv->key && strcmp(kv->key, "service.name") == 0) {
            if (kv->value && kv->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                kv->value->string_value)
                return kv->value->string_value;
            return "";
        }
    }
    return "";
}

/* ---- string forms ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(tr_buf *b, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63], i + 1 < n ? b64[(v >> 6) & 63] : '=',
                     i + 2 < n ? b64[v & 63] : '='};
        tr_buf_append(b, q, 4);
    }
}

/* JSON form of a value inside an array or map (Go's AsRaw marshalling). */
static void json_value(tr_json *j, tr_buf *tmp, const traces_pb_value *v, int depth) {
    if (!v || depth > 32) { tr_json_null(j); return; }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE: tr_json_str(j, v->string_value ? v->string_value : ""); break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE: tr_json_bool(j, v->bool_value); break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE: tr_json_int(j, v->int_value); break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE: tr_json_double(j, v->double_value); break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        tr_buf_reset(tmp);
        base64(tmp, v->bytes_value.data, v->bytes_value.len);
        tr_json_strn(j, tmp->data ? tmp->data : "", tmp->len);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        tr_json_arr_open(j);
        if (v->array_value)
            for (size_t i = 0; i < v->array_value->n_values; i++) json_value(j, tmp, v->array_value->values[i], depth + 1);
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
    default: tr_json_null(j); break;
    }
}

/* Writes the string form of `v` into `b` (reset first). Strings are not copied: the returned
 * pointer is the value itself; otherwise it is b->data. Sets *len. */
const char *traces_value_form(const traces_pb_value *v, tr_buf *b, size_t *len) {
    tr_buf_reset(b);
    if (!v) { *len = 0; return ""; }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        *len = v->string_value ? strlen(v->string_value) : 0;
        return v->string_value ? v->string_value : "";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        tr_buf_puts(b, v->bool_value ? "true" : "false");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        tr_buf_printf(b, "%lld", (long long)v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE: {
        char d[40];
        int n = tr_format_double(d, sizeof d, v->double_value);
        tr_buf_append(b, d, (size_t)n);
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        base64(b, v->bytes_value.data, v->bytes_value.len);
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

#define EMIT(k, v)                                           \
    do {                                                     \
        const char *v_ = (v);                                \
        int rc_ = fn(ctx, (k), v_, strlen(v_));              \
        if (rc_) { tr_buf_free(&tmp); return rc_; }          \
    } while (0)

int span_each_tag(const traces_pb_span *sp, const traces_pb_resource *res,
                  const traces_pb_scope *sc, int with_resource, tag_fn fn, void *ctx) {
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
        if (sp->status->code == OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK) EMIT("otel.status_code", "OK");
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

/* ---- chunks ---- */

#define MAX_CHUNK_RAW (256u << 20)

traces_request *chunk_decode(const void *blob, size_t len, size_t rawlen, tr_arena *a) {
    if (!blob || rawlen > MAX_CHUNK_RAW) return NULL;
    unsigned long long fr = ZSTD_getFrameContentSize(blob, len);
    if (fr == ZSTD_CONTENTSIZE_ERROR || (fr != ZSTD_CONTENTSIZE_UNKNOWN && fr != rawlen)) return NULL;
    uint8_t *raw = malloc(rawlen ? rawlen : 1);
    if (!raw) return NULL;
    size_t got = ZSTD_decompress(raw, rawlen, blob, len);
    if (ZSTD_isError(got) || got != rawlen) {
        free(raw);
        return NULL;
    }
    ProtobufCAllocator al = tr_arena_pb_allocator(a);
    traces_request *req = opentelemetry__proto__collector__v1__export_trace_service_request__unpack(&al, rawlen, raw);
    free(raw);
    return req;
}

/* ---- u64set ---- */

static int u64set_grow(u64set *s) {
    size_t ncap = s->cap ? s->cap * 2 : 256;
    uint64_t *nv = calloc(ncap, sizeof *nv);
    if (!nv) return -1;
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t k = s->v[i];
        if (!k) continue;
        size_t j = mix(k) & (ncap - 1);
        while (nv[j]) j = (j + 1) & (ncap - 1);
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
    size_t j = mix(k) & (s->cap - 1);
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
    size_t j = mix(k) & (s->cap - 1);
    while (s->v[j]) {
        if (s->v[j] == k) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
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
