/* The store as a whole: open/close, the background thread that cuts the head into blocks,
 * compacts small blocks and applies retention, the querier (head + blocks merged), metadata,
 * statistics and self-metrics. */
#include "metrics_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

void wal_delete_before(tsdb *db, uint32_t seg);
uint64_t wal_disk_bytes(tsdb *db);

/* A family's distinct (type, help, unit) triples, oldest first (at most META_ALT: a new one
 * beyond that pushes out the oldest). */
#define META_ALT 8
typedef struct metaent {
    char *family;
    char *type[META_ALT], *help[META_ALT], *unit[META_ALT];
    int n;
    int64_t set_ms; /* last given (wall clock): fresh metadata waits for its samples */
} metaent;

#define META_PRUNE_EVERY_MS 60000 /* metadata of families without series is looked for */
#define META_GRACE_MS 600000      /* metadata given this recently is kept without series */

/* ---- blocks list ---- */

static int cmp_block(const void *a, const void *b) {
    const block *x = *(block *const *)a, *y = *(block *const *)b;
    if (x->mint != y->mint) return x->mint < y->mint ? -1 : 1;
    return strcmp(x->id, y->id);
}

void db_block_unref(tsdb *db, block *b) {
    if (--b->refs == 0) block_free(b);
}

/* Keeps the blocks' count and newest time current after the list changed. Under db->mu. */
static void blocks_changed(tsdb *db) {
    db->st.blocks = db->nblocks;
    db->blocks_maxt = INT64_MIN;
    for (size_t i = 0; i < db->nblocks; i++)
        if (db->blocks[i]->maxt > db->blocks_maxt) db->blocks_maxt = db->blocks[i]->maxt;
}

static int db_add_block(tsdb *db, block *b) {
    block **nb = realloc(db->blocks, (db->nblocks + 1) * sizeof *nb);
    if (!nb) return -1;
    db->blocks = nb;
    b->refs = 1;
    db->blocks[db->nblocks++] = b;
    qsort(db->blocks, db->nblocks, sizeof *db->blocks, cmp_block);
    blocks_changed(db);
    return 0;
}

/* Removes b from the list and deletes its directory once unused. Under db->mu. */
static void db_drop_block(tsdb *db, block *b) {
    for (size_t i = 0; i < db->nblocks; i++)
        if (db->blocks[i] == b) {
            memmove(db->blocks + i, db->blocks + i + 1, (db->nblocks - i - 1) * sizeof *db->blocks);
            db->nblocks--;
            break;
        }
    blocks_changed(db);
    b->doomed = 1;
    db_block_unref(db, b);
}

/* Moves the block directory `path` (named id) to <dir>/quarantine/<id> (a suffix keeps an
 * earlier quarantined copy). Never deletes anything. 0 or -1 with errno. */
static int move_to_quarantine(tsdb *db, const char *path, const char *id, char *dst, size_t dstlen) {
    char q[4200];
    snprintf(q, sizeof q, "%s/quarantine", db->dir);
    if (mkdir(q, 0755) != 0 && errno != EEXIST) return -1;
    snprintf(dst, dstlen, "%s/%s", q, id);
    struct stat st;
    for (int k = 1; k < 1000 && lstat(dst, &st) == 0; k++)
        snprintf(dst, dstlen, "%s/%s.%d", q, id, k);
    if (rename(path, dst) != 0) return -1;
    int fd = open(q, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd)) { /* best effort */
        }
        close(fd);
    }
    return 0;
}

static void count_quarantine(tsdb *db) { /* under db->mu */
    db->st.quarantined++;
    if (db->self_on) tr_counter_add(db->self.quarantined, 1);
}

/* Quarantines the block directory `path` that failed to open (at load). */
static void quarantine_path(tsdb *db, const char *path, const char *id, const char *why) {
    char dst[4300], q1[600], q2[4400];
    if (move_to_quarantine(db, path, id, dst, sizeof dst) != 0) {
        int e = errno;
        TR_ERROR("damaged block: cannot move it to quarantine; it is left in place and not loaded",
                 "block=%s error=%s errno=%d reason=%s", id, tr_log_quote(q1, sizeof q1, why), e,
                 tr_log_quote(q2, sizeof q2, strerror(e)));
        tr_storage_error("metrics", "quarantine");
        return;
    }
    pthread_mutex_lock(&db->mu);
    count_quarantine(db);
    pthread_mutex_unlock(&db->mu);
    TR_ERROR("damaged block quarantined", "block=%s error=%s moved_to=%s", id,
             tr_log_quote(q1, sizeof q1, why), tr_log_quote(q2, sizeof q2, dst));
}

void db_quarantine_block(tsdb *db, block *b, const char *why) {
    pthread_mutex_lock(&db->mu);
    int listed = 0;
    for (size_t i = 0; i < db->nblocks; i++)
        if (db->blocks[i] == b) {
            memmove(db->blocks + i, db->blocks + i + 1, (db->nblocks - i - 1) * sizeof *db->blocks);
            db->nblocks--;
            listed = 1;
            break;
        }
    if (!listed || b->quarantined) {
        pthread_mutex_unlock(&db->mu);
        return;
    }
    b->quarantined = 1;
    blocks_changed(db);
    char dst[4300], q1[600], q2[4400];
    /* the open chunks descriptor stays valid across the rename: queries that hold the block
     * finish (and skip its damaged frames) */
    if (move_to_quarantine(db, b->dir, b->id, dst, sizeof dst) != 0) {
        int e = errno;
        TR_ERROR("damaged block: cannot move it to quarantine; it is no longer read",
                 "block=%s error=%s errno=%d", b->id, tr_log_quote(q1, sizeof q1, why), e);
        tr_storage_error("metrics", "quarantine");
    } else {
        count_quarantine(db);
        TR_ERROR("damaged block quarantined", "block=%s error=%s moved_to=%s", b->id,
                 tr_log_quote(q1, sizeof q1, why), tr_log_quote(q2, sizeof q2, dst));
    }
    db_block_unref(db, b);
    pthread_mutex_unlock(&db->mu);
}

