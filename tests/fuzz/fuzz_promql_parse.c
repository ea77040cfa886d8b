/* Fuzz target: the PromQL parser and printer. Invariants: any input parses or fails with a
 * message, never crashes; the printed form of a parsed query parses again and prints to
 * itself (String() is a fixed point); the selector parser agrees (a selector parses or fails
 * with a message). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql/promql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char err[512] = "";
    char *s = promql_format((const char *)data, size, err, sizeof err);
    if (!s) {
        if (!err[0]) abort();
    } else {
        char err2[512] = "";
        char *s2 = promql_format(s, strlen(s), err2, sizeof err2);
        if (!s2) {
            fprintf(stderr, "printed form does not parse: %s\n  %s\n", s, err2);
            abort();
        }
        if (strcmp(s, s2)) {
            fprintf(stderr, "printing is not a fixed point:\n  %s\n  %s\n", s, s2);
            abort();
        }
        free(s2);
        free(s);
    }
    tsdb_matcher **m;
    err[0] = 0;
    int n = promql_parse_selector((const char *)data, size, &m, err, sizeof err);
    if (n < 0) {
        if (!err[0]) abort();
    } else {
        /* `{}` parses to no matcher: the API refuses it */
        for (int i = 0; i < n; i++)
            tsdb_matcher_free(m[i]);
        free(m);
    }
    return 0;
}
