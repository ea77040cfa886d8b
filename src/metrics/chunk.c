/* Gorilla chunks (Facebook's "Gorilla" paper, as in Prometheus' XOR chunks): timestamps as
 * delta-of-delta in variable bit buckets, values as the XOR with the previous value. The bit
 * patterns of values are kept exactly (NaN payloads, stale markers, -0.0). */
#include "metrics_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t x;
    memcpy(&x, p, 8);
    return __builtin_bswap64(x);
}
static inline void store_be64(uint8_t *p, uint64_t x) {
    x = __builtin_bswap64(x);
    memcpy(p, &x, 8);
}

/* Grows the buffer so that `need` bytes fit (zeroed). Returns 0, or -1 when out of memory
 * (now or before: cap (size_t)-1 marks it, see xor_oom()). */
static int grow(xorenc *e, size_t need) {
    if (e->cap == (size_t)-1) return -1;
    size_t c = e->cap ? e->cap * 2 : 64;
    while (c < need)
        c *= 2;
    uint8_t *p = realloc(e->buf, c);
    if (!p) {
        e->cap = (size_t)-1;
        return -1;
    }
    memset(p + e->cap, 0, c - e->cap);
    e->buf = p;
    e->cap = c;
    return 0;
}

/* Appends the low `nbits` bits of v, most significant first. The buffer keeps 16 zeroed bytes
 * of slack past the last bit, so whole 64-bit words can be OR'ed in. Inline: several calls
 * per sample. */
static inline void put_bits(xorenc *e, uint64_t v, int nbits) {
    assert(nbits >= 0 && nbits <= 64);
    if (nbits <= 0) return;
    size_t need = (size_t)(e->bits >> 3) + 16;
    if (__builtin_expect(need > e->cap || e->cap == (size_t)-1, 0) && grow(e, need)) return;
    if (nbits < 64) v &= (1ULL << nbits) - 1;
    size_t byte = (size_t)(e->bits >> 3);
    int off = (int)(e->bits & 7);
    if (off + nbits <= 64) {
        store_be64(e->buf + byte, load_be64(e->buf + byte) | (v << (64 - off - nbits)));
    } else {
        int first = 64 - off, rest = nbits - first;
        store_be64(e->buf + byte, load_be64(e->buf + byte) | (v >> rest));
        store_be64(e->buf + byte + 8, load_be64(e->buf + byte + 8) | (v << (64 - rest)));
    }
    e->bits += (uint64_t)nbits;
}

int xor_oom(const xorenc *e) { return e->cap == (size_t)-1; }

void xor_reset(xorenc *e) {
    free(e->buf); /* also after an OOM: a failed realloc left the buffer as it was */
    memset(e, 0, sizeof *e);
}

static void put_dod(xorenc *e, int64_t dod) {
    if (dod == 0)
        put_bits(e, 0, 1);
    else if (dod >= -(1 << 13) && dod < (1 << 13))
        put_bits(e, 2, 2), put_bits(e, (uint64_t)dod, 14);
    else if (dod >= -(1 << 16) && dod < (1 << 16))
        put_bits(e, 6, 3), put_bits(e, (uint64_t)dod, 17);
    else if (dod >= -(1 << 19) && dod < (1 << 19))
        put_bits(e, 14, 4), put_bits(e, (uint64_t)dod, 20);
    else
        put_bits(e, 15, 4), put_bits(e, (uint64_t)dod, 64);
}

