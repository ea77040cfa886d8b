/* Integrity of the metrics store: every byte of a block's chunks and index flipped in turn is
 * caught (never served as a value; the block is quarantined, the query warns), meta.json that
 * is damaged is quarantined and never removed by retention, compaction sets a damaged block
 * aside and goes on, the head is cut on 2h boundaries, WAL replay skips a damaged record and
 * keeps the rest, and queries never answer data older than the retention. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "metrics/metrics_int.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/selfmon.h"

static void quiet(void) { tr_log_set_level(TR_LOG_ERROR + 1); }
TestSuite(metrics_integrity, .init = quiet);

static char dir[256];
static const int64_t H = 3600000;

static void mk(void) {
    snprintf(dir, sizeof dir, "/tmp/tsdb-integ-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[2000];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static tsdb *open_db(const char *d, int64_t retention) {
    tsdb_options o = {.dir = d, .retention_ms = retention};
    tsdb *db;
    char err[512];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "open: %s", err);
    return db;
}

static void on_done(void *c, int st, const char *m) { *(int *)c = st == 0 ? 1 : -1; }

/* The value written for series i at time t: distinct everywhere, so that any damaged byte
 * served as data shows. */
static double val(int i, int64_t t) { return i * 1000.25 + (double)((t / 1000) % 1000000) * 0.5; }

static void write_series(tsdb *db, int nser, int64_t t0, int64_t step, int n) {
    tsdb_appender *a = tsdb_appender_begin(db);
    char inst[16];
    for (int i = 0; i < nser; i++) {
        snprintf(inst, sizeof inst, "%d", i);
        tsdb_label l[] = {{"__name__", "m"}, {"i", inst}};
        for (int k = 0; k < n; k++)
            cr_assert_eq(tsdb_appender_add(a, l, 2, t0 + k * step, val(i, t0 + k * step)), TSDB_OK);
    }
    int st = 0;
    tsdb_appender_commit(a, on_done, &st);
    cr_assert_eq(st, 1);
}

/* Reads everything; every returned sample must be one that was written (series i, t0 + k*step
 * → val(i, k)). Returns the number of samples, and the warnings' count in *warns. */
static size_t read_all_checked(tsdb *db, int64_t t0, int64_t step, size_t *warns) {
    tsdb_matcher **m;
    size_t nm;
    char err[256];
    cr_assert_eq(test_selector("m", &m, &nm, err, sizeof err), 0);
    tsdb_querier *q = tsdb_querier_open(db, INT64_MIN, INT64_MAX);
    tsdb_seriesset *ss = tsdb_select(q, m, nm, TSDB_SELECT_SAMPLES, err, sizeof err);
    cr_assert_not_null(ss, "%s", err);
    size_t tot = 0;
    for (size_t s = 0; s < tsdb_seriesset_len(ss); s++) {
        const tsdb_label *l;
        size_t nl = tsdb_seriesset_labels(ss, s, &l);
        int i = -1;
        for (size_t j = 0; j < nl; j++)
            if (strcmp(l[j].name, "i") == 0) i = atoi(l[j].value);
        cr_assert_geq(i, 0);
        const int64_t *t;
        const double *v;
        size_t c = tsdb_seriesset_samples(ss, s, &t, &v);
        for (size_t x = 0; x < c; x++) {
            cr_assert_eq((t[x] - t0) % step, 0, "a timestamp that was never written: %lld", (long long)t[x]);
            cr_assert_eq(v[x], val(i, t[x]), "series %d t %lld: %g served, %g written", i, (long long)t[x],
                         v[x], val(i, t[x]));
        }
        tot += c;
    }
    const char *const *w;
    *warns = tsdb_querier_warnings(q, &w);
    for (size_t x = 0; x < *warns; x++)
        cr_assert(strstr(w[x], "block ") && strstr(w[x], "damaged"), "%s", w[x]);
    tsdb_seriesset_free(ss);
    tsdb_querier_close(q);
    tsdb_matchers_free(m, nm);
    return tot;
}

/* The id of the only block in d/blocks. */
static const char *only_block(const char *d) {
    static char id[300];
    char b[400];
    snprintf(b, sizeof b, "%s/blocks", d);
    DIR *dd = opendir(b);
    cr_assert_not_null(dd);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(dd)))
        if (e->d_name[0] != '.') snprintf(id, sizeof id, "%s", e->d_name), n++;
    closedir(dd);
    cr_assert_eq(n, 1);
    return id;
}

