/* The API modules of the HTTP server. Each API file registers its own routes with one call
 * that receives the environment (stores, work queue, limits); src/app.c builds the
 * environment and calls each registration once. */
#ifndef TR_API_H
#define TR_API_H

#include "http.h"
#include "otlp/otlp.h"
#include "util/workq.h"

struct tsdb;
struct traces_store;
struct tr_rules;
typedef struct tr_ingest tr_ingest;

typedef struct tr_api_env {
    struct tsdb *db;             /* the metrics store */
    struct traces_store *traces; /* the trace store */
    otlp_receiver *recv;         /* OTLP decoding and dispatch to the stores */
    tr_ingest *ingest;           /* remote write and text import → db */
    tr_workq *wq;                /* every heavy read and the flushes run here */
    struct tr_rules *rules;      /* recording and alerting rules (NULL: none) */
    size_t max_body_bytes;       /* request bodies (also bounds form bodies) */
    int64_t retention_ms;        /* --retention, as /status/runtimeinfo reports it */
    /* PromQL limits (see --query-* in config.c) */
    int64_t query_timeout_ms, query_max_samples, query_lookback_ms, query_log_threshold_ms;
    unsigned query_max_concurrency;
    int64_t jaeger_max_skew_ms; /* --jaeger-max-clock-skew-adjust (0: skew only warned about) */
} tr_api_env;

/* Queues a job for `req` on env->wq and watches the client (its going away sets the job's
 * cancel flag). Returns the flag, or NULL when the queue is full: the caller answers 503. */
volatile int *tr_api_submit(const tr_api_env *env, struct evhttp_request *req, tr_workq_fn fn,
                            tr_workq_done_fn done, void *ctx);
/* The message of a 503 for a full queue. */
#define TR_API_BUSY "too many requests in progress: the work queue is full, retry later"

/* GET /healthz, /-/healthy, /-/ready (200 "ok") and GET /metrics (tricorder's own metrics). */
void tr_api_core_routes(tr_http *h, const tr_api_env *env);
/* OTLP/HTTP: POST /v1/metrics, /v1/traces, /v1/logs (ingest routes). */
void tr_api_otlp_routes(tr_http *h, const tr_api_env *env);
/* Prometheus metadata, status and admin: /api/v1/series, /labels, /label/{name}/values,
 * /metadata, /status/buildinfo, /status/tsdb, /admin/tsdb/snapshot, /internal/force_flush. */
void tr_api_prom_meta_routes(tr_http *h, const tr_api_env *env);
/* /api/v1/export/prometheus and /federate, streamed. */
void tr_api_prom_export_routes(tr_http *h, const tr_api_env *env);
/* /api/v1/query_exemplars. */
void tr_api_prom_exemplars_routes(tr_http *h, const tr_api_env *env);
/* PromQL: /api/v1/query, /query_range, /format_query; /status/runtimeinfo. */
void tr_api_prom_query_routes(tr_http *h, const tr_api_env *env);
/* /api/v1/rules and /api/v1/alerts (env->rules). */
void tr_api_prom_rules_routes(tr_http *h, const tr_api_env *env);
/* POST /api/v1/write (remote write 1.0) and /api/v1/import/prometheus (ingest routes). */
void tr_api_ingest_routes(tr_http *h, const tr_api_env *env);
/* Jaeger's query API: /api/services, /api/services/{service}/operations, /api/operations,
 * /api/traces, /api/traces/{id}, /api/dependencies, /api/v3/services, /api/v3/operations,
 * /api/v3/traces, /api/v3/traces/{id}. */
void tr_api_jaeger_routes(tr_http *h, const tr_api_env *env);
/* Closes the trace reader connections the Jaeger jobs keep (after the work queue is freed,
 * before the trace store is closed). */
void tr_api_jaeger_fini(void);

/* Self-scrape: every interval_ms, tricorder's own /metrics are parsed and appended to `db`
 * with job="tricorder" and instance=`instance` (the first time ~2 s after start). Returns
 * NULL when out of memory. Free before closing the store. */
typedef struct tr_selfscrape tr_selfscrape;
tr_selfscrape *tr_selfscrape_start(struct event_base *base, struct tsdb *db, int64_t interval_ms,
                                   const char *instance);
void tr_selfscrape_free(tr_selfscrape *s);
/* One scrape at t_ms, committed before it returns when the store has no event base.
 * Returns the samples appended, or -1 when out of memory. */
long tr_selfscrape_once(struct tsdb *db, const char *instance, int64_t t_ms);

/* Remote write and text import's shared state, appending to `db`. max_body bounds a body as
 * sent, max_uncompressed after decompression; max_import bounds a text import (as sent and after gzip).
 * Returns NULL on OOM; free after the server. */
tr_ingest *tr_ingest_new(struct tsdb *db, size_t max_body, size_t max_uncompressed, size_t max_import);
void tr_ingest_free(tr_ingest *g);

#endif
