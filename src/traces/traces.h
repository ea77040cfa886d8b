/* The trace store: every acknowledged span lives in one SQLite database under the data dir,
 * is found again by service, operation, tags, duration and trace id, and expires with the
 * retention. This module is the only owner of sqlite3 handles; it knows nothing of HTTP or of
 * the OTLP receiver, and talks to the event loop only through a wake callback. */
#ifndef TR_TRACES_H
#define TR_TRACES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "otlp_collector.pb-c.h"
#include "util/buf.h"

typedef Opentelemetry__Proto__Collector__V1__ExportTraceServiceRequest traces_request;
typedef Opentelemetry__Proto__Trace__V1__Span traces_pb_span;
typedef Opentelemetry__Proto__Resource__V1__Resource traces_pb_resource;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope traces_pb_scope;
typedef Opentelemetry__Proto__Common__V1__AnyValue traces_pb_value;

typedef struct traces_store traces_store;
typedef struct traces_reader traces_reader;

typedef struct traces_config {
    const char *dir;          /* the data dir; the database is <dir>/traces.db */
    int64_t retention_ms;     /* spans whose start is older than this are deleted; 0 = never */
    int64_t retention_bytes;  /* the database is kept under this size; 0 = no cap */
    uint32_t max_attributes;  /* per span, event and link; 0 = no limit */
    uint32_t max_value_bytes; /* string and bytes values are cut to this; 0 = no limit */
    uint32_t max_events;      /* per span; 0 = no limit */
    uint32_t max_links;       /* per span; 0 = no limit */
    int readers;              /* reader threads for traces_job_submit (default 1) */
    /* 0 (default): synchronous=FULL, every commit is fsynced before its exports are
     * acknowledged (they survive a power cut); exports queued meanwhile share the next
     * commit. 1: synchronous=NORMAL, a commit reaches the OS only (it survives kill -9, not
     * a power cut: the last commits before it may be lost). */
    int sync_normal;
    /* Called from the store's threads whenever completions are waiting; the owner of the
     * event loop then calls traces_run_completions() on the loop thread. */
    void (*wake)(void *ctx);
    void *wake_ctx;
} traces_config;

/* Opens (creating or upgrading) the database and starts the writer, retention and reader
 * threads. Returns NULL with a one-line reason in err when the file cannot be used: not a
 * database, another program's database, a schema newer than this build, or an I/O error.
 * Close with traces_close(). */
traces_store *traces_open(const traces_config *cfg, char *err, size_t errlen);
/* Finishes queued writes, stops the threads, runs the completions still due on the calling
 * thread, and closes the database. NULL is ignored. */
void traces_close(traces_store *s);
/* Runs the completions (export acknowledgements, finished jobs) queued by the store's
 * threads. Call on the event-loop thread after a wake. */
void traces_run_completions(traces_store *s);

/* Outcome of an ingest. */
enum { TRACES_OK = 0, TRACES_UNAVAILABLE = 1 };
typedef void (*traces_done_fn)(void *cookie, int status, uint64_t rejected, const char *msg);

/* Queues one export for the writer thread. `req` must stay valid and unchanged until `done`
 * is called; done runs exactly once, from traces_run_completions() (so on the loop thread),
 * after the spans are committed (TRACES_OK; `rejected` spans without a valid trace or span
 * id were left out and `msg` says why) or after the write failed (TRACES_UNAVAILABLE:
 * nothing stored). */
void traces_submit(traces_store *s, const traces_request *req, traces_done_fn done, void *cookie);

/* ---- reading ---- */

/* A job runs `run(reader, arg)` on a reader thread (with that thread's own connection),
 * then `done(arg)` on the loop thread. Returns 0, or -1 when the store is closing (nothing
 * will be called). */
typedef void (*traces_job_run)(traces_reader *r, void *arg);
typedef void (*traces_job_done)(void *arg);
int traces_job_submit(traces_store *s, traces_job_run run, traces_job_done done, void *arg);

/* A reader connection for the calling thread (tests, tools). Free with traces_reader_close. */
traces_reader *traces_reader_open(traces_store *s, char *err, size_t errlen);
void traces_reader_close(traces_reader *r);

/* A list of strings, freed with traces_strings_free. */
typedef struct traces_strings {
    char **v;
    size_t n;
} traces_strings;
void traces_strings_free(traces_strings *l);

/* Service names (sorted). Returns 0, or -1 with err set (storage error). */
int traces_services(traces_reader *r, traces_strings *out, char *err, size_t errlen);

typedef struct traces_operation {
    char *name;
    int kind; /* OTLP SpanKind, 0..5 */
} traces_operation;
typedef struct traces_operations {
    traces_operation *v;
    size_t n;
} traces_operations;
/* Operations of `service` (kind < 0: every kind), sorted by name then kind. A NULL service
 * gives every service's operations. Returns 0 or -1 with err set. */