void xor_append(xorenc *e, int64_t t, double v) {
    if (xor_oom(e)) return;
    uint64_t vb;
    memcpy(&vb, &v, 8);
    if (e->n == 0) {
        put_bits(e, (uint64_t)t, 64);
        put_bits(e, vb, 64);
        e->mint = t;
        e->tdelta = 0;
        e->lead = 0xff; /* no window yet */
    } else {
        assert(t > e->t); /* a chunk holds strictly increasing times: the head sends the rest out of order */
        /* wrapping arithmetic: extreme timestamps must not be undefined behaviour */
        int64_t delta = (int64_t)((uint64_t)t - (uint64_t)e->t);
        put_dod(e, (int64_t)((uint64_t)delta - (uint64_t)e->tdelta));
        e->tdelta = delta;
        uint64_t x = vb ^ e->vbits;
        if (x == 0) {
            put_bits(e, 0, 1);
        } else {
            int lead = __builtin_clzll(x), trail = __builtin_ctzll(x);
            if (lead > 31) lead = 31;
            assert(lead + trail < 64);
            if (e->lead != 0xff && lead >= e->lead && trail >= e->trail) {
                put_bits(e, 2, 2);
                put_bits(e, x >> e->trail, 64 - e->lead - e->trail);
            } else {
                int sig = 64 - lead - trail;
                put_bits(e, 3, 2);
                put_bits(e, (uint64_t)lead, 5);
                put_bits(e, (uint64_t)(sig & 63), 6); /* 64 is written as 0 */
                put_bits(e, x >> trail, sig);
                e->lead = (uint8_t)lead;
                e->trail = (uint8_t)trail;
            }
        }
    }
    e->t = t;
    e->vbits = vb;
    e->n++;
    assert(e->n != 0); /* the sample count of a chunk never wraps (CHUNK_SAMPLES seals it long before) */
}

/* ---- decoding ---- */

static inline uint64_t get_bits(xordec *d, int nbits) {
    if (nbits <= 0) return 0;
    if (d->pos + (uint64_t)nbits > d->nbits) {
        d->err = 1;
        d->pos = d->nbits;
        return 0;
    }
    size_t at = (size_t)(d->pos >> 3);
    int skip = (int)(d->pos & 7);
    if (skip + nbits <= 64 && (uint64_t)at * 8 + 64 <= d->nbits) {
        /* one big-endian 64-bit load holds all the bits wanted */
        uint64_t w = 0;
        for (int i = 0; i < 8; i++)
            w = (w << 8) | d->buf[at + (size_t)i];
        d->pos += (uint64_t)nbits;
        return (w << skip) >> (64 - nbits);
    }
    uint64_t v = 0;
    while (nbits > 0) {
        size_t byte = (size_t)(d->pos >> 3);
        int used = (int)(d->pos & 7), room = 8 - used;
        int take = nbits < room ? nbits : room;
        uint8_t b = (uint8_t)(d->buf[byte] >> (room - take)) & (uint8_t)((1u << take) - 1);
        v = (take == 64 ? 0 : v << take) | b;
        d->pos += take;
        nbits -= take;
    }
    return v;
}

static int64_t sext(uint64_t v, int bits) {
    uint64_t m = 1ULL << (bits - 1);
    return (int64_t)((v ^ m) - m);
}

void xor_dec_init(xordec *d, const uint8_t *buf, size_t nbytes, uint16_t n) {
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->nbits = (uint64_t)nbytes * 8;
    d->n = n;
    d->lead = 0xff;
}

static int dec_next_bitwise(xordec *d, int64_t *t, double *v) {
    if (d->err || d->i >= d->n) return 0;
    if (d->i == 0) {
        d->t = (int64_t)get_bits(d, 64);
        d->vbits = get_bits(d, 64);
    } else {
        int64_t dod;
        if (get_bits(d, 1) == 0)
            dod = 0;
        else if (get_bits(d, 1) == 0)
            dod = sext(get_bits(d, 14), 14);
        else if (get_bits(d, 1) == 0)
            dod = sext(get_bits(d, 17), 17);
        else if (get_bits(d, 1) == 0)
            dod = sext(get_bits(d, 20), 20);
        else
            dod = (int64_t)get_bits(d, 64);
        d->tdelta = (int64_t)((uint64_t)d->tdelta + (uint64_t)dod);
        d->t = (int64_t)((uint64_t)d->t + (uint64_t)d->tdelta);
        if (get_bits(d, 1) == 1) {
            uint64_t x;
            if (get_bits(d, 1) == 0) {
                if (d->lead == 0xff) {
                    d->err = 1;
                    return 0;
                }
                x = get_bits(d, 64 - d->lead - d->trail) << d->trail;
            } else {
                int lead = (int)get_bits(d, 5);
                int sig = (int)get_bits(d, 6);
                if (sig == 0) sig = 64;
                if (lead + sig > 64) {
                    d->err = 1;
                    return 0;
                }
                int trail = 64 - lead - sig;
                x = get_bits(d, sig) << trail;
                d->lead = (uint8_t)lead;
                d->trail = (uint8_t)trail;
            }
            d->vbits ^= x;
        }
    }
    if (d->err) return 0;
    d->i++;
    *t = d->t;
    memcpy(v, &d->vbits, 8);
    return 1;
}

