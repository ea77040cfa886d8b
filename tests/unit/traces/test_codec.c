/* The trace store's chunk codec: the single-pass encoder writes exactly protobuf-c's bytes,
 * chunk views read spans from those bytes as unpacking would, the byte-level tag test never
 * rules out a span that has the tag, and damaged chunks are refused without a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <zstd.h>

#include "helpers.h"
#include "traces/traces_int.h"

#define MS 1000000ULL

static tr_arena *A;
static chunk_writer W;

static void setup(void) { A = tr_arena_new(0); }

static void teardown(void) {
    tr_arena_free(A);
    chunk_writer_free(&W);
}

TestSuite(traces_codec, .init = setup, .fini = teardown);

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* protobuf-c's bytes for req (arena-owned). */
static uint8_t *pc_pack(const traces_request *req, size_t *len) {
    *len = opentelemetry__proto__collector__v1__export_trace_service_request__get_packed_size(req);
    uint8_t *b = tr_arena_alloc(A, *len + 1);
    cr_assert(b);
    cr_assert_eq(opentelemetry__proto__collector__v1__export_trace_service_request__pack(req, b), *len);
    return b;
}

static void expect_same_bytes(const traces_request *req, const char *what) {
    size_t n1, n2;
    uint8_t *a = pc_pack(req, &n1);
    const uint8_t *b = chunk_encode(&W, req, &n2);
    cr_assert(b, "%s: out of memory", what);
    cr_assert_eq(n2, n1, "%s: %zu bytes, protobuf-c %zu", what, n2, n1);
    cr_assert(memcmp(a, b, n1) == 0, "%s: bytes differ", what);
}

/* A request with every field the encoder knows, defaults and oneof corner cases included. */
static traces_request *full_request(void) {
    uint8_t tid[16];
    t_tid(tid, 0xab, 1);
    traces_pb_span *a = t_span(A, tid, 1, 0, "GET /a", 2, 1700000000ULL * 1000 * MS, 5 * MS);
    uint8_t raw[] = {0, 1, 2, 0xff};
    T_KV *zero_int = t_int(A, "zero", 0), *neg = t_int(A, "neg", -5), *empty_str = t_str(A, "empty", "");
    T_KV *no_value = t_str(A, "novalue", "x");
    no_value->value = NULL;
    T_KV *unset = t_str(A, "unset", "x");
    unset->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET;
    T_KV *no_bytes = t_bytes(A, "nobytes", raw, 0);
    T_KV *kvl = t_str(A, "map", "");
    kvl->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    kvl->value->kvlist_value = tr_arena_calloc(A, 1, sizeof *kvl->value->kvlist_value);
    opentelemetry__proto__common__v1__key_value_list__init(kvl->value->kvlist_value);
    kvl->value->kvlist_value->n_values = 2;
    kvl->value->kvlist_value->values = tr_arena_alloc(A, 2 * sizeof(T_KV *));
    kvl->value->kvlist_value->values[0] = t_strarr(A, "inner", "p", "");
    kvl->value->kvlist_value->values[1] = t_dbl(A, "", -0.0);
    t_attrs(A, a, 12, t_str(A, "http.route", "/a"), t_int(A, "code", 200), zero_int, neg, t_bool(A, "f", 0),
            t_dbl(A, "d", 0.25), t_bytes(A, "b", raw, sizeof raw), no_bytes, empty_str, no_value, unset, kvl);
    t_event(A, a, "retry", 1700000000ULL * 1000 * MS + 1, 1, t_int(A, "attempt", 2));
    t_event(A, a, "", 0, 0);
    uint8_t other[16];
    t_tid(other, 0x01, 2);
    t_link(A, a, other, 9, 1, t_str(A, "why", "batch"));
    a->links[0]->flags = 0x101;
    a->links[0]->trace_state = tr_arena_strndup(A, "k=v", 3);
    a->links[0]->dropped_attributes_count = 3;
    t_status(A, a, 2, "boom");
    a->trace_state = tr_arena_strndup(A, "ot=1", 4);
    a->flags = 0x301;
    a->dropped_attributes_count = 1;
    a->dropped_events_count = 2;
    a->dropped_links_count = 3;
    a->events[0]->dropped_attributes_count = 4;
    traces_pb_span *b = t_span(A, tid, 2, 1, "", 0, 0, 0); /* nearly everything at its default */
    t_status(A, b, 0, "");
    traces_pb_span *c = t_span(A, tid, 3, 1, "neg kind", -1, 7, 0);
    T_RS *rs = t_rs(A, "frontend", 1, t_str(A, "host.name", "web-1"));
    rs->resource->dropped_attributes_count = 7;
    rs->schema_url = tr_arena_strndup(A, "https://schema/1", 16);
    t_scope(A, rs, "lib", "1.0", 2, a, b);
    rs->scope_spans[0]->schema_url = tr_arena_strndup(A, "s", 1);
    rs->scope_spans[0]->scope->dropped_attributes_count = 1;
    rs->scope_spans[0]->scope->n_attributes = 1;
    rs->scope_spans[0]->scope->attributes = tr_arena_alloc(A, sizeof(T_KV *));
    rs->scope_spans[0]->scope->attributes[0] = t_str(A, "scope.attr", "y");
    t_scope(A, rs, "", "", 1, c);
    rs->scope_spans[1]->scope = NULL;
    T_RS *bare = t_rs(A, NULL, 0);
    bare->resource = NULL;
    t_scope(A, bare, "", "", 1, t_span(A, tid, 4, 0, "bare", 1, 1, 1));
    T_RS *empty = t_rs(A, "empty", 0);
    return t_req(A, 3, rs, bare, empty);
}

