/* The write-ahead log: numbered segment files in <dir>/wal holding checksummed records (series
 * definitions, sample batches, exemplars). A commit is written here before it becomes visible
 * and is acknowledged only after an fdatasync; one syncer thread serves every waiting commit
 * with one fsync (group commit).
 *
 * Record format 2 (written now): [type | 0x80][u32 length][u32 CRC32C of the payload]
 * [u32 CRC32C of the 9 bytes before][payload]. The header's own checksum lets replay find the
 * next intact record after damage: a corrupt record is skipped and counted, reading resumes
 * at the next offset where a whole record checks out, so one flipped bit loses one record, not
 * the rest of the log. Format 1 records ([type][u32 length][u32 zlib CRC32 of type, length and
 * payload][payload]) from older versions are still read, but damage in them cannot be
 * skipped past (their header has no checksum to resynchronise on).
 *
 * Replay never truncates or deletes: new records always go to a new segment, and a segment or
 * checkpoint found damaged (anywhere but a torn tail of the newest segment, which a crash
 * leaves) is kept as <name>.corrupt (a hard link) before checkpoints remove the original. */
#include "metrics_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <event2/event.h>

#include "util/crc32c.h"
#include "util/log.h"

#define WAL_HDR1 9
#define WAL_HDR 13
#define WAL_V2 0x80
#define WAL_MAX_RECORD (256u << 20)
#define WAL_SEGMENT_BYTES (128ull << 20)

