/* The writer thread's work: one SQLite transaction per export (limits applied, spans cut
 * into compressed one-service chunks, index rows written, the previous bucket sealed into
 * posting rows when a new one starts, COMMIT), and retention in bounded batches (oldest or
 * expired chunks with their index rows, postings of emptied buckets, then incremental vacuum
 * in small steps). */
#include <assert.h>
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

/* One (key, chunk offset, bounds) fact while sealing a bucket. */
typedef struct seal_ent {
    uint64_t k;
    uint32_t off;
    int64_t b[SUM_BOUNDS];
} seal_ent;

typedef struct ingest_counts {
    uint64_t stored, rejected, dropped_attrs, dropped_events, dropped_links, truncated;
} ingest_counts;

typedef struct ingest_state {
    sqlite3_stmt *begin, *commit, *rollback, *savepoint, *release, *rollback_to;
    sqlite3_stmt *ins_chunk, *ins_trace, *ins_sum, *ins_tag, *ins_op;
    sqlite3_stmt *sel_expired, *sel_oldest, *sel_chunk, *del_chunk, *del_trace, *del_trace_fwd, *del_sum,
        *del_tag, *del_ops;
    sqlite3_stmt *seal_tags, *seal_sums, *seal_traces, *ins_tag_post, *ins_sum_post, *ins_trace_post,
        *del_tag_fwd, *del_sum_fwd, *set_open, *sel_live, *del_tag_post, *del_sum_post;
    int64_t next_id; /* the id of the next chunk (ids only grow, even over deleted ones) */
    int64_t open_b;  /* the bucket whose index facts are still per chunk */
    uint64_t *keys;  /* scratch for sorted keys */
    size_t capkeys;
    seal_ent *seal; /* scratch for sealing */
    size_t capseal;
    ZSTD_CCtx *zc;
    tr_arena *scratch; /* per export: limited copies and the chunk's arrays */
    /* the chunk being built */
    traces_request out;
    size_t cap_rs;
    pb_rspans *cur_rs;
    const pb_rspans *src_rs;
    pb_sspans *cur_ss;
    const pb_sspans *src_ss;
    const char *cur_svc; /* the service of every span in the chunk being built */
    size_t nspans;
    int64_t min_start, max_start, min_dur, max_dur;
    u64set tags, traces;
    sum_ent *sums;
    size_t nsums, capsums;
    op_ent *ops;
    size_t nops, capops;
    chunk_writer packed;
    tr_buf comp;
    uint64_t dropped_attrs, dropped_events, dropped_links, truncated;
} ingest_state;

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

#define STR_(x) #x
#define XSTR(x) STR_(x)

/* Where chunk ids and the open bucket stand, from the database (at start, and after a
 * rolled-back export moved them in memory only). */