static int load_blocks(tsdb *db, char *err, size_t errlen) {
    DIR *d = opendir(db->blocks_dir);
    if (!d) {
        snprintf(err, errlen, "cannot open %s: %s", db->blocks_dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    char p[4200];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", db->blocks_dir, e->d_name);
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
            /* an interrupted write or compaction: never complete, remove it */
            char f[4300];
            const char *files[] = {"chunks", "index", "meta.json"};
            for (int i = 0; i < 3; i++) {
                snprintf(f, sizeof f, "%s/%s", p, files[i]);
                unlink(f);
            }
            rmdir(p);
            continue;
        }
        char berr[512];
        int damaged;
        block *b = block_open(p, &damaged, berr, sizeof berr);
        if (!b) {
            char q[600];
            if (damaged)
                quarantine_path(db, p, e->d_name, berr);
            else
                TR_WARN("skipping unreadable block", "error=%s", tr_log_quote(q, sizeof q, berr));
            continue;
        }
        if (b->version < 2)
            TR_INFO("block in format 1 (no chunk checksums): read as before, rewritten with checksums when "
                    "compacted",
                    "block=%s", b->id);
        if (db_add_block(db, b)) {
            block_free(b);
            closedir(d);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    closedir(d);
    return 0;
}

/* Opens a block this process has just written; one that does not verify is quarantined. */
static block *open_new_block(tsdb *db, const char *id, char *err, size_t errlen) {
    char p[4200];
    int damaged;
    snprintf(p, sizeof p, "%s/%s", db->blocks_dir, id);
    block *b = block_open(p, &damaged, err, errlen);
    if (!b && damaged) quarantine_path(db, p, id, err);
    return b;
}

/* ---- cutting the head into a block ---- */

typedef struct cutent {
    series *s;
    hchunk **chunks; /* the first nchunks sealed chunks at snapshot time */
    uint32_t nchunks;
    uint16_t open_n;
    uint8_t *open_copy;
    size_t open_len;
    int64_t open_mint, open_maxt;
    sample *ooo;
    uint32_t nooo;
} cutent;

/* Floor division: the block range that holds t (also for negative times). */
static int64_t range_of(int64_t t, int64_t r) { return t >= 0 ? t / r : -((-(t + 1)) / r) - 1; }

static int cmp_wseries(const void *a, const void *b) {
    const wseries *x = a, *y = b;
    return labels_cmp(x->lbl, x->nl, y->lbl, y->nl);
}

static void merge_dedupe(sample **a, size_t *na, const sample *b, size_t nb) {
    if (!nb) return;
    sample *m = malloc((*na + nb) * sizeof *m);
    if (!m) return;
    size_t i = 0, j = 0, o = 0;
    while (i < *na || j < nb) {
        if (j >= nb || (i < *na && (*a)[i].t <= b[j].t)) {
            if (j < nb && (*a)[i].t == b[j].t) j++;
            m[o++] = (*a)[i++];
        } else {
            m[o++] = b[j++];
        }
    }
    free(*a);
    *a = m;
    *na = o;
}

static void decode_append(const uint8_t *buf, size_t len, uint16_t n, sample **out, size_t *cnt) {
    sample *a = realloc(*out, (*cnt + n + 1) * sizeof *a);
    if (!a) return;
    *out = a;
    xordec d;
    xor_dec_init(&d, buf, len, n);
    int64_t t;
    double v;
    while (xor_dec_next(&d, &t, &v)) {
        a[*cnt].t = t;
        a[(*cnt)++].v = v;
    }
}

static int cmp_wseries_p(const void *a, const void *b) {
    return cmp_wseries(*(wseries *const *)a, *(wseries *const *)b);
}

typedef struct cutiter {
    cutent *ce;
    wseries *ws, **order;
    size_t n, i;
    int64_t lo, hi; /* the block range being written: [lo, hi) */
    sample *buf;
} cutiter;

static int cut_next(void *ctx, wseries *out) {
    cutiter *it = ctx;
    free(it->buf);
    it->buf = NULL;
    if (it->i >= it->n) return 0;
    wseries *w = it->order[it->i++];
    cutent *c = &it->ce[w - it->ws];
    size_t cnt = 0;
    sample *a = NULL;
    for (uint32_t j = 0; j < c->nchunks; j++) {
        hchunk *k = c->chunks[j];
        if (k->maxt >= it->lo && k->mint < it->hi) decode_append(k->data, k->len, k->n, &a, &cnt);
    }
    if (c->open_n && c->open_maxt >= it->lo && c->open_mint < it->hi)
        decode_append(c->open_copy, c->open_len, c->open_n, &a, &cnt);
    merge_dedupe(&a, &cnt, c->ooo, c->nooo);
    size_t o = 0;
    for (size_t x = 0; a && x < cnt; x++)
        if (a[x].t >= it->lo && a[x].t < it->hi) a[o++] = a[x];
    it->buf = a;
    out->lbl = w->lbl;
    out->nl = w->nl;
    out->s = a;
    out->n = a ? o : 0;
    return 1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void push_range(int64_t **v, size_t *n, size_t *cap, int64_t k) {
    if (*n && (*v)[*n - 1] == k) return;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        int64_t *nv = realloc(*v, c * sizeof *nv);
        if (!nv) return;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = k;
}

/* The block ranges (as range_of indexes) that the snapshotted data touches, sorted, distinct. */
static int64_t *cut_ranges(const cutent *ce, size_t n, int64_t r, size_t *out_n) {
    int64_t *v = NULL;
    size_t nv = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        const cutent *c = &ce[i];
        for (uint32_t j = 0; j <= c->nchunks; j++) {
            const uint8_t *buf = j < c->nchunks ? c->chunks[j]->data : c->open_copy;
            size_t len = j < c->nchunks ? c->chunks[j]->len : c->open_len;
            uint16_t cnt = j < c->nchunks ? c->chunks[j]->n : c->open_n;
            int64_t lo = j < c->nchunks ? c->chunks[j]->mint : c->open_mint;
            int64_t hi = j < c->nchunks ? c->chunks[j]->maxt : c->open_maxt;
            if (!cnt) continue;
            if (range_of(hi, r) - range_of(lo, r) < 4) {
                for (int64_t k = range_of(lo, r); k <= range_of(hi, r); k++)
                    push_range(&v, &nv, &cap, k);
                continue;
            }
            /* a chunk with gaps of days (sparse or odd timestamps): the ranges of its
             * samples, not every range in between */
            xordec d;
            xor_dec_init(&d, buf, len, cnt);
            int64_t t;
            double x;
            while (xor_dec_next(&d, &t, &x))
                push_range(&v, &nv, &cap, range_of(t, r));
        }
        for (uint32_t j = 0; j < c->nooo; j++)
            push_range(&v, &nv, &cap, range_of(c->ooo[j].t, r));
    }
    if (nv > 1) qsort(v, nv, sizeof *v, cmp_i64);
    size_t o = 0;
    for (size_t i = 0; i < nv; i++)
        if (!o || v[o - 1] != v[i]) v[o++] = v[i];
    *out_n = o;
    return v;
}

/* Moves head data older than `before` (everything when INT64_MAX) into a new block. Holds
 * db->bmu throughout; db->mu only to snapshot and to swap, so ingest goes on meanwhile. */
int db_cut(tsdb *db, int64_t before, char *err, size_t errlen) {
    int rc = 0;
    wal_ckpt *ck = NULL;
    char werr[256];
    pthread_mutex_lock(&db->bmu);
    pthread_mutex_lock(&db->mu);
    head *h = &db->h;
    size_t n = 0;
    cutent *ce = calloc(h->nslots + 1, sizeof *ce);
    wseries *ws = calloc(h->nslots + 1, sizeof *ws);
    if (!ce || !ws) {
        pthread_mutex_unlock(&db->mu);
        snprintf(err, errlen, "out of memory");
        rc = -1;
        goto out;
    }
    for (uint32_t i = 0; i < h->nslots; i++) {
        series *s = h->slots[i];
        if (!s) continue;
        cutent c = {.s = s};
        while (c.nchunks < s->nchunks && s->chunks[c.nchunks]->maxt < before)
            c.nchunks++;
        /* the open chunk too when it lies wholly before the cut: a series that stopped
         * receiving samples must not keep its data (and itself) in the head for ever */
        if (s->open.n && (before == INT64_MAX || s->open.t < before)) {
            c.open_n = s->open.n;
            c.open_mint = s->open.mint;
            c.open_maxt = s->open.t;
            c.open_len = (size_t)((s->open.bits + 7) / 8);
            c.open_copy = malloc(c.open_len ? c.open_len : 1);
            if (c.open_copy)
                memcpy(c.open_copy, s->open.buf, c.open_len);
            else
                c.open_n = 0;
        }
        uint32_t k = 0;
        while (k < s->nooo && s->ooo[k].t < before)
            k++;
        if (k) {
            c.ooo = malloc(k * sizeof *c.ooo);
            if (c.ooo) {
                memcpy(c.ooo, s->ooo, k * sizeof *c.ooo);
                c.nooo = k;
            }
        }
        if (!c.nchunks && !c.open_n && !c.nooo) continue;
        if (c.nchunks) {
            c.chunks = malloc(c.nchunks * sizeof *c.chunks);
            if (!c.chunks) {
                free(c.open_copy);
                free(c.ooo);
                continue;
            }
            memcpy(c.chunks, s->chunks, c.nchunks * sizeof *c.chunks);
        }
        ws[n].lbl = malloc(s->nl * sizeof *ws[n].lbl);
        if (!ws[n].lbl) {
            free(c.chunks);
            free(c.open_copy);
            free(c.ooo);
            continue;
        }
        series_labels(s, ws[n].lbl);
        ws[n].nl = s->nl;
        ce[n++] = c;
    }
    pthread_mutex_unlock(&db->mu);

    /* one block per block range the data touches (aligned, as Prometheus cuts, so that a
     * backfill never makes one block spanning days); each is written in label order, each
     * series decoded only when the writer asks for it, outside the lock (sealed chunks are
     * immutable and only this thread frees them) */
    char id[64];
    block **nbs = NULL;
    size_t nnb = 0;
    if (n) {
        int64_t r = db->o.block_range_ms;
        size_t nr = 0;
        int64_t *ranges = cut_ranges(ce, n, r, &nr);
        wseries **order = malloc(n * sizeof *order);
        nbs = calloc(nr + 1, sizeof *nbs);
        if (!order || !ranges || !nbs) {
            free(order);
            free(ranges);
            snprintf(err, errlen, "out of memory");
            rc = -1;
            goto release;
        }
        for (size_t i = 0; i < n; i++)
            order[i] = &ws[i];
        qsort(order, n, sizeof *order, cmp_wseries_p);
        for (size_t k = 0; k < nr && rc == 0; k++) {
            int64_t lo = ranges[k] * r;
            cutiter it = {.ce = ce, .ws = ws, .order = order, .n = n, .lo = lo, .hi = lo + r};
            int w = block_write(db->blocks_dir, cut_next, &it, 0, id, sizeof id, err, errlen);
            free(it.buf);
            if (w < 0) {
                rc = -1;
                tr_storage_error("metrics", "block_write");
            } else if (w == 0) {
                nbs[nnb] = open_new_block(db, id, err, errlen);
                if (nbs[nnb])
                    nnb++;
                else
                    rc = -1;
            }
        }
        free(order);
        free(ranges);
        if (rc != 0) {
            /* the head keeps everything: the blocks of this cut go (they were never listed) */
            for (size_t k = 0; k < nnb; k++) {
                nbs[k]->doomed = 1;
                block_free(nbs[k]);
            }
            nnb = 0;
        }
    }
release:
    pthread_rwlock_wrlock(&db->chunk_rw); /* no query is decoding head chunks now */
    pthread_mutex_lock(&db->mu);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            cutent *c = &ce[i];
            series *s = c->s;
            for (uint32_t j = 0; j < c->nchunks; j++)
                free(s->chunks[j]);
            if (c->nchunks)
                memmove(s->chunks, s->chunks + c->nchunks, (s->nchunks - c->nchunks) * sizeof *s->chunks);
            s->nchunks -= c->nchunks;
            h->nchunks -= c->nchunks;
            if (c->open_n && s->open.n == c->open_n) {
                uint8_t *buf = s->open.buf;
                size_t cap = s->open.cap;
                if (buf) memset(buf, 0, cap);
                memset(&s->open, 0, sizeof s->open);
                s->open.buf = buf;
                s->open.cap = cap;
            }
            if (c->nooo) {
                /* drop the snapshotted OOO samples; ones added meanwhile stay */
                uint32_t o = 0, j = 0;
                for (uint32_t k = 0; k < s->nooo; k++) {
                    while (j < c->nooo && c->ooo[j].t < s->ooo[k].t)
                        j++;
                    if (j < c->nooo && c->ooo[j].t == s->ooo[k].t) continue;
                    s->ooo[o++] = s->ooo[k];
                }
                s->nooo = o;
            }
        }
        head_remove_all_empty(db);
        for (size_t k = 0; k < nnb; k++)
            if (db_add_block(db, nbs[k]) == 0) {
                db->st.blocks_cut++;
                nbs[k] = NULL;
            }
        ck = wal_checkpoint_begin(db, werr, sizeof werr);
        if (!ck) {
            TR_ERROR("WAL checkpoint failed", "error=\"%s\"", werr);
            tr_storage_error("metrics", "wal_checkpoint");
        }
    }
    pthread_mutex_unlock(&db->mu);
    pthread_rwlock_unlock(&db->chunk_rw);
    if (ck && wal_checkpoint_finish(db, ck, werr, sizeof werr) != 0)
        TR_ERROR("WAL checkpoint failed", "error=\"%s\"", werr);
    wal_checkpoint_free(ck);
    for (size_t k = 0; k < nnb; k++)
        if (nbs[k])
            block_free(nbs[k]); /* could not be listed (out of memory): its files stay for the next start */
    free(nbs);
out:
    for (size_t i = 0; ce && i < n; i++) {
        free(ce[i].chunks);
        free(ce[i].open_copy);
        free(ce[i].ooo);
        free(ws[i].lbl);
        free(ws[i].s);
    }
    free(ce);
    free(ws);
    pthread_mutex_unlock(&db->bmu);
    return rc;
}

