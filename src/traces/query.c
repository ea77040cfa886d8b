/* Reading the trace store: service and operation lists, trace search (a walk over buckets of
 * chunks, newest first, intersecting posting bitmaps, with an exact check of every span in
 * the chunks it decodes), traces by id, and service dependencies. Each reader has its own
 * read-only connection, so a search never waits for ingest and ingest never waits for a
 * search (WAL); a search or lookup reads one snapshot (a read transaction), so a bucket being
 * sealed meanwhile is seen either before or after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <zstd.h>

#include "traces_int.h"
#include "util/log.h"

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

int reader_prepare(traces_reader *r, char *err, size_t errlen) {
    r->dctx = ZSTD_createDCtx();
    if (!r->dctx) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return prep(r->db, "SELECT data,rawlen,nspans,crc FROM chunk WHERE id=?", &r->st_chunk, err, errlen) ||
                   prep(r->db, "SELECT chunk FROM trace_post WHERE b=?1 AND tid=?2", &r->st_trace, err,
                        errlen) ||
                   prep(r->db, "SELECT chunk,tids FROM trace_idx WHERE chunk BETWEEN ?1 AND ?2",
                        &r->st_trace_fwd, err, errlen) ||
                   prep(r->db, "SELECT bits,bounds FROM sum_post WHERE b=?1 AND k=?2", &r->st_sum_post, err,
                        errlen) ||
                   prep(r->db, "SELECT bits FROM tag_post WHERE b=?1 AND h=?2", &r->st_tag_post, err,
                        errlen) ||
                   prep(r->db, "SELECT chunk,ents FROM sum_idx WHERE chunk BETWEEN ?1 AND ?2", &r->st_sum_fwd,
                        err, errlen) ||
                   prep(r->db, "SELECT chunk,keys FROM tag_idx WHERE chunk BETWEEN ?1 AND ?2", &r->st_tag_fwd,
                        err, errlen) ||
                   prep(r->db,
                        "SELECT id,min_start,max_start,min_dur,max_dur FROM chunk WHERE id BETWEEN ?1 AND ?2",
                        &r->st_all, err, errlen) ||
                   prep(r->db,
                        "SELECT (SELECT min(id) FROM chunk), (SELECT max(id) FROM chunk), (SELECT v FROM "
                        "meta WHERE k='open_bucket')",
                        &r->st_range, err, errlen) ||
                   prep(r->db, "BEGIN", &r->st_begin, err, errlen) ||
                   prep(r->db, "COMMIT", &r->st_end, err, errlen)
               ? -1
               : 0;
}

void reader_finalize(traces_reader *r) {
    sqlite3_stmt *all[] = {r->st_chunk,    r->st_trace,   r->st_trace_fwd, r->st_sum_post,
                           r->st_tag_post, r->st_sum_fwd, r->st_tag_fwd,   r->st_all,
                           r->st_range,    r->st_begin,   r->st_end};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    ZSTD_freeDCtx(r->dctx);
}

static int run_stmt(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

typedef struct qctx qctx;
static void snapshot_end(qctx *q);

static void db_err(traces_reader *r, char *err, size_t errlen) {
    snprintf(err, errlen, "trace store read failed: %s", sqlite3_errmsg(r->db));
}

/* ---- small lists ---- */

/* Whether an operation row (service, name, kind, crc) checks out. A damaged one is left out
 * of every list (the name it reads as is not one that was sent), logged and counted; the
 * true row is written again when the writer next refreshes it (hourly, or at restart).
 * Rows written before schema 3 have no CRC. */
static int operation_row_ok(sqlite3_stmt *st) {
    if (sqlite3_column_type(st, 3) == SQLITE_NULL) return 1;
    const char *svc = (const char *)sqlite3_column_text(st, 0),
               *name = (const char *)sqlite3_column_text(st, 1);
    if (svc && name &&
        operation_crc(svc, name, sqlite3_column_int(st, 2)) == (uint32_t)sqlite3_column_int64(st, 3))
        return 1;
    tr_storage_error("traces", "corrupt");
    char q1[200], q2[200];
    TR_ERROR_LIMITED("operation", "trace store: an operation row fails its checksum; left out of the lists",
                     "service=%s operation=%s kind=%d", tr_log_quote(q1, sizeof q1, svc ? svc : ""),
                     tr_log_quote(q2, sizeof q2, name ? name : ""), sqlite3_column_int(st, 2));
    return 0;
}

void traces_strings_free(traces_strings *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void traces_operations_free(traces_operations *o) {
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].name);
    free(o->v);
    o->v = NULL;
    o->n = 0;
}

void traces_dependencies_free(traces_dependencies *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].parent);
        free(d->v[i].child);
    }
    free(d->v);
    d->v = NULL;
    d->n = 0;
}

int traces_services(traces_reader *r, traces_strings *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT service, name, kind, crc FROM operation ORDER BY service", -1, &st,
                           NULL) != SQLITE_OK) {
        db_err(r, err, errlen);
        return -1;
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *svc = (const char *)sqlite3_column_text(st, 0);
        if (!svc || !operation_row_ok(st)) continue;
        if (out->n && strcmp(out->v[out->n - 1], svc) == 0) continue; /* distinct, rows in service order */
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(out->v, cap * sizeof *nv);
            if (!nv) {
                rc = SQLITE_NOMEM;
                break;
            }
            out->v = nv;
        }
        out->v[out->n] = strdup(svc);
        if (!out->v[out->n]) {
            rc = SQLITE_NOMEM;
            break;
        }
        out->n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "trace store read failed: %s", sqlite3_errstr(rc));
        traces_strings_free(out);
        return -1;
    }
    return 0;
}