static int ingest_load_position(traces_store *s, char *err, size_t errlen) {
    ingest_state *g = s->ing;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->wdb,
                           "SELECT (SELECT v FROM meta WHERE k='open_bucket'), (SELECT max(id) FROM chunk)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(s->wdb));
        return -1;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        g->open_b = sqlite3_column_int64(st, 0);
        int64_t maxid = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 1);
        /* ids restart after the newest chunk, never inside a sealed bucket */
        g->next_id = maxid + 1;
        if (g->next_id < g->open_b * CHUNK_BUCKET) g->next_id = g->open_b * CHUNK_BUCKET;
        if (g->next_id < 1) g->next_id = 1;
        rc = SQLITE_OK;
    } else {
        snprintf(err, errlen, "trace database: %s", sqlite3_errmsg(s->wdb));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

int ingest_init(traces_store *s, char *err, size_t errlen) {
    ingest_state *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->ing = g;
    sqlite3 *db = s->wdb;
    g->zc = ZSTD_createCCtx();
    g->scratch = tr_arena_new(0);
    tr_buf_init(&g->comp, 0);
    if (!g->zc || !g->scratch) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (prep(db, "BEGIN IMMEDIATE", &g->begin, err, errlen) || prep(db, "COMMIT", &g->commit, err, errlen) ||
        prep(db, "ROLLBACK", &g->rollback, err, errlen) ||
        prep(db, "SAVEPOINT export", &g->savepoint, err, errlen) ||
        prep(db, "RELEASE export", &g->release, err, errlen) ||
        prep(db, "ROLLBACK TO export", &g->rollback_to, err, errlen) ||
        prep(db,
             "INSERT INTO chunk(id,min_start,max_start,min_dur,max_dur,nspans,rawlen,data,crc) "
             "VALUES(?,?,?,?,?,?,?,?,?)",
             &g->ins_chunk, err, errlen) ||
        prep(db, "INSERT INTO trace_idx(chunk,tids) VALUES(?,?)", &g->ins_trace, err, errlen) ||
        prep(db, "INSERT INTO sum_idx(chunk,ents) VALUES(?,?)", &g->ins_sum, err, errlen) ||
        prep(db, "INSERT INTO tag_idx(chunk,keys) VALUES(?,?)", &g->ins_tag, err, errlen) ||
        prep(db,
             "INSERT INTO operation(service,name,kind,last_seen,crc) VALUES(?,?,?,?,?) "
             "ON CONFLICT(service,name,kind) DO UPDATE SET last_seen=excluded.last_seen, crc=excluded.crc",
             &g->ins_op, err, errlen) ||
        prep(db, "SELECT id FROM chunk WHERE max_start < ? ORDER BY max_start LIMIT ?", &g->sel_expired, err,
             errlen) ||
        prep(db, "SELECT id FROM chunk ORDER BY id LIMIT ?", &g->sel_oldest, err, errlen) ||
        prep(db, "SELECT c.nspans, t.tids FROM chunk c LEFT JOIN trace_idx t ON t.chunk=c.id WHERE c.id=?",
             &g->sel_chunk, err, errlen) ||
        prep(db, "DELETE FROM chunk WHERE id=?", &g->del_chunk, err, errlen) ||
        prep(db, "DELETE FROM trace_post WHERE b=?2 >> " XSTR(TRACE_BUCKET_BITS) " AND tid=?1 AND chunk=?2",
             &g->del_trace, err, errlen) ||
        prep(db, "DELETE FROM trace_idx WHERE chunk=?", &g->del_trace_fwd, err, errlen) ||
        prep(db, "DELETE FROM sum_idx WHERE chunk=?", &g->del_sum, err, errlen) ||
        prep(db, "DELETE FROM tag_idx WHERE chunk=?", &g->del_tag, err, errlen) ||
        prep(db, "DELETE FROM operation WHERE last_seen < ?", &g->del_ops, err, errlen) ||
        prep(db, "SELECT chunk,keys FROM tag_idx WHERE chunk BETWEEN ?1 AND ?2", &g->seal_tags, err,
             errlen) ||
        prep(db, "SELECT chunk,ents FROM sum_idx WHERE chunk BETWEEN ?1 AND ?2", &g->seal_sums, err,
             errlen) ||
        prep(db, "SELECT chunk,tids FROM trace_idx WHERE chunk BETWEEN ?1 AND ?2", &g->seal_traces, err,
             errlen) ||
        prep(db,
             "INSERT OR IGNORE INTO trace_post(b,tid,chunk) VALUES(?2 >> " XSTR(TRACE_BUCKET_BITS) ",?1,?2)",
             &g->ins_trace_post, err, errlen) ||
        prep(db, "INSERT OR REPLACE INTO tag_post(b,h,bits) VALUES(?,?,?)", &g->ins_tag_post, err, errlen) ||
        prep(db, "INSERT OR REPLACE INTO sum_post(b,k,bits,bounds) VALUES(?,?,?,?)", &g->ins_sum_post, err,
             errlen) ||
        prep(db, "DELETE FROM tag_idx WHERE chunk BETWEEN ?1 AND ?2", &g->del_tag_fwd, err, errlen) ||
        prep(db, "DELETE FROM sum_idx WHERE chunk BETWEEN ?1 AND ?2", &g->del_sum_fwd, err, errlen) ||
        prep(db, "UPDATE meta SET v=? WHERE k='open_bucket'", &g->set_open, err, errlen) ||
        prep(db, "SELECT 1 FROM chunk WHERE id BETWEEN ?1 AND ?2 LIMIT 1", &g->sel_live, err, errlen) ||
        prep(db, "DELETE FROM tag_post WHERE b=?", &g->del_tag_post, err, errlen) ||
        prep(db, "DELETE FROM sum_post WHERE b=?", &g->del_sum_post, err, errlen))
        return -1;
    return ingest_load_position(s, err, errlen);
}

void ingest_fini(traces_store *s) {
    ingest_state *g = s->ing;
    if (!g) return;
    sqlite3_stmt *all[] = {g->begin,        g->commit,         g->rollback,    g->savepoint, g->release,
                           g->rollback_to,  g->ins_chunk,      g->ins_trace,   g->ins_sum,   g->ins_tag,
                           g->ins_op,       g->sel_expired,    g->sel_oldest,  g->sel_chunk, g->del_chunk,
                           g->del_trace,    g->del_sum,        g->del_tag,     g->del_ops,   g->del_trace_fwd,
                           g->seal_traces,  g->ins_trace_post, g->seal_tags,   g->seal_sums, g->ins_tag_post,
                           g->ins_sum_post, g->del_tag_fwd,    g->del_sum_fwd, g->set_open,  g->sel_live,
                           g->del_tag_post, g->del_sum_post};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    ZSTD_freeCCtx(g->zc);
    tr_arena_free(g->scratch);
    chunk_writer_free(&g->packed);
    tr_buf_free(&g->comp);
    u64set_free(&g->tags);
    u64set_free(&g->traces);
    free(g->sums);
    free(g->ops);
    free(g->keys);
    free(g->seal);
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
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t c = max;
    while (c > 0 && ((unsigned char)s[c] & 0xC0) == 0x80)
        c--;
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
        if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
            v->string_value)
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
            nv->string_value =
                tr_arena_strndup(g->scratch, v->string_value, utf8_cut(v->string_value, len, maxv));
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
#define COPY_SPAN()                                                                                          \
    do {                                                                                                     \
        if (o == sp) {                                                                                       \
            o = tr_arena_alloc(g->scratch, sizeof *o);                                                       \
            if (!o) return sp;                                                                               \
            *o = *sp;                                                                                        \
        }                                                                                                    \
    } while (0)
    if (c->max_attributes && sp->n_attributes > c->max_attributes) {
        COPY_SPAN();
        uint32_t d = (uint32_t)(sp->n_attributes - c->max_attributes);
        o->n_attributes = c->max_attributes;
        o->dropped_attributes_count += d;
        g->dropped_attrs += d;
    }
    pb_kv **a = limit_values(g, c->max_value_bytes, o->attributes, o->n_attributes);
    if (a != o->attributes) {
        COPY_SPAN();
        o->attributes = a;
    }
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
            if (pass) {
                if (!o->links[i]) continue;
                kvs = o->links[i]->attributes;
                nkv = o->links[i]->n_attributes;
            } else {
                if (!o->events[i]) continue;
                kvs = o->events[i]->attributes;
                nkv = o->events[i]->n_attributes;
            }
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
    return sp->end_time_unix_nano > sp->start_time_unix_nano
               ? clamp_ns(sp->end_time_unix_nano - sp->start_time_unix_nano)
               : 0;
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

static int sum_cmp(const void *a, const void *b) {
    const sum_ent *x = a, *y = b;
    return x->k < y->k ? -1 : x->k > y->k;
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

/* Room for n keys in g->keys. */
static int keys_room(ingest_state *g, size_t n) {
    if (n <= g->capkeys) return 0;
    size_t nc = g->capkeys ? g->capkeys : 256;
    while (nc < n)
        nc *= 2;
    uint64_t *nk = realloc(g->keys, nc * sizeof *nk);
    if (!nk) return -1;
    g->keys = nk;
    g->capkeys = nc;
    return 0;
}

static int seal_cmp(const void *a, const void *b) {
    const seal_ent *x = a, *y = b;
    if (x->k != y->k) return x->k < y->k ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Reads the per-chunk facts of bucket `b` from one forward table into g->seal (sorted by key,
 * then chunk). Tag blobs hold keys only; summary blobs hold key + bounds. */
static int seal_read(ingest_state *g, sqlite3_stmt *st, int64_t b, size_t stride, size_t *n) {
    *n = 0;
    sqlite3_bind_int64(st, 1, b * CHUNK_BUCKET);
    sqlite3_bind_int64(st, 2, b * CHUNK_BUCKET + CHUNK_BUCKET - 1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t off = (uint32_t)(sqlite3_column_int64(st, 0) & (CHUNK_BUCKET - 1));
        const uint8_t *p = sqlite3_column_blob(st, 1);
        size_t cnt = (size_t)sqlite3_column_bytes(st, 1) / stride;
        if (*n + cnt > g->capseal) {
            size_t nc = g->capseal ? g->capseal : 4096;
            while (nc < *n + cnt)
                nc *= 2;
            seal_ent *ns = realloc(g->seal, nc * sizeof *ns);
            if (!ns) {
                sqlite3_reset(st);
                return SQLITE_NOMEM;
            }
            g->seal = ns;
            g->capseal = nc;
        }
        for (size_t i = 0; i < cnt; i++) {
            seal_ent *e = &g->seal[(*n)++];
            e->k = get_u64(p + i * stride);
            e->off = off;
            for (int j = 0; j < SUM_BOUNDS; j++)
                e->b[j] = stride > 8 ? (int64_t)get_u64(p + i * stride + 8 * (j + 1)) : 0;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return rc;
    if (*n > 1) qsort(g->seal, *n, sizeof *g->seal, seal_cmp);
    return 0;
}

/* Turns the per-chunk facts of bucket b into posting rows, in key order (so the inserts are
 * appends at the B-tree's right edge), and drops the per-chunk tag and summary rows (the
 * trace lists stay: retention needs them). */
static int seal_bucket(traces_store *s, int64_t b) {
    ingest_state *g = s->ing;
    int rc;
    size_t n;
    if ((rc = seal_read(g, g->seal_traces, b, 8, &n))) return rc;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(g->ins_trace_post, 1, (int64_t)g->seal[i].k);
        sqlite3_bind_int64(g->ins_trace_post, 2, b * CHUNK_BUCKET + g->seal[i].off);
        if ((rc = run(g->ins_trace_post)) != SQLITE_DONE) return rc;
    }
    for (int pass = 0; pass < 2; pass++) {
        int sums = pass == 1;
        if ((rc = seal_read(g, sums ? g->seal_sums : g->seal_tags, b, sums ? SUM_ENT_BYTES : 8, &n)))
            return rc;
        sqlite3_stmt *ins = sums ? g->ins_sum_post : g->ins_tag_post;
        uint8_t bounds[CHUNK_BUCKET * SUM_BOUNDS * 8];
        for (size_t i = 0; i < n;) {
            size_t j = i, nb = 0;
            uint64_t bits = 0;
            for (; j < n && g->seal[j].k == g->seal[i].k; j++) {
                /* a chunk's keys are distinct; a damaged row could still repeat one: keep one */
                if (bits & (1ULL << g->seal[j].off)) continue;
                bits |= 1ULL << g->seal[j].off;
                for (int x = 0; sums && x < SUM_BOUNDS; x++, nb += 8)
                    put_u64(bounds + nb, (uint64_t)g->seal[j].b[x]);
            }
            sqlite3_bind_int64(ins, 1, b);
            sqlite3_bind_int64(ins, 2, (int64_t)g->seal[i].k);
            sqlite3_bind_int64(ins, 3, (int64_t)bits);
            if (sums) sqlite3_bind_blob(ins, 4, bounds, (int)nb, SQLITE_STATIC);
            if ((rc = run(ins)) != SQLITE_DONE) return rc;
            i = j;
        }
        sqlite3_stmt *del = sums ? g->del_sum_fwd : g->del_tag_fwd;
        sqlite3_bind_int64(del, 1, b * CHUNK_BUCKET);
        sqlite3_bind_int64(del, 2, b * CHUNK_BUCKET + CHUNK_BUCKET - 1);
        if ((rc = run(del)) != SQLITE_DONE) return rc;
    }
    return 0;
}

/* Writes the chunk being built with its index rows. Returns 0 or an SQLite error code. */
static int chunk_flush(traces_store *s) {
    ingest_state *g = s->ing;
    if (!g->nspans) return 0;
    int64_t id = g->next_id, b = id >> BUCKET_BITS;
    int rc;
    if (b > g->open_b) {
        /* the first chunk of a new bucket: the buckets before it get their posting rows */
        for (int64_t ob = g->open_b; ob < b; ob++)
            if ((rc = seal_bucket(s, ob))) return rc;
        g->open_b = b;
        sqlite3_bind_int64(g->set_open, 1, b);
        if ((rc = run(g->set_open)) != SQLITE_DONE) return rc;
    }
    size_t raw;
    const uint8_t *packed = chunk_encode(&g->packed, &g->out, &raw);
    if (!packed) return SQLITE_NOMEM;
    size_t bound = ZSTD_compressBound(raw);
    tr_buf_reset(&g->comp);
    if (tr_buf_reserve(&g->comp, bound)) return SQLITE_NOMEM;
    size_t clen = ZSTD_compressCCtx(g->zc, g->comp.data, bound, packed, raw, 1);
    if (ZSTD_isError(clen)) return SQLITE_ERROR;
    /* the chunk's trace keys, sorted (searched by binary search while the bucket is open) */
    size_t ntr = g->traces.n + 1, ntag = g->tags.n + 1;
    /* room for: keys then their blob (2 words per key), or the summary blob */
    if (keys_room(g, 2 * (ntr + ntag) + g->nsums * (1 + SUM_BOUNDS))) return SQLITE_NOMEM;
    uint64_t *tids = g->keys;
    ntr = u64set_sorted(&g->traces, tids);
    uint8_t *tblob = (uint8_t *)(g->keys + ntr); /* 8 bytes per key, after the keys */
    for (size_t i = 0; i < ntr; i++)
        put_u64(tblob + 8 * i, tids[i]);
    sqlite3_stmt *st = g->ins_chunk;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, g->min_start);
    sqlite3_bind_int64(st, 3, g->max_start);
    sqlite3_bind_int64(st, 4, g->min_dur);
    sqlite3_bind_int64(st, 5, g->max_dur);
    sqlite3_bind_int64(st, 6, (int64_t)g->nspans);
    sqlite3_bind_int64(st, 7, (int64_t)raw);
    sqlite3_bind_blob(st, 8, g->comp.data, (int)clen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, chunk_crc(id, (int64_t)raw, (int64_t)g->nspans, g->comp.data, clen));
    rc = run(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) return rc;
    g->next_id++;
    sqlite3_bind_int64(g->ins_trace, 1, id);
    sqlite3_bind_blob(g->ins_trace, 2, tblob, (int)(8 * ntr), SQLITE_STATIC);
    if ((rc = run(g->ins_trace)) != SQLITE_DONE) return rc;
    /* tags: sorted keys as one blob */
    uint64_t *tk = g->keys;
    ntag = u64set_sorted(&g->tags, tk);
    uint8_t *kb = (uint8_t *)(g->keys + ntag);
    for (size_t i = 0; i < ntag; i++)
        put_u64(kb + 8 * i, tk[i]);
    sqlite3_bind_int64(g->ins_tag, 1, id);
    sqlite3_bind_blob(g->ins_tag, 2, kb, (int)(8 * ntag), SQLITE_STATIC);
    if ((rc = run(g->ins_tag)) != SQLITE_DONE) return rc;
    /* summaries: sorted by key, each with its bounds */
    if (g->nsums > 1) qsort(g->sums, g->nsums, sizeof *g->sums, sum_cmp);
    uint8_t *sb = (uint8_t *)g->keys;
    for (size_t i = 0; i < g->nsums; i++) {
        const sum_ent *e = &g->sums[i];
        uint8_t *p = sb + i * SUM_ENT_BYTES;
        put_u64(p, e->k);
        put_u64(p + 8, (uint64_t)e->min_start);
        put_u64(p + 16, (uint64_t)e->max_start);
        put_u64(p + 24, (uint64_t)e->min_dur);
        put_u64(p + 32, (uint64_t)e->max_dur);
    }
    sqlite3_bind_int64(g->ins_sum, 1, id);
    sqlite3_bind_blob(g->ins_sum, 2, sb, (int)(g->nsums * SUM_ENT_BYTES), SQLITE_STATIC);
    if ((rc = run(g->ins_sum)) != SQLITE_DONE) return rc;
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
                while (no[j].k)
                    j = (j + 1) & (nc - 1);
                no[j] = g->ops[i];
            }
        free(g->ops);
        g->ops = no;
        g->capops = nc;
    }
    if (!k) k = 1;
    size_t j = k & (g->capops - 1);
    while (g->ops[j].k && g->ops[j].k != k)
        j = (j + 1) & (g->capops - 1);
    if (g->ops[j].k == k && now_ms - g->ops[j].seen_ms < 3600 * 1000) return 0;
    sqlite3_bind_text(g->ins_op, 1, svc, -1, SQLITE_STATIC);
    sqlite3_bind_text(g->ins_op, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(g->ins_op, 3, kind);
    sqlite3_bind_int64(g->ins_op, 4, now_ms);
    sqlite3_bind_int64(g->ins_op, 5, operation_crc(svc, name, kind));
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
    /* one service per chunk: then a service's summary and a tag in the same chunk are facts of
     * the same spans, and searches decode no chunk of another service */
    if (g->nspans && strcmp(g->cur_svc, svc) != 0 && (rc = chunk_flush(s))) return rc;
    g->cur_svc = svc;
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
        c->scope_spans =
            tr_arena_alloc(g->scratch, (rs->n_scope_spans ? rs->n_scope_spans : 1) * sizeof *c->scope_spans);
        if (!c->scope_spans) return SQLITE_NOMEM;
        g->out.resource_spans[g->out.n_resource_spans++] = c;
        g->cur_rs = c;
        g->src_rs = rs;
        g->cur_ss = NULL;
        g->src_ss = NULL;
        resource_each_tag(rs->resource, tag_add, g);
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

/* The spans of one export into the open transaction (inside its savepoint). Returns 0 or an
 * SQLite error code; fills the export's counts. */
static int ingest_body(traces_store *s, tq_item *it, int64_t now_ms, ingest_counts *c) {
    ingest_state *g = s->ing;
    const traces_request *req = it->req;
    int rc;
    chunk_reset(g);
    g->dropped_attrs = g->dropped_events = g->dropped_links = g->truncated = 0;
    memset(c, 0, sizeof *c);
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
                    c->rejected++;
                    continue;
                }
                sp = limit_span(s, sp);
                if ((rc = chunk_add(s, rs, ss, sp, svc, now_ms))) return rc;
                c->stored++;
            }
        }
    }
    if ((rc = chunk_flush(s))) return rc;
    c->dropped_attrs = g->dropped_attrs;
    c->dropped_events = g->dropped_events;
    c->dropped_links = g->dropped_links;
    c->truncated = g->truncated;
    return 0;
}

