/* Reading the trace store: service and operation lists, trace search (an index-driven walk
 * over chunks, newest first, with an exact check of every span in the chunks it decodes),
 * traces by id, and service dependencies. Each reader has its own read-only connection, so a
 * search never waits for ingest and ingest never waits for a search (WAL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traces_int.h"

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

int reader_prepare(traces_reader *r, char *err, size_t errlen) {
    return prep(r->db, "SELECT data,rawlen FROM chunk WHERE id=?", &r->st_chunk, err, errlen) ||
                   prep(r->db, "SELECT chunk FROM trace_idx WHERE tid=? ORDER BY chunk", &r->st_trace, err, errlen) ||
                   prep(r->db, "SELECT chunk,min_start,max_start,min_dur,max_dur FROM sum_idx WHERE k=?1 AND chunk<=?2 ORDER BY chunk DESC", &r->st_sum, err, errlen) ||
                   prep(r->db, "SELECT chunk FROM tag_idx WHERE h=?1 AND chunk<=?2 ORDER BY chunk DESC", &r->st_tag, err, errlen) ||
                   prep(r->db, "SELECT id,min_start,max_start,min_dur,max_dur FROM chunk WHERE id<=?2 ORDER BY id DESC", &r->st_all, err, errlen)
               ? -1
               : 0;
}

void reader_finalize(traces_reader *r) {
    sqlite3_finalize(r->st_chunk);
    sqlite3_finalize(r->st_trace);
    sqlite3_finalize(r->st_sum);
    sqlite3_finalize(r->st_tag);
    sqlite3_finalize(r->st_all);
}

static void db_err(traces_reader *r, char *err, size_t errlen) {
    snprintf(err, errlen, "trace store read failed: %s", sqlite3_errmsg(r->db));
}

/* ---- small lists ---- */

void traces_strings_free(traces_strings *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void traces_operations_free(traces_operations *o) {
    for (size_t i = 0; i < o->n; i++) free(o->v[i].name);
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
    if (sqlite3_prepare_v2(r->db, "SELECT DISTINCT service FROM operation ORDER BY service", -1, &st, NULL) != SQLITE_OK) {
        db_err(r, err, errlen);
        return -1;
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(out->v, cap * sizeof *nv);
            if (!nv) { rc = SQLITE_NOMEM; break; }
            out->v = nv;
        }
        out->v[out->n] = strdup((const char *)sqlite3_column_text(st, 0));
        if (!out->v[out->n]) { rc = SQLITE_NOMEM; break; }
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

int traces_operations_list(traces_reader *r, const char *service, int kind, traces_operations *out,
                           char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    const char *sql = "SELECT name,kind FROM operation WHERE (?1 IS NULL OR service=?1) AND (?2 < 0 OR kind=?2) ORDER BY name,kind";
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_err(r, err, errlen);
        return -1;
    }
    if (service) sqlite3_bind_text(st, 1, service, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, kind);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            traces_operation *nv = realloc(out->v, cap * sizeof *nv);
            if (!nv) { rc = SQLITE_NOMEM; break; }
            out->v = nv;
        }
        out->v[out->n].name = strdup((const char *)sqlite3_column_text(st, 0));
        out->v[out->n].kind = sqlite3_column_int(st, 1);
        if (!out->v[out->n].name) { rc = SQLITE_NOMEM; break; }
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
    traces_request *req;
} kept_chunk;

typedef struct qctx {
    traces_reader *r;
    traces_result *res;
    kept_chunk *chunks; /* decoded and kept for the result */
    size_t nchunks, capchunks;
} qctx;

size_t traces_result_count(const traces_result *res) { return res ? res->n : 0; }
const traces_trace *traces_result_trace(const traces_result *res, size_t i) { return &res->traces[i]; }

void traces_result_free(traces_result *res) {
    if (!res) return;
    for (size_t i = 0; i < res->nchunk_arenas; i++) tr_arena_free(res->chunk_arenas[i]);
    free(res->chunk_arenas);
    tr_arena_free(res->arena);
    free(res);
}

static traces_result *result_new(void) {
    traces_result *res = calloc(1, sizeof *res);
    if (!res) return NULL;
    res->arena = tr_arena_new(0);
    if (!res->arena) { free(res); return NULL; }
    return res;
}

