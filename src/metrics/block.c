/* Immutable on-disk blocks: <blocks>/<id>/{chunks,index,meta.json}. Each series' samples in a
 * block are one columnar record (timestamps as delta-of-delta varints; values as decimal
 * integers with a shared exponent when that is exact, else XOR'd bit patterns), records are
 * grouped into zstd frames in `chunks`; `index` holds the symbols, the series with their
 * label symbol ids and chunk positions, and the postings. A block is written in <id>.tmp and
 * renamed when complete, so a crash never leaves half a block behind.
 *
 * Format 2 (this writer) checksums everything that is read back, with CRC32C: each zstd frame
 * of `chunks` is followed by the CRC32C of its compressed bytes, and `index` is three sections
 * (symbols, series, postings), each [u64 raw length][u32 zstd length][zstd][u32 CRC32C of the
 * previous three]. meta.json is parsed strictly (every field present, nothing else) and checked
 * against the index. Format 1 blocks (an index with one zlib CRC, chunks without checksums) are
 * still read, with a log line at load; compaction rewrites them in format 2. */
#include "metrics_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "util/crc32c.h"

#define FRAME_RAW (256u << 10)
#define ZLEVEL 6
static const char IDX_MAGIC_V1[8] = {'T', 'R', 'I', 'D', 'X', '0', '0', '1'};
static const char IDX_MAGIC[8] = {'T', 'R', 'I', 'D', 'X', '0', '0', '2'};
#define SECTION_MAX (1ull << 34)

/* ---- per-series encoding ---- */

static const double p10[19] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8, 1e9,
                               1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

static int same_bits(double a, double b) { return memcmp(&a, &b, 8) == 0; }

/* Finds the smallest k with v == m / 10^k exactly; returns k or -1. */
static int decimal_exp(double v, int64_t *m) {
    if (!isfinite(v) || fabs(v) >= 4e18) return -1;
    for (int k = 0; k <= 18; k++) {
        double x = v * p10[k];
        if (fabs(x) >= 4e18) return -1;
        int64_t mm = llround(x);
        if (same_bits((double)mm / p10[k], v)) {
            *m = mm;
            return k;
        }
    }
    return -1;
}

void blockenc_series(bvec *out, const sample *s, size_t n) {
    bv_uvar(out, n);
    if (!n) return;
    bv_svar(out, s[0].t);
    int64_t pd = 0;
    for (size_t i = 1; i < n; i++) {
        int64_t d = (int64_t)((uint64_t)s[i].t - (uint64_t)s[i - 1].t);
        bv_svar(out, i == 1 ? d : (int64_t)((uint64_t)d - (uint64_t)pd));
        pd = d;
    }
    /* values: try the decimal form */
    int64_t *m = malloc(n * sizeof *m);
    int8_t *k = malloc(n);
    int ok = m && k;
    int emax = 0;
    for (size_t i = 0; ok && i < n; i++) {
        int e = decimal_exp(s[i].v, &m[i]);
        if (e < 0)
            ok = 0;
        else {
            k[i] = (int8_t)e;
            if (e > emax) emax = e;
        }
    }
    for (size_t i = 0; ok && i < n; i++) {
        int d = emax - k[i];
        if (d) {
            double lim = 4e18 / p10[d];
            if (fabs((double)m[i]) >= lim) {
                ok = 0;
                break;
            }
            for (int j = 0; j < d; j++)
                m[i] *= 10;
        }
        if (!same_bits((double)m[i] / p10[emax], s[i].v)) ok = 0;
    }
    if (ok) {
        bv_u8(out, 1);
        bv_u8(out, (uint8_t)emax);
        bv_svar(out, m[0]);
        for (size_t i = 1; i < n; i++)
            bv_svar(out, m[i] - m[i - 1]);
    } else {
        bv_u8(out, 0);
        uint64_t prev = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t b;
            memcpy(&b, &s[i].v, 8);
            bv_u64le(out, b ^ prev);
            prev = b;
        }
    }
    free(m);
    free(k);
}

long blockdec_series(const uint8_t *p, size_t len, sample **out) {
    rd r = {p, p + len, 0};
    uint64_t n = rd_uvar(&r);
    *out = NULL;
    if (r.err || n > len * 8 + 1) return -1; /* every sample costs at least a bit or so */
    if (!n) return 0;
    sample *s = malloc(n * sizeof *s);
    if (!s) return -1;
    s[0].t = rd_svar(&r);
    int64_t d = 0;
    for (uint64_t i = 1; i < n; i++) {
        int64_t x = rd_svar(&r);
        d = i == 1 ? x : (int64_t)((uint64_t)d + (uint64_t)x);
        s[i].t = (int64_t)((uint64_t)s[i - 1].t + (uint64_t)d);
    }
    uint8_t mode = rd_u8(&r);
    if (mode == 1) {
        uint8_t e = rd_u8(&r);
        if (e > 18) r.err = 1;
        int64_t m = 0;
        for (uint64_t i = 0; i < n && !r.err; i++) {
            int64_t x = rd_svar(&r);
            m = i == 0 ? x : (int64_t)((uint64_t)m + (uint64_t)x);
            s[i].v = (double)m / p10[e];
        }
    } else if (mode == 0) {
        uint64_t prev = 0;
        for (uint64_t i = 0; i < n && !r.err; i++) {
            prev ^= rd_u64le(&r);
            memcpy(&s[i].v, &prev, 8);
        }
    } else {
        r.err = 1;
    }
    if (r.err) {
        free(s);
        return -1;
    }
    *out = s;
    return (long)n;
}

