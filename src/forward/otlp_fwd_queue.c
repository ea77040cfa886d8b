/* The forwarding queue on disk: numbered segment files of checksummed records, appended on
 * the event loop and read by one sender thread, with the read position kept in a small file
 * replaced by rename. Bounded: the oldest segments go first (counted). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "otlp_fwd.h"
#include "util/crc32c.h"
#include "util/file.h"

#define SEG_MIN ((uint64_t)64 << 10)

typedef struct seg {
    uint64_t id, size;
    uint64_t unsent_records, unsent_items, unsent_bytes;
} seg;

struct otlp_fwdq {
    char *dir;
    uint64_t max_bytes, seg_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    seg *segs; /* ascending ids; the last one is the one appended to */
    size_t nseg, capseg;
    int wfd;
    uint64_t total;      /* bytes of every segment file */
    uint64_t rseg, roff; /* read position */
    int peeked;          /* a record at (rseg, roff) was handed out ... */
    uint64_t peek_end;   /* ... and ends here */
    uint32_t peek_items;
    int rfd;
    uint64_t rfd_seg;
    int woken, dirty;
    int pos_dirty; /* the position moved since it was last saved */
    struct timespec pos_saved;
    otlp_fwdq_stats st;
};

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

long otlp_fwdq_parse(const uint8_t *buf, size_t len, size_t max_payload, otlp_fwdq_rec *r) {
    if (len < OTLP_FWDQ_HDR) return OTLP_FWDQ_MORE;
    uint32_t n = get32(buf);
    if (n > max_payload || n > OTLP_FWDQ_MAX_RECORD) return OTLP_FWDQ_BAD;
    if (buf[8] > 1 || buf[9] || buf[10] || buf[11]) return OTLP_FWDQ_BAD;
    if (len - OTLP_FWDQ_HDR < n) return OTLP_FWDQ_MORE;
    uint32_t crc = crc32c_update(crc32c(buf + 8, 8), buf + OTLP_FWDQ_HDR, n);
    if (crc != get32(buf + 4)) return OTLP_FWDQ_BAD;
    r->signal = buf[8];
    r->items = get32(buf + 12);
    r->payload = buf + OTLP_FWDQ_HDR;
    r->len = n;
    return (long)(OTLP_FWDQ_HDR + n);
}

void otlp_fwdq_header(uint8_t hdr[OTLP_FWDQ_HDR], uint8_t signal, uint32_t items, const uint8_t *p,
                      size_t n) {
    memset(hdr, 0, OTLP_FWDQ_HDR);
    put32(hdr, (uint32_t)n);
    hdr[8] = signal;
    put32(hdr + 12, items);
    put32(hdr + 4, crc32c_update(crc32c(hdr + 8, 8), p, n));
}

static void seg_path(const otlp_fwdq *q, uint64_t id, char *out, size_t cap) {
    snprintf(out, cap, "%s/%020" PRIu64 ".seg", q->dir, id);
}

static int save_position(otlp_fwdq *q) {
    char tmp[4200], fin[4200], line[64];
    snprintf(tmp, sizeof tmp, "%s/position.tmp", q->dir);
    snprintf(fin, sizeof fin, "%s/position", q->dir);
    int n = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 "\n", q->rseg, q->roff);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int rc = tr_write_all(fd, line, (size_t)n);
    close(fd);
    if (rc == 0) rc = rename(tmp, fin);
    return rc;
}

static int push_seg(otlp_fwdq *q, uint64_t id) {
    if (q->nseg == q->capseg) {
        size_t nc = q->capseg ? q->capseg * 2 : 8;
        seg *s = realloc(q->segs, nc * sizeof *s);
        if (!s) return -1;
        q->segs = s;
        q->capseg = nc;
    }
    q->segs[q->nseg++] = (seg){.id = id};
    return 0;
}

