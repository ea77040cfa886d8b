/* Arena allocator: bump allocation from a chain of blocks, large requests get their own block. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 16384
#define ARENA_ALIGN 16

typedef struct block {
    struct block *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} block;

struct tr_arena {
    block *head;
    size_t limit, total;
    int exhausted;
};

tr_arena *tr_arena_new(size_t limit) {
    tr_arena *a = calloc(1, sizeof *a);
    if (a) a->limit = limit;
    return a;
}

void tr_arena_free(tr_arena *a) {
    if (!a) return;
    block *b = a->head;
    while (b) {
        block *n = b->next;
        free(b);
        b = n;
    }
    free(a);
}

void *tr_arena_alloc(tr_arena *a, size_t n) {
    if (n == 0) n = 1;
    if (n > SIZE_MAX / 2) return NULL;
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (a->limit && need > a->limit - a->total) {
        a->exhausted = 1;
        return NULL;
    }
    block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK / 4 ? need : ARENA_BLOCK;
        block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->cap = cap;
        nb->used = 0;
        if (b && need > ARENA_BLOCK / 4) {
            /* keep the current block for small allocations: chain the big one behind it */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

void *tr_arena_calloc(tr_arena *a, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = tr_arena_alloc(a, n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

char *tr_arena_strndup(tr_arena *a, const char *s, size_t len) {
    char *p = tr_arena_alloc(a, len + 1);
    if (!p) return NULL;
    if (len) memcpy(p, s, len);
    p[len] = 0;
    return p;
}

size_t tr_arena_used(const tr_arena *a) { return a->total; }
int tr_arena_exhausted(const tr_arena *a) { return a->exhausted; }
