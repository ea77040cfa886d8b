/* The trace store's limit flags: counts take whole numbers only (a size suffix on a count is
 * refused, as is anything not a number), the value-length limit still takes sizes, and the
 * store's ceilings still apply. */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"

static int parse2(tr_config *c, const char *flag, const char *val, char *err) {
    char *argv[] = {"tricorder", (char *)flag, (char *)val, NULL};
    return tr_config_parse(c, 3, argv, NULL, err, 256);
}

Test(app_flags, counts_are_whole_numbers) {
    const char *counts[] = {"--trace-max-attributes", "--trace-max-events", "--trace-max-links"};
    for (size_t i = 0; i < 3; i++) {
        tr_config c;
        char err[256] = "";
        cr_assert_eq(parse2(&c, counts[i], "64", err), TR_CONFIG_OK, "%s 64: %s", counts[i], err);
        int64_t got = i == 0 ? c.trace_max_attributes : i == 1 ? c.trace_max_events : c.trace_max_links;
        cr_assert_eq(got, 64, "%s", counts[i]);
        tr_config_free(&c);
        cr_assert_eq(parse2(&c, counts[i], "0", err), TR_CONFIG_OK, "%s 0 (no limit): %s", counts[i], err);
        tr_config_free(&c);
        const char *bad[] = {"128KB", "1k", "4MiB", "12B", "-1",  "+5",
                             " 7",    "7 ", "x",    "",    "1.5", "99999999999999999999"};
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            err[0] = 0;
            cr_assert_eq(parse2(&c, counts[i], bad[j], err), TR_CONFIG_ERROR, "%s '%s' accepted", counts[i],
                         bad[j]);
            cr_assert(strstr(err, "invalid count"), "%s '%s': %s", counts[i], bad[j], err);
            tr_config_free(&c);
        }
    }
}

Test(app_flags, value_length_is_still_a_size_and_ceilings_hold) {
    tr_config c;
    char err[256] = "";
    cr_assert_eq(parse2(&c, "--trace-max-attribute-value-bytes", "8KiB", err), TR_CONFIG_OK, "%s", err);
    cr_assert_eq(c.trace_max_value_bytes, 8192);
    tr_config_free(&c);
    cr_assert_eq(parse2(&c, "--trace-max-events", "100001", err), TR_CONFIG_ERROR);
    cr_assert(strstr(err, "--trace-max-*"), "%s", err);
    tr_config_free(&c);
    char *argv[] = {"tricorder", NULL};
    cr_assert_eq(tr_config_parse(&c, 1, argv, NULL, err, sizeof err), TR_CONFIG_OK, "%s", err);
    cr_assert_eq(c.trace_max_attributes, 128);
    cr_assert_eq(c.trace_max_events, 128);
    cr_assert_eq(c.trace_max_links, 128);
    tr_config_free(&c);
}
