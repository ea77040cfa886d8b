/* The trace store's bucketed index: searches give the same answers whether a chunk's bucket
 * is sealed (posting rows) or open (per-chunk rows), chunk ids never run back into a sealed
 * bucket after a restart, retention drops the postings of emptied buckets, and a schema 1
 * file is upgraded in place with every span still found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <zstd.h>

#include "helpers.h"
#include "traces/traces_int.h"
#include "util/selfmon.h"

#define MS 1000000ULL
#define SERVER 2

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

TestSuite(traces_buckets, .init = setup, .fini = teardown);

static const char *const SVC[] = {"alpha", "beta", "gamma"};

/* Trace i: one span of service SVC[i%3], operation op-(i%4), tag n=(i%7), tag uniq=u-i,
 * lasting 1+i%10 ms, started `age` ms before base. */
static void trace_id(int i, uint8_t tid[16]) { t_tid(tid, (uint8_t)(1 + (i >> 8)), (uint8_t)(i & 0xff)); }

static traces_request *one_trace(int i, uint64_t start) {
    uint8_t tid[16];
    trace_id(i, tid);
    char op[16], n[16], u[16];
    snprintf(op, sizeof op, "op-%d", i % 4);
    snprintf(n, sizeof n, "%d", i % 7);
    snprintf(u, sizeof u, "u-%d", i);
    traces_pb_span *sp = t_span(A, tid, (uint64_t)i + 1, 0, op, SERVER, start, (uint64_t)(1 + i % 10) * MS);
    t_attrs(A, sp, 2, t_str(A, "n", n), t_str(A, "uniq", u));
    T_RS *rs = t_rs(A, SVC[i % 3], 0);
    t_scope(A, rs, "lib", "1", 1, sp);
    return t_req(A, 1, rs);
}

/* One export (so one chunk) per trace. */
static void ingest_range(traces_store *s, int from, int to, uint64_t base, int64_t age_ms) {
    for (int i = from; i < to; i++)
        cr_assert_eq(t_ingest(s, one_trace(i, base - (uint64_t)(age_ms + to - i) * MS), NULL, NULL, 0),
                     TRACES_OK);
}

/* The ids found, as trace numbers, newest first; returns how many. */
static size_t run_search(traces_reader *r, traces_query *q, int *out) {
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_search(r, q, &res, err, sizeof err), 0, "%s", err);
    size_t n = traces_result_count(res);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *id = traces_result_trace(res, i)->id;
        out[i] = ((id[0] - 1) << 8) | id[15];
        cr_assert_eq(traces_result_trace(res, i)->n, 1);
    }
    traces_result_free(res);
    return n;
}

/* Checks a search against the brute-force answer over traces [from, to). */
static void expect_search(traces_reader *r, int from, int to, const char *svc, int op, int tag_n, int uniq,
                          int64_t min_dur, int64_t max_dur, int limit) {
    const char *keys[2], *vals[2];
    char opn[16], nv[16], uv[16];
    size_t nt = 0;
    traces_query q = {.service = svc,
                      .start_ns = 1,
                      .end_ns = INT64_MAX,
                      .min_dur_ns = min_dur,
                      .max_dur_ns = max_dur,
                      .limit = limit};
    if (op >= 0) {
        snprintf(opn, sizeof opn, "op-%d", op);
        q.operation = opn;
    }
    if (tag_n >= 0) {
        snprintf(nv, sizeof nv, "%d", tag_n);
        keys[nt] = "n";
        vals[nt++] = nv;
    }
    if (uniq >= 0) {
        snprintf(uv, sizeof uv, "u-%d", uniq);
        keys[nt] = "uniq";
        vals[nt++] = uv;
    }
    q.tag_keys = keys;
    q.tag_values = vals;
    q.ntags = nt;
    int want[1024], got[1024];
    size_t nw = 0;
    for (int i = to - 1; i >= from && nw < (size_t)limit; i--) {
        int64_t d = (1 + i % 10) * (int64_t)MS;
        if (svc && strcmp(svc, SVC[i % 3])) continue;
        if (op >= 0 && i % 4 != op) continue;
        if (tag_n >= 0 && i % 7 != tag_n) continue;
        if (uniq >= 0 && i != uniq) continue;
        if (min_dur && d < min_dur) continue;
        if (max_dur && d > max_dur) continue;
        want[nw++] = i;
    }
    size_t ng = run_search(r, &q, got);
    cr_assert_eq(ng, nw, "svc=%s op=%d n=%d uniq=%d dur=[%lld,%lld]: %zu traces, want %zu", svc ? svc : "-",
                 op, tag_n, uniq, (long long)min_dur, (long long)max_dur, ng, nw);
    for (size_t i = 0; i < nw; i++)
        cr_assert_eq(got[i], want[i], "result %zu: trace %d, want %d", i, got[i], want[i]);
}