int tsdb_flush(tsdb *db, char *err, size_t errlen) {
    if (!tsdb_ready(db)) {
        snprintf(err, errlen, "the metrics store is replaying its write-ahead log; retry");
        return -1;
    }
    return db_cut(db, INT64_MAX, err, errlen);
}

/* ---- compaction and retention ---- */

typedef struct mergecur {
    block *b;
    uint64_t i;
} mergecur;

static void blabels(block *b, uint64_t i, tsdb_label *out) {
    bseries *s = &b->series[i];
    for (uint32_t j = 0; j < s->nl; j++) {
        out[j].name = b->syms[s->lbl[2 * j]];
        out[j].value = b->syms[s->lbl[2 * j + 1]];
    }
}

typedef struct mergeiter {
    mergecur *cur;
    size_t k;
    tsdb_label la[512], lb[512];
    sample *buf;
    char *err;
    size_t errlen;
    block *bad; /* the damaged block that stopped the merge */
} mergeiter;

/* The next label set in order over all blocks, with the samples of every block holding it
 * merged (one per timestamp). */
static int merge_next(void *ctx, wseries *out) {
    mergeiter *it = ctx;
    free(it->buf);
    it->buf = NULL;
    int best = -1;
    size_t bnl = 0;
    for (size_t i = 0; i < it->k; i++) {
        mergecur *c = &it->cur[i];
        while (c->i < c->b->nseries && c->b->series[c->i].nl > 512)
            c->i++; /* cannot happen: limit is lower */
        if (c->i >= c->b->nseries) continue;
        bseries *s = &c->b->series[c->i];
        blabels(c->b, c->i, it->lb);
        if (best < 0 || labels_cmp(it->lb, s->nl, it->la, bnl) < 0) {
            best = (int)i;
            bnl = s->nl;
            memcpy(it->la, it->lb, s->nl * sizeof *it->la);
        }
    }
    if (best < 0) return 0;
    size_t n = 0;
    for (size_t i = 0; i < it->k; i++) {
        mergecur *c = &it->cur[i];
        if (c->i >= c->b->nseries) continue;
        bseries *s = &c->b->series[c->i];
        blabels(c->b, c->i, it->lb);
        if (labels_cmp(it->lb, s->nl, it->la, bnl) != 0) continue;
        sample *sm;
        long m = block_series_samples(c->b, (uint32_t)c->i, &sm);
        c->i++;
        if (m == -2) {
            it->bad = c->b;
            snprintf(it->err, it->errlen, "block %s is damaged: %s", c->b->id, c->b->damage);
            return -1;
        }
        if (m < 0) {
            snprintf(it->err, it->errlen, "out of memory reading block %s", c->b->id);
            return -1;
        }
        if (!it->buf) {
            it->buf = sm;
            n = (size_t)m;
        } else {
            merge_dedupe(&it->buf, &n, sm, (size_t)m);
            free(sm);
        }
    }
    out->lbl = it->la;
    out->nl = bnl;
    out->s = it->buf;
    out->n = it->buf ? n : 0;
    return 1;
}

