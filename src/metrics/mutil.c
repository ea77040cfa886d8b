/* Small building blocks of the metrics store: hashing, varint byte vectors, a pointer map,
 * interned strings, sorted id lists (postings) and label-name validity. */
#include "metrics_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SIZEOF_INT128__
/* The 128-bit product of a and b, folded to 64 bits: one multiply mixes 16 bytes. */
static inline uint64_t mum(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* In memory only (hash tables of the head, symbols, exemplars), never stored: 16 bytes per
 * multiply, as wyhash does; series keys are ~100 bytes and hashed once per sample. */
uint64_t mt_hash(const void *p, size_t n, uint64_t seed) {
    const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL, k2 = 0x8ebc6af09c88c6e3ULL;
    const uint8_t *b = p;
    uint64_t h = mum(seed ^ k0, (uint64_t)n ^ k1), x = 0, y = 0;
    size_t left = n;
    for (; left > 16; b += 16, left -= 16) {
        memcpy(&x, b, 8);
        memcpy(&y, b + 8, 8);
        h = mum(x ^ k1, y ^ h) ^ h; /* ^ h: a block that zeroes the product keeps the state */
    }
    if (left >= 8) { /* 8 to 16 bytes: two loads, overlapping when fewer than 16 */
        memcpy(&x, b, 8);
        memcpy(&y, b + left - 8, 8);
    } else if (left >= 4) {
        uint32_t u, v;
        memcpy(&u, b, 4);
        memcpy(&v, b + left - 4, 4);
        x = u;
        y = v;
    } else if (left) {
        x = (uint64_t)b[0] << 16 | (uint64_t)b[left >> 1] << 8 | b[left - 1];
    }
    return tr_mix64(mum(x ^ k1, y ^ h) ^ h ^ k2);
}
#else
uint64_t mt_hash(const void *p, size_t n, uint64_t seed) {
    const uint8_t *b = p;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, b, 8);
        h ^= tr_mix64(k);
        h = (h << 27 | h >> 37) * 0x9e3779b97f4a7c15ULL + 0x52dce729;
        b += 8;
        n -= 8;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++)
        k |= (uint64_t)b[i] << (8 * i);
    h ^= tr_mix64(k ^ n);
    return tr_mix64(h);
}
#endif

/* ---- bvec ---- */