static uint32_t rec_crc_v1(uint8_t type, uint32_t len, const uint8_t *p) {
    uint8_t h[5] = {type, (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    uLong c = crc32(0L, h, 5);
    /* zlib's length argument is a uInt: feed big payloads in pieces */
    while (len > 0) {
        uInt k = len > (1u << 30) ? (1u << 30) : len;
        c = crc32(c, p, k);
        p += k;
        len -= k;
    }
    return (uint32_t)c;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void wal_record(bvec *b, uint8_t type, const bvec *payload) {
    uint32_t len = (uint32_t)payload->len;
    size_t h = b->len;
    bv_u8(b, type | WAL_V2);
    bv_u32le(b, len);
    bv_u32le(b, crc32c(payload->p, payload->len));
    if (b->err) return;
    bv_u32le(b, crc32c(b->p + h, 9));
    bv_put(b, payload->p, payload->len);
    assert(b->err ||
           b->len == h + WAL_HDR + payload->len); /* the header is WAL_HDR bytes, as the scanner reads it */
}

static int known_type(uint8_t t) { return t == WAL_SERIES || t == WAL_SAMPLES || t == WAL_EXEMPLARS; }

/* A format 2 header at p (n bytes available) that checks out: 1 and its payload length, else 0. */
static int hdr2_ok(const uint8_t *p, size_t n, uint32_t *len) {
    if (n < WAL_HDR || !(p[0] & WAL_V2) || !known_type(p[0] & 0x7f)) return 0;
    if (crc32c(p, 9) != le32(p + 9)) return 0;
    *len = le32(p + 1);
    return *len <= WAL_MAX_RECORD;
}

/* The record at p: 1 when whole and intact (type, payload, size set), else 0. */
static int rec_ok(const uint8_t *p, size_t n, uint8_t *type, const uint8_t **pl, uint32_t *len,
                  size_t *size) {
    uint32_t l;
    if (n >= 1 && (p[0] & WAL_V2)) {
        if (!hdr2_ok(p, n, &l) || l > n - WAL_HDR || crc32c(p + WAL_HDR, l) != le32(p + 5)) return 0;
        *type = p[0] & 0x7f;
        *pl = p + WAL_HDR;
        *len = l;
        *size = WAL_HDR + (size_t)l;
        return 1;
    }
    if (n < WAL_HDR1 || !known_type(p[0])) return 0;
    l = le32(p + 1);
    if (l > WAL_MAX_RECORD || l > n - WAL_HDR1 || rec_crc_v1(p[0], l, p + WAL_HDR1) != le32(p + 5)) return 0;
    *type = p[0];
    *pl = p + WAL_HDR1;
    *len = l;
    *size = WAL_HDR1 + (size_t)l;
    return 1;
}

int tsdb_wal_record(const uint8_t *p, size_t n, uint8_t *type, const uint8_t **pl, size_t *len,
                    size_t *size) {
    uint32_t l;
    if (!rec_ok(p, n, type, pl, &l, size)) return 0;
    *len = l;
    return 1;
}

size_t tsdb_wal_resync(const uint8_t *p, size_t n) {
    uint8_t type;
    const uint8_t *pl;
    uint32_t len;
    size_t size, j = 1;
    for (; j < n; j++)
        if ((p[j] & WAL_V2) && rec_ok(p + j, n - j, &type, &pl, &len, &size)) break;
    return j < n ? j : n;
}

size_t wal_scan_ex(const uint8_t *p, size_t n,
                   void (*fn)(void *ctx, uint8_t type, const uint8_t *pl, size_t len), void *ctx,
                   wal_damage *d) {
    size_t off = 0;
    memset(d, 0, sizeof *d);
    d->first_bad = n;
    while (off < n) {
        uint8_t type;
        const uint8_t *pl;
        uint32_t len;
        size_t size;
        if (rec_ok(p + off, n - off, &type, &pl, &len, &size)) {
            assert(size > 0 && size <= n - off && pl + len == p + off + size);
            if (fn) fn(ctx, type, pl, len);
            d->records++;
            off += size;
            continue;
        }
        if (d->first_bad == n) d->first_bad = off;
        d->bad_records++;
        if (hdr2_ok(p + off, n - off, &len) && len <= n - off - WAL_HDR) {
            /* the header is intact, the payload is not: skip exactly this record */
            if ((p[off] & 0x7f) == WAL_SAMPLES) {
                rd x = {p + off + WAL_HDR, p + off + WAL_HDR + len, 0};
                uint64_t k = rd_uvar(&x);
                if (!x.err && k <= len) d->samples_hint += k;
            }
            d->bad_bytes += WAL_HDR + (size_t)len;
            off += WAL_HDR + (size_t)len;
            continue;
        }
        /* resynchronise: the next offset where a whole format 2 record checks out */
        size_t j = off + 1;
        for (; j < n; j++) {
            if (!(p[j] & WAL_V2)) continue;
            if (rec_ok(p + j, n - j, &type, &pl, &len, &size)) break;
        }
        d->bad_bytes += j - off;
        if (j >= n) d->tail = 1;
        off = j;
    }
    assert(off == n);
    return off;
}

size_t wal_scan(const uint8_t *p, size_t n,
                void (*fn)(void *ctx, uint8_t type, const uint8_t *pl, size_t len), void *ctx) {
    wal_damage d;
    wal_scan_ex(p, n, fn, ctx, &d);
    return d.first_bad;
}

/* ---- replay ---- */

typedef struct replay {
    tsdb *db;
    ptrmap refs; /* WAL ref -> series* */
    uint64_t samples, bad, unknown;
} replay;

static void replay_rec_locked(replay *r, uint8_t type, const uint8_t *pl, size_t len) {
    rd x = {pl, pl + len, 0};
    if (type == WAL_SERIES) {
        while (x.p < x.end && !x.err) {
            uint64_t ref = rd_uvar(&x), nl = rd_uvar(&x);
            if (x.err || nl > 1024 || ref == 0) {
                r->bad++;
                return;
            }
            tsdb_label l[1024];
            char *strs[2048];
            size_t k = 0;
            for (uint64_t i = 0; i < 2 * nl; i++) {
                uint64_t sl = rd_uvar(&x);
                const uint8_t *s = rd_bytes(&x, sl);
                if (x.err || !s) break;
                strs[k] = strndup((const char *)s, sl);
                if (!strs[k]) break;
                k++;
            }
            if (k == 2 * nl) {
                for (uint64_t i = 0; i < nl; i++)
                    l[i].name = strs[2 * i], l[i].value = strs[2 * i + 1];
                series *s = head_create_with_ref(r->db, l, nl, ref);
                if (s) {
                    s->logged = 1;
                    pm_put(&r->refs, (uintptr_t)ref, s);
                }
            } else {
                r->bad++;
            }
            for (size_t i = 0; i < k; i++)
                free(strs[i]);
            if (k != 2 * nl) return;
        }
    } else if (type == WAL_SAMPLES) {
        uint64_t n = rd_uvar(&x);
        int64_t t = 0;
        for (uint64_t i = 0; i < n && !x.err; i++) {
            uint64_t ref = rd_uvar(&x);
            t = (int64_t)((uint64_t)t + (uint64_t)rd_svar(&x));
            uint64_t vb = rd_u64le(&x);
            if (x.err) break;
            series *s = pm_get(&r->refs, (uintptr_t)ref);
            if (!s) {
                /* its series record was in a damaged part of the log */
                r->unknown++;
                continue;
            }
            double v;
            memcpy(&v, &vb, 8);
            head_append(r->db, s, t, v, 1);
            r->samples++;
        }
    } else if (type == WAL_EXEMPLARS) {
        ex_replay(r->db, pl, len, &r->refs);
    }
}

static void replay_rec(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    replay *r = ctx;
    /* queries may run meanwhile when the replay is in the background */
    pthread_mutex_lock(&r->db->mu);
    replay_rec_locked(r, type, pl, len);
    pthread_mutex_unlock(&r->db->mu);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Segment numbers present in the WAL dir, ascending (malloc'd). */
static uint32_t *list_segments(const char *dir, size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    uint32_t *v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        unsigned long k = strtoul(e->d_name, &end, 10);
        if (*end || strlen(e->d_name) != 8) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            uint32_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        v[(*n)++] = (uint32_t)k;
    }
    closedir(d);
    if (*n) qsort(v, *n, sizeof *v, cmp_u32);
    return v;
}

static int read_file(const char *path, uint8_t **out, size_t *n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    size_t sz = (size_t)st.st_size;
    uint8_t *p = malloc(sz ? sz : 1);
    size_t got = 0;
    while (p && got < sz) {
        ssize_t r = read(fd, p + got, sz - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!p) return -1;
    *out = p;
    *n = got;
    return 0;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd)) { /* best effort */
        }
        close(fd);
    }
}

static int open_segment(tsdb *db, uint32_t seg, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%08u", db->wal_dir, seg);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open WAL segment %s: %s", path, strerror(errno));
        return -1;
    }
    fsync_dir(db->wal_dir);
    if (db->wal_fd >= 0) {
        /* everything written so far is made durable before the switch, so a waiter's offset
         * never depends on a segment the syncer no longer looks at */
        if (fdatasync(db->wal_fd) == 0) db->wal_synced = db->wal_written;
        int *r = realloc(db->retired_fds, (db->nretired + 1) * sizeof *r);
        if (r) {
            db->retired_fds = r;
            r[db->nretired++] = db->wal_fd;
        } else {
            close(db->wal_fd); /* cannot happen in practice; the syncer tolerates EBADF once */
        }
    }
    db->wal_fd = fd;
    db->wal_seg = seg;
    db->wal_seg_bytes = 0;
    return 0;
}

