/* Damage in the trace store: a chunk whose checksum or bytes do not check out is never served
 * (the rest is, and the damaged chunk is named in the result), is moved whole to the
 * quarantine table (never deleted), counted and logged; chunks written before checksums
 * existed are still checked by decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

#include "helpers.h"
#include "traces/traces_int.h"
#include "util/log.h"
#include "util/selfmon.h"

#define MS 1000000ULL

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

TestSuite(traces_integrity, .init = setup, .fini = teardown);

/* One trace of one span per service, so each lands in its own chunk (ids 1, 2, …). */
static void ingest_services(traces_store *s, int n, uint8_t (*tids)[16]) {
    uint64_t now = t_now_ns();
    for (int i = 0; i < n; i++) {
        char svc[16];
        snprintf(svc, sizeof svc, "svc-%d", i);
        t_tid(tids[i], (uint8_t)(0x10 + i), (uint8_t)i);
        T_RS *rs = t_rs(A, svc, 0);
        t_scope(A, rs, "lib", "1", 1,
                t_span(A, tids[i], 100 + (uint64_t)i, 0, "op", 2, now - (uint64_t)i * MS, MS));
        uint64_t rej;
        char msg[200];
        cr_assert_eq(t_ingest(s, t_req(A, 1, rs), &rej, msg, sizeof msg), TRACES_OK, "%s", msg);
    }
}

static int64_t q1(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Flips one bit of chunk `id`'s blob in place (as a disk would: the stored CRC stays). */
static void flip_blob(int64_t id, size_t at) {
    char path[300];
    snprintf(path, sizeof path, "%s/traces.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_blob *b;
    cr_assert_eq(sqlite3_blob_open(db, "main", "chunk", "data", id, 1, &b), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    uint8_t c;
    cr_assert_eq(sqlite3_blob_read(b, &c, 1, (int)at), SQLITE_OK);
    c ^= 0x10;
    cr_assert_eq(sqlite3_blob_write(b, &c, 1, (int)at), SQLITE_OK);
    sqlite3_blob_close(b);
    sqlite3_close(db);
}

static void exec_db(const char *sql) {
    char path[300];
    snprintf(path, sizeof path, "%s/traces.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static double metric(const char *name) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_selfmon_render(&b);
    tr_buf_putc(&b, 0);
    const char *p = strstr((const char *)b.data, name);
    double v = -1;
    while (p) { /* the sample line, not # HELP / # TYPE */
        if (p == (const char *)b.data || p[-1] == '\n') {
            sscanf(p + strlen(name), " %lf", &v);
            break;
        }
        p = strstr(p + 1, name);
    }
    tr_buf_free(&b);
    return v;
}

static void check_damage_is_not_served(void) {
    traces_store *s = t_open(dir, NULL);
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    cr_assert(r);
    uint8_t tids[3][16];
    ingest_services(s, 0, tids); /* ids only */
    for (int i = 0; i < 3; i++)
        t_tid(tids[i], (uint8_t)(0x10 + i), (uint8_t)i);
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])tids, 3, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), 2, "the intact traces are served");
    for (size_t i = 0; i < traces_result_count(res); i++)
        cr_assert(memcmp(traces_result_trace(res, i)->id, tids[1], 16) != 0,
                  "the damaged trace is never served");
    const int64_t *ids;
    cr_assert_eq(traces_result_damaged(res, &ids), 1);
    cr_assert_eq(ids[0], 2, "the damaged chunk is named");
    traces_result_free(res);
    /* a search meets it no more once quarantined: the writer does it in order, so a
     * retention pass on the writer thread waits for it */
    traces_retention_run(s, tr_now_ms());
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM chunk WHERE id=2"), 0);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM quarantine WHERE id=2 AND length(data) > 0"), 1,
                 "moved, not deleted");
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM trace_idx WHERE chunk=2"), 0);
    cr_assert_eq(metric("tricorder_traces_chunks_quarantined_total"), 1);
    traces_query q = {.start_ns = 0, .end_ns = INT64_MAX, .limit = 10};
    cr_assert_eq(traces_search(r, &q, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), 2);
    cr_assert_eq(traces_result_damaged(res, NULL), 0);
    traces_result_free(res);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_integrity, flipped_blob_is_quarantined_not_served) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    tr_selfmon_reset();
    flip_blob(2, 9);
    check_damage_is_not_served();
}

Test(traces_integrity, changed_lengths_fail_the_checksum) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    tr_selfmon_reset();
    exec_db("UPDATE chunk SET nspans = nspans + 2 WHERE id = 2");
    check_damage_is_not_served();
}

