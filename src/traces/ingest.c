/* The writer thread's work: one SQLite transaction per export (limits applied, spans cut
 * into compressed chunks, index rows written, COMMIT), and retention in bounded batches
 * (oldest or expired chunks with their index rows, then incremental vacuum in small steps). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "traces_int.h"
#include "util/log.h"

typedef struct sum_ent {
    uint64_t k;
    int64_t min_start, max_start, min_dur, max_dur;
} sum_ent;

/* Known operations → when their row was last refreshed (ms). */
typedef struct op_ent {
    uint64_t k;
    int64_t seen_ms;
} op_ent;

typedef struct ingest_state {
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *ins_chunk, *ins_trace, *ins_sum, *ins_tag, *ins_op;
    sqlite3_stmt *sel_expired, *sel_oldest, *sel_chunk, *del_chunk, *del_trace, *del_sum,
        *del_tag, *del_ops;
    ZSTD_CCtx *zc;
    tr_arena *scratch; /* per export: limited copies and the chunk's arrays */
    /* the chunk being built */
    traces_request out;
    size_t cap_rs;
    pb_rspans *cur_rs;
    const pb_rspans *src_rs;
    pb_sspans *cur_ss;
    const pb_sspans *src_ss;
    const char *cur_svc;
    size_t nspans;
    int64_t min_start, max_start, min_dur, max_dur;
    u64set tags, traces;
    sum_ent *sums;
    size_t nsums, capsums;
    op_ent *ops;
    size_t nops, capops;
    tr_buf packed, comp;
    uint64_t dropped_attrs, dropped_events, dropped_links, truncated;
} ingest_state;

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

int ingest_init(traces_store *s, char *err, size_t errlen) {
    ingest_state *g = calloc(1, sizeof *g);
    if (!g) { snprintf(err, errlen, "out of memory"); return -1; }
    s->ing = g;
    sqlite3 *db = s->wdb;
    g->zc = ZSTD_createCCtx();
    g->scratch = tr_arena_new(0);
    tr_buf_init(&g->packed, 0);
    tr_buf_init(&g->comp, 0);
    if (!g->zc || !g->scratch) { snprintf(err, errlen, "out of memory"); return -1; }
    if (prep(db, "BEGIN IMMEDIATE", &g->begin, err, errlen) ||
        prep(db, "COMMIT", &g->commit, err, errlen) ||
        prep(db, "ROLLBACK", &g->rollback, err, errlen) ||
        prep(db, "INSERT INTO chunk(min_start,max_start,min_dur,max_dur,nspans,rawlen,data) VALUES(?,?,?,?,?,?,?)", &g->ins_chunk, err, errlen) ||
        prep(db, "INSERT OR IGNORE INTO trace_idx(tid,chunk) VALUES(?,?)", &g->ins_trace, err, errlen) ||
        prep(db, "INSERT OR IGNORE INTO sum_idx(k,chunk,min_start,max_start,min_dur,max_dur) VALUES(?,?,?,?,?,?)", &g->ins_sum, err, errlen) ||
        prep(db, "INSERT OR IGNORE INTO tag_idx(h,chunk) VALUES(?,?)", &g->ins_tag, err, errlen) ||
        prep(db, "INSERT INTO operation(service,name,kind,last_seen) VALUES(?,?,?,?) "
                 "ON CONFLICT(service,name,kind) DO UPDATE SET last_seen=excluded.last_seen", &g->ins_op, err, errlen) ||
        prep(db, "SELECT id FROM chunk WHERE max_start < ? ORDER BY max_start LIMIT ?", &g->sel_expired, err, errlen) ||
        prep(db, "SELECT id FROM chunk ORDER BY id LIMIT ?", &g->sel_oldest, err, errlen) ||
        prep(db, "SELECT data,rawlen,nspans FROM chunk WHERE id=?", &g->sel_chunk, err, errlen) ||
        prep(db, "DELETE FROM chunk WHERE id=?", &g->del_chunk, err, errlen) ||
        prep(db, "DELETE FROM trace_idx WHERE tid=? AND chunk=?", &g->del_trace, err, errlen) ||
        prep(db, "DELETE FROM sum_idx WHERE k=? AND chunk=?", &g->del_sum, err, errlen) ||
        prep(db, "DELETE FROM tag_idx WHERE h=? AND chunk=?", &g->del_tag, err, errlen) ||
        prep(db, "DELETE FROM operation WHERE last_seen < ?", &g->del_ops, err, errlen))
        return -1;
    return 0;
}

