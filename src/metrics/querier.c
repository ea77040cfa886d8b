/* The querier: one view over the head and the blocks overlapping a time range. Series from
 * several sources with the same label set are merged (samples merge-sorted, one per
 * timestamp), so overlapping blocks (e.g. after a crash or a flush) read correctly. */
#include "metrics_int.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tsdb_querier {
    tsdb *db;
    int64_t mint, maxt;
    block **blocks;
    size_t nblocks;
    char **warn; /* tsdb_querier_warnings */
    size_t nwarn;
    block **damaged; /* blocks already warned about and quarantined */
    size_t ndamaged;
};

/* A block read through q turned out damaged: its data is left out of the answer, q gets one
 * warning naming it, and the store quarantines it (once). */
static void querier_damaged(tsdb_querier *q, block *b) {
    for (size_t i = 0; i < q->ndamaged; i++)
        if (q->damaged[i] == b) return;
    block **nd = realloc(q->damaged, (q->ndamaged + 1) * sizeof *nd);
    char **nw = realloc(q->warn, (q->nwarn + 1) * sizeof *nw);
    if (nd) q->damaged = nd;
    if (nw) q->warn = nw;
    if (!nd || !nw) return;
    q->damaged[q->ndamaged++] = b;
    char msg[512];
    snprintf(msg, sizeof msg,
             "block %s is damaged (%s): its data is left out of this answer and the block is quarantined",
             b->id, b->damage[0] ? b->damage : "unreadable");
    char *d = strdup(msg);
    if (d) q->warn[q->nwarn++] = d;
    db_quarantine_block(q->db, b, b->damage[0] ? b->damage : "unreadable");
}

size_t tsdb_querier_warnings(const tsdb_querier *q, const char *const **out) {
    *out = (const char *const *)q->warn;
    return q->nwarn;
}

typedef struct rsrc {
    block *b;
    uint32_t id;
} rsrc;

typedef struct rser {
    tsdb_label *lbl;
    size_t nl;
    int in_head; /* where to load samples from later (tsdb_seriesset_load) */
    rsrc *src;
    size_t nsrc;
    sample *s;
    size_t n;
    int64_t *ts;
    double *vs;
} rser;

struct tsdb_seriesset {
    tsdb_querier *q;
    rser *v;
    size_t n, cap;
    char **strs; /* copies of head strings */
    size_t nstrs, capstrs;
};

tsdb_querier *tsdb_querier_open(tsdb *db, int64_t mint, int64_t maxt) {
    tsdb_querier *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->db = db;
    if (db->o.retention_ms > 0) {
        /* nothing older than the retention is answered, whether a block or the head holds it
         * (the head keeps up to a block range of data past it until the next cut) */
        int64_t cutoff = tr_now_ms() - db->o.retention_ms;
        if (mint < cutoff) mint = cutoff;
    }
    q->mint = mint;
    q->maxt = maxt;
    pthread_mutex_lock(&db->mu);
    q->blocks = calloc(db->nblocks + 1, sizeof *q->blocks);
    if (!q->blocks) {
        pthread_mutex_unlock(&db->mu);
        free(q);
        return NULL;
    }
    for (size_t i = 0; i < db->nblocks; i++) {
        block *b = db->blocks[i];
        if (b->maxt < mint || b->mint > maxt) continue;
        b->refs++;
        q->blocks[q->nblocks++] = b;
    }
    pthread_mutex_unlock(&db->mu);
    return q;
}

void tsdb_querier_close(tsdb_querier *q) {
    if (!q) return;
    pthread_mutex_lock(&q->db->mu);
    for (size_t i = 0; i < q->nblocks; i++)
        db_block_unref(q->db, q->blocks[i]);
    pthread_mutex_unlock(&q->db->mu);
    free(q->blocks);
    for (size_t i = 0; i < q->nwarn; i++)
        free(q->warn[i]);
    free(q->warn);
    free(q->damaged);
    free(q);
}

