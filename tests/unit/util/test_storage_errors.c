/* tricorder_storage_errors_total{store,kind}: one series per (store, kind), created on first
 * use, shared by both stores, rendered as one family. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/buf.h"
#include "util/selfmon.h"

Test(storage_errors, one_series_per_store_and_kind) {
    tr_selfmon_reset();
    tr_storage_error("metrics", "wal_write");
    tr_storage_error("metrics", "wal_write");
    tr_storage_error("traces", "commit");
    tr_storage_error("metrics", "block_write");
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_selfmon_render(&b);
    cr_assert_not_null(
        strstr(b.data, "tricorder_storage_errors_total{store=\"metrics\",kind=\"wal_write\"} 2\n"), "%s",
        b.data);
    cr_assert_not_null(strstr(b.data, "tricorder_storage_errors_total{store=\"traces\",kind=\"commit\"} 1\n"),
                       "%s", b.data);
    cr_assert_not_null(
        strstr(b.data, "tricorder_storage_errors_total{store=\"metrics\",kind=\"block_write\"} 1\n"), "%s",
        b.data);
    const char *first = strstr(b.data, "# TYPE tricorder_storage_errors_total counter");
    cr_assert_not_null(first);
    cr_assert_null(strstr(first + 1, "# TYPE tricorder_storage_errors_total"), "one family");
    tr_buf_free(&b);
    tr_selfmon_reset();
}
