/* Private layout of the trace store, shared by its files and its unit tests.
 *
 * Storage model: the spans of one export are cut into chunks of at most CHUNK_SPANS spans;
 * a chunk is stored as one row holding the zstd-compressed protobuf of an
 * ExportTraceServiceRequest (resource and scope kept). Indexes point at chunks, not spans:
 *   trace_idx(tid, chunk)          one row per trace per chunk (tid = low 64 bits of the id)
 *   sum_idx(k, chunk, times, durs) one row per service and per service+operation per chunk,
 *                                  with the chunk's min/max span start and duration for them
 *   tag_idx(h, chunk)              one row per distinct hashed key=value per chunk
 * A search walks these indexes newest chunk first (a leapfrog intersection), decodes only the
 * chunks that may hold a match and checks every span exactly. This keeps about two index rows
 * per span instead of a dozen, which is what makes ingest cheap and the file small. */
#ifndef TR_TRACES_INT_H
#define TR_TRACES_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "traces.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/selfmon.h"

#define TRACES_APP_ID 0x54524346     /* "TRCF": PRAGMA application_id of our databases */
#define TRACES_SCHEMA_VERSION 1      /* PRAGMA user_version this build writes */
#define CHUNK_SPANS 64               /* spans per chunk row */
#define RETENTION_BATCH_CHUNKS 16    /* chunks deleted per retention transaction */
#define VACUUM_STEP_PAGES 256        /* pages released per incremental_vacuum step */

typedef Opentelemetry__Proto__Trace__V1__ResourceSpans pb_rspans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans pb_sspans;
typedef Opentelemetry__Proto__Trace__V1__Span__Event pb_event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link pb_link;
typedef Opentelemetry__Proto__Trace__V1__Status pb_status;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;

/* A unit of work for a thread, and later its completion on the loop thread. */
typedef struct tq_item {
    struct tq_item *next;
    int kind; /* TQ_INGEST, TQ_JOB, TQ_CALL */
    /* ingest */
    const traces_request *req;
    traces_done_fn done;
    void *cookie;
    int status;
    uint64_t rejected;
    char msg[200];
    /* job */
    traces_job_run run;
    traces_job_done jdone;
    void *arg;
    /* call (writer-thread function with a waiting caller) */
    int64_t (*call)(traces_store *s, int64_t arg);
    int64_t call_arg, call_ret;
    int call_finished;
} tq_item;
enum { TQ_INGEST = 1, TQ_JOB = 2, TQ_CALL = 3 };

typedef struct tqueue {
    tq_item *head, *tail;
} tqueue;

typedef struct traces_metrics {
    tr_metric *stored, *rejected, *expired, *db_bytes, *tx_seconds, *search_seconds;
    tr_metric *dropped_attrs, *dropped_events, *dropped_links, *truncated_values;
    tr_metric *chunks;
} traces_metrics;

/* An open-addressing set of 64-bit keys (0 is stored out of band). */
typedef struct u64set {
    uint64_t *v;
    size_t cap, n;
    int has_zero;
} u64set;
int u64set_add(u64set *s, uint64_t k); /* 1 when new, 0 when present, -1 on OOM */
int u64set_has(const u64set *s, uint64_t k);
void u64set_clear(u64set *s);
void u64set_free(u64set *s);

struct traces_store {
    traces_config cfg;
    char *path;
    sqlite3 *wdb; /* the writer connection, used only by the writer thread */
    pthread_mutex_t mu;
    pthread_cond_t cv_writer, cv_reader, cv_call;
    tqueue writes, jobs, completions;
    int closing;
    pthread_t writer;
    pthread_t *readers;
    int nreaders;
    int64_t next_retention_ms; /* writer thread only */
    int retention_busy;        /* writer: more to delete or vacuum right away */
    struct ingest_state *ing;  /* writer thread only */
    traces_metrics m;
};

struct traces_reader {
    traces_store *s;
    sqlite3 *db;
    sqlite3_stmt *st_chunk, *st_trace, *st_sum, *st_tag, *st_all;
};

/* A decoded chunk: the request lives in `arena`. */
typedef struct chunk_data {
    int64_t id;
    traces_request *req;
} chunk_data;

struct traces_result {
    tr_arena *arena;          /* the trace and span arrays */
    tr_arena **chunk_arenas;  /* the decoded chunks the spans point into */
    size_t nchunk_arenas;
    traces_trace *traces;
    size_t n, cap;
};

/* ---- store.c ---- */
void traces_complete(traces_store *s, tq_item *it); /* queue for the loop thread */
int traces_db_open(const char *path, int readonly, sqlite3 **out, char *err, size_t errlen);
int traces_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
int64_t traces_now_ms(void);

/* ---- codec.c: hashing, string forms, chunk encoding ---- */
uint64_t tr_hash64(const void *p, size_t n, uint64_t seed);
/* Index keys: a service, a service+operation, a key=value tag. */
uint64_t key_service(const char *svc);
uint64_t key_operation(const char *svc, const char *op);
uint64_t key_tag(const char *k, const char *v, size_t vlen);
/* Low 64 bits of a 16-byte trace id as the trace_idx key. */
int64_t key_trace(const uint8_t *id16);
/* Calls fn(ctx, key, value, vlen) for every tag a span is searchable by (see traces.h):
 * its attributes, synthetic Jaeger tags, scope, events, links, and (when `with_resource`)
 * the resource's attributes. Stops and returns nonzero when fn does. */
typedef int (*tag_fn)(void *ctx, const char *k, const char *v, size_t vlen);
int span_each_tag(const traces_pb_span *sp, const traces_pb_resource *res,
                  const traces_pb_scope *sc, int with_resource, tag_fn fn, void *ctx);
/* Decompresses and decodes a chunk blob into `a`. Returns NULL when damaged. */
traces_request *chunk_decode(const void *blob, size_t len, size_t rawlen, tr_arena *a);


/* ---- ingest.c (writer thread) ---- */
int ingest_init(traces_store *s, char *err, size_t errlen);
void ingest_fini(traces_store *s);
void ingest_one(traces_store *s, tq_item *it);
/* One bounded step of retention; returns 1 when more work is pending. */
int retention_step(traces_store *s, int64_t now_ms, int64_t *deleted);

/* ---- query.c ---- */
int reader_prepare(traces_reader *r, char *err, size_t errlen);
void reader_finalize(traces_reader *r);

#endif
