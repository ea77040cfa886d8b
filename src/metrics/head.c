/* The head: the in-memory part of the store. A hash registry of series (interned label sets),
 * postings from label name/value to series slots, and per series Gorilla chunks plus a small
 * sorted buffer of out-of-order samples. Everything here runs under db->mu. */
#include "metrics_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

size_t labels_key(const tsdb_label *l, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p[2] = {l[i].name, l[i].value};
        for (int k = 0; k < 2; k++) {
            /* copy and measure in one pass; stop copying once past the buffer */
            if (o < cap) {
                char *d = memccpy(buf + o, p[k], 0, cap - o);
                if (d) {
                    o = (size_t)(d - buf);
                    continue;
                }
            }
            o += strlen(p[k]) + 1;
        }
    }
    return o;
}

uint64_t labels_hash(const tsdb_label *l, size_t n) {
    char small[2048];
    size_t len = labels_key(l, n, small, sizeof small);
    if (len <= sizeof small) return mt_hash(small, len, 0x12345);
    char *big = malloc(len);
    if (!big) return 0;
    labels_key(l, n, big, len);
    uint64_t h = mt_hash(big, len, 0x12345);
    free(big);
    return h;
}

int labels_cmp(const tsdb_label *a, size_t na, const tsdb_label *b, size_t nb) {
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a[i].name, b[i].name);
        if (c) return c;
        c = strcmp(a[i].value, b[i].value);
        if (c) return c;
    }
    return na < nb ? -1 : na > nb;
}

void series_labels(const series *s, tsdb_label *out) {
    for (uint16_t i = 0; i < s->nl; i++) {
        out[i].name = s->lbl[2 * i]->s;
        out[i].value = s->lbl[2 * i + 1]->s;
    }
}

int head_init(head *h) {
    memset(h, 0, sizeof *h);
    h->nbuckets = 1024;
    h->buckets = calloc(h->nbuckets, sizeof *h->buckets);
    h->next_ref = 1;
    h->mint = INT64_MAX;
    h->maxt = INT64_MIN;
    return h->buckets ? 0 : -1;
}

static void postings_free(head *h) {
    for (size_t i = 0; i < h->names.cap; i++) {
        ptrmap *vm = h->names.vals[i];
        if (!h->names.keys[i] || !vm) continue;
        for (size_t j = 0; j < vm->cap; j++)
            if (vm->keys[j] && vm->vals[j]) {
                il_free(vm->vals[j]);
                free(vm->vals[j]);
            }
        pm_free(vm);
        free(vm);
    }
    pm_free(&h->names);
}

static void postings_add(head *h, series *s) {
    for (uint16_t i = 0; i < s->nl; i++) {
        sym *n = s->lbl[2 * i], *v = s->lbl[2 * i + 1];
        ptrmap *vm = pm_get(&h->names, (uintptr_t)n);
        if (!vm) {
            vm = calloc(1, sizeof *vm);
            if (!vm || pm_put(&h->names, (uintptr_t)n, vm)) {
                free(vm);
                continue;
            }
        }
        idlist *l = pm_get(vm, (uintptr_t)v);
        if (!l) {
            l = calloc(1, sizeof *l);
            if (!l || pm_put(vm, (uintptr_t)v, l)) {
                free(l);
                continue;
            }
        }
        il_push(l, s->slot);
    }
}

static void series_free(head *h, series *s) {
    for (uint16_t i = 0; i < 2 * s->nl; i++)
        sym_unref(&h->syms, s->lbl[i]);
    free(s->lbl);
    for (uint32_t i = 0; i < s->nchunks; i++)
        free(s->chunks[i]);
    h->nchunks -= s->nchunks;
    free(s->chunks);
    xor_reset(&s->open);
    free(s->ooo);
    free(s);
}

void head_free(head *h) {
    for (uint32_t i = 0; i < h->nslots; i++)
        if (h->slots[i]) series_free(h, h->slots[i]);
    free(h->slots);
    free(h->buckets);
    postings_free(h);
    symtab_free(&h->syms);
    memset(h, 0, sizeof *h);
}

static void buckets_grow(head *h) {
    size_t nb = h->nbuckets * 2;
    series **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < h->nbuckets; i++)
        for (series *s = h->buckets[i], *nx; s; s = nx) {
            nx = s->hnext;
            s->hnext = b[s->hash & (nb - 1)];
            b[s->hash & (nb - 1)] = s;
        }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = nb;
}