static void expect_get(traces_reader *r, int i, int found) {
    uint8_t tid[16];
    trace_id(i, tid);
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])tid, 1, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), (size_t)found, "trace %d", i);
    if (found) cr_assert_eq(traces_result_trace(res, 0)->n, 1);
    traces_result_free(res);
}

static int64_t q1(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Every kind of search over sealed and open buckets alike. */
static void search_everything(traces_reader *r, int from, int to) {
    for (int s = 0; s < 3; s++) {
        expect_search(r, from, to, SVC[s], -1, -1, -1, 0, 0, 1000);
        expect_search(r, from, to, SVC[s], -1, -1, -1, 0, 0, 5);
        expect_search(r, from, to, SVC[s], s + 1, -1, -1, 0, 0, 1000);
        expect_search(r, from, to, SVC[s], -1, s + 2, -1, 0, 0, 1000);
        expect_search(r, from, to, SVC[s], s, s, -1, 0, 0, 1000);
        expect_search(r, from, to, SVC[s], -1, -1, -1, 8 * (int64_t)MS, 0, 1000);
        expect_search(r, from, to, SVC[s], -1, 3, -1, 2 * (int64_t)MS, 4 * (int64_t)MS, 1000);
    }
    for (int i = from; i < to; i += 37) {
        expect_search(r, from, to, SVC[i % 3], -1, -1, i, 0, 0, 10);
        expect_search(r, from, to, SVC[(i + 1) % 3], -1, -1, i, 0, 0, 10); /* other service: none */
        expect_search(r, from, to, NULL, -1, -1, i, 0, 0, 10);             /* no service at all */
    }
    expect_search(r, from, to, NULL, -1, 5, -1, 0, 0, 1000);
    expect_search(r, from, to, NULL, -1, -1, -1, 0, 0, 1000);
}

Test(traces_buckets, sealed_and_open_buckets_answer_alike) {
    traces_store *s = t_open(dir, NULL);
    uint64_t now = t_now_ns();
    ingest_range(s, 0, 200, now, 0); /* chunks 1..200: buckets 0-2 sealed, 3 open */
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    cr_assert(r, "%s", err);
    cr_assert_eq(q1(r->db, "SELECT v FROM meta WHERE k='open_bucket'"), 3);
    cr_assert_eq(q1(r->db, "SELECT count(DISTINCT b) FROM tag_post"), 3);
    cr_assert_eq(q1(r->db, "SELECT count(DISTINCT b) FROM sum_post"), 3);
    cr_assert_eq(q1(r->db, "SELECT min(chunk) FROM tag_idx"), 192, "per-chunk rows only for the open bucket");
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM sum_idx"), 9);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_idx"), 200, "trace lists stay for every chunk");
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_post"), 191, "trace postings for the sealed chunks");
    search_everything(r, 0, 200);
    for (int i = 0; i < 200; i += 13)
        expect_get(r, i, 1);
    expect_get(r, 199, 1);
    expect_get(r, 500, 0);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_buckets, ids_go_on_after_a_restart) {
    traces_store *s = t_open(dir, NULL);
    uint64_t now = t_now_ns();
    ingest_range(s, 0, 130, now, 0);
    traces_close(s);
    tr_selfmon_reset();
    s = t_open(dir, NULL);
    ingest_range(s, 130, 140, now, 0);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    cr_assert_eq(q1(r->db, "SELECT max(id) FROM chunk"), 140);
    cr_assert_eq(q1(r->db, "SELECT count(DISTINCT id) FROM chunk"), 140);
    search_everything(r, 0, 140);
    traces_reader_close(r);
    traces_close(s);
}

