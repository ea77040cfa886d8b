/* Unit tests of the OTLP forwarding disk queue: the record format, append/peek/commit, the
 * position across a reopen, a torn tail, a corrupt record, and the size bound. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forward/otlp_fwd.h"

static char dir[256];

static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/tr-fwdq-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(fwdq, .init = mkdir_tmp, .fini = rm_tmp);

static void payload(int i, uint8_t *p, size_t n) {
    for (size_t k = 0; k < n; k++)
        p[k] = (uint8_t)(i * 31 + k);
}

static void append_n(otlp_fwdq *q, int from, int to, size_t n) {
    uint8_t *p = malloc(n);
    for (int i = from; i < to; i++) {
        payload(i, p, n);
        cr_assert_eq(otlp_fwdq_append(q, (uint8_t)(i & 1), (uint32_t)i, p, n), 0);
    }
    free(p);
}

/* peeks the next record, checks it is number `want`, commits it */
static void expect_next(otlp_fwdq *q, int want, size_t n) {
    uint8_t *buf = NULL, *p = malloc(n);
    size_t cap = 0;
    otlp_fwdq_rec r;
    cr_assert_eq(otlp_fwdq_peek(q, 0, &buf, &cap, &r), 1, "record %d missing", want);
    cr_assert_eq(r.items, (uint32_t)want, "got record %u, want %d", r.items, want);
    cr_assert_eq(r.signal, want & 1);
    cr_assert_eq(r.len, n);
    payload(want, p, n);
    cr_assert_eq(memcmp(r.payload, p, n), 0);
    cr_assert_eq(otlp_fwdq_commit(q), 0);
    free(buf);
    free(p);
}

static void expect_empty(otlp_fwdq *q) {
    uint8_t *buf = NULL;
    size_t cap = 0;
    otlp_fwdq_rec r;
    cr_assert_eq(otlp_fwdq_peek(q, 0, &buf, &cap, &r), 0);
    free(buf);
}

static char *newest_segment(void) {
    static char path[600];
    DIR *d = opendir(dir);
    struct dirent *e;
    char best[300] = "";
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".seg") && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    snprintf(path, sizeof path, "%s/%s", dir, best);
    return path;
}

Test(fwdq, record_format) {
    uint8_t buf[OTLP_FWDQ_HDR + 5];
    otlp_fwdq_header(buf, 1, 42, (const uint8_t *)"hello", 5);
    memcpy(buf + OTLP_FWDQ_HDR, "hello", 5);
    otlp_fwdq_rec r;
    cr_assert_eq(otlp_fwdq_parse(buf, sizeof buf, 1 << 20, &r), (long)sizeof buf);
    cr_assert_eq(r.signal, 1);
    cr_assert_eq(r.items, 42);
    cr_assert_eq(r.len, 5);
    for (size_t cut = 0; cut < sizeof buf; cut++)
        cr_assert_eq(otlp_fwdq_parse(buf, cut, 1 << 20, &r), OTLP_FWDQ_MORE, "cut at %zu", cut);
    cr_assert_eq(otlp_fwdq_parse(buf, sizeof buf, 4, &r), OTLP_FWDQ_BAD); /* longer than allowed */
    for (size_t k = 4; k < sizeof buf; k++) {                             /* any flipped bit is caught */
        buf[k] ^= 0x10;
        cr_assert_eq(otlp_fwdq_parse(buf, sizeof buf, 1 << 20, &r), OTLP_FWDQ_BAD, "flip at %zu", k);
        buf[k] ^= 0x10;
    }
}

Test(fwdq, append_peek_commit_in_order) {
    char err[200];
    otlp_fwdq *q = otlp_fwdq_open(dir, 1 << 20, err, sizeof err);
    cr_assert_not_null(q, "%s", err);
    expect_empty(q);
    append_n(q, 0, 10, 100);
    /* a peek without commit hands out the same record again (a retry) */
    uint8_t *buf = NULL;
    size_t cap = 0;
    otlp_fwdq_rec r;
    cr_assert_eq(otlp_fwdq_peek(q, 0, &buf, &cap, &r), 1);
    cr_assert_eq(r.items, 0);
    free(buf);
    for (int i = 0; i < 10; i++)
        expect_next(q, i, 100);
    expect_empty(q);
    otlp_fwdq_stats st;
    otlp_fwdq_stats_get(q, &st);
    cr_assert_eq(st.pending_bytes, 0);
    cr_assert_eq(st.dropped_records, 0);
    otlp_fwdq_close(q);
}