static series *series_new(tsdb *db, const tsdb_label *l, size_t n, const char *key, size_t keylen,
                          uint64_t hash, uint64_t ref) {
    head *h = &db->h;
    series *s = calloc(1, sizeof *s + keylen);
    if (!s) return NULL;
    memcpy(s->key, key, keylen);
    s->keylen = (uint32_t)keylen;
    s->lbl = calloc(2 * n + 1, sizeof *s->lbl);
    if (!s->lbl) goto fail;
    for (size_t i = 0; i < n; i++) {
        s->lbl[2 * i] = sym_intern(&h->syms, l[i].name, strlen(l[i].name));
        if (!s->lbl[2 * i]) goto fail;
        s->nl = (uint16_t)(i + 1); /* for the unwind: count pairs whose name is set */
        s->lbl[2 * i + 1] = sym_intern(&h->syms, l[i].value, strlen(l[i].value));
        if (!s->lbl[2 * i + 1]) {
            sym_unref(&h->syms, s->lbl[2 * i]);
            s->nl = (uint16_t)i;
            goto fail;
        }
    }
    s->nl = (uint16_t)n;
    if (h->nslots == h->capslots) {
        uint32_t c = h->capslots ? h->capslots * 2 : 1024;
        series **ns = realloc(h->slots, c * sizeof *ns);
        if (!ns) goto fail;
        h->slots = ns;
        h->capslots = c;
    }
    s->hash = hash;
    s->ref = ref;
    if (ref >= h->next_ref) h->next_ref = ref + 1;
    s->maxt = INT64_MIN;
    s->slot = h->nslots;
    h->slots[h->nslots++] = s;
    s->hnext = h->buckets[hash & (h->nbuckets - 1)];
    h->buckets[hash & (h->nbuckets - 1)] = s;
    h->nseries++;
    postings_add(h, s);
    if (h->nseries > h->nbuckets) buckets_grow(h);
    db->st.series_created++;
    return s;
fail:
    if (s->lbl)
        for (uint16_t i = 0; i < 2 * s->nl; i++)
            sym_unref(&h->syms, s->lbl[i]);
    free(s->lbl);
    free(s);
    return NULL;
}

series *head_lookup(head *h, const char *key, size_t keylen, uint64_t hash) {
    for (series *s = h->buckets[hash & (h->nbuckets - 1)]; s; s = s->hnext)
        if (s->hash == hash && s->keylen == keylen && memcmp(s->key, key, keylen) == 0) return s;
    return NULL;
}

series *head_get_or_create(tsdb *db, const tsdb_label *l, size_t n, const char *key, size_t keylen,
                           uint64_t hash, int *created, int *err) {
    head *h = &db->h;
    *created = 0;
    series *found = head_lookup(h, key, keylen, hash);
    if (found) return found;
    if (db->o.max_series > 0 && (int64_t)h->nseries >= db->o.max_series) {
        *err = TSDB_ERR_MAX_SERIES;
        return NULL;
    }
    series *s = series_new(db, l, n, key, keylen, hash, h->next_ref);
    if (!s) {
        *err = TSDB_ERR_NOMEM;
        return NULL;
    }
    *created = 1;
    return s;
}

series *head_create_with_ref(tsdb *db, const tsdb_label *l, size_t n, uint64_t ref) {
    size_t keylen = labels_key(l, n, NULL, 0);
    char *key = malloc(keylen ? keylen : 1);
    if (!key) return NULL;
    labels_key(l, n, key, keylen);
    uint64_t hash = mt_hash(key, keylen, 0x12345);
    series *s = head_lookup(&db->h, key, keylen, hash);
    if (!s) s = series_new(db, l, n, key, keylen, hash, ref);
    free(key);
    return s;
}

