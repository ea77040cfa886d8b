/* Fuzz target: the series selector parser behind every match[] parameter, and the matchers it
 * builds (util/re.h over RE2, matching). Invariant: parse succeeds or fails with
 * a message, never crashes; a parsed selector has at least one matcher and matches as its type
 * says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "promql/promql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    tsdb_matcher **m;
    char err[256] = "";
    int k = promql_parse_selector(s, size, &m, err, sizeof err);
    if (k >= 0) {
        size_t n = (size_t)k; /* `{}` parses to no matcher: the API refuses it, not the parser */
        for (size_t i = 0; i < n; i++) {
            /* a matcher and its negation disagree on every value */
            int a = tsdb_matcher_matches(m[i], s), b = tsdb_matcher_matches(m[i], "");
            tsdb_match_type t = tsdb_matcher_type(m[i]);
            tsdb_match_type neg = t == TSDB_MATCH_EQ    ? TSDB_MATCH_NEQ
                                  : t == TSDB_MATCH_NEQ ? TSDB_MATCH_EQ
                                  : t == TSDB_MATCH_RE  ? TSDB_MATCH_NRE
                                                        : TSDB_MATCH_RE;
            tsdb_matcher *x =
                tsdb_matcher_new(neg, tsdb_matcher_name(m[i]), tsdb_matcher_value(m[i]), err, sizeof err);
            if (!x) abort(); /* the same value compiled once already */
            if (tsdb_matcher_matches(x, s) == a || tsdb_matcher_matches(x, "") == b) abort();
            tsdb_matcher_free(x);
        }
        tsdb_matchers_free(m, n);
    } else if (!err[0]) {
        abort();
    }
    free(s);
    return 0;
}