static size_t file_size(const char *p) {
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "%s", p);
    return (size_t)st.st_size;
}

static void flip(const char *p, size_t off, uint8_t mask) {
    int fd = open(p, O_RDWR);
    cr_assert(fd >= 0);
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, (off_t)off), 1);
    c ^= mask;
    cr_assert_eq(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* A store with one block of 20 series × 200 samples (2 frames' worth is not needed: the
 * values make the frame compress poorly enough to be several hundred bytes). */
static void make_block(const char *d, int64_t t0) {
    tsdb *db = open_db(d, 0);
    write_series(db, 20, t0, 1000, 200);
    char err[256];
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0, "%s", err);
    tsdb_close(db);
}

Test(metrics_integrity, every_flipped_byte_of_chunks_or_index_is_caught) {
    mk();
    char pristine[300], work[300], p[800];
    snprintf(pristine, sizeof pristine, "%s/pristine", dir);
    snprintf(work, sizeof work, "%s/work", dir);
    int64_t t0 = 1000 * H;
    make_block(pristine, t0);
    const char *id = only_block(pristine);
    char bid[128];
    snprintf(bid, sizeof bid, "%s", id);
    const char *files[] = {"chunks", "index"};
    for (int f = 0; f < 2; f++) {
        snprintf(p, sizeof p, "%s/blocks/%s/%s", pristine, bid, files[f]);
        size_t len = file_size(p);
        cr_assert_gt(len, 100);
        /* every byte for the index; the chunks at a stride (each open is a whole store) */
        size_t stride = f == 0 ? 7 : 3;
        for (size_t off = 0; off < len; off += stride) {
            sh("rm -rf '%s'%s", work, "");
            sh("cp -a '%s' '%s'", pristine, work);
            snprintf(p, sizeof p, "%s/blocks/%s/%s", work, bid, files[f]);
            flip(p, off, (uint8_t)(1u << (off % 8)));
            tsdb *db = open_db(work, 0);
            size_t warns = 0;
            size_t n = read_all_checked(db, t0, 1000, &warns);
            tsdb_stats st;
            tsdb_get_stats(db, &st);
            /* the damage is found at open (index) or at the first read (chunks): the block
             * is set aside whole, nothing of it is served */
            cr_assert_eq(n, 0, "%s byte %zu: %zu samples served from a damaged block", files[f], off, n);
            cr_assert_eq(st.blocks, 0, "%s byte %zu", files[f], off);
            cr_assert_eq(st.quarantined, 1, "%s byte %zu", files[f], off);
            if (f == 0) cr_assert_eq(warns, 1, "chunks byte %zu: the query names the block", off);
            tsdb_close(db);
            snprintf(p, sizeof p, "%s/quarantine/%s/%s", work, bid, files[f]);
            cr_assert_eq(access(p, F_OK), 0, "%s byte %zu: quarantined, not deleted", files[f], off);
            /* and a reopen does not bring it back */
            db = open_db(work, 0);
            cr_assert_eq(read_all_checked(db, t0, 1000, &warns), 0);
            tsdb_close(db);
        }
    }
    /* the pristine copy reads whole */
    tsdb *db = open_db(pristine, 0);
    size_t warns;
    cr_assert_eq(read_all_checked(db, t0, 1000, &warns), 20 * 200);
    cr_assert_eq(warns, 0);
    tsdb_close(db);
    sh("rm -rf '%s'%s", dir, "");
}