static char *ss_str(tsdb_seriesset *ss, const char *s) {
    if (ss->nstrs == ss->capstrs) {
        size_t c = ss->capstrs ? ss->capstrs * 2 : 64;
        char **n = realloc(ss->strs, c * sizeof *n);
        if (!n) return NULL;
        ss->strs = n;
        ss->capstrs = c;
    }
    char *d = strdup(s);
    if (d) ss->strs[ss->nstrs++] = d;
    return d;
}

/* Room for n entries at once: growing by doubling under the store's mutex would copy the
 * entries again and again while ingestion waits. */
static int ss_reserve(tsdb_seriesset *ss, size_t n) {
    if (n <= ss->cap) return 0;
    rser *v = realloc(ss->v, n * sizeof *v);
    if (!v) return -1;
    ss->v = v;
    ss->cap = n;
    return 0;
}

static rser *ss_push(tsdb_seriesset *ss) {
    if (ss->n == ss->cap) {
        size_t c = ss->cap ? ss->cap * 2 : 64;
        rser *n = realloc(ss->v, c * sizeof *n);
        if (!n) return NULL;
        ss->v = n;
        ss->cap = c;
    }
    rser *r = &ss->v[ss->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static int series_range(const series *s, int64_t *lo, int64_t *hi) {
    *lo = s->nchunks ? s->chunks[0]->mint : s->open.n ? s->open.mint : INT64_MAX;
    if (s->nooo && s->ooo[0].t < *lo) *lo = s->ooo[0].t;
    *hi = s->open.n ? s->open.t : s->nchunks ? s->chunks[s->nchunks - 1]->maxt : INT64_MIN;
    if (s->nooo && s->ooo[s->nooo - 1].t > *hi) *hi = s->ooo[s->nooo - 1].t;
    return *lo <= *hi;
}

static int cmp_rser(const void *a, const void *b) {
    const rser *x = a, *y = b;
    return labels_cmp(x->lbl, x->nl, y->lbl, y->nl);
}

static void filter_range(sample *s, size_t *n, int64_t mint, int64_t maxt) {
    size_t o = 0;
    for (size_t i = 0; i < *n; i++)
        if (s[i].t >= mint && s[i].t <= maxt) s[o++] = s[i];
    *n = o;
}

static void merge_into(rser *a, sample *b, size_t nb) {
    if (!a->s) {
        a->s = b;
        a->n = nb;
        return;
    }
    sample *m = malloc((a->n + nb + 1) * sizeof *m);
    if (!m) {
        free(b);
        return;
    }
    size_t i = 0, j = 0, o = 0;
    while (i < a->n || j < nb) {
        if (j >= nb || (i < a->n && a->s[i].t <= b[j].t)) {
            if (j < nb && a->s[i].t == b[j].t) j++;
            m[o++] = a->s[i++];
        } else {
            m[o++] = b[j++];
        }
    }
    free(a->s);
    free(b);
    a->s = m;
    a->n = o;
}

/* Head series looked at under the store's mutex before it is released once (a large
 * selection must not hold ingestion up). */
#define SELECT_YIELD_EVERY 16384

tsdb_seriesset *tsdb_select(tsdb_querier *q, tsdb_matcher *const *m, size_t nm, int flags, char *err,
                            size_t errlen) {
    tsdb *db = q->db;
    tsdb_seriesset *ss = calloc(1, sizeof *ss);
    idlist ids = {0};
    if (!ss) goto oom;
    ss->q = q;
    hsnap *snaps = NULL;
    size_t nsnaps = 0;
    /* head: labels and snapshots under the lock, decoding after it (ingest goes on) */
    pthread_rwlock_rdlock(&db->chunk_rw);
    pthread_mutex_lock(&db->mu);
    if (head_select(&db->h, m, nm, &ids) != 0) {
        pthread_mutex_unlock(&db->mu);
        pthread_rwlock_unlock(&db->chunk_rw);
        goto oom;
    }
    if ((flags & TSDB_SELECT_SAMPLES) && ids.n) {
        snaps = calloc(ids.n, sizeof *snaps);
        if (!snaps) {
            pthread_mutex_unlock(&db->mu);
            pthread_rwlock_unlock(&db->chunk_rw);
            goto oom;
        }
    }
    /* under mu only what appends change (which series, their ranges and samples); the labels
     * are copied after it, so that ingest does not wait for a large selection: series are
     * freed only under chunk_rw held for writing, and their labels never change */
    series **src = ids.n ? malloc(ids.n * sizeof *src) : NULL;
    if (ids.n && (!src || ss_reserve(ss, ids.n))) {
        free(src);
        pthread_mutex_unlock(&db->mu);
        goto head_oom;
    }
    size_t nsrc = 0;
    for (size_t i = 0; i < ids.n; i++) {
        if (i && i % SELECT_YIELD_EVERY == 0) {
            /* let a waiting append in (the slots array may grow meanwhile: read it anew) */
            pthread_mutex_unlock(&db->mu);
            sched_yield();
            pthread_mutex_lock(&db->mu);
        }
        series *s = db->h.slots[ids.v[i]];
        int64_t lo, hi;
        if (!s || !series_range(s, &lo, &hi) || hi < q->mint || lo > q->maxt) continue;
        rser *r = ss_push(ss);
        if (!r) {
            pthread_mutex_unlock(&db->mu);
            free(src);
            goto head_oom;
        }
        r->in_head = 1;
        src[nsrc++] = s;
        if (snaps) {
            if (head_snapshot(s, q->mint, q->maxt, &snaps[nsnaps])) {
                pthread_mutex_unlock(&db->mu);
                free(src);
                goto head_oom;
            }
            nsnaps++;
        }
    }
    pthread_mutex_unlock(&db->mu);
    for (size_t i = 0; i < nsrc; i++) {
        const series *s = src[i];
        rser *r = &ss->v[i];
        r->lbl = malloc(s->nl * sizeof *r->lbl);
        if (!r->lbl) {
            free(src);
            goto head_oom;
        }
        r->nl = s->nl;
        for (uint16_t j = 0; j < s->nl; j++) {
            r->lbl[j].name = ss_str(ss, s->lbl[2 * j]->s);
            r->lbl[j].value = ss_str(ss, s->lbl[2 * j + 1]->s);
            if (!r->lbl[j].name || !r->lbl[j].value) {
                free(src);
                goto head_oom;
            }
        }
    }
    free(src);
    /* the head series are ss->v[0 .. nsnaps) in order */
    for (size_t i = 0; i < nsnaps; i++) {
        long k = hsnap_samples(&snaps[i], q->mint, q->maxt, &ss->v[i].s);
        ss->v[i].n = k > 0 ? (size_t)k : 0;
    }
    pthread_rwlock_unlock(&db->chunk_rw);
    free(snaps);
    snaps = NULL;
    /* blocks (immutable, held by the querier) */
    for (size_t bi = 0; bi < q->nblocks; bi++) {
        block *b = q->blocks[bi];
        if (block_select(b, m, nm, &ids) != 0) goto oom;
        for (size_t i = 0; i < ids.n; i++) {
            bseries *bs = &b->series[ids.v[i]];
            if (bs->maxt < q->mint || bs->mint > q->maxt) continue;
            rser *r = ss_push(ss);
            if (!r) goto oom;
            r->lbl = malloc((bs->nl + 1) * sizeof *r->lbl);
            if (!r->lbl) {
                ss->n--;
                goto oom;
            }
            r->nl = bs->nl;
            for (uint32_t j = 0; j < bs->nl; j++) {
                r->lbl[j].name = b->syms[bs->lbl[2 * j]];
                r->lbl[j].value = b->syms[bs->lbl[2 * j + 1]];
            }
            r->src = malloc(sizeof *r->src);
            if (!r->src) goto oom;
            r->src->b = b;
            r->src->id = ids.v[i];
            r->nsrc = 1;
            if (flags & TSDB_SELECT_SAMPLES) {
                long k = block_series_samples(b, ids.v[i], &r->s);
                if (k == -2) {
                    querier_damaged(q, b);
                    r->s = NULL;
                    k = 0;
                }
                if (k < 0) goto oom;
                r->n = (size_t)k;
                filter_range(r->s, &r->n, q->mint, q->maxt);
            }
        }
    }
    il_free(&ids);
    /* sort and merge equal label sets */
    if (ss->n > 1) qsort(ss->v, ss->n, sizeof *ss->v, cmp_rser);
    size_t o = 0;
    for (size_t i = 0; i < ss->n; i++) {
        if (o && cmp_rser(&ss->v[o - 1], &ss->v[i]) == 0) {
            rser *a = &ss->v[o - 1], *b = &ss->v[i];
            merge_into(a, b->s, b->n);
            a->in_head |= b->in_head;
            if (b->nsrc) {
                rsrc *ns = realloc(a->src, (a->nsrc + b->nsrc) * sizeof *ns);
                if (!ns) goto oom;
                memcpy(ns + a->nsrc, b->src, b->nsrc * sizeof *ns);
                a->src = ns;
                a->nsrc += b->nsrc;
            }
            free(b->src);
            free(b->lbl);
            continue;
        }
        ss->v[o++] = ss->v[i];
    }
    ss->n = o;
    /* expose as two arrays per series */
    for (size_t i = 0; i < ss->n; i++) {
        rser *r = &ss->v[i];
        if (!r->n) continue;
        r->ts = malloc(r->n * sizeof *r->ts);
        r->vs = malloc(r->n * sizeof *r->vs);
        if (!r->ts || !r->vs) goto oom;
        for (size_t k = 0; k < r->n; k++) {
            r->ts[k] = r->s[k].t;
            r->vs[k] = r->s[k].v;
        }
        free(r->s);
        r->s = NULL;
    }
    return ss;
head_oom:
    for (size_t i = 0; i < nsnaps; i++) {
        sample *x;
        if (hsnap_samples(&snaps[i], 0, -1, &x) >= 0) free(x); /* frees the copies */
    }
    free(snaps);
    pthread_rwlock_unlock(&db->chunk_rw);
oom:
    snprintf(err, errlen, "out of memory");
    il_free(&ids);
    tsdb_seriesset_free(ss);
    return NULL;
}

size_t tsdb_seriesset_len(const tsdb_seriesset *s) { return s->n; }

size_t tsdb_seriesset_labels(const tsdb_seriesset *s, size_t i, const tsdb_label **out) {
    *out = s->v[i].lbl;
    return s->v[i].nl;
}

size_t tsdb_seriesset_samples(const tsdb_seriesset *s, size_t i, const int64_t **t, const double **v) {
    *t = s->v[i].ts;
    *v = s->v[i].vs;
    return s->v[i].ts ? s->v[i].n : 0;
}

int tsdb_seriesset_load(tsdb_seriesset *ss, size_t i, char *err, size_t errlen) {
    tsdb_querier *q = ss->q;
    tsdb *db = q->db;
    rser *r = &ss->v[i];
    tsdb_seriesset_unload(ss, i);
    sample *acc = NULL;
    size_t n = 0;
    if (r->in_head) {
        size_t keylen = labels_key(r->lbl, r->nl, NULL, 0);
        char *key = malloc(keylen ? keylen : 1);
        if (!key) goto oom;
        labels_key(r->lbl, r->nl, key, keylen);
        uint64_t h = mt_hash(key, keylen, 0x12345);
        hsnap snap;
        int have = 0;
        pthread_rwlock_rdlock(&db->chunk_rw);
        pthread_mutex_lock(&db->mu);
        series *s = head_lookup(&db->h, key, keylen, h);
        if (s) have = head_snapshot(s, q->mint, q->maxt, &snap) == 0 ? 1 : -1;
        pthread_mutex_unlock(&db->mu);
        free(key);
        if (have > 0) {
            long k = hsnap_samples(&snap, q->mint, q->maxt, &acc);
            if (k < 0)
                have = -1;
            else
                n = (size_t)k;
        }
        pthread_rwlock_unlock(&db->chunk_rw);
        if (have < 0) goto oom;
    }
    for (size_t k = 0; k < r->nsrc; k++) {
        sample *sm;
        long m = block_series_samples(r->src[k].b, r->src[k].id, &sm);
        if (m == -2) {
            querier_damaged(q, r->src[k].b);
            continue;
        }
        if (m < 0) {
            free(acc);
            goto oom;
        }
        size_t mm = (size_t)m;
        filter_range(sm, &mm, q->mint, q->maxt);
        rser tmp = {.s = acc, .n = n};
        merge_into(&tmp, sm, mm);
        acc = tmp.s;
        n = tmp.n;
    }
    if (n) {
        r->ts = malloc(n * sizeof *r->ts);
        r->vs = malloc(n * sizeof *r->vs);
        if (!r->ts || !r->vs) {
            free(acc);
            tsdb_seriesset_unload(ss, i);
            goto oom;
        }
        for (size_t k = 0; k < n; k++) {
            r->ts[k] = acc[k].t;
            r->vs[k] = acc[k].v;
        }
    }
    r->n = n;
    free(acc);
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

void tsdb_seriesset_unload(tsdb_seriesset *ss, size_t i) {
    rser *r = &ss->v[i];
    free(r->ts);
    free(r->vs);
    r->ts = NULL;
    r->vs = NULL;
    r->n = 0;
}

void tsdb_seriesset_free(tsdb_seriesset *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].lbl);
        free(s->v[i].src);
        free(s->v[i].s);
        free(s->v[i].ts);
        free(s->v[i].vs);
    }
    free(s->v);
    for (size_t i = 0; i < s->nstrs; i++)
        free(s->strs[i]);
    free(s->strs);
    free(s);
}