/* Keeps a copy of a damaged WAL file as <path>.corrupt (a hard link: the original may be
 * removed by the next checkpoint, the copy stays). Returns the copy's name or "". */
static const char *keep_copy(const char *path, char *copy, size_t cap) {
    snprintf(copy, cap, "%s.corrupt", path);
    if (link(path, copy) == 0 || errno == EEXIST) return copy;
    int e = errno;
    char q[4300];
    TR_ERROR("WAL: cannot keep a copy of a damaged file", "file=%s errno=%d error=\"%s\"",
             tr_log_quote(q, sizeof q, path), e, strerror(e));
    tr_storage_error("metrics", "wal_copy");
    copy[0] = 0;
    return copy;
}

/* Replays one WAL file (checkpoint or segment), skipping damaged records; `newest` marks the
 * newest segment, whose damaged tail is what a crash leaves (no copy kept). */
static void replay_file(tsdb *db, replay *r, const char *path, const uint8_t *p, size_t n, int newest) {
    wal_damage d;
    wal_scan_ex(p, n, replay_rec, r, &d);
    if (!d.bad_records) return;
    char q[4300], c[4400], qc[4500];
    db->st.wal_records_skipped += d.bad_records;
    db->st.wal_samples_dropped += d.samples_hint;
    if (newest && d.tail && d.bad_records == 1 && d.first_bad + d.bad_bytes == n) {
        TR_WARN("WAL: torn tail ignored (a write the crash interrupted; it was never acknowledged)",
                "segment=%s offset=%zu dropped_bytes=%llu", tr_log_quote(q, sizeof q, path), d.first_bad,
                (unsigned long long)d.bad_bytes);
        return;
    }
    keep_copy(path, c, sizeof c);
    TR_ERROR("WAL: damaged records skipped, replay resumed after them",
             "file=%s first_offset=%zu records_skipped=%llu bytes_skipped=%llu "
             "samples_in_skipped_records=%llu copy=%s",
             tr_log_quote(q, sizeof q, path), d.first_bad, (unsigned long long)d.bad_records,
             (unsigned long long)d.bad_bytes, (unsigned long long)d.samples_hint,
             tr_log_quote(qc, sizeof qc, c));
}

