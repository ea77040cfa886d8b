/* The offline check of the metrics store (tricorder check): every checksum of every block
 * (meta.json against the index, the index sections, every chunk frame) and of every WAL
 * record, read as the store reads them. With repair, a damaged block is moved to
 * <dir>/quarantine/<id> and a damaged WAL file is rewritten with its intact records only,
 * the original kept as <name>.corrupt. Nothing is ever deleted. */
#include "metrics_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads every frame of an opened block (each once) and every series record in it. Returns
 * the number of damaged frames; the first damage is in b->damage. */
static size_t check_chunks(block *b, FILE *rep) {
    size_t bad = 0;
    uint64_t *seen = calloc(b->nseries + 1, sizeof *seen);
    size_t nseen = 0;
    for (uint64_t i = 0; i < b->nseries; i++) {
        uint64_t off = b->series[i].frame_off;
        if (seen && nseen && bsearch(&off, seen, nseen, sizeof *seen, cmp_u64)) continue;
        sample *s;
        b->damage[0] = 0;
        long n = block_series_samples(b, (uint32_t)i, &s);
        free(s);
        if (n == -2) {
            bad++;
            fprintf(rep, "  damaged: %s\n", b->damage);
            if (seen) {
                /* one line per frame: skip the other series of this frame */
                seen[nseen++] = off;
                qsort(seen, nseen, sizeof *seen, cmp_u64);
            }
        }
    }
    free(seen);
    return bad;
}

static int quarantine(const char *mdir, const char *bdir, const char *id, FILE *rep) {
    char q[4200], dst[4400];
    snprintf(q, sizeof q, "%s/quarantine", mdir);
    if (mkdir(q, 0755) != 0 && errno != EEXIST) {
        fprintf(rep, "  cannot create %s: %s\n", q, strerror(errno));
        return -1;
    }
    snprintf(dst, sizeof dst, "%s/%s", q, id);
    struct stat st;
    for (int k = 1; k < 1000 && lstat(dst, &st) == 0; k++)
        snprintf(dst, sizeof dst, "%s/%s.%d", q, id, k);
    if (rename(bdir, dst) != 0) {
        fprintf(rep, "  cannot move it to %s: %s\n", dst, strerror(errno));
        return -1;
    }
    fprintf(rep, "  repaired: moved to %s\n", dst);
    return 0;
}

static size_t check_blocks(const char *mdir, int repair, FILE *rep, size_t *nblocks) {
    char bdir[4200], p[4500];
    size_t damaged = 0;
    snprintf(bdir, sizeof bdir, "%s/blocks", mdir);
    DIR *d = opendir(bdir);
    if (!d) {
        if (errno != ENOENT) fprintf(rep, "metrics: cannot open %s: %s\n", bdir, strerror(errno));
        return errno == ENOENT ? 0 : 1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", bdir, e->d_name);
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
            fprintf(rep, "metrics block %s: incomplete (an interrupted write; removed at the next start)\n",
                    e->d_name);
            continue;
        }
        (*nblocks)++;
        char err[512];
        int bad;
        block *b = block_open(p, &bad, err, sizeof err);
        size_t frames = 0;
        if (b) {
            frames = check_chunks(b, rep);
            block_free(b);
        }
        if (!b && !bad) {
            fprintf(rep, "metrics block %s: cannot be checked: %s\n", e->d_name, err);
            damaged++;
            continue;
        }
        if (!b || frames) {
            damaged++;
            if (!b)
                fprintf(rep, "metrics block %s: DAMAGED: %s\n", e->d_name, err);
            else
                fprintf(rep, "metrics block %s: DAMAGED: %zu chunk frame(s) fail their checksum\n", e->d_name,
                        frames);
            if (repair) quarantine(mdir, p, e->d_name, rep);
        }
    }
    closedir(d);
    return damaged;
}