/* Opens a new, empty segment to append to. Caller holds the lock (or is alone). */
static int new_active(otlp_fwdq *q) {
    uint64_t id = q->nseg ? q->segs[q->nseg - 1].id + 1 : (q->rseg ? q->rseg : 1);
    char p[4200];
    seg_path(q, id, p, sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (push_seg(q, id)) {
        close(fd);
        unlink(p);
        errno = ENOMEM;
        return -1;
    }
    if (q->wfd >= 0) close(q->wfd);
    q->wfd = fd;
    return 0;
}

/* Deletes the oldest segment; unsent records in it count as dropped. */
static void drop_oldest(otlp_fwdq *q, int counted) {
    seg *s = &q->segs[0];
    if (counted) {
        q->st.dropped_records += s->unsent_records;
        q->st.dropped_items += s->unsent_items;
        q->st.dropped_bytes += s->unsent_bytes;
    }
    char p[4200];
    seg_path(q, s->id, p, sizeof p);
    unlink(p);
    if (q->rfd >= 0 && q->rfd_seg == s->id) {
        close(q->rfd);
        q->rfd = -1;
    }
    q->total -= s->size;
    int was_read = q->rseg == s->id;
    int was_active = q->nseg == 1;
    memmove(q->segs, q->segs + 1, (q->nseg - 1) * sizeof *s);
    q->nseg--;
    if (was_active) {
        close(q->wfd);
        q->wfd = -1;
    }
    if (was_read) {
        q->rseg = q->nseg ? q->segs[0].id : q->rseg + 1;
        q->roff = 0;
        q->peeked = 0;
    }
}

/* Scans segment s from its start: counts what lies at or past `from`, and returns the length
 * of its valid prefix (the whole file when every record checks out). */
static uint64_t scan_seg(otlp_fwdq *q, seg *s, uint64_t from) {
    char p[4200];
    seg_path(q, s->id, p, sizeof p);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t off = 0;
    for (;;) {
        uint8_t h[OTLP_FWDQ_HDR];
        if (pread(fd, h, sizeof h, (off_t)off) != (ssize_t)sizeof h) break;
        uint32_t n = get32(h);
        if (n > OTLP_FWDQ_MAX_RECORD || off + OTLP_FWDQ_HDR + n > s->size) break;
        if (OTLP_FWDQ_HDR + (size_t)n > cap) {
            uint8_t *nb = realloc(buf, OTLP_FWDQ_HDR + (size_t)n);
            if (!nb) break;
            buf = nb;
            cap = OTLP_FWDQ_HDR + (size_t)n;
        }
        if (pread(fd, buf, OTLP_FWDQ_HDR + (size_t)n, (off_t)off) != (ssize_t)(OTLP_FWDQ_HDR + n)) break;
        otlp_fwdq_rec r;
        long used = otlp_fwdq_parse(buf, OTLP_FWDQ_HDR + (size_t)n, OTLP_FWDQ_MAX_RECORD, &r);
        if (used <= 0) break;
        if (off >= from) {
            s->unsent_records++;
            s->unsent_items += r.items;
            s->unsent_bytes += (uint64_t)used;
        }
        off += (uint64_t)used;
    }
    free(buf);
    close(fd);
    return off;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

otlp_fwdq *otlp_fwdq_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen) {
    otlp_fwdq *q = calloc(1, sizeof *q);
    uint64_t *ids = NULL;
    size_t nids = 0, capids = 0;
    if (!q || !(q->dir = strdup(dir))) {
        snprintf(err, errlen, "out of memory");
        free(q);
        return NULL;
    }
    q->wfd = q->rfd = -1;
    q->max_bytes = max_bytes;
    q->seg_max = max_bytes / 4 < SEG_MIN ? SEG_MIN : max_bytes / 4;
    if (q->seg_max > ((uint64_t)64 << 20)) q->seg_max = (uint64_t)64 << 20;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (tr_mkdir_p(dir)) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        unsigned long long id = strtoull(e->d_name, &end, 10);
        if (end == e->d_name || strcmp(end, ".seg") != 0 || id == 0) continue;
        if (nids == capids) {
            uint64_t *ni = realloc(ids, (capids = capids ? capids * 2 : 16) * sizeof *ni);
            if (!ni) {
                closedir(d);
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            ids = ni;
        }
        ids[nids++] = id;
    }
    closedir(d);
    if (nids) qsort(ids, nids, sizeof *ids, cmp_u64);

    char pp[4200];
    snprintf(pp, sizeof pp, "%s/position", dir);
    FILE *pf = fopen(pp, "r");
    if (pf) {
        unsigned long long a = 0, b = 0;
        if (fscanf(pf, "%llu %llu", &a, &b) == 2) {
            q->rseg = a;
            q->roff = b;
        }
        fclose(pf);
    }
    for (size_t i = 0; i < nids; i++) {
        char p[4200];
        seg_path(q, ids[i], p, sizeof p);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        if (ids[i] < q->rseg || (ids[i] == q->rseg && (uint64_t)sb.st_size <= q->roff && i + 1 < nids)) {
            unlink(p); /* sent completely */
            continue;
        }
        if (push_seg(q, ids[i])) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        seg *s = &q->segs[q->nseg - 1];
        s->size = (uint64_t)sb.st_size;
        uint64_t from = ids[i] == q->rseg ? q->roff : 0;
        uint64_t valid = scan_seg(q, s, from);
        if (i + 1 == nids && valid < s->size) {
            /* a torn or corrupt tail of the newest segment: cut it so appends follow whole records */
            if (truncate(p, (off_t)valid) != 0) {
                snprintf(err, errlen, "%s: %s", p, strerror(errno));
                goto fail;
            }
            q->st.dropped_bytes += s->size - valid; /* counted; the items in it are unknown */
            s->size = valid;
        }
        q->total += s->size;
    }
    free(ids);
    ids = NULL;
    if (q->nseg == 0 || q->segs[0].id > q->rseg) {
        q->rseg = q->nseg ? q->segs[0].id : q->rseg;
        q->roff = 0;
    }
    if (q->nseg && q->rseg == q->segs[0].id && q->roff > q->segs[0].size) q->roff = q->segs[0].size;
    if (q->nseg) {
        char p[4200];
        seg_path(q, q->segs[q->nseg - 1].id, p, sizeof p);
        q->wfd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (q->wfd < 0) {
            snprintf(err, errlen, "%s: %s", p, strerror(errno));
            goto fail;
        }
    } else if (new_active(q)) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    if (q->rseg == 0) q->rseg = q->segs[0].id;
    return q;
fail:
    free(ids);
    otlp_fwdq_close(q);
    return NULL;
}

void otlp_fwdq_close(otlp_fwdq *q) {
    if (!q) return;
    if (q->pos_dirty) save_position(q);
    if (q->wfd >= 0) close(q->wfd);
    if (q->rfd >= 0) close(q->rfd);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->segs);
    free(q->dir);
    free(q);
}