int wal_open(tsdb *db, char *err, size_t errlen) {
    if (mkdir(db->wal_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", db->wal_dir, strerror(errno));
        return -1;
    }
    size_t nseg;
    uint32_t *segs = list_segments(db->wal_dir, &nseg);
    replay r = {.db = db};
    char path[4200];
    /* the newest complete checkpoint first (leftover .tmp files are incomplete ones) */
    long ckpt = -1;
    DIR *d = opendir(db->wal_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        unsigned k;
        char tail;
        int f = sscanf(e->d_name, "checkpoint.%8u%c", &k, &tail);
        size_t l = strlen(e->d_name);
        if (f == 1 && (long)k > ckpt) ckpt = k;
        if (f == 2 && l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
            snprintf(path, sizeof path, "%s/%s", db->wal_dir, e->d_name);
            unlink(path);
        }
    }
    if (d) closedir(d);
    if (ckpt >= 0) {
        snprintf(path, sizeof path, "%s/checkpoint.%08u", db->wal_dir, (unsigned)ckpt);
        uint8_t *p;
        size_t n;
        if (read_file(path, &p, &n) != 0) {
            snprintf(err, errlen, "cannot read WAL checkpoint %s: %s", path, strerror(errno));
            tr_storage_error("metrics", "wal_read");
            free(segs);
            return -1;
        }
        replay_file(db, &r, path, p, n, 0);
        free(p);
        /* segments it covers are obsolete (a crash may have left them), unless a WAL reader
         * still needs them (not replayed either way) */
        uint32_t keep = db->o.wal_keep ? db->o.wal_keep(db->o.wal_keep_ctx, (uint32_t)ckpt) : UINT32_MAX;
        size_t o = 0;
        for (size_t i = 0; i < nseg; i++) {
            if ((long)segs[i] <= ckpt) {
                snprintf(path, sizeof path, "%s/%08u", db->wal_dir, segs[i]);
                if (segs[i] < keep) unlink(path);
            } else {
                segs[o++] = segs[i];
            }
        }
        nseg = o;
    }
    for (size_t i = 0; i < nseg; i++) {
        snprintf(path, sizeof path, "%s/%08u", db->wal_dir, segs[i]);
        uint8_t *p;
        size_t n;
        if (read_file(path, &p, &n) != 0) {
            snprintf(err, errlen, "cannot read WAL segment %s: %s", path, strerror(errno));
            tr_storage_error("metrics", "wal_read");
            free(segs);
            pm_free(&r.refs);
            return -1;
        }
        replay_file(db, &r, path, p, n, i + 1 == nseg);
        free(p);
    }
    pm_free(&r.refs);
    db->st.wal_samples_dropped += r.unknown;
    if (nseg || ckpt >= 0)
        TR_INFO(
            "WAL replayed",
            "checkpoint=%ld segments=%zu series=%zu samples=%llu samples_dropped=%llu records_skipped=%llu",
            ckpt, nseg, db->h.nseries, (unsigned long long)r.samples,
            (unsigned long long)(db->st.wal_samples_dropped), (unsigned long long)db->st.wal_records_skipped);
    uint32_t next = nseg ? segs[nseg - 1] + 1 : 1;
    if ((long)next <= ckpt) next = (uint32_t)ckpt + 1;
    free(segs);
    pthread_mutex_lock(&db->mu);
    db->wal_fd = -1;
    int rc = open_segment(db, next, err, errlen);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int wal_write(tsdb *db, const void *p, size_t n) {
    if (db->wal_fd < 0) return -1;
    if (db->wal_seg_bytes >
        (db->o.wal_segment_bytes > 0 ? (uint64_t)db->o.wal_segment_bytes : WAL_SEGMENT_BYTES)) {
        char e[256];
        if (open_segment(db, db->wal_seg + 1, e, sizeof e) != 0) {
            int en = errno;
            TR_ERROR("WAL: cannot start a segment", "errno=%d error=\"%s\"", en, e);
            tr_storage_error("metrics", "wal_segment");
        }
    }
    const uint8_t *b = p;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(db->wal_fd, b + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int en = w < 0 ? errno : ENOSPC;
            TR_ERROR("WAL write failed: the batch is refused (503)",
                     "segment=%08u bytes=%zu errno=%d error=\"%s\"", db->wal_seg, n, en, strerror(en));
            tr_storage_error("metrics", "wal_write");
            /* never leave a torn record in the middle of the log (replay would skip it, but
             * it was never acknowledged) */
            if (done && ftruncate(db->wal_fd, (off_t)db->wal_seg_bytes) != 0) {
                db->wal_broken = 1;
                tr_storage_error("metrics", "wal_truncate");
            }
            errno = en;
            return -1;
        }
        done += (size_t)w;
    }
    db->wal_seg_bytes += n;
    db->wal_written += n;
    db->st.wal_written += n;
    return 0;
}

/* ---- checkpoints ----
 * After a cut, the head's remaining content is written to wal/checkpoint.N (N = the last
 * segment it covers) and segments <= N are deleted. Under db->mu only a snapshot is taken
 * (series records encoded, chunk pointers and open-chunk/OOO copies) and a new segment is
 * started; decoding, writing and fsyncing happen after the lock is released, so appends go on.
 * Sealed chunks stay valid meanwhile: only cuts free them, and cuts are serialised (bmu). */

typedef struct ckser {
    uint64_t ref;
    hchunk **chunks;
    uint32_t nchunks;
    uint16_t open_n;
    uint8_t *open;
    size_t open_len;
    sample *ooo;
    uint32_t nooo;
} ckser;

struct wal_ckpt {
    uint32_t upto; /* last segment covered */
    bvec series;   /* encoded series records' payloads, split in pieces */
    size_t *cuts;  /* end offsets of each series payload piece */
    size_t ncuts;
    ckser *s;
    size_t n;
    bvec ex; /* the exemplar ring, as framed records */
};

static void put_series(bvec *b, const series *s) {
    bv_uvar(b, s->ref);
    bv_uvar(b, s->nl);
    for (uint16_t i = 0; i < 2 * s->nl; i++) {
        bv_uvar(b, s->lbl[i]->len);
        bv_put(b, s->lbl[i]->s, s->lbl[i]->len);
    }
}

wal_ckpt *wal_checkpoint_begin(tsdb *db, char *err, size_t errlen) {
    head *h = &db->h;
    wal_ckpt *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->s = calloc(h->nslots + 1, sizeof *c->s);
    c->cuts = calloc(h->nslots / 1024 + 2, sizeof *c->cuts);
    if (!c->s || !c->cuts) goto oom;
    size_t piece = 0;
    for (uint32_t i = 0; i < h->nslots; i++) {
        series *s = h->slots[i];
        if (!s) continue;
        put_series(&c->series, s);
        s->logged = 1;
        if (++piece == 1024) {
            c->cuts[c->ncuts++] = c->series.len;
            piece = 0;
        }
        ckser *k = &c->s[c->n];
        k->ref = s->ref;
        if (s->nchunks) {
            k->chunks = malloc(s->nchunks * sizeof *k->chunks);
            if (!k->chunks) goto oom;
            memcpy(k->chunks, s->chunks, s->nchunks * sizeof *k->chunks);
            k->nchunks = s->nchunks;
        }
        c->n++;
        if (s->open.n) {
            k->open_len = (size_t)((s->open.bits + 7) / 8);
            k->open = malloc(k->open_len);
            if (!k->open) goto oom;
            memcpy(k->open, s->open.buf, k->open_len);
            k->open_n = s->open.n;
        }
        if (s->nooo) {
            k->ooo = malloc(s->nooo * sizeof *k->ooo);
            if (!k->ooo) goto oom;
            memcpy(k->ooo, s->ooo, s->nooo * sizeof *k->ooo);
            k->nooo = s->nooo;
        }
    }
    if (piece) c->cuts[c->ncuts++] = c->series.len;
    ex_checkpoint(db, &c->ex);
    if (c->series.err || c->ex.err) goto oom;
    c->upto = db->wal_seg;
    if (open_segment(db, db->wal_seg + 1, err, errlen) != 0) goto fail;
    return c;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    /* the series stay marked as logged: they are in the old segments, which remain */
    wal_checkpoint_free(c);
    return NULL;
}

void wal_checkpoint_free(wal_ckpt *c) {
    if (!c) return;
    for (size_t i = 0; c->s && i < c->n; i++) {
        free(c->s[i].chunks);
        free(c->s[i].open);
        free(c->s[i].ooo);
    }
    free(c->s);
    free(c->cuts);
    bv_free(&c->series);
    bv_free(&c->ex);
    free(c);
}

static void decode_all(const uint8_t *buf, size_t len, uint16_t n, sample **a, size_t *cnt, size_t *cap) {
    if (*cnt + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *cnt + n)
            nc *= 2;
        sample *na = realloc(*a, nc * sizeof *na);
        if (!na) return;
        *a = na;
        *cap = nc;
    }
    xordec d;
    xor_dec_init(&d, buf, len, n);
    int64_t t;
    double v;
    while (xor_dec_next(&d, &t, &v)) {
        (*a)[*cnt].t = t;
        (*a)[(*cnt)++].v = v;
    }
}