Test(traces_integrity, chunks_without_checksum_are_checked_by_decoding) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    tr_selfmon_reset();
    /* as written before schema 3, then damaged in the zstd frame's body */
    exec_db("UPDATE chunk SET crc = NULL");
    flip_blob(2, 6);
    exec_db("UPDATE chunk SET data = substr(data, 1, 8) WHERE id = 2");
    check_damage_is_not_served();
}

Test(traces_integrity, search_skips_damaged_chunks_and_names_them) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    tr_selfmon_reset();
    flip_blob(3, 12);
    s = t_open(dir, NULL);
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    traces_query q = {.start_ns = 0, .end_ns = INT64_MAX, .limit = 10};
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_search(r, &q, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), 2);
    const int64_t *ids;
    cr_assert_eq(traces_result_damaged(res, &ids), 1);
    cr_assert_eq(ids[0], 3);
    traces_result_free(res);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_integrity, intact_store_reports_no_damage) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])tids, 3, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), 3);
    cr_assert_eq(traces_result_damaged(res, NULL), 0);
    traces_result_free(res);
    cr_assert_eq(q1(r->db, "SELECT count(*) FROM chunk WHERE crc IS NULL"), 0,
                 "every new chunk has a checksum");
    traces_reader_close(r);
    traces_close(s);
}

/* ---- group commit ---- */

typedef struct async_ack {
    int done, status;
} async_ack;

static void on_async_ack(void *cookie, int status, uint64_t rejected, const char *msg) {
    (void)rejected;
    (void)msg;
    async_ack *k = cookie;
    k->status = status;
    k->done = 1;
}

static uint64_t histogram_count(const char *name) {
    char key[200];
    snprintf(key, sizeof key, "%s_count", name);
    return (uint64_t)metric(key);
}

Test(traces_integrity, concurrent_exports_share_commits) {
    traces_store *s = t_open(dir, NULL); /* sync full: the default */
    enum { N = 48 };
    async_ack acks[N] = {{0}};
    uint8_t tids[N][16];
    traces_request *reqs[N];
    uint64_t now = t_now_ns();
    for (int i = 0; i < N; i++) {
        t_tid(tids[i], 0x40, (uint8_t)i);
        T_RS *rs = t_rs(A, i % 2 ? "even" : "odd", 0);
        t_scope(A, rs, "lib", "1", 1, t_span(A, tids[i], 1 + (uint64_t)i, 0, "op", 2, now, MS));
        reqs[i] = t_req(A, 1, rs);
    }
    for (int i = 0; i < N; i++)
        traces_submit(s, reqs[i], on_async_ack, &acks[i]);
    for (int spins = 0; spins < 20000; spins++) {
        traces_run_completions(s);
        int all = 1;
        for (int i = 0; i < N; i++)
            all &= acks[i].done;
        if (all) break;
        usleep(1000);
    }
    for (int i = 0; i < N; i++)
        cr_assert(acks[i].done && acks[i].status == TRACES_OK, "export %d acknowledged", i);
    uint64_t tx = histogram_count("tricorder_traces_transaction_duration_seconds");
    cr_assert(tx >= 1 && tx < N, "%d exports queued together took %llu transactions", N,
              (unsigned long long)tx);
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])tids, N, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), N, "every acknowledged export is stored");
    traces_result_free(res);
    traces_reader_close(r);
    cr_assert_eq(q1(s->wdb, "PRAGMA synchronous"), 2, "FULL by default");
    traces_close(s);
}

Test(traces_integrity, sync_normal_is_chosen_by_config) {
    traces_config c = {.readers = 1, .sync_normal = 1};
    traces_store *s = t_open(dir, &c);
    cr_assert_eq(q1(s->wdb, "PRAGMA synchronous"), 1, "NORMAL");
    traces_close(s);
}

/* ---- --trace-retention-size counts the WAL ---- */

static void ingest_random_blobs(traces_store *s, int exports, uint64_t now, uint8_t first,
                                int with_reader_open) {
    (void)with_reader_open;
    for (int e = 0; e < exports; e++) {
        T_RS *rs = t_rs(A, "svc", 0);
        uint8_t tid[16];
        t_tid(tid, (uint8_t)(first + e), 7);
        traces_pb_span *sp[8];
        for (int i = 0; i < 8; i++) {
            char v[4100];
            for (int k = 0; k < 4096; k++)
                v[k] = (char)('a' + (rand() % 26));
            v[4096] = 0;
            sp[i] = t_span(A, tid, (uint64_t)(e * 100 + i + 1), 0, "op", 2,
                           now - MS * (uint64_t)(exports - e), MS);
            t_attrs(A, sp[i], 1, t_str(A, "blob", v));
        }
        t_scope(A, rs, "", "", 8, sp[0], sp[1], sp[2], sp[3], sp[4], sp[5], sp[6], sp[7]);
        cr_assert_eq(t_ingest(s, t_req(A, 1, rs), NULL, NULL, 0), TRACES_OK);
    }
}