/* Retention also runs in the background once a store is open: counting what went uses the
 * expired counter, which both paths add to. */
static void expire_now(traces_store *s, uint64_t now, double want) {
    traces_retention_run(s, (int64_t)(now / MS));
    cr_assert_eq(tr_metric_value(s->m.expired), want);
}

Test(traces_buckets, newest_chunks_expired_then_restart_never_reuses_a_sealed_id) {
    traces_store *s = t_open(dir, NULL);
    uint64_t now = t_now_ns();
    ingest_range(s, 0, 127, now, 0);             /* chunks 1..127: bucket 0 and 1 */
    ingest_range(s, 127, 140, now, 7200 * 1000); /* chunks 128..140 (bucket 2, sealing 1) start 2 h ago */
    traces_close(s);
    tr_selfmon_reset();
    traces_config c = {.retention_ms = 3600 * 1000, .readers = 1};
    s = t_open(dir, &c);
    expire_now(s, now, 13);
    traces_close(s);
    tr_selfmon_reset();
    s = t_open(dir, &c);
    ingest_range(s, 140, 150, now, 0);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    cr_assert_eq(q1(r->db, "SELECT max(id) FROM chunk WHERE id < 128"), 127,
                 "no new chunk inside sealed bucket 1");
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM chunk"), 137);
    for (int i = 127; i < 140; i++)
        expect_get(r, i, 0);
    for (int i = 140; i < 150; i++)
        expect_get(r, i, 1);
    for (int i = 0; i < 127; i += 9)
        expect_get(r, i, 1);
    expect_search(r, 140, 150, "alpha", -1, -1, -1, 0, 0, 3); /* the newest three */
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_buckets, retention_drops_postings_of_emptied_buckets) {
    traces_store *s = t_open(dir, NULL);
    uint64_t now = t_now_ns();
    ingest_range(s, 0, 70, now, 7200 * 1000); /* chunks 1..70 expired */
    ingest_range(s, 70, 200, now, 0);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    cr_assert_gt(q1(r->db, "SELECT count(*) FROM tag_post WHERE b=0"), 0);
    traces_reader_close(r);
    traces_close(s);
    tr_selfmon_reset();
    traces_config c = {.retention_ms = 3600 * 1000, .readers = 1};
    s = t_open(dir, &c);
    expire_now(s, now, 70);
    r = traces_reader_open(s, err, sizeof err);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM tag_post WHERE b=0"), 0,
                 "bucket 0 is empty: its postings go");
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM sum_post WHERE b=0"), 0);
    cr_assert_gt(q1(r->db, "SELECT count(*) FROM tag_post WHERE b=1"), 0, "bucket 1 still has chunks");
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_post WHERE chunk <= 70"), 0);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_idx WHERE chunk <= 70"), 0);
    for (int i = 0; i < 70; i += 7)
        expect_get(r, i, 0);
    search_everything(r, 70, 200);
    traces_reader_close(r);
    traces_close(s);
}

/* ---- schema 1 ---- */