int wal_checkpoint_finish(tsdb *db, wal_ckpt *c, char *err, size_t errlen) {
    char tmp[4400], fin[4300];
    snprintf(fin, sizeof fin, "%s/checkpoint.%08u", db->wal_dir, c->upto);
    snprintf(tmp, sizeof tmp, "%s.tmp", fin);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    bvec rec = {0}, pl = {0};
    sample *a = NULL;
    size_t cap = 0;
    int rc = 0;
    size_t from = 0;
    for (size_t i = 0; i < c->ncuts && rc == 0; i++) {
        bvec piece = {.p = c->series.p + from, .len = c->cuts[i] - from};
        wal_record(&rec, WAL_SERIES, &piece);
        from = c->cuts[i];
        if (rec.err || tr_write_all(fd, rec.p, rec.len)) rc = -1;
        rec.len = 0;
    }
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        ckser *k = &c->s[i];
        size_t n = 0;
        for (uint32_t j = 0; j < k->nchunks; j++)
            decode_all(k->chunks[j]->data, k->chunks[j]->len, k->chunks[j]->n, &a, &n, &cap);
        if (k->open_n) decode_all(k->open, k->open_len, k->open_n, &a, &n, &cap);
        size_t total = n + k->nooo;
        if (!total) continue;
        bv_uvar(&pl, total);
        int64_t prev = 0;
        for (int src = 0; src < 2; src++) {
            const sample *sm = src ? k->ooo : a;
            size_t m = src ? k->nooo : n;
            for (size_t x = 0; x < m; x++) {
                uint64_t vb;
                memcpy(&vb, &sm[x].v, 8);
                bv_uvar(&pl, k->ref);
                bv_svar(&pl, (int64_t)((uint64_t)sm[x].t - (uint64_t)prev));
                prev = sm[x].t;
                bv_u64le(&pl, vb);
            }
        }
        if (pl.len > (1u << 20) || i + 1 == c->n) {
            wal_record(&rec, WAL_SAMPLES, &pl);
            pl.len = 0;
            if (rec.err || tr_write_all(fd, rec.p, rec.len)) rc = -1;
            rec.len = 0;
        } else {
            /* one record per series keeps replay simple; flush in batches */
            wal_record(&rec, WAL_SAMPLES, &pl);
            pl.len = 0;
            if (rec.len > (1u << 20)) {
                if (rec.err || tr_write_all(fd, rec.p, rec.len)) rc = -1;
                rec.len = 0;
            }
        }
    }
    if (rc == 0 && rec.len && (rec.err || tr_write_all(fd, rec.p, rec.len))) rc = -1;
    /* exemplars last: their series records are all above */
    if (rc == 0 && c->ex.len && tr_write_all(fd, c->ex.p, c->ex.len)) rc = -1;
    if (rc == 0 && fsync(fd) != 0) rc = -1;
    close(fd);
    free(a);
    bv_free(&rec);
    bv_free(&pl);
    if (rc == 0 && rename(tmp, fin) != 0) rc = -1;
    if (rc) {
        int en = errno;
        snprintf(err, errlen, "cannot write the WAL checkpoint %s: errno=%d %s", fin, en, strerror(en));
        tr_storage_error("metrics", "wal_checkpoint");
        unlink(tmp);
        return -1;
    }
    fsync_dir(db->wal_dir);
    uint32_t before = c->upto + 1;
    if (db->o.wal_keep) {
        /* WAL readers (remote write out) lagging behind keep their segments */
        uint32_t keep = db->o.wal_keep(db->o.wal_keep_ctx, c->upto);
        if (keep < before) before = keep;
    }
    wal_delete_before(db, before);
    return 0;
}