static void seal(head *h, series *s) {
    xorenc *e = &s->open;
    assert(e->n > 0 && e->mint <= e->t);
    size_t len = (size_t)((e->bits + 7) / 8);
    hchunk *c = malloc(sizeof *c + len);
    if (!c) return; /* keep appending to the open chunk: it just grows */
    if (s->nchunks == s->capchunks) {
        uint32_t nc = s->capchunks ? s->capchunks * 2 : 2;
        hchunk **cs = realloc(s->chunks, nc * sizeof *cs);
        if (!cs) {
            free(c);
            return;
        }
        s->chunks = cs;
        s->capchunks = nc;
    }
    c->mint = e->mint;
    c->maxt = e->t;
    c->n = e->n;
    c->len = (uint32_t)len;
    memcpy(c->data, e->buf, len);
    s->chunks[s->nchunks++] = c;
    h->nchunks++;
    /* reuse the encoder's buffer */
    uint8_t *buf = e->buf;
    size_t cap = e->cap;
    memset(buf, 0, cap);
    memset(e, 0, sizeof *e);
    e->buf = buf;
    e->cap = cap;
}

/* Whether the in-order data of s (its open chunk and sealed head chunks) holds a sample at
 * t; sets *v. Only the out-of-order path asks, so the decoding stays off the hot path. */
static int inorder_at(const series *s, int64_t t, double *v) {
    xordec d;
    int64_t st;
    double sv;
    if (s->open.n && t >= s->open.mint && t <= s->open.t) {
        xor_dec_init(&d, s->open.buf, (size_t)((s->open.bits + 7) / 8), s->open.n);
        while (xor_dec_next(&d, &st, &sv) && st <= t)
            if (st == t) return *v = sv, 1;
        return 0;
    }
    for (uint32_t i = s->nchunks; i-- > 0;) {
        const hchunk *c = s->chunks[i];
        if (t > c->maxt) return 0;
        if (t < c->mint) continue;
        xor_dec_init(&d, c->data, c->len, c->n);
        while (xor_dec_next(&d, &st, &sv) && st <= t)
            if (st == t) return *v = sv, 1;
        return 0;
    }
    return 0;
}

int head_conflicts(const series *s, int64_t t, double v) {
    double have;
    if (s->maxt == INT64_MIN || t > s->maxt) return 0;
    if (t == s->maxt) return memcmp(&v, &s->lastv, sizeof v) != 0;
    if (inorder_at(s, t, &have)) return memcmp(&v, &have, sizeof v) != 0;
    uint32_t lo = 0, hi = s->nooo;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (s->ooo[mid].t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nooo && s->ooo[lo].t == t && memcmp(&v, &s->ooo[lo].v, sizeof v) != 0;
}

int head_append(tsdb *db, series *s, int64_t t, double v, int force) {
    head *h = &db->h;
    if (s->maxt == INT64_MIN || t > s->maxt) {
        /* a chunk never spans a block-range boundary (as in Prometheus), so that cuts at those
         * boundaries take whole chunks; floor division keeps negative times right */
        int64_t r = db->o.block_range_ms;
        if (s->open.n >= CHUNK_SAMPLES ||
            (s->open.n && (s->open.mint / r - (s->open.mint % r < 0)) != (t / r - (t % r < 0))))
            seal(h, s);
        xor_append(&s->open, t, v);
        if (xor_oom(&s->open)) {
            xor_reset(&s->open);
            return TSDB_ERR_NOMEM;
        }
        s->maxt = t;
        s->lastv = v;
    } else if (t == s->maxt) {
        if (memcmp(&v, &s->lastv, sizeof v) == 0 || force) return TSDB_OK;
        return TSDB_ERR_DUPLICATE;
    } else {
        if (!force && t < s->maxt - db->o.ooo_window_ms) return TSDB_ERR_OUT_OF_ORDER;
        double have;
        if (inorder_at(s, t, &have)) /* a sample the in-order data has: same value, nothing to do */
            return memcmp(&v, &have, sizeof v) == 0 || force ? TSDB_OK : TSDB_ERR_DUPLICATE;
        /* binary search the insertion point; equal timestamps: keep the first */
        uint32_t lo = 0, hi = s->nooo;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (s->ooo[mid].t < t)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < s->nooo && s->ooo[lo].t == t)
            return memcmp(&v, &s->ooo[lo].v, sizeof v) == 0 || force ? TSDB_OK : TSDB_ERR_DUPLICATE;
        if (s->nooo == s->capooo) {
            uint32_t nc = s->capooo ? s->capooo * 2 : 4;
            sample *ns = realloc(s->ooo, nc * sizeof *ns);
            if (!ns) return TSDB_ERR_NOMEM;
            s->ooo = ns;
            s->capooo = nc;
        }
        memmove(s->ooo + lo + 1, s->ooo + lo, (s->nooo - lo) * sizeof *s->ooo);
        s->ooo[lo].t = t;
        s->ooo[lo].v = v;
        s->nooo++;
        /* the out-of-order buffer stays sorted and free of duplicate times */
        assert(lo == 0 || s->ooo[lo - 1].t < t);
        assert(lo + 1 == s->nooo || s->ooo[lo + 1].t > t);
    }
    if (t < h->mint) h->mint = t;
    if (t > h->maxt) h->maxt = t;
    assert(s->maxt >= t && h->mint <= h->maxt);
    return TSDB_OK;
}

