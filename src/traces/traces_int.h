/* Private layout of the trace store, shared by its files and its unit tests.
 *
 * Storage model: the spans of one export are cut into chunks of at most CHUNK_SPANS spans of
 * one service; a chunk is stored as one row holding the zstd-compressed protobuf of an
 * ExportTraceServiceRequest (resource and scope kept). Chunk ids only grow (the writer hands
 * them out); every CHUNK_BUCKET consecutive ids form a bucket. Indexes point at chunks:
 *   per chunk, for its whole life:
 *     trace_idx(chunk, tids)     the chunk's trace keys (tid = low 64 bits of the trace id)
 *   per chunk, while its bucket is the open (newest) one:
 *     tag_idx(chunk, keys)       the chunk's hashed key=value tags
 *     sum_idx(chunk, ents)       per service and service+operation key: min/max span start
 *                                and duration of those spans
 *   per sealed bucket (written when the first chunk of a later bucket is):
 *     tag_post(b, h, bits)       which of the bucket's chunks hold tag h (bit i: chunk
 *                                b*CHUNK_BUCKET+i)
 *     sum_post(b, k, bits, bounds)  the same for summary key k, with each chunk's bounds
 *     trace_post(tb, tid, chunk) one row per trace per chunk, tb = chunk >> TRACE_BUCKET_BITS
 * Why: an index row per key per chunk made ingest write ~2 rows per span at random places of
 * large B-trees (every commit rewrote hundreds of pages). Now an export writes a few rows per
 * chunk, and sealing writes each bucket's postings once, in key order, at the right edge of
 * their tables. A search walks buckets newest first, intersects the bitmaps, decodes only the
 * chunks that hold every key and checks every span exactly. */
#ifndef TR_TRACES_INT_H
#define TR_TRACES_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "traces.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/pbwire.h"
#include "util/selfmon.h"
#include "util/text.h"

#define TRACES_APP_ID 0x54524346 /* "TRCF": PRAGMA application_id of our databases */
#define TRACES_SCHEMA_VERSION 3  /* PRAGMA user_version this build writes (3: chunk CRCs, quarantine) */
#define CHUNK_SPANS 128          /* spans per chunk row */
#define BUCKET_BITS 6            /* tag and summary postings: 64 chunks per bucket (bits) */
#define CHUNK_BUCKET (1 << BUCKET_BITS)
#define TRACE_BUCKET_BITS 10      /* trace_post: 1024 chunks per bucket (few probes per lookup) */
#define SUM_BOUNDS 4              /* min_start, max_start, min_dur, max_dur */
#define RETENTION_BATCH_CHUNKS 16 /* chunks deleted per retention transaction */
#define VACUUM_STEP_PAGES 256
#define TRACES_STR_(x) #x
#define TRACES_XSTR(x) TRACES_STR_(x)
#define TRACES_MAX_DAMAGE_REPORT                                                                             \
    32 /* damaged chunk ids named per answer (more are skipped too) */ /* pages released per                 \
                                                                          incremental_vacuum step */

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
enum {
    TQ_INGEST = 1,
    TQ_JOB = 2,
    TQ_CALL = 3,
    TQ_QUARANTINE = 4
}; /* quarantine: call_arg is the chunk id, msg the reason */

typedef struct tqueue {
    tq_item *head, *tail;
} tqueue;

typedef struct traces_metrics {
    tr_metric *stored, *rejected, *expired, *db_bytes, *tx_seconds, *search_seconds;
    tr_metric *dropped_attrs, *dropped_events, *dropped_links, *truncated_values;
    tr_metric *chunks, *quarantined, *quarantine_rows;
} traces_metrics;

/* An open-addressing set of 64-bit keys (0 is stored out of band). */
typedef struct u64set {
    uint64_t *v;
    size_t cap, n;
    int has_zero;
} u64set;
int u64set_add(u64set *s, uint64_t k); /* 1 when new, 0 when present, -1 on OOM */
/* The keys in ascending order into out (room for s->n + 1); returns how many. */
size_t u64set_sorted(const u64set *s, uint64_t *out);
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
    u64set damage_seen;        /* chunk ids already sent to quarantine (under mu) */
    traces_metrics m;
};