/* ---- label names and values ---- */

typedef struct strset {
    char **v;
    size_t n, cap;
    int err;
} strset;

static void sset_add(strset *s, const char *x) {
    if (s->err) return;
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 64;
        char **n = realloc(s->v, c * sizeof *n);
        if (!n) {
            s->err = 1;
            return;
        }
        s->v = n;
        s->cap = c;
    }
    char *d = strdup(x);
    if (!d) {
        s->err = 1;
        return;
    }
    s->v[s->n++] = d;
}

static int cmp_pstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void sset_finish(strset *s) {
    if (s->n > 1) qsort(s->v, s->n, sizeof *s->v, cmp_pstr);
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (o && strcmp(s->v[o - 1], s->v[i]) == 0) {
            free(s->v[i]);
            continue;
        }
        s->v[o++] = s->v[i];
    }
    s->n = o;
}

void tsdb_strings_free(char **s, size_t n) {
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

static int collect_val(void *ctx, const char *v, const uint32_t *ids, size_t n) {
    if (n) sset_add(ctx, v);
    return 0;
}

/* name == NULL: label names; else values of name. */
/* Whether the querier's window cuts through the data (the head's or a block's time range
 * reaches outside it): label names and values must then be taken from the series that have
 * samples in the window, not from whole indexes. */
static int window_cuts(tsdb_querier *q) {
    tsdb *db = q->db;
    pthread_mutex_lock(&db->mu);
    int cuts = db->h.nseries && (db->h.mint < q->mint || db->h.maxt > q->maxt);
    pthread_mutex_unlock(&db->mu);
    for (size_t bi = 0; bi < q->nblocks && !cuts; bi++)
        cuts = q->blocks[bi]->mint < q->mint || q->blocks[bi]->maxt > q->maxt;
    return cuts;
}

/* Adds the names (or values of `name`) of the series of one matcher set that have a sample in
 * the querier's window (series precision, finer than Prometheus' block precision). */
static int label_query_exact(tsdb_querier *q, const char *name, tsdb_matcher *const *m, size_t nm, strset *s,
                             char *err, size_t errlen) {
    tsdb_seriesset *ss = tsdb_select(q, m, nm, 0, err, errlen);
    if (!ss) return -1;
    for (size_t i = 0; i < ss->n; i++) {
        const int64_t *ts;
        const double *vs;
        if (tsdb_seriesset_load(ss, i, err, errlen) != 0) {
            tsdb_seriesset_free(ss);
            return -1;
        }
        size_t k = tsdb_seriesset_samples(ss, i, &ts, &vs);
        tsdb_seriesset_unload(ss, i);
        if (!k) continue;
        for (size_t j = 0; j < ss->v[i].nl; j++) {
            if (!name)
                sset_add(s, ss->v[i].lbl[j].name);
            else if (strcmp(ss->v[i].lbl[j].name, name) == 0)
                sset_add(s, ss->v[i].lbl[j].value);
        }
    }
    tsdb_seriesset_free(ss);
    return 0;
}

static int label_query(tsdb_querier *q, const char *name, tsdb_matcher **const *sets, const size_t *set_lens,
                       size_t nsets, char ***out, size_t *n, char *err, size_t errlen) {
    strset s = {0};
    tsdb *db = q->db;
    if (window_cuts(q)) {
        if (nsets == 0) { /* every series: each has a __name__ */
            tsdb_matcher *all = tsdb_matcher_new(TSDB_MATCH_RE, "__name__", ".+", err, errlen);
            if (!all) goto fail;
            int rc = label_query_exact(q, name, &all, 1, &s, err, errlen);
            tsdb_matcher_free(all);
            if (rc) goto fail;
        }
        for (size_t k = 0; k < nsets; k++)
            if (label_query_exact(q, name, sets[k], set_lens[k], &s, err, errlen)) goto fail;
    } else if (nsets == 0) {
        pthread_mutex_lock(&db->mu);
        int head_in = db->h.nseries && !(db->h.maxt < q->mint || db->h.mint > q->maxt);
        if (head_in) {
            if (!name) {
                for (size_t i = 0; i < db->h.names.cap; i++) {
                    ptrmap *vm = db->h.names.vals[i];
                    if (!db->h.names.keys[i] || !vm) continue;
                    int any = 0;
                    for (size_t j = 0; j < vm->cap && !any; j++)
                        if (vm->keys[j] && ((idlist *)vm->vals[j])->n) any = 1;
                    if (any) sset_add(&s, ((sym *)db->h.names.keys[i])->s);
                }
            } else {
                sym *ns = sym_find(&db->h.syms, name, strlen(name));
                ptrmap *vm = ns && ns != (sym *)1 ? pm_get(&db->h.names, (uintptr_t)ns) : NULL;
                for (size_t j = 0; vm && j < vm->cap; j++)
                    if (vm->keys[j] && ((idlist *)vm->vals[j])->n) sset_add(&s, ((sym *)vm->keys[j])->s);
            }
        }
        pthread_mutex_unlock(&db->mu);
        for (size_t bi = 0; bi < q->nblocks; bi++) {
            block *b = q->blocks[bi];
            if (!name) {
                for (uint32_t i = 0; i < b->nnames; i++)
                    sset_add(&s, b->syms[b->names[i].sym]);
            } else {
                ixview ix = {0};
                (void)ix;
                for (uint32_t i = 0; i < b->nnames; i++)
                    if (strcmp(b->syms[b->names[i].sym], name) == 0)
                        for (uint32_t j = 0; j < b->names[i].nvals; j++)
                            collect_val(&s, b->syms[b->names[i].vals[j].sym], NULL, 1);
            }
        }
    } else {
        for (size_t k = 0; k < nsets; k++) {
            tsdb_seriesset *ss = tsdb_select(q, sets[k], set_lens[k], 0, err, errlen);
            if (!ss) goto fail;
            for (size_t i = 0; i < ss->n; i++)
                for (size_t j = 0; j < ss->v[i].nl; j++) {
                    if (!name)
                        sset_add(&s, ss->v[i].lbl[j].name);
                    else if (strcmp(ss->v[i].lbl[j].name, name) == 0)
                        sset_add(&s, ss->v[i].lbl[j].value);
                }
            tsdb_seriesset_free(ss);
        }
    }
    if (s.err) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sset_finish(&s);
    *out = s.v;
    *n = s.n;
    if (!s.v) {
        *out = calloc(1, sizeof(char *));
        if (!*out) goto fail;
    }
    return 0;
fail:
    tsdb_strings_free(s.v, s.n);
    return -1;
}

int tsdb_label_names(tsdb_querier *q, tsdb_matcher **const *sets, const size_t *set_lens, size_t nsets,
                     char ***out, size_t *n, char *err, size_t errlen) {
    return label_query(q, NULL, sets, set_lens, nsets, out, n, err, errlen);
}

int tsdb_label_values(tsdb_querier *q, const char *name, tsdb_matcher **const *sets, const size_t *set_lens,
                      size_t nsets, char ***out, size_t *n, char *err, size_t errlen) {
    return label_query(q, name, sets, set_lens, nsets, out, n, err, errlen);
}

/* ---- cardinality ---- */

typedef struct topk {
    tsdb_card_entry *v;
    size_t n, k;
} topk;

static int ent_before(const tsdb_card_entry *a, const char *name, uint64_t value) {
    if (a->value != value) return a->value > value;
    return strcmp(a->name, name) < 0;
}

static void topk_add(topk *t, const char *name, const char *name2, uint64_t value) {
    char buf[1024];
    if (name2) {
        snprintf(buf, sizeof buf, "%s=%s", name, name2);
        name = buf;
    }
    if (t->n == t->k && ent_before(&t->v[t->n - 1], name, value)) return;
    size_t pos = t->n;
    while (pos > 0 && !ent_before(&t->v[pos - 1], name, value))
        pos--;
    if (t->n == t->k) {
        free(t->v[t->n - 1].name);
        t->n--;
    }
    char *d = strdup(name);
    if (!d) return;
    memmove(t->v + pos + 1, t->v + pos, (t->n - pos) * sizeof *t->v);
    t->v[pos].name = d;
    t->v[pos].value = value;
    t->n++;
}

void tsdb_head_cardinality(tsdb *db, size_t limit, tsdb_card *out) {
    memset(out, 0, sizeof *out);
    if (!limit) return;
    topk a = {calloc(limit + 1, sizeof(tsdb_card_entry)), 0, limit};
    topk b = {calloc(limit + 1, sizeof(tsdb_card_entry)), 0, limit};
    topk c = {calloc(limit + 1, sizeof(tsdb_card_entry)), 0, limit};
    topk d = {calloc(limit + 1, sizeof(tsdb_card_entry)), 0, limit};
    if (!a.v || !b.v || !c.v || !d.v) {
        free(a.v), free(b.v), free(c.v), free(d.v);
        return;
    }
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->h.names.cap; i++) {
        ptrmap *vm = db->h.names.vals[i];
        if (!db->h.names.keys[i] || !vm) continue;
        const char *name = ((sym *)db->h.names.keys[i])->s;
        int is_name = strcmp(name, "__name__") == 0;
        uint64_t nvals = 0, mem = 0;
        for (size_t j = 0; j < vm->cap; j++) {
            if (!vm->keys[j]) continue;
            idlist *l = vm->vals[j];
            if (!l->n) continue;
            sym *v = (sym *)vm->keys[j];
            nvals++;
            mem += (uint64_t)v->len * l->n;
            if (is_name) topk_add(&a, v->s, NULL, l->n);
            topk_add(&d, name, v->s, l->n);
        }
        out->num_label_pairs += nvals;
        if (nvals) {
            topk_add(&b, name, NULL, nvals);
            topk_add(&c, name, NULL, mem);
        }
    }
    for (uint32_t i = 0; i < db->h.nslots; i++)
        if (db->h.slots[i] && db->h.slots[i]->open.n) out->open_chunks++;
    pthread_mutex_unlock(&db->mu);
    out->by_metric = a.v, out->n_by_metric = a.n;
    out->label_value_count = b.v, out->n_label_value_count = b.n;
    out->memory_by_label = c.v, out->n_memory_by_label = c.n;
    out->by_pair = d.v, out->n_by_pair = d.n;
}

void tsdb_card_free(tsdb_card *c) {
    tsdb_card_entry *l[4] = {c->by_metric, c->label_value_count, c->memory_by_label, c->by_pair};
    size_t n[4] = {c->n_by_metric, c->n_label_value_count, c->n_memory_by_label, c->n_by_pair};
    for (int i = 0; i < 4; i++) {
        for (size_t j = 0; j < n[i]; j++)
            free(l[i][j].name);
        free(l[i]);
    }
    memset(c, 0, sizeof *c);
}
