/* Rate-limited logging: the first occurrence at once, then one line with the count per
 * window, per call site and key; the count is flushed by the tick or by the next occurrence. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

static long long fake_now;
static long long fake_clock(void) { return fake_now; }
static FILE *out;

static void setup(void) {
    out = tmpfile();
    cr_assert(out);
    tr_log_set_fd(fileno(out));
    tr_log_set_clock(fake_clock);
    tr_log_limited_reset();
    fake_now = 1000000;
}

static void teardown(void) {
    tr_log_set_fd(2);
    tr_log_set_clock(NULL);
    tr_log_limited_reset();
    fclose(out);
}

/* The lines written so far (reads the whole file). */
static char *lines(int *n) {
    fflush(out);
    long len = lseek(fileno(out), 0, SEEK_END);
    char *b = calloc(1, (size_t)len + 1);
    cr_assert_eq(pread(fileno(out), b, (size_t)len, 0), len);
    *n = 0;
    for (char *p = b; *p; p++)
        *n += *p == '\n';
    return b;
}

static void fail_write(const char *key, int err) {
    TR_ERROR_LIMITED(key, "trace store write failed", "errno=%d", err);
}

TestSuite(log_limited, .init = setup, .fini = teardown);

Test(log_limited, first_then_a_count_per_window) {
    for (int i = 0; i < 1000; i++)
        fail_write("disk_full", 28);
    int n;
    char *b = lines(&n);
    cr_assert_eq(n, 1, "one line for a burst: %s", b);
    cr_assert(strstr(b, "msg=\"trace store write failed\" errno=28"), "%s", b);
    cr_assert_null(strstr(b, "repeated="));
    free(b);
    fake_now += 5000;
    tr_log_limited_tick();
    b = lines(&n);
    cr_assert_eq(n, 1, "nothing before the window ends");
    free(b);
    fake_now += 5000;
    tr_log_limited_tick();
    b = lines(&n);
    cr_assert_eq(n, 2);
    cr_assert(strstr(b, "repeated=999 window=10s"), "the count of the window: %s", b);
    free(b);
    tr_log_limited_tick();
    b = lines(&n);
    cr_assert_eq(n, 2, "a count is written once");
    free(b);
    /* quiet, then again: written at once */
    fake_now += 60000;
    fail_write("disk_full", 28);
    b = lines(&n);
    cr_assert_eq(n, 3);
    free(b);
}

Test(log_limited, next_occurrence_after_the_window_carries_the_count) {
    fail_write("io", 5);
    fail_write("io", 5);
    fail_write("io", 5);
    fake_now += 10000;
    fail_write("io", 5);
    int n;
    char *b = lines(&n);
    cr_assert_eq(n, 2);
    cr_assert(strstr(b, "errno=5 repeated=2"), "%s", b);
    free(b);
}

Test(log_limited, keys_and_sites_are_separate) {
    fail_write("disk_full", 28);
    fail_write("io", 5);
    fail_write("disk_full", 28);
    TR_ERROR_LIMITED("disk_full", "another site", NULL);
    int n;
    char *b = lines(&n);
    cr_assert_eq(n, 3, "%s", b);
    cr_assert(strstr(b, "msg=\"another site\""));
    free(b);
}

Test(log_limited, level_filter_applies) {
    tr_log_set_level(TR_LOG_ERROR);
    TR_WARN_LIMITED(NULL, "a warning", NULL);
    int n;
    free(lines(&n));
    cr_assert_eq(n, 0);
    tr_log_set_level(TR_LOG_INFO);
}