/* Deletes segments numbered below `seg` (their content is in blocks or in a later checkpoint). */
void wal_delete_before(tsdb *db, uint32_t seg) {
    size_t n;
    uint32_t *segs = list_segments(db->wal_dir, &n);
    char path[4200];
    for (size_t i = 0; i < n; i++)
        if (segs[i] < seg) {
            snprintf(path, sizeof path, "%s/%08u", db->wal_dir, segs[i]);
            unlink(path);
        }
    free(segs);
    /* checkpoints older than the newest one covering up to seg-1 */
    DIR *d = opendir(db->wal_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        unsigned k;
        char tail;
        if (sscanf(e->d_name, "checkpoint.%8u%c", &k, &tail) == 1 && k + 1 < seg) {
            snprintf(path, sizeof path, "%s/%s", db->wal_dir, e->d_name);
            unlink(path);
        }
    }
    if (d) closedir(d);
    fsync_dir(db->wal_dir);
}

uint64_t wal_disk_bytes(tsdb *db) {
    size_t n;
    uint32_t *segs = list_segments(db->wal_dir, &n);
    char path[4200];
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%08u", db->wal_dir, segs[i]);
        if (stat(path, &st) == 0) total += (uint64_t)st.st_size;
    }
    free(segs);
    return total;
}