static void rewrite(const char *p, const char *text) {
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(metrics_integrity, damaged_meta_json_is_quarantined_never_loaded_with_defaults) {
    mk();
    char d[300], p[800], good[512];
    int64_t now = (int64_t)time(NULL) * 1000;
    int64_t t0 = (now / H - 5) * H;
    const char *cases[] = {
        NULL,               /* missing file */
        "",                 /* empty */
        "{\"version\":2,",  /* cut short */
        "drop the minTime", /* a field missing: built below */
        "a digit changed",  /* minTime off by one: built below */
        "{\"version\":2,\"minTime\":x}",
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(d, sizeof d, "%s/c%zu", dir, c);
        make_block(d, t0);
        char id[128];
        snprintf(id, sizeof id, "%s", only_block(d));
        snprintf(p, sizeof p, "%s/blocks/%s/meta.json", d, id);
        FILE *f = fopen(p, "r");
        size_t gl = fread(good, 1, sizeof good - 1, f);
        fclose(f);
        good[gl] = 0;
        if (c == 0)
            cr_assert_eq(unlink(p), 0);
        else if (c == 3) {
            char *m = strstr(good, "\"minTime\":");
            char *e = strchr(m, ',');
            memmove(m, e + 1, strlen(e + 1) + 1);
            rewrite(p, good);
        } else if (c == 4) {
            char *m = strstr(good, "\"minTime\":") + 10;
            *m = *m == '1' ? '2' : '1';
            rewrite(p, good);
        } else
            rewrite(p, cases[c]);
        /* a short retention: a block loaded with min/max time 0 would be dropped */
        tsdb *db = open_db(d, 24 * H);
        tsdb_maintain(db);
        tsdb_stats st;
        tsdb_get_stats(db, &st);
        cr_assert_eq(st.blocks, 0, "case %zu", c);
        cr_assert_eq(st.quarantined, 1, "case %zu", c);
        tsdb_close(db);
        snprintf(p, sizeof p, "%s/quarantine/%s/chunks", d, id);
        cr_assert_eq(access(p, F_OK), 0, "case %zu: the block's data is kept in quarantine", c);
    }
    sh("rm -rf '%s'%s", dir, "");
}

Test(metrics_integrity, compaction_sets_a_damaged_block_aside_and_goes_on) {
    mk();
    int64_t t0 = 996 * H; /* a 6h window starts at 996h */
    tsdb *db = open_db(dir, 0);
    char err[256];
    /* three blocks in the window and one after it (so that the window is complete) */
    for (int b = 0; b < 4; b++) {
        write_series(db, 5, t0 + b * 2 * H, 1000, 100);
        cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    }
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 4);
    /* damage the middle block's chunks behind the store's back */
    block *mid = db->blocks[1];
    char p[4400];
    snprintf(p, sizeof p, "%s/chunks", mid->dir);
    char bad_id[64];
    snprintf(bad_id, sizeof bad_id, "%s", mid->id);
    flip(p, file_size(p) / 2, 0x04);
    tsdb_maintain(db);
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.quarantined, 1);
    cr_assert_eq(st.blocks, 2, "the two intact blocks of the window are compacted into one: %llu",
                 (unsigned long long)st.blocks);
    cr_assert_eq(st.compactions, 1);
    size_t warns;
    cr_assert_eq(read_all_checked(db, t0, 1000, &warns), 3 * 5 * 100);
    cr_assert_eq(warns, 0, "the damaged block was found by compaction, not by this query");
    tsdb_close(db);
    snprintf(p, sizeof p, "%s/quarantine/%s/chunks", dir, bad_id);
    cr_assert_eq(access(p, F_OK), 0);
    sh("rm -rf '%s'%s", dir, "");
}

Test(metrics_integrity, head_cut_on_2h_boundaries_and_stepped_compaction) {
    mk();
    tsdb *db = open_db(dir, 0);
    int64_t t0 = 1002 * H + 1800000; /* 1002h is a 2h boundary; start half an hour in */
    /* a backfill spanning 10 hours arrives at once */
    write_series(db, 3, t0, 60000, 600);
    char err[256];
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 6, "10h from 1002.5h cover 6 2h ranges: %llu", (unsigned long long)st.blocks);
    for (size_t i = 0; i < db->nblocks; i++) {
        block *b = db->blocks[i];
        cr_assert_eq(b->mint / (2 * H), b->maxt / (2 * H), "block %s crosses a 2h boundary", b->id);
    }
    /* compaction as Prometheus plans it: the 6h window 1002h–1008h holds 3 blocks that end
     * before the newest block (1012h) begins: merged; 1008h–1014h holds the newest block, so it
     * waits; no larger window holds two blocks that end before 1012h */
    tsdb_maintain(db);
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 4, "blocks: %llu", (unsigned long long)st.blocks);
    cr_assert_eq(st.compactions, 1);
    for (size_t i = 0; i < db->nblocks; i++) {
        block *b = db->blocks[i];
        cr_assert_eq(b->mint / (6 * H), b->maxt / (6 * H), "block %s crosses a 6h window", b->id);
    }
    /* the next 2h of data: the 1008h–1014h window is then complete, and compacted */
    write_series(db, 3, 1014 * H, 60000, 120);
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    tsdb_maintain(db);
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 3, "blocks: %llu", (unsigned long long)st.blocks);
    cr_assert_eq(st.compactions, 2);
    t0 = 1002 * H + 1800000;
    size_t warns;
    cr_assert_eq(read_all_checked(db, t0, 60000, &warns), 3 * 600 + 3 * 120);
    tsdb_close(db);
    sh("rm -rf '%s'%s", dir, "");
}

