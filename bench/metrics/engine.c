/* Engine-only ingest cost: appends the benchmark's shape of data (10,000 series × 360
 * samples, 2,000 samples per commit, WAL fsync per commit) straight through the append API,
 * without HTTP or protobuf decoding, and prints CPU seconds per million samples. With "keys"
 * as the fourth argument, samples go in as the remote write handler now hands them over:
 * canonical keys, 64 at a time (tsdb_appender_add_keys); else one tsdb_appender_add each.
 * Build: cc -O2 -I src bench/metrics/engine.c build/libtr_metrics.a build/libtr_util.a \
 *        $(pkg-config --libs libzstd libevent_core zlib) -lpthread -lm -o /tmp/engine
 * Run:   /tmp/engine /tmp/engine-bench [series] [samples] [keys] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "metrics/metrics.h"

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    const int S = argc > 2 ? atoi(argv[2]) : 10000, N = argc > 3 ? atoi(argv[3]) : 360;
    char err[256];
    tsdb_options o = {.dir = argc > 1 ? argv[1] : "/tmp/engine-bench", .ooo_window_ms = 600000};
    tsdb *db;
    if (tsdb_open(&o, &db, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* label sets as a remote-write decoder would hand them over: sorted, 6 labels */
    tsdb_label (*l)[6] = malloc(sizeof *l * S);
    char (*vals)[3][32] = malloc(sizeof *vals * S);
    for (int i = 0; i < S; i++) {
        snprintf(vals[i][0], 32, "10.0.%d.%d:9100", (i / 100) >> 8, (i / 100) & 255);
        snprintf(vals[i][1], 32, "svc-%d", (i / 100) % 10);
        snprintf(vals[i][2], 32, "/api/v1/h%d", i % 100);
        l[i][0] = (tsdb_label){"__name__", i % 3 ? "http_requests_total" : "http_request_duration_seconds_bucket"};
        l[i][1] = (tsdb_label){"code", i % 7 ? "200" : "500"};
        l[i][2] = (tsdb_label){"handler", vals[i][2]};
        l[i][3] = (tsdb_label){"instance", vals[i][0]};
        l[i][4] = (tsdb_label){"job", vals[i][1]};
        l[i][5] = (tsdb_label){"method", i % 2 ? "GET" : "POST"};
    }
    int keyed = argc > 4 && strcmp(argv[4], "keys") == 0;
    char (*key)[160] = malloc(sizeof *key * S);
    size_t *klen = malloc(sizeof *klen * S);
    for (int i = 0; i < S; i++) {
        size_t o = 0;
        for (int j = 0; j < 6; j++)
            o += (size_t)snprintf(key[i] + o, sizeof key[i] - o, "%s%c%s%c", l[i][j].name, 0, l[i][j].value, 0);
        klen[i] = o;
    }
    double *v = calloc(S, sizeof *v);
    int64_t t0 = (int64_t)time(NULL) * 1000 - (int64_t)N * 15000;
    double c0 = cpu();
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    for (int k = 0; k < N; k++) {
        for (int first = 0; first < S; first += 2000) {
            tsdb_appender *a = tsdb_appender_begin(db);
            tsdb_keyed batch[64];
            int rc[64];
            size_t nb = 0;
            for (int i = first; i < S && i < first + 2000; i++) {
                v[i] += rand() % 20;
                if (!keyed) {
                    tsdb_appender_add(a, l[i], 6, t0 + k * 15000, v[i]);
                    continue;
                }
                batch[nb++] = (tsdb_keyed){key[i], klen[i], t0 + k * 15000, v[i]};
                if (nb == 64) tsdb_appender_add_keys(a, batch, nb, rc), nb = 0;
            }
            if (nb) tsdb_appender_add_keys(a, batch, nb, rc);
            tsdb_appender_commit(a, NULL, NULL);
        }
    }
    double c1 = cpu();
    clock_gettime(CLOCK_MONOTONIC, &w1);
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    tsdb_close(db);
    double c2 = cpu();
    printf("engine (%s): %d series x %d samples: %.3f CPU s / M samples appended (%.1f s wall), RSS before close %.1f MB, "
           "close+flush %.2f s CPU\n", keyed ? "keys, batches of 64" : "labels, one by one", S, N, (c1 - c0) / (S * (double)N / 1e6),
           (w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9, rss * 4096.0 / 1048576, c2 - c1);
    free(l);
    free(vals);
    free(key);
    free(klen);
    free(v);
    return 0;
}