int traces_operations_list(traces_reader *r, const char *service, int kind, traces_operations *out, char *err,
                           size_t errlen);
void traces_operations_free(traces_operations *o);

/* One span of a result, with the resource and scope it was exported under. */
typedef struct traces_span {
    const traces_pb_span *span;
    const traces_pb_resource *resource; /* may be NULL */
    const traces_pb_scope *scope;       /* may be NULL */
} traces_span;

typedef struct traces_trace {
    uint8_t id[16];
    traces_span *spans; /* in storage order */
    size_t n;
} traces_trace;

/* Traces found; everything inside lives until traces_result_free. */
typedef struct traces_result traces_result;
size_t traces_result_count(const traces_result *res);
const traces_trace *traces_result_trace(const traces_result *res, size_t i);
void traces_result_free(traces_result *res);
/* The chunks found damaged while answering (checksum mismatch or undecodable): their spans
 * are absent from the result (never served as data) and each is being moved to the
 * quarantine table. Sets *ids (valid as long as res) and returns how many (at most 32 named;
 * more are skipped all the same). */
size_t traces_result_damaged(const traces_result *res, const int64_t **ids);

/* A search: a trace matches when one of its spans meets every criterion. */
typedef struct traces_query {
    const char *service;   /* NULL: any service */
    const char *operation; /* NULL: any operation */
    int64_t start_ns;      /* span start in [start_ns, end_ns] */
    int64_t end_ns;
    int64_t min_dur_ns;          /* 0: no lower bound */
    int64_t max_dur_ns;          /* 0: no upper bound */
    const char *const *tag_keys; /* tags compared with the string form of span, resource,
                                    scope, event and link attributes and the Jaeger tags */
    const char *const *tag_values;
    size_t ntags;
    int limit; /* at most this many traces (>= 1) */
} traces_query;

/* Runs a search; *out gets the matching traces, whole, newest first. Returns 0, or -1 with
 * err set. */
int traces_search(traces_reader *r, const traces_query *q, traces_result **out, char *err, size_t errlen);
/* Fetches traces by id (16 bytes each, big-endian; a 64-bit id has 8 zero bytes first).
 * Found traces come in the order asked, duplicates once; missing ones are absent. */
int traces_get(traces_reader *r, const uint8_t (*ids)[16], size_t n, traces_result **out, char *err,
               size_t errlen);

/* Parent → child service call counts between spans starting in [from_ns, to_ns]. */
typedef struct traces_dependency {
    char *parent, *child;
    uint64_t count;
} traces_dependency;
typedef struct traces_dependencies {
    traces_dependency *v;
    size_t n;
    int64_t damaged[32]; /* chunks left out because damaged (see traces_result_damaged) */
    size_t ndamaged;
} traces_dependencies;
int traces_dependencies_list(traces_reader *r, int64_t from_ns, int64_t to_ns, traces_dependencies *out,
                             char *err, size_t errlen);
void traces_dependencies_free(traces_dependencies *d);

/* ---- helpers shared with the APIs ---- */

/* The Jaeger service name of a resource: its string `service.name`, "" when it has other
 * attributes only, "OTLPResourceNoServiceName" when it has none. Never NULL. */
const char *traces_service_name(const traces_pb_resource *res);
/* Jaeger's name of an OTLP span kind: "server", "client", "producer", "consumer",
 * "internal", or "" for unspecified. */
const char *traces_kind_name(int kind);
/* The string form of a value into `b` (reset first): strings are returned in place, other
 * kinds are formatted into b (ints in decimal, bools true/false, doubles shortest, bytes as
 * base64, arrays and maps as JSON text). Sets *len; the result is valid until b changes. */
const char *traces_value_form(const traces_pb_value *v, tr_buf *b, size_t *len);
/* Appends the string form of a value (the form tag searches compare with) to `out` (cap
 * bytes, NUL-terminated, cut when longer). Returns the full length. */
size_t traces_value_string(const traces_pb_value *v, char *out, size_t cap);

/* Offline check of <data_dir>/traces.db for `tricorder check` (no tricorder may be using the
 * dir): SQLite's PRAGMA integrity_check, then every chunk's CRC-32C and decoding. Writes one
 * line per damage found and a summary to `report`. With `repair`, damaged chunks are moved to
 * the quarantine table (kept, never deleted); page damage is only reported. Returns the
 * number of problems found (0: intact; an absent database is intact). */
int traces_check(const char *data_dir, int repair, FILE *report);

/* Test hooks: run the retention pass now with `now_ms` as the current time; returns the
 * spans deleted or -1. Also compacts free pages. */
int64_t traces_retention_run(traces_store *s, int64_t now_ms);
/* Bytes the database file and its WAL take. */
int64_t traces_disk_bytes(traces_store *s);

#endif
