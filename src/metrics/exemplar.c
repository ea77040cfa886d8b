/* The exemplar store: a bounded ring of exemplars (value, time, labels such as trace_id and
 * span_id) indexed by series, as Prometheus' circular exemplar storage. Appenders collect
 * exemplars and hand them over at commit, when the series their samples create exist; they
 * ride in the WAL (record WAL_EXEMPLARS) and in checkpoints, so an acknowledged exemplar
 * survives a crash while the ring still holds it. Blocks never hold exemplars. */
#include "metrics_int.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EX_MAX_CAP ((int64_t)1 << 28) /* beyond this the ring alone would need > 10 GiB */
#define EX_MAX_LABEL_BYTES 4096       /* replay sanity bound (128 runes need at most 640) */
#define EX_CKPT_PER_RECORD 4096       /* exemplars per checkpoint record */

/* ---- store ---- */

int ex_init(exstore *x, int64_t cap, char *err, size_t errlen) {
    pthread_mutex_init(&x->mu, NULL);
    if (cap < 0) cap = 0;
    if (cap > EX_MAX_CAP) {
        snprintf(err, errlen, "--max-exemplars %lld is over the limit of %lld", (long long)cap,
                 (long long)EX_MAX_CAP);
        return -1;
    }
    x->cap = (size_t)cap;
    x->st.max = (uint64_t)cap;
    if (!cap) return 0;
    /* calloc: pages are touched only as the ring fills */
    x->ring = calloc(x->cap, sizeof *x->ring);
    x->nbuckets = 256;
    x->buckets = calloc(x->nbuckets, sizeof *x->buckets);
    if (!x->ring || !x->buckets) {
        snprintf(err, errlen, "cannot allocate an exemplar ring of %lld", (long long)cap);
        return -1;
    }
    return 0;
}

void ex_free(exstore *x) {
    for (size_t i = 0; x->ring && i < x->cap; i++)
        free(x->ring[i].lbl);
    for (size_t i = 0; x->buckets && i < x->nbuckets; i++)
        for (exseries *s = x->buckets[i], *nx; s; s = nx) {
            nx = s->hnext;
            free(s);
        }
    free(x->ring);
    free(x->buckets);
    x->ring = NULL;
    x->buckets = NULL;
    x->cap = x->nseries = x->used = 0;
    pthread_mutex_destroy(&x->mu);
}

static exseries *ser_find(const exstore *x, const char *key, size_t keylen, uint64_t hash) {
    for (exseries *s = x->buckets[hash & (x->nbuckets - 1)]; s; s = s->hnext)
        if (s->hash == hash && s->keylen == keylen && memcmp(s->key, key, keylen) == 0) return s;
    return NULL;
}

static void ser_grow(exstore *x) {
    size_t nb = x->nbuckets * 2;
    exseries **b = calloc(nb, sizeof *b);
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < x->nbuckets; i++)
        for (exseries *s = x->buckets[i], *nx; s; s = nx) {
            nx = s->hnext;
            s->hnext = b[s->hash & (nb - 1)];
            b[s->hash & (nb - 1)] = s;
        }
    free(x->buckets);
    x->buckets = b;
    x->nbuckets = nb;
}