Test(fwdq, position_survives_reopen) {
    char err[200];
    otlp_fwdq *q = otlp_fwdq_open(dir, 1 << 20, err, sizeof err);
    append_n(q, 0, 5, 300);
    expect_next(q, 0, 300);
    expect_next(q, 1, 300);
    otlp_fwdq_close(q);
    q = otlp_fwdq_open(dir, 1 << 20, err, sizeof err);
    cr_assert_not_null(q, "%s", err);
    otlp_fwdq_stats st;
    otlp_fwdq_stats_get(q, &st);
    cr_assert_eq(st.pending_bytes, 3 * (OTLP_FWDQ_HDR + 300));
    append_n(q, 5, 7, 300);
    for (int i = 2; i < 7; i++)
        expect_next(q, i, 300);
    expect_empty(q);
    otlp_fwdq_close(q);
}

Test(fwdq, torn_tail_is_cut_and_appends_follow) {
    char err[200];
    otlp_fwdq *q = otlp_fwdq_open(dir, 1 << 20, err, sizeof err);
    append_n(q, 0, 3, 200);
    otlp_fwdq_close(q);
    /* a crash in the middle of the third record's write */
    char *seg = newest_segment();
    struct stat sb;
    cr_assert_eq(stat(seg, &sb), 0);
    cr_assert_eq(truncate(seg, sb.st_size - 7), 0);
    q = otlp_fwdq_open(dir, 1 << 20, err, sizeof err);
    cr_assert_not_null(q, "%s", err);
    cr_assert_eq(stat(seg, &sb), 0);
    cr_assert_eq(sb.st_size, 2 * (OTLP_FWDQ_HDR + 200), "the torn record is cut off");
    append_n(q, 3, 4, 200);
    expect_next(q, 0, 200);
    expect_next(q, 1, 200);
    expect_next(q, 3, 200);
    expect_empty(q);
    otlp_fwdq_close(q);
}

Test(fwdq, corrupt_record_skips_its_segment_counted) {
    char err[200];
    /* a 256 KiB bound makes 64 KiB segments: 40 records of 4000 bytes fill three */
    otlp_fwdq *q = otlp_fwdq_open(dir, 256 << 10, err, sizeof err);
    append_n(q, 0, 40, 4000);
    /* flip a payload byte of the very first record, in the oldest segment (not the newest) */
    DIR *d = opendir(dir);
    struct dirent *e;
    char first[300] = "~";
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".seg") && strcmp(e->d_name, first) < 0)
            snprintf(first, sizeof first, "%s", e->d_name);
    closedir(d);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, first);
    int fd = open(path, O_RDWR);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, OTLP_FWDQ_HDR + 10), 1);
    b ^= 0xff;
    cr_assert_eq(pwrite(fd, &b, 1, OTLP_FWDQ_HDR + 10), 1);
    close(fd);
    uint8_t *buf = NULL;
    size_t cap = 0;
    otlp_fwdq_rec r;
    cr_assert_eq(otlp_fwdq_peek(q, 0, &buf, &cap, &r), 1);
    cr_assert_gt(r.items, 0, "the corrupt record is not handed out");
    otlp_fwdq_stats st;
    otlp_fwdq_stats_get(q, &st);
    cr_assert_eq(st.dropped_records, r.items, "the rest of the first segment counts as dropped");
    int next = (int)r.items;
    cr_assert_eq(otlp_fwdq_commit(q), 0);
    for (int i = next + 1; i < 40; i++)
        expect_next(q, i, 4000);
    expect_empty(q);
    free(buf);
    otlp_fwdq_close(q);
}