int traces_operations_list(traces_reader *r, const char *service, int kind, traces_operations *out, char *err,
                           size_t errlen) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    const char *sql = "SELECT service,name,kind,crc FROM operation WHERE (?1 IS NULL OR service=?1) AND (?2 "
                      "< 0 OR kind=?2) ORDER BY name,kind";
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_err(r, err, errlen);
        return -1;
    }
    if (service) sqlite3_bind_text(st, 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, kind);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!operation_row_ok(st)) continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            traces_operation *nv = realloc(out->v, cap * sizeof *nv);
            if (!nv) {
                rc = SQLITE_NOMEM;
                break;
            }
            out->v = nv;
        }
        out->v[out->n].name = strdup((const char *)sqlite3_column_text(st, 1));
        out->v[out->n].kind = sqlite3_column_int(st, 2);
        if (!out->v[out->n].name) {
            rc = SQLITE_NOMEM;
            break;
        }
        out->n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "trace store read failed: %s", sqlite3_errstr(rc));
        traces_operations_free(out);
        return -1;
    }
    return 0;
}

/* ---- results ---- */

typedef struct kept_chunk {
    int64_t id;
    tr_arena *arena;
    chunk_view *view;
} kept_chunk;

struct qctx {
    traces_reader *r;
    traces_result *res;
    kept_chunk *chunks; /* decoded and kept for the result */
    size_t nchunks, capchunks;
    int64_t lo_id, hi_id; /* the chunk ids in the snapshot (hi < lo: none) */
    int64_t open_b;       /* buckets from here on are not sealed yet */
};

/* Ends the read snapshot (if open). */
static void snapshot_end(qctx *q) {
    if (!sqlite3_get_autocommit(q->r->db)) run_stmt(q->r->st_end);
}

size_t traces_result_count(const traces_result *res) { return res ? res->n : 0; }
size_t traces_result_damaged(const traces_result *res, const int64_t **ids) {
    if (ids) *ids = res ? res->damaged : NULL;
    return res ? res->ndamaged : 0;
}
const traces_trace *traces_result_trace(const traces_result *res, size_t i) { return &res->traces[i]; }

void traces_result_free(traces_result *res) {
    if (!res) return;
    for (size_t i = 0; i < res->nchunk_arenas; i++)
        tr_arena_free(res->chunk_arenas[i]);
    free(res->chunk_arenas);
    tr_arena_free(res->arena);
    free(res);
}

static traces_result *result_new(void) {
    traces_result *res = calloc(1, sizeof *res);
    if (!res) return NULL;
    res->arena = tr_arena_new(0);
    if (!res->arena) {
        free(res);
        return NULL;
    }
    return res;
}

/* Notes a damaged chunk for the answer being built and has the writer quarantine it. */
static void reader_damage(traces_reader *r, int64_t id, const char *why) {
    for (size_t i = 0; i < r->ndmg; i++)
        if (r->dmg[i] == id) return;
    if (r->ndmg < TRACES_MAX_DAMAGE_REPORT) r->dmg[r->ndmg++] = id;
    traces_report_damage(r->s, id, why);
}

/* Opens chunk `id` into arena a; returns NULL when missing (expired meanwhile) or damaged
 * (its checksum or its bytes: it is then noted in r->dmg and sent to quarantine, never
 * served); *dberr set on a database error. */
static chunk_view *load_chunk(traces_reader *r, int64_t id, tr_arena *a, int *dberr) {
    sqlite3_stmt *st = r->st_chunk;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    chunk_view *v = NULL;
    if (rc == SQLITE_ROW) {
        int has_crc = sqlite3_column_type(st, 3) != SQLITE_NULL;
        const char *why = chunk_check(id, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                                      sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2), has_crc,
                                      (uint32_t)sqlite3_column_int64(st, 3), a, r->dctx, &v);
        if (why) {
            v = NULL;
            reader_damage(r, id, why);
        }
    } else if (rc != SQLITE_DONE) {
        *dberr = 1;
    }
    sqlite3_reset(st);
    return v;
}

/* A chunk opened for the result, cached by id. */
static chunk_view *keep_chunk(qctx *q, int64_t id, int *dberr) {
    for (size_t i = 0; i < q->nchunks; i++)
        if (q->chunks[i].id == id) return q->chunks[i].view;
    if (q->nchunks == q->capchunks) {
        size_t nc = q->capchunks ? q->capchunks * 2 : 16;
        kept_chunk *n = realloc(q->chunks, nc * sizeof *n);
        if (!n) return NULL;
        q->chunks = n;
        q->capchunks = nc;
    }
    tr_arena *a = tr_arena_new(0);
    if (!a) return NULL;
    chunk_view *v = load_chunk(q->r, id, a, dberr);
    if (!v) {
        tr_arena_free(a);
        return NULL;
    }
    q->chunks[q->nchunks++] = (kept_chunk){id, a, v};
    return v;
}

/* Adds a chunk opened elsewhere to the cache (taking its arena). Returns 0 or -1 (OOM: the
 * arena is then freed). */
static int adopt_chunk(qctx *q, int64_t id, tr_arena *a, chunk_view *v) {
    if (q->nchunks == q->capchunks) {
        size_t nc = q->capchunks ? q->capchunks * 2 : 16;
        kept_chunk *n = realloc(q->chunks, nc * sizeof *n);
        if (!n) {
            tr_arena_free(a);
            return -1;
        }
        q->chunks = n;
        q->capchunks = nc;
    }
    q->chunks[q->nchunks++] = (kept_chunk){id, a, v};
    return 0;
}

static void qctx_fini(qctx *q) {
    for (size_t i = 0; i < q->nchunks; i++)
        tr_arena_free(q->chunks[i].arena);
    free(q->chunks);
}