/* ---- writing ---- */

typedef struct triple {
    uint32_t name, value, id;
} triple;

static int cmp_triple(const void *a, const void *b) {
    const triple *x = a, *y = b;
    if (x->name != y->name) return x->name < y->name ? -1 : 1;
    if (x->value != y->value) return x->value < y->value ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int write_file(const char *path, const void *p, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int rc = tr_write_all(fd, p, n);
    if (rc == 0) rc = fsync(fd);
    close(fd);
    return rc;
}

void block_remove_dir(const char *dir) {
    char p[4300];
    const char *files[] = {"chunks", "index", "meta.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static int cmp_sym(const void *a, const void *b) {
    return strcmp((*(sym *const *)a)->s, (*(sym *const *)b)->s);
}

/* Appends raw as one index section (see the top of the file) and empties raw. 0 or -1 (OOM). */
static int put_section(bvec *idx, bvec *raw) {
    if (raw->err) return -1;
    size_t bound = ZSTD_compressBound(raw->len);
    size_t start = idx->len;
    bv_reserve(idx, bound + 16);
    if (idx->err) return -1;
    bv_u64le(idx, raw->len);
    bv_u32le(idx, 0); /* zstd length, below */
    size_t zl = ZSTD_compress(idx->p + idx->len, idx->cap - idx->len, raw->p, raw->len, ZLEVEL);
    if (ZSTD_isError(zl) || zl > UINT32_MAX) return -1;
    for (int x = 0; x < 4; x++)
        idx->p[start + 8 + x] = (uint8_t)(zl >> (8 * x));
    idx->len += zl;
    bv_u32le(idx, crc32c(idx->p + start, idx->len - start));
    raw->len = 0;
    return idx->err ? -1 : 0;
}

/* Per-series facts kept until the index is written; the samples themselves are encoded into
 * the current frame at once, so memory holds one series' samples and one frame at a time. */
typedef struct wmeta {
    uint32_t lbl_off, nl; /* into the flat label array */
    int64_t mint, maxt;
    uint32_t n;
    uint64_t frame_off;
    uint32_t frame_len, in_off, in_len;
} wmeta;

int block_write(const char *blocks_dir, wseries_next next, void *ctx, int level, char *id_out, size_t idcap,
                char *err, size_t errlen) {
    static unsigned seq;
    char tmp[4200], fin[4200], path[4300];
    symtab st = {0};
    ptrmap symidx = {0};
    sym **lbls = NULL, **syms = NULL;
    size_t nlbls = 0, caplbls = 0, nsyms = 0;
    wmeta *meta = NULL;
    size_t n = 0, capmeta = 0;
    triple *tr = NULL;
    bvec idx = {0}, raw = {0};
    void *zbuf = NULL;
    int cfd = -1, rc = -1, created = 0, saved_errno = 0;
    size_t ntr = 0;
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    uint64_t nsamples = 0;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(id_out, idcap, "%013lld-%06ld-%u", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
             (long)(ts.tv_nsec / 1000 % 1000000), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", blocks_dir, id_out);
    snprintf(fin, sizeof fin, "%s/%s", blocks_dir, id_out);

    if (mkdir(tmp, 0755) != 0) {
        saved_errno = errno;
        snprintf(err, errlen, "cannot create %s: errno=%d %s", tmp, saved_errno, strerror(saved_errno));
        goto out;
    }
    created = 1;
    snprintf(path, sizeof path, "%s/chunks", tmp);
    cfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (cfd < 0) goto ioerr;

    /* chunks: series records grouped into zstd frames, written as they fill */
    uint64_t off = 0;
    size_t first = 0;
    for (int more = 1; more;) {
        wseries w = {0};
        int r = next(ctx, &w);
        if (r < 0) {
            snprintf(err, errlen, "reading the series to write failed");
            goto fail;
        }
        more = r > 0;
        if (more && w.n) {
            if (n == capmeta) {
                size_t c = capmeta ? capmeta * 2 : 1024;
                wmeta *nm = realloc(meta, c * sizeof *nm);
                if (!nm) goto oom;
                meta = nm;
                capmeta = c;
            }
            if (nlbls + 2 * w.nl > caplbls) {
                size_t c = caplbls ? caplbls * 2 : 4096;
                while (c < nlbls + 2 * w.nl)
                    c *= 2;
                sym **nl = realloc(lbls, c * sizeof *nl);
                if (!nl) goto oom;
                lbls = nl;
                caplbls = c;
            }
            wmeta *m = &meta[n];
            memset(m, 0, sizeof *m);
            m->lbl_off = (uint32_t)nlbls;
            m->nl = (uint32_t)w.nl;
            for (size_t j = 0; j < w.nl; j++) {
                sym *a = sym_intern(&st, w.lbl[j].name, strlen(w.lbl[j].name));
                if (!a) goto oom;
                lbls[nlbls++] = a;
                sym *b = sym_intern(&st, w.lbl[j].value, strlen(w.lbl[j].value));
                if (!b) goto oom;
                lbls[nlbls++] = b;
            }
            m->in_off = (uint32_t)raw.len;
            blockenc_series(&raw, w.s, w.n);
            if (raw.err) goto oom;
            m->in_len = (uint32_t)(raw.len - m->in_off);
            m->n = (uint32_t)w.n;
            m->mint = w.s[0].t;
            m->maxt = w.s[w.n - 1].t;
#ifndef NDEBUG
            /* a block's series come in label order, each with strictly increasing times */
            for (size_t k = 1; k < w.n; k++)
                assert(w.s[k - 1].t < w.s[k].t);
            if (n > 0) {
                const wmeta *pm = &meta[n - 1];
                size_t na = pm->nl, nb = w.nl, i = 0;
                int c = 0;
                for (; !c && i < na && i < nb; i++) {
                    c = strcmp(lbls[pm->lbl_off + 2 * i]->s, lbls[m->lbl_off + 2 * i]->s);
                    if (!c) c = strcmp(lbls[pm->lbl_off + 2 * i + 1]->s, lbls[m->lbl_off + 2 * i + 1]->s);
                }
                assert(c < 0 || (c == 0 && na < nb));
            }
#endif
            if (m->mint < mint) mint = m->mint;
            if (m->maxt > maxt) maxt = m->maxt;
            nsamples += w.n;
            n++;
        }
        if ((!more && raw.len) || raw.len >= FRAME_RAW) {
            size_t bound = ZSTD_compressBound(raw.len);
            void *z = realloc(zbuf, bound);
            if (!z) goto oom;
            zbuf = z;
            size_t zl = ZSTD_compress(zbuf, bound, raw.p, raw.len, ZLEVEL);
            if (ZSTD_isError(zl)) goto oom;
            uint8_t crc[4];
            uint32_t c = crc32c(zbuf, zl);
            for (int x = 0; x < 4; x++)
                crc[x] = (uint8_t)(c >> (8 * x));
            if (tr_write_all(cfd, zbuf, zl) || tr_write_all(cfd, crc, 4)) goto ioerr;
            for (size_t k = first; k < n; k++) {
                meta[k].frame_off = off;
                meta[k].frame_len = (uint32_t)zl;
            }
            off += zl + 4;
            first = n;
            raw.len = 0;
        }
    }
    if (!n) {
        /* nothing to keep (a range the data only spans): no empty block */
        close(cfd);
        cfd = -1;
        block_remove_dir(tmp);
        id_out[0] = 0;
        rc = 1;
        goto out;
    }
    if (fsync(cfd)) goto ioerr;
    close(cfd);
    cfd = -1;

    /* symbols, sorted; their index through a map from the interned pointer */
    syms = malloc((st.n + 1) * sizeof *syms);
    if (!syms) goto oom;
    for (size_t i = 0; i < st.cap; i++)
        if (st.tab[i] && st.tab[i] != (sym *)1) syms[nsyms++] = st.tab[i];
    qsort(syms, nsyms, sizeof *syms, cmp_sym);
    for (size_t i = 0; i < nsyms; i++)
        if (pm_put(&symidx, (uintptr_t)syms[i], (void *)(uintptr_t)(i + 1))) goto oom;

    /* index: three checksummed sections */
    bv_put(&idx, IDX_MAGIC, 8);
    raw.len = 0;
    bv_uvar(&raw, nsyms);
    for (size_t i = 0; i < nsyms; i++) {
        bv_uvar(&raw, syms[i]->len);
        bv_put(&raw, syms[i]->s, syms[i]->len);
    }
    if (put_section(&idx, &raw)) goto oom;
    tr = malloc((nlbls / 2 + 1) * sizeof *tr);
    if (!tr) goto oom;
    bv_uvar(&raw, n);
    for (size_t i = 0; i < n; i++) {
        wmeta *m = &meta[i];
        bv_uvar(&raw, m->nl);
        for (size_t j = 0; j < m->nl; j++) {
            uint32_t a = (uint32_t)(uintptr_t)pm_get(&symidx, (uintptr_t)lbls[m->lbl_off + 2 * j]) - 1;
            uint32_t b = (uint32_t)(uintptr_t)pm_get(&symidx, (uintptr_t)lbls[m->lbl_off + 2 * j + 1]) - 1;
            bv_uvar(&raw, a);
            bv_uvar(&raw, b);
            tr[ntr].name = a;
            tr[ntr].value = b;
            tr[ntr++].id = (uint32_t)i;
        }
        bv_svar(&raw, m->mint);
        bv_uvar(&raw, (uint64_t)m->maxt - (uint64_t)m->mint);
        bv_uvar(&raw, m->n);
        bv_uvar(&raw, m->frame_off);
        bv_uvar(&raw, m->frame_len);
        bv_uvar(&raw, m->in_off);
        bv_uvar(&raw, m->in_len);
    }
    if (put_section(&idx, &raw)) goto oom;
    qsort(tr, ntr, sizeof *tr, cmp_triple);
    size_t nnames = 0;
    for (size_t i = 0; i < ntr; i++)
        if (!i || tr[i].name != tr[i - 1].name) nnames++;
    bv_uvar(&raw, nnames);
    for (size_t i = 0; i < ntr;) {
        size_t j = i, nv = 0;
        while (j < ntr && tr[j].name == tr[i].name) {
            if (j == i || tr[j].value != tr[j - 1].value) nv++;
            j++;
        }
        bv_uvar(&raw, tr[i].name);
        bv_uvar(&raw, nv);
        for (size_t a = i; a < j;) {
            size_t b = a;
            while (b < j && tr[b].value == tr[a].value)
                b++;
            bv_uvar(&raw, tr[a].value);
            bv_uvar(&raw, b - a);
            uint32_t prev = 0;
            for (size_t c = a; c < b; c++) {
                bv_uvar(&raw, tr[c].id - prev);
                prev = tr[c].id;
            }
            a = b;
        }
        i = j;
    }
    if (put_section(&idx, &raw)) goto oom;
    snprintf(path, sizeof path, "%s/index", tmp);
    if (write_file(path, idx.p, idx.len)) goto ioerr;
    char metaj[512];
    if (!n) mint = maxt = 0;
    int ml = snprintf(metaj, sizeof metaj,
                      "{\"version\":2,\"minTime\":%lld,\"maxTime\":%lld,\"numSeries\":%zu,\"numSamples\":%"
                      "llu,\"level\":%d}\n",
                      (long long)mint, (long long)maxt, n, (unsigned long long)nsamples, level);
    snprintf(path, sizeof path, "%s/meta.json", tmp);
    if (write_file(path, metaj, (size_t)ml)) goto ioerr;
    int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd)) { /* best effort */
        }
        close(dfd);
    }
    if (rename(tmp, fin) != 0) goto ioerr;
    dfd = open(blocks_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd)) { /* best effort */
        }
        close(dfd);
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory writing a block");
    goto fail;