/* Loads chunk `id` into a fresh arena; returns NULL when missing (expired meanwhile) or
 * damaged; *dberr set on a database error. */
static traces_request *load_chunk(traces_reader *r, int64_t id, tr_arena *a, int *dberr) {
    sqlite3_stmt *st = r->st_chunk;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    traces_request *req = NULL;
    if (rc == SQLITE_ROW)
        req = chunk_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), (size_t)sqlite3_column_int64(st, 1), a);
    else if (rc != SQLITE_DONE)
        *dberr = 1;
    sqlite3_reset(st);
    return req;
}

/* A chunk decoded for the result, cached by id. */
static traces_request *keep_chunk(qctx *q, int64_t id, int *dberr) {
    for (size_t i = 0; i < q->nchunks; i++)
        if (q->chunks[i].id == id) return q->chunks[i].req;
    if (q->nchunks == q->capchunks) {
        size_t nc = q->capchunks ? q->capchunks * 2 : 16;
        kept_chunk *n = realloc(q->chunks, nc * sizeof *n);
        if (!n) return NULL;
        q->chunks = n;
        q->capchunks = nc;
    }
    tr_arena *a = tr_arena_new(0);
    if (!a) return NULL;
    traces_request *req = load_chunk(q->r, id, a, dberr);
    if (!req) { tr_arena_free(a); return NULL; }
    q->chunks[q->nchunks++] = (kept_chunk){id, a, req};
    return req;
}

static void qctx_fini(qctx *q) {
    for (size_t i = 0; i < q->nchunks; i++) tr_arena_free(q->chunks[i].arena);
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

/* Appends the whole trace `id` (every chunk that holds part of it) to the result. Returns
 * 1 when found, 0 when not, -1 on a database error. */
static int fetch_trace(qctx *q, const uint8_t *id) {
    traces_reader *r = q->r;
    int64_t chunks[256];
    size_t nch = 0;
    sqlite3_bind_int64(r->st_trace, 1, key_trace(id));
    int rc;
    while ((rc = sqlite3_step(r->st_trace)) == SQLITE_ROW && nch < sizeof chunks / sizeof chunks[0])
        chunks[nch++] = sqlite3_column_int64(r->st_trace, 0);
    sqlite3_reset(r->st_trace);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return -1;
    traces_result *res = q->res;
    if (res->n == res->cap) {
        size_t nc = res->cap ? res->cap * 2 : 16;
        traces_trace *n = tr_arena_alloc(res->arena, nc * sizeof *n);
        if (!n) return -1;
        if (res->n) memcpy(n, res->traces, res->n * sizeof *n);
        res->traces = n;
        res->cap = nc;
    }
    traces_trace *t = &res->traces[res->n];
    memset(t, 0, sizeof *t);
    memcpy(t->id, id, 16);
    size_t cap = 0;
    for (size_t c = 0; c < nch; c++) {
        int dberr = 0;
        traces_request *req = keep_chunk(q, chunks[c], &dberr);
        if (dberr) return -1;
        if (!req) continue;
        for (size_t i = 0; i < req->n_resource_spans; i++) {
            const pb_rspans *rs = req->resource_spans[i];
            for (size_t j = 0; j < rs->n_scope_spans; j++) {
                const pb_sspans *ss = rs->scope_spans[j];
                for (size_t k = 0; k < ss->n_spans; k++) {
                    const traces_pb_span *sp = ss->spans[k];
                    if (sp->trace_id.len != 16 || memcmp(sp->trace_id.data, id, 16) != 0) continue;
                    if (add_span(res, t, &cap, (traces_span){sp, rs->resource, ss->scope})) return -1;
                }
            }
        }
    }
    if (t->n == 0) return 0;
    res->n++;
    return 1;
}

/* Moves the kept chunks' arenas into the result so they live as long as it. */
static int result_adopt(qctx *q) {
    traces_result *res = q->res;
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
    tr_histogram_observe(r->s->m.search_seconds, (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9);
}

int traces_get(traces_reader *r, const uint8_t (*ids)[16], size_t n, traces_result **out, char *err, size_t errlen) {
    struct timespec t0;
    elapsed_start(&t0);
    *out = NULL;
    qctx q = {.r = r, .res = result_new()};
    if (!q.res) { snprintf(err, errlen, "out of memory"); return -1; }
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++) dup = memcmp(ids[i], ids[j], 16) == 0;
        if (dup) continue;
        if (fetch_trace(&q, ids[i]) < 0) {
            db_err(r, err, errlen);
            goto fail;
        }
    }
    if (result_adopt(&q)) { snprintf(err, errlen, "out of memory"); goto fail; }
    qctx_fini(&q);
    *out = q.res;
    observe(r, &t0);
    return 0;
fail:
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

static int span_matches(const traces_query *q, const char *svc, const traces_pb_span *sp,
                        const traces_pb_resource *res, const traces_pb_scope *sc, unsigned char *hit) {
    if (q->service && strcmp(q->service, svc) != 0) return 0;
    if (q->operation && strcmp(q->operation, sp->name ? sp->name : "") != 0) return 0;
    int64_t st = sp->start_time_unix_nano > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)sp->start_time_unix_nano;
    if (st < q->start_ns || st > q->end_ns) return 0;
    int64_t du = sp->end_time_unix_nano > sp->start_time_unix_nano ? (int64_t)(sp->end_time_unix_nano - sp->start_time_unix_nano) : 0;
    if (q->min_dur_ns > 0 && du < q->min_dur_ns) return 0;
    if (q->max_dur_ns > 0 && du > q->max_dur_ns) return 0;
    if (q->ntags == 0) return 1;
    memset(hit, 0, q->ntags);
    match_ctx m = {q, hit, q->ntags};
    return span_each_tag(sp, res, sc, 1, tag_match, &m) == 1;
}