static void ser_remove(exstore *x, exseries *s) {
    exseries **pp = &x->buckets[s->hash & (x->nbuckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp) *pp = s->hnext;
    x->nseries--;
    free(s);
}

/* Order of two exemplars of one series: time, then value, then labels (Prometheus accepts a
 * same-time exemplar only when it sorts after the newest). 0 means equal: a duplicate. */
static int ex_cmp(int64_t t1, double v1, const char *l1, size_t n1, int64_t t2, double v2, const char *l2,
                  size_t n2) {
    if (t1 != t2) return t1 < t2 ? -1 : 1;
    if (v1 < v2) return -1;
    if (v1 > v2) return 1;
    if (memcmp(&v1, &v2, sizeof v1) != 0) { /* NaNs, ±0: bit patterns decide */
        uint64_t a, b;
        memcpy(&a, &v1, 8);
        memcpy(&b, &v2, 8);
        return a < b ? -1 : 1;
    }
    size_t m = n1 < n2 ? n1 : n2;
    int c = m ? memcmp(l1, l2, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return n1 < n2 ? -1 : n1 > n2;
}

/* Checks an exemplar against its series' newest: TSDB_OK, TSDB_ERR_DUPLICATE or
 * TSDB_ERR_OUT_OF_ORDER. Under x->mu. */
static int ex_check(const exstore *x, const exseries *s, const char *lbl, size_t lbllen, int64_t t,
                    double v) {
    if (!s) return TSDB_OK;
    const exslot *n = &x->ring[s->newest];
    int c = ex_cmp(t, v, lbl, lbllen, n->t, n->v, n->lbl, n->lbllen);
    return c == 0 ? TSDB_ERR_DUPLICATE : c < 0 ? TSDB_ERR_OUT_OF_ORDER : TSDB_OK;
}

/* Stores one exemplar (validated again), evicting the oldest of the ring when full. Returns
 * TSDB_OK, TSDB_ERR_DUPLICATE, TSDB_ERR_OUT_OF_ORDER or TSDB_ERR_NOMEM. Under x->mu. */
static int ex_add(exstore *x, const char *key, size_t keylen, uint64_t hash, const char *lbl, size_t lbllen,
                  int64_t t, double v) {
    if (!x->cap) return TSDB_OK;
    exseries *s = ser_find(x, key, keylen, hash);
    int rc = ex_check(x, s, lbl, lbllen, t, v);
    if (rc) return rc;
    char *copy = NULL;
    if (lbllen) {
        copy = malloc(lbllen);
        if (!copy) return TSDB_ERR_NOMEM;
        memcpy(copy, lbl, lbllen);
    }
    exslot *sl = &x->ring[x->next];
    if (sl->ser) {
        /* the slot holds the ring's oldest exemplar, hence its series' oldest */
        exseries *o = sl->ser;
        if (sl->next < 0) {
            if (o == s) s = NULL;
            ser_remove(x, o);
        } else {
            o->oldest = sl->next;
        }
        free(sl->lbl);
        memset(sl, 0, sizeof *sl);
        x->used--;
    }
    if (!s) {
        s = malloc(sizeof *s + keylen);
        if (!s) {
            free(copy);
            return TSDB_ERR_NOMEM;
        }
        s->hash = hash;
        s->keylen = (uint32_t)keylen;
        memcpy(s->key, key, keylen);
        s->oldest = s->newest = (int64_t)x->next;
        s->hnext = x->buckets[hash & (x->nbuckets - 1)];
        x->buckets[hash & (x->nbuckets - 1)] = s;
        if (++x->nseries > x->nbuckets) ser_grow(x);
    } else {
        x->ring[s->newest].next = (int64_t)x->next;
        s->newest = (int64_t)x->next;
    }
    sl->ser = s;
    sl->next = -1;
    sl->lbl = copy;
    sl->lbllen = (uint32_t)lbllen;
    sl->t = t;
    sl->v = v;
    x->used++;
    x->next = (x->next + 1) % x->cap;
    return TSDB_OK;
}

/* ---- appender side ---- */

typedef struct exitem {
    char *key; /* series key, then the exemplar labels, in one allocation */
    uint32_t keylen, lbllen;
    uint64_t hash;
    int64_t t;
    double v;
    size_t seq;
    series *s;      /* resolved at encode; NULL: unknown series */
    uint8_t ok;     /* passed the check at encode */
    uint8_t marked; /* its series record is written by this batch */
} exitem;

struct exbatch {
    exitem *e;
    size_t n, cap;
};

static size_t runes(const char *s) {
    size_t r = 0;
    for (; *s; s++)
        r += ((unsigned char)*s & 0xc0) != 0x80;
    return r;
}

static void count_label_reject(tsdb *db) {
    pthread_mutex_lock(&db->ex.mu);
    db->ex.st.label_rejections++;
    pthread_mutex_unlock(&db->ex.mu);
    if (db->ex.m_lbl) tr_counter_add(db->ex.m_lbl, 1);
}

int exb_add(tsdb *db, struct exbatch **bp, const tsdb_label *sorted, size_t n, const tsdb_label *exl,
            size_t en, int64_t t, double v) {
    if (!db->ex.cap) return TSDB_OK;
    /* the exemplar's labels: empty values dropped, sorted by name, within 128 runes (so at
     * most 64 of them) */
    tsdb_label l[64];
    size_t k = 0, r = 0, lbllen = 0;
    int rc = TSDB_OK;
    for (size_t i = 0; i < en && rc == TSDB_OK; i++) {
        if (!exl[i].name || !exl[i].name[0]) {
            rc = TSDB_ERR_LABEL_NAME;
            break;
        }
        if (!exl[i].value || !exl[i].value[0]) continue;
        if (!tr_utf8_valid(exl[i].name, strlen(exl[i].name)) ||
            !tr_utf8_valid(exl[i].value, strlen(exl[i].value))) {
            rc = TSDB_ERR_UTF8;
            break;
        }
        r += runes(exl[i].name) + runes(exl[i].value);
        if (r > EX_MAX_LABEL_RUNES || k == 64) {
            rc = TSDB_ERR_VALUE_TOO_LONG;
            break;
        }
        size_t j = k++;
        while (j > 0 && strcmp(l[j - 1].name, exl[i].name) > 0) {
            l[j] = l[j - 1];
            j--;
        }
        l[j] = exl[i];
        if ((j > 0 && strcmp(l[j - 1].name, l[j].name) == 0) ||
            (j + 1 < k && strcmp(l[j + 1].name, l[j].name) == 0))
            rc = TSDB_ERR_LABEL_NAME;
        lbllen += strlen(exl[i].name) + strlen(exl[i].value) + 2;
    }
    if (rc) {
        count_label_reject(db);
        return rc;
    }
    struct exbatch *b = *bp;
    if (!b) {
        b = *bp = calloc(1, sizeof *b);
        if (!b) return TSDB_ERR_NOMEM;
    }
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        exitem *ne = realloc(b->e, nc * sizeof *ne);
        if (!ne) return TSDB_ERR_NOMEM;
        b->e = ne;
        b->cap = nc;
    }
    size_t keylen = labels_key(sorted, n, NULL, 0);
    if (keylen > UINT32_MAX / 2) return TSDB_ERR_VALUE_TOO_LONG;
    char *mem = malloc(keylen + lbllen + 1);
    if (!mem) return TSDB_ERR_NOMEM;
    labels_key(sorted, n, mem, keylen);
    labels_key(l, k, mem + keylen, lbllen);
    exitem *e = &b->e[b->n];
    memset(e, 0, sizeof *e);
    e->key = mem;
    e->keylen = (uint32_t)keylen;
    e->lbllen = (uint32_t)lbllen;
    e->hash = mt_hash(mem, keylen, 0x12345); /* the head's key hash */
    e->t = t;
    e->v = v;
    e->seq = b->n++;
    return TSDB_OK;
}

int exb_pending(const struct exbatch *b) { return b && b->n; }

void exb_free(struct exbatch *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n; i++)
        free(b->e[i].key);
    free(b->e);
    free(b);
}

