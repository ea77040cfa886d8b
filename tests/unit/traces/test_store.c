/* The trace store: ingest, limits, rejection, search semantics, lookups, lists,
 * dependencies, retention, persistence and the refusal of files that are not ours. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

#include "helpers.h"
#include "traces/traces_int.h"
#include "util/selfmon.h"

#define MS 1000000ULL
#define SERVER 2
#define CLIENT 3
#define INTERNAL 1

static char dir[256];
static tr_arena *A;

static void setup(void) {
    dir[0] = 0;
    A = tr_arena_new(0);
}

static void teardown(void) {
    tr_arena_free(A);
    tr_selfmon_reset();
    if (dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
    }
}

TestSuite(traces_store, .init = setup, .fini = teardown);

static traces_result *get1(traces_reader *r, const uint8_t id[16]) {
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])id, 1, &res, err, sizeof err), 0, "%s", err);
    return res;
}

Test(traces_store, stores_and_fetches_whole_traces) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tid[16], other[16];
    t_tid(tid, 0x11, 1);
    t_tid(other, 0x22, 2);
    uint64_t now = t_now_ns();
    traces_pb_span *root = t_span(A, tid, 1, 0, "GET /a", SERVER, now, 5 * MS);
    traces_pb_span *db = t_span(A, tid, 2, 1, "SELECT", CLIENT, now + MS, 2 * MS);
    traces_pb_span *x = t_span(A, other, 3, 0, "other", SERVER, now, MS);
    T_RS *fe = t_rs(A, "frontend", 1, t_str(A, "host.name", "web-1"));
    t_scope(A, fe, "net/http", "0.52.0", 2, root, x);
    T_RS *be = t_rs(A, "orders", 0);
    t_scope(A, be, "database/sql", "", 1, db);
    uint64_t rej = 99;
    cr_assert_eq(t_ingest(s, t_req(A, 2, fe, be), &rej, NULL, 0), TRACES_OK);
    cr_assert_eq(rej, 0);

    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    cr_assert(r, "%s", err);
    traces_result *res = get1(r, tid);
    cr_assert_eq(traces_result_count(res), 1);
    const traces_trace *t = traces_result_trace(res, 0);
    cr_assert_eq(memcmp(t->id, tid, 16), 0);
    cr_assert_eq(t->n, 2);
    cr_assert_str_eq(t->spans[0].span->name, "GET /a");
    cr_assert_str_eq(traces_service_name(t->spans[0].resource), "frontend");
    cr_assert_str_eq(t->spans[0].scope->name, "net/http");
    cr_assert_str_eq(t->spans[1].span->name, "SELECT");
    cr_assert_str_eq(traces_service_name(t->spans[1].resource), "orders");
    cr_assert_eq(t->spans[1].span->end_time_unix_nano - t->spans[1].span->start_time_unix_nano, 2 * MS);
    traces_result_free(res);

    uint8_t missing[16];
    t_tid(missing, 0x33, 3);
    res = get1(r, missing);
    cr_assert_eq(traces_result_count(res), 0);
    traces_result_free(res);

    traces_strings sv;
    cr_assert_eq(traces_services(r, &sv, err, sizeof err), 0);
    cr_assert_eq(sv.n, 2);
    cr_assert_str_eq(sv.v[0], "frontend");
    cr_assert_str_eq(sv.v[1], "orders");
    traces_strings_free(&sv);
    traces_operations ops;
    cr_assert_eq(traces_operations_list(r, "frontend", -1, &ops, err, sizeof err), 0);
    cr_assert_eq(ops.n, 2);
    cr_assert_str_eq(ops.v[0].name, "GET /a");
    cr_assert_eq(ops.v[0].kind, SERVER);
    cr_assert_str_eq(ops.v[1].name, "other");
    traces_operations_free(&ops);
    cr_assert_eq(traces_operations_list(r, "orders", SERVER, &ops, err, sizeof err), 0);
    cr_assert_eq(ops.n, 0);
    traces_operations_free(&ops);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_store, rejects_spans_without_ids_and_keeps_the_rest) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tid[16], zero[16] = {0};
    t_tid(tid, 0x44, 4);
    uint64_t now = t_now_ns();
    traces_pb_span *good = t_span(A, tid, 7, 0, "good", SERVER, now, MS);
    traces_pb_span *no_trace = t_span(A, zero, 8, 0, "no-trace", SERVER, now, MS);
    traces_pb_span *no_span = t_span(A, tid, 0, 0, "no-span", SERVER, now, MS);
    traces_pb_span *short_id = t_span(A, tid, 9, 0, "short", SERVER, now, MS);
    short_id->span_id.len = 4;
    T_RS *rs = t_rs(A, "svc", 0);
    t_scope(A, rs, "", "", 4, good, no_trace, no_span, short_id);
    uint64_t rej;
    char msg[256];
    cr_assert_eq(t_ingest(s, t_req(A, 1, rs), &rej, msg, sizeof msg), TRACES_OK);
    cr_assert_eq(rej, 3);
    cr_assert(strstr(msg, "3 span(s) rejected"), "%s", msg);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    traces_result *res = get1(r, tid);
    cr_assert_eq(traces_result_count(res), 1);
    cr_assert_eq(traces_result_trace(res, 0)->n, 1);
    cr_assert_str_eq(traces_result_trace(res, 0)->spans[0].span->name, "good");
    traces_result_free(res);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_store, limits_drop_and_count_the_excess) {
    traces_config c = {
        .max_attributes = 2, .max_events = 1, .max_links = 1, .max_value_bytes = 5, .readers = 1};
    traces_store *s = t_open(dir, &c);
    uint8_t tid[16];
    t_tid(tid, 0x55, 5);
    uint64_t now = t_now_ns();
    traces_pb_span *sp = t_span(A, tid, 1, 0, "big", SERVER, now, MS);
    /* "h\xc3\xa9llo!" is 7 bytes; cutting at 5 must not split the two-byte é */
    t_attrs(A, sp, 3, t_str(A, "a", "h\xc3\xa9llo!"), t_str(A, "b", "xyzxyzxyz"), t_str(A, "c", "dropped"));
    sp->dropped_attributes_count = 1;
    t_event(A, sp, "e1", now, 3, t_int(A, "x", 1), t_int(A, "y", 2), t_int(A, "z", 3));
    t_event(A, sp, "e2", now, 0);
    t_link(A, sp, tid, 2, 0);
    t_link(A, sp, tid, 3, 0);
    T_RS *rs = t_rs(A, "svc", 0);
    t_scope(A, rs, "", "", 1, sp);
    cr_assert_eq(t_ingest(s, t_req(A, 1, rs), NULL, NULL, 0), TRACES_OK);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    traces_result *res = get1(r, tid);
    cr_assert_eq(traces_result_count(res), 1);
    const traces_pb_span *got = traces_result_trace(res, 0)->spans[0].span;
    cr_assert_eq(got->n_attributes, 2);
    cr_assert_eq(got->dropped_attributes_count, 2); /* 1 from the SDK + 1 here */
    cr_assert_str_eq(got->attributes[0]->value->string_value, "h\xc3\xa9ll");
    cr_assert_str_eq(got->attributes[1]->value->string_value, "xyzxy");
    cr_assert_eq(got->n_events, 1);
    cr_assert_eq(got->dropped_events_count, 1);
    cr_assert_eq(got->events[0]->n_attributes, 2);
    cr_assert_eq(got->events[0]->dropped_attributes_count, 1);
    cr_assert_eq(got->n_links, 1);
    cr_assert_eq(got->dropped_links_count, 1);
    traces_result_free(res);
    traces_reader_close(r);
    traces_close(s);
}

