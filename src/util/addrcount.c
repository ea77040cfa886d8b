/* The per-address connection counts: open addressing with linear probing and backward-shift
 * deletion (no tombstones, so a long-running server's table never degrades). */
#include "addrcount.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct slot {
    tr_addrkey k;
    unsigned n; /* 0: empty */
} slot;

struct tr_addrcount {
    slot *s;
    size_t cap, used; /* cap: a power of two */
};

void tr_addrkey_from(const struct sockaddr *sa, tr_addrkey *k) {
    memset(k, 0, sizeof *k);
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(k->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa && sa->sa_family == AF_INET) {
        k->b[10] = k->b[11] = 0xff;
        memcpy(k->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

void tr_addrkey_format(const tr_addrkey *k, char *out, size_t cap) {
    static const unsigned char v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!inet_ntop(memcmp(k->b, v4, 12) == 0 ? AF_INET : AF_INET6,
                   memcmp(k->b, v4, 12) == 0 ? k->b + 12 : k->b, out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

static size_t hash_key(const tr_addrkey *k) {
    uint64_t a, b;
    memcpy(&a, k->b, 8);
    memcpy(&b, k->b + 8, 8);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return (size_t)(h ^ (h >> 31));
}

tr_addrcount *tr_addrcount_new(void) {
    tr_addrcount *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cap = 64;
    c->s = calloc(c->cap, sizeof *c->s);
    if (!c->s) {
        free(c);
        return NULL;
    }
    return c;
}

void tr_addrcount_free(tr_addrcount *c) {
    if (!c) return;
    free(c->s);
    free(c);
}

static size_t find(const tr_addrcount *c, const tr_addrkey *k) {
    size_t i = hash_key(k) & (c->cap - 1);
    while (c->s[i].n && memcmp(&c->s[i].k, k, sizeof *k) != 0)
        i = (i + 1) & (c->cap - 1);
    return i;
}

static int grow(tr_addrcount *c) {
    size_t ncap = c->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns), *old = c->s;
    if (!ns) return -1;
    size_t ocap = c->cap;
    c->s = ns;
    c->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].n) c->s[find(c, &old[i].k)] = old[i];
    free(old);
    return 0;
}

long tr_addrcount_acquire(tr_addrcount *c, const tr_addrkey *k, unsigned max) {
    size_t i = find(c, k);
    if (c->s[i].n) {
        if (max && c->s[i].n >= max) return -1;
        return (long)++c->s[i].n;
    }
    if ((c->used + 1) * 4 > c->cap * 3) { /* keep the load under 3/4 */
        if (grow(c) != 0) return -1;
        i = find(c, k);
    }
    c->s[i].k = *k;
    c->s[i].n = 1;
    c->used++;
    return 1;
}

void tr_addrcount_release(tr_addrcount *c, const tr_addrkey *k) {
    size_t i = find(c, k);
    if (!c->s[i].n || --c->s[i].n) return;
    c->used--;
    /* backward-shift: move later members of the probe run into the hole */
    size_t hole = i;
    for (size_t j = (i + 1) & (c->cap - 1); c->s[j].n; j = (j + 1) & (c->cap - 1)) {
        size_t home = hash_key(&c->s[j].k) & (c->cap - 1);
        /* j may move into the hole when its home is not in (hole, j] (cyclically) */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        c->s[hole] = c->s[j];
        c->s[j].n = 0;
        hole = j;
    }
}

unsigned tr_addrcount_get(const tr_addrcount *c, const tr_addrkey *k) { return c->s[find(c, k)].n; }

size_t tr_addrcount_size(const tr_addrcount *c) { return c->used; }