void ingest_fini(traces_store *s) {
    ingest_state *g = s->ing;
    if (!g) return;
    sqlite3_stmt *all[] = {g->begin, g->commit, g->rollback, g->ins_chunk, g->ins_trace, g->ins_sum,
                           g->ins_tag, g->ins_op, g->sel_expired, g->sel_oldest, g->sel_chunk,
                           g->del_chunk, g->del_trace, g->del_sum, g->del_tag, g->del_ops};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
    ZSTD_freeCCtx(g->zc);
    tr_arena_free(g->scratch);
    tr_buf_free(&g->packed);
    tr_buf_free(&g->comp);
    u64set_free(&g->tags);
    u64set_free(&g->traces);
    free(g->sums);
    free(g->ops);
    free(g);
    s->ing = NULL;
}

/* Runs a statement without rows; returns the SQLite code (SQLITE_DONE on success). */
static int run(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* ---- limits ---- */

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) if (p[i]) return 0;
    return 1;
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t c = max;
    while (c > 0 && ((unsigned char)s[c] & 0xC0) == 0x80) c--;
    return c;
}

/* Returns kvs with values over the length limit replaced by cut copies (the array itself is
 * copied only when something changes). */
static pb_kv **limit_values(ingest_state *g, uint32_t maxv, pb_kv **kvs, size_t n) {
    if (!maxv) return kvs;
    pb_kv **outv = kvs;
    for (size_t i = 0; i < n; i++) {
        const pb_kv *kv = kvs[i];
        if (!kv || !kv->value) continue;
        const traces_pb_value *v = kv->value;
        size_t len = 0;
        if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE && v->string_value)
            len = strlen(v->string_value);
        else if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE)
            len = v->bytes_value.len;
        if (len <= maxv) continue;
        if (outv == kvs) {
            outv = tr_arena_alloc(g->scratch, n * sizeof *outv);
            if (!outv) return kvs;
            memcpy(outv, kvs, n * sizeof *outv);
        }
        pb_kv *nk = tr_arena_alloc(g->scratch, sizeof *nk);
        traces_pb_value *nv = tr_arena_alloc(g->scratch, sizeof *nv);
        if (!nk || !nv) return outv;
        *nk = *kv;
        *nv = *v;
        nk->value = nv;
        if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            nv->string_value = tr_arena_strndup(g->scratch, v->string_value, utf8_cut(v->string_value, len, maxv));
            if (!nv->string_value) return outv;
        } else {
            nv->bytes_value.len = maxv;
        }
        outv[i] = nk;
        g->truncated++;
    }
    return outv;
}