Test(traces_codec, encoder_writes_protobuf_c_bytes) {
    expect_same_bytes(t_req(A, 0), "empty request");
    expect_same_bytes(full_request(), "every field");
}

/* Random nesting of values, including arrays in maps in arrays. */
static Opentelemetry__Proto__Common__V1__AnyValue *rand_value(int depth) {
    T_KV *kv;
    char s[32];
    int kind = (int)(rnd() % (depth < 3 ? 8 : 5));
    snprintf(s, sizeof s, "v%llu", (unsigned long long)(rnd() % 1000));
    switch (kind) {
    case 0:
        kv = t_str(A, "", rnd() % 5 ? s : "");
        break;
    case 1:
        kv = t_int(A, "", (int64_t)rnd());
        break;
    case 2:
        kv = t_bool(A, "", (int)(rnd() & 1));
        break;
    case 3:
        kv = t_dbl(A, "", (double)(int64_t)rnd() / 1e9);
        break;
    case 4:
        kv = t_bytes(A, "", (const uint8_t *)s, rnd() % 4);
        break;
    case 5:
    case 6: {
        kv = t_str(A, "", "");
        size_t n = rnd() % 4;
        kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
        kv->value->array_value = tr_arena_calloc(A, 1, sizeof *kv->value->array_value);
        opentelemetry__proto__common__v1__array_value__init(kv->value->array_value);
        kv->value->array_value->n_values = n;
        kv->value->array_value->values = tr_arena_alloc(A, (n + 1) * sizeof(void *));
        for (size_t i = 0; i < n; i++)
            kv->value->array_value->values[i] = rand_value(depth + 1);
        break;
    }
    default: {
        kv = t_str(A, "", "");
        size_t n = rnd() % 3;
        kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
        kv->value->kvlist_value = tr_arena_calloc(A, 1, sizeof *kv->value->kvlist_value);
        opentelemetry__proto__common__v1__key_value_list__init(kv->value->kvlist_value);
        kv->value->kvlist_value->n_values = n;
        kv->value->kvlist_value->values = tr_arena_alloc(A, (n + 1) * sizeof(T_KV *));
        for (size_t i = 0; i < n; i++) {
            T_KV *e = t_str(A, rnd() % 2 ? "k" : "", "");
            e->value = rand_value(depth + 1);
            kv->value->kvlist_value->values[i] = e;
        }
        break;
    }
    }
    return kv->value;
}

