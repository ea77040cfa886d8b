/* The other ways metrics come in besides OTLP: Prometheus remote write 1.0 (POST /api/v1/write)
 * and VictoriaMetrics' text import (POST /api/v1/import/prometheus). Private to the HTTP module:
 * the handlers' shared context. The decoders live on the ingest side (otlp/promwire.h). */
#ifndef TR_HTTP_INGEST_H
#define TR_HTTP_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "metrics/metrics.h"
#include "otlp/promwire.h"
#include "util/arena.h"
#include "util/selfmon.h"

struct tr_ingest {
    tsdb *db;
    size_t max_body;         /* compressed (as sent) */
    size_t max_uncompressed; /* after snappy or gzip */
    size_t max_import;       /* the text import, as sent and after gzip (--max-import-bytes) */
    tr_metric *requests[2], *errors[2], *stored[2], *refused[2];
    uint8_t *plain; /* remote write: the uncompressed body, reused between requests */
    size_t plain_cap;
};

enum { TR_INGEST_RW = 0, TR_INGEST_TEXT = 1 };

/* POST /api/v1/write (remote_write.c); ctx is the tr_api_env. Routed by prom_import.c. */
void tr_api__remote_write(struct evhttp_request *req, const tr_http_match *m, void *ctx);

#endif