/* Merges blocks[0..k) (all held by a ref) into one block, streaming; returns it or NULL. */
static block *compact_blocks(tsdb *db, block **bs, size_t k, int level, block **bad, char *err,
                             size_t errlen) {
    mergeiter *it = calloc(1, sizeof *it);
    block *nb = NULL;
    if (!it || !(it->cur = calloc(k, sizeof *it->cur))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < k; i++)
        it->cur[i].b = bs[i];
    it->k = k;
    it->err = err;
    it->errlen = errlen;
    char id[64];
    int w = block_write(db->blocks_dir, merge_next, it, level, id, sizeof id, err, errlen);
    if (w == 0)
        nb = open_new_block(db, id, err, errlen);
    else if (w == 1)
        snprintf(err, errlen, "the blocks hold no sample");
    else if (!it->bad)
        tr_storage_error("metrics", "block_write");
    *bad = it->bad;
done:
    if (it) {
        free(it->buf);
        free(it->cur);
        free(it);
    }
    return nb;
}

/* The largest compaction window: 10% of the retention, at most 31 days (as Prometheus). */
static int64_t max_window(tsdb *db) {
    int64_t m = 31LL * 86400000;
    if (db->o.retention_ms > 0 && db->o.retention_ms / 10 < m) m = db->o.retention_ms / 10;
    return m;
}

/* One compaction step, as Prometheus plans it: windows of 3, 9, 27 … block ranges (2h → 6h →
 * 18h → 54h …, up to max_window), aligned; the first window holding >= 2 blocks that lie
 * wholly inside it and end before the newest block and the head begin (or that overlap) is
 * merged into
 * one block. Each step reads one window's blocks, so memory is bounded by a window, and blocks
 * stay bounded in span, so size retention drops a bounded slice. Returns 1 when it did
 * something. */
static int compact_once(tsdb *db) {
    int64_t r = db->o.block_range_ms, maxw = max_window(db);
    pthread_mutex_lock(&db->bmu);
    pthread_mutex_lock(&db->mu);
    /* a window is merged once nothing more will land in it: its blocks all end before the
     * newest block starts (as Prometheus plans) and before the head's data */
    int64_t high = db->h.mint;
    if (db->nblocks && db->blocks[db->nblocks - 1]->mint < high) high = db->blocks[db->nblocks - 1]->mint;
    block *grp[64];
    size_t k = 0;
    int level = 1;
    for (int64_t w = r * 3; w <= maxw && k < 2; w *= 3, level++) {
        for (size_t i = 0; i < db->nblocks && k < 2; i++) {
            block *a = db->blocks[i];
            int64_t win = range_of(a->mint, w);
            if (range_of(a->maxt, w) != win) continue;
            k = 0;
            grp[k++] = a;
            for (size_t j = i + 1; j < db->nblocks && k < 64; j++) {
                block *b = db->blocks[j];
                if (range_of(b->mint, w) == win && range_of(b->maxt, w) == win) grp[k++] = b;
            }
            int64_t gmax = INT64_MIN;
            for (size_t x = 0; x < k; x++)
                if (grp[x]->maxt > gmax) gmax = grp[x]->maxt;
            if (k >= 2 && gmax >= high) {
                int overlap = 0;
                for (size_t x = 1; x < k; x++)
                    if (grp[x]->mint <= grp[x - 1]->maxt) overlap = 1;
                if (!overlap) k = 0;
            }
            if (k < 2) k = 0;
        }
        if (k >= 2) break;
    }
    if (k < 2) {
        pthread_mutex_unlock(&db->mu);
        pthread_mutex_unlock(&db->bmu);
        return 0;
    }
    for (size_t i = 0; i < k; i++)
        grp[i]->refs++;
    pthread_mutex_unlock(&db->mu);
    char err[512];
    block *bad = NULL;
    block *nb = compact_blocks(db, grp, k, level, &bad, err, sizeof err);
    if (bad) {
        /* the merge stopped at a damaged block: set it aside (named in the log) and compact
         * the rest next round, so compaction never fails for ever on one block */
        db_quarantine_block(db, bad, bad->damage);
    }
    pthread_mutex_lock(&db->mu);
    if (nb && db_add_block(db, nb) == 0) {
        for (size_t i = 0; i < k; i++)
            if (!grp[i]->quarantined) db_drop_block(db, grp[i]);
        db->st.compactions++;
        if (db->self_on) tr_counter_add(db->self.compactions, 1);
    } else {
        if (nb) block_free(nb);
        char q[600];
        TR_WARN("compaction failed", "error=%s", tr_log_quote(q, sizeof q, err));
    }
    for (size_t i = 0; i < k; i++)
        db_block_unref(db, grp[i]);
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->bmu);
    return nb != NULL || bad != NULL;
}