/* Batch order: time, value, labels, then series, then arrival; exemplars of one series thus
 * come in the order the ring accepts, and exact repeats are neighbours. */
static int cmp_item(const void *pa, const void *pb) {
    const exitem *a = pa, *b = pb;
    int c = ex_cmp(a->t, a->v, a->key + a->keylen, a->lbllen, b->t, b->v, b->key + b->keylen, b->lbllen);
    if (c) return c;
    if (a->keylen != b->keylen) return a->keylen < b->keylen ? -1 : 1;
    c = memcmp(a->key, b->key, a->keylen);
    if (c) return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void put_series_rec(bvec *b, const series *s) {
    bv_uvar(b, s->ref);
    bv_uvar(b, s->nl);
    for (uint16_t i = 0; i < 2 * s->nl; i++) {
        bv_uvar(b, s->lbl[i]->len);
        bv_put(b, s->lbl[i]->s, s->lbl[i]->len);
    }
}

void exb_encode(tsdb *db, struct exbatch *b, bvec *ser, bvec *pl) {
    if (!exb_pending(b)) return;
    exstore *x = &db->ex;
    qsort(b->e, b->n, sizeof *b->e, cmp_item);
    size_t ok = 0;
    uint64_t ooo = 0, dups = 0, unknown = 0;
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < b->n; i++) {
        exitem *e = &b->e[i];
        e->s = head_lookup(&db->h, e->key, e->keylen, e->hash);
        if (!e->s) {
            unknown++; /* as Prometheus: an exemplar needs its series */
            continue;
        }
        const exitem *p = i > 0 ? &b->e[i - 1] : NULL;
        if (p && p->s == e->s &&
            ex_cmp(e->t, e->v, e->key + e->keylen, e->lbllen, p->t, p->v, p->key + p->keylen, p->lbllen) ==
                0) {
            dups++; /* the same exemplar twice in one batch (sorting made them neighbours) */
            continue;
        }
        int rc =
            ex_check(x, ser_find(x, e->key, e->keylen, e->hash), e->key + e->keylen, e->lbllen, e->t, e->v);
        if (rc == TSDB_ERR_DUPLICATE) {
            dups++;
            continue;
        }
        if (rc == TSDB_ERR_OUT_OF_ORDER) {
            ooo++;
            continue;
        }
        e->ok = 1;
        ok++;
    }
    x->st.out_of_order += ooo;
    x->st.duplicates += dups;
    x->st.unknown_series += unknown;
    pthread_mutex_unlock(&x->mu);
    if (ooo && x->m_ooo) tr_counter_add(x->m_ooo, ooo);
    if (!ok) return;
    bv_uvar(pl, ok);
    int64_t prev = 0;
    for (size_t i = 0; i < b->n; i++) {
        exitem *e = &b->e[i];
        if (!e->ok) continue;
        if (!e->s->logged) {
            e->s->logged = 2; /* in this batch, not yet written (as append.c does) */
            e->marked = 1;
            put_series_rec(ser, e->s);
        }
        uint64_t vb;
        memcpy(&vb, &e->v, 8);
        bv_uvar(pl, e->s->ref);
        bv_svar(pl, (int64_t)((uint64_t)e->t - (uint64_t)prev));
        prev = e->t;
        bv_u64le(pl, vb);
        bv_uvar(pl, e->lbllen);
        bv_put(pl, e->key + e->keylen, e->lbllen);
    }
}