static traces_pb_span *rand_span(const uint8_t *tid, uint64_t sid) {
    static const char *names[] = {"GET /api/v1/health", "run_app", "", "POST /x"};
    traces_pb_span *sp = t_span(A, tid, sid, rnd() % 2 ? sid - 1 : 0, names[rnd() % 4], (int)(rnd() % 6),
                                rnd() >> 2, rnd() % (5000 * MS));
    size_t na = rnd() % 6;
    sp->attributes = tr_arena_alloc(A, (na + 1) * sizeof(T_KV *));
    sp->n_attributes = na;
    for (size_t i = 0; i < na; i++) {
        char k[16];
        snprintf(k, sizeof k, "attr.%d", (int)(rnd() % 10));
        T_KV *kv = t_str(A, k, "");
        kv->value = rand_value(0);
        sp->attributes[i] = kv;
    }
    if (rnd() % 3 == 0) t_event(A, sp, rnd() % 2 ? "state changed" : "", rnd(), 1, t_str(A, "level", "INFO"));
    if (rnd() % 5 == 0) t_link(A, sp, tid, rnd(), 1, t_int(A, "n", 1));
    if (rnd() % 4 == 0) t_status(A, sp, (int)(rnd() % 3), rnd() % 2 ? "oops" : "");
    return sp;
}

static traces_request *rand_request(void) {
    size_t nrs = 1 + rnd() % 3;
    traces_request *req = t_req(A, 0);
    req->resource_spans = tr_arena_alloc(A, nrs * sizeof(T_RS *));
    for (size_t r = 0; r < nrs; r++) {
        static const char *svcs[] = {"scotty", "scotty-api", "scotty-proxy"};
        T_RS *rs = t_rs(A, svcs[rnd() % 3], 1, t_str(A, "host.name", rnd() % 2 ? "node-1" : "node-2"));
        size_t nsp = 1 + rnd() % 20;
        traces_pb_span **sp = tr_arena_alloc(A, nsp * sizeof *sp);
        for (size_t i = 0; i < nsp; i++) {
            uint8_t tid[16];
            t_tid(tid, (uint8_t)(1 + rnd() % 5), (uint8_t)rnd());
            sp[i] = rand_span(tid, 1 + rnd() % 1000);
        }
        T_SS *ss = tr_arena_calloc(A, 1, sizeof *ss);
        opentelemetry__proto__trace__v1__scope_spans__init(ss);
        ss->spans = sp;
        ss->n_spans = nsp;
        if (rnd() % 2) {
            ss->scope = tr_arena_calloc(A, 1, sizeof *ss->scope);
            opentelemetry__proto__common__v1__instrumentation_scope__init(ss->scope);
            ss->scope->name = tr_arena_strndup(A, "sqlx", 4);
        }
        rs->scope_spans = tr_arena_alloc(A, sizeof(T_SS *));
        rs->scope_spans[0] = ss;
        rs->n_scope_spans = 1;
        req->resource_spans[req->n_resource_spans++] = rs;
    }
    return req;
}

Test(traces_codec, encoder_matches_protobuf_c_on_random_requests) {
    for (int i = 0; i < 300; i++) {
        char what[32];
        snprintf(what, sizeof what, "random request %d", i);
        expect_same_bytes(rand_request(), what);
    }
}

/* Compresses req as the writer stores a chunk and opens it as a view. */
static chunk_view *open_view(const traces_request *req) {
    size_t raw;
    const uint8_t *p = chunk_encode(&W, req, &raw);
    cr_assert(p);
    size_t bound = ZSTD_compressBound(raw);
    uint8_t *z = tr_arena_alloc(A, bound);
    size_t zl = ZSTD_compress(z, bound, p, raw, 1);
    cr_assert(!ZSTD_isError(zl));
    chunk_view *v = chunk_open(z, zl, raw, A, NULL);
    cr_assert(v);
    return v;
}

static size_t span_bytes(const traces_pb_span *sp, uint8_t **out) {
    size_t n = opentelemetry__proto__trace__v1__span__get_packed_size(sp);
    *out = tr_arena_alloc(A, n + 1);
    opentelemetry__proto__trace__v1__span__pack(sp, *out);
    return n;
}

