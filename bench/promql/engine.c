/* Engine-only PromQL cost: 1,000 counter series (job × instance) of 6 h at 15 s in a fresh
 * store, then eight range queries over the last hour at a 15 s step (241 steps), each run three
 * times; prints the mean wall time per query. No HTTP, no JSON.
 * Build (RelWithDebInfo tree in build-rel):
 *   cc -O2 -D_GNU_SOURCE -I src bench/promql/engine.c build-rel/libtr_promql.a \
 *      build-rel/libtr_metrics.a build-rel/libtr_util.a build-rel/libtr_proto.a -lzstd \
 *      $(pkg-config --libs libevent_core libevent_extra libevent_pthreads re2 zlib) \
 *      -lprotobuf-c -lstdc++ -lm -lpthread -o /tmp/promql-bench
 * Run: /tmp/promql-bench */
#include "metrics/metrics.h"
#include "promql/promql.h"
#include "util/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(void) {
    tr_log_set_level(TR_LOG_ERROR);
    char dir[] = "/tmp/pqbench-XXXXXX";
    mkdtemp(dir);
    tsdb_options o = {.dir = dir};
    tsdb *db;
    char err[256];
    if (tsdb_open(&o, &db, err, sizeof err)) {
        puts(err);
        return 1;
    }
    int nser = 1000, ns = 1440;
    int64_t step = 15000;
    double t0 = now();
    for (int s = 0; s < nser; s++) {
        tsdb_appender *a = tsdb_appender_begin(db);
        char job[16], inst[16];
        snprintf(job, 16, "j%d", s % 10);
        snprintf(inst, 16, "i%d", s / 10);
        tsdb_label l[] = {{"__name__", "http_requests_total"}, {"job", job}, {"instance", inst}};
        double v = 0;
        for (int i = 0; i < ns; i++) {
            v += (s % 7) + (i % 5);
            tsdb_appender_add(a, l, 3, (int64_t)i * step, v);
        }
        tsdb_appender_commit(a, NULL, NULL);
    }
    printf("ingest %.2fs\n", now() - t0);
    const char *qs[] = {"rate(http_requests_total[5m])",
                        "sum by (job) (rate(http_requests_total[5m]))",
                        "avg_over_time(http_requests_total[1h])",
                        "http_requests_total",
                        "sum(http_requests_total) by (instance) / on() group_left sum(http_requests_total)",
                        "topk(5, rate(http_requests_total[5m]))",
                        "histogram_quantile(0.9, sum by (le) (rate(http_requests_total[5m])))",
                        "max_over_time(rate(http_requests_total[5m])[30m:1m])"};
    int64_t end = (int64_t)(ns - 1) * step, start = end - 3600000;
    for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
        promql_result r;
        double t = now();
        int rc = 0;
        for (int rep = 0; rep < 3; rep++) {
            rc = promql_query_range(db, qs[k], strlen(qs[k]), start, end, 15000, NULL, &r, err, sizeof err);
            if (!rc) promql_result_free(&r);
        }
        printf("%-80s %7.1f ms rc=%d %s\n", qs[k], (now() - t) / 3 * 1000, rc, rc ? err : "");
    }
    tsdb_close(db);
    char cmd[100];
    snprintf(cmd, 100, "rm -rf %s", dir);
    system(cmd);
}