void exb_apply(tsdb *db, struct exbatch *b, int status) {
    if (!exb_pending(b)) return;
    exstore *x = &db->ex;
    uint64_t added = 0;
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < b->n; i++) {
        exitem *e = &b->e[i];
        if (e->marked && e->s->logged == 2) e->s->logged = status ? 0 : 1;
        if (status || !e->ok) continue;
        if (ex_add(x, e->key, e->keylen, e->hash, e->key + e->keylen, e->lbllen, e->t, e->v) == TSDB_OK)
            added++;
    }
    x->st.appended += added;
    pthread_mutex_unlock(&x->mu);
    if (added && x->m_appended) tr_counter_add(x->m_appended, added);
}

/* ---- WAL replay and checkpoints ----
 * Record payload: uvar count, then per exemplar: uvar series ref (0: the series' key follows
 * as uvar length + bytes, for series no longer in the head), svar time delta to the previous
 * exemplar of the record, u64le value bits, uvar label length + labels as "name\0value\0…". */

/* 1 when p[0..n) is a sequence of an even number of NUL-terminated strings. */
static int pairs_ok(const uint8_t *p, size_t n, int allow_empty) {
    if (!n) return allow_empty;
    if (p[n - 1] != 0) return 0;
    size_t strs = 0;
    for (size_t i = 0; i < n; i++)
        strs += p[i] == 0;
    return strs % 2 == 0;
}