/* Decodes chunk bytes into out (appending). */
static int decode_into(const uint8_t *buf, size_t len, uint16_t n, int64_t mint, int64_t maxt, sample **out,
                       size_t *cnt, size_t *cap) {
    xordec d;
    xor_dec_init(&d, buf, len, n);
    int64_t t;
    double v;
    while (xor_dec_next(&d, &t, &v)) {
        if (t < mint || t > maxt) continue;
        if (*cnt == *cap) {
            size_t nc = *cap ? *cap * 2 : 128;
            sample *ns = realloc(*out, nc * sizeof *ns);
            if (!ns) return -1;
            *out = ns;
            *cap = nc;
        }
        (*out)[*cnt].t = t;
        (*out)[(*cnt)++].v = v;
    }
    return 0;
}

/* ---- selection ---- */

static void hx_all(void *ctx, idlist *out) {
    head *h = ctx;
    out->n = 0;
    for (uint32_t i = 0; i < h->nslots; i++)
        if (h->slots[i]) il_push(out, i);
}

static int hx_values(void *ctx, const char *name,
                     int (*fn)(void *c, const char *v, const uint32_t *ids, size_t n), void *c) {
    head *h = ctx;
    sym *ns = sym_find(&h->syms, name, strlen(name));
    if (!ns || ns == (sym *)1) return 0;
    ptrmap *vm = pm_get(&h->names, (uintptr_t)ns);
    if (!vm) return 0;
    for (size_t i = 0; i < vm->cap; i++) {
        if (!vm->keys[i]) continue;
        idlist *l = vm->vals[i];
        if (l && l->n && fn(c, ((sym *)vm->keys[i])->s, l->v, l->n)) return -1;
    }
    return 0;
}

static void hx_lookup(void *ctx, const char *name, const char *value, const uint32_t **ids, size_t *n) {
    head *h = ctx;
    *ids = NULL;
    *n = 0;
    sym *ns = sym_find(&h->syms, name, strlen(name)), *vs = sym_find(&h->syms, value, strlen(value));
    if (!ns || !vs || ns == (sym *)1 || vs == (sym *)1) return;
    ptrmap *vm = pm_get(&h->names, (uintptr_t)ns);
    idlist *l = vm ? pm_get(vm, (uintptr_t)vs) : NULL;
    if (l) {
        *ids = l->v;
        *n = l->n;
    }
}

int head_select(head *h, tsdb_matcher *const *m, size_t n, idlist *out) {
    ixview ix = {h, hx_all, hx_values, hx_lookup};
    return ix_select(&ix, m, n, out);
}

/* ---- truncation and garbage collection ---- */