/* Fills a store with traces for the search tests. */
static traces_store *search_fixture(uint64_t now, uint8_t tids[6][16]) {
    traces_store *s = t_open(dir, NULL);
    for (int i = 0; i < 6; i++)
        t_tid(tids[i], (uint8_t)(0x60 + i), (uint8_t)i);
    /* t0: fast GET /a with a db child carrying an event; error on the root */
    traces_pb_span *r0 = t_span(A, tids[0], 1, 0, "GET /a", SERVER, now - 50 * MS, 10 * MS);
    t_attrs(A, r0, 2, t_int(A, "http.response.status_code", 500), t_str(A, "user", "ann"));
    t_status(A, r0, 2, "boom");
    traces_pb_span *c0 = t_span(A, tids[0], 2, 1, "query", CLIENT, now - 49 * MS, 3 * MS);
    t_event(A, c0, "retry", now - 48 * MS, 1, t_int(A, "attempt", 2));
    /* t1: slow GET /a, ok */
    traces_pb_span *r1 = t_span(A, tids[1], 3, 0, "GET /a", SERVER, now - 40 * MS, 900 * MS);
    t_attrs(A, r1, 1, t_int(A, "http.response.status_code", 200));
    t_status(A, r1, 1, "");
    /* t2: POST /b whose criteria are split across two spans */
    traces_pb_span *r2 = t_span(A, tids[2], 4, 0, "POST /b", SERVER, now - 30 * MS, 20 * MS);
    t_attrs(A, r2, 1, t_str(A, "user", "bob"));
    traces_pb_span *c2 = t_span(A, tids[2], 5, 4, "POST /b", INTERNAL, now - 29 * MS, 1 * MS);
    t_attrs(A, c2, 1, t_bool(A, "cached", 1));
    /* t3..t5: newer GET /a traces for limit / order */
    traces_pb_span *r3 = t_span(A, tids[3], 6, 0, "GET /a", SERVER, now - 20 * MS, 5 * MS);
    traces_pb_span *r4 = t_span(A, tids[4], 7, 0, "GET /a", SERVER, now - 10 * MS, 5 * MS);
    traces_pb_span *r5 = t_span(A, tids[5], 8, 0, "GET /a", SERVER, now - 5 * MS, 5 * MS);
    T_RS *fe = t_rs(A, "frontend", 1, t_str(A, "host.name", "web-1"));
    t_scope(A, fe, "otelhttp", "1.0", 4, r0, r1, r2, c2);
    T_RS *be = t_rs(A, "orders", 1, t_str(A, "host.name", "db-1"));
    t_scope(A, be, "sql", "", 1, c0);
    cr_assert_eq(t_ingest(s, t_req(A, 2, fe, be), NULL, NULL, 0), TRACES_OK);
    /* a second export (another chunk) with the newer traces */
    T_RS *fe2 = t_rs(A, "frontend", 1, t_str(A, "host.name", "web-2"));
    t_scope(A, fe2, "otelhttp", "1.0", 3, r3, r4, r5);
    cr_assert_eq(t_ingest(s, t_req(A, 1, fe2), NULL, NULL, 0), TRACES_OK);
    return s;
}