/* Applies the attribute, event and link limits to a span; returns the span or a copy. */
static traces_pb_span *limit_span(traces_store *s, traces_pb_span *sp) {
    ingest_state *g = s->ing;
    const traces_config *c = &s->cfg;
    traces_pb_span *o = sp;
#define COPY_SPAN()                                                   \
    do {                                                              \
        if (o == sp) {                                                \
            o = tr_arena_alloc(g->scratch, sizeof *o);                \
            if (!o) return sp;                                        \
            *o = *sp;                                                 \
        }                                                             \
    } while (0)
    if (c->max_attributes && sp->n_attributes > c->max_attributes) {
        COPY_SPAN();
        uint32_t d = (uint32_t)(sp->n_attributes - c->max_attributes);
        o->n_attributes = c->max_attributes;
        o->dropped_attributes_count += d;
        g->dropped_attrs += d;
    }
    pb_kv **a = limit_values(g, c->max_value_bytes, o->attributes, o->n_attributes);
    if (a != o->attributes) { COPY_SPAN(); o->attributes = a; }
    if (c->max_events && sp->n_events > c->max_events) {
        COPY_SPAN();
        uint32_t d = (uint32_t)(sp->n_events - c->max_events);
        o->n_events = c->max_events;
        o->dropped_events_count += d;
        g->dropped_events += d;
    }
    if (c->max_links && sp->n_links > c->max_links) {
        COPY_SPAN();
        uint32_t d = (uint32_t)(sp->n_links - c->max_links);
        o->n_links = c->max_links;
        o->dropped_links_count += d;
        g->dropped_links += d;
    }
    /* per event and link: their own attribute limits */
    for (int pass = 0; pass < 2; pass++) {
        size_t n = pass ? o->n_links : o->n_events;
        for (size_t i = 0; i < n; i++) {
            pb_kv **kvs;
            size_t nkv;
            if (pass) { if (!o->links[i]) continue; kvs = o->links[i]->attributes; nkv = o->links[i]->n_attributes; }
            else { if (!o->events[i]) continue; kvs = o->events[i]->attributes; nkv = o->events[i]->n_attributes; }
            size_t keep = c->max_attributes && nkv > c->max_attributes ? c->max_attributes : nkv;
            pb_kv **nkvs = limit_values(g, c->max_value_bytes, kvs, keep);
            if (keep == nkv && nkvs == kvs) continue;
            COPY_SPAN();
            if (pass) {
                if (o->links == sp->links) {
                    pb_link **nl = tr_arena_alloc(g->scratch, o->n_links * sizeof *nl);
                    if (!nl) return o;
                    memcpy(nl, sp->links, o->n_links * sizeof *nl);
                    o->links = nl;
                }
                pb_link *l = tr_arena_alloc(g->scratch, sizeof *l);
                if (!l) return o;
                *l = *o->links[i];
                l->dropped_attributes_count += (uint32_t)(nkv - keep);
                l->n_attributes = keep;
                l->attributes = nkvs;
                o->links[i] = l;
            } else {
                if (o->events == sp->events) {
                    pb_event **ne = tr_arena_alloc(g->scratch, o->n_events * sizeof *ne);
                    if (!ne) return o;
                    memcpy(ne, sp->events, o->n_events * sizeof *ne);
                    o->events = ne;
                }
                pb_event *e = tr_arena_alloc(g->scratch, sizeof *e);
                if (!e) return o;
                *e = *o->events[i];
                e->dropped_attributes_count += (uint32_t)(nkv - keep);
                e->n_attributes = keep;
                e->attributes = nkvs;
                o->events[i] = e;
            }
            g->dropped_attrs += nkv - keep;
        }
    }
#undef COPY_SPAN
    return o;
}

/* ---- chunk building ---- */

static int64_t clamp_ns(uint64_t v) { return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; }
static int64_t span_dur(const traces_pb_span *sp) {
    return sp->end_time_unix_nano > sp->start_time_unix_nano ? clamp_ns(sp->end_time_unix_nano - sp->start_time_unix_nano) : 0;
}

static void sum_update(ingest_state *g, uint64_t k, int64_t st, int64_t du) {
    for (size_t i = g->nsums; i-- > 0;) {
        sum_ent *e = &g->sums[i];
        if (e->k != k) continue;
        if (st < e->min_start) e->min_start = st;
        if (st > e->max_start) e->max_start = st;
        if (du < e->min_dur) e->min_dur = du;
        if (du > e->max_dur) e->max_dur = du;
        return;
    }
    if (g->nsums == g->capsums) {
        size_t nc = g->capsums ? g->capsums * 2 : 64;
        sum_ent *ns = realloc(g->sums, nc * sizeof *ns);
        if (!ns) return; /* the chunk then misses a summary row: searches skip it (logged by caller) */
        g->sums = ns;
        g->capsums = nc;
    }
    g->sums[g->nsums++] = (sum_ent){k, st, st, du, du};
}