/* ---- snapshots: <dir>/snapshots/<UTC time>-<µs>/<block>/{chunks,index,meta.json} ---- */

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The snapshots' names, oldest first (names start with the UTC time). Free each and *out. */
static size_t snap_names(const tsdb *db, char ***out) {
    char sdir[4200];
    snprintf(sdir, sizeof sdir, "%s/snapshots", db->dir);
    *out = NULL;
    DIR *d = opendir(sdir);
    if (!d) return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nv = realloc(*out, nc * sizeof *nv);
            if (!nv) break;
            *out = nv;
            cap = nc;
        }
        if (!((*out)[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(*out, n, sizeof **out, cmp_name);
    return n;
}

static void snap_names_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Walks one snapshot: removes it (rm) or sums the bytes of the files that only it holds (the
 * live blocks' files are hard links: a file with one link is the snapshot's own). */
static uint64_t snap_walk(const tsdb *db, const char *name, int rm) {
    char sdir[4400], p[4700], f[4800];
    snprintf(sdir, sizeof sdir, "%s/snapshots/%s", db->dir, name);
    DIR *d = opendir(sdir);
    uint64_t own = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", sdir, e->d_name);
        if (rm) {
            block_remove_dir(p);
            continue;
        }
        const char *files[] = {"chunks", "index", "meta.json"};
        for (int i = 0; i < 3; i++) {
            struct stat st;
            snprintf(f, sizeof f, "%s/%s", p, files[i]);
            if (stat(f, &st) == 0 && st.st_nlink == 1) own += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    if (rm) rmdir(sdir);
    return own;
}

/* Removes the oldest snapshots beyond --snapshots-keep. */
static void snap_prune(tsdb *db) {
    char **v;
    size_t n = snap_names(db, &v);
    for (size_t i = 0; db->o.snapshots_keep > 0 && i + (size_t)db->o.snapshots_keep < n; i++) {
        TR_INFO("snapshot pruned", "snapshot=%s keep=%lld", v[i], (long long)db->o.snapshots_keep);
        snap_walk(db, v[i], 1);
    }
    snap_names_free(v, n);
}

/* Drops blocks past the retention (time, then size). Returns the number dropped. */
static int apply_retention(tsdb *db) {
    int dropped = 0;
    pthread_mutex_lock(&db->mu);
    if (db->o.retention_ms > 0) {
        int64_t cutoff = tr_now_ms() - db->o.retention_ms;
        for (size_t i = 0; i < db->nblocks;) {
            if (db->blocks[i]->maxt < cutoff) {
                TR_INFO("retention: dropping block", "block=%s max_time=%lld", db->blocks[i]->id,
                        (long long)db->blocks[i]->maxt);
                db_drop_block(db, db->blocks[i]);
                dropped++;
            } else {
                i++;
            }
        }
    }
    if (db->o.retention_bytes > 0) {
        for (;;) {
            uint64_t total = 0;
            for (size_t i = 0; i < db->nblocks; i++)
                total += db->blocks[i]->bytes;
            /* snapshots count with what only they hold, and go first: they are the older copies */
            char **v;
            size_t ns = snap_names(db, &v);
            for (size_t i = 0; i < ns; i++)
                total += snap_walk(db, v[i], 0);
            if (ns && total > (uint64_t)db->o.retention_bytes) {
                TR_INFO("retention size: dropping oldest snapshot", "snapshot=%s bytes=%llu", v[0],
                        (unsigned long long)total);
                snap_walk(db, v[0], 1);
                snap_names_free(v, ns);
                continue;
            }
            snap_names_free(v, ns);
            if (!db->nblocks || total <= (uint64_t)db->o.retention_bytes) break;
            TR_INFO("retention size: dropping oldest block", "block=%s blocks_bytes=%llu", db->blocks[0]->id,
                    (unsigned long long)total);
            db_drop_block(db, db->blocks[0]);
            dropped++;
        }
    }
    pthread_mutex_unlock(&db->mu);
    return dropped;
}

void tsdb_maintain(tsdb *db) {
    int64_t r = db->o.block_range_ms;
    if (!tsdb_ready(db)) return;
    pthread_mutex_lock(&db->mu);
    int64_t hmin = db->h.mint, hmax = db->h.maxt;
    pthread_mutex_unlock(&db->mu);
    if (hmin != INT64_MAX && hmax - hmin > r + r / 2) {
        int64_t before = ((hmax - r / 2) / r) * r;
        if (before > hmin) {
            char err[512];
            if (db_cut(db, before, err, sizeof err) != 0) {
                char q[600];
                TR_ERROR("cutting the head into a block failed; the head and the WAL keep the data",
                         "error=%s", tr_log_quote(q, sizeof q, err));
            }
        }
    }
    while (!db->bg_stop && compact_once(db)) {
    }
    apply_retention(db);
    int64_t now = tr_now_ms();
    if (now - db->meta_pruned_ms >= META_PRUNE_EVERY_MS) {
        db->meta_pruned_ms = now;
        db_meta_prune(db, META_GRACE_MS);
    }
}

int tsdb_ready(tsdb *db) { return __atomic_load_n(&db->ready, __ATOMIC_ACQUIRE); }

static void *bg_main(void *arg) {
    tsdb *db = arg;
    if (!tsdb_ready(db)) {
        char err[512], q[600];
        if (wal_open(db, err, sizeof err) != 0) {
            /* writes stay refused (503) and nothing is cut or checkpointed: the WAL is left as
             * it is for the next start */
            db->replay_failed = 1;
            TR_ERROR("WAL replay failed: the metrics store stays read-only", "error=%s",
                     tr_log_quote(q, sizeof q, err));
            return NULL;
        }
        if (db->self_on) {
            tr_counter_add(db->self.wal_skipped, db->st.wal_records_skipped);
            tr_counter_add(db->self.wal_dropped, db->st.wal_samples_dropped);
        }
        __atomic_store_n(&db->ready, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_lock(&db->smu);
    while (!db->bg_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_cond_timedwait(&db->bcv, &db->smu, &ts);
        if (db->bg_stop) break;
        pthread_mutex_unlock(&db->smu);
        tsdb_maintain(db);
        pthread_mutex_lock(&db->smu);
    }
    pthread_mutex_unlock(&db->smu);
    return NULL;
}

/* ---- metadata ---- */

static void meta_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\t')
            fputs("\\t", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '\\')
            fputs("\\\\", f);
        else
            fputc(*s, f);
    }
}

static char *meta_unescape(char *s) {
    char *o = s, *r = s;
    for (; *r; r++) {
        if (*r == '\\' && r[1]) {
            r++;
            *o++ = *r == 't' ? '\t' : *r == 'n' ? '\n' : *r;
        } else {
            *o++ = *r;
        }
    }
    *o = 0;
    return s;
}

static metaent *meta_find(tsdb *db, const char *family) {
    uint64_t h = mt_hash(family, strlen(family), 7) | 1;
    uintptr_t idx = (uintptr_t)pm_get(&db->meta, (uintptr_t)h);
    if (idx && strcmp(db->metas[idx - 1]->family, family) == 0) return db->metas[idx - 1];
    if (idx) /* hash collision: slow path */
        for (size_t i = 0; i < db->nmetas; i++)
            if (strcmp(db->metas[i]->family, family) == 0) return db->metas[i];
    return NULL;
}

void tsdb_set_metadata(tsdb *db, const char *family, const char *type, const char *help, const char *unit) {
    if (!family || !*family) return;
    pthread_mutex_lock(&db->metamu);
    metaent *e = meta_find(db, family);
    if (!e) {
        if (db->nmetas == db->capmetas) {
            size_t c = db->capmetas ? db->capmetas * 2 : 64;
            metaent **n = realloc(db->metas, c * sizeof *n); /* pointers: growing copies 8 bytes each */
            if (!n) goto out;
            db->metas = n;
            db->capmetas = c;
        }
        e = calloc(1, sizeof *e);
        if (e) e->family = strdup(family);
        if (!e || !e->family) {
            free(e);
            goto out;
        }
        db->metas[db->nmetas] = e;
        db->nmetas++;
        uint64_t h = mt_hash(family, strlen(family), 7) | 1;
        if (!pm_get(&db->meta, (uintptr_t)h)) pm_put(&db->meta, (uintptr_t)h, (void *)(uintptr_t)db->nmetas);
    }
    e->set_ms = tr_now_ms();
    {
        const char *t = type ? type : "unknown", *hp = help ? help : "", *u = unit ? unit : "";
        for (int i = 0; i < e->n; i++)
            if (!strcmp(e->type[i], t) && !strcmp(e->help[i], hp) && !strcmp(e->unit[i], u)) goto out;
        char *dt = strdup(t), *dh = strdup(hp), *du = strdup(u);
        if (!dt || !dh || !du) {
            free(dt), free(dh), free(du);
            goto out;
        }
        if (e->n == META_ALT) {
            free(e->type[0]), free(e->help[0]), free(e->unit[0]);
            memmove(e->type, e->type + 1, (META_ALT - 1) * sizeof *e->type);
            memmove(e->help, e->help + 1, (META_ALT - 1) * sizeof *e->help);
            memmove(e->unit, e->unit + 1, (META_ALT - 1) * sizeof *e->unit);
            e->n--;
        }
        e->type[e->n] = dt, e->help[e->n] = dh, e->unit[e->n] = du;
        e->n++;
    }
out:
    pthread_mutex_unlock(&db->metamu);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The metric names that carry a family's samples: the family itself and its suffixed series
 * (histogram and summary parts, counters' _total and _created, info's _info). */
static int family_has_series(const char *fam, char **names, size_t n) {
    static const char *const suffixes[] = {"",         "_bucket", "_sum",    "_count", "_total",
                                           "_created", "_info",   "_gcount", "_gsum"};
    char name[1024];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if ((size_t)snprintf(name, sizeof name, "%s%s", fam, suffixes[i]) >= sizeof name) return 1;
        const char *k = name;
        if (bsearch(&k, names, n, sizeof *names, cmp_str)) return 1;
    }
    return 0;
}

size_t db_meta_prune(tsdb *db, int64_t grace_ms) {
    tsdb_querier *q = tsdb_querier_open(db, INT64_MIN, INT64_MAX);
    if (!q) return 0;
    char **names = NULL, err[256];
    size_t n = 0, dropped = 0, keep = 0;
    int rc = tsdb_label_values(q, "__name__", NULL, NULL, 0, &names, &n, err, sizeof err);
    tsdb_querier_close(q);
    if (rc != 0) return 0;
    /* the families as they are now; entries are only appended meanwhile (this thread alone
     * removes them), so the lookups run without holding writers of metadata up */
    pthread_mutex_lock(&db->metamu);
    size_t nf = db->nmetas;
    const char **fams = malloc((nf + 1) * sizeof *fams);
    for (size_t i = 0; fams && i < nf; i++)
        fams[i] = db->metas[i]->family;
    pthread_mutex_unlock(&db->metamu);
    unsigned char *dead = fams ? calloc(nf + 1, 1) : NULL;
    if (!dead) goto out;
    for (size_t i = 0; i < nf; i++)
        dead[i] = !family_has_series(fams[i], names, n);
    int64_t now = tr_now_ms();
    pthread_mutex_lock(&db->metamu);
    for (size_t i = 0; i < db->nmetas; i++) {
        metaent *e = db->metas[i];
        if (i >= nf || !dead[i] || now - e->set_ms < grace_ms) {
            db->metas[keep] = e;
            keep++;
            continue;
        }
        free(e->family);
        for (int a = 0; a < e->n; a++)
            free(e->type[a]), free(e->help[a]), free(e->unit[a]);
        free(e);
        dropped++;
    }
    if (dropped) { /* indices moved: the index is rebuilt */
        db->nmetas = keep;
        pm_free(&db->meta);
        for (size_t i = 0; i < db->nmetas; i++) {
            uint64_t h = mt_hash(db->metas[i]->family, strlen(db->metas[i]->family), 7) | 1;
            if (!pm_get(&db->meta, (uintptr_t)h)) pm_put(&db->meta, (uintptr_t)h, (void *)(uintptr_t)(i + 1));
        }
    }
    pthread_mutex_unlock(&db->metamu);
out:
    free(fams);
    free(dead);
    tsdb_strings_free(names, n);
    if (dropped)
        TR_INFO("metadata of families without series forgotten", "families=%zu kept=%zu", dropped, keep);
    return dropped;
}

typedef struct metacopy {
    char *family, *type, *help, *unit;
    size_t seq;
} metacopy;

static int cmp_metacopy(const void *a, const void *b) {
    const metacopy *x = a, *y = b;
    int c = strcmp(x->family, y->family);
    return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

void tsdb_metadata_foreach(tsdb *db, int (*fn)(void *ctx, const tsdb_metadata *m), void *ctx) {
    pthread_mutex_lock(&db->metamu);
    size_t n = 0;
    for (size_t i = 0; i < db->nmetas; i++)
        n += (size_t)db->metas[i]->n;
    metacopy *copy = calloc(n + 1, sizeof *copy);
    size_t k = 0;
    for (size_t i = 0; copy && i < db->nmetas; i++)
        for (int a = 0; a < db->metas[i]->n; a++, k++) {
            copy[k].family = strdup(db->metas[i]->family);
            copy[k].type = strdup(db->metas[i]->type[a]);
            copy[k].help = strdup(db->metas[i]->help[a]);
            copy[k].unit = strdup(db->metas[i]->unit[a]);
            copy[k].seq = k;
        }
    pthread_mutex_unlock(&db->metamu);
    if (!copy) return;
    qsort(copy, n, sizeof *copy, cmp_metacopy);
    int stop = 0;
    for (size_t i = 0; i < n; i++) {
        if (!stop && copy[i].family && copy[i].type && copy[i].help && copy[i].unit) {
            tsdb_metadata m = {copy[i].family, copy[i].type, copy[i].help, copy[i].unit};
            stop = fn(ctx, &m);
        }
        free(copy[i].family);
        free(copy[i].type);
        free(copy[i].help);
        free(copy[i].unit);
    }
    free(copy);
}

static void meta_save(tsdb *db) {
    char p[4200], tmp[4300];
    snprintf(p, sizeof p, "%s/metadata.tsv", db->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    for (size_t i = 0; i < db->nmetas; i++)
        for (int a = 0; a < db->metas[i]->n; a++) { /* oldest first: a reload keeps the order */
            meta_escape(f, db->metas[i]->family);
            fputc('\t', f);
            meta_escape(f, db->metas[i]->type[a]);
            fputc('\t', f);
            meta_escape(f, db->metas[i]->help[a]);
            fputc('\t', f);
            meta_escape(f, db->metas[i]->unit[a]);
            fputc('\n', f);
        }
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    fclose(f);
    if (ok)
        rename(tmp, p);
    else
        unlink(tmp);
}

static void meta_load(tsdb *db) {
    char p[4200];
    snprintf(p, sizeof p, "%s/metadata.tsv", db->dir);
    FILE *f = fopen(p, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        char *fld[4] = {0};
        char *s = line;
        for (int i = 0; i < 4; i++) {
            fld[i] = s;
            char *tab = s ? strchr(s, '\t') : NULL;
            if (tab)
                *tab = 0, s = tab + 1;
            else
                s = NULL;
        }
        if (!fld[3]) continue;
        tsdb_set_metadata(db, meta_unescape(fld[0]), meta_unescape(fld[1]), meta_unescape(fld[2]),
                          meta_unescape(fld[3]));
    }
    free(line);
    fclose(f);
}

/* ---- self-metrics ---- */

static void self_collect(void *ctx) {
    tsdb *db = ctx;
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    tr_gauge_set(db->self.series, (double)st.head_series);
    tr_gauge_set(db->self.head_chunks, (double)st.head_chunks);
    tr_gauge_set(db->self.blocks, (double)st.blocks);
    tr_gauge_set(db->self.disk_bytes, (double)(st.block_bytes + st.wal_bytes));
    tr_gauge_set(db->self.wal_bytes, (double)st.wal_written);
}

static void self_init(tsdb *db) {
    tsdb_metrics_self *m = &db->self;
    m->series = tr_gauge_new("tricorder_tsdb_head_series", "Active series in the head.", NULL);
    m->head_chunks = tr_gauge_new("tricorder_tsdb_head_chunks", "Sealed chunks in the head.", NULL);
    m->appended =
        tr_counter_new("tricorder_tsdb_samples_appended_total", "Samples stored in the head.", NULL);
    m->ooo_rej = tr_counter_new("tricorder_tsdb_out_of_order_samples_total",
                                "Samples rejected: older than the out-of-order window (or a different value "
                                "for an existing timestamp).",
                                NULL);
    m->ooo_acc = tr_counter_new("tricorder_tsdb_out_of_order_samples_accepted_total",
                                "Out-of-order samples accepted within --ooo-window.", NULL);
    m->too_old = tr_counter_new("tricorder_tsdb_too_old_samples_total",
                                "Samples rejected: older than the retention.", NULL);
    m->duplicates =
        tr_counter_new("tricorder_tsdb_duplicate_samples_total",
                       "Samples rejected: another value at a timestamp the series already has.", NULL);
    m->too_new = tr_counter_new("tricorder_tsdb_too_new_samples_total",
                                "Samples rejected: more than --future-window ahead of the clock.", NULL);
    m->limits = tr_counter_new("tricorder_tsdb_limit_rejections_total",
                               "Samples rejected by a label or series limit.", NULL);
    m->wal_fsyncs =
        tr_counter_new("tricorder_tsdb_wal_fsyncs_total", "WAL fsyncs (one serves many commits).", NULL);
    m->wal_bytes =
        tr_gauge_new("tricorder_tsdb_wal_written_bytes", "Bytes written to the WAL since start.", NULL);
    m->blocks = tr_gauge_new("tricorder_tsdb_blocks", "Blocks on disk.", NULL);
    m->compactions = tr_counter_new("tricorder_tsdb_compactions_total", "Block compactions done.", NULL);
    m->disk_bytes =
        tr_gauge_new("tricorder_tsdb_disk_bytes", "Bytes used on disk by blocks and the WAL.", NULL);
    m->wal_skipped = tr_counter_new(
        "tricorder_tsdb_wal_corrupt_records_total",
        "Damaged WAL records skipped by the replay at start (a copy of the file is kept as .corrupt).", NULL);
    m->wal_dropped = tr_counter_new(
        "tricorder_tsdb_wal_samples_dropped_total",
        "Samples the WAL replay could not restore (damaged records, or series whose definition was damaged).",
        NULL);
    if (tsdb_ready(db)) {
        tr_counter_add(m->wal_skipped, db->st.wal_records_skipped);
        tr_counter_add(m->wal_dropped, db->st.wal_samples_dropped);
    }
    m->quarantined =
        tr_counter_new("tricorder_tsdb_quarantined_blocks_total",
                       "Damaged blocks moved to <data-dir>/metrics/quarantine (never deleted).", NULL);
    pthread_mutex_lock(&db->mu);
    tr_counter_add(m->quarantined, db->st.quarantined); /* those set aside while loading */
    pthread_mutex_unlock(&db->mu);
    tr_selfmon_add_collector(self_collect, db);
    ex_self_init(db);
    db->self_on = 1;
}

/* ---- open / close ---- */

int tsdb_open(const tsdb_options *o, tsdb **out, char *err, size_t errlen) {
    *out = NULL;
    tsdb *db = calloc(1, sizeof *db);
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    db->o = *o;
    if (db->o.max_label_name_len <= 0) db->o.max_label_name_len = 256;
    if (db->o.max_label_value_len <= 0) db->o.max_label_value_len = 4096;
    if (db->o.max_labels <= 0) db->o.max_labels = 64;
    if (db->o.block_range_ms <= 0) db->o.block_range_ms = 2 * 3600 * 1000;
    if (db->o.ooo_window_ms < 0) db->o.ooo_window_ms = 0;
    db->wal_fd = -1;
    pthread_mutex_init(&db->mu, NULL);
    pthread_rwlock_init(&db->chunk_rw, NULL);
    pthread_mutex_init(&db->smu, NULL);
    pthread_mutex_init(&db->bmu, NULL);
    pthread_mutex_init(&db->metamu, NULL);
    pthread_cond_init(&db->scv, NULL);
    pthread_cond_init(&db->bcv, NULL);
    db->done_tail = &db->done_head;
    size_t dl = strlen(o->dir ? o->dir : ".");
    db->dir = strdup(o->dir ? o->dir : ".");
    db->wal_dir = malloc(dl + 8);
    db->blocks_dir = malloc(dl + 8);
    if (!db->dir || !db->wal_dir || !db->blocks_dir || head_init(&db->h)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    db->o.dir = db->dir;
    snprintf(db->wal_dir, dl + 8, "%s/wal", db->dir);
    snprintf(db->blocks_dir, dl + 8, "%s/blocks", db->dir);
    if (tr_mkdir_p(db->dir) || tr_mkdir_p(db->blocks_dir)) {
        snprintf(err, errlen, "cannot create %s: %s", db->blocks_dir, strerror(errno));
        goto fail;
    }
    if (ex_init(&db->ex, o->max_exemplars, err, errlen)) goto fail;
    if (load_blocks(db, err, errlen)) goto fail;
    int async = o->base && o->async_replay;
    if (!async) {
        if (wal_open(db, err, errlen)) goto fail;
        db->ready = 1;
    }
    meta_load(db);
    db->meta_pruned_ms = tr_now_ms(); /* the first look a minute from now */
    if (syncer_start(db)) {
        snprintf(err, errlen, "cannot start the WAL syncer");
        goto fail;
    }
    if (o->base) {
        self_init(db);
        if (pthread_create(&db->bg, NULL, bg_main, db) != 0) {
            snprintf(err, errlen, "cannot start the compaction thread");
            syncer_stop(db);
            goto fail;
        }
    }
    *out = db;
    return 0;
fail:
    wal_close(db);
    for (size_t i = 0; i < db->nblocks; i++)
        block_free(db->blocks[i]);
    free(db->blocks);
    head_free(&db->h);
    ex_free(&db->ex);
    free(db->dir);
    free(db->wal_dir);
    free(db->blocks_dir);
    free(db);
    return -1;
}

void tsdb_close(tsdb *db) {
    if (!db) return;
    if (db->o.base) {
        pthread_mutex_lock(&db->smu);
        db->bg_stop = 1;
        pthread_cond_broadcast(&db->bcv);
        pthread_mutex_unlock(&db->smu);
        pthread_join(db->bg, NULL);
    }
    syncer_stop(db);
    char err[512];
    if (!tsdb_ready(db)) {
        /* a failed replay: the head is partial; the WAL stays as it is */
    } else if (db_cut(db, INT64_MAX, err, sizeof err) != 0) {
        char q[600];
        TR_WARN("flush at close failed; the WAL keeps the data", "error=%s", tr_log_quote(q, sizeof q, err));
    }
    pthread_mutex_lock(&db->mu);
    db->closing = 1;
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_lock(&db->metamu);
    meta_save(db);
    pthread_mutex_unlock(&db->metamu);
    wal_close(db);
    for (size_t i = 0; i < db->nblocks; i++)
        block_free(db->blocks[i]);
    free(db->blocks);
    head_free(&db->h);
    ex_free(&db->ex);
    for (size_t i = 0; i < db->nmetas; i++) {
        free(db->metas[i]->family);
        for (int a = 0; a < db->metas[i]->n; a++) {
            free(db->metas[i]->type[a]);
            free(db->metas[i]->help[a]);
            free(db->metas[i]->unit[a]);
        }
        free(db->metas[i]);
    }
    free(db->metas);
    pm_free(&db->meta);
    pthread_mutex_destroy(&db->mu);
    pthread_rwlock_destroy(&db->chunk_rw);
    pthread_mutex_destroy(&db->smu);
    pthread_mutex_destroy(&db->bmu);
    pthread_mutex_destroy(&db->metamu);
    pthread_cond_destroy(&db->scv);
    pthread_cond_destroy(&db->bcv);
    free(db->dir);
    free(db->wal_dir);
    free(db->blocks_dir);
    free(db);
}

void tsdb_get_stats(tsdb *db, tsdb_stats *st) {
    pthread_mutex_lock(&db->mu);
    *st = db->st;
    st->head_series = db->h.nseries;
    st->head_chunks = db->h.nchunks;
    st->head_mint = db->h.mint;
    st->head_maxt = db->h.maxt;
    uint64_t samples = 0;
    for (uint32_t i = 0; i < db->h.nslots; i++) {
        series *s = db->h.slots[i];
        if (!s) continue;
        for (uint32_t j = 0; j < s->nchunks; j++)
            samples += s->chunks[j]->n;
        samples += s->open.n + s->nooo;
    }
    st->head_samples = samples;
    st->blocks = db->nblocks;
    st->block_bytes = st->block_series = st->block_samples = 0;
    for (size_t i = 0; i < db->nblocks; i++) {
        st->block_bytes += db->blocks[i]->bytes;
        st->block_series += db->blocks[i]->nseries;
        st->block_samples += db->blocks[i]->nsamples;
    }
    pthread_mutex_unlock(&db->mu);
    st->wal_bytes = wal_disk_bytes(db);
}

int tsdb_snapshot(tsdb *db, char *name, size_t namecap, char *err, size_t errlen) {
    if (tsdb_flush(db, err, errlen) != 0) return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(name, namecap, "%04d%02d%02dT%02d%02d%02dZ-%06lx", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned long)(ts.tv_nsec / 1000));
    char sdir[4300], bdir[4400], src[4500], dst[4500];
    snprintf(sdir, sizeof sdir, "%s/snapshots/%s", db->dir, name);
    if (tr_mkdir_p(sdir) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", sdir, strerror(errno));
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock(&db->bmu); /* no compaction removes a block meanwhile */
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->nblocks && rc == 0; i++) {
        snprintf(bdir, sizeof bdir, "%s/%s", sdir, db->blocks[i]->id);
        if (mkdir(bdir, 0755) != 0) rc = -1;
        const char *files[] = {"chunks", "index", "meta.json"};
        for (int f = 0; f < 3 && rc == 0; f++) {
            snprintf(src, sizeof src, "%s/%s", db->blocks[i]->dir, files[f]);
            snprintf(dst, sizeof dst, "%s/%s", bdir, files[f]);
            if (link(src, dst) != 0) rc = -1;
        }
    }
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->bmu);
    if (rc) snprintf(err, errlen, "cannot link block files into %s: %s", sdir, strerror(errno));
    if (rc == 0) snap_prune(db);
    return rc;
}
