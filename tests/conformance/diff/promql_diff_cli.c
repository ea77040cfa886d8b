/* promql_diff_cli DATA.tsv QUERIES.tsv: loads the samples of DATA.tsv (selector<TAB>t_ms<TAB>value) into a
 * fresh store, runs every query of QUERIES.tsv (instant<TAB>t_ms<TAB>q or
 * range<TAB>start<TAB>end<TAB>step<TAB>q) and prints one JSON line per query. run.sh compares these with
 * Debian's prometheus. */
#include "metrics/metrics.h"
#include "promql/promql.h"
#include "util/log.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void jstr(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}
static void jnum(double v) {
    if (isnan(v))
        printf("\"NaN\"");
    else if (isinf(v))
        printf(v > 0 ? "\"+Inf\"" : "\"-Inf\"");
    else
        printf("\"%.17g\"", v);
}
int main(int argc, char **argv) {
    tr_log_set_level(TR_LOG_ERROR);
    char dir[] = "/tmp/pqdiffdb-XXXXXX";
    mkdtemp(dir);
    tsdb_options o = {.dir = dir, .ooo_window_ms = INT64_MAX / 4};
    tsdb *db;
    char err[512];
    if (tsdb_open(&o, &db, err, sizeof err)) {
        puts(err);
        return 1;
    }
    FILE *f = fopen(argv[1], "r");
    char *line = NULL;
    size_t cap = 0;
    tsdb_appender *a = tsdb_appender_begin(db);
    long n = 0;
    while (getline(&line, &cap, f) > 0) {
        char *t1 = strchr(line, '\t');
        *t1 = 0;
        char *t2 = strchr(t1 + 1, '\t');
        *t2 = 0;
        tsdb_matcher **m;
        int k = promql_parse_selector(line, strlen(line), &m, err, sizeof err);
        if (k < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        tsdb_label l[32];
        for (int i = 0; i < k; i++) {
            l[i].name = tsdb_matcher_name(m[i]);
            l[i].value = tsdb_matcher_value(m[i]);
        }
        double v = strcmp(t2 + 1, "stale\n") ? strtod(t2 + 1, NULL) : tsdb_stale_nan();
        tsdb_appender_add(a, l, k, atoll(t1 + 1), v);
        for (int i = 0; i < k; i++)
            tsdb_matcher_free(m[i]);
        free(m);
        if (++n % 50000 == 0) {
            tsdb_appender_commit(a, NULL, NULL);
            a = tsdb_appender_begin(db);
        }
    }
    tsdb_appender_commit(a, NULL, NULL);
    fclose(f);
    f = fopen(argv[2], "r");
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        char *kind = strtok(line, "\t");
        promql_result r;
        promql_err rc;
        if (!strcmp(kind, "instant")) {
            int64_t t = atoll(strtok(NULL, "\t"));
            char *q = strtok(NULL, "");
            rc = promql_query_instant(db, q, strlen(q), t, NULL, &r, err, sizeof err);
        } else {
            int64_t s = atoll(strtok(NULL, "\t")), e = atoll(strtok(NULL, "\t")),
                    st = atoll(strtok(NULL, "\t"));
            char *q = strtok(NULL, "");
            rc = promql_query_range(db, q, strlen(q), s, e, st, NULL, &r, err, sizeof err);
        }
        if (rc) {
            printf("{\"status\":\"error\",\"error\":");
            jstr(err);
            printf("}\n");
            continue;
        }
        printf("{\"status\":\"success\",\"type\":%d,", r.type);
        if (r.type == PROMQL_SCALAR) {
            printf("\"scalar\":");
            jnum(r.scalar);
        } else if (r.type == PROMQL_STRING) {
            printf("\"string\":");
            jstr(r.str);
        } else {
            printf("\"result\":[");
            for (size_t i = 0; i < r.nseries; i++) {
                promql_series *s = &r.series[i];
                printf("%s{\"metric\":{", i ? "," : "");
                for (size_t j = 0; j < s->nlabels; j++) {
                    if (j) putchar(',');
                    jstr(s->labels[j].name);
                    putchar(':');
                    jstr(s->labels[j].value);
                }
                printf("},\"values\":[");
                for (size_t j = 0; j < s->n; j++) {
                    printf("%s[%.3f,", j ? "," : "", s->t[j] / 1000.0);
                    jnum(s->v[j]);
                    putchar(']');
                }
                printf("]}");
            }
            printf("]");
        }
        printf("}\n");
        promql_result_free(&r);
    }
    tsdb_close(db);
    char cmd[100];
    snprintf(cmd, 100, "rm -rf %s", dir);
    if (system(cmd)) {
    }
}