struct traces_reader {
    traces_store *s;
    sqlite3 *db;
    sqlite3_stmt *st_chunk, *st_trace, *st_trace_fwd, *st_sum_post, *st_tag_post, *st_sum_fwd, *st_tag_fwd,
        *st_all, *st_range, *st_begin, *st_end;
    void *dctx; /* ZSTD_DCtx reused for every chunk this reader opens */
    /* damaged chunks met by the current search or lookup (reported with its result) */
    int64_t dmg[TRACES_MAX_DAMAGE_REPORT];
    size_t ndmg;
};

/* A decoded chunk: the request lives in `arena`. */
typedef struct chunk_data {
    int64_t id;
    traces_request *req;
} chunk_data;

struct traces_result {
    tr_arena *arena;         /* the trace and span arrays */
    tr_arena **chunk_arenas; /* the decoded chunks the spans point into */
    size_t nchunk_arenas;
    traces_trace *traces;
    size_t n, cap;
    int64_t damaged[TRACES_MAX_DAMAGE_REPORT]; /* chunks left out: damaged */
    size_t ndamaged;
};

/* ---- codec.c ---- */
/* A protobuf-c allocator drawing from `a` (free is a no-op), valid while `a` lives. */
ProtobufCAllocator traces__arena_allocator(tr_arena *a);

/* ---- store.c ---- */
void traces_complete(traces_store *s, tq_item *it); /* queue for the loop thread */
int traces_db_open(const char *path, int readonly, sqlite3 **out, char *err, size_t errlen);
int traces_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);

/* Moves chunk `id` with every row that points at it into the quarantine table (inside the
 * caller's transaction). Returns 1 when moved, 0 when it was not there, or -1 (SQLite error). */
int chunk_quarantine(sqlite3 *db, int64_t id, const char *reason, int64_t now_ms);
/* Counts a failed storage operation in tricorder_storage_errors_total{store="traces",kind}
 * and logs it, rate-limited per kind, with SQLite's message and the OS errno behind it.
 * `what` says which operation failed ("export", "retention", "quarantine", …). Returns the
 * kind ("disk_full", "io", "corrupt", "readonly", "busy", "other"). */
const char *traces_storage_error(sqlite3 *db, int rc, const char *what);
/* Asks the writer thread to quarantine chunk `id` (once per id and run); any thread. */
void traces_report_damage(traces_store *s, int64_t id, const char *reason);

/* What SQLite's recovery will make of traces.db-wal: the first frame of this WAL generation
 * whose checksum fails (-1: none), the frames and commits from it on (dropped by recovery),
 * the commits before it and the frames up to the last of them (kept), and the frames the
 * wal-index (-shm) of the last process counted as committed (0: no usable index) and how many
 * of those it had copied into the database: index_frames above both frames_kept and
 * backfilled means the WAL was cut or damaged. Returns 0, or -1 when out of memory. */
typedef struct traces_wal_report {
    int64_t bad_frame, frames_dropped, commits_dropped, commits_kept, frames_kept, index_frames, backfilled;
} traces_wal_report;
int traces_wal_scan(const char *dbpath, traces_wal_report *out);
/* Copies traces.db-wal to traces.db-wal.damaged-<unix time> (path in copy). Returns 0 or -1. */
int traces_wal_keep_copy(const char *dbpath, char *copy, size_t cap);

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
int span_each_tag(const traces_pb_span *sp, const traces_pb_resource *res, const traces_pb_scope *sc,
                  int with_resource, tag_fn fn, void *ctx);
/* The same for the attributes of a resource only. */
int resource_each_tag(const traces_pb_resource *res, tag_fn fn, void *ctx);
/* The protobuf of a chunk, written back to front into a buffer that is reused (data in
 * buf[pos..cap)). */
typedef struct chunk_writer {
    uint8_t *buf;
    size_t cap, pos;
    int oom;
} chunk_writer;
/* Encodes req as protobuf-c would pack it (the same bytes; unknown fields are not kept) in
 * one pass. Returns the data (valid until the next call) and sets *len, or NULL when out of
 * memory. */
const uint8_t *chunk_encode(chunk_writer *w, const traces_request *req, size_t *len);
void chunk_writer_free(chunk_writer *w);

/* A chunk decompressed but unpacked only on demand: the wire format is walked once to find
 * every span's bytes and the resource and scope it belongs to; a span's ids, name and times
 * are read straight from its bytes, and a span, resource or scope is unpacked (into the
 * view's arena, once) only when asked for. Searches and lookups touch a few spans of a chunk:
 * unpacking all of them was most of their time. */
