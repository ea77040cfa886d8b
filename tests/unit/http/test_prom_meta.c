/* Parameter parsing and number formatting of the Prometheus metadata/export APIs, checked
 * against what Prometheus (Go) produces. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"

#include "http/prom_api.h"

Test(prom_meta, parse_time_like_prometheus) {
    struct {
        const char *in;
        int64_t ms;
    } ok[] = {
        {"0", 0},
        {"1795563055", 1795563055000LL},
        {"1795563055.123", 1795563055123LL},
        {"1795563055.1235", 1795563055124LL}, /* fraction rounded to ms */
        {"-1.5", -1500},
        {"1e3", 1000000},
        {"2015-07-01T20:10:51.781Z", 1435781451781LL},
        {"2015-07-01T20:10:51Z", 1435781451000LL},
        {"2015-07-01T22:10:51.781+02:00", 1435781451781LL},
        {"2015-07-01T20:10:51.781123456Z", 1435781451781LL},
        {"1970-01-01T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = 42;
        cr_assert_eq(tr_prom_parse_time(ok[i].in, &ms), 0, "%s", ok[i].in);
        cr_assert_eq(ms, ok[i].ms, "%s: %lld != %lld", ok[i].in, (long long)ms, (long long)ok[i].ms);
    }
    const char *bad[] = {"",   "abc", "2015-07-01", "2015-07-01T20:10:51", "2015-13-01T20:10:51Z", "-NaN",
                         "1s", " 1",  "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        cr_assert_eq(tr_prom_parse_time(bad[i], &ms), -1, "%s should fail", bad[i]);
    }
}

Test(prom_meta, text_format_values_as_go_g) {
    /* strconv.FormatFloat(v, 'g', -1, 64), as the exposition format prints values */
    struct {
        double v;
        const char *s;
    } c[] = {
        {0, "0"},
        {1, "1"},
        {-2.5, "-2.5"},
        {1234567, "1.234567e+06"},
        {123456, "123456"},
        {100000000, "1e+08"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1795563055.5, "1.7955630555e+09"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {-0.0, "-0"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        tr_format_double_g(buf, sizeof buf, c[i].v);
        cr_assert_str_eq(buf, c[i].s);
    }
}