static void rec_at(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    struct offs {
        const uint8_t *base;
        size_t off[8], len[8], n;
    } *o = ctx;
    if (o->n < 8) {
        o->off[o->n] = (size_t)(pl - o->base);
        o->len[o->n++] = len;
    }
}

Test(metrics_integrity, a_series_with_years_between_samples_cuts_only_the_ranges_it_has) {
    mk();
    tsdb *db = open_db(dir, 0);
    int64_t ts[] = {5 * H, 40000 * H, 40000 * H + 60000, 80001 * H};
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"__name__", "m"}, {"i", "0"}};
    for (int k = 0; k < 4; k++)
        cr_assert_eq(tsdb_appender_add(a, l, 2, ts[k], val(0, ts[k])), TSDB_OK);
    int st = 0;
    tsdb_appender_commit(a, on_done, &st);
    cr_assert_eq(st, 1);
    char err[256];
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0, "%s", err);
    tsdb_stats stt;
    tsdb_get_stats(db, &stt);
    cr_assert_eq(stt.blocks, 3, "one block per 2h range holding data: %llu", (unsigned long long)stt.blocks);
    size_t warns;
    cr_assert_eq(read_all_checked(db, 0, 60000, &warns), 4);
    tsdb_close(db);
    sh("rm -rf '%s'%s", dir, "");
}

Test(metrics_integrity, wal_replay_skips_a_damaged_record_and_keeps_the_rest) {
    mk();
    int64_t t0 = 1000 * H;
    pid_t pid = fork();
    if (pid == 0) {
        tsdb_options o = {.dir = dir};
        tsdb *db;
        char err[256];
        if (tsdb_open(&o, &db, err, sizeof err)) _exit(2);
        for (int c = 0; c < 3; c++)
            write_series(db, 4, t0 + c * 100000, 1000, 50);
        _exit(0); /* a crash: the head is only in the WAL */
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char seg[400];
    snprintf(seg, sizeof seg, "%s/wal/00000001", dir);
    uint8_t *buf;
    size_t len = file_size(seg);
    buf = malloc(len);
    FILE *f = fopen(seg, "rb");
    cr_assert_eq(fread(buf, 1, len, f), len);
    fclose(f);
    /* the records' payload offsets */
    struct offs {
        const uint8_t *base;
        size_t off[8], len[8], n;
    } o = {.base = buf};
    wal_damage d;
    wal_scan_ex(buf, len, rec_at, &o, &d);
    cr_assert_eq(d.bad_records, 0);
    cr_assert_eq(o.n, 4, "series + samples, samples, samples: %zu", o.n);
    free(buf);
    /* a bit in the middle of the second commit's samples (the third record) */
    flip(seg, o.off[2] + o.len[2] / 2, 0x20);
    tsdb *db = open_db(dir, 0);
    size_t warns;
    size_t n = read_all_checked(db, t0, 1000, &warns);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.wal_records_skipped, 1);
    cr_assert_eq(n, 2 * 4 * 50, "the two intact commits are back: %zu", n);
    cr_assert_eq(st.wal_samples_dropped, 4 * 50);
    snprintf(seg, sizeof seg, "%s/wal/00000001.corrupt", dir);
    cr_assert_eq(access(seg, F_OK), 0, "a copy of the damaged segment is kept");
    tsdb_close(db);
    sh("rm -rf '%s'%s", dir, "");
}

Test(metrics_integrity, queries_never_answer_data_older_than_the_retention) {
    mk();
    int64_t now = (int64_t)time(NULL) * 1000;
    tsdb *db = open_db(dir, 0);
    int64_t t0 = now - 3 * H;
    write_series(db, 2, t0, 60000, 180); /* the last 3 hours, in the head */
    size_t warns;
    cr_assert_eq(read_all_checked(db, t0, 60000, &warns), 2 * 180);
    db->o.retention_ms = H; /* as if the head had been kept past the retention */
    size_t n = read_all_checked(db, t0, 60000, &warns);
    cr_assert_leq(n, 2 * 61);
    cr_assert_geq(n, 2 * 59);
    char err[256];
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    cr_assert_leq(read_all_checked(db, t0, 60000, &warns), 2 * 61, "nor from a block");
    tsdb_close(db);
    sh("rm -rf '%s'%s", dir, "");
}