Test(traces_codec, views_read_spans_as_unpacking_does) {
    for (int round = 0; round < 50; round++) {
        traces_request *req = rand_request();
        chunk_view *v = open_view(req);
        size_t i = 0;
        for (size_t r = 0; r < req->n_resource_spans; r++) {
            const T_RS *rs = req->resource_spans[r];
            for (size_t s = 0; s < rs->n_scope_spans; s++) {
                const T_SS *ss = rs->scope_spans[s];
                for (size_t k = 0; k < ss->n_spans; k++, i++) {
                    const traces_pb_span *want = ss->spans[k];
                    cr_assert_lt(i, chunk_nspans(v));
                    span_peek pk;
                    cr_assert_eq(chunk_peek(v, i, &pk), 0);
                    cr_assert_eq(pk.tid_len, 16);
                    cr_assert(memcmp(pk.tid, want->trace_id.data, 16) == 0);
                    cr_assert_eq(pk.sid_len, 8);
                    cr_assert(memcmp(pk.sid, want->span_id.data, 8) == 0);
                    cr_assert_eq(pk.parent_len, want->parent_span_id.len);
                    cr_assert_eq(pk.name_len, strlen(want->name));
                    cr_assert(memcmp(pk.name, want->name, pk.name_len) == 0);
                    cr_assert_eq(pk.start, want->start_time_unix_nano);
                    cr_assert_eq(pk.end, want->end_time_unix_nano);
                    cr_assert_eq(pk.kind, (int)want->kind);
                    cr_assert_eq(pk.status_code, want->status ? (int)want->status->code : 0);
                    const traces_pb_span *got = chunk_span(v, i);
                    cr_assert(got);
                    uint8_t *a, *b;
                    size_t na = span_bytes(want, &a), nb = span_bytes(got, &b);
                    cr_assert(na == nb && memcmp(a, b, na) == 0, "span %zu unpacked differently", i);
                    cr_assert_str_eq(chunk_service(v, i), traces_service_name(rs->resource));
                    const traces_pb_scope *sc = chunk_scope(v, i);
                    cr_assert_eq(sc != NULL, ss->scope != NULL);
                    if (sc) cr_assert_str_eq(sc->name, ss->scope->name);
                }
            }
        }
        cr_assert_eq(chunk_nspans(v), i);
    }
}

typedef struct tag_list {
    char k[64][64], v[64][128];
    size_t n;
} tag_list;

static int collect(void *ctx, const char *k, const char *v, size_t vlen) {
    tag_list *l = ctx;
    if (l->n < 64 && strlen(k) < 64 && vlen < 128) {
        snprintf(l->k[l->n], 64, "%s", k);
        memcpy(l->v[l->n], v, vlen);
        l->v[l->n][vlen] = 0;
        l->n++;
    }
    return 0;
}

Test(traces_codec, byte_test_never_rules_out_a_tag_a_span_has) {
    size_t checked = 0, ruled_out = 0;
    for (int round = 0; round < 100; round++) {
        traces_request *req = rand_request();
        chunk_view *v = open_view(req);
        for (size_t i = 0; i < chunk_nspans(v); i++) {
            tag_list l = {.n = 0};
            span_each_tag(chunk_span(v, i), chunk_resource(v, i), chunk_scope(v, i), 1, collect, &l);
            for (size_t t = 0; t < l.n; t++, checked++)
                cr_assert(chunk_may_have_tag(v, i, l.k[t], l.v[t]), "span %zu has %s=%s", i, l.k[t], l.v[t]);
            /* and it does rule out what only a string could be and is nowhere in the bytes */
            if (!chunk_may_have_tag(v, i, "attr.1", "no-such-value")) ruled_out++;
            cr_assert_not(chunk_may_have_tag(v, i, "no.such.key", "x"));
        }
    }
    cr_assert_gt(checked, 1000);
    cr_assert_gt(ruled_out, 100);
    /* synthetic tags from enums are judged exactly */
    traces_request *req = full_request();
    chunk_view *v = open_view(req);
    cr_assert(chunk_may_have_tag(v, 0, "error", "true")); /* status ERROR */
    cr_assert(chunk_may_have_tag(v, 0, "span.kind", "server"));
    cr_assert_not(chunk_may_have_tag(v, 1, "error", "true")); /* status unset, no "error" anywhere */
    cr_assert_not(chunk_may_have_tag(v, 1, "span.kind", "server"));
}