void wal_close(tsdb *db) {
    if (db->wal_fd >= 0) {
        if (fdatasync(db->wal_fd) == 0) db->wal_synced = db->wal_written;
        close(db->wal_fd);
        db->wal_fd = -1;
    }
    for (size_t i = 0; i < db->nretired; i++)
        close(db->retired_fds[i]);
    free(db->retired_fds);
    db->retired_fds = NULL;
    db->nretired = 0;
}

/* ---- group commit ---- */

static void deliver(tsdb *db) {
    pthread_mutex_lock(&db->smu);
    waiter *w = db->done_head;
    db->done_head = NULL;
    db->done_tail = &db->done_head;
    pthread_mutex_unlock(&db->smu);
    while (w) {
        waiter *nx = w->next;
        if (w->done) w->done(w->cookie, w->status, w->status ? w->msg : NULL);
        free(w);
        w = nx;
    }
}

static void on_done_ev(evutil_socket_t fd, short what, void *arg) { deliver(arg); }

void tsdb_run_completions(tsdb *db) { deliver(db); }

/* Commits are acknowledged from the loop (after a wake, through the owner's wake callback or
 * the store's own event) rather than inline. */
static int async_acks(const tsdb *db) { return db->done_ev || (db->o.base && db->o.wake); }

static void *syncer_main(void *arg) {
    tsdb *db = arg;
    for (;;) {
        pthread_mutex_lock(&db->smu);
        while (!db->waiting && !db->sync_stop)
            pthread_cond_wait(&db->scv, &db->smu);
        if (!db->waiting && db->sync_stop) {
            pthread_mutex_unlock(&db->smu);
            break;
        }
        pthread_mutex_unlock(&db->smu);

        pthread_mutex_lock(&db->mu);
        for (size_t i = 0; i < db->nretired; i++)
            close(db->retired_fds[i]);
        db->nretired = 0;
        uint64_t target = db->wal_written;
        int fd = db->wal_fd, ok = 1;
        int need = db->wal_synced < target;
        pthread_mutex_unlock(&db->mu);
        int e = 0;
        if (need) {
            ok = fd >= 0 && fdatasync(fd) == 0;
            e = fd >= 0 ? errno : EBADF;
            if (!ok) {
                TR_ERROR("WAL fsync failed: the waiting batches are refused (503)", "errno=%d error=\"%s\"",
                         e, strerror(e));
                tr_storage_error("metrics", "wal_fsync");
            }
        }
        pthread_mutex_lock(&db->mu);
        if (ok && target > db->wal_synced) db->wal_synced = target;
        if (need) db->st.wal_fsyncs++;
        pthread_mutex_unlock(&db->mu);
        if (db->self_on && need) tr_counter_add(db->self.wal_fsyncs, 1);

        pthread_mutex_lock(&db->smu);
        waiter **pp = &db->waiting;
        while (*pp) {
            waiter *w = *pp;
            if (w->upto <= target || !ok) {
                *pp = w->next;
                w->next = NULL;
                if (!ok && !w->status) {
                    w->status = TSDB_ERR_IO;
                    snprintf(w->msg, sizeof w->msg, "WAL fsync failed: %s", strerror(e));
                }
                *db->done_tail = w;
                db->done_tail = &w->next;
            } else {
                pp = &w->next;
            }
        }
        int any = db->done_head != NULL;
        pthread_mutex_unlock(&db->smu);
        if (any) {
            if (db->o.wake)
                db->o.wake(db->o.wake_ctx);
            else if (db->done_ev)
                event_active(db->done_ev, EV_READ, 0);
        }
    }
    return NULL;
}