static int add_span(traces_result *res, traces_trace *t, size_t *cap, traces_span sp) {
    if (t->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        traces_span *n = tr_arena_alloc(res->arena, nc * sizeof *n);
        if (!n) return -1;
        if (t->n) memcpy(n, t->spans, t->n * sizeof *n);
        t->spans = n;
        *cap = nc;
    }
    t->spans[t->n++] = sp;
    return 0;
}

static int i64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Opens the read snapshot and learns its chunk id range. Returns 0 or -1. */
static int snapshot_begin(qctx *q) {
    traces_reader *r = q->r;
    r->ndmg = 0;
    if (run_stmt(r->st_begin) != SQLITE_DONE) return -1;
    int rc = sqlite3_step(r->st_range);
    if (rc == SQLITE_ROW) {
        int empty = sqlite3_column_type(r->st_range, 0) == SQLITE_NULL;
        q->lo_id = empty ? 1 : sqlite3_column_int64(r->st_range, 0);
        q->hi_id = empty ? 0 : sqlite3_column_int64(r->st_range, 1);
        q->open_b = sqlite3_column_int64(r->st_range, 2);
    }
    sqlite3_reset(r->st_range);
    if (rc != SQLITE_ROW) {
        snapshot_end(q);
        return -1;
    }
    return 0;
}

#define TRACE_MAX_CHUNKS 256 /* chunks gathered per trace (bounds the work of one lookup) */

/* The chunks holding parts of one wanted trace. */
typedef struct want {
    const uint8_t *id;
    int64_t chunks[TRACE_MAX_CHUNKS];
    size_t n;
} want;

static void want_add(want *w, int64_t chunk) {
    if (w->n < TRACE_MAX_CHUNKS) w->chunks[w->n++] = chunk;
}

/* Finds the chunks of every wanted trace: the open bucket through its per-chunk trace lists
 * (one pass for all), sealed buckets through trace_post (one probe per trace bucket). */
static int find_trace_chunks(qctx *q, want *w, size_t n) {
    traces_reader *r = q->r;
    if (q->hi_id < q->lo_id) return 0;
    int64_t open_lo = q->open_b * CHUNK_BUCKET;
    int rc;
    if (q->hi_id >= open_lo) {
        sqlite3_bind_int64(r->st_trace_fwd, 1, open_lo);
        sqlite3_bind_int64(r->st_trace_fwd, 2, q->hi_id);
        while ((rc = sqlite3_step(r->st_trace_fwd)) == SQLITE_ROW) {
            int64_t chunk = sqlite3_column_int64(r->st_trace_fwd, 0);
            const uint8_t *p = sqlite3_column_blob(r->st_trace_fwd, 1);
            size_t nt = (size_t)sqlite3_column_bytes(r->st_trace_fwd, 1) / 8;
            for (size_t i = 0; p && i < n; i++)
                if (blob_find(p, nt, 8, (uint64_t)key_trace(w[i].id)) >= 0) want_add(&w[i], chunk);
        }
        sqlite3_reset(r->st_trace_fwd);
        if (rc != SQLITE_DONE) return -1;
    }
    if (q->lo_id >= open_lo) return 0;
    int64_t top = (open_lo - 1 < q->hi_id ? open_lo - 1 : q->hi_id) >> TRACE_BUCKET_BITS;
    for (size_t i = 0; i < n; i++) {
        for (int64_t b = top; b >= q->lo_id >> TRACE_BUCKET_BITS; b--) {
            sqlite3_bind_int64(r->st_trace, 1, b);
            sqlite3_bind_int64(r->st_trace, 2, key_trace(w[i].id));
            while ((rc = sqlite3_step(r->st_trace)) == SQLITE_ROW)
                want_add(&w[i], sqlite3_column_int64(r->st_trace, 0));
            sqlite3_reset(r->st_trace);
            if (rc != SQLITE_DONE) return -1;
        }
    }
    return 0;
}

/* Appends the whole traces `ids` (every chunk that holds part of them) to the result, in the
 * order given; unknown ones are left out. Returns 0, or -1 on a database error or OOM. */
static int fetch_traces(qctx *q, const uint8_t (*ids)[16], size_t n) {
    if (!n) return 0;
    want *w = calloc(n, sizeof *w);
    if (!w) return -1;
    for (size_t i = 0; i < n; i++)
        w[i].id = ids[i];
    int ret = -1;
    if (find_trace_chunks(q, w, n)) goto out;
    traces_result *res = q->res;
    for (size_t x = 0; x < n; x++) {
        want *wt = &w[x];
        if (wt->n > 1) qsort(wt->chunks, wt->n, sizeof *wt->chunks, i64_cmp);
        if (res->n == res->cap) {
            size_t nc = res->cap ? res->cap * 2 : 16;
            traces_trace *nt = tr_arena_alloc(res->arena, nc * sizeof *nt);
            if (!nt) goto out;
            if (res->n) memcpy(nt, res->traces, res->n * sizeof *nt);
            res->traces = nt;
            res->cap = nc;
        }
        traces_trace *t = &res->traces[res->n];
        memset(t, 0, sizeof *t);
        memcpy(t->id, wt->id, 16);
        size_t cap = 0;
        for (size_t c = 0; c < wt->n; c++) {
            if (c && wt->chunks[c] == wt->chunks[c - 1]) continue;
            int dberr = 0;
            chunk_view *v = keep_chunk(q, wt->chunks[c], &dberr);
            if (dberr) goto out;
            if (!v) continue;
            for (size_t i = 0; i < chunk_nspans(v); i++) {
                span_peek pk;
                if (chunk_peek(v, i, &pk) || pk.tid_len != 16 || memcmp(pk.tid, wt->id, 16) != 0) continue;
                const traces_pb_span *sp = chunk_span(v, i);
                if (!sp) continue;
                if (add_span(res, t, &cap, (traces_span){sp, chunk_resource(v, i), chunk_scope(v, i)}))
                    goto out;
            }
        }
        if (t->n) res->n++;
    }
    ret = 0;
out:
    free(w);
    return ret;
}