int otlp_fwdq_append(otlp_fwdq *q, uint8_t signal, uint32_t items, const uint8_t *p, size_t n) {
    uint64_t rec = OTLP_FWDQ_HDR + (uint64_t)n;
    pthread_mutex_lock(&q->mu);
    if (rec > q->max_bytes || n > OTLP_FWDQ_MAX_RECORD) {
        q->st.dropped_records++;
        q->st.dropped_items += items;
        q->st.dropped_bytes += rec;
        pthread_mutex_unlock(&q->mu);
        return 1;
    }
    int rc = 0;
    while (q->nseg && q->total + rec > q->max_bytes && (q->nseg > 1 || q->segs[0].size > 0))
        drop_oldest(q, 1);
    seg *a = q->nseg ? &q->segs[q->nseg - 1] : NULL;
    if (!a || q->wfd < 0 || (a->size > 0 && a->size + rec > q->seg_max)) {
        if (new_active(q)) {
            rc = -1;
            goto out;
        }
        a = &q->segs[q->nseg - 1];
    }
    uint8_t hdr[OTLP_FWDQ_HDR];
    otlp_fwdq_header(hdr, signal, items, p, n);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)p, n}};
    size_t want = sizeof hdr + n, done = 0;
    while (done < want) {
        ssize_t w =
            done < sizeof hdr ? writev(q->wfd, iov, 2) : write(q->wfd, p + (done - sizeof hdr), want - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            if (ftruncate(q->wfd, (off_t)a->size) != 0) { /* keep the file whole records */
            }
            errno = e ? e : EIO;
            rc = -1;
            goto out;
        }
        done += (size_t)w;
        if (done < sizeof hdr) { /* a short write inside the header: rare enough to finish by hand */
            if (tr_write_all(q->wfd, hdr + done, sizeof hdr - done) != 0) {
                rc = -1;
                goto out;
            }
            done = sizeof hdr;
        }
    }
    a->size += rec;
    a->unsent_records++;
    a->unsent_items += items;
    a->unsent_bytes += rec;
    q->total += rec;
    q->dirty = 1;
    pthread_cond_signal(&q->cv);
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static seg *find_seg(otlp_fwdq *q, uint64_t id) {
    for (size_t i = 0; i < q->nseg; i++)
        if (q->segs[i].id == id) return &q->segs[i];
    return NULL;
}