static int tag_add(void *ctx, const char *k, const char *v, size_t vlen) {
    ingest_state *g = ctx;
    u64set_add(&g->tags, key_tag(k, v, vlen));
    return 0;
}

static void chunk_reset(ingest_state *g) {
    memset(&g->out, 0, sizeof g->out);
    opentelemetry__proto__collector__v1__export_trace_service_request__init(&g->out);
    g->cap_rs = 0;
    g->cur_rs = NULL;
    g->src_rs = NULL;
    g->cur_ss = NULL;
    g->src_ss = NULL;
    g->nspans = 0;
    g->min_start = g->min_dur = INT64_MAX;
    g->max_start = g->max_dur = INT64_MIN;
    u64set_clear(&g->tags);
    u64set_clear(&g->traces);
    g->nsums = 0;
}

/* Writes the chunk being built with its index rows. Returns 0 or an SQLite error code. */
static int chunk_flush(traces_store *s) {
    ingest_state *g = s->ing;
    if (!g->nspans) return 0;
    size_t raw = opentelemetry__proto__collector__v1__export_trace_service_request__get_packed_size(&g->out);
    tr_buf_reset(&g->packed);
    if (tr_buf_reserve(&g->packed, raw)) return SQLITE_NOMEM;
    opentelemetry__proto__collector__v1__export_trace_service_request__pack(&g->out, (uint8_t *)g->packed.data);
    size_t bound = ZSTD_compressBound(raw);
    tr_buf_reset(&g->comp);
    if (tr_buf_reserve(&g->comp, bound)) return SQLITE_NOMEM;
    size_t clen = ZSTD_compressCCtx(g->zc, g->comp.data, bound, g->packed.data, raw, 1);
    if (ZSTD_isError(clen)) return SQLITE_ERROR;
    sqlite3_stmt *st = g->ins_chunk;
    sqlite3_bind_int64(st, 1, g->min_start);
    sqlite3_bind_int64(st, 2, g->max_start);
    sqlite3_bind_int64(st, 3, g->min_dur);
    sqlite3_bind_int64(st, 4, g->max_dur);
    sqlite3_bind_int64(st, 5, (int64_t)g->nspans);
    sqlite3_bind_int64(st, 6, (int64_t)raw);
    sqlite3_bind_blob(st, 7, g->comp.data, (int)clen, SQLITE_STATIC);
    int rc = run(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) return rc;
    int64_t id = sqlite3_last_insert_rowid(s->wdb);
    for (size_t i = 0; i < g->traces.cap; i++) {
        if (!g->traces.v[i]) continue;
        sqlite3_bind_int64(g->ins_trace, 1, (int64_t)g->traces.v[i]);
        sqlite3_bind_int64(g->ins_trace, 2, id);
        if ((rc = run(g->ins_trace)) != SQLITE_DONE) return rc;
    }
    if (g->traces.has_zero) {
        sqlite3_bind_int64(g->ins_trace, 1, 0);
        sqlite3_bind_int64(g->ins_trace, 2, id);
        if ((rc = run(g->ins_trace)) != SQLITE_DONE) return rc;
    }
    for (size_t i = 0; i < g->nsums; i++) {
        sum_ent *e = &g->sums[i];
        sqlite3_bind_int64(g->ins_sum, 1, (int64_t)e->k);
        sqlite3_bind_int64(g->ins_sum, 2, id);
        sqlite3_bind_int64(g->ins_sum, 3, e->min_start);
        sqlite3_bind_int64(g->ins_sum, 4, e->max_start);
        sqlite3_bind_int64(g->ins_sum, 5, e->min_dur);
        sqlite3_bind_int64(g->ins_sum, 6, e->max_dur);
        if ((rc = run(g->ins_sum)) != SQLITE_DONE) return rc;
    }
    for (size_t i = 0; i < g->tags.cap; i++) {
        if (!g->tags.v[i]) continue;
        sqlite3_bind_int64(g->ins_tag, 1, (int64_t)g->tags.v[i]);
        sqlite3_bind_int64(g->ins_tag, 2, id);
        if ((rc = run(g->ins_tag)) != SQLITE_DONE) return rc;
    }
    if (g->tags.has_zero) {
        sqlite3_bind_int64(g->ins_tag, 1, 0);
        sqlite3_bind_int64(g->ins_tag, 2, id);
        if ((rc = run(g->ins_tag)) != SQLITE_DONE) return rc;
    }
    tr_counter_add(s->m.chunks, 1);
    chunk_reset(g);
    return 0;
}

