/* Remote write out: the WAL reader (tailing, positions, selector, restart), the back-off rule,
 * the HTTP response-head parser and the URL parser. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward/rw_int.h"
#include "promql/promql.h"
#include "util/crc32c.h"

static char dir[256];

static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/tricorder-rw-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void rm_tmp(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static tsdb *open_db(int64_t seg_bytes) {
    char d[300], err[256];
    snprintf(d, sizeof d, "%s/metrics", dir);
    tsdb_options o = {.dir = d, .wal_segment_bytes = seg_bytes, .max_exemplars = 100};
    tsdb *db = NULL;
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "%s", err);
    return db;
}

/* n samples of `series` series named name, timestamps from t */
static void append(tsdb *db, const char *name, int series, int n, int64_t t) {
    tsdb_appender *a = tsdb_appender_begin(db);
    for (int i = 0; i < n; i++)
        for (int s = 0; s < series; s++) {
            char v[16];
            snprintf(v, sizeof v, "%d", s);
            tsdb_label l[2] = {{"__name__", name}, {"s", v}};
            cr_assert_eq(tsdb_appender_add(a, l, 2, t + i * 1000, i + s / 100.0), TSDB_OK);
        }
    tsdb_appender_commit(a, NULL, NULL);
}

static void wal_dir(char *out, size_t cap) { snprintf(out, cap, "%s/metrics/wal", dir); }

static size_t read_all(rw_reader *r, rw_batch *b) {
    while (rw_reader_next(r, b, 1000000)) {
    }
    return b->n;
}

Test(rw_reader, tails_the_wal_and_resumes_from_a_position) {
    mkdir_tmp();
    tsdb *db = open_db(1024); /* small segments: the reader crosses several */
    for (int i = 0; i < 30; i++)
        append(db, "m", 20, 1, 1000 + i * 1000);
    char wd[300], err[256];
    wal_dir(wd, sizeof wd);
    rw_reader r;
    rw_pos start = {1, 0};
    cr_assert_eq(rw_reader_open(&r, wd, start, NULL, 0, err, sizeof err), 0);
    rw_batch b = {0};
    cr_assert_eq(read_all(&r, &b), 600);
    cr_assert_gt(r.seg, 1, "several segments read");
    /* order per series is kept, values and timestamps as written */
    int64_t last[20];
    for (int i = 0; i < 20; i++)
        last[i] = 0;
    for (size_t i = 0; i < b.n; i++) {
        double v;
        memcpy(&v, &b.s[i].v, 8);
        int s = (int)((v - (int)v) * 100 + 0.5);
        cr_assert_gt(b.s[i].t, last[s]);
        last[s] = b.s[i].t;
    }
    rw_pos here = {r.seg, r.off};
    /* nothing new: no progress */
    rw_batch_clear(&b);
    cr_assert_eq(rw_reader_next(&r, &b, 100000), 0);
    cr_assert_eq(b.n, 0);
    /* the tail grows */
    append(db, "m", 20, 5, 100000);
    cr_assert_eq(read_all(&r, &b), 100);
    rw_reader_close(&r);
    rw_batch_free(&b);

    /* a reader started at the saved position sees only what came after it, with labels */
    char pos[300];
    snprintf(pos, sizeof pos, "%s/p.pos", dir);
    cr_assert_eq(rw_pos_save(pos, &here), 0);
    rw_pos back;
    cr_assert_eq(rw_pos_load(pos, &back), 0);
    cr_assert_eq(back.seg, here.seg);
    cr_assert_eq(back.off, here.off);
    cr_assert_eq(rw_reader_open(&r, wd, back, NULL, 0, err, sizeof err), 0);
    rw_batch b2 = {0};
    cr_assert_eq(read_all(&r, &b2), 100);
    cr_assert_geq(b2.s[0].t, 100000);
    cr_assert(memmem(b2.s[0].s->pb, b2.s[0].s->pblen, "__name__", 8));
    rw_reader_close(&r);
    rw_batch_free(&b2);
    tsdb_close(db);
    rm_tmp();
}

