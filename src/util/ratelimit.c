/* Per-address login back-off in a fixed set-associative table. */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define WAYS 8
#define KEY_MAX 47 /* an IPv6 address in text fits (45) */

typedef struct slot {
    char key[KEY_MAX + 1]; /* "" : free */
    uint32_t failures;
    int64_t last_ms;  /* last failure */
    int64_t until_ms; /* refused before this */
} slot;

struct tr_ratelimit {
    slot *s;
    size_t nsets;
    unsigned free_failures;
    int64_t base_ms, max_ms;
};

tr_ratelimit *tr_ratelimit_new(size_t capacity, unsigned free_failures, int64_t base_ms, int64_t max_ms) {
    tr_ratelimit *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->nsets = capacity / WAYS + (capacity % WAYS != 0);
    if (!r->nsets) r->nsets = 1;
    r->s = calloc(r->nsets * WAYS, sizeof *r->s);
    if (!r->s) {
        free(r);
        return NULL;
    }
    r->free_failures = free_failures;
    r->base_ms = base_ms > 0 ? base_ms : 1000;
    r->max_ms = max_ms > r->base_ms ? max_ms : r->base_ms;
    return r;
}

void tr_ratelimit_free(tr_ratelimit *r) {
    if (!r) return;
    free(r->s);
    free(r);
}

static slot *set_of(const tr_ratelimit *r, const char *key) {
    uint64_t h = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = tr_mix64(h ^ *p);
    return &r->s[(h % r->nsets) * WAYS];
}

static slot *find(const tr_ratelimit *r, const char *key) {
    slot *set = set_of(r, key);
    for (int i = 0; i < WAYS; i++)
        if (set[i].key[0] && strncmp(set[i].key, key, KEY_MAX) == 0) return &set[i];
    return NULL;
}

int64_t tr_ratelimit_blocked(const tr_ratelimit *r, const char *key, int64_t now_ms) {
    const slot *e = find(r, key);
    return e && e->until_ms > now_ms ? e->until_ms - now_ms : 0;
}

int64_t tr_ratelimit_fail(tr_ratelimit *r, const char *key, int64_t now_ms) {
    slot *e = find(r, key);
    if (e && now_ms - e->last_ms > 2 * r->max_ms) e->failures = 0; /* quiet long enough: forgiven */
    if (!e) {
        slot *set = set_of(r, key);
        e = &set[0];
        for (int i = 0; i < WAYS; i++) {
            if (!set[i].key[0]) {
                e = &set[i];
                break;
            }
            if (set[i].last_ms < e->last_ms) e = &set[i];
        }
        memset(e, 0, sizeof *e);
        strncpy(e->key, key, KEY_MAX);
    }
    e->failures++;
    e->last_ms = now_ms;
    if (e->failures <= r->free_failures) return 0;
    unsigned k = e->failures - r->free_failures - 1;
    int64_t wait = r->base_ms;
    while (k-- && wait < r->max_ms)
        wait *= 2;
    if (wait > r->max_ms) wait = r->max_ms;
    e->until_ms = now_ms + wait;
    return wait;
}

void tr_ratelimit_success(tr_ratelimit *r, const char *key) {
    slot *e = find(r, key);
    if (e) memset(e, 0, sizeof *e);
}
