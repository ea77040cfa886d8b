/* Unit tests of util/clock.h: the clocks move as they should, and RFC 3339 is parsed as Go's
 * time.Parse(time.RFC3339Nano, s) parses it (the table's answers are Go's). */
#include <criterion/criterion.h>
#include <time.h>

#include "util/clock.h"

Test(clock, clocks) {
    int64_t ms = tr_now_ms(), ns = tr_now_ns();
    cr_assert_gt(ms, 1700000000000LL, "a wall clock after 2023");
    cr_assert_lt(ns / 1000000 - ms, 1000);
    int64_t m0 = tr_mono_ms();
    struct timespec d = {0, 20 * 1000000};
    nanosleep(&d, NULL);
    int64_t m1 = tr_mono_ms();
    cr_assert_geq(m1 - m0, 19);
}

Test(clock, days_from_civil) {
    cr_assert_eq(tr_days_from_civil(1970, 1, 1), 0);
    cr_assert_eq(tr_days_from_civil(2000, 3, 1), 11017);
    cr_assert_eq(tr_days_from_civil(1969, 12, 31), -1);
    cr_assert_eq(tr_days_from_civil(0, 1, 1), -719528);
}

Test(clock, rfc3339_as_go_parses_it) {
    struct {
        const char *s;
        int ok;
        int64_t sec;
        int32_t nsec;
    } c[] = {
        {"2024-06-10T12:00:00Z", 1, 1718020800, 0},
        {"2024-06-10T14:00:00.123456789+02:00", 1, 1718020800, 123456789},
        {"2024-06-10T12:00:00.5Z", 1, 1718020800, 500000000},
        {"2024-06-10T12:00:00,5Z", 1, 1718020800, 500000000},          /* Go accepts a comma */
        {"2024-06-10T12:00:00.1234567891Z", 1, 1718020800, 123456789}, /* past ns: dropped */
        {"2024-06-10T09:30:00-02:30", 1, 1718020800, 0},
        {"2024-06-10T2:00:00Z", 1, 1717984800, 0}, /* one-digit hour: Go's "15" allows it */
        {"1970-01-01T00:00:00Z", 1, 0, 0},
        {"1969-12-31T23:59:59.999Z", 1, -1, 999000000},
        {"0000-01-01T00:00:00Z", 1, -62167219200, 0},
        {"9999-12-31T23:59:59Z", 1, 253402300799, 0},
        {"2024-02-29T00:00:00Z", 1, 1709164800, 0},
        {"2024-06-10T12:00:00+24:00", 1, 1717934400, 0}, /* Go's general parser allows 24 */
        {"2023-02-29T00:00:00Z", 0, 0, 0},
        {"2023-02-30T00:00:00Z", 0, 0, 0},
        {"2024-04-31T00:00:00Z", 0, 0, 0},
        {"2023-01-01T00:00:60Z", 0, 0, 0},
        {"2023-01-01T24:00:00Z", 0, 0, 0},
        {"2023-01-01T00:60:00Z", 0, 0, 0},
        {"2023-13-01T00:00:00Z", 0, 0, 0},
        {"2023-00-01T00:00:00Z", 0, 0, 0},
        {"2023-01-00T00:00:00Z", 0, 0, 0},
        {"2024-06-10t12:00:00Z", 0, 0, 0},
        {"2024-06-10T12:00:00z", 0, 0, 0},
        {"2024-06-10 12:00:00Z", 0, 0, 0},
        {"2024-06-10T12:00:00", 0, 0, 0},
        {"2024-06-10T12:00:00.Z", 0, 0, 0},
        {"2024-06-10T12:00:00+0200", 0, 0, 0},
        {"2024-06-10T12:00:00+25:00", 0, 0, 0},
        {"2024-06-10T12:00:00Z ", 0, 0, 0},
        {"24-06-10T12:00:00Z", 0, 0, 0},
        {"+2024-06-10T12:00:00Z", 0, 0, 0},
        {"2024-6-10T12:00:00Z", 0, 0, 0},
        {"", 0, 0, 0},
        {"x", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        int64_t sec = 42;
        int32_t nsec = 42;
        int rc = tr_rfc3339_parse(c[i].s, &sec, &nsec);
        cr_expect_eq(rc, c[i].ok ? 0 : -1, "\"%s\"", c[i].s);
        if (c[i].ok && rc == 0) {
            cr_expect_eq(sec, c[i].sec, "\"%s\": %lld", c[i].s, (long long)sec);
            cr_expect_eq(nsec, c[i].nsec, "\"%s\": %d", c[i].s, nsec);
        }
    }
}

Test(clock, rfc3339_in_ms_and_ns) {
    int64_t v;
    cr_assert_eq(tr_rfc3339_ms("1969-12-31T23:59:59.9999Z", &v), 0);
    cr_assert_eq(v, -1, "Prometheus' FromTime rounds down: -0.0001 s is -1 ms");
    cr_assert_eq(tr_rfc3339_ms("2024-06-10T12:00:00.123999Z", &v), 0);
    cr_assert_eq(v, 1718020800123LL);
    cr_assert_eq(tr_rfc3339_ms("9999-12-31T23:59:59Z", &v), 0, "ms reach year 9999");
    cr_assert_eq(tr_rfc3339_ns("2024-06-10T14:00:00.123456789+02:00", &v), 0);
    cr_assert_eq(v, 1718020800LL * 1000000000LL + 123456789);
    cr_assert_eq(tr_rfc3339_ns("2262-04-11T23:47:16.854775807Z", &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(tr_rfc3339_ns("2262-04-11T23:47:16.854775808Z", &v), -1);
    cr_assert_eq(tr_rfc3339_ns("2263-01-01T00:00:00Z", &v), -1, "past int64 nanoseconds");
    cr_assert_eq(tr_rfc3339_ns("2024-06-10 12:00:00", &v), -1);
}