void ex_replay(tsdb *db, const uint8_t *pl, size_t len, const ptrmap *refs) {
    exstore *x = &db->ex;
    if (!x->cap) return;
    rd r = {pl, pl + len, 0};
    uint64_t n = rd_uvar(&r);
    int64_t t = 0;
    pthread_mutex_lock(&x->mu);
    for (uint64_t i = 0; i < n && !r.err; i++) {
        uint64_t ref = rd_uvar(&r);
        const char *key = NULL;
        size_t keylen = 0;
        uint64_t hash = 0;
        if (ref == 0) {
            uint64_t kl = rd_uvar(&r);
            const uint8_t *k = kl <= len ? rd_bytes(&r, (size_t)kl) : NULL;
            if (r.err || !k || !pairs_ok(k, (size_t)kl, 0)) break;
            key = (const char *)k;
            keylen = (size_t)kl;
            hash = mt_hash(key, keylen, 0x12345);
        }
        t = (int64_t)((uint64_t)t + (uint64_t)rd_svar(&r));
        uint64_t vb = rd_u64le(&r);
        uint64_t ll = rd_uvar(&r);
        const uint8_t *lbl = ll <= EX_MAX_LABEL_BYTES ? rd_bytes(&r, (size_t)ll) : NULL;
        if (r.err || (ll && !lbl) || ll > EX_MAX_LABEL_BYTES || !pairs_ok(lbl, (size_t)ll, 1)) break;
        if (ref) {
            const series *s = pm_get(refs, (uintptr_t)ref);
            if (!s) continue; /* its series record was lost: nothing to attach it to */
            key = s->key;
            keylen = s->keylen;
            hash = s->hash;
        }
        double v;
        memcpy(&v, &vb, 8);
        ex_add(x, key, keylen, hash, (const char *)lbl, (size_t)ll, t, v);
    }
    pthread_mutex_unlock(&x->mu);
}

static void flush_ckpt(bvec *out, bvec *body, size_t *count) {
    if (!*count) return;
    bvec pl = {0};
    bv_uvar(&pl, *count);
    bv_put(&pl, body->p, body->len);
    if (pl.err || body->err)
        out->err = 1;
    else
        wal_record(out, WAL_EXEMPLARS, &pl);
    bv_free(&pl);
    body->len = 0;
    *count = 0;
}

void ex_checkpoint(tsdb *db, bvec *out) {
    exstore *x = &db->ex;
    if (!x->cap) return;
    bvec body = {0};
    size_t count = 0;
    int64_t prev = 0;
    pthread_mutex_lock(&x->mu);
    /* oldest first: from the slot written next, around the ring */
    for (size_t k = 0; k < x->cap; k++) {
        const exslot *sl = &x->ring[(x->next + k) % x->cap];
        if (!sl->ser) continue;
        const exseries *se = sl->ser;
        const series *s = head_lookup(&db->h, se->key, se->keylen, se->hash);
        if (!count) prev = 0;
        if (s) {
            bv_uvar(&body, s->ref);
        } else {
            bv_uvar(&body, 0);
            bv_uvar(&body, se->keylen);
            bv_put(&body, se->key, se->keylen);
        }
        uint64_t vb;
        memcpy(&vb, &sl->v, 8);
        bv_svar(&body, (int64_t)((uint64_t)sl->t - (uint64_t)prev));
        prev = sl->t;
        bv_u64le(&body, vb);
        bv_uvar(&body, sl->lbllen);
        bv_put(&body, sl->lbl, sl->lbllen);
        if (++count == EX_CKPT_PER_RECORD) flush_ckpt(out, &body, &count);
    }
    pthread_mutex_unlock(&x->mu);
    flush_ckpt(out, &body, &count);
    bv_free(&body);
}

/* ---- queries ---- */

typedef struct exres {
    tsdb_label *lbl;
    size_t nl;
    tsdb_exemplar *ex;
    size_t n;
} exres;

