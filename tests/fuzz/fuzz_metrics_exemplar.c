/* Fuzz target: replay of exemplar WAL records (the payload of a WAL_EXEMPLARS record) into a
 * small ring. Invariant: any bytes are replayed or refused, never a crash or an overrun; the
 * ring they leave, written out as checkpoint records and replayed into a fresh store, is the
 * same ring. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_int.h"

static tsdb *store(void) {
    tsdb *db = calloc(1, sizeof *db);
    char err[128];
    if (!db || head_init(&db->h) || ex_init(&db->ex, 8, err, sizeof err)) abort();
    return db;
}

static void drop(tsdb *db) {
    ex_free(&db->ex);
    head_free(&db->h);
    free(db);
}

/* Everything a query over all series returns, as bytes. */
static void dump(tsdb *db, bvec *out) {
    tsdb_exemplars *r;
    char err[128];
    if (tsdb_query_exemplars(db, NULL, NULL, 0, INT64_MIN, INT64_MAX, &r, err, sizeof err)) abort();
    for (size_t i = 0; i < tsdb_exemplars_len(r); i++) {
        const tsdb_label *l;
        size_t nl = tsdb_exemplars_series(r, i, &l);
        for (size_t k = 0; k < nl; k++) {
            bv_put(out, l[k].name, strlen(l[k].name) + 1);
            bv_put(out, l[k].value, strlen(l[k].value) + 1);
        }
        const tsdb_exemplar *ex;
        size_t n = tsdb_exemplars_of(r, i, &ex);
        for (size_t k = 0; k < n; k++) {
            bv_put(out, &ex[k].t_ms, sizeof ex[k].t_ms);
            bv_put(out, &ex[k].value, sizeof ex[k].value);
            for (size_t j = 0; j < ex[k].n_labels; j++) {
                bv_put(out, ex[k].labels[j].name, strlen(ex[k].labels[j].name) + 1);
                bv_put(out, ex[k].labels[j].value, strlen(ex[k].labels[j].value) + 1);
            }
        }
        bv_u8(out, 0xff);
    }
    tsdb_exemplars_free(r);
}

static const ptrmap no_refs;

static void rec(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    if (type != WAL_EXEMPLARS) abort();
    ex_replay(ctx, pl, len, &no_refs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    tsdb *a = store(), *b = store();
    ex_replay(a, data, size, &no_refs);
    bvec ck = {0}, da = {0}, db = {0};
    ex_checkpoint(a, &ck);
    if (ck.err || wal_scan(ck.p, ck.len, rec, b) != ck.len) abort();
    dump(a, &da);
    dump(b, &db);
    if (da.err || db.err || da.len != db.len || (da.len && memcmp(da.p, db.p, da.len) != 0)) abort();
    tsdb_exemplar_stats sa, sb;
    tsdb_get_exemplar_stats(a, &sa);
    tsdb_get_exemplar_stats(b, &sb);
    if (sa.in_storage != sb.in_storage || sa.series != sb.series || sa.in_storage > 8) abort();
    bv_free(&ck);
    bv_free(&da);
    bv_free(&db);
    drop(a);
    drop(b);
    return 0;
}
