/* Remote write out: the WAL reader, one per target (the way Prometheus's WAL watcher tails its
 * WAL). It never writes the WAL; it reads segment files the store appends to, stopping at the
 * first incomplete record of the newest segment and waiting there for more. */
#include "rw_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/hash.h"
#include "util/log.h"

#define READ_CHUNK ((size_t)4 << 20)
#define MAX_RECORD ((size_t)256 << 20)

/* ---- bytes ---- */

int rwb_reserve(rw_bytes *b, size_t n) {
    if (b->err) return -1;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->err = 1;
            return -1;
        }
        b->p = np;
        b->cap = nc;
    }
    return 0;
}

void rwb_put(rw_bytes *b, const void *p, size_t n) {
    if (rwb_reserve(b, n) != 0) return;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
}

void rwb_varint(rw_bytes *b, uint64_t v) {
    uint8_t t[10];
    size_t k = 0;
    while (v >= 0x80) {
        t[k++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[k++] = (uint8_t)v;
    rwb_put(b, t, k);
}

void rwb_free(rw_bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static size_t vlen(uint64_t v) {
    size_t k = 1;
    while (v >= 0x80) {
        v >>= 7;
        k++;
    }
    return k;
}

/* a Label message as field 1 of its parent */
static void put_label(rw_bytes *b, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl) {
    rwb_varint(b, (1 << 3) | 2);
    rwb_varint(b, 1 + vlen(nl) + nl + 1 + vlen(vl) + vl);
    rwb_varint(b, (1 << 3) | 2);
    rwb_varint(b, nl);
    rwb_put(b, n, nl);
    rwb_varint(b, (2 << 3) | 2);
    rwb_varint(b, vl);
    rwb_put(b, v, vl);
}

/* ---- batches ---- */

void rw_batch_clear(rw_batch *b) {
    for (size_t i = 0; i < b->ne; i++)
        free(b->e[i].pb);
    b->n = b->ne = 0;
    b->max_t = INT64_MIN;
}

void rw_batch_free(rw_batch *b) {
    rw_batch_clear(b);
    free(b->s);
    free(b->e);
    memset(b, 0, sizeof *b);
}

/* ---- small wire reader (the WAL's own varints) ---- */

typedef struct rdr {
    const uint8_t *p, *end;
    int err;
} rdr;

static uint64_t r_uvar(rdr *r) {
    uint64_t v = 0;
    for (unsigned sh = 0; sh < 64; sh += 7) {
        if (r->p >= r->end) break;
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) return v;
    }
    r->err = 1;
    return 0;
}

static int64_t r_svar(rdr *r) {
    uint64_t u = r_uvar(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static uint64_t r_u64(rdr *r) {
    if (r->end - r->p < 8) {
        r->err = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | r->p[i];
    r->p += 8;
    return v;
}

static const uint8_t *r_bytes(rdr *r, uint64_t n) {
    if (r->err || (uint64_t)(r->end - r->p) < n) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *s = r->p;
    r->p += n;
    return s;
}

/* ---- the series map ---- */

static size_t slot_of(const rw_reader *r, uint64_t ref) { return (size_t)(tr_mix64(ref) & (r->nslots - 1)); }

static const struct rw_slot *series_slot(const rw_reader *r, uint64_t ref, uint64_t h) {
    if (!r->nslots) return NULL;
    for (size_t i = (size_t)(h & (r->nslots - 1));; i = (i + 1) & (r->nslots - 1)) {
        if (!r->slots[i].s) return NULL;
        if (r->slots[i].ref == ref) return &r->slots[i];
    }
}

/* puts s in a table of n slots known to have a free one and no entry for its ref */
static void slot_insert(struct rw_slot *slots, size_t n, rw_series *s) {
    for (size_t j = (size_t)(tr_mix64(s->ref) & (n - 1));; j = (j + 1) & (n - 1))
        if (!slots[j].s) {
            slots[j] = (struct rw_slot){s->ref, s, s->selected};
            return;
        }
}

static int series_put(rw_reader *r, rw_series *s) {
    if ((r->nseries + 1) * 2 > r->nslots) {
        size_t nn = r->nslots ? r->nslots * 2 : 1024;
        struct rw_slot *ns = calloc(nn, sizeof *ns);
        if (!ns) return -1;
        for (size_t i = 0; i < r->nslots; i++)
            if (r->slots[i].s) slot_insert(ns, nn, r->slots[i].s);
        free(r->slots);
        r->slots = ns;
        r->nslots = nn;
    }
    for (size_t i = slot_of(r, s->ref);; i = (i + 1) & (r->nslots - 1)) {
        if (!r->slots[i].s) {
            r->slots[i] = (struct rw_slot){s->ref, s, s->selected};
            r->nseries++;
            return 0;
        }
        if (r->slots[i].ref == s->ref) {
            rw_series *o = r->slots[i].s;
            if (o->pblen == s->pblen && memcmp(o->pb, s->pb, s->pblen) == 0) { /* read again (checkpoint) */
                if (s->seg > o->seg) o->seg = s->seg;
                free(s);
                return 0;
            }
            /* redefined: the newest wins; the old one may still be in a batch, so it is kept */
            o->next_retired = r->retired;
            r->retired = o;
            r->slots[i] = (struct rw_slot){s->ref, s, s->selected};
            return 0;
        }
    }
}

static int selected(const rw_reader *r, const char **names, const char **vals, const size_t *vlens,
                    size_t n) {
    for (size_t i = 0; i < r->nm; i++) {
        const char *want = tsdb_matcher_name(r->m[i]);
        const char *v = "";
        char tmp[4097];
        for (size_t k = 0; k < n; k++)
            if (strcmp(names[k], want) == 0) {
                size_t l = vlens[k] < sizeof tmp - 1 ? vlens[k] : sizeof tmp - 1;
                memcpy(tmp, vals[k], l);
                tmp[l] = 0;
                v = tmp;
                break;
            }
        if (!tsdb_matcher_matches(r->m[i], v)) return 0;
    }
    return 1;
}

static void on_series(rw_reader *r, const uint8_t *pl, size_t len, uint32_t seg) {
    rdr x = {pl, pl + len, 0};
    while (x.p < x.end && !x.err) {
        uint64_t ref = r_uvar(&x), nl = r_uvar(&x);
        if (x.err || nl > 1024 || ref == 0) return;
        rw_bytes pb = {0};
        const char *names[1024], *vals[1024];
        size_t vlens[1024];
        char nbuf[1024][64];
        for (uint64_t i = 0; i < nl; i++) {
            uint64_t a = r_uvar(&x);
            const uint8_t *n = r_bytes(&x, a);
            uint64_t b = r_uvar(&x);
            const uint8_t *v = r_bytes(&x, b);
            if (x.err) break;
            put_label(&pb, n, a, v, b);
            /* names for the selector: label names are short; longer ones cannot match one */
            size_t l = a < 63 ? a : 63;
            memcpy(nbuf[i], n, l);
            nbuf[i][l] = 0;
            names[i] = nbuf[i];
            vals[i] = (const char *)v;
            vlens[i] = b;
        }
        /* the labels right after the series, in one block: one cache miss less per sample */
        rw_series *s = x.err || pb.err ? NULL : malloc(sizeof *s + pb.len);
        if (!s) {
            rwb_free(&pb);
            return;
        }
        memset(s, 0, sizeof *s);
        s->ref = ref;
        s->seg = seg;
        s->first = s->last = UINT32_MAX;
        s->pb = (uint8_t *)(s + 1);
        if (pb.len) memcpy(s->pb, pb.p, pb.len);
        s->pblen = (uint32_t)pb.len;
        rwb_free(&pb);
        s->selected = (uint8_t)selected(r, names, vals, vlens, nl);
        if (series_put(r, s) != 0) {
            free(s);
            return;
        }
    }
}

static void push_sample(rw_batch *b, rw_series *s, uint64_t h, int64_t t, uint64_t v) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        rw_sample *ns = realloc(b->s, nc * sizeof *ns);
        if (!ns) return;
        b->s = ns;
        b->cap = nc;
    }
    b->s[b->n++] = (rw_sample){s, (uint32_t)h, t, v};
    if (t > b->max_t) b->max_t = t;
}

static void on_samples(rw_reader *r, rw_batch *b, const uint8_t *pl, size_t len) {
    rdr x = {pl, pl + len, 0};
    uint64_t n = r_uvar(&x);
    int64_t t = 0;
    for (uint64_t i = 0; i < n && !x.err; i++) {
        uint64_t ref = r_uvar(&x);
        t = (int64_t)((uint64_t)t + (uint64_t)r_svar(&x));
        uint64_t v = r_u64(&x);
        if (x.err) break;
        uint64_t h = tr_mix64(ref);
        const struct rw_slot *sl = series_slot(r, ref, h);
        if (sl && sl->selected) push_sample(b, sl->s, h, t, v);
    }
}

/* "name\0value\0..." -> Label fields */
static int pairs_to_pb(rw_bytes *pb, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t *a = p + i;
        const uint8_t *za = memchr(a, 0, n - i);
        if (!za) return -1;
        const uint8_t *v = za + 1;
        if (v >= p + n) return -1;
        const uint8_t *zv = memchr(v, 0, (size_t)(p + n - v));
        if (!zv) return -1;
        put_label(pb, a, (size_t)(za - a), v, (size_t)(zv - v));
        i = (size_t)(zv + 1 - p);
    }
    return pb->err ? -1 : 0;
}

static void on_exemplars(rw_reader *r, rw_batch *b, const uint8_t *pl, size_t len) {
    rdr x = {pl, pl + len, 0};
    uint64_t n = r_uvar(&x);
    int64_t t = 0;
    for (uint64_t i = 0; i < n && !x.err; i++) {
        uint64_t ref = r_uvar(&x);
        if (ref == 0) { /* a series given by its key: only exemplars of known series are sent */
            uint64_t kl = r_uvar(&x);
            r_bytes(&x, kl);
        }
        t = (int64_t)((uint64_t)t + (uint64_t)r_svar(&x));
        uint64_t v = r_u64(&x);
        uint64_t ll = r_uvar(&x);
        const uint8_t *lbl = r_bytes(&x, ll);
        if (x.err) break;
        const struct rw_slot *sl = ref ? series_slot(r, ref, tr_mix64(ref)) : NULL;
        if (!sl || !sl->selected) continue;
        const rw_series *s = sl->s;
        rw_bytes pb = {0};
        if (pairs_to_pb(&pb, lbl, ll) != 0) {
            rwb_free(&pb);
            continue;
        }
        if (b->ne == b->cape) {
            size_t nc = b->cape ? b->cape * 2 : 256;
            rw_exemplar *ne = realloc(b->e, nc * sizeof *ne);
            if (!ne) {
                rwb_free(&pb);
                return;
            }
            b->e = ne;
            b->cape = nc;
        }
        b->e[b->ne++] = (rw_exemplar){s, t, v, pb.p, (uint32_t)pb.len};
    }
}

/* ---- files ---- */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint32_t *rw_wal_segments(const char *wal_dir, size_t *n, long *checkpoint) {
    *n = 0;
    if (checkpoint) *checkpoint = -1;
    DIR *d = opendir(wal_dir);
    if (!d) return NULL;
    uint32_t *v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned k;
        char tail;
        if (checkpoint && sscanf(e->d_name, "checkpoint.%8u%c", &k, &tail) == 1 && (long)k > *checkpoint)
            *checkpoint = k;
        char *end;
        unsigned long s = strtoul(e->d_name, &end, 10);
        if (*end || strlen(e->d_name) != 8) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        v[(*n)++] = (uint32_t)s;
    }
    closedir(d);
    if (*n) qsort(v, *n, sizeof *v, cmp_u32);
    return v;
}

static uint8_t *slurp(const char *path, size_t *n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    uint8_t *p = NULL;
    if (fstat(fd, &st) == 0 && (p = malloc((size_t)st.st_size + 1))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t k = read(fd, p + got, (size_t)st.st_size - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
        *n = got;
    }
    close(fd);
    return p;
}

/* Walks the whole records of p[0..n); damaged ones are skipped. */
static void walk(const uint8_t *p, size_t n, void (*fn)(void *, uint8_t, const uint8_t *, size_t),
                 void *ctx) {
    size_t off = 0;
    while (off < n) {
        uint8_t type;
        const uint8_t *pl;
        size_t len, size;
        if (tsdb_wal_record(p + off, n - off, &type, &pl, &len, &size)) {
            fn(ctx, type, pl, len);
            off += size;
        } else {
            off += tsdb_wal_resync(p + off, n - off);
        }
    }
}

typedef struct learn_ctx {
    rw_reader *r;
    uint32_t seg; /* what the series learnt get as rw_series.seg */
} learn_ctx;

static void series_only(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    learn_ctx *c = ctx;
    if (type == TSDB_WAL_SERIES) on_series(c->r, pl, len, c->seg);
}

static void count_samples(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    if (type != TSDB_WAL_SAMPLES) return;
    rdr x = {pl, pl + len, 0};
    uint64_t k = r_uvar(&x);
    if (!x.err) *(uint64_t *)ctx += k;
}

uint64_t rw_wal_count_samples(const char *path, uint64_t from) {
    size_t n = 0;
    uint8_t *p = slurp(path, &n);
    uint64_t c = 0;
    if (p && from < n) walk(p + from, n - (size_t)from, count_samples, &c);
    free(p);
    return c;
}

static int learn_file(rw_reader *r, const char *path, size_t upto, uint32_t seg) {
    size_t n = 0;
    uint8_t *p = slurp(path, &n);
    if (!p) return -1;
    if (upto < n) n = upto;
    learn_ctx c = {r, seg};
    walk(p, n, series_only, &c);
    free(p);
    return 0;
}

static void free_retired(rw_reader *r) {
    while (r->retired) {
        rw_series *n = r->retired->next_retired;
        free(r->retired);
        r->retired = n;
    }
}

/* Checkpoint ck holds every series still alive at its cut: those it has are marked alive past
 * it, then the series last defined in segments up to ck and not in it are dead and dropped.
 * Called only with an empty batch (no sample points at a series). */
static void trim_series(rw_reader *r, long ck) {
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.%08u", r->wal_dir, (unsigned)ck);
    if (learn_file(r, path, SIZE_MAX, (uint32_t)ck + 1) != 0) return; /* gone: a newer one comes */
    struct rw_slot *ns = calloc(r->nslots ? r->nslots : 1, sizeof *ns);
    if (!ns) return;
    size_t kept = 0;
    for (size_t i = 0; i < r->nslots; i++) {
        rw_series *s = r->slots[i].s;
        if (!s) continue;
        if (s->seg <= (uint32_t)ck) {
            free(s);
            r->series_trimmed++;
        } else {
            slot_insert(ns, r->nslots, s);
            kept++;
        }
    }
    free(r->slots);
    r->slots = ns;
    r->nseries = kept;
    free_retired(r);
    r->checkpoint = ck;
}

int rw_reader_open(rw_reader *r, const char *wal_dir, rw_pos pos, tsdb_matcher **m, size_t nm, char *err,
                   size_t errlen) {
    memset(r, 0, sizeof *r);
    snprintf(r->wal_dir, sizeof r->wal_dir, "%s", wal_dir);
    r->m = m;
    r->nm = nm;
    r->fd = -1;
    size_t ns;
    long ck;
    uint32_t *segs = rw_wal_segments(wal_dir, &ns, &ck);
    char path[4200];
    r->checkpoint = ck;
    if (ck >= 0) {
        snprintf(path, sizeof path, "%s/checkpoint.%08u", wal_dir, (unsigned)ck);
        learn_file(r, path, SIZE_MAX, (uint32_t)ck + 1);
    }
    for (size_t i = 0; i < ns; i++) {
        if (segs[i] > pos.seg) break;
        snprintf(path, sizeof path, "%s/%08u", wal_dir, segs[i]);
        learn_file(r, path, segs[i] == pos.seg ? (size_t)pos.off : SIZE_MAX, segs[i]);
    }
    free(segs);
    r->seg = pos.seg;
    r->off = pos.off;
    r->buf_off = pos.off;
    (void)err;
    (void)errlen;
    return 0;
}

void rw_reader_close(rw_reader *r) {
    if (r->fd >= 0) close(r->fd);
    for (size_t i = 0; i < r->nslots; i++)
        if (r->slots[i].s) {
            free(r->slots[i].s);
        }
    free(r->slots);
    free_retired(r);
    free(r->buf);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

/* 1 when a segment numbered above r->seg exists; *next is the lowest such */
static int newer_segment(rw_reader *r, uint32_t *next) {
    size_t n;
    uint32_t *segs = rw_wal_segments(r->wal_dir, &n, NULL);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (segs[i] > r->seg) {
            *next = segs[i];
            found = 1;
            break;
        }
    free(segs);
    return found;
}

static void to_segment(rw_reader *r, uint32_t seg) {
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    r->seg = seg;
    r->off = r->buf_off = 0;
    r->len = r->head = 0;
    r->check_checkpoint = 1;
}

/* n buffered bytes are done with */
static void skip(rw_reader *r, size_t n) {
    r->head += n;
    r->len -= n;
    r->buf_off += n;
    r->off = r->buf_off;
}

int rw_reader_next(rw_reader *r, rw_batch *b, size_t max_samples) {
    int moved = 0;
    if (r->check_checkpoint && !b->n && !b->ne) {
        /* after a segment change, like Prometheus's watcher: a new checkpoint that covers only
         * segments already read trims the series map */
        r->check_checkpoint = 0;
        size_t ns;
        long ck;
        free(rw_wal_segments(r->wal_dir, &ns, &ck));
        if (ck > r->checkpoint && (uint32_t)ck < r->seg) trim_series(r, ck);
    }
    for (;;) {
        if (r->fd < 0) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%08u", r->wal_dir, r->seg);
            r->fd = open(path, O_RDONLY | O_CLOEXEC);
            if (r->fd < 0) {
                uint32_t next;
                if (errno == ENOENT && newer_segment(r, &next)) {
                    /* gone (dropped past the backlog bound) or never written */
                    r->segments_missing++;
                    to_segment(r, next);
                    moved = 1;
                    continue;
                }
                return moved;
            }
        }
        /* a newer segment seen before reading means this one is complete */
        uint32_t next = 0;
        int complete = newer_segment(r, &next);
        /* parse what is buffered (from r->head; compacted only before a read) */
        size_t used = 0;
        const uint8_t *d = r->buf + r->head;
        while (used < r->len && b->n < max_samples) {
            uint8_t type;
            const uint8_t *pl;
            size_t len, size;
            if (!tsdb_wal_record(d + used, r->len - used, &type, &pl, &len, &size)) break;
            if (type == TSDB_WAL_SERIES)
                on_series(r, pl, len, r->seg);
            else if (type == TSDB_WAL_SAMPLES)
                on_samples(r, b, pl, len);
            else if (type == TSDB_WAL_EXEMPLARS)
                on_exemplars(r, b, pl, len);
            used += size;
        }
        if (used) {
            skip(r, used);
            moved = 1;
        }
        if (b->n >= max_samples) return 1;
        /* read more */
        if (r->head) {
            memmove(r->buf, r->buf + r->head, r->len);
            r->head = 0;
        }
        size_t want = READ_CHUNK;
        if (r->len + want > r->cap) {
            /* doubled: a leftover partial record must not make every read reallocate */
            size_t nc = r->len + want > 2 * r->cap ? r->len + want : 2 * r->cap;
            uint8_t *nb = realloc(r->buf, nc);
            if (!nb) return moved;
            r->buf = nb;
            r->cap = nc;
        }
        ssize_t k = pread(r->fd, r->buf + r->len, want, (off_t)(r->buf_off + r->len));
        if (k > 0) {
            r->len += (size_t)k;
            continue;
        }
        /* at the end of the file */
        if (r->len == 0 || !complete) {
            if (complete) {
                to_segment(r, next);
                moved = 1;
                continue;
            }
            if (r->len >= MAX_RECORD + 13) { /* cannot be a record being written: damage */
                r->records_skipped++;
                skip(r, tsdb_wal_resync(r->buf + r->head, r->len));
                continue;
            }
            return moved;
        }
        /* a complete segment with bytes that do not parse: damage; skip to the next record */
        r->records_skipped++;
        skip(r, tsdb_wal_resync(r->buf + r->head, r->len));
        moved = 1;
    }
}