static uint64_t op_key(const char *svc, const char *name, int kind) {
    return key_operation(svc, name) ^ ((uint64_t)(kind + 1) * 0x9e3779b97f4a7c15ULL);
}

/* Makes sure the operation list has (svc, name, kind), refreshing its last_seen hourly. */
static int note_operation(traces_store *s, const char *svc, const char *name, int kind, int64_t now_ms) {
    ingest_state *g = s->ing;
    uint64_t k = op_key(svc, name, kind);
    /* open addressing over g->ops (capacity a power of two, load <= 1/2) */
    if ((g->nops + 1) * 2 > g->capops) {
        size_t nc = g->capops ? g->capops * 2 : 1024;
        op_ent *no = calloc(nc, sizeof *no);
        if (!no) return SQLITE_NOMEM;
        for (size_t i = 0; i < g->capops; i++)
            if (g->ops[i].k) {
                size_t j = g->ops[i].k & (nc - 1);
                while (no[j].k) j = (j + 1) & (nc - 1);
                no[j] = g->ops[i];
            }
        free(g->ops);
        g->ops = no;
        g->capops = nc;
    }
    if (!k) k = 1;
    size_t j = k & (g->capops - 1);
    while (g->ops[j].k && g->ops[j].k != k) j = (j + 1) & (g->capops - 1);
    if (g->ops[j].k == k && now_ms - g->ops[j].seen_ms < 3600 * 1000) return 0;
    sqlite3_bind_text(g->ins_op, 1, svc, -1, SQLITE_STATIC);
    sqlite3_bind_text(g->ins_op, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(g->ins_op, 3, kind);
    sqlite3_bind_int64(g->ins_op, 4, now_ms);
    int rc = run(g->ins_op);
    sqlite3_clear_bindings(g->ins_op);
    if (rc != SQLITE_DONE) return rc;
    if (!g->ops[j].k) g->nops++;
    g->ops[j].k = k;
    g->ops[j].seen_ms = now_ms;
    return 0;
}

/* Adds one (limited) span to the chunk; flushes when full. */
static int chunk_add(traces_store *s, const pb_rspans *rs, const pb_sspans *ss, traces_pb_span *sp,
                     const char *svc, int64_t now_ms) {
    ingest_state *g = s->ing;
    int rc;
    if (g->src_rs != rs || !g->cur_rs) {
        if (!g->out.resource_spans) {
            g->cap_rs = 16;
            g->out.resource_spans = tr_arena_alloc(g->scratch, g->cap_rs * sizeof *g->out.resource_spans);
        } else if (g->out.n_resource_spans == g->cap_rs) {
            pb_rspans **n = tr_arena_alloc(g->scratch, g->cap_rs * 2 * sizeof *n);
            if (!n) return SQLITE_NOMEM;
            memcpy(n, g->out.resource_spans, g->cap_rs * sizeof *n);
            g->out.resource_spans = n;
            g->cap_rs *= 2;
        }
        pb_rspans *c = tr_arena_alloc(g->scratch, sizeof *c);
        if (!g->out.resource_spans || !c) return SQLITE_NOMEM;
        *c = *rs;
        c->n_scope_spans = 0;
        c->scope_spans = tr_arena_alloc(g->scratch, (rs->n_scope_spans ? rs->n_scope_spans : 1) * sizeof *c->scope_spans);
        if (!c->scope_spans) return SQLITE_NOMEM;
        g->out.resource_spans[g->out.n_resource_spans++] = c;
        g->cur_rs = c;
        g->src_rs = rs;
        g->cur_ss = NULL;
        g->src_ss = NULL;
        if (rs->resource) {
            tr_buf tmp;
            tr_buf_init(&tmp, 0);
            for (size_t i = 0; i < rs->resource->n_attributes; i++) {
                const pb_kv *kv = rs->resource->attributes[i];
                if (!kv) continue;
                size_t len;
                const char *v = traces_value_form(kv->value, &tmp, &len);
                tag_add(g, kv->key ? kv->key : "", v, len);
            }
            tr_buf_free(&tmp);
        }
    }
    if (g->src_ss != ss || !g->cur_ss) {
        pb_sspans *c = tr_arena_alloc(g->scratch, sizeof *c);
        if (!c) return SQLITE_NOMEM;
        *c = *ss;
        c->n_spans = 0;
        c->spans = tr_arena_alloc(g->scratch, (ss->n_spans ? ss->n_spans : 1) * sizeof *c->spans);
        if (!c->spans) return SQLITE_NOMEM;
        g->cur_rs->scope_spans[g->cur_rs->n_scope_spans++] = c;
        g->cur_ss = c;
        g->src_ss = ss;
    }
    g->cur_ss->spans[g->cur_ss->n_spans++] = sp;
    g->nspans++;
    int64_t st = clamp_ns(sp->start_time_unix_nano), du = span_dur(sp);
    if (st < g->min_start) g->min_start = st;
    if (st > g->max_start) g->max_start = st;
    if (du < g->min_dur) g->min_dur = du;
    if (du > g->max_dur) g->max_dur = du;
    u64set_add(&g->traces, (uint64_t)key_trace(sp->trace_id.data));
    const char *name = sp->name ? sp->name : "";
    sum_update(g, key_service(svc), st, du);
    sum_update(g, key_operation(svc, name), st, du);
    span_each_tag(sp, NULL, ss->scope, 0, tag_add, g);
    if ((rc = note_operation(s, svc, name, (int)sp->kind, now_ms))) return rc;
    if (g->nspans >= CHUNK_SPANS) {
        if ((rc = chunk_flush(s))) return rc;
    }
    return 0;
}

void ingest_one(traces_store *s, tq_item *it) {
    ingest_state *g = s->ing;
    const traces_request *req = it->req;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t now_ms = traces_now_ms();
    uint64_t stored = 0, rejected = 0;
    int rc = run(g->begin);
    chunk_reset(g);
    g->dropped_attrs = g->dropped_events = g->dropped_links = g->truncated = 0;
    if (rc != SQLITE_DONE) goto fail;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const pb_rspans *rs = req->resource_spans[i];
        if (!rs) continue;
        const char *svc = traces_service_name(rs->resource);
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const pb_sspans *ss = rs->scope_spans[j];
            if (!ss) continue;
            for (size_t k = 0; k < ss->n_spans; k++) {
                traces_pb_span *sp = ss->spans[k];
                if (!sp) continue;
                if (sp->trace_id.len != 16 || all_zero(sp->trace_id.data, 16) || sp->span_id.len != 8 ||
                    all_zero(sp->span_id.data, 8)) {
                    rejected++;
                    continue;
                }
                sp = limit_span(s, sp);
                if ((rc = chunk_add(s, rs, ss, sp, svc, now_ms))) goto fail;
                stored++;
            }
        }
    }
    if ((rc = chunk_flush(s))) goto fail;
    if ((rc = run(g->commit)) != SQLITE_DONE) goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tr_histogram_observe(s->m.tx_seconds, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    tr_counter_add(s->m.stored, stored);
    tr_counter_add(s->m.rejected, rejected);
    tr_counter_add(s->m.dropped_attrs, g->dropped_attrs);
    tr_counter_add(s->m.dropped_events, g->dropped_events);
    tr_counter_add(s->m.dropped_links, g->dropped_links);
    tr_counter_add(s->m.truncated_values, g->truncated);
    it->status = TRACES_OK;
    it->rejected = rejected;
    if (rejected)
        snprintf(it->msg, sizeof it->msg, "%llu span(s) rejected: trace_id must be 16 and span_id 8 bytes, not all zero",
                 (unsigned long long)rejected);
    goto out;
fail:
    snprintf(it->msg, sizeof it->msg, "trace store write failed: %s", rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->wdb));
    TR_ERROR("trace store write failed", "error=\"%s\" code=%d", sqlite3_errmsg(s->wdb), rc);
    if (!sqlite3_get_autocommit(s->wdb)) run(g->rollback);
    chunk_reset(g);
    /* operations noted in the rolled-back transaction must be written again */
    if (g->ops) memset(g->ops, 0, g->capops * sizeof *g->ops);
    g->nops = 0;
    it->status = TRACES_UNAVAILABLE;
    it->rejected = 0;
