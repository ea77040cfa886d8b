/* Arena: a per-request region allocator. Everything allocated from one arena is freed at
 * once by tr_arena_free(); nothing long-lived may point into it. */
#ifndef TR_ARENA_H
#define TR_ARENA_H

#include <stddef.h>

typedef struct tr_arena tr_arena;

/* Returns a new arena that refuses to grow past `limit` bytes in total (0 = no limit),
 * or NULL when out of memory. The caller frees it with tr_arena_free(). */
tr_arena *tr_arena_new(size_t limit);
void tr_arena_free(tr_arena *a);

/* Returns `n` bytes aligned to 16, or NULL when the limit would be passed or malloc fails.
 * The memory lives until the arena is freed. */
void *tr_arena_alloc(tr_arena *a, size_t n);
/* As tr_arena_alloc, zero-filled; NULL also when n*size overflows. */
void *tr_arena_calloc(tr_arena *a, size_t n, size_t size);
/* Copies `len` bytes of `s` and a terminating NUL into the arena. */
char *tr_arena_strndup(tr_arena *a, const char *s, size_t len);

/* 1 once an allocation was refused because of the limit (not for malloc failure). */
int tr_arena_exhausted(const tr_arena *a);

/* Bytes handed out so far (what counts against the limit). */
size_t tr_arena_used(const tr_arena *a);

#endif