/* After a rollback: chunk ids, the open bucket and the operations noted moved in memory
 * only. */
static void ingest_forget(traces_store *s) {
    ingest_state *g = s->ing;
    chunk_reset(g);
    if (g->ops) memset(g->ops, 0, g->capops * sizeof *g->ops);
    g->nops = 0;
    char e[200];
    if (ingest_load_position(s, e, sizeof e))
        TR_ERROR_LIMITED(NULL, "trace store: cannot reload the chunk position", "error=\"%s\"", e);
}

static void item_failed(traces_store *s, tq_item *it, int rc) {
    snprintf(it->msg, sizeof it->msg, "trace store write failed: %s",
             rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errstr(rc));
    (void)s;
    it->status = TRACES_UNAVAILABLE;
    it->rejected = 0;
}

static void scratch_reset(ingest_state *g) {
    tr_arena_free(g->scratch);
    g->scratch = tr_arena_new(0);
    if (!g->scratch) abort(); /* cannot go on without memory for the next export */
}

void ingest_batch(traces_store *s, tq_item **items, size_t n) {
    ingest_state *g = s->ing;
    sqlite3 *db = s->wdb;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t now_ms = tr_now_ms();
    ingest_counts c[INGEST_BATCH_MAX];
    int ok[INGEST_BATCH_MAX] = {0};
    assert(n <= INGEST_BATCH_MAX);
    size_t i = 0;
    while (i < n) { /* one transaction for items[first..i) */
        size_t first = i;
        int rc = run(g->begin);
        if (rc != SQLITE_DONE) {
            traces_storage_error(db, rc, "export");
            for (; i < n; i++)
                item_failed(s, items[i], rc);
            ingest_forget(s);
            break;
        }
        int restart = 0;
        for (; i < n && !restart; i++) {
            rc = run(g->savepoint);
            if (rc == SQLITE_DONE) rc = ingest_body(s, items[i], now_ms, &c[i]);
            if (rc == 0) rc = run(g->release);
            scratch_reset(g);
            if (rc == SQLITE_DONE) {
                ok[i] = 1;
                continue;
            }
            traces_storage_error(db, rc, "export");
            item_failed(s, items[i], rc);
            if (sqlite3_get_autocommit(db)) {
                /* SQLite rolled the whole transaction back (disk full, I/O error): the
                 * exports before it in this batch are lost too; the rest get a new one */
                for (size_t j = first; j < i; j++)
                    if (ok[j]) {
                        ok[j] = 0;
                        item_failed(s, items[j], rc);
                    }
                restart = 1;
            } else {
                run(g->rollback_to);
                run(g->release);
            }
            ingest_forget(s);
        }
        if (restart) continue;
        rc = run(g->commit);
        if (rc != SQLITE_DONE) {
            traces_storage_error(db, rc, "commit");
            if (!sqlite3_get_autocommit(db)) run(g->rollback);
            for (size_t j = first; j < i; j++)
                if (ok[j]) {
                    ok[j] = 0;
                    item_failed(s, items[j], rc);
                }
            ingest_forget(s);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tr_histogram_observe(s->m.tx_seconds,
                         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    for (i = 0; i < n; i++) {
        if (!ok[i]) continue;
        tq_item *it = items[i];
        tr_counter_add(s->m.stored, c[i].stored);
        tr_counter_add(s->m.rejected, c[i].rejected);
        tr_counter_add(s->m.dropped_attrs, c[i].dropped_attrs);
        tr_counter_add(s->m.dropped_events, c[i].dropped_events);
        tr_counter_add(s->m.dropped_links, c[i].dropped_links);
        tr_counter_add(s->m.truncated_values, c[i].truncated);
        it->status = TRACES_OK;
        it->rejected = c[i].rejected;
        it->msg[0] = 0;
        if (c[i].rejected)
            snprintf(it->msg, sizeof it->msg,
                     "%llu span(s) rejected: trace_id must be 16 and span_id 8 bytes, not all zero",
                     (unsigned long long)c[i].rejected);
    }
}

/* ---- retention ---- */

/* Deletes one chunk with its trace rows and (open bucket) per-chunk index rows. The tag and
 * summary postings of a sealed bucket stay until the whole bucket is gone (searches skip
 * chunks that no longer exist). Returns spans removed or -1. */
static int64_t delete_chunk(traces_store *s, int64_t id) {
    ingest_state *g = s->ing;
    sqlite3_stmt *st = g->sel_chunk;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : -1;
    }
    int64_t nspans = sqlite3_column_int64(st, 0);
    const uint8_t *p = sqlite3_column_blob(st, 1);
    size_t n = (size_t)sqlite3_column_bytes(st, 1) / 8;
    rc = SQLITE_DONE;
    for (size_t i = 0; p && i < n && rc == SQLITE_DONE; i++) {
        sqlite3_bind_int64(g->del_trace, 1, (int64_t)get_u64(p + 8 * i));
        sqlite3_bind_int64(g->del_trace, 2, id);
        rc = run(g->del_trace);
    }
    sqlite3_reset(st);
    sqlite3_stmt *by_id[] = {g->del_trace_fwd, g->del_tag, g->del_sum, g->del_chunk};
    for (int i = 0; i < 4 && rc == SQLITE_DONE; i++) {
        sqlite3_bind_int64(by_id[i], 1, id);
        rc = run(by_id[i]);
    }
    return rc == SQLITE_DONE ? nspans : -1;
}

/* Drops the posting rows of sealed bucket b when none of its chunks is left. */
static int drop_bucket_if_empty(traces_store *s, int64_t b) {
    ingest_state *g = s->ing;
    if (b >= g->open_b) return SQLITE_DONE;
    sqlite3_bind_int64(g->sel_live, 1, b * CHUNK_BUCKET);
    sqlite3_bind_int64(g->sel_live, 2, b * CHUNK_BUCKET + CHUNK_BUCKET - 1);
    int rc = sqlite3_step(g->sel_live);
    sqlite3_reset(g->sel_live);
    if (rc == SQLITE_ROW) return SQLITE_DONE;
    if (rc != SQLITE_DONE) return rc;
    sqlite3_bind_int64(g->del_tag_post, 1, b);
    if ((rc = run(g->del_tag_post)) != SQLITE_DONE) return rc;
    sqlite3_bind_int64(g->del_sum_post, 1, b);
    return run(g->del_sum_post);
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
        /* the cap holds the file and its WAL: the live pages must leave room for the WAL's
         * budget (the WAL is checkpointed and cut back to it, below and at every commit) */
        int64_t used = (pragma_int(db, "PRAGMA page_count") - freel) * psize;
        /* quarantined chunks are kept whatever the cap: they must not push good spans out */
        int64_t qbytes = pragma_int(db, "SELECT coalesce(sum(length(data)), 0) FROM quarantine");
        if (qbytes > 0) used -= qbytes;
        if (used + traces_wal_budget(s->cfg.retention_bytes) > s->cfg.retention_bytes) {
            sqlite3_bind_int(g->sel_oldest, 1, RETENTION_BATCH_CHUNKS);
            while (n < RETENTION_BATCH_CHUNKS && sqlite3_step(g->sel_oldest) == SQLITE_ROW)
                ids[n++] = sqlite3_column_int64(g->sel_oldest, 0);
            sqlite3_reset(g->sel_oldest);
        }
    }
    if (n > 0) {
        int brc = run(g->begin);
        if (brc != SQLITE_DONE) {
            traces_storage_error(db, brc, "retention");
            return 0;
        }
        int64_t total = 0;
        for (int i = 0; i < n; i++) {
            int64_t d = delete_chunk(s, ids[i]);
            if (d < 0) {
                traces_storage_error(db, sqlite3_errcode(db), "retention");
                run(g->rollback);
                return 0;
            }
            total += d;
        }
        for (int i = 0; i < n; i++) {
            int64_t b = ids[i] >> BUCKET_BITS;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++)
                seen = ids[j] >> BUCKET_BITS == b;
            if (!seen && drop_bucket_if_empty(s, b) != SQLITE_DONE) {
                traces_storage_error(db, sqlite3_errcode(db), "retention");
                run(g->rollback);
                return 0;
            }
        }
        if (s->cfg.retention_ms > 0 && now_ms - s->cfg.retention_ms > 0) {
            sqlite3_bind_int64(g->del_ops, 1, now_ms - s->cfg.retention_ms);
            run(g->del_ops);
        }
        if (run(g->commit) != SQLITE_DONE) {
            traces_storage_error(db, sqlite3_errcode(db), "retention");
            run(g->rollback);
            return 0;
        }
        /* forget cached operations so that deleted rows are written again when seen */
        if (g->ops) memset(g->ops, 0, g->capops * sizeof *g->ops);
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
            while (sqlite3_step(st) == SQLITE_ROW) {
            }
            sqlite3_finalize(st);
        }
        if (freel > VACUUM_STEP_PAGES) return 1;
    }
    if (s->cfg.retention_bytes > 0 && (traces_wal_bytes(s) > traces_wal_budget(s->cfg.retention_bytes) ||
                                       traces_disk_bytes(s) > s->cfg.retention_bytes)) {
        /* the WAL outgrew its budget (a long read kept the automatic checkpoints from
         * resetting it, or a large batch), or the file still has the length it had before
         * the pages freed above (it shrinks at a checkpoint): copy back and truncate now */
        int busy = 0, logged = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &logged, &done);
        busy = rc == SQLITE_BUSY;
        if (rc != SQLITE_OK && !busy) traces_storage_error(db, rc, "checkpoint");
    }
    return 0;
}