out:
    tr_arena_free(g->scratch);
    g->scratch = tr_arena_new(0);
    if (!g->scratch) abort(); /* cannot go on without memory for the next export */
}

/* ---- retention ---- */

typedef struct del_ctx {
    ingest_state *g;
    u64set tags;
} del_ctx;

static int tag_collect(void *ctx, const char *k, const char *v, size_t vlen) {
    u64set_add(&((del_ctx *)ctx)->tags, key_tag(k, v, vlen));
    return 0;
}

/* Deletes one chunk and the index rows that point at it. Returns spans removed or -1. */
static int64_t delete_chunk(traces_store *s, int64_t id) {
    ingest_state *g = s->ing;
    sqlite3_stmt *st = g->sel_chunk;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) { sqlite3_reset(st); return 0; }
    int64_t nspans = sqlite3_column_int64(st, 2);
    tr_arena *a = tr_arena_new(0);
    traces_request *req = a ? chunk_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                                           (size_t)sqlite3_column_int64(st, 1), a) : NULL;
    sqlite3_reset(st);
    del_ctx dc = {g, {0}};
    u64set traces = {0}, sums = {0};
    if (req) {
        for (size_t i = 0; i < req->n_resource_spans; i++) {
            const pb_rspans *rs = req->resource_spans[i];
            const char *svc = traces_service_name(rs->resource);
            if (rs->resource) {
                tr_buf tmp;
                tr_buf_init(&tmp, 0);
                for (size_t k = 0; k < rs->resource->n_attributes; k++) {
                    const pb_kv *kv = rs->resource->attributes[k];
                    size_t len;
                    const char *v = traces_value_form(kv->value, &tmp, &len);
                    tag_collect(&dc, kv->key ? kv->key : "", v, len);
                }
                tr_buf_free(&tmp);
            }
            for (size_t j = 0; j < rs->n_scope_spans; j++) {
                const pb_sspans *ss = rs->scope_spans[j];
                for (size_t k = 0; k < ss->n_spans; k++) {
                    const traces_pb_span *sp = ss->spans[k];
                    if (sp->trace_id.len == 16) u64set_add(&traces, (uint64_t)key_trace(sp->trace_id.data));
                    u64set_add(&sums, key_service(svc));
                    u64set_add(&sums, key_operation(svc, sp->name ? sp->name : ""));
                    span_each_tag(sp, NULL, ss->scope, 0, tag_collect, &dc);
                }
            }
        }
    } else {
        TR_WARN("trace store: undecodable chunk deleted; its index rows stay until rebuilt", "chunk=%lld", (long long)id);
    }
    int rc = SQLITE_DONE;
    struct { u64set *set; sqlite3_stmt *st; } del[] = {{&traces, g->del_trace}, {&sums, g->del_sum}, {&dc.tags, g->del_tag}};
    for (int d = 0; d < 3 && rc == SQLITE_DONE; d++) {
        u64set *set = del[d].set;
        for (size_t i = 0; i < set->cap && rc == SQLITE_DONE; i++) {
            if (!set->v[i]) continue;
            sqlite3_bind_int64(del[d].st, 1, (int64_t)set->v[i]);
            sqlite3_bind_int64(del[d].st, 2, id);
            rc = run(del[d].st);
        }
        if (set->has_zero && rc == SQLITE_DONE) {
            sqlite3_bind_int64(del[d].st, 1, 0);
            sqlite3_bind_int64(del[d].st, 2, id);
            rc = run(del[d].st);
        }
    }
    if (rc == SQLITE_DONE) {
        sqlite3_bind_int64(g->del_chunk, 1, id);
        rc = run(g->del_chunk);
    }
    u64set_free(&traces);
    u64set_free(&sums);
    u64set_free(&dc.tags);
    tr_arena_free(a);
    return rc == SQLITE_DONE ? nspans : -1;
}