int syncer_start(tsdb *db) {
    db->done_tail = &db->done_head;
    if (!db->o.base) return 0;
    if (!db->o.wake && !(db->done_ev = event_new(db->o.base, -1, 0, on_done_ev, db))) return -1;
    if (pthread_create(&db->syncer, NULL, syncer_main, db) != 0) {
        if (db->done_ev) event_free(db->done_ev);
        db->done_ev = NULL;
        return -1;
    }
    return 0;
}

void syncer_stop(tsdb *db) {
    if (async_acks(db)) {
        pthread_mutex_lock(&db->smu);
        db->sync_stop = 1;
        pthread_cond_signal(&db->scv);
        pthread_mutex_unlock(&db->smu);
        pthread_join(db->syncer, NULL);
        if (db->done_ev) event_free(db->done_ev);
        db->done_ev = NULL;
        db->o.wake = NULL; /* stopped: later commits are acknowledged inline */
    }
    deliver(db); /* what the loop did not run any more */
}

void syncer_wait(tsdb *db, uint64_t upto, void (*done)(void *, int, const char *), void *cookie, int status,
                 const char *msg) {
    if (!async_acks(db) || status) {
        /* inline mode (no event loop) or an immediate failure */
        if (!status) {
            pthread_mutex_lock(&db->mu);
            if (db->wal_synced < upto) {
                if (db->wal_fd >= 0 && fdatasync(db->wal_fd) == 0) {
                    db->wal_synced = db->wal_written;
                    db->st.wal_fsyncs++;
                } else {
                    int e = db->wal_fd >= 0 ? errno : EBADF;
                    TR_ERROR("WAL fsync failed: the batch is refused", "errno=%d error=\"%s\"", e,
                             strerror(e));
                    tr_storage_error("metrics", "wal_fsync");
                    status = TSDB_ERR_IO;
                    msg = "WAL fsync failed";
                }
            }
            pthread_mutex_unlock(&db->mu);
        }
        if (done) done(cookie, status, status ? msg : NULL);
        return;
    }
    waiter *w = calloc(1, sizeof *w);
    if (!w) {
        if (done) done(cookie, TSDB_ERR_NOMEM, "out of memory");
        return;
    }
    w->upto = upto;
    w->done = done;
    w->cookie = cookie;
    pthread_mutex_lock(&db->smu);
    w->next = db->waiting;
    db->waiting = w;
    pthread_cond_signal(&db->scv);
    pthread_mutex_unlock(&db->smu);
}