/* Runs a search and returns the found trace ids' distinguishing byte (id[0]-0x60) as a
 * string like "530", newest first. */
static void search(traces_reader *r, traces_query *q, uint64_t now, char *out) {
    if (!q->end_ns) q->end_ns = (int64_t)now;
    if (!q->start_ns) q->start_ns = (int64_t)now - 3600 * 1000 * (int64_t)MS;
    if (!q->limit) q->limit = 100;
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_search(r, q, &res, err, sizeof err), 0, "%s", err);
    size_t n = traces_result_count(res);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('0' + traces_result_trace(res, i)->id[0] - 0x60);
    out[n] = 0;
    traces_result_free(res);
}

#define TAGS(...)                                                                                            \
    const char *tk_[] = {__VA_ARGS__};                                                                       \
    const char *keys_[8], *vals_[8];                                                                         \
    size_t nt_ = sizeof tk_ / sizeof tk_[0] / 2;                                                             \
    for (size_t i_ = 0; i_ < nt_; i_++) {                                                                    \
        keys_[i_] = tk_[2 * i_];                                                                             \
        vals_[i_] = tk_[2 * i_ + 1];                                                                         \
    }

Test(traces_store, search_semantics) {
    uint64_t now = t_now_ns();
    uint8_t tids[6][16];
    traces_store *s = search_fixture(now, tids);
    char err[256], got[16];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    cr_assert(r, "%s", err);

    traces_query q = {.service = "frontend"};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "543210", "newest first: %s", got);
    q = (traces_query){.service = "frontend", .limit = 2};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "54");
    q = (traces_query){.service = "orders"};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "0");
    q = (traces_query){.service = "nobody"};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "");
    q = (traces_query){.service = "frontend", .operation = "POST /b"};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "2");
    /* durations: any one span within the bounds */
    q = (traces_query){.service = "frontend", .min_dur_ns = 100 * MS};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "1");
    q = (traces_query){.service = "frontend", .operation = "GET /a", .max_dur_ns = 5 * MS};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "543");
    q = (traces_query){.service = "frontend", .min_dur_ns = 6 * MS, .max_dur_ns = 15 * MS};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "0");
    /* time window on span start */
    q = (traces_query){
        .service = "frontend", .start_ns = (int64_t)(now - 25 * MS), .end_ns = (int64_t)(now - 8 * MS)};
    search(r, &q, now, got);
    cr_assert_str_eq(got, "43");
    {
        TAGS("error", "true");
        q = (traces_query){.service = "frontend", .tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "0");
    }
    {
        TAGS("http.response.status_code", "200");
        q = (traces_query){.service = "frontend", .tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "1");
    }
    { /* a resource attribute */
        TAGS("host.name", "web-2");
        q = (traces_query){.service = "frontend", .tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "543");
    }
    { /* an event field and the event name, on the orders span */
        TAGS("attempt", "2", "event", "retry");
        q = (traces_query){.service = "orders", .tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "0");
    }
    { /* the synthetic Jaeger tags */
        TAGS("span.kind", "client", "otel.scope.name", "sql");
        q = (traces_query){.service = "orders", .tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "0");
    }
    { /* both tags exist in trace 2, but on different spans: no match */
        TAGS("user", "bob", "cached", "true");
        q = (traces_query){.service = "frontend", .tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "");
    }
    { /* service of one span, tag of another: no match either */
        TAGS("user", "ann");
        q = (traces_query){.service = "orders", .tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "");
    }
    { /* v3 style: no service at all */
        TAGS("user", "bob");
        q = (traces_query){.tag_keys = keys_, .tag_values = vals_, .ntags = nt_};
        search(r, &q, now, got);
        cr_assert_str_eq(got, "2");
    }
    /* a match returns the whole trace, other services included */
    {
        TAGS("user", "ann");
        q = (traces_query){.service = "frontend",
                           .tag_keys = keys_,
                           .tag_values = vals_,
                           .ntags = nt_,
                           .start_ns = 1,
                           .end_ns = (int64_t)now,
                           .limit = 10};
        traces_result *res;
        cr_assert_eq(traces_search(r, &q, &res, err, sizeof err), 0);
        cr_assert_eq(traces_result_count(res), 1);
        cr_assert_eq(traces_result_trace(res, 0)->n, 2);
        traces_result_free(res);
    }

    traces_dependencies d;
    cr_assert_eq(
        traces_dependencies_list(r, (int64_t)(now - 3600 * 1000 * MS), (int64_t)now, &d, err, sizeof err), 0);
    int fe_orders = 0, fe_fe = 0;
    for (size_t i = 0; i < d.n; i++) {
        if (!strcmp(d.v[i].parent, "frontend") && !strcmp(d.v[i].child, "orders"))
            fe_orders = (int)d.v[i].count;
        if (!strcmp(d.v[i].parent, "frontend") && !strcmp(d.v[i].child, "frontend"))
            fe_fe = (int)d.v[i].count;
    }
    cr_assert_eq(fe_orders, 1);
    cr_assert_eq(fe_fe, 1);
    traces_dependencies_free(&d);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_store, many_chunks_search_limit_and_reopen) {
    traces_store *s = t_open(dir, NULL);
    uint64_t now = t_now_ns();
    /* 3 exports of 300 single-span traces: several chunks each */
    for (int e = 0; e < 3; e++) {
        traces_pb_span **sp = tr_arena_alloc(A, 300 * sizeof *sp);
        T_RS *rs = t_rs(A, "bulk", 0);
        T_SS *ss = tr_arena_calloc(A, 1, sizeof *ss);
        opentelemetry__proto__trace__v1__scope_spans__init(ss);
        for (int i = 0; i < 300; i++) {
            uint8_t tid[16];
            t_tid(tid, (uint8_t)(e + 1), 0);
            tid[14] = (uint8_t)(i >> 8);
            tid[15] = (uint8_t)i;
            sp[i] = t_span(A, tid, (uint64_t)(e * 1000 + i + 1), 0, i % 10 ? "op" : "rare", SERVER,
                           now - (uint64_t)(3 - e) * 1000 * MS + (uint64_t)i * MS, MS);
        }
        ss->spans = sp;
        ss->n_spans = 300;
        rs->scope_spans = tr_arena_alloc(A, sizeof(T_SS *));
        rs->scope_spans[0] = ss;
        rs->n_scope_spans = 1;
        cr_assert_eq(t_ingest(s, t_req(A, 1, rs), NULL, NULL, 0), TRACES_OK);
    }
    cr_assert_geq(tr_metric_value(s->m.chunks), 6);
    traces_close(s);
    tr_selfmon_reset();
    s = t_open(dir, NULL); /* reopen: everything is still there */
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    traces_query q = {.service = "bulk",
                      .operation = "rare",
                      .start_ns = 1,
                      .end_ns = (int64_t)now + 1000 * (int64_t)MS,
                      .limit = 1000};
    traces_result *res;
    cr_assert_eq(traces_search(r, &q, &res, err, sizeof err), 0);
    cr_assert_eq(traces_result_count(res), 90);
    /* newest first: the first is from the last export */
    cr_assert_eq(traces_result_trace(res, 0)->id[0], 3);
    cr_assert_eq(traces_result_trace(res, 89)->id[0], 1);
    traces_result_free(res);
    q.limit = 7;
    cr_assert_eq(traces_search(r, &q, &res, err, sizeof err), 0);
    cr_assert_eq(traces_result_count(res), 7);
    traces_result_free(res);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_store, retention_deletes_old_spans_and_keeps_new_ones) {
    traces_config c = {.retention_ms = 3600 * 1000, .readers = 1};
    traces_store *s = t_open(dir, &c);
    uint64_t now = t_now_ns();
    uint8_t old_id[16], new_id[16];
    t_tid(old_id, 0x70, 1);
    t_tid(new_id, 0x71, 2);
    T_RS *a = t_rs(A, "svc", 0);
    t_scope(A, a, "", "", 1, t_span(A, old_id, 1, 0, "old", SERVER, now - 7200 * 1000 * MS, MS));
    cr_assert_eq(t_ingest(s, t_req(A, 1, a), NULL, NULL, 0), TRACES_OK);
    T_RS *b = t_rs(A, "svc", 0);
    t_scope(A, b, "", "", 1, t_span(A, new_id, 2, 0, "new", SERVER, now - 60 * 1000 * MS, MS));
    cr_assert_eq(t_ingest(s, t_req(A, 1, b), NULL, NULL, 0), TRACES_OK);
    cr_assert_eq(traces_retention_run(s, (int64_t)(now / MS)), 1);
    cr_assert_eq(tr_metric_value(s->m.expired), 1);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    traces_result *res = get1(r, old_id);
    cr_assert_eq(traces_result_count(res), 0);
    traces_result_free(res);
    res = get1(r, new_id);
    cr_assert_eq(traces_result_count(res), 1);
    traces_result_free(res);
    /* the index rows went with the chunk */
    sqlite3_stmt *st;
    cr_assert_eq(
        sqlite3_prepare_v2(r->db,
                           "SELECT (SELECT count(*) FROM chunk), (SELECT count(*) FROM trace_idx), (SELECT "
                           "count(DISTINCT chunk) FROM sum_idx), (SELECT count(DISTINCT chunk) FROM tag_idx)",
                           -1, &st, NULL),
        SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(sqlite3_column_int(st, i), 1, "column %d", i);
    sqlite3_finalize(st);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_store, size_cap_deletes_oldest_first) {
    traces_config c = {.retention_bytes = 400 * 1024, .readers = 1};
    traces_store *s = t_open(dir, &c);
    uint64_t now = t_now_ns();
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    for (int e = 0; e < 40; e++) {
        T_RS *rs = t_rs(A, "svc", 0);
        uint8_t tid[16];
        t_tid(tid, (uint8_t)(e + 1), 9);
        traces_pb_span *sp[20];
        for (int i = 0; i < 20; i++) {
            char v[2100];
            /* incompressible-ish values so that the file grows */
            for (int k = 0; k < 2000; k++)
                v[k] = (char)('a' + (rand() % 26));
            v[2000] = 0;
            sp[i] = t_span(A, tid, (uint64_t)(e * 100 + i + 1), 0, "op", SERVER,
                           now - MS * (uint64_t)(40 - e), MS);
            t_attrs(A, sp[i], 1, t_str(A, "blob", v));
        }
        t_scope(A, rs, "", "", 20, sp[0], sp[1], sp[2], sp[3], sp[4], sp[5], sp[6], sp[7], sp[8], sp[9],
                sp[10], sp[11], sp[12], sp[13], sp[14], sp[15], sp[16], sp[17], sp[18], sp[19]);
        cr_assert_eq(t_ingest(s, t_req(A, 1, rs), NULL, NULL, 0), TRACES_OK);
    }
    int64_t deleted = traces_retention_run(s, (int64_t)(now / MS));
    cr_assert_gt(deleted, 0);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    uint8_t first[16], last[16];
    t_tid(first, 1, 9);
    t_tid(last, 40, 9);
    traces_result *res = get1(r, first);
    cr_assert_eq(traces_result_count(res), 0, "the oldest export is gone");
    traces_result_free(res);
    res = get1(r, last);
    cr_assert_eq(traces_result_count(res), 1, "the newest export stays");
    traces_result_free(res);
    int64_t pages = 0, psize = 0;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(r->db, "PRAGMA page_count", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(r->db, "PRAGMA page_size", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) psize = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cr_assert_leq(pages * psize, 400 * 1024 + 64 * 1024, "file shrank by incremental vacuum: %lld",
                  (long long)(pages * psize));
    (void)big;
    traces_reader_close(r);
    traces_close(s);
}

static void expect_open_error(const char *d, const char *needle) {
    traces_config c = {.dir = d, .readers = 1};
    char err[512];
    traces_store *s = traces_open(&c, err, sizeof err);
    cr_assert_null(s, "opened a file it should refuse");
    cr_assert(strstr(err, needle), "error was: %s", err);
}

Test(traces_store, refuses_garbage_foreign_and_newer_files) {
    snprintf(dir, sizeof dir, "/tmp/tr-unit-traces-XXXXXX");
    cr_assert(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/traces.db", dir);

    FILE *f = fopen(path, "w");
    for (int i = 0; i < 500; i++)
        fputs("this is not a database. ", f);
    fclose(f);
    expect_open_error(dir, "not a usable trace database");

    unlink(path);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(db, "CREATE TABLE accounts(id INTEGER); PRAGMA application_id=1234", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    expect_open_error(dir, "another program");

    unlink(path);
    traces_store *s = t_open(dir, NULL);
    traces_close(s);
    tr_selfmon_reset();
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    expect_open_error(dir, "newer than this tricorder");

    /* a file of ours at an older version is upgraded in place: version 0 with our id */
    unlink(path);
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA application_id=%d", TRACES_APP_ID);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s = t_open(dir, NULL);
    traces_close(s);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), TRACES_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(traces_store, value_string_forms) {
    char out[128];
    uint8_t raw[] = {0xde, 0xad, 0xbe, 0xef};
    traces_value_string(t_int(A, "k", -42)->value, out, sizeof out);
    cr_assert_str_eq(out, "-42");
    traces_value_string(t_bool(A, "k", 1)->value, out, sizeof out);
    cr_assert_str_eq(out, "true");
    traces_value_string(t_dbl(A, "k", 0.25)->value, out, sizeof out);
    cr_assert_str_eq(out, "0.25");
    traces_value_string(t_bytes(A, "k", raw, 4)->value, out, sizeof out);
    cr_assert_str_eq(out, "3q2+7w==");
    traces_value_string(t_strarr(A, "k", "a", "b\"c")->value, out, sizeof out);
    cr_assert_str_eq(out, "[\"a\",\"b\\\"c\"]");
    T_RS *none = t_rs(A, NULL, 0);
    cr_assert_str_eq(traces_service_name(none->resource), "OTLPResourceNoServiceName");
    T_RS *other = t_rs(A, NULL, 1, t_str(A, "host.name", "x"));
    cr_assert_str_eq(traces_service_name(other->resource), "");
}