Test(metrics_integrity, meta_json_parser_is_strict) {
    int64_t v[6];
    char why[200];
    const char *ok =
        "{\"version\":2,\"minTime\":-5,\"maxTime\":7,\"numSeries\":1,\"numSamples\":2,\"level\":0}\n";
    cr_assert_eq(block_parse_meta(ok, strlen(ok), v, why, sizeof why), 0, "%s", why);
    cr_assert_eq(v[1], -5);
    cr_assert_eq(v[2], 7);
    const char *bad[] = {
        "{\"version\":2,\"minTime\":-5,\"maxTime\":7,\"numSeries\":1,\"numSamples\":2}",
        "{\"version\":2,\"minTime\":-5,\"maxTime\":7,\"numSeries\":1,\"numSamples\":2,\"level\":0,\"level\":"
        "0}",
        "{\"version\":2,\"minTime\":-5,\"maxTime\":7,\"numSeries\":1,\"numSamples\":2,\"level\":0,\"x\":1}",
        "{\"version\":2,\"minTime\":-5,\"maxTime\":7,\"numSeries\":1,\"numSamples\":2,\"level\":0} x",
        "{\"version\":2,\"minTime\":99999999999999999999,\"maxTime\":7,\"numSeries\":1,\"numSamples\":2,"
        "\"level\":0}",
        "{\"version\":2,\"minTime\":\"5\",\"maxTime\":7,\"numSeries\":1,\"numSamples\":2,\"level\":0}",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(block_parse_meta(bad[i], strlen(bad[i]), v, why, sizeof why), -1, "case %zu", i);
}

Test(metrics_integrity, a_wal_write_failure_is_refused_logged_with_errno_and_counted) {
    mk();
    char logp[400];
    snprintf(logp, sizeof logp, "%s.log", dir);
    int64_t t0 = 1000 * H;
    pid_t pid = fork();
    if (pid == 0) {
        /* files may not grow past 64 KiB: the WAL write fails with EFBIG, as on a full disk */
        if (!freopen(logp, "w", stderr)) _exit(10);
        tr_log_set_level(TR_LOG_INFO);
        signal(SIGXFSZ, SIG_IGN);
        tsdb_options o = {.dir = dir};
        tsdb *db;
        char err[256];
        if (tsdb_open(&o, &db, err, sizeof err)) _exit(11);
        struct rlimit rl = {64 << 10, 64 << 10};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(12);
        int acked = 0;
        for (int c = 0; c < 100; c++) {
            tsdb_appender *a = tsdb_appender_begin(db);
            tsdb_label l[] = {{"__name__", "m"}, {"i", "0"}};
            for (int k = 0; k < 500; k++)
                tsdb_appender_add(a, l, 2, t0 + (c * 500 + k) * 1000, val(0, t0 + (c * 500 + k) * 1000));
            int st = 0;
            tsdb_appender_commit(a, on_done, &st);
            if (st != 1) break;
            acked++;
        }
        tr_buf b;
        tr_buf_init(&b, 0);
        tr_selfmon_render(&b);
        int counted =
            strstr(b.data, "tricorder_storage_errors_total{store=\"metrics\",kind=\"wal_write\"} 1\n") !=
            NULL;
        fflush(stderr);
        _exit(acked > 0 && acked < 100 && counted ? 100 + acked : 13);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) > 100, "child status %d", WEXITSTATUS(status));
    int acked = WEXITSTATUS(status) - 100;
    FILE *f = fopen(logp, "r");
    char log[8192] = "";
    size_t ll = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[ll] = 0;
    cr_assert_not_null(strstr(log, "msg=\"WAL write failed: the batch is refused (503)\""), "%s", log);
    cr_assert_not_null(strstr(log, "errno=27 "), "EFBIG's number is logged: %s", log);
    /* every acknowledged batch is there, the refused one is not */
    tsdb *db = open_db(dir, 0);
    size_t warns;
    cr_assert_eq(read_all_checked(db, t0, 1000, &warns), (size_t)acked * 500);
    tsdb_close(db);
    unlink(logp);
    sh("rm -rf '%s'%s", dir, "");
}