static const char *const SCHEMA_1 =
    "CREATE TABLE chunk(id INTEGER PRIMARY KEY, min_start INTEGER NOT NULL, max_start INTEGER NOT NULL,"
    " min_dur INTEGER NOT NULL, max_dur INTEGER NOT NULL, nspans INTEGER NOT NULL, rawlen INTEGER NOT NULL,"
    " data BLOB NOT NULL);"
    "CREATE INDEX chunk_max_start ON chunk(max_start);"
    "CREATE TABLE trace_idx(tid INTEGER NOT NULL, chunk INTEGER NOT NULL, PRIMARY KEY(tid, chunk)) WITHOUT "
    "ROWID;"
    "CREATE TABLE sum_idx(k INTEGER NOT NULL, chunk INTEGER NOT NULL, min_start INTEGER NOT NULL,"
    " max_start INTEGER NOT NULL, min_dur INTEGER NOT NULL, max_dur INTEGER NOT NULL,"
    " PRIMARY KEY(k, chunk)) WITHOUT ROWID;"
    "CREATE TABLE tag_idx(h INTEGER NOT NULL, chunk INTEGER NOT NULL, PRIMARY KEY(h, chunk)) WITHOUT ROWID;"
    "CREATE TABLE operation(service TEXT NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL, PRIMARY KEY(service, name, kind)) WITHOUT ROWID;";

typedef struct v1_ctx {
    sqlite3_stmt *tag;
    int64_t chunk;
} v1_ctx;

static int v1_tag(void *ctx, const char *k, const char *v, size_t vlen) {
    v1_ctx *c = ctx;
    sqlite3_bind_int64(c->tag, 1, (int64_t)key_tag(k, v, vlen));
    sqlite3_bind_int64(c->tag, 2, c->chunk);
    cr_assert_eq(sqlite3_step(c->tag), SQLITE_DONE);
    sqlite3_reset(c->tag);
    return 0;
}

static void v1_sum(sqlite3 *db, uint64_t k, int64_t chunk, int64_t st, int64_t du) {
    sqlite3_stmt *x;
    cr_assert_eq(
        sqlite3_prepare_v2(db,
                           "INSERT INTO sum_idx VALUES(?1,?2,?3,?3,?4,?4) ON CONFLICT(k,chunk) DO UPDATE SET"
                           " min_start=min(min_start,?3), max_start=max(max_start,?3), "
                           "min_dur=min(min_dur,?4), max_dur=max(max_dur,?4)",
                           -1, &x, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(x, 1, (int64_t)k);
    sqlite3_bind_int64(x, 2, chunk);
    sqlite3_bind_int64(x, 3, st);
    sqlite3_bind_int64(x, 4, du);
    cr_assert_eq(sqlite3_step(x), SQLITE_DONE);
    sqlite3_finalize(x);
}

/* Writes req as schema 1 did: one chunk row and its per-chunk index rows. */
static void v1_write_chunk(sqlite3 *db, int64_t id, const traces_request *req) {
    chunk_writer w = {0};
    size_t raw;
    const uint8_t *p = chunk_encode(&w, req, &raw);
    size_t bound = ZSTD_compressBound(raw);
    uint8_t *z = tr_arena_alloc(A, bound);
    size_t zl = ZSTD_compress(z, bound, p, raw, 1);
    int64_t min_s = INT64_MAX, max_s = INT64_MIN, min_d = INT64_MAX, max_d = INT64_MIN, n = 0;
    sqlite3_stmt *tag, *tr;
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO tag_idx VALUES(?,?)", -1, &tag, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO trace_idx VALUES(?,?)", -1, &tr, NULL),
                 SQLITE_OK);
    v1_ctx c = {tag, id};
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const T_RS *rs = req->resource_spans[i];
        const char *svc = traces_service_name(rs->resource);
        resource_each_tag(rs->resource, v1_tag, &c);
        for (size_t j = 0; j < rs->n_scope_spans; j++)
            for (size_t k = 0; k < rs->scope_spans[j]->n_spans; k++) {
                const traces_pb_span *sp = rs->scope_spans[j]->spans[k];
                int64_t st = (int64_t)sp->start_time_unix_nano,
                        du = (int64_t)(sp->end_time_unix_nano - sp->start_time_unix_nano);
                min_s = st < min_s ? st : min_s;
                max_s = st > max_s ? st : max_s;
                min_d = du < min_d ? du : min_d;
                max_d = du > max_d ? du : max_d;
                n++;
                sqlite3_bind_int64(tr, 1, key_trace(sp->trace_id.data));
                sqlite3_bind_int64(tr, 2, id);
                cr_assert_eq(sqlite3_step(tr), SQLITE_DONE);
                sqlite3_reset(tr);
                v1_sum(db, key_service(svc), id, st, du);
                v1_sum(db, key_operation(svc, sp->name), id, st, du);
                span_each_tag(sp, NULL, rs->scope_spans[j]->scope, 0, v1_tag, &c);
            }
    }
    sqlite3_finalize(tag);
    sqlite3_finalize(tr);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO chunk VALUES(?,?,?,?,?,?,?,?)", -1, &st, NULL),
                 SQLITE_OK);
    int64_t vals[] = {id, min_s, max_s, min_d, max_d, n, (int64_t)raw};
    for (int i = 0; i < 7; i++)
        sqlite3_bind_int64(st, i + 1, vals[i]);
    sqlite3_bind_blob(st, 8, z, (int)zl, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    chunk_writer_free(&w);
}