void bv_reserve(bvec *b, size_t n) {
    if (b->err || b->len + n <= b->cap) return;
    size_t c = b->cap ? b->cap : 256;
    while (c < b->len + n)
        c *= 2;
    uint8_t *p = realloc(b->p, c);
    if (!p) {
        b->err = 1;
        return;
    }
    b->p = p;
    b->cap = c;
}
void bv_put(bvec *b, const void *p, size_t n) {
    bv_reserve(b, n);
    if (b->err) return;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
}
void bv_u8(bvec *b, uint8_t v) { bv_put(b, &v, 1); }
void bv_uvar(bvec *b, uint64_t v) {
    uint8_t t[10];
    int i = 0;
    while (v >= 0x80) {
        t[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[i++] = (uint8_t)v;
    bv_put(b, t, i);
}
void bv_svar(bvec *b, int64_t v) { bv_uvar(b, zz_enc(v)); }
void bv_u32le(bvec *b, uint32_t v) {
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bv_put(b, t, 4);
}
void bv_u64le(bvec *b, uint64_t v) {
    bv_u32le(b, (uint32_t)v);
    bv_u32le(b, (uint32_t)(v >> 32));
}
void bv_free(bvec *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- rd ---- */

uint64_t rd_uvar(rd *r) {
    uint64_t v = 0;
    for (int s = 0; s < 64; s += 7) {
        if (r->p >= r->end) {
            r->err = 1;
            return 0;
        }
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) return v;
    }
    r->err = 1;
    return 0;
}
int64_t rd_svar(rd *r) { return zz_dec(rd_uvar(r)); }
uint8_t rd_u8(rd *r) {
    if (r->p >= r->end) {
        r->err = 1;
        return 0;
    }
    return *r->p++;
}
const uint8_t *rd_bytes(rd *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) {
        r->err = 1;
        r->p = r->end;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}
uint32_t rd_u32le(rd *r) {
    const uint8_t *p = rd_bytes(r, 4);
    if (!p) return 0;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
uint64_t rd_u64le(rd *r) {
    uint64_t lo = rd_u32le(r);
    return lo | (uint64_t)rd_u32le(r) << 32;
}

/* ---- ptrmap ---- */

static size_t pm_slot(uintptr_t k, size_t cap) { return (size_t)tr_mix64((uint64_t)k) & (cap - 1); }

void *pm_get(const ptrmap *m, uintptr_t k) {
    if (!m->cap) return NULL;
    for (size_t i = pm_slot(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == k) return m->vals[i];
        if (!m->keys[i]) return NULL;
    }
}

static int pm_grow(ptrmap *m) {
    size_t nc = m->cap ? m->cap * 2 : 16;
    uintptr_t *nk = calloc(nc, sizeof *nk);
    void **nv = calloc(nc, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = pm_slot(m->keys[i], nc);
            while (nk[j])
                j = (j + 1) & (nc - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = nc;
    return 0;
}

int pm_put(ptrmap *m, uintptr_t k, void *v) {
    if ((m->n + 1) * 4 > m->cap * 3 && pm_grow(m)) return -1;
    size_t i = pm_slot(k, m->cap);
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) m->n++;
    m->keys[i] = k;
    m->vals[i] = v;
    return 0;
}

void pm_free(ptrmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- symbols ---- */

static sym **sym_slot(const symtab *t, const char *s, size_t len, uint64_t h) {
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        sym *e = t->tab[i];
        if (!e || (e != (sym *)1 && e->hash == h && e->len == len && memcmp(e->s, s, len) == 0))
            return &t->tab[i];
    }
}

sym *sym_find(const symtab *t, const char *s, size_t len) {
    if (!t->cap) return NULL;
    sym *e = *sym_slot(t, s, len, mt_hash(s, len, 1));
    return e;
}

static int sym_rehash(symtab *t) {
    size_t live = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->tab[i] && t->tab[i] != (sym *)1) live++;
    size_t nc = 1024;
    while (nc < (live + 1) * 4)
        nc *= 2;
    sym **nt = calloc(nc, sizeof *nt);
    if (!nt) return -1;
    t->n = live;
    for (size_t i = 0; i < t->cap; i++) {
        sym *e = t->tab[i];
        if (!e || e == (sym *)1) continue;
        size_t j = e->hash & (nc - 1);
        while (nt[j])
            j = (j + 1) & (nc - 1);
        nt[j] = e;
    }
    free(t->tab);
    t->tab = nt;
    t->cap = nc;
    return 0;
}

sym *sym_intern(symtab *t, const char *s, size_t len) {
    /* tombstones (1) count as used so that probing stays short; rehash clears them */
    if ((t->n + 1) * 2 > t->cap && sym_rehash(t)) return NULL;
    uint64_t h = mt_hash(s, len, 1);
    sym **slot = sym_slot(t, s, len, h);
    if (*slot) {
        (*slot)->refs++;
        return *slot;
    }
    sym *e = malloc(sizeof *e + len + 1);
    if (!e) return NULL;
    e->refs = 1;
    e->len = (uint32_t)len;
    e->hash = h;
    memcpy(e->s, s, len);
    e->s[len] = 0;
    *slot = e;
    t->n++;
    t->bytes += sizeof *e + len + 1;
    return e;
}

void sym_ref(sym *s) { s->refs++; }

void sym_unref(symtab *t, sym *s) {
    if (--s->refs) return;
    sym **slot = sym_slot(t, s->s, s->len, s->hash);
    if (*slot == s) *slot = (sym *)1; /* tombstone: t->n keeps counting it until rehash */
    t->bytes -= sizeof *s + s->len + 1;
    free(s);
}

void symtab_free(symtab *t) {
    for (size_t i = 0; i < t->cap; i++)
        if (t->tab[i] && t->tab[i] != (sym *)1) free(t->tab[i]);
    free(t->tab);
    memset(t, 0, sizeof *t);
}

/* ---- id lists ---- */

void il_push(idlist *l, uint32_t id) {
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 4;
        uint32_t *v = realloc(l->v, c * sizeof *v);
        if (!v) return; /* OOM: the id is dropped; callers treat lists as best effort */
        l->v = v;
        l->cap = c;
    }
    l->v[l->n++] = id;
}

void il_free(idlist *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Postings lists are strictly increasing ids: the merges below rely on it. */
static inline int il_sorted(const idlist *l) {
    for (size_t i = 1; i < l->n; i++)
        if (l->v[i - 1] >= l->v[i]) return 0;
    return 1;
}

void il_intersect(idlist *a, const idlist *b) {
    assert(il_sorted(a) && il_sorted(b));
    size_t i = 0, j = 0, o = 0;
    while (i < a->n && j < b->n) {
        if (a->v[i] < b->v[j])
            i++;
        else if (a->v[i] > b->v[j])
            j++;
        else {
            a->v[o++] = a->v[i];
            i++;
            j++;
        }
    }
    a->n = o;
}

void il_subtract(idlist *a, const idlist *b) {
    assert(il_sorted(a) && il_sorted(b));
    size_t i = 0, j = 0, o = 0;
    while (i < a->n) {
        while (j < b->n && b->v[j] < a->v[i])
            j++;
        if (j < b->n && b->v[j] == a->v[i]) {
            i++;
            continue;
        }
        a->v[o++] = a->v[i++];
    }
    a->n = o;
}

static int cmp_u32(const void *x, const void *y) {
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

void il_union_many(idlist *out, const uint32_t *const *lists, const size_t *lens, size_t k) {
    out->n = 0;
    size_t total = 0;
    for (size_t i = 0; i < k; i++)
        total += lens[i];
    if (!total) return;
    if (out->cap < total) {
        uint32_t *v = realloc(out->v, total * sizeof *v);
        if (!v) return;
        out->v = v;
        out->cap = total;
    }
    if (k == 1) {
        if (lens[0]) memcpy(out->v, lists[0], lens[0] * sizeof *out->v);
        out->n = lens[0];
        return;
    }
    for (size_t i = 0; i < k; i++) {
        if (lens[i]) memcpy(out->v + out->n, lists[i], lens[i] * sizeof *out->v);
        out->n += lens[i];
    }
    qsort(out->v, out->n, sizeof *out->v, cmp_u32);
    size_t o = 0;
    for (size_t i = 0; i < out->n; i++)
        if (!o || out->v[o - 1] != out->v[i]) out->v[o++] = out->v[i];
    out->n = o;
}

/* ---- names ---- */

int mt_valid_label_name(const char *s, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

int mt_valid_metric_name(const char *s, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}