Test(rw_reader, series_from_before_the_position_and_the_selector) {
    mkdir_tmp();
    tsdb *db = open_db(0);
    append(db, "keep", 3, 2, 1000);
    append(db, "skip", 3, 2, 1000);
    char wd[300], err[256];
    wal_dir(wd, sizeof wd);
    /* the position after everything so far: the series records are before it */
    rw_reader r;
    cr_assert_eq(rw_reader_open(&r, wd, (rw_pos){1, 0}, NULL, 0, err, sizeof err), 0);
    rw_batch b = {0};
    read_all(&r, &b);
    rw_pos p = {r.seg, r.off};
    rw_reader_close(&r);
    rw_batch_free(&b);
    append(db, "keep", 3, 2, 50000);
    append(db, "skip", 3, 2, 50000);
    tsdb_matcher **m;
    int nm = promql_parse_selector("{__name__=\"keep\"}", 17, &m, err, sizeof err);
    cr_assert_eq(nm, 1, "%s", err);
    cr_assert_eq(rw_reader_open(&r, wd, p, m, (size_t)nm, err, sizeof err), 0);
    cr_assert_eq(read_all(&r, &b), 6, "only the selected series, known from records before the position");
    for (size_t i = 0; i < b.n; i++)
        cr_assert(memmem(b.s[i].s->pb, b.s[i].s->pblen, "keep", 4));
    rw_reader_close(&r);
    rw_batch_free(&b);
    tsdb_matchers_free(m, (size_t)nm);
    tsdb_close(db);
    rm_tmp();
}