static int64_t file_bytes(const char *suffix) {
    char p[300];
    snprintf(p, sizeof p, "%s/traces.db%s", dir, suffix);
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    int64_t n = ftell(f);
    fclose(f);
    return n;
}

Test(traces_integrity, size_cap_holds_with_the_wal) {
    const int64_t cap = 1024 * 1024;
    traces_config c = {.retention_bytes = cap, .readers = 1};
    traces_store *s = t_open(dir, &c);
    uint64_t now = t_now_ns();
    /* ~3 MiB of nearly incompressible spans: three times the cap */
    ingest_random_blobs(s, 120, now, 1, 0);
    traces_retention_run(s, (int64_t)(now / MS));
    /* the background pass may already have run: either way the oldest spans went */
    cr_assert_gt(metric("tricorder_traces_spans_expired_total"), 0, "the test writes more than the cap");
    uint8_t first[16];
    t_tid(first, 1, 7);
    int64_t db = file_bytes(""), wal = file_bytes("-wal");
    cr_assert_leq(db + wal, cap, "traces.db %lld + traces.db-wal %lld bytes over the %lld cap", (long long)db,
                  (long long)wal, (long long)cap);
    cr_assert_eq(traces_disk_bytes(s), db + wal);
    /* the newest export stays */
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    uint8_t last[16];
    t_tid(last, 120, 7);
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])last, 1, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), 1);
    traces_result_free(res);
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])first, 1, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), 0, "the oldest export went first");
    traces_result_free(res);
    traces_reader_close(r);
    /* and more ingest keeps the WAL within its budget between passes */
    ingest_random_blobs(s, 40, now, 130, 0);
    cr_assert_leq(file_bytes("-wal"), traces_wal_budget(cap) + 256 * 1024,
                  "the WAL is cut back at checkpoints (%lld)", (long long)file_bytes("-wal"));
    traces_retention_run(s, (int64_t)(now / MS));
    cr_assert_leq(file_bytes("") + file_bytes("-wal"), cap);
    traces_close(s);
}

/* ---- offline check ---- */

static int run_check(int repair, char *out, size_t cap) {
    FILE *f = tmpfile();
    int n = traces_check(dir, repair, f);
    rewind(f);
    size_t got = fread(out, 1, cap - 1, f);
    out[got] = 0;
    fclose(f);
    return n;
}