typedef struct found {
    uint8_t id[16];
    int64_t start;
} found;

static int found_cmp(const void *a, const void *b) {
    const found *x = a, *y = b;
    return x->start < y->start ? 1 : x->start > y->start ? -1 : 0;
}

/* Counts index entries of a key, up to `cap` (to pick the sparsest list to walk). */
static int64_t count_capped(traces_reader *r, const char *table, const char *col, uint64_t k, int cap) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s=? LIMIT %d)", table, col, cap);
    sqlite3_stmt *st;
    int64_t n = cap;
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) return n;
    sqlite3_bind_int64(st, 1, (int64_t)k);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int exists_at(sqlite3 *db, sqlite3_stmt **st, const char *sql, uint64_t k, int64_t chunk, int64_t *cols, int ncols) {
    if (!*st && sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(*st, 1, (int64_t)k);
    sqlite3_bind_int64(*st, 2, chunk);
    int rc = sqlite3_step(*st);
    int found = rc == SQLITE_ROW;
    if (found)
        for (int i = 0; i < ncols; i++) cols[i] = sqlite3_column_int64(*st, i);
    sqlite3_reset(*st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -1;
}

int traces_search(traces_reader *r, const traces_query *q, traces_result **out, char *err, size_t errlen) {
    struct timespec t0;
    elapsed_start(&t0);
    *out = NULL;
    qctx qc = {.r = r, .res = result_new()};
    uint64_t *tagk = NULL;
    unsigned char *hit = NULL;
    found *fl = NULL, *cf = NULL;
    size_t nfl = 0, capfl = 0, capcf = 0;
    u64set seen = {0};
    sqlite3_stmt *st_sum_at = NULL, *st_tag_at = NULL;
    int ok = 0;
    if (!qc.res) { snprintf(err, errlen, "out of memory"); return -1; }
    size_t limit = q->limit > 0 ? (size_t)q->limit : 100;
    tagk = calloc(q->ntags + 1, sizeof *tagk);
    hit = calloc(q->ntags + 1, 1);
    if (!tagk || !hit) { snprintf(err, errlen, "out of memory"); goto done; }
    for (size_t i = 0; i < q->ntags; i++) tagk[i] = key_tag(q->tag_keys[i], q->tag_values[i], strlen(q->tag_values[i]));

    /* the summary key: operation within service, else service, else none (every chunk) */
    int have_sum = q->service != NULL;
    uint64_t sumk = 0;
    if (q->service) sumk = q->operation ? key_operation(q->service, q->operation) : key_service(q->service);
    /* the list to walk: the sparsest of the summary and the tags */
    int driver = -1; /* -1: summary (or all chunks), else the tag index */
    int64_t best = have_sum ? count_capped(r, "sum_idx", "k", sumk, 4096) : INT64_MAX;
    for (size_t i = 0; i < q->ntags; i++) {
        int64_t c = count_capped(r, "tag_idx", "h", tagk[i], best == INT64_MAX ? 4096 : (int)(best + 1));
        if (c < best) { best = c; driver = (int)i; }
    }
    sqlite3_stmt *walk = driver >= 0 ? r->st_tag : have_sum ? r->st_sum : r->st_all;
    if (driver >= 0) sqlite3_bind_int64(walk, 1, (int64_t)tagk[driver]);
    else if (have_sum) sqlite3_bind_int64(walk, 1, (int64_t)sumk);
    sqlite3_bind_int64(walk, 2, INT64_MAX);
    int rc;
    while (nfl < limit && (rc = sqlite3_step(walk)) == SQLITE_ROW) {
        int64_t chunk = sqlite3_column_int64(walk, 0);
        int64_t s[4]; /* min_start, max_start, min_dur, max_dur of the service/op/chunk */
        if (driver < 0) {
            for (int i = 0; i < 4; i++) s[i] = sqlite3_column_int64(walk, i + 1);
        } else if (have_sum) {
            int e = exists_at(r->db, &st_sum_at, "SELECT min_start,max_start,min_dur,max_dur FROM sum_idx WHERE k=? AND chunk=?", sumk, chunk, s, 4);
            if (e < 0) goto dberr;
            if (!e) continue;
        } else {
            int e = exists_at(r->db, &st_sum_at, "SELECT min_start,max_start,min_dur,max_dur FROM chunk WHERE ?1 IS NOT NULL AND id=?2", 0, chunk, s, 4);
            if (e < 0) goto dberr;
            if (!e) continue;
        }
        if (s[1] < q->start_ns || s[0] > q->end_ns) continue;
        if (q->min_dur_ns > 0 && s[3] < q->min_dur_ns) continue;
        if (q->max_dur_ns > 0 && s[2] > q->max_dur_ns) continue;
        int all = 1;
        for (size_t i = 0; i < q->ntags && all; i++) {
            if ((int)i == driver) continue;
            int e = exists_at(r->db, &st_tag_at, "SELECT 1 FROM tag_idx WHERE h=? AND chunk=?", tagk[i], chunk, NULL, 0);
            if (e < 0) goto dberr;
            all = e;
        }
        if (!all) continue;
        /* a candidate: decode it and check every span */
        tr_arena *a = tr_arena_new(0);
        if (!a) { snprintf(err, errlen, "out of memory"); goto done; }
        int dbe = 0;
        traces_request *req = load_chunk(r, chunk, a, &dbe);
        if (dbe) { tr_arena_free(a); goto dberr; }
        size_t ncf = 0;
        if (req) {
            for (size_t i = 0; i < req->n_resource_spans; i++) {
                const pb_rspans *rs = req->resource_spans[i];
                const char *svc = traces_service_name(rs->resource);
                for (size_t j = 0; j < rs->n_scope_spans; j++) {
                    const pb_sspans *ss = rs->scope_spans[j];
                    for (size_t k = 0; k < ss->n_spans; k++) {
                        const traces_pb_span *sp = ss->spans[k];
                        if (sp->trace_id.len != 16 || !span_matches(q, svc, sp, rs->resource, ss->scope, hit)) continue;
                        if (ncf == capcf) {
                            size_t nc = capcf ? capcf * 2 : 64;
                            found *n = realloc(cf, nc * sizeof *n);
                            if (!n) { tr_arena_free(a); snprintf(err, errlen, "out of memory"); goto done; }
                            cf = n;
                            capcf = nc;
                        }
                        memcpy(cf[ncf].id, sp->trace_id.data, 16);
                        cf[ncf].start = (int64_t)sp->start_time_unix_nano;
                        ncf++;
                    }
                }
            }
        }
        tr_arena_free(a);
        if (ncf > 1) qsort(cf, ncf, sizeof *cf, found_cmp);
        for (size_t i = 0; i < ncf && nfl < limit; i++) {
            uint64_t h = tr_hash64(cf[i].id, 16, 1);
            if (!u64set_add(&seen, h)) continue;
            if (nfl == capfl) {
                size_t nc = capfl ? capfl * 2 : 32;
                found *n = realloc(fl, nc * sizeof *n);
                if (!n) { snprintf(err, errlen, "out of memory"); goto done; }
                fl = n;
                capfl = nc;
            }
            fl[nfl++] = cf[i];
        }
    }
    sqlite3_reset(walk);
    if (nfl < limit && rc != SQLITE_DONE && rc != SQLITE_ROW) goto dberr;
    for (size_t i = 0; i < nfl; i++)
        if (fetch_trace(&qc, fl[i].id) < 0) goto dberr;
    if (result_adopt(&qc)) { snprintf(err, errlen, "out of memory"); goto done; }
    ok = 1;
    goto done;
dberr:
    sqlite3_reset(walk);
    db_err(r, err, errlen);
done:
    sqlite3_finalize(st_sum_at);
    sqlite3_finalize(st_tag_at);
    free(tagk);
    free(hit);
    free(fl);
    free(cf);
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
        if (!nk || !nv) { free(nk); free(nv); return -1; }
        for (size_t i = 0; i < m->cap; i++)
            if (m->k[i]) {
                size_t j = m->k[i] & (nc - 1);
                while (nk[j]) j = (j + 1) & (nc - 1);
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
    while (m->k[j] && m->k[j] != k) j = (j + 1) & (m->cap - 1);
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
        if (m->k[j] == k) { *v = m->v[j]; return 1; }
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
    sqlite3_stmt *st = NULL;
    svc_tab svcs = {0};
    span_map map = {0};
    dep_edge *edges = NULL;
    size_t nedges = 0, capedges = 0;
    uint64_t *counts = NULL;
    int ok = 0;
    if (sqlite3_prepare_v2(r->db, "SELECT id FROM chunk WHERE max_start >= ?1 AND min_start <= ?2 ORDER BY id DESC LIMIT ?3", -1, &st, NULL) != SQLITE_OK) {
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
    if (rc != SQLITE_DONE) { db_err(r, err, errlen); goto out; }
    for (size_t c = 0; c < nids; c++) {
        tr_arena *a = tr_arena_new(0);
        if (!a) goto oom;
        int dbe = 0;
        traces_request *req = load_chunk(r, ids[c], a, &dbe);
        if (dbe) { tr_arena_free(a); db_err(r, err, errlen); goto out; }
        for (size_t i = 0; req && i < req->n_resource_spans; i++) {
            const pb_rspans *rs = req->resource_spans[i];
            int si = svc_index(&svcs, traces_service_name(rs->resource));
            if (si < 0) { tr_arena_free(a); goto oom; }
            for (size_t j = 0; j < rs->n_scope_spans; j++) {
                const pb_sspans *ss = rs->scope_spans[j];
                for (size_t k = 0; k < ss->n_spans; k++) {
                    const traces_pb_span *sp = ss->spans[k];
                    int64_t t = (int64_t)sp->start_time_unix_nano;
                    if (t < from_ns || t > to_ns || sp->trace_id.len != 16 || sp->span_id.len != 8) continue;
                    if (smap_put(&map, span_key(sp->trace_id.data, sp->span_id.data), (uint32_t)si)) { tr_arena_free(a); goto oom; }
                    if (sp->parent_span_id.len == 8) {
                        if (nedges == capedges) {
                            capedges = capedges ? capedges * 2 : 1024;
                            dep_edge *n = realloc(edges, capedges * sizeof *n);
                            if (!n) { tr_arena_free(a); goto oom; }
                            edges = n;
                        }
                        edges[nedges++] = (dep_edge){span_key(sp->trace_id.data, sp->parent_span_id.data), (uint32_t)si};
                    }
                }
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
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    sqlite3_finalize(st);
    for (size_t i = 0; i < svcs.n; i++) free(svcs.names[i]);
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