/* The 64 bits from bit `pos` on, for can_peek positions. */
static inline uint64_t peek64(const xordec *d, uint64_t pos) {
    size_t at = (size_t)(pos >> 3);
    int skip = (int)(pos & 7);
    uint64_t w = 0;
    for (int i = 0; i < 8; i++)
        w = (w << 8) | d->buf[at + (size_t)i];
    if (skip) w = (w << skip) | (uint64_t)(d->buf[at + 8] >> (8 - skip));
    return w;
}

/* Nine bytes from pos's byte on lie in the buffer: 64 bits can be peeked at pos. */
static inline int can_peek(const xordec *d, uint64_t pos) { return (pos >> 3) + 9 <= (d->nbits >> 3); }

/* n (1..64) bits of w from bit `off` (0 = the top), off + n <= 64 */
static inline uint64_t bits_of(uint64_t w, int off, int n) { return (w << off) >> (64 - n); }

/* Decodes a sample from peeked words rather than bit by bit (the query path decodes every
 * chunk it reads); the rare cases (the first sample, a 64-bit delta of delta, the last bytes
 * of the chunk, anything invalid) go the bitwise way, which starts from the same state. */
int xor_dec_next(xordec *d, int64_t *t, double *v) {
    if (d->err || d->i >= d->n) return 0;
    uint64_t pos = d->pos;
    if (d->i == 0 || !can_peek(d, pos)) return dec_next_bitwise(d, t, v);
    uint64_t w = peek64(d, pos);
    int64_t dod;
    int used;
    if (!(w >> 63)) {
        dod = 0;
        used = 1;
    } else if (!((w >> 62) & 1)) {
        dod = sext(bits_of(w, 2, 14), 14);
        used = 16;
    } else if (!((w >> 61) & 1)) {
        dod = sext(bits_of(w, 3, 17), 17);
        used = 20;
    } else if (!((w >> 60) & 1)) {
        dod = sext(bits_of(w, 4, 20), 20);
        used = 24;
    } else {
        return dec_next_bitwise(d, t, v);
    }
    pos += (uint64_t)used;
    if (!can_peek(d, pos)) return dec_next_bitwise(d, t, v);
    w = peek64(d, pos);
    uint64_t vb = d->vbits;
    uint8_t lead = d->lead, trail = d->trail;
    if (!(w >> 63)) {
        used = 1;
    } else if (!((w >> 62) & 1)) {
        if (lead == 0xff) return dec_next_bitwise(d, t, v); /* reports the error */
        int nb = 64 - lead - trail;
        if (nb < 1 || 2 + nb > 64) return dec_next_bitwise(d, t, v);
        vb ^= bits_of(w, 2, nb) << trail;
        used = 2 + nb;
    } else {
        int l = (int)bits_of(w, 2, 5);
        int sig = (int)bits_of(w, 7, 6);
        if (sig == 0) sig = 64;
        if (l + sig > 64) return dec_next_bitwise(d, t, v); /* reports the error */
        int tr = 64 - l - sig;
        uint64_t x;
        if (13 + sig <= 64) {
            x = bits_of(w, 13, sig);
        } else {
            if (!can_peek(d, pos + 13)) return dec_next_bitwise(d, t, v);
            x = bits_of(peek64(d, pos + 13), 0, sig);
        }
        vb ^= x << tr;
        lead = (uint8_t)l;
        trail = (uint8_t)tr;
        used = 13 + sig;
    }
    d->pos = pos + (uint64_t)used;
    d->tdelta = (int64_t)((uint64_t)d->tdelta + (uint64_t)dod);
    d->t = (int64_t)((uint64_t)d->t + (uint64_t)d->tdelta);
    d->vbits = vb;
    d->lead = lead;
    d->trail = trail;
    d->i++;
    *t = d->t;
    memcpy(v, &d->vbits, 8);
    return 1;
}
