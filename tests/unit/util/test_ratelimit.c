/* Unit tests of util/ratelimit.h: free failures, doubling back-off up to the cap, success
 * clearing an address, and the table staying bounded under many addresses. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "util/ratelimit.h"

Test(ratelimit, backoff_doubles_and_caps) {
    tr_ratelimit *r = tr_ratelimit_new(64, 3, 1000, 8000);
    cr_assert_not_null(r);
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.1", t), 0, "failure %d is free", i + 1);
        cr_assert_eq(tr_ratelimit_blocked(r, "10.0.0.1", t), 0);
    }
    cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.1", t), 1000);
    cr_assert_eq(tr_ratelimit_blocked(r, "10.0.0.1", t + 400), 600);
    cr_assert_eq(tr_ratelimit_blocked(r, "10.0.0.1", t + 1000), 0);
    cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.1", t + 1000), 2000);
    cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.1", t + 3000), 4000);
    cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.1", t + 7000), 8000);
    cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.1", t + 15000), 8000, "capped");
    /* another address is not affected */
    cr_assert_eq(tr_ratelimit_blocked(r, "10.0.0.2", t + 15000), 0);
    tr_ratelimit_success(r, "10.0.0.1");
    cr_assert_eq(tr_ratelimit_blocked(r, "10.0.0.1", t + 15000), 0);
    cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.1", t + 15000), 0, "cleared: free failures again");
    /* quiet for long enough: forgiven */
    for (int i = 0; i < 5; i++)
        tr_ratelimit_fail(r, "10.0.0.3", t);
    cr_assert_eq(tr_ratelimit_fail(r, "10.0.0.3", t + 100000), 0);
    tr_ratelimit_free(r);
}

Test(ratelimit, bounded_table) {
    tr_ratelimit *r = tr_ratelimit_new(16, 0, 1000, 1000);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "192.0.2.%d/%d", i % 251, i);
        cr_assert_eq(tr_ratelimit_fail(r, key, i), 1000);
    }
    /* the most recent address of its set is still remembered */
    cr_assert_gt(tr_ratelimit_blocked(r, key, 9999), 0);
    tr_ratelimit_free(r);
}