Test(traces_buckets, schema_1_file_is_upgraded_in_place) {
    snprintf(dir, sizeof dir, "/tmp/tr-unit-traces-XXXXXX");
    cr_assert(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/traces.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char sql[128];
    snprintf(sql, sizeof sql,
             "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL; PRAGMA application_id=%d",
             TRACES_APP_ID);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, SCHEMA_1, NULL, NULL, NULL), SQLITE_OK);
    uint64_t now = t_now_ns();
    /* chunk 1 mixes two services, as schema 1 chunks did: trace 0 (alpha) and 1 (beta) */
    cr_assert_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    traces_request *a = one_trace(0, now - 7200 * 1000 * MS), *b = one_trace(1, now - 7199 * 1000 * MS);
    T_RS *both[] = {a->resource_spans[0], b->resource_spans[0]};
    traces_request *mixed = t_req(A, 2, both[0], both[1]);
    v1_write_chunk(db, 1, mixed);
    for (int i = 2; i < 70; i++)
        v1_write_chunk(db, i, one_trace(i, now - (uint64_t)(7200 - i) * 1000 * MS));
    cr_assert_eq(
        sqlite3_exec(db, "INSERT INTO operation VALUES('alpha','op-0',2,0); PRAGMA user_version=1; COMMIT",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    traces_config c = {.retention_ms = 3 * 3600 * 1000, .readers = 1};
    traces_store *s = t_open(dir, &c);
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    cr_assert(r, "%s", err);
    cr_assert_eq(q1(r->db, "PRAGMA user_version"), TRACES_SCHEMA_VERSION);
    cr_assert_eq(q1(r->db, "SELECT v FROM meta WHERE k='open_bucket'"), 2, "the migrated buckets are sealed");
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_idx"), 69);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_post"), 70);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'v1_%'"), 0);
    /* the old spans are all found, by every kind of search */
    search_everything(r, 0, 70);
    for (int i = 0; i < 70; i += 3)
        expect_get(r, i, 1);
    /* the mixed chunk: beta's search for alpha's unique tag finds nothing */
    expect_search(r, 0, 70, "beta", -1, -1, 0, 0, 0, 10);
    /* new spans go after the migrated buckets and are found with the old ones */
    ingest_range(s, 70, 80, now, 0);
    cr_assert_eq(q1(r->db, "SELECT min(id) FROM chunk WHERE id > 69"), 128);
    search_everything(r, 0, 80);
    /* the migrated chunks expire with their index rows */
    traces_config c2 = {.retention_ms = 3600 * 1000, .readers = 1};
    traces_reader_close(r);
    traces_close(s);
    tr_selfmon_reset();
    s = t_open(dir, &c2);
    expire_now(s, now, 70);
    r = traces_reader_open(s, err, sizeof err);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_post"), 0);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM tag_post"), 0);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM sum_post"), 0);
    for (int i = 0; i < 70; i += 5)
        expect_get(r, i, 0);
    search_everything(r, 70, 80);
    traces_reader_close(r);
    traces_close(s);
}