struct tsdb_exemplars {
    exres *s;
    size_t n, cap;
    char **blocks; /* bump allocation: everything a result holds */
    size_t nblocks;
    char *cur;
    size_t left;
};

static void *ra(tsdb_exemplars *r, size_t n) {
    n = (n + 7) & ~(size_t)7;
    if (n > r->left) {
        size_t sz = n > 65536 ? n : 65536;
        char **nb = realloc(r->blocks, (r->nblocks + 1) * sizeof *nb);
        if (!nb) return NULL;
        r->blocks = nb;
        char *blk = malloc(sz);
        if (!blk) return NULL;
        r->blocks[r->nblocks++] = blk;
        r->cur = blk;
        r->left = sz;
    }
    void *p = r->cur;
    r->cur += n;
    r->left -= n;
    return p;
}

/* Labels of a "name\0value\0…" string (copied into the result). Returns the count or -1. */
static long split_pairs(tsdb_exemplars *r, const char *s, size_t len, tsdb_label **out) {
    size_t strs = 0;
    for (size_t i = 0; i < len; i++)
        strs += s[i] == 0;
    *out = NULL;
    if (!strs) return 0;
    char *copy = ra(r, len);
    tsdb_label *l = ra(r, strs / 2 * sizeof *l);
    if (!copy || !l) return -1;
    memcpy(copy, s, len);
    size_t k = 0;
    for (const char *p = copy; p < copy + len && k < strs / 2; k++) {
        l[k].name = p;
        p += strlen(p) + 1;
        l[k].value = p;
        p += strlen(p) + 1;
    }
    *out = l;
    return (long)k;
}

static const char *label_of(const tsdb_label *l, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, name) == 0) return l[i].value;
    return "";
}

static int set_matches(tsdb_matcher *const *m, size_t n, const tsdb_label *l, size_t nl) {
    for (size_t i = 0; i < n; i++)
        if (!tsdb_matcher_matches(m[i], label_of(l, nl, tsdb_matcher_name(m[i])))) return 0;
    return 1;
}

static int cmp_res(const void *a, const void *b) {
    const exres *x = a, *y = b;
    return labels_cmp(x->lbl, x->nl, y->lbl, y->nl);
}

int tsdb_query_exemplars(tsdb *db, tsdb_matcher **const *sets, const size_t *set_lens, size_t nsets,
                         int64_t mint, int64_t maxt, tsdb_exemplars **out, char *err, size_t errlen) {
    exstore *x = &db->ex;
    *out = NULL;
    if (db->o.retention_ms > 0) {
        /* as for samples: nothing older than the retention is answered */
        int64_t cutoff = tr_now_ms() - db->o.retention_ms;
        if (mint < cutoff) mint = cutoff;
    }
    tsdb_exemplars *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    pthread_mutex_lock(&x->mu);
    for (size_t b = 0; x->buckets && b < x->nbuckets; b++)
        for (exseries *se = x->buckets[b]; se; se = se->hnext) {
            if (x->ring[se->oldest].t > maxt || x->ring[se->newest].t < mint) continue;
            /* labels parsed onto the stack first: most series do not match */
            tsdb_label stack[256];
            size_t nl = 0;
            for (const char *p = se->key; p < se->key + se->keylen && nl < 256; nl++) {
                stack[nl].name = p;
                p += strlen(p) + 1;
                stack[nl].value = p;
                p += strlen(p) + 1;
            }
            int match = nsets == 0;
            for (size_t i = 0; i < nsets && !match; i++)
                match = set_matches(sets[i], set_lens[i], stack, nl);
            if (!match) continue;
            size_t cnt = 0;
            for (int64_t i = se->oldest; i >= 0; i = x->ring[i].next)
                if (x->ring[i].t >= mint && x->ring[i].t <= maxt) cnt++;
            if (!cnt) continue;
            if (r->n == r->cap) {
                size_t nc = r->cap ? r->cap * 2 : 16;
                exres *ns = realloc(r->s, nc * sizeof *ns);
                if (!ns) goto oom_locked;
                r->s = ns;
                r->cap = nc;
            }
            exres *o = &r->s[r->n];
            long k = split_pairs(r, se->key, se->keylen, &o->lbl);
            o->ex = ra(r, cnt * sizeof *o->ex);
            if (k < 0 || !o->ex) goto oom_locked;
            o->nl = (size_t)k;
            o->n = 0;
            /* times never decrease along a series' chain */
            for (int64_t i = se->oldest; i >= 0 && x->ring[i].t <= maxt; i = x->ring[i].next) {
                const exslot *sl = &x->ring[i];
                if (sl->t < mint) continue;
                tsdb_exemplar *e = &o->ex[o->n++];
                long m = split_pairs(r, sl->lbl, sl->lbllen, (tsdb_label **)&e->labels);
                if (m < 0) goto oom_locked;
                e->n_labels = (size_t)m;
                e->value = sl->v;
                e->t_ms = sl->t;
            }
            r->n++;
        }
    pthread_mutex_unlock(&x->mu);
    if (r->n > 1) qsort(r->s, r->n, sizeof *r->s, cmp_res);
    *out = r;
    return 0;
oom_locked:
    pthread_mutex_unlock(&x->mu);
oom:
    tsdb_exemplars_free(r);
    snprintf(err, errlen, "out of memory");
    return -1;
}