/* Moves the kept chunks' arenas into the result so they live as long as it, with the list of
 * damaged chunks met. */
static int result_adopt(qctx *q) {
    traces_result *res = q->res;
    memcpy(res->damaged, q->r->dmg, q->r->ndmg * sizeof *res->damaged);
    res->ndamaged = q->r->ndmg;
    if (!q->nchunks) return 0;
    res->chunk_arenas = malloc(q->nchunks * sizeof *res->chunk_arenas);
    if (!res->chunk_arenas) return -1;
    for (size_t i = 0; i < q->nchunks; i++) {
        res->chunk_arenas[res->nchunk_arenas++] = q->chunks[i].arena;
        q->chunks[i].arena = NULL;
    }
    return 0;
}

static int64_t elapsed_start(struct timespec *t0) {
    clock_gettime(CLOCK_MONOTONIC, t0);
    return 0;
}

static void observe(traces_reader *r, const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tr_histogram_observe(r->s->m.search_seconds,
                         (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9);
}

int traces_get(traces_reader *r, const uint8_t (*ids)[16], size_t n, traces_result **out, char *err,
               size_t errlen) {
    struct timespec t0;
    elapsed_start(&t0);
    *out = NULL;
    qctx q = {.r = r, .res = result_new()};
    uint8_t(*uniq)[16] = NULL;
    size_t nu = 0;
    if (!q.res) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (snapshot_begin(&q)) {
        db_err(r, err, errlen);
        goto fail;
    }
    uniq = malloc((n ? n : 1) * sizeof *uniq);
    if (!uniq) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t j = 0; j < nu && !dup; j++)
            dup = memcmp(ids[i], uniq[j], 16) == 0;
        if (!dup) memcpy(uniq[nu++], ids[i], 16);
    }
    if (fetch_traces(&q, (const uint8_t(*)[16])uniq, nu) < 0) {
        db_err(r, err, errlen);
        goto fail;
    }
    free(uniq);
    uniq = NULL;
    snapshot_end(&q);
    if (result_adopt(&q)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    qctx_fini(&q);
    *out = q.res;
    observe(r, &t0);
    return 0;
fail:
    free(uniq);
    snapshot_end(&q);
    qctx_fini(&q);
    traces_result_free(q.res);
    return -1;
}

/* ---- search ---- */

typedef struct match_ctx {
    const traces_query *q;
    unsigned char *hit;
    size_t left;
} match_ctx;

static int tag_match(void *ctx, const char *k, const char *v, size_t vlen) {
    match_ctx *m = ctx;
    for (size_t i = 0; i < m->q->ntags; i++) {
        if (m->hit[i]) continue;
        const char *qv = m->q->tag_values[i];
        if (strcmp(m->q->tag_keys[i], k) == 0 && strlen(qv) == vlen && memcmp(qv, v, vlen) == 0) {
            m->hit[i] = 1;
            if (--m->left == 0) return 1;
        }
    }
    return 0;
}

/* The search keys Jaeger v2's storage reads off the span rather than its attributes:
 * `error` (true: status ERROR, false: status OK), `span.status` (OK, ERROR, anything else:
 * unset; any case), `span.kind` (a kind name in any case, anything else: unspecified),
 * `scope.name`, `scope.version`, and `resource.<key>` (that resource attribute only). */
typedef struct special_tags {
    int status; /* -1: no condition, else the OTLP status code wanted */
    int kind;   /* -1: no condition, else the OTLP span kind wanted */
    const char *scope_name, *scope_version;
    const char **res_keys, **res_values;
    size_t nres;
} special_tags;

typedef struct res_match {
    const special_tags *sp;
    unsigned char *hit;
    size_t left;
} res_match;

static int res_tag_match(void *ctx, const char *k, const char *v, size_t vlen) {
    res_match *m = ctx;
    for (size_t i = 0; i < m->sp->nres; i++) {
        if (m->hit[i] || strcmp(m->sp->res_keys[i], k)) continue;
        if (strlen(m->sp->res_values[i]) == vlen && memcmp(m->sp->res_values[i], v, vlen) == 0) {
            m->hit[i] = 1;
            if (--m->left == 0) return 1;
        }
    }
    return 0;
}

static int specials_match(const special_tags *st, chunk_view *v, size_t i, const span_peek *pk) {
    if (st->status >= 0 && (int)pk->status_code != st->status) return 0;
    if (st->kind >= 0 && (int)pk->kind != st->kind) return 0;
    if (st->scope_name || st->scope_version) {
        const traces_pb_scope *sc = chunk_scope(v, i);
        const char *n = sc && sc->name ? sc->name : "", *ver = sc && sc->version ? sc->version : "";
        if (st->scope_name && strcmp(st->scope_name, n)) return 0;
        if (st->scope_version && strcmp(st->scope_version, ver)) return 0;
    }
    if (st->nres) {
        unsigned char hit[64] = {0};
        res_match m = {st, hit, st->nres};
        if (resource_each_tag(chunk_resource(v, i), res_tag_match, &m) != 1) return 0;
    }
    return 1;
}

/* Whether span i of a chunk meets every criterion of q: the checks that need no unpacking first, then a
 * byte-level test that rules out most spans without a wanted tag, then the exact tag check on the unpacked
 * span. Returns 1 (match, *start set), 0, or -1 (out of memory). */