static void series_unlink(head *h, series *s) {
    series **pp = &h->buckets[s->hash & (h->nbuckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp) *pp = s->hnext;
    h->slots[s->slot] = NULL;
    h->nseries--;
    series_free(h, s);
}

static void postings_rebuild(head *h) {
    postings_free(h);
    uint32_t o = 0;
    for (uint32_t i = 0; i < h->nslots; i++) {
        series *s = h->slots[i];
        if (!s) continue;
        s->slot = o;
        h->slots[o++] = s;
    }
    h->nslots = o;
    for (uint32_t i = 0; i < h->nslots; i++)
        postings_add(h, h->slots[i]);
}

static int series_empty(const series *s) { return !s->nchunks && !s->open.n && !s->nooo; }

void head_remove_all_empty(tsdb *db) {
    head *h = &db->h;
    int removed = 0;
    for (uint32_t i = 0; i < h->nslots; i++) {
        series *s = h->slots[i];
        if (s && series_empty(s) && !s->pending) {
            series_unlink(h, s);
            removed = 1;
        }
    }
    if (removed) postings_rebuild(h);
    /* recompute the head's time range */
    h->mint = INT64_MAX;
    h->maxt = INT64_MIN;
    for (uint32_t i = 0; i < h->nslots; i++) {
        series *s = h->slots[i];
        if (!s) continue;
        int64_t lo = s->nchunks ? s->chunks[0]->mint : s->open.n ? s->open.mint : INT64_MAX;
        if (s->nooo && s->ooo[0].t < lo) lo = s->ooo[0].t;
        int64_t hi = s->open.n ? s->open.t : s->nchunks ? s->chunks[s->nchunks - 1]->maxt : INT64_MIN;
        if (s->nooo && s->ooo[s->nooo - 1].t > hi) hi = s->ooo[s->nooo - 1].t;
        if (lo < h->mint) h->mint = lo;
        if (hi > h->maxt) h->maxt = hi;
    }
}

/* ---- snapshots for queries ---- */

int head_snapshot(const series *s, int64_t mint, int64_t maxt, hsnap *o) {
    memset(o, 0, sizeof *o);
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->nchunks; i++)
        if (!(s->chunks[i]->maxt < mint || s->chunks[i]->mint > maxt)) k++;
    if (k) {
        o->chunks = malloc(k * sizeof *o->chunks);
        if (!o->chunks) return -1;
        for (uint32_t i = 0; i < s->nchunks; i++)
            if (!(s->chunks[i]->maxt < mint || s->chunks[i]->mint > maxt))
                o->chunks[o->nchunks++] = s->chunks[i];
    }
    if (s->open.n && !(s->open.t < mint || s->open.mint > maxt)) {
        o->open_len = (size_t)((s->open.bits + 7) / 8);
        o->open = malloc(o->open_len ? o->open_len : 1);
        if (!o->open) goto oom;
        memcpy(o->open, s->open.buf, o->open_len);
        o->open_n = s->open.n;
    }
    for (uint32_t i = 0; i < s->nooo; i++)
        if (s->ooo[i].t >= mint && s->ooo[i].t <= maxt) {
            if (!o->ooo) {
                o->ooo = malloc((s->nooo - i) * sizeof *o->ooo);
                if (!o->ooo) goto oom;
            }
            o->ooo[o->nooo++] = s->ooo[i];
        }
    return 0;
oom:
    free(o->chunks);
    free(o->open);
    memset(o, 0, sizeof *o);
    return -1;
}

long hsnap_samples(hsnap *h, int64_t mint, int64_t maxt, sample **out) {
    sample *a = NULL;
    size_t n = 0, cap = 0;
    long rc = 0;
    /* room for every sample of the chunks at once: no regrowth (and copying) while decoding */
    size_t all = h->open_n;
    for (uint32_t i = 0; i < h->nchunks; i++)
        all += h->chunks[i]->n;
    if (all && mint <= maxt) {
        a = malloc(all * sizeof *a);
        if (a) cap = all;
    }
    for (uint32_t i = 0; i < h->nchunks && rc == 0; i++)
        if (decode_into(h->chunks[i]->data, h->chunks[i]->len, h->chunks[i]->n, mint, maxt, &a, &n, &cap))
            rc = -1;
    if (rc == 0 && h->open_n && decode_into(h->open, h->open_len, h->open_n, mint, maxt, &a, &n, &cap))
        rc = -1;
    if (rc == 0 && h->nooo) {
        sample *m = malloc((n + h->nooo) * sizeof *m);
        if (!m) {
            rc = -1;
        } else {
            size_t i = 0, j = 0, o = 0;
            while (i < n || j < h->nooo) {
                if (j >= h->nooo || (i < n && a[i].t <= h->ooo[j].t)) {
                    if (j < h->nooo && a[i].t == h->ooo[j].t) j++; /* in-order copy wins */
                    m[o++] = a[i++];
                } else {
                    m[o++] = h->ooo[j++];
                }
            }
            free(a);
            a = m;
            n = o;
        }
    }
    free(h->chunks);
    free(h->open);
    free(h->ooo);
    memset(h, 0, sizeof *h);
    if (rc) {
        free(a);
        *out = NULL;
        return -1;
    }
    *out = a;
    return (long)n;
}