static int read_all(const char *path, uint8_t **out, size_t *n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t sz = (size_t)st.st_size, got = 0;
    uint8_t *p = malloc(sz ? sz : 1);
    while (p && got < sz) {
        ssize_t r = read(fd, p + got, sz - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!p || got != sz) {
        free(p);
        return -1;
    }
    *out = p;
    *n = sz;
    return 0;
}

typedef struct keep {
    bvec out;
} keep;

static void keep_rec(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    keep *k = ctx;
    bvec b = {.p = (uint8_t *)pl, .len = len};
    wal_record(&k->out, type, &b);
}

/* Rewrites path with its intact records only (re-framed), keeping the original as
 * path.corrupt. */
static int repair_wal(const char *path, const uint8_t *p, size_t n, FILE *rep) {
    char copy[4600], tmp[4600];
    keep k = {{0}};
    wal_damage d;
    wal_scan_ex(p, n, keep_rec, &k, &d);
    snprintf(copy, sizeof copy, "%s.corrupt", path);
    snprintf(tmp, sizeof tmp, "%s.repair", path);
    int rc = -1;
    if (k.out.err) goto out;
    if (link(path, copy) != 0 && errno != EEXIST) {
        fprintf(rep, "  cannot keep a copy as %s: %s\n", copy, strerror(errno));
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) goto ioerr;
    size_t done = 0;
    while (done < k.out.len) {
        ssize_t w = write(fd, k.out.p + done, k.out.len - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    if (done != k.out.len || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        goto ioerr;
    }
    close(fd);
    if (rename(tmp, path) != 0) goto ioerr;
    fprintf(rep, "  repaired: %llu intact records kept, the original is %s\n", (unsigned long long)d.records,
            copy);
    rc = 0;
    goto out;
ioerr:
    fprintf(rep, "  cannot rewrite %s: %s\n", path, strerror(errno));
out:
    bv_free(&k.out);
    return rc;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static size_t check_wal(const char *mdir, int repair, FILE *rep, size_t *nfiles) {
    char wdir[4200], p[4400];
    snprintf(wdir, sizeof wdir, "%s/wal", mdir);
    DIR *d = opendir(wdir);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0, damaged = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned k;
        char tail;
        size_t l = strlen(e->d_name);
        int seg = l == 8 && strspn(e->d_name, "0123456789") == 8;
        int ck = sscanf(e->d_name, "checkpoint.%8u%c", &k, &tail) == 1;
        if (!seg && !ck) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_name); /* checkpoint.* sorts after the segments */
    size_t newest = n;
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], "checkpoint", 10) != 0) newest = i;
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", wdir, names[i]);
        (*nfiles)++;
        uint8_t *buf;
        size_t len;
        if (read_all(p, &buf, &len) != 0) {
            fprintf(rep, "metrics WAL %s: cannot be read: %s\n", names[i], strerror(errno));
            damaged++;
            continue;
        }
        wal_damage dm;
        wal_scan_ex(buf, len, NULL, NULL, &dm);
        if (dm.bad_records) {
            if (i == newest && dm.tail && dm.bad_records == 1 && dm.first_bad + dm.bad_bytes == len) {
                fprintf(rep,
                        "metrics WAL %s: torn tail of %llu bytes at offset %zu (a write a crash interrupted, "
                        "never "
                        "acknowledged; not damage)\n",
                        names[i], (unsigned long long)dm.bad_bytes, dm.first_bad);
            } else {
                damaged++;
                fprintf(rep,
                        "metrics WAL %s: DAMAGED: %llu damaged record(s), %llu bytes from offset %zu (%llu "
                        "samples in "
                        "records with an intact header); %llu intact records\n",
                        names[i], (unsigned long long)dm.bad_records, (unsigned long long)dm.bad_bytes,
                        dm.first_bad, (unsigned long long)dm.samples_hint, (unsigned long long)dm.records);
                if (repair) repair_wal(p, buf, len, rep);
            }
        }
        free(buf);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return damaged;
}

int tsdb_check(const char *dir, int repair, FILE *report) {
    size_t nb = 0, nw = 0;
    size_t bad = check_blocks(dir, repair, report, &nb);
    bad += check_wal(dir, repair, report, &nw);
    char q[4200];
    snprintf(q, sizeof q, "%s/quarantine", dir);
    DIR *d = opendir(q);
    size_t nq = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') nq++;
    if (d) closedir(d);
    fprintf(report,
            "metrics: %zu block(s) and %zu WAL file(s) checked, %zu damaged%s; %zu block(s) in quarantine\n",
            nb, nw, bad, bad && repair ? " (repaired)" : "", nq);
    return bad ? 1 : 0;
}