static int span_matches_view(const traces_query *q, const special_tags *sx, chunk_view *v, size_t i,
                             unsigned char *hit, int64_t *start) {
    span_peek pk;
    if (chunk_peek(v, i, &pk) || pk.tid_len != 16) return 0;
    if (q->service && strcmp(q->service, chunk_service(v, i)) != 0) return 0;
    if (q->operation &&
        (strlen(q->operation) != pk.name_len || memcmp(q->operation, pk.name, pk.name_len) != 0))
        return 0;
    int64_t st = pk.start > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)pk.start;
    if (st < q->start_ns || st > q->end_ns) return 0;
    int64_t du = pk.end > pk.start ? (int64_t)(pk.end - pk.start) : 0;
    if (q->min_dur_ns > 0 && du < q->min_dur_ns) return 0;
    if (q->max_dur_ns > 0 && du > q->max_dur_ns) return 0;
    if (!specials_match(sx, v, i, &pk)) return 0;
    *start = (int64_t)pk.start;
    if (q->ntags == 0) return 1;
    for (size_t t = 0; t < q->ntags; t++)
        if (!chunk_may_have_tag(v, i, q->tag_keys[t], q->tag_values[t])) return 0;
    const traces_pb_span *sp = chunk_span(v, i);
    if (!sp) return 0;
    memset(hit, 0, q->ntags);
    match_ctx m = {q, hit, q->ntags};
    return span_each_tag(sp, chunk_resource(v, i), chunk_scope(v, i), 1, tag_match, &m) == 1;
}

typedef struct found {
    uint8_t id[16];
    int64_t start;
} found;

static int found_cmp(const void *a, const void *b) {
    const found *x = a, *y = b;
    return x->start < y->start ? 1 : x->start > y->start ? -1 : 0;
}

/* What a bucket offers a search: the chunks that may match (bit i: chunk b*CHUNK_BUCKET+i)
 * and, for those with known bounds, the span start and duration range to prune with. */
typedef struct bucket_cands {
    uint64_t bits, bounded;
    int64_t bounds[CHUNK_BUCKET][SUM_BOUNDS];
} bucket_cands;

static int popcount64(uint64_t v) { return __builtin_popcountll(v); }

/* Fills c for bucket b from the posting rows (sealed) or the per-chunk rows (open). Returns
 * 0, or -1 on a database error. */
static int bucket_lookup(qctx *qc, int64_t b, const uint64_t *tagk, size_t ntags, int have_sum, uint64_t sumk,
                         bucket_cands *c) {
    traces_reader *r = qc->r;
    int64_t lo = b * CHUNK_BUCKET, hi = lo + CHUNK_BUCKET - 1;
    int rc;
    c->bits = ~0ULL;
    c->bounded = 0;
    if (b < qc->open_b) {
        /* sealed: one posting row per key; the rarest usually empties the set at once */
        for (size_t i = 0; i < ntags && c->bits; i++) {
            sqlite3_bind_int64(r->st_tag_post, 1, b);
            sqlite3_bind_int64(r->st_tag_post, 2, (int64_t)tagk[i]);
            rc = sqlite3_step(r->st_tag_post);
            c->bits &= rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(r->st_tag_post, 0) : 0;
            sqlite3_reset(r->st_tag_post);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) return -1;
        }
        if (have_sum && c->bits) {
            sqlite3_bind_int64(r->st_sum_post, 1, b);
            sqlite3_bind_int64(r->st_sum_post, 2, (int64_t)sumk);
            rc = sqlite3_step(r->st_sum_post);
            if (rc == SQLITE_ROW) {
                uint64_t bits = (uint64_t)sqlite3_column_int64(r->st_sum_post, 0);
                const uint8_t *p = sqlite3_column_blob(r->st_sum_post, 1);
                size_t n = (size_t)sqlite3_column_bytes(r->st_sum_post, 1) / (8 * SUM_BOUNDS);
                c->bits &= bits;
                if (p && n == (size_t)popcount64(bits)) { /* else unknown bounds: no pruning */
                    size_t e = 0;
                    for (int off = 0; off < CHUNK_BUCKET; off++) {
                        if (!(bits >> off & 1)) continue;
                        for (int x = 0; x < SUM_BOUNDS; x++)
                            c->bounds[off][x] = (int64_t)get_u64(p + (e * SUM_BOUNDS + x) * 8);
                        e++;
                    }
                    c->bounded = bits;
                }
            } else {
                c->bits = 0;
            }
            sqlite3_reset(r->st_sum_post);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) return -1;
        }
    } else {
        /* open: the per-chunk rows of this bucket hold the same facts as sorted key lists */
        if (ntags) {
            uint64_t got = 0;
            sqlite3_bind_int64(r->st_tag_fwd, 1, lo);
            sqlite3_bind_int64(r->st_tag_fwd, 2, hi);
            while ((rc = sqlite3_step(r->st_tag_fwd)) == SQLITE_ROW) {
                int off = (int)(sqlite3_column_int64(r->st_tag_fwd, 0) & (CHUNK_BUCKET - 1));
                const uint8_t *p = sqlite3_column_blob(r->st_tag_fwd, 1);
                size_t n = (size_t)sqlite3_column_bytes(r->st_tag_fwd, 1) / 8;
                size_t i = 0;
                while (i < ntags && p && blob_find(p, n, 8, tagk[i]) >= 0)
                    i++;
                if (i == ntags) got |= 1ULL << off;
            }
            sqlite3_reset(r->st_tag_fwd);
            if (rc != SQLITE_DONE) return -1;
            c->bits &= got;
        }
        if (have_sum && c->bits) {
            uint64_t got = 0;
            sqlite3_bind_int64(r->st_sum_fwd, 1, lo);
            sqlite3_bind_int64(r->st_sum_fwd, 2, hi);
            while ((rc = sqlite3_step(r->st_sum_fwd)) == SQLITE_ROW) {
                int off = (int)(sqlite3_column_int64(r->st_sum_fwd, 0) & (CHUNK_BUCKET - 1));
                const uint8_t *p = sqlite3_column_blob(r->st_sum_fwd, 1);
                size_t n = (size_t)sqlite3_column_bytes(r->st_sum_fwd, 1) / SUM_ENT_BYTES;
                long e = p ? blob_find(p, n, SUM_ENT_BYTES, sumk) : -1;
                if (e < 0) continue;
                got |= 1ULL << off;
                for (int x = 0; x < SUM_BOUNDS; x++)
                    c->bounds[off][x] = (int64_t)get_u64(p + (size_t)e * SUM_ENT_BYTES + 8 * (x + 1));
            }
            sqlite3_reset(r->st_sum_fwd);
            if (rc != SQLITE_DONE) return -1;
            c->bits &= got;
            c->bounded = got;
        }
    }
    if (!have_sum && c->bits) {
        /* no service: the chunks that exist, with their own bounds */
        uint64_t got = 0;
        sqlite3_bind_int64(r->st_all, 1, lo);
        sqlite3_bind_int64(r->st_all, 2, hi);
        while ((rc = sqlite3_step(r->st_all)) == SQLITE_ROW) {
            int off = (int)(sqlite3_column_int64(r->st_all, 0) & (CHUNK_BUCKET - 1));
            got |= 1ULL << off;
            for (int x = 0; x < SUM_BOUNDS; x++)
                c->bounds[off][x] = sqlite3_column_int64(r->st_all, x + 1);
        }
        sqlite3_reset(r->st_all);
        if (rc != SQLITE_DONE) return -1;
        c->bits &= got;
        c->bounded = got;
    }
    return 0;
}