/* Moves the read position past a finished, non-active segment (deleting it). Locked. */
static void advance_segments(otlp_fwdq *q) {
    for (;;) {
        seg *s = find_seg(q, q->rseg);
        if (!s) {
            if (q->nseg) {
                q->rseg = q->segs[0].id;
                q->roff = 0;
                continue;
            }
            return;
        }
        if (q->roff < s->size || s == &q->segs[q->nseg - 1]) return;
        size_t older = (size_t)(s - q->segs);
        for (size_t k = 0; k < older; k++)
            drop_oldest(q, 1); /* older than the read position: cannot happen, but stay consistent */
        drop_oldest(q, 0);     /* sets the read position to the next segment's start */
    }
}

static void skip_rest(otlp_fwdq *q, uint64_t id) {
    pthread_mutex_lock(&q->mu);
    seg *s = find_seg(q, id);
    if (s && q->rseg == id) {
        q->st.dropped_records += s->unsent_records;
        q->st.dropped_items += s->unsent_items;
        q->st.dropped_bytes += s->unsent_bytes;
        s->unsent_records = s->unsent_items = s->unsent_bytes = 0;
        q->roff = s->size;
        q->peeked = 0;
        advance_segments(q);
        save_position(q);
    }
    pthread_mutex_unlock(&q->mu);
}