Test(rw_reader, stale_markers_keep_their_bits) {
    mkdir_tmp();
    tsdb *db = open_db(0);
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[1] = {{"__name__", "st"}};
    cr_assert_eq(tsdb_appender_add(a, l, 1, 1000, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add(a, l, 1, 2000, tsdb_stale_nan()), TSDB_OK);
    tsdb_appender_commit(a, NULL, NULL);
    char wd[300], err[256];
    wal_dir(wd, sizeof wd);
    rw_reader r;
    cr_assert_eq(rw_reader_open(&r, wd, (rw_pos){1, 0}, NULL, 0, err, sizeof err), 0);
    rw_batch b = {0};
    cr_assert_eq(read_all(&r, &b), 2);
    cr_assert_eq(b.s[1].v, TSDB_STALE_NAN_BITS);
    rw_reader_close(&r);
    rw_batch_free(&b);
    tsdb_close(db);
    rm_tmp();
}

/* ---- a WAL written by hand (format 2 records), for series churn across checkpoints ---- */

typedef struct wbuf {
    uint8_t p[4096];
    size_t n;
} wbuf;

static void w_uvar(wbuf *b, uint64_t v) {
    while (v >= 0x80) {
        b->p[b->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->n++] = (uint8_t)v;
}

static void w_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* appends one record of the given type and payload to file `name` in the WAL directory */
static void w_record(const char *name, uint8_t type, const wbuf *pl) {
    char path[400];
    snprintf(path, sizeof path, "%s/metrics/wal/%s", dir, name);
    uint8_t h[13];
    h[0] = type | 0x80;
    w_le32(h + 1, (uint32_t)pl->n);
    w_le32(h + 5, crc32c(pl->p, pl->n));
    w_le32(h + 9, crc32c(h, 9));
    FILE *f = fopen(path, "ab");
    cr_assert(f);
    cr_assert_eq(fwrite(h, 1, 13, f), 13);
    cr_assert_eq(fwrite(pl->p, 1, pl->n, f), pl->n);
    cr_assert_eq(fclose(f), 0);
}

/* a series record defining refs[0..n) as {__name__="churn", id="<ref>"} */
static void w_series(const char *name, const uint64_t *refs, size_t n) {
    wbuf b = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        char v[24];
        int vl = snprintf(v, sizeof v, "%llu", (unsigned long long)refs[i]);
        w_uvar(&b, refs[i]);
        w_uvar(&b, 2);
        w_uvar(&b, 8);
        memcpy(b.p + b.n, "__name__", 8);
        b.n += 8;
        w_uvar(&b, 5);
        memcpy(b.p + b.n, "churn", 5);
        b.n += 5;
        w_uvar(&b, 2);
        memcpy(b.p + b.n, "id", 2);
        b.n += 2;
        w_uvar(&b, (uint64_t)vl);
        memcpy(b.p + b.n, v, (size_t)vl);
        b.n += (size_t)vl;
    }
    w_record(name, TSDB_WAL_SERIES, &b);
}

/* a samples record: one sample (t = 1000, value bits 1) for each of refs[0..n) */
static void w_samples(const char *name, const uint64_t *refs, size_t n) {
    wbuf b = {.n = 0};
    w_uvar(&b, n);
    for (size_t i = 0; i < n; i++) {
        w_uvar(&b, refs[i]);
        w_uvar(&b, i == 0 ? 2000 : 0); /* zigzag: +1000 first, then the same time */
        uint8_t v[8] = {1};
        memcpy(b.p + b.n, v, 8);
        b.n += 8;
    }
    w_record(name, TSDB_WAL_SAMPLES, &b);
}

Test(rw_reader, series_map_trimmed_at_a_checkpoint_past_the_reader) {
    mkdir_tmp();
    char wd[300], err[256], cmd[400];
    wal_dir(wd, sizeof wd);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", wd);
    cr_assert_eq(system(cmd), 0);
    const uint64_t a = 1, bb = 2, c = 3, d = 4, all[4] = {a, bb, c, d};
    /* segment 1 defines a and b, segment 2 defines c */
    w_series("00000001", (uint64_t[]){a, bb}, 2);
    w_samples("00000001", (uint64_t[]){a, bb}, 2);
    w_series("00000002", &c, 1);
    w_samples("00000002", (uint64_t[]){a, c}, 2);
    rw_reader r;
    cr_assert_eq(rw_reader_open(&r, wd, (rw_pos){1, 0}, NULL, 0, err, sizeof err), 0);
    rw_batch b = {0};
    cr_assert_eq(read_all(&r, &b), 4);
    cr_assert_eq(r.nseries, 3);
    cr_assert_eq(r.seg, 2);

    /* the store cuts after segment 2: only a is still alive */
    w_series("checkpoint.00000002", &a, 1);
    w_samples("00000003", all, 3);
    rw_batch_clear(&b);
    cr_assert_eq(read_all(&r, &b), 3, "series are not dropped while a batch may point at them");
    cr_assert_eq(r.seg, 3);
    cr_assert_eq(r.nseries, 3);
    rw_batch_clear(&b);
    rw_reader_next(&r, &b, 1000000); /* empty batch, past the checkpoint: trimmed */
    cr_assert_eq(r.series_trimmed, 2, "b (segment 1) and c (segment 2) are not in the checkpoint");
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.checkpoint, 2);

    /* a series defined after the checkpoint is kept; samples of dropped refs are not sent */
    w_series("00000004", &d, 1);
    w_samples("00000004", all, 4);
    rw_batch_clear(&b);
    cr_assert_eq(read_all(&r, &b), 2);
    cr_assert_eq(b.s[0].s->ref, a);
    cr_assert_eq(b.s[1].s->ref, d);
    cr_assert_eq(r.nseries, 2);

    /* a checkpoint covering the segment being read is not used yet (its series may still have
     * samples there) */
    w_series("checkpoint.00000005", &a, 1);
    w_samples("00000005", all, 4);
    rw_batch_clear(&b);
    cr_assert_eq(read_all(&r, &b), 2);
    cr_assert_eq(r.seg, 5);
    rw_batch_clear(&b);
    rw_reader_next(&r, &b, 1000000);
    cr_assert_eq(r.checkpoint, 2);
    cr_assert_eq(r.nseries, 2);
    /* once the reader is past it, it is: d (segment 4) is gone */
    w_samples("00000006", all, 4);
    rw_batch_clear(&b);
    cr_assert_eq(read_all(&r, &b), 2);
    rw_batch_clear(&b);
    rw_reader_next(&r, &b, 1000000);
    cr_assert_eq(r.checkpoint, 5);
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series_trimmed, 3);
    rw_reader_close(&r);
    rw_batch_free(&b);
    rm_tmp();
}