static int64_t pragma_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int retention_step(traces_store *s, int64_t now_ms, int64_t *deleted) {
    ingest_state *g = s->ing;
    sqlite3 *db = s->wdb;
    *deleted = 0;
    int64_t ids[RETENTION_BATCH_CHUNKS];
    int n = 0;
    if (s->cfg.retention_ms > 0) {
        int64_t cutoff = (now_ms - s->cfg.retention_ms) * 1000000;
        sqlite3_bind_int64(g->sel_expired, 1, cutoff);
        sqlite3_bind_int(g->sel_expired, 2, RETENTION_BATCH_CHUNKS);
        while (n < RETENTION_BATCH_CHUNKS && sqlite3_step(g->sel_expired) == SQLITE_ROW)
            ids[n++] = sqlite3_column_int64(g->sel_expired, 0);
        sqlite3_reset(g->sel_expired);
    }
    int64_t psize = pragma_int(db, "PRAGMA page_size");
    int64_t freel = pragma_int(db, "PRAGMA freelist_count");
    if (n == 0 && s->cfg.retention_bytes > 0) {
        int64_t used = (pragma_int(db, "PRAGMA page_count") - freel) * psize;
        if (used > s->cfg.retention_bytes) {
            sqlite3_bind_int(g->sel_oldest, 1, RETENTION_BATCH_CHUNKS);
            while (n < RETENTION_BATCH_CHUNKS && sqlite3_step(g->sel_oldest) == SQLITE_ROW)
                ids[n++] = sqlite3_column_int64(g->sel_oldest, 0);
            sqlite3_reset(g->sel_oldest);
        }
    }
    if (n > 0) {
        if (run(g->begin) != SQLITE_DONE) return 0;
        int64_t total = 0;
        for (int i = 0; i < n; i++) {
            int64_t d = delete_chunk(s, ids[i]);
            if (d < 0) {
                TR_ERROR("trace retention failed", "error=\"%s\"", sqlite3_errmsg(db));
                run(g->rollback);
                return 0;
            }
            total += d;
        }
        if (s->cfg.retention_ms > 0 && now_ms - s->cfg.retention_ms > 0) {
            sqlite3_bind_int64(g->del_ops, 1, now_ms - s->cfg.retention_ms);
            run(g->del_ops);
        }
        if (run(g->commit) != SQLITE_DONE) {
            TR_ERROR("trace retention commit failed", "error=\"%s\"", sqlite3_errmsg(db));
            run(g->rollback);
            return 0;
        }
        /* forget cached operations so that deleted rows are written again when seen */
        memset(g->ops, 0, g->capops * sizeof *g->ops);
        g->nops = 0;
        *deleted = total;
        tr_counter_add(s->m.expired, (uint64_t)total);
        return 1;
    }
    if (freel > 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%d)", VACUUM_STEP_PAGES);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
            while (sqlite3_step(st) == SQLITE_ROW) {}
            sqlite3_finalize(st);
        }
        return freel > VACUUM_STEP_PAGES;
    }
    return 0;
}