static int search_run(traces_reader *r, const traces_query *q, const special_tags *stp, const char **idx_k,
                      const char **idx_v, size_t nidx, traces_result **out, char *err, size_t errlen,
                      struct timespec *t0p);

static int upper_eq(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

/* Splits the tags of `in` into the special keys (st) and the ordinary ones (out's tags, in
 * keys/values, which need in->ntags entries), and adds to idx_k/idx_v one indexed tag per
 * special condition that implies it (so sealed buckets are still pruned by the index). */
static size_t split_tags(const traces_query *in, traces_query *out, special_tags *st, const char **keys,
                         const char **values, const char **idx_k, const char **idx_v) {
    static const char *const kinds[] = {"unspecified", "internal", "server",
                                        "client",      "producer", "consumer"};
    size_t n = 0, nidx = 0;
    *out = *in;
    memset(st, 0, sizeof *st);
    st->status = st->kind = -1;
    st->res_keys = idx_k + in->ntags; /* the second half of the index arrays */
    st->res_values = idx_v + in->ntags;
    for (size_t i = 0; i < in->ntags; i++) {
        const char *k = in->tag_keys[i], *v = in->tag_values[i];
        if (!strcmp(k, "error") && (!strcmp(v, "true") || !strcmp(v, "false"))) {
            st->status = v[0] == 't' ? 2 : 1;
        } else if (!strcmp(k, "span.status")) {
            st->status = upper_eq(v, "OK") ? 1 : upper_eq(v, "ERROR") ? 2 : 0;
        } else if (!strcmp(k, "span.kind")) {
            st->kind = 0;
            for (int j = 1; j < 6; j++)
                if (upper_eq(v, kinds[j])) st->kind = j;
        } else if (!strcmp(k, "scope.name")) {
            st->scope_name = v;
        } else if (!strcmp(k, "scope.version")) {
            st->scope_version = v;
        } else if (!strncmp(k, "resource.", 9) && k[9] && st->nres < 64) {
            st->res_keys[st->nres] = k + 9;
            st->res_values[st->nres] = v;
            st->nres++;
        } else {
            keys[n] = k;
            values[n] = v;
            n++;
            continue;
        }
    }
    /* what the writer indexed for spans meeting the special conditions */
    if (st->status == 1) idx_k[nidx] = "otel.status_code", idx_v[nidx++] = "OK";
    if (st->status == 2) idx_k[nidx] = "otel.status_code", idx_v[nidx++] = "ERROR";
    if (st->kind > 0) idx_k[nidx] = "span.kind", idx_v[nidx++] = kinds[st->kind];
    if (st->scope_name && *st->scope_name) idx_k[nidx] = "otel.scope.name", idx_v[nidx++] = st->scope_name;
    if (st->scope_version && *st->scope_version)
        idx_k[nidx] = "otel.scope.version", idx_v[nidx++] = st->scope_version;
    for (size_t i = 0; i < st->nres; i++)
        idx_k[nidx] = st->res_keys[i], idx_v[nidx++] = st->res_values[i];
    out->tag_keys = keys;
    out->tag_values = values;
    out->ntags = n;
    return nidx;
}

int traces_search(traces_reader *r, const traces_query *q_in, traces_result **out, char *err, size_t errlen) {
    struct timespec t0;
    elapsed_start(&t0);
    *out = NULL;
    size_t nt = q_in->ntags + 1;
    const char **keys = calloc(nt, sizeof *keys), **values = calloc(nt, sizeof *values);
    const char **idx_k = calloc(2 * nt, sizeof *idx_k), **idx_v = calloc(2 * nt, sizeof *idx_v);
    if (!keys || !values || !idx_k || !idx_v) {
        free(keys), free(values), free(idx_k), free(idx_v);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    traces_query qv;
    special_tags st;
    size_t nidx = split_tags(q_in, &qv, &st, keys, values, idx_k, idx_v);
    const traces_query *q = &qv;
    int rc = search_run(r, q, &st, idx_k, idx_v, nidx, out, err, errlen, &t0);
    free(keys), free(values), free(idx_k), free(idx_v);
    return rc;
}

static int search_run(traces_reader *r, const traces_query *q, const special_tags *stp, const char **idx_k,
                      const char **idx_v, size_t nidx, traces_result **out, char *err, size_t errlen,
                      struct timespec *t0p) {
    special_tags st = *stp;
    struct timespec t0 = *t0p;
    qctx qc = {.r = r, .res = result_new()};
    uint64_t *tagk = NULL;
    unsigned char *hit = NULL;
    found *fl = NULL, *cf = NULL;
    int64_t cf_start = 0;
    size_t nfl = 0, capfl = 0, capcf = 0;
    u64set seen = {0};
    bucket_cands *bc = NULL;
    int ok = 0;
    if (!qc.res) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t limit = q->limit > 0 ? (size_t)q->limit : 100;
    tagk = calloc(q->ntags + nidx + 1, sizeof *tagk);
    hit = calloc(q->ntags + 1, 1);
    bc = malloc(sizeof *bc);
    if (!tagk || !hit || !bc) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < q->ntags; i++)
        tagk[i] = key_tag(q->tag_keys[i], q->tag_values[i], strlen(q->tag_values[i]));
    for (size_t i = 0; i < nidx; i++)
        tagk[q->ntags + i] = key_tag(idx_k[i], idx_v[i], strlen(idx_v[i]));
    /* the summary key: operation within service, else service, else none (every chunk) */
    int have_sum = q->service != NULL;
    uint64_t sumk = 0;
    if (q->service) sumk = q->operation ? key_operation(q->service, q->operation) : key_service(q->service);
    if (snapshot_begin(&qc)) goto dberr;

    for (int64_t b = qc.hi_id >> BUCKET_BITS;
         qc.hi_id >= qc.lo_id && b >= qc.lo_id >> BUCKET_BITS && nfl < limit; b--) {
        if (bucket_lookup(&qc, b, tagk, q->ntags + nidx, have_sum, sumk, bc)) goto dberr;
        for (int off = CHUNK_BUCKET - 1; off >= 0 && nfl < limit; off--) {
            if (!(bc->bits >> off & 1)) continue;
            if (bc->bounded >> off & 1) {
                const int64_t *s = bc->bounds[off]; /* min_start, max_start, min_dur, max_dur */
                if (s[1] < q->start_ns || s[0] > q->end_ns) continue;
                if (q->min_dur_ns > 0 && s[3] < q->min_dur_ns) continue;
                if (q->max_dur_ns > 0 && s[2] > q->max_dur_ns) continue;
            }
            int64_t chunk = b * CHUNK_BUCKET + off;
            /* a candidate: open it and check every span (unpacking only those that need it) */
            tr_arena *a = tr_arena_new(0);
            if (!a) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            int dbe = 0;
            chunk_view *v = load_chunk(r, chunk, a, &dbe);
            if (dbe) {
                tr_arena_free(a);
                goto dberr;
            }
            size_t ncf = 0;
            for (size_t i = 0; v && i < chunk_nspans(v); i++) {
                int m = span_matches_view(q, &st, v, i, hit, &cf_start);
                if (m < 0) {
                    tr_arena_free(a);
                    snprintf(err, errlen, "out of memory");
                    goto done;
                }
                if (!m) continue;
                if (ncf == capcf) {
                    size_t nc = capcf ? capcf * 2 : 64;
                    found *n = realloc(cf, nc * sizeof *n);
                    if (!n) {
                        tr_arena_free(a);
                        snprintf(err, errlen, "out of memory");
                        goto done;
                    }
                    cf = n;
                    capcf = nc;
                }
                span_peek pk;
                chunk_peek(v, i, &pk);
                memcpy(cf[ncf].id, pk.tid, 16);
                cf[ncf].start = cf_start;
                ncf++;
            }
            if (ncf > 1) qsort(cf, ncf, sizeof *cf, found_cmp);
            size_t added = 0;
            for (size_t i = 0; i < ncf && nfl < limit; i++) {
                uint64_t h = tr_hash64(cf[i].id, 16, 1);
                if (!u64set_add(&seen, h)) continue;
                if (nfl == capfl) {
                    size_t nc = capfl ? capfl * 2 : 32;
                    found *n = realloc(fl, nc * sizeof *n);
                    if (!n) {
                        tr_arena_free(a);
                        snprintf(err, errlen, "out of memory");
                        goto done;
                    }
                    fl = n;
                    capfl = nc;
                }
                fl[nfl++] = cf[i];
                added++;
            }
            /* a chunk that gave results is kept: fetching the whole traces will need it again */
            if (added && v) {
                if (adopt_chunk(&qc, chunk, a, v)) {
                    snprintf(err, errlen, "out of memory");
                    goto done;
                }
            } else {
                tr_arena_free(a);
            }
        }
    }
    if (nfl) {
        uint8_t(*ids)[16] = malloc(nfl * sizeof *ids);
        if (!ids) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < nfl; i++)
            memcpy(ids[i], fl[i].id, 16);
        int frc = fetch_traces(&qc, (const uint8_t(*)[16])ids, nfl);
        free(ids);
        if (frc < 0) goto dberr;
    }
    snapshot_end(&qc);
    if (result_adopt(&qc)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    ok = 1;
    goto done;
dberr:
    db_err(r, err, errlen);
done:
    snapshot_end(&qc);
    free(tagk);
    free(hit);
    free(fl);
    free(cf);
    free(bc);
    u64set_free(&seen);
    qctx_fini(&qc);
    if (!ok) {
        traces_result_free(qc.res);
        return -1;
    }
    *out = qc.res;
    observe(r, &t0);
    return 0;
}

/* ---- dependencies ---- */

#define DEP_MAX_CHUNKS 16384 /* bounds the work of one request (about a million spans) */

typedef struct dep_edge {
    uint64_t parent_key;
    uint32_t child_svc;
} dep_edge;

typedef struct svc_tab {
    char **names;
    size_t n, cap;
} svc_tab;

static int svc_index(svc_tab *t, const char *name) {
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0) return (int)i;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        char **n = realloc(t->names, nc * sizeof *n);
        if (!n) return -1;
        t->names = n;
        t->cap = nc;
    }
    t->names[t->n] = strdup(name);
    if (!t->names[t->n]) return -1;
    return (int)t->n++;
}