int otlp_fwdq_peek(otlp_fwdq *q, int wait_ms, uint8_t **buf, size_t *cap, otlp_fwdq_rec *r) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    for (;;) {
        pthread_mutex_lock(&q->mu);
        advance_segments(q);
        seg *s;
        while (!(s = find_seg(q, q->rseg)) || q->roff >= s->size) {
            if (q->woken || pthread_cond_timedwait(&q->cv, &q->mu, &until) == ETIMEDOUT || q->woken) {
                q->woken = 0;
                pthread_mutex_unlock(&q->mu);
                return 0;
            }
            advance_segments(q);
        }
        uint64_t id = q->rseg, off = q->roff, size = s->size;
        if (q->rfd < 0 || q->rfd_seg != id) {
            if (q->rfd >= 0) close(q->rfd);
            char p[4200];
            seg_path(q, id, p, sizeof p);
            q->rfd = open(p, O_RDONLY | O_CLOEXEC);
            q->rfd_seg = id;
            if (q->rfd < 0) {
                pthread_mutex_unlock(&q->mu);
                return -1;
            }
        }
        int dfd = dup(q->rfd); /* a drop under the lock may close rfd while we read */
        pthread_mutex_unlock(&q->mu);
        if (dfd < 0) return -1;
        uint8_t h[OTLP_FWDQ_HDR];
        int bad = 0;
        if (pread(dfd, h, sizeof h, (off_t)off) != (ssize_t)sizeof h) bad = 1;
        uint32_t n = bad ? 0 : get32(h);
        if (!bad && (n > OTLP_FWDQ_MAX_RECORD || off + OTLP_FWDQ_HDR + n > size)) bad = 1;
        if (!bad && OTLP_FWDQ_HDR + (size_t)n > *cap) {
            uint8_t *nb = realloc(*buf, OTLP_FWDQ_HDR + (size_t)n);
            if (!nb) {
                close(dfd);
                return -1;
            }
            *buf = nb;
            *cap = OTLP_FWDQ_HDR + (size_t)n;
        }
        if (!bad && pread(dfd, *buf, OTLP_FWDQ_HDR + (size_t)n, (off_t)off) != (ssize_t)(OTLP_FWDQ_HDR + n))
            bad = 1;
        close(dfd);
        long used =
            bad ? OTLP_FWDQ_BAD : otlp_fwdq_parse(*buf, OTLP_FWDQ_HDR + (size_t)n, OTLP_FWDQ_MAX_RECORD, r);
        if (used <= 0) {
            skip_rest(q, id);
            continue;
        }
        pthread_mutex_lock(&q->mu);
        int same = q->rseg == id && q->roff == off;
        if (same) {
            q->peeked = 1;
            q->peek_end = off + (uint64_t)used;
            q->peek_items = r->items;
        }
        pthread_mutex_unlock(&q->mu);
        if (same) return 1;
    }
}

int otlp_fwdq_commit(otlp_fwdq *q) {
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    if (q->peeked) {
        seg *s = find_seg(q, q->rseg);
        if (s) {
            uint64_t used = q->peek_end - q->roff;
            if (s->unsent_records) s->unsent_records--;
            s->unsent_items = s->unsent_items >= q->peek_items ? s->unsent_items - q->peek_items : 0;
            s->unsent_bytes = s->unsent_bytes >= used ? s->unsent_bytes - used : 0;
            q->roff = q->peek_end;
        }
        q->peeked = 0;
        advance_segments(q);
        /* at most ten saves a second (a rename each); otlp_fwdq_sync and close save the rest:
         * a crash re-sends what was sent in the last 100 ms (delivery is at least once) */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ms = (int64_t)(now.tv_sec - q->pos_saved.tv_sec) * 1000 +
                     (now.tv_nsec - q->pos_saved.tv_nsec) / 1000000;
        q->pos_dirty = 1;
        if (ms >= 100) {
            rc = save_position(q);
            q->pos_dirty = rc != 0;
            q->pos_saved = now;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void otlp_fwdq_wake(otlp_fwdq *q) {
    pthread_mutex_lock(&q->mu);
    q->woken = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void otlp_fwdq_sync(otlp_fwdq *q) {
    pthread_mutex_lock(&q->mu);
    if (q->pos_dirty && save_position(q) == 0) q->pos_dirty = 0;
    int fd = q->dirty && q->wfd >= 0 ? dup(q->wfd) : -1;
    q->dirty = 0;
    pthread_mutex_unlock(&q->mu);
    if (fd >= 0) {
        if (fdatasync(fd) != 0) { /* best effort: the next append marks it dirty again */
        }
        close(fd);
    }
}

void otlp_fwdq_stats_get(otlp_fwdq *q, otlp_fwdq_stats *s) {
    pthread_mutex_lock(&q->mu);
    *s = q->st;
    s->disk_bytes = q->total;
    s->pending_bytes = 0;
    for (size_t i = 0; i < q->nseg; i++)
        s->pending_bytes += q->segs[i].unsent_bytes;
    pthread_mutex_unlock(&q->mu);
}