Test(traces_integrity, check_lists_and_repairs_damage) {
    char rep[4096];
    dir[0] = 0;
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    cr_assert_eq(run_check(0, rep, sizeof rep), 0, "%s", rep);
    cr_assert(strstr(rep, "3 chunks checked, 0 damaged"), "%s", rep);
    flip_blob(2, 10);
    cr_assert_eq(run_check(0, rep, sizeof rep), 1, "%s", rep);
    cr_assert(strstr(rep, "chunk 2: checksum mismatch"), "%s", rep);
    cr_assert_eq(run_check(0, rep, sizeof rep), 1, "without --repair nothing moves");
    cr_assert_eq(run_check(1, rep, sizeof rep), 1, "%s", rep);
    cr_assert(strstr(rep, "moved to the quarantine table"), "%s", rep);
    cr_assert_eq(run_check(0, rep, sizeof rep), 0, "%s", rep);
    cr_assert(strstr(rep, "2 chunks checked, 0 damaged; 1 chunks already in quarantine"), "%s", rep);
    /* the store opens and serves the rest */
    s = t_open(dir, NULL);
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    traces_result *res;
    char err[256];
    cr_assert_eq(traces_get(r, (const uint8_t(*)[16])tids, 3, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(traces_result_count(res), 2);
    traces_result_free(res);
    traces_reader_close(r);
    traces_close(s);
}

Test(traces_integrity, check_reports_page_damage_and_foreign_files) {
    char rep[4096];
    cr_assert_eq(run_check(0, rep, sizeof rep), 0, "an empty dir is intact");
    dir[0] = 0;
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    /* damage a B-tree page of the operation table: its page type byte */
    char path[300];
    snprintf(path, sizeof path, "%s/traces.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    int64_t root = q1(db, "SELECT rootpage FROM sqlite_master WHERE name='operation'");
    int64_t psize = q1(db, "PRAGMA page_size");
    sqlite3_close(db);
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    fseek(f, (long)((root - 1) * psize), SEEK_SET);
    fputc(0x6b, f);
    fclose(f);
    int n = run_check(0, rep, sizeof rep);
    cr_assert_gt(n, 0, "%s", rep);
    cr_assert(strstr(rep, "integrity_check:"), "%s", rep);
    cr_assert(strstr(rep, ".recover"), "%s", rep);
    /* not a database at all */
    f = fopen(path, "wb");
    fputs("not a database, just text that is long enough to be a header of something else entirely", f);
    fclose(f);
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    cr_assert_eq(run_check(0, rep, sizeof rep), 1, "%s", rep);
    cr_assert(strstr(rep, "not a readable SQLite database"), "%s", rep);
}

Test(traces_integrity, damaged_operation_rows_are_left_out_of_the_lists) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    tr_selfmon_reset();
    /* as a flipped byte would: the name changes, its stored checksum does not */
    exec_db("UPDATE operation SET name = 'oq' WHERE service = 'svc-1'");
    s = t_open(dir, NULL);
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    char err[256];
    traces_strings l;
    cr_assert_eq(traces_services(r, &l, err, sizeof err), 0, "%s", err);
    cr_assert_eq(l.n, 2, "svc-1's only row is damaged");
    cr_assert_str_eq(l.v[0], "svc-0");
    cr_assert_str_eq(l.v[1], "svc-2");
    traces_strings_free(&l);
    traces_operations o;
    cr_assert_eq(traces_operations_list(r, NULL, -1, &o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(o.n, 2);
    for (size_t i = 0; i < o.n; i++)
        cr_assert_str_eq(o.v[i].name, "op", "never the damaged name");
    traces_operations_free(&o);
    cr_assert_geq(metric("tricorder_storage_errors_total{store=\"traces\",kind=\"corrupt\"}"), 1);
    traces_reader_close(r);
    traces_close(s);
    char rep[2048];
    cr_assert_eq(run_check(0, rep, sizeof rep), 1, "%s", rep);
    cr_assert(strstr(rep, "operation row (svc-1, oq, kind 2): checksum mismatch"), "%s", rep);
}

Test(traces_integrity, dependencies_name_damaged_chunks) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    traces_close(s);
    tr_selfmon_reset();
    flip_blob(1, 9);
    s = t_open(dir, NULL);
    traces_reader *r = traces_reader_open(s, (char[256]){0}, 256);
    traces_dependencies d;
    char err[256];
    cr_assert_eq(traces_dependencies_list(r, 0, INT64_MAX, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.ndamaged, 1);
    cr_assert_eq(d.damaged[0], 1);
    traces_dependencies_free(&d);
    traces_reader_close(r);
    traces_close(s);
}

/* A crash image: the files as they are while the store is open (the commits still in the
 * WAL), copied to a second dir. */
Test(traces_integrity, check_reports_wal_frames_recovery_would_drop) {
    traces_store *s = t_open(dir, NULL);
    uint8_t tids[3][16];
    ingest_services(s, 3, tids);
    char img[300], cmd[1300];
    snprintf(img, sizeof img, "%s/img", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/traces.db' '%s/traces.db-wal' '%s/'", img, dir, dir,
             img);
    cr_assert_eq(system(cmd), 0);
    traces_close(s);
    /* flip a byte in the page data of the last frames (the third export's commit) */
    char wal[400];
    snprintf(wal, sizeof wal, "%s/traces.db-wal", img);
    FILE *f = fopen(wal, "r+b");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    cr_assert_gt(len, 32 + 2 * (24 + 4096));
    long at = len - (24 + 4096) * 2 + 24 + 100; /* inside the page of the second-to-last frame */
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x01, f);
    fclose(f);
    traces_wal_report w;
    char dbpath[400];
    snprintf(dbpath, sizeof dbpath, "%s/traces.db", img);
    cr_assert_eq(traces_wal_scan(dbpath, &w), 0);
    cr_assert_geq(w.bad_frame, 1);
    cr_assert_geq(w.commits_dropped, 1);
    char rep[2048];
    FILE *r = tmpfile();
    int n = traces_check(img, 0, r);
    rewind(r);
    rep[fread(rep, 1, sizeof rep - 1, r)] = 0;
    fclose(r);
    cr_assert_geq(n, 1, "%s", rep);
    cr_assert(strstr(rep, "fails its checksum: SQLite's recovery keeps"), "%s", rep);
    /* --repair opens it writable (recovery, then a checkpoint at close): a copy is kept first */
    r = tmpfile();
    n = traces_check(img, 1, r);
    rewind(r);
    rep[fread(rep, 1, sizeof rep - 1, r)] = 0;
    fclose(r);
    cr_assert_geq(n, 1, "%s", rep);
    const char *kept = strstr(rep, "a copy of the WAL is kept as ");
    cr_assert(kept, "%s", rep);
    char copy[512];
    cr_assert_eq(sscanf(kept + strlen("a copy of the WAL is kept as "), "%511s", copy), 1);
    FILE *cf = fopen(copy, "rb");
    cr_assert(cf, "%s exists", copy);
    fseek(cf, 0, SEEK_END);
    cr_assert_eq(ftell(cf), len, "the whole damaged WAL");
    fclose(cf);
}