ioerr:
    saved_errno = errno;
    snprintf(err, errlen, "cannot write block %s: errno=%d %s", tmp, saved_errno, strerror(saved_errno));
fail:
    if (cfd >= 0) close(cfd);
    cfd = -1;
    if (created) block_remove_dir(tmp);
    errno = saved_errno;
out:
    free(lbls);
    free(syms);
    free(meta);
    free(tr);
    free(zbuf);
    pm_free(&symidx);
    symtab_free(&st);
    bv_free(&raw);
    bv_free(&idx);
    return rc;
}

/* ---- reading ---- */

typedef struct bcache {
    pthread_mutex_t mu;
    uint64_t off;
    int valid;
    uint8_t *data;
    size_t len;
} bcache;

/* meta.json, strictly: one object of integer fields, each of `want` exactly once and nothing
 * else. Returns 0, or -1 with why. */
static const char *const META_KEYS[] = {"version", "minTime", "maxTime", "numSeries", "numSamples", "level"};
enum { MK_VERSION, MK_MINT, MK_MAXT, MK_NSERIES, MK_NSAMPLES, MK_LEVEL, MK_N };

static void skip_ws(const char **p) {
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
        (*p)++;
}

int block_parse_meta(const char *js, size_t len, int64_t *v, char *why, size_t whylen) {
    if (strlen(js) != len) {
        snprintf(why, whylen, "meta.json holds a NUL byte");
        return -1;
    }
    const char *p = js;
    unsigned seen = 0;
    skip_ws(&p);
    if (*p++ != '{') goto bad;
    for (;;) {
        skip_ws(&p);
        if (*p++ != '"') goto bad;
        const char *k = p;
        while (*p && *p != '"')
            p++;
        if (*p != '"') goto bad;
        size_t kl = (size_t)(p - k);
        p++;
        int idx = -1;
        for (int i = 0; i < MK_N; i++)
            if (strlen(META_KEYS[i]) == kl && memcmp(META_KEYS[i], k, kl) == 0) idx = i;
        if (idx < 0) {
            snprintf(why, whylen, "meta.json: unknown field \"%.*s\"", (int)(kl > 40 ? 40 : kl), k);
            return -1;
        }
        if (seen & (1u << idx)) {
            snprintf(why, whylen, "meta.json: field %s twice", META_KEYS[idx]);
            return -1;
        }
        skip_ws(&p);
        if (*p++ != ':') goto bad;
        skip_ws(&p);
        if (!(*p == '-' || (*p >= '0' && *p <= '9'))) goto bad;
        errno = 0;
        char *end;
        long long x = strtoll(p, &end, 10);
        if (errno || end == p) goto bad;
        p = end;
        v[idx] = x;
        seen |= 1u << idx;
        skip_ws(&p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != '}') goto bad;
        break;
    }
    skip_ws(&p);
    if (*p) goto bad;
    for (int i = 0; i < MK_N; i++)
        if (!(seen & (1u << i))) {
            snprintf(why, whylen, "meta.json: field %s missing", META_KEYS[i]);
            return -1;
        }
    return 0;
bad:
    snprintf(why, whylen, "meta.json does not parse (at byte %zu)", (size_t)(p - js));
    return -1;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Reads a whole small file (meta.json, index). 0, or -1 with errno set. */
static int slurp(const char *path, uint8_t **out, size_t *n, size_t max) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > max) {
        int e = errno ? errno : EFBIG;
        close(fd);
        errno = e;
        return -1;
    }
    size_t l = (size_t)st.st_size, got = 0;
    uint8_t *p = malloc(l + 1);
    if (!p) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    while (got < l) {
        ssize_t r = read(fd, p + got, l - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    int e = errno;
    close(fd);
    if (got != l) {
        free(p);
        errno = e ? e : EIO;
        return -1;
    }
    p[l] = 0;
    *out = p;
    *n = l;
    return 0;
}

/* The index's raw bytes (the three sections one after the other) after verifying every
 * checksum. Returns 0, -1 when damaged (why says where), -2 when out of memory. */
static int index_raw(const uint8_t *idx, size_t il, int *version, uint8_t **out, size_t *outlen, char *why,
                     size_t whylen) {
    *out = NULL;
    if (il >= 20 && memcmp(idx, IDX_MAGIC_V1, 8) == 0) {
        *version = 1;
        uint64_t rawlen = le64(idx + 8);
        uint32_t crc = le32(idx + 16);
        if (rawlen > SECTION_MAX) goto bad;
        uint8_t *raw = malloc(rawlen + 1);
        if (!raw) return -2;
        size_t dl = ZSTD_decompress(raw, rawlen, idx + 20, il - 20);
        if (ZSTD_isError(dl) || dl != rawlen || (uint32_t)crc32(0L, raw, (uInt)rawlen) != crc) {
            free(raw);
            snprintf(why, whylen, "index checksum mismatch (format 1)");
            return -1;
        }
        *out = raw;
        *outlen = rawlen;
        return 0;
    }
    if (il < 8 || memcmp(idx, IDX_MAGIC, 8) != 0) {
        snprintf(why, whylen, "index: bad magic");
        return -1;
    }
    *version = 2;
    const char *names[3] = {"symbols", "series", "postings"};
    bvec raw = {0};
    size_t off = 8;
    for (int sct = 0; sct < 3; sct++) {
        if (il - off < 16) {
            snprintf(why, whylen, "index section %s: truncated", names[sct]);
            goto damaged;
        }
        uint64_t rl = le64(idx + off);
        uint32_t zl = le32(idx + off + 8);
        if (zl > il - off - 16) {
            snprintf(why, whylen, "index section %s: truncated or bad length", names[sct]);
            goto damaged;
        }
        if (crc32c(idx + off, 12 + (size_t)zl) != le32(idx + off + 12 + zl)) {
            snprintf(why, whylen, "index section %s: checksum mismatch at offset %zu", names[sct], off);
            goto damaged;
        }
        if (rl > SECTION_MAX) {
            snprintf(why, whylen, "index section %s: bad length", names[sct]);
            goto damaged;
        }
        bv_reserve(&raw, rl + 1);
        if (raw.err) {
            bv_free(&raw);
            return -2;
        }
        size_t dl = ZSTD_decompress(raw.p + raw.len, rl, idx + off + 12, zl);
        if (ZSTD_isError(dl) || dl != rl) {
            snprintf(why, whylen, "index section %s: does not decompress", names[sct]);
            goto damaged;
        }
        raw.len += rl;
        off += 16 + (size_t)zl;
    }
    if (off != il) {
        snprintf(why, whylen, "index: %zu bytes after the last section", il - off);
        goto damaged;
    }
    *out = raw.p;
    *outlen = raw.len;
    return 0;
damaged:
    bv_free(&raw);
    return -1;
bad:
    snprintf(why, whylen, "index: bad header");
    return -1;
}

block *block_open(const char *path, int *damaged, char *err, size_t errlen) {
    char p[4300], why[256] = "";
    block *b = calloc(1, sizeof *b);
    uint8_t *idx = NULL, *raw = NULL, *metaj = NULL;
    size_t rawlen = 0, ml = 0, il = 0;
    int64_t mv[MK_N] = {0};
    *damaged = 0;
    if (!b) goto oom;
    b->fd = -1;
    b->dir = strdup(path);
    if (!b->dir) goto oom;
    const char *slash = strrchr(path, '/');
    snprintf(b->id, sizeof b->id, "%s", slash ? slash + 1 : path);
    snprintf(p, sizeof p, "%s/meta.json", path);
    if (slurp(p, &metaj, &ml, 1 << 16) != 0) {
        if (errno == ENOMEM) goto oom;
        if (errno == EMFILE || errno == ENFILE) goto nofd;
        snprintf(why, sizeof why, "cannot read meta.json: %s", strerror(errno));
        goto corrupt;
    }
    if (block_parse_meta((const char *)metaj, ml, mv, why, sizeof why) != 0) goto corrupt;
    b->mint = mv[MK_MINT];
    b->maxt = mv[MK_MAXT];
    b->nsamples = (uint64_t)mv[MK_NSAMPLES];
    b->level = (int)mv[MK_LEVEL];
    if (mv[MK_VERSION] != 1 && mv[MK_VERSION] != 2) {
        snprintf(why, sizeof why, "meta.json: unknown version %lld", (long long)mv[MK_VERSION]);
        goto corrupt;
    }
    if (b->mint > b->maxt || mv[MK_NSERIES] < 0 || mv[MK_NSAMPLES] < 0 || mv[MK_LEVEL] < 0 ||
        mv[MK_LEVEL] > 64) {
        snprintf(why, sizeof why, "meta.json: values out of range");
        goto corrupt;
    }

    snprintf(p, sizeof p, "%s/index", path);
    if (slurp(p, &idx, &il, SECTION_MAX) != 0) {
        if (errno == ENOMEM) goto oom;
        if (errno == EMFILE || errno == ENFILE) goto nofd;
        snprintf(why, sizeof why, "cannot read index: %s", strerror(errno));
        goto corrupt;
    }
    b->bytes = il;
    int ir = index_raw(idx, il, &b->version, &raw, &rawlen, why, sizeof why);
    if (ir == -2) goto oom;
    if (ir != 0) goto corrupt;
    if (b->version != mv[MK_VERSION]) {
        snprintf(why, sizeof why, "meta.json says version %lld, the index is format %d",
                 (long long)mv[MK_VERSION], b->version);
        goto corrupt;
    }
    free(idx);
    idx = NULL;

    rd r = {raw, raw + rawlen, 0};
    uint64_t ns = rd_uvar(&r);
    if (r.err || ns > rawlen) goto corrupt;
    b->syms = calloc(ns + 1, sizeof *b->syms);
    if (!b->syms) goto oom;
    b->nsyms = (uint32_t)ns;
    for (uint64_t i = 0; i < ns; i++) {
        uint64_t l = rd_uvar(&r);
        const uint8_t *s = rd_bytes(&r, l);
        if (r.err) goto corrupt;
        b->syms[i] = strndup((const char *)s, l);
        if (!b->syms[i]) goto oom;
    }
    uint64_t nser = rd_uvar(&r);
    if (r.err || nser > rawlen) goto corrupt;
    b->series = calloc(nser + 1, sizeof *b->series);
    if (!b->series) goto oom;
    b->nseries = nser;
    for (uint64_t i = 0; i < nser; i++) {
        bseries *s = &b->series[i];
        uint64_t nl = rd_uvar(&r);
        if (r.err || nl > 4096) goto corrupt;
        s->nl = (uint32_t)nl;
        s->lbl = malloc((2 * nl + 1) * sizeof *s->lbl);
        if (!s->lbl) goto oom;
        for (uint64_t j = 0; j < 2 * nl; j++) {
            uint64_t k = rd_uvar(&r);
            if (k >= ns) goto corrupt;
            s->lbl[j] = (uint32_t)k;
        }
        s->mint = rd_svar(&r);
        s->maxt = (int64_t)((uint64_t)s->mint + rd_uvar(&r));
        s->n = (uint32_t)rd_uvar(&r);
        s->frame_off = rd_uvar(&r);
        s->frame_len = (uint32_t)rd_uvar(&r);
        s->in_off = (uint32_t)rd_uvar(&r);
        s->in_len = (uint32_t)rd_uvar(&r);
        if (r.err) goto corrupt;
    }
    uint64_t nn = rd_uvar(&r);
    if (r.err || nn > ns) goto corrupt;
    b->names = calloc(nn + 1, sizeof *b->names);
    if (!b->names) goto oom;
    b->nnames = (uint32_t)nn;
    for (uint64_t i = 0; i < nn; i++) {
        bname *bn = &b->names[i];
        bn->sym = (uint32_t)rd_uvar(&r);
        uint64_t nv = rd_uvar(&r);
        if (r.err || bn->sym >= ns || nv > ns) goto corrupt;
        bn->vals = calloc(nv + 1, sizeof *bn->vals);
        if (!bn->vals) goto oom;
        bn->nvals = (uint32_t)nv;
        for (uint64_t j = 0; j < nv; j++) {
            bvalues *bv = &bn->vals[j];
            bv->sym = (uint32_t)rd_uvar(&r);
            uint64_t c = rd_uvar(&r);
            if (r.err || bv->sym >= ns || c > nser) goto corrupt;
            bv->ids = malloc((c + 1) * sizeof *bv->ids);
            if (!bv->ids) goto oom;
            bv->n = (uint32_t)c;
            uint32_t prev = 0;
            for (uint64_t k = 0; k < c; k++) {
                prev += (uint32_t)rd_uvar(&r);
                if (prev >= nser) r.err = 1;
                bv->ids[k] = prev;
            }
            if (r.err) goto corrupt;
        }
    }
    if (r.p != r.end) {
        snprintf(why, sizeof why, "index: trailing bytes");
        goto corrupt;
    }
    free(raw);
    raw = NULL;
    /* meta.json against the index: a flipped digit in a time would make retention drop the
     * block or queries miss it */
    {
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        uint64_t nsamp = 0, chunk_end = 0;
        for (uint64_t i = 0; i < b->nseries; i++) {
            bseries *s = &b->series[i];
            if (s->mint < lo) lo = s->mint;
            if (s->maxt > hi) hi = s->maxt;
            nsamp += s->n;
            uint64_t e = s->frame_off + s->frame_len + (b->version >= 2 ? 4 : 0);
            if (e > chunk_end) chunk_end = e;
        }
        if (!b->nseries) lo = hi = 0;
        if ((uint64_t)mv[MK_NSERIES] != b->nseries || (uint64_t)mv[MK_NSAMPLES] != nsamp || lo != b->mint ||
            hi != b->maxt) {
            snprintf(why, sizeof why, "meta.json disagrees with the index (series, samples or time range)");
            goto corrupt;
        }
        snprintf(p, sizeof p, "%s/chunks", path);
        b->fd = open(p, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (b->fd < 0 || fstat(b->fd, &st) != 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
                snprintf(err, errlen, "block %s: cannot open chunks: %s", path, strerror(errno));
                goto fail;
            }
            snprintf(why, sizeof why, "cannot open chunks: %s", strerror(errno));
            goto corrupt;
        }
        if ((uint64_t)st.st_size < chunk_end) {
            snprintf(why, sizeof why, "chunks truncated: %lld bytes, the index needs %llu",
                     (long long)st.st_size, (unsigned long long)chunk_end);
            goto corrupt;
        }
        b->bytes += (uint64_t)st.st_size;
    }
    bcache *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    pthread_mutex_init(&c->mu, NULL);
    b->arena = c;
    free(metaj);
    return b;
corrupt:
    if (!why[0]) snprintf(why, sizeof why, "index does not parse");
    snprintf(err, errlen, "block %s: %s", b ? b->id : path, why);
    *damaged = 1;
    goto fail;
nofd:
    snprintf(err, errlen, "block %s: out of file descriptors", path);
    goto fail;
oom:
    snprintf(err, errlen, "out of memory opening a block");
fail:
    free(idx);
    free(raw);
    free(metaj);
    block_free(b);
    return NULL;
}

void block_free(block *b) {
    if (!b) return;
    for (uint32_t i = 0; i < b->nsyms && b->syms; i++)
        free(b->syms[i]);
    free(b->syms);
    for (uint64_t i = 0; i < b->nseries && b->series; i++)
        free(b->series[i].lbl);
    free(b->series);
    for (uint32_t i = 0; i < b->nnames && b->names; i++) {
        for (uint32_t j = 0; j < b->names[i].nvals && b->names[i].vals; j++)
            free(b->names[i].vals[j].ids);
        free(b->names[i].vals);
    }
    free(b->names);
    if (b->fd >= 0) close(b->fd);
    bcache *c = b->arena;
    if (c) {
        pthread_mutex_destroy(&c->mu);
        free(c->data);
        free(c);
    }
    if (b->doomed && b->dir) block_remove_dir(b->dir);
    free(b->dir);
    free(b);
}

/* Notes the first damage found in b (kept for the log line and the query warning). */
static void note_damage(block *b, const char *fmt, uint64_t off) {
    if (!b->damage[0]) snprintf(b->damage, sizeof b->damage, fmt, (unsigned long long)off);
}

long block_series_samples(block *b, uint32_t i, sample **out) {
    *out = NULL;
    if (i >= b->nseries) return -1;
    bseries *s = &b->series[i];
    bcache *c = b->arena;
    long rc = -1;
    pthread_mutex_lock(&c->mu);
    if (!c->valid || c->off != s->frame_off) {
        c->valid = 0;
        size_t fl = (size_t)s->frame_len + (b->version >= 2 ? 4 : 0);
        uint8_t *z = malloc(fl ? fl : 1);
        if (!z) goto out;
        ssize_t got = pread(b->fd, z, fl, (off_t)s->frame_off);
        if (got != (ssize_t)fl) {
            free(z);
            note_damage(b, "chunks: short read of the frame at offset %llu", s->frame_off);
            rc = -2;
            goto out;
        }
        if (b->version >= 2) {
            const uint8_t *q = z + s->frame_len;
            uint32_t want =
                (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
            if (crc32c(z, s->frame_len) != want) {
                free(z);
                note_damage(b, "chunks: checksum mismatch in the frame at offset %llu", s->frame_off);
                rc = -2;
                goto out;
            }
        }
        unsigned long long cs = ZSTD_getFrameContentSize(z, s->frame_len);
        if (cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN || cs > (1u << 30)) {
            free(z);
            note_damage(b, "chunks: the frame at offset %llu does not decompress", s->frame_off);
            rc = -2;
            goto out;
        }
        uint8_t *d = malloc(cs ? cs : 1);
        if (!d) {
            free(z);
            goto out;
        }
        size_t dl = ZSTD_decompress(d, cs, z, s->frame_len);
        free(z);
        if (ZSTD_isError(dl)) {
            free(d);
            note_damage(b, "chunks: the frame at offset %llu does not decompress", s->frame_off);
            rc = -2;
            goto out;
        }
        free(c->data);
        c->data = d;
        c->len = dl;
        c->off = s->frame_off;
        c->valid = 1;
    }
    if ((size_t)s->in_off + s->in_len > c->len) {
        note_damage(b, "chunks: a series record lies outside the frame at offset %llu", s->frame_off);
        rc = -2;
        goto out;
    }
    rc = blockdec_series(c->data + s->in_off, s->in_len, out);
    if (rc >= 0 && (uint64_t)rc != s->n) {
        free(*out);
        *out = NULL;
        rc = -1;
    }
    if (rc < 0) {
        note_damage(b, "chunks: a series record in the frame at offset %llu does not decode", s->frame_off);
        rc = -2;
    }
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- selection ---- */

static void bx_all(void *ctx, idlist *out) {
    block *b = ctx;
    out->n = 0;
    if (out->cap < b->nseries) {
        uint32_t *v = realloc(out->v, (b->nseries + 1) * sizeof *v);
        if (!v) return;
        out->v = v;
        out->cap = b->nseries + 1;
    }
    for (uint64_t i = 0; i < b->nseries; i++)
        out->v[i] = (uint32_t)i;
    out->n = b->nseries;
}

static bname *find_name(block *b, const char *name) {
    uint32_t lo = 0, hi = b->nnames;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int c = strcmp(b->syms[b->names[mid].sym], name);
        if (c == 0) return &b->names[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int bx_values(void *ctx, const char *name,
                     int (*fn)(void *c, const char *v, const uint32_t *ids, size_t n), void *c) {
    block *b = ctx;
    bname *bn = find_name(b, name);
    if (!bn) return 0;
    for (uint32_t i = 0; i < bn->nvals; i++)
        if (fn(c, b->syms[bn->vals[i].sym], bn->vals[i].ids, bn->vals[i].n)) return -1;
    return 0;
}

static void bx_lookup(void *ctx, const char *name, const char *value, const uint32_t **ids, size_t *n) {
    block *b = ctx;
    *ids = NULL;
    *n = 0;
    bname *bn = find_name(b, name);
    if (!bn) return;
    uint32_t lo = 0, hi = bn->nvals;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int c = strcmp(b->syms[bn->vals[mid].sym], value);
        if (c == 0) {
            *ids = bn->vals[mid].ids;
            *n = bn->vals[mid].n;
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
}

int block_select(block *b, tsdb_matcher *const *m, size_t n, idlist *out) {
    ixview ix = {b, bx_all, bx_values, bx_lookup};
    return ix_select(&ix, m, n, out);
}