size_t tsdb_exemplars_len(const tsdb_exemplars *r) { return r ? r->n : 0; }

size_t tsdb_exemplars_series(const tsdb_exemplars *r, size_t i, const tsdb_label **labels) {
    *labels = r->s[i].lbl;
    return r->s[i].nl;
}

size_t tsdb_exemplars_of(const tsdb_exemplars *r, size_t i, const tsdb_exemplar **ex) {
    *ex = r->s[i].ex;
    return r->s[i].n;
}

void tsdb_exemplars_free(tsdb_exemplars *r) {
    if (!r) return;
    for (size_t i = 0; i < r->nblocks; i++)
        free(r->blocks[i]);
    free(r->blocks);
    free(r->s);
    free(r);
}

/* ---- statistics and self-metrics ---- */

void tsdb_get_exemplar_stats(tsdb *db, tsdb_exemplar_stats *st) {
    exstore *x = &db->ex;
    pthread_mutex_lock(&x->mu);
    *st = x->st;
    st->in_storage = x->used;
    st->series = x->nseries;
    st->max = x->cap;
    pthread_mutex_unlock(&x->mu);
}

static void ex_collect(void *ctx) {
    tsdb *db = ctx;
    tsdb_exemplar_stats st;
    tsdb_get_exemplar_stats(db, &st);
    tr_gauge_set(db->ex.m_stored, (double)st.in_storage);
    tr_gauge_set(db->ex.m_series, (double)st.series);
    tr_gauge_set(db->ex.m_max, (double)st.max);
}

void ex_self_init(tsdb *db) {
    exstore *x = &db->ex;
    x->m_stored =
        tr_gauge_new("tricorder_tsdb_exemplar_exemplars_in_storage", "Exemplars in the exemplar ring.", NULL);
    x->m_series = tr_gauge_new("tricorder_tsdb_exemplar_series_with_exemplars_in_storage",
                               "Series with at least one exemplar in the ring.", NULL);
    x->m_max = tr_gauge_new("tricorder_tsdb_exemplar_max_exemplars",
                            "Size of the exemplar ring (--max-exemplars).", NULL);
    x->m_appended = tr_counter_new("tricorder_tsdb_exemplar_exemplars_appended_total",
                                   "Exemplars stored in the ring.", NULL);
    x->m_ooo = tr_counter_new("tricorder_tsdb_exemplar_out_of_order_exemplars_total",
                              "Exemplars refused: older than their series' newest exemplar.", NULL);
    x->m_lbl = tr_counter_new("tricorder_tsdb_exemplar_label_limit_rejections_total",
                              "Exemplars refused: labels over 128 runes, or invalid.", NULL);
    tr_selfmon_add_collector(ex_collect, db);
}