/* span key → service index, open addressing */
typedef struct span_map {
    uint64_t *k;
    uint32_t *v;
    size_t cap, n;
} span_map;

static int smap_put(span_map *m, uint64_t k, uint32_t v) {
    if (!k) k = 1;
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 4096;
        uint64_t *nk = calloc(nc, sizeof *nk);
        uint32_t *nv = calloc(nc, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->k[i]) {
                size_t j = m->k[i] & (nc - 1);
                while (nk[j])
                    j = (j + 1) & (nc - 1);
                nk[j] = m->k[i];
                nv[j] = m->v[i];
            }
        free(m->k);
        free(m->v);
        m->k = nk;
        m->v = nv;
        m->cap = nc;
    }
    size_t j = k & (m->cap - 1);
    while (m->k[j] && m->k[j] != k)
        j = (j + 1) & (m->cap - 1);
    if (!m->k[j]) m->n++;
    m->k[j] = k;
    m->v[j] = v;
    return 0;
}

static int smap_get(const span_map *m, uint64_t k, uint32_t *v) {
    if (!k) k = 1;
    if (!m->cap) return 0;
    size_t j = k & (m->cap - 1);
    while (m->k[j]) {
        if (m->k[j] == k) {
            *v = m->v[j];
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

static uint64_t span_key(const uint8_t *tid16, const uint8_t *sid8) {
    return tr_hash64(sid8, 8, tr_hash64(tid16, 16, 7));
}

int traces_dependencies_list(traces_reader *r, int64_t from_ns, int64_t to_ns, traces_dependencies *out,
                             char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    r->ndmg = 0;
    sqlite3_stmt *st = NULL;
    svc_tab svcs = {0};
    span_map map = {0};
    dep_edge *edges = NULL;
    size_t nedges = 0, capedges = 0;
    uint64_t *counts = NULL;
    int ok = 0;
    if (sqlite3_prepare_v2(
            r->db, "SELECT id FROM chunk WHERE max_start >= ?1 AND min_start <= ?2 ORDER BY id DESC LIMIT ?3",
            -1, &st, NULL) != SQLITE_OK) {
        db_err(r, err, errlen);
        return -1;
    }
    sqlite3_bind_int64(st, 1, from_ns);
    sqlite3_bind_int64(st, 2, to_ns);
    sqlite3_bind_int(st, 3, DEP_MAX_CHUNKS);
    int64_t *ids = NULL;
    size_t nids = 0, capids = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nids == capids) {
            capids = capids ? capids * 2 : 64;
            int64_t *n = realloc(ids, capids * sizeof *n);
            if (!n) goto oom;
            ids = n;
        }
        ids[nids++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) {
        db_err(r, err, errlen);
        goto out;
    }
    for (size_t c = 0; c < nids; c++) {
        tr_arena *a = tr_arena_new(0);
        if (!a) goto oom;
        int dbe = 0;
        chunk_view *v = load_chunk(r, ids[c], a, &dbe);
        if (dbe) {
            tr_arena_free(a);
            db_err(r, err, errlen);
            goto out;
        }
        for (size_t i = 0; v && i < chunk_nspans(v); i++) {
            span_peek pk;
            if (chunk_peek(v, i, &pk)) continue;
            int64_t t = (int64_t)pk.start;
            if (t < from_ns || t > to_ns || pk.tid_len != 16 || pk.sid_len != 8) continue;
            int si = svc_index(&svcs, chunk_service(v, i));
            if (si < 0) {
                tr_arena_free(a);
                goto oom;
            }
            if (smap_put(&map, span_key(pk.tid, pk.sid), (uint32_t)si)) {
                tr_arena_free(a);
                goto oom;
            }
            if (pk.parent_len == 8) {
                if (nedges == capedges) {
                    capedges = capedges ? capedges * 2 : 1024;
                    dep_edge *n = realloc(edges, capedges * sizeof *n);
                    if (!n) {
                        tr_arena_free(a);
                        goto oom;
                    }
                    edges = n;
                }
                edges[nedges++] = (dep_edge){span_key(pk.tid, pk.parent), (uint32_t)si};
            }
        }
        tr_arena_free(a);
    }
    counts = calloc(svcs.n * svcs.n + 1, sizeof *counts);
    if (!counts) goto oom;
    for (size_t i = 0; i < nedges; i++) {
        uint32_t p;
        if (smap_get(&map, edges[i].parent_key, &p)) counts[p * svcs.n + edges[i].child_svc]++;
    }
    for (size_t p = 0; p < svcs.n; p++)
        for (size_t ch = 0; ch < svcs.n; ch++) {
            uint64_t n = counts[p * svcs.n + ch];
            if (!n) continue;
            traces_dependency *nv = realloc(out->v, (out->n + 1) * sizeof *nv);
            if (!nv) goto oom;
            out->v = nv;
            out->v[out->n] = (traces_dependency){strdup(svcs.names[p]), strdup(svcs.names[ch]), n};
            out->n++;
            if (!out->v[out->n - 1].parent || !out->v[out->n - 1].child) goto oom;
        }
    ok = 1;
    out->ndamaged = r->ndmg < 32 ? r->ndmg : 32;
    memcpy(out->damaged, r->dmg, out->ndamaged * sizeof *out->damaged);
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    sqlite3_finalize(st);
    for (size_t i = 0; i < svcs.n; i++)
        free(svcs.names[i]);
    free(svcs.names);
    free(map.k);
    free(map.v);
    free(edges);
    free(ids);
    free(counts);
    if (!ok) {
        traces_dependencies_free(out);
        return -1;
    }
    return 0;
}