static uint64_t dir_bytes(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t n = 0;
    while ((e = readdir(d))) {
        char p[600];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &sb) == 0) n += (uint64_t)sb.st_size;
    }
    closedir(d);
    return n;
}

Test(fwdq, bound_drops_oldest_and_counts) {
    char err[200];
    const uint64_t bound = 256 << 10;
    otlp_fwdq *q = otlp_fwdq_open(dir, bound, err, sizeof err);
    for (int i = 0; i < 200; i++) {
        append_n(q, i, i + 1, 3000);
        cr_assert_leq(dir_bytes(), bound + 64, "disk %llu over the bound", (unsigned long long)dir_bytes());
    }
    otlp_fwdq_stats st;
    otlp_fwdq_stats_get(q, &st);
    cr_assert_gt(st.dropped_records, 0);
    cr_assert_leq(st.disk_bytes, bound);
    /* what is left is the newest, in order, and everything not dropped */
    uint8_t *buf = NULL;
    size_t cap = 0;
    otlp_fwdq_rec r;
    cr_assert_eq(otlp_fwdq_peek(q, 0, &buf, &cap, &r), 1);
    int first = (int)r.items;
    free(buf);
    cr_assert_eq((uint64_t)first, st.dropped_records, "the oldest %d went first", first);
    uint64_t items_dropped = 0;
    for (int i = 0; i < first; i++)
        items_dropped += (uint64_t)i;
    cr_assert_eq(st.dropped_items, items_dropped);
    for (int i = first; i < 200; i++)
        expect_next(q, i, 3000);
    expect_empty(q);
    /* a record larger than the whole bound is itself dropped */
    uint8_t *big = calloc(1, bound);
    cr_assert_eq(otlp_fwdq_append(q, 0, 7, big, bound), 1);
    free(big);
    otlp_fwdq_stats_get(q, &st);
    cr_assert_eq(st.dropped_items, items_dropped + 7);
    expect_empty(q);
    otlp_fwdq_close(q);
}

Test(fwdq, endpoint_specs) {
    char err[300];
    cr_assert_eq(otlp_fwd_check_endpoint("grpc://tempo:4317", err, sizeof err), 0);
    cr_assert_eq(otlp_fwd_check_endpoint("http://[::1]:4318/otlp;compression=gzip;header=X-Scope-OrgID=a=b",
                                         err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(otlp_fwd_check_endpoint("http://jaeger;signals=traces", err, sizeof err), 0);
    cr_assert_eq(otlp_fwd_check_endpoint("http://jaeger;signals=logs", err, sizeof err), -1);
    cr_assert_eq(otlp_fwd_check_endpoint("https://x", err, sizeof err), 0, "%s", err);
    cr_assert_eq(otlp_fwd_check_endpoint("grpcs://x:4317;insecure;server_name=tempo", err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(otlp_fwd_check_endpoint("grpcs://x;ca=/nonexistent/ca.pem", err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/ca.pem"), "%s", err);
    cr_assert_eq(otlp_fwd_check_endpoint("https://x;cert=/c.pem", err, sizeof err), -1);
    cr_assert(strstr(err, "go together"), "%s", err);
    cr_assert_eq(otlp_fwd_check_endpoint("https://x;ca=", err, sizeof err), -1);
    cr_assert_eq(otlp_fwd_check_endpoint("grpc://x:4317;insecure", err, sizeof err), -1);
    cr_assert(strstr(err, "https:// and grpcs://"), "%s", err);
    cr_assert_eq(otlp_fwd_check_endpoint("http://x;ca=/etc/ssl/ca.pem", err, sizeof err), -1);
    cr_assert_eq(otlp_fwd_check_endpoint("grpc://x:4317/path", err, sizeof err), -1);
    cr_assert_eq(otlp_fwd_check_endpoint("grpc://x:port", err, sizeof err), -1);
    cr_assert_eq(otlp_fwd_check_endpoint("grpc://x:1;header=Bad Name=v", err, sizeof err), -1);
    cr_assert_eq(otlp_fwd_check_endpoint("grpc://x:1;timeout=0", err, sizeof err), -1);
}
