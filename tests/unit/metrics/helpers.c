#include "helpers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p) {
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static int add(tsdb_matcher ***m, size_t *n, tsdb_match_type t, const char *name, const char *value,
               char *err, size_t errlen) {
    tsdb_matcher *x = tsdb_matcher_new(t, name, value, err, errlen);
    tsdb_matcher **g = x ? realloc(*m, (*n + 1) * sizeof **m) : NULL;
    if (!g) {
        if (x) tsdb_matcher_free(x);
        return -1;
    }
    *m = g;
    (*m)[(*n)++] = x;
    return 0;
}

int test_selector(const char *s, tsdb_matcher ***m, size_t *n, char *err, size_t errlen) {
    char name[256], value[1024];
    *m = NULL;
    *n = 0;
    const char *p = skip_ws(s);
    size_t k = 0;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == ':') {
        if (k + 1 < sizeof name) name[k++] = *p;
        p++;
    }
    name[k] = 0;
    if (k && add(m, n, TSDB_MATCH_EQ, "__name__", name, err, errlen)) goto fail;
    p = skip_ws(p);
    if (*p == '{') {
        for (p = skip_ws(p + 1); *p && *p != '}'; p = skip_ws(p)) {
            for (k = 0; isalnum((unsigned char)*p) || *p == '_'; p++)
                if (k + 1 < sizeof name) name[k++] = *p;
            name[k] = 0;
            p = skip_ws(p);
            tsdb_match_type t;
            if (p[0] == '=' && p[1] == '~')
                t = TSDB_MATCH_RE, p += 2;
            else if (p[0] == '!' && p[1] == '~')
                t = TSDB_MATCH_NRE, p += 2;
            else if (p[0] == '!' && p[1] == '=')
                t = TSDB_MATCH_NEQ, p += 2;
            else if (p[0] == '=')
                t = TSDB_MATCH_EQ, p += 1;
            else
                break;
            p = skip_ws(p);
            if (*p++ != '"') break;
            for (k = 0; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1]) p++;
                if (k + 1 < sizeof value) value[k++] = *p;
            }
            value[k] = 0;
            if (*p++ != '"') break;
            if (add(m, n, t, name, value, err, errlen)) goto fail;
            p = skip_ws(p);
            if (*p == ',') p++;
        }
        if (*p != '}') goto syntax;
        p++;
    }
    if (*skip_ws(p) || !*n) goto syntax;
    return 0;
syntax:
    snprintf(err, errlen, "test selector not understood: %s", s);
fail:
    tsdb_matchers_free(*m, *n);
    *m = NULL;
    *n = 0;
    return -1;
}
