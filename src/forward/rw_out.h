/* Remote write out: tricorder forwards the samples, exemplars and metadata it stores to
 * Prometheus remote-write 1.0 receivers (Prometheus, Mimir, Thanos receive, Cortex,
 * VictoriaMetrics), reading them from the metrics WAL as Prometheus's WAL watcher does.
 *
 * Each target has one reader thread that tails the WAL segments (series records feed its own
 * ref -> labels map, sample and exemplar records its batches) and a set of shard threads (1 to
 * max_shards, as many as the backlog needs) that send the batches over HTTP/1.1 with
 * keep-alive, retrying 5xx, 429 and network errors with exponential back-off (Retry-After
 * honoured). A batch is acknowledged when every shard has sent its part; only then the
 * target's position (segment, offset) is written to <data-dir>/remote_write/<id>.pos, so a
 * target outage or a restart of tricorder loses nothing still in the WAL. The WAL keeps the
 * segments the slowest target still needs (tsdb_options.wal_keep) up to max_backlog bytes;
 * past that the oldest go, and their samples are counted as dropped. */
#ifndef TR_FORWARD_RW_OUT_H
#define TR_FORWARD_RW_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"

typedef struct rw_header {
    char *name, *value;
} rw_header;

/* One target, as --remote-write-url or an entry of --remote-write-config gives it. */
typedef struct rw_target_config {
    char *url;
    char *name;         /* remote_name label; default: a hash of the URL */
    rw_header *headers; /* extra request headers */
    size_t nheaders;
    char *basic_user, *basic_pass;
    char *bearer_token;
    char *selector;                 /* only series matching this PromQL selector are sent; NULL: all */
    int64_t max_samples_per_send;   /* 0: 2000 */
    int64_t batch_send_deadline_ms; /* 0: 5 s */
    int64_t max_shards;             /* 0: 8 */
    int64_t min_backoff_ms;         /* 0: 30 ms */
    int64_t max_backoff_ms;         /* 0: 5 s */
    int64_t timeout_ms;             /* per request; 0: 30 s */
    int64_t metadata_interval_ms;   /* 0: 1 m; < 0: metadata not sent */
    /* tls_config (https:// URLs): CA file (NULL: the system store), client certificate and key
     * (mutual TLS), the name to verify instead of the URL's host, and no verification at all */
    char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
    int tls_insecure;
} rw_target_config;

typedef struct rw_out_config {
    const char *user_agent; /* e.g. "tricorder/0.1.0" */
    const char *data_dir;   /* positions go to <data_dir>/remote_write, the WAL is <data_dir>/metrics/wal */
    int64_t max_backlog_bytes; /* WAL kept for lagging targets; 0: 1 GiB */
    rw_target_config *targets;
    size_t ntargets;
} rw_out_config;

typedef struct rw_out rw_out;

/* Parses --remote-write-url values (one per line) and the --remote-write-config YAML file
 * (either may be NULL) into targets appended to *out (n updated). Returns 0, or -1 with a
 * one-line message in err. */
int rw_config_load(const char *urls, const char *yaml_file, rw_target_config **out, size_t *n, char *err,
                   size_t errlen);
void rw_config_free(rw_target_config *t, size_t n);

/* Checks the targets and loads their positions; nothing runs yet. Call before tsdb_open and
 * pass rw_out_wal_keep / the rw_out as tsdb_options.wal_keep(_ctx). The config is copied. */
rw_out *rw_out_new(const rw_out_config *c, char *err, size_t errlen);
uint32_t rw_out_wal_keep(void *rw_out, uint32_t upto);
/* Starts the reader and shard threads (after tsdb_open; db gives the metadata). */
int rw_out_start(rw_out *o, tsdb *db, char *err, size_t errlen);
/* Stops: the readers send what they have read for up to timeout_ms, then save positions. */
void rw_out_stop(rw_out *o, int64_t timeout_ms);
void rw_out_free(rw_out *o);

/* ---- internals shared by the module's files (and tested) ---- */

/* A parsed http:// or https:// URL. */
typedef struct rw_url {
    char host[256];
    char port[8];
    char path[2048];
    int https;
    struct tr_tls_client *tls; /* https: the client context (rw_url_tls_setup), else NULL */
} rw_url;
int rw_url_parse(const char *url, rw_url *u, char *err, size_t errlen);
/* For an https URL, builds u->tls from c's tls_config (checks the files). 0, or -1 (err). */
int rw_url_tls_setup(rw_url *u, const rw_target_config *c, char *err, size_t errlen);
void rw_url_free(rw_url *u);

/* An HTTP/1.1 response head. */
typedef struct rw_http_resp {
    int status;
    int64_t content_length; /* -1: none */
    int chunked;
    int close;              /* Connection: close (or HTTP/1.0 without keep-alive) */
    int64_t retry_after_ms; /* -1: none */
} rw_http_resp;
/* Parses a response head in p[0..n). Returns its length (through the blank line), 0 when more
 * bytes are needed, -1 when it is malformed. now_ms (Unix ms) turns an HTTP-date Retry-After
 * into a delay. Heads longer than 64 KiB are malformed. */
long rw_http_parse_head(const char *p, size_t n, int64_t now_ms, rw_http_resp *r);

/* Back-off: the delay before retry number `attempt` (0 = first retry): min * 2^attempt capped
 * at max; a Retry-After (>= 0) wins when it is longer, capped at max_retry_after_ms. */
int64_t rw_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, int64_t retry_after_ms);

/* A WAL position. */
typedef struct rw_pos {
    uint32_t seg;
    uint64_t off;
} rw_pos;
int rw_pos_load(const char *path, rw_pos *p);       /* 0, or -1 (absent or unreadable) */
int rw_pos_save(const char *path, const rw_pos *p); /* durable (tmp + fsync + rename) */

/* Segment numbers in a WAL dir, ascending (malloc'd), and the newest checkpoint (-1: none). */
uint32_t *rw_wal_segments(const char *wal_dir, size_t *n, long *checkpoint);

#endif
