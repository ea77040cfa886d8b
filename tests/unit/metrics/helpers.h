/* Fixtures shared by the metrics store's tests (and the tests of modules above it). */
#ifndef TR_TEST_METRICS_HELPERS_H
#define TR_TEST_METRICS_HELPERS_H

#include <stddef.h>

#include "metrics/metrics.h"

/* Store matchers from a small selector notation, enough for tests and nothing more (PromQL's
 * own parser lives above the store): `name`, `name{l="v", l!="v", l=~"re", l!~"re"}` or
 * `{…}`; values in double quotes with \\ and \" escapes. Returns 0 and *m (free with
 * tsdb_matchers_free), or -1 with err. */
int test_selector(const char *s, tsdb_matcher ***m, size_t *n, char *err, size_t errlen);

#endif