Test(rw_backoff, doubles_up_to_the_cap_and_honours_retry_after) {
    cr_assert_eq(rw_backoff_ms(30, 5000, 0, -1), 30);
    cr_assert_eq(rw_backoff_ms(30, 5000, 1, -1), 60);
    cr_assert_eq(rw_backoff_ms(30, 5000, 4, -1), 480);
    cr_assert_eq(rw_backoff_ms(30, 5000, 30, -1), 5000);
    cr_assert_eq(rw_backoff_ms(30, 5000, 0, 2000), 2000, "Retry-After longer than the back-off wins");
    cr_assert_eq(rw_backoff_ms(30, 5000, 10, 100), 5000, "a shorter Retry-After does not shorten it");
    cr_assert_eq(rw_backoff_ms(30, 5000, 0, 3600 * 1000), 300000, "capped at 5 minutes");
}

Test(rw_http, response_heads) {
    rw_http_resp r;
    const char *a = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
    cr_assert_eq(rw_http_parse_head(a, strlen(a), 0, &r), (long)strlen(a));
    cr_assert_eq(r.status, 204);
    cr_assert_eq(r.content_length, 0);
    cr_assert_eq(r.close, 0);
    const char *b = "HTTP/1.1 429 Too Many\r\nretry-after:  7 \r\nTransfer-Encoding: chunked\r\n\r\nbody";
    cr_assert_eq(rw_http_parse_head(b, strlen(b), 0, &r), (long)strlen(b) - 4);
    cr_assert_eq(r.retry_after_ms, 7000);
    cr_assert_eq(r.chunked, 1);
    /* an HTTP date: 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT */
    const char *c =
        "HTTP/1.1 503 x\r\nRetry-After: Tue, 14 Nov 2023 22:13:30 GMT\r\nConnection: close\r\n\r\n";
    cr_assert_gt(rw_http_parse_head(c, strlen(c), 1700000000000LL, &r), 0);
    cr_assert_eq(r.retry_after_ms, 10000);
    cr_assert_eq(r.close, 1);
    const char *d = "HTTP/1.0 400 Bad\r\n\r\n";
    cr_assert_gt(rw_http_parse_head(d, strlen(d), 0, &r), 0);
    cr_assert_eq(r.close, 1, "HTTP/1.0 closes unless kept alive");
    cr_assert_eq(rw_http_parse_head("HTTP/1.1 200 OK\r\nContent-Le", 27, 0, &r), 0, "incomplete");
    cr_assert_eq(rw_http_parse_head("SMTP ready\r\n\r\n", 14, 0, &r), -1);
    const char *e = "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n";
    cr_assert_eq(rw_http_parse_head(e, strlen(e), 0, &r), -1);
}

