/* Store-side half of the trace search benchmark: runs the searches of search.mjs straight
 * against a trace store (no HTTP, no JSON) and prints exact p50/p95/max per kind, where the
 * server's histogram only gives bucket bounds. Run it on a data dir no server is using.
 *
 * usage: store_search DATA_DIR IDS_FILE [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traces/traces.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void wake(void *ctx) { (void)ctx; }

static int hexid(const char *h, uint8_t id[16]) {
    for (int j = 0; j < 16; j++) {
        unsigned v;
        if (sscanf(h + 2 * j, "%2x", &v) != 1) return -1;
        id[j] = (uint8_t)v;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: store_search DATA_DIR IDS_FILE [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 100;
    if (rounds < 1 || rounds > 100000) rounds = 100;
    traces_config c = {.dir = argv[1], .readers = 1, .wake = wake};
    char err[512];
    traces_store *s = traces_open(&c, err, sizeof err);
    if (!s) { fprintf(stderr, "%s\n", err); return 1; }
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    if (!r) { fprintf(stderr, "%s\n", err); traces_close(s); return 1; }
    FILE *f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 1; }
    size_t nids = 0, capids = 1024;
    char (*ids)[33] = malloc(capids * sizeof *ids);
    while (ids && fscanf(f, "%32s", ids[nids]) == 1)
        if (++nids == capids) ids = realloc(ids, (capids *= 2) * sizeof *ids);
    fclose(f);
    if (!ids || !nids) { fprintf(stderr, "no trace ids in %s\n", argv[2]); return 1; }
    double *ms = malloc((size_t)rounds * sizeof *ms);
    if (!ms) return 1;
    /* the same searches, in the same order, as search.mjs */
    static const char *services[] = {"scotty", "scotty-api", "scotty-runner", "scotty-proxy"};
    static const char *ops[] = {"GET /api/v1/health", "POST /api/v1/authenticated/apps/create",
                                "GET /api/v1/authenticated/apps/list", "run_app", "transition"};
    static const char *kinds[] = {"service", "operation", "tag", "error", "duration", "traceById"};
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    int64_t end = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec, start = end - 3LL * 3600 * 1000000000LL;
    for (int k = 0; k < 6; k++) {
        size_t ntraces = 0;
        for (int i = 0; i < rounds; i++) {
            traces_query q = {.service = services[i % 4], .start_ns = start, .end_ns = end, .limit = 20};
            char app[32];
            const char *tk[1], *tv[1];
            if (k == 1) q.operation = ops[i % 5];
            if (k == 2) {
                snprintf(app, sizeof app, "app-%d", (i * 7) % 200);
                tk[0] = "app.name";
                tv[0] = app;
            }
            if (k == 3) {
                tk[0] = "error";
                tv[0] = "true";
            }
            if (k == 2 || k == 3) {
                q.tag_keys = tk;
                q.tag_values = tv;
                q.ntags = 1;
            }
            if (k == 4) q.min_dur_ns = 2000000000LL;
            traces_result *res = NULL;
            int rc;
            double t0 = now_ms();
            if (k == 5) {
                uint8_t id[16];
                if (hexid(ids[((size_t)i * 13) % nids], id)) { fprintf(stderr, "bad id\n"); return 1; }
                rc = traces_get(r, (const uint8_t(*)[16])id, 1, &res, err, sizeof err);
            } else {
                rc = traces_search(r, &q, &res, err, sizeof err);
            }
            ms[i] = now_ms() - t0;
            if (rc) { fprintf(stderr, "%s: %s\n", kinds[k], err); return 1; }
            ntraces += traces_result_count(res);
            traces_result_free(res);
        }
        qsort(ms, (size_t)rounds, sizeof *ms, cmp_double);
        printf("%-10s store p50 %6.2f ms  p95 %6.2f ms  max %6.2f ms  (%d queries, %.1f traces/answer)\n", kinds[k],
               ms[rounds / 2], ms[(int)(rounds * 0.95)], ms[rounds - 1], rounds, (double)ntraces / rounds);
    }
    free(ms);
    free(ids);
    traces_reader_close(r);
    traces_close(s);
    return 0;
}
