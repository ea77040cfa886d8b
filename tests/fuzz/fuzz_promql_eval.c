/* Fuzz target: parse then evaluate, instant and range, on a small fixed store (counters,
 * gauges, a classic histogram, stale markers, gaps). Invariants: no crash, no leak, an error
 * always has a message, and memory stays bounded by max_samples (a low limit here, so
 * explosive subqueries and ranges are refused rather than allocated). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "promql/promql.h"
#include "util/log.h"

static tsdb *db;
static char dir[64];

static void fini(void) {
    tsdb_close(db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}

static void add(tsdb_appender *a, const char *name, const char *k, const char *v, const char *k2,
                const char *v2, int n, double v0, double dv) {
    tsdb_label l[] = {{"__name__", name}, {k, v}, {k2, v2}};
    for (int i = 0; i < n; i++) {
        double x = v0 + i * dv;
        if (i == n / 2 && dv == 0) x = tsdb_stale_nan();
        if (i % 7 == 3 && dv < 0) continue; /* gaps */
        tsdb_appender_add(a, l, 3, (int64_t)i * 15000, x);
    }
}

static void init(void) {
    tr_log_set_level(TR_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/fuzz-promql-XXXXXX");
    if (!mkdtemp(dir)) abort();
    tsdb_options o = {.dir = dir};
    char err[256];
    if (tsdb_open(&o, &db, err, sizeof err)) abort();
    atexit(fini);
    tsdb_appender *a = tsdb_appender_begin(db);
    add(a, "http_requests_total", "job", "api", "instance", "0", 40, 0, 10);
    add(a, "http_requests_total", "job", "api", "instance", "1", 40, 5, 3);
    add(a, "http_requests_total", "job", "web", "instance", "0", 40, 100, -2);
    add(a, "temp", "job", "api", "instance", "0", 40, 20, 0);
    static const char *les[] = {"0.1", "0.5", "1", "+Inf"};
    for (int i = 0; i < 4; i++)
        add(a, "lat_bucket", "le", les[i], "job", "api", 40, i, i + 1);
    tsdb_appender_commit(a, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 2048) return 0;
    if (!db) init();
    promql_opts o = {.max_samples = 20000, .timeout_ms = 2000};
    promql_result r;
    char err[512] = "";
    promql_err rc = promql_query_instant(db, (const char *)data, size, 300000, &o, &r, err, sizeof err);
    if (rc == PROMQL_OK)
        promql_result_free(&r);
    else if (!err[0])
        abort();
    err[0] = 0;
    rc = promql_query_range(db, (const char *)data, size, 0, 600000, 30000, &o, &r, err, sizeof err);
    if (rc == PROMQL_OK)
        promql_result_free(&r);
    else if (!err[0])
        abort();
    return 0;
}
