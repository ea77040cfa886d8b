/* The route handlers of the HTTP module, registered by the application. */
#ifndef TR_API_H
#define TR_API_H

#include "http.h"
#include "otlp/otlp.h"

/* OTLP/HTTP; ctx is the otlp_receiver. Route it with TR_HTTP_INGEST. */
void tr_api_otlp_http(struct evhttp_request *req, const char *path, void *ctx);

/* GET /healthz, /-/healthy, /-/ready: 200 "ok" (ready once start-up finished). */
void tr_api_health(struct evhttp_request *req, const char *path, void *ctx);
/* GET /metrics: tricorder's own metrics in the Prometheus text format. */
void tr_api_selfmetrics(struct evhttp_request *req, const char *path, void *ctx);

/* Self-scrape: every interval_ms, tricorder's own /metrics are parsed and appended to `db`
 * with job="tricorder" and instance=`instance` (the first time ~2 s after start). Returns
 * NULL when out of memory. Free before closing the store. */
struct tsdb;
typedef struct tr_selfscrape tr_selfscrape;
tr_selfscrape *tr_selfscrape_start(struct event_base *base, struct tsdb *db, int64_t interval_ms,
                                   const char *instance);
void tr_selfscrape_free(tr_selfscrape *s);
/* One scrape at t_ms, committed before it returns when the store has no event base.
 * Returns the samples appended, or -1 when out of memory. */
long tr_selfscrape_once(struct tsdb *db, const char *instance, int64_t t_ms);

/* The Prometheus metadata, status, admin (flush/snapshot), export and federate routes over the
 * metrics store (prom_meta.c, prom_export.c). */
struct tsdb;
void tr_api_prom_routes(tr_http *h, struct tsdb *db);

/* Jaeger's query API (/api/services, /api/services/{s}/operations, /api/operations,
 * /api/traces, /api/traces/{id}, /api/dependencies, /api/v3/services, /api/v3/operations,
 * /api/v3/traces, /api/v3/traces/{id}); ctx is the traces_store. Route each path to it
 * (TR_HTTP_PREFIX for /api/traces/, /api/services/, /api/v3/traces/). */
void tr_api_jaeger(struct evhttp_request *req, const char *path, void *ctx);

/* Remote write 1.0 and VictoriaMetrics' text import (remote_write.c, prom_import.c): the
 * context shared by both, appending to `db`. max_body bounds a body as sent, max_uncompressed
 * after decompression. Returns NULL on OOM; free after the HTTP server. */
struct tsdb;
typedef struct tr_ingest tr_ingest;
tr_ingest *tr_ingest_new(struct tsdb *db, size_t max_body, size_t max_uncompressed);
void tr_ingest_free(tr_ingest *g);
/* POST /api/v1/write; ctx is the tr_ingest. Route it with TR_HTTP_INGEST. */
void tr_api_remote_write(struct evhttp_request *req, const char *path, void *ctx);
/* POST /api/v1/import/prometheus (?extra_label=k=v, ?timestamp=ms); ctx is the tr_ingest.
 * Route it with TR_HTTP_INGEST. */
void tr_api_prom_import(struct evhttp_request *req, const char *path, void *ctx);

#endif