typedef struct chunk_view chunk_view;
typedef struct span_peek {
    const uint8_t *tid, *sid, *parent; /* NULL when absent */
    size_t tid_len, sid_len, parent_len;
    const char *name; /* not NUL-terminated */
    size_t name_len;
    uint64_t start, end;
    int kind, status_code; /* OTLP enums (0 when absent) */
} span_peek;
/* Decompresses a chunk blob into `a` (dctx: a reusable decompression context, or NULL) and
 * walks it. Returns NULL when the blob or its protobuf is damaged. */
chunk_view *chunk_open(const void *blob, size_t len, size_t rawlen, tr_arena *a, void *dctx);
size_t chunk_nspans(const chunk_view *v);
/* Fields of span i read from its bytes (0), or -1 when they are damaged. */
int chunk_peek(const chunk_view *v, size_t i, span_peek *out);
/* Span i, its resource (may be NULL) and scope (may be NULL), unpacked once; the span is
 * NULL when its bytes do not unpack. */
const traces_pb_span *chunk_span(chunk_view *v, size_t i);
const traces_pb_resource *chunk_resource(chunk_view *v, size_t i);
const traces_pb_scope *chunk_scope(chunk_view *v, size_t i);
/* The service name of span i's resource (see traces_service_name). */
const char *chunk_service(chunk_view *v, size_t i);
/* Whether the bytes of span i, its resource or its scope contain `needle`. */
int chunk_bytes_contain(const chunk_view *v, size_t i, const char *needle, size_t n);
/* Whether a span of this view could have the tag k=v judging by bytes alone: 0 only when it
 * certainly has not (see the proof in codec.c). */
int chunk_may_have_tag(const chunk_view *v, size_t i, const char *k, const char *val);

/* The CRC-32C stored with a chunk row: over its id, rawlen and nspans (little-endian 64-bit
 * words) and then its compressed bytes, so a row whose blob moved to another id or whose
 * lengths changed fails too. */
uint32_t chunk_crc(int64_t id, int64_t rawlen, int64_t nspans, const void *data, size_t len);
/* The CRC-32C of an operation row: service, NUL, name, NUL, kind (little-endian 32-bit). */
uint32_t operation_crc(const char *service, const char *name, int kind);

/* Checks a chunk row as read back: the CRC (skipped when has_crc is 0: rows written before
 * schema 3) and that it decompresses and walks. Returns NULL when intact (the view in *out
 * when out is not NULL), else why not ("checksum mismatch", "undecodable"). */
const char *chunk_check(int64_t id, const void *blob, size_t len, int64_t rawlen, int64_t nspans, int has_crc,
                        uint32_t crc, tr_arena *a, void *dctx, chunk_view **out);

/* Little-endian 64-bit words in index blobs (the file format, whatever the host). */
void put_u64(uint8_t *p, uint64_t v);
uint64_t get_u64(const uint8_t *p);
/* Index of key k in a blob of n sorted entries of `stride` bytes that start with a u64 key,
 * or -1. */
long blob_find(const uint8_t *p, size_t n, size_t stride, uint64_t k);
/* An "open bucket" summary entry in sum_idx.ents: key then SUM_BOUNDS int64 (40 bytes). */
#define SUM_ENT_BYTES (8 * (1 + SUM_BOUNDS))

/* The part of --trace-retention-size left to the WAL (traces.db-wal): a quarter of the cap,
 * between 64 KiB and 64 MiB; the WAL is checkpointed and cut back to it. */
int64_t traces_wal_budget(int64_t retention_bytes);
/* Bytes of traces.db-wal now. */
int64_t traces_wal_bytes(traces_store *s);

/* ---- ingest.c (writer thread) ---- */
int ingest_init(traces_store *s, char *err, size_t errlen);
void ingest_fini(traces_store *s);
/* Writes up to INGEST_BATCH_MAX exports in one transaction (one fsync with --trace-sync
 * full), each in its own savepoint so that one failing export fails alone; sets each item's
 * status, rejected count and message (the caller completes them). */
#define INGEST_BATCH_MAX 64
void ingest_batch(traces_store *s, tq_item **items, size_t n);
/* One bounded step of retention; returns 1 when more work is pending. */
int retention_step(traces_store *s, int64_t now_ms, int64_t *deleted);

/* ---- query.c ---- */
int reader_prepare(traces_reader *r, char *err, size_t errlen);
void reader_finalize(traces_reader *r);

#endif