Test(traces_codec, damaged_chunks_are_refused) {
    traces_request *req = rand_request();
    size_t raw;
    const uint8_t *p = chunk_encode(&W, req, &raw);
    uint8_t *copy = tr_arena_alloc(A, raw);
    memcpy(copy, p, raw);
    /* every truncation and a byte flipped at every position: no crash, and whatever opens
     * still answers peeks and unpacks safely */
    for (size_t cut = 0; cut < raw; cut += 1 + raw / 200) {
        for (int flip = 0; flip < 2; flip++) {
            uint8_t *m = tr_arena_alloc(A, raw);
            memcpy(m, copy, raw);
            size_t len = flip ? raw : cut;
            if (flip) m[cut] ^= 0x5a;
            size_t bound = ZSTD_compressBound(len);
            uint8_t *z = tr_arena_alloc(A, bound + 1);
            size_t zl = ZSTD_compress(z, bound, m, len, 1);
            cr_assert(!ZSTD_isError(zl));
            tr_arena *a = tr_arena_new(0);
            chunk_view *v = chunk_open(z, zl, len, a, NULL);
            for (size_t i = 0; v && i < chunk_nspans(v); i++) {
                span_peek pk;
                chunk_peek(v, i, &pk);
                chunk_span(v, i);
                chunk_service(v, i);
                chunk_scope(v, i);
                chunk_may_have_tag(v, i, "k", "v");
            }
            tr_arena_free(a);
        }
    }
    /* a wrong raw length, garbage, and a truncated frame are refused */
    size_t bound = ZSTD_compressBound(raw);
    uint8_t *z = tr_arena_alloc(A, bound);
    size_t zl = ZSTD_compress(z, bound, copy, raw, 1);
    cr_assert_null(chunk_open(z, zl, raw + 1, A, NULL));
    cr_assert_null(chunk_open("garbage!", 8, raw, A, NULL));
    cr_assert_null(chunk_open(z, zl / 2, raw, A, NULL));
    cr_assert_null(chunk_open(NULL, 0, 0, A, NULL));
}

/* protobuf-c unpacking into an arena that refuses to grow: a clean failure, never a crash,
 * and the arena never passes its limit. */
Test(traces_codec, arena_allocator_fails_cleanly_at_limit) {
    /* a request with 50 resource spans, unpacked with ever larger arenas */
    Opentelemetry__Proto__Collector__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs[50], *rsp[50];
    for (int i = 0; i < 50; i++) {
        opentelemetry__proto__trace__v1__resource_spans__init(&rs[i]);
        rs[i].schema_url = "https://example.com/schema";
        rsp[i] = &rs[i];
    }
    req.n_resource_spans = 50;
    req.resource_spans = rsp;
    size_t n = opentelemetry__proto__collector__v1__export_trace_service_request__get_packed_size(&req);
    uint8_t *buf = malloc(n);
    opentelemetry__proto__collector__v1__export_trace_service_request__pack(&req, buf);
    int failed = 0, ok = 0;
    for (size_t limit = 16; limit < 16384; limit += 16) {
        tr_arena *a = tr_arena_new(limit);
        ProtobufCAllocator al = traces__arena_allocator(a);
        Opentelemetry__Proto__Collector__V1__ExportTraceServiceRequest *r =
            opentelemetry__proto__collector__v1__export_trace_service_request__unpack(&al, n, buf);
        if (r) {
            ok++;
            cr_assert_eq(r->n_resource_spans, 50);
            cr_assert_str_eq(r->resource_spans[49]->schema_url, "https://example.com/schema");
        } else {
            failed++;
        }
        cr_assert_leq(tr_arena_used(a), limit);
        tr_arena_free(a);
    }
    cr_assert_gt(failed, 0);
    cr_assert_gt(ok, 0);
    free(buf);
}