Test(rw_url, parses_http_urls_and_refuses_the_rest) {
    rw_url u;
    char err[256];
    cr_assert_eq(rw_url_parse("http://127.0.0.1:9090/api/v1/write", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_str_eq(u.port, "9090");
    cr_assert_str_eq(u.path, "/api/v1/write");
    cr_assert_eq(rw_url_parse("http://[::1]:8428/insert/0/prometheus", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(rw_url_parse("http://mimir", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.port, "80");
    cr_assert_str_eq(u.path, "/");
    cr_assert_eq(u.https, 0);
    cr_assert_eq(rw_url_parse("https://mimir/api/v1/push", &u, err, sizeof err), 0);
    cr_assert_eq(u.https, 1);
    cr_assert_str_eq(u.port, "443");
    cr_assert_eq(rw_url_parse("HTTPS://[::1]:9443/w", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.port, "9443");
    cr_assert_eq(rw_url_parse("httpx://x/", &u, err, sizeof err), -1);
    cr_assert_eq(rw_url_parse("ftp://x/", &u, err, sizeof err), -1);
    cr_assert_eq(rw_url_parse("http://u:p@x/", &u, err, sizeof err), -1);
    cr_assert_eq(rw_url_parse("http://x:9a/", &u, err, sizeof err), -1);
}

/* writes text to a file in a fresh directory and loads it as --remote-write-config */
static int load_cfg(const char *text, rw_target_config **t, size_t *n, char *err, size_t errlen) {
    char path[300];
    snprintf(path, sizeof path, "%s/rw.yml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    *t = NULL;
    *n = 0;
    return rw_config_load(NULL, path, t, n, err, errlen);
}

Test(rw_config, tls_config, .init = mkdir_tmp, .fini = rm_tmp) {
    rw_target_config *t;
    size_t n;
    char err[512];
    cr_assert_eq(load_cfg("remote_write:\n"
                          "  - url: https://mimir:9009/api/v1/push\n"
                          "    tls_config:\n"
                          "      ca_file: /etc/ca.pem\n"
                          "      cert_file: /etc/c.pem\n"
                          "      key_file: /etc/c.key\n"
                          "      server_name: mimir.example\n"
                          "      min_version: TLS12\n"
                          "  - url: https://other/w\n"
                          "    tls_config: {insecure_skip_verify: true}\n",
                          &t, &n, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[0].tls_ca_file, "/etc/ca.pem");
    cr_assert_str_eq(t[0].tls_cert_file, "/etc/c.pem");
    cr_assert_str_eq(t[0].tls_key_file, "/etc/c.key");
    cr_assert_str_eq(t[0].tls_server_name, "mimir.example");
    cr_assert_eq(t[0].tls_insecure, 0);
    cr_assert_eq(t[1].tls_insecure, 1);
    cr_assert_null(t[1].tls_ca_file);
    rw_config_free(t, n);

    const char *bad[][2] = {
        {"remote_write:\n  - url: https://x/\n    tls_config: {insecure_skip_verify: yes please}\n",
         "insecure_skip_verify"},
        {"remote_write:\n  - url: https://x/\n    tls_config: {cert_file: /c.pem}\n", "go together"},
        {"remote_write:\n  - url: https://x/\n    tls_config: {ca: inline}\n", "tls_config:"},
        {"remote_write:\n  - url: https://x/\n    tls_config: [a]\n", "expected a mapping"},
        {"remote_write:\n  - url: https://x/\n    tls_config: {min_version: TLS10}\n", "tls_config:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(load_cfg(bad[i][0], &t, &n, err, sizeof err), -1, "%s", bad[i][0]);
        cr_assert(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
        cr_assert(strstr(err, "rw.yml:3"), "%s", err);
        rw_config_free(t, n);
    }
}

Test(rw_config, tls_setup_checks_the_files) {
    rw_url u;
    char err[512];
    rw_target_config c = {.url = "https://x/"};
    cr_assert_eq(rw_url_parse(c.url, &u, err, sizeof err), 0);
    cr_assert_eq(rw_url_tls_setup(&u, &c, err, sizeof err), 0, "%s", err); /* the system store */
    cr_assert_not_null(u.tls);
    rw_url_free(&u);
    cr_assert_null(u.tls);
    c.tls_ca_file = "/nonexistent/ca.pem";
    cr_assert_eq(rw_url_parse(c.url, &u, err, sizeof err), 0);
    cr_assert_eq(rw_url_tls_setup(&u, &c, err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/ca.pem"), "%s", err);
    /* plain http: no context, tls_config ignored as Prometheus does */
    cr_assert_eq(rw_url_parse("http://x/", &u, err, sizeof err), 0);
    cr_assert_eq(rw_url_tls_setup(&u, &c, err, sizeof err), 0);
    cr_assert_null(u.tls);
}
