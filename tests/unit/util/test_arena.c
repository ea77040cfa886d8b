/* Unit tests of the per-request arena: alignment, the byte limit, overflow checks, large
 * allocations next to small ones. (The protobuf-c allocator over an arena is tested with its
 * user, tests/unit/traces/test_codec.c.) */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/arena.h"

Test(arena, alignment_and_distinct_memory) {
    tr_arena *a = tr_arena_new(0);
    unsigned char *p[200];
    size_t sizes[200];
    for (int i = 0; i < 200; i++) {
        sizes[i] = (size_t)(i * 37 % 300) + (i % 10 == 0 ? 20000 : 0); /* some large ones */
        p[i] = tr_arena_alloc(a, sizes[i]);
        cr_assert_not_null(p[i]);
        cr_assert_eq((uintptr_t)p[i] % 16, 0, "allocation %d not 16-aligned", i);
        memset(p[i], i, sizes[i]);
    }
    for (int i = 0; i < 200; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            cr_assert_eq(p[i][k], (unsigned char)i, "allocation %d overwritten", i);
    tr_arena_free(a);
}

Test(arena, limit_is_enforced) {
    tr_arena *a = tr_arena_new(1000);
    cr_assert_not_null(tr_arena_alloc(a, 512));
    cr_assert_eq(tr_arena_used(a), 512);
    cr_assert_null(tr_arena_alloc(a, 600), "over the limit");
    cr_assert_eq(tr_arena_used(a), 512, "a refusal costs nothing");
    cr_assert_not_null(tr_arena_alloc(a, 400));
    cr_assert_eq(tr_arena_used(a), 912);
    cr_assert_null(tr_arena_alloc(a, 100), "rounded to 112, past 1000");
    cr_assert_not_null(tr_arena_alloc(a, 80));
    cr_assert_eq(tr_arena_used(a), 992);
    cr_assert_null(tr_arena_alloc(a, 9));
    tr_arena_free(a);
}

Test(arena, zero_and_huge_sizes) {
    tr_arena *a = tr_arena_new(0);
    void *z1 = tr_arena_alloc(a, 0), *z2 = tr_arena_alloc(a, 0);
    cr_assert_not_null(z1);
    cr_assert_neq(z1, z2, "zero-size allocations are distinct");
    cr_assert_null(tr_arena_alloc(a, SIZE_MAX));
    cr_assert_null(tr_arena_alloc(a, SIZE_MAX / 2 + 1));
    cr_assert_null(tr_arena_calloc(a, SIZE_MAX / 4, 8), "n * size overflows");
    cr_assert_null(tr_arena_calloc(a, 3, SIZE_MAX / 2));
    tr_arena_free(a);
    tr_arena_free(NULL);
}

Test(arena, calloc_and_strndup) {
    tr_arena *a = tr_arena_new(0);
    /* dirty the memory first so calloc has something to clear */
    unsigned char *d = tr_arena_alloc(a, 64);
    memset(d, 0xAA, 64);
    uint32_t *z = tr_arena_calloc(a, 100, sizeof *z);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(z[i], 0);
    char *s = tr_arena_strndup(a, "hello world", 5);
    cr_assert_str_eq(s, "hello");
    char *e = tr_arena_strndup(a, NULL, 0);
    cr_assert_str_eq(e, "");
    tr_arena_free(a);
}

Test(arena, exhausted_only_by_the_limit) {
    tr_arena *a = tr_arena_new(1024);
    cr_assert_not_null(tr_arena_alloc(a, 512));
    cr_assert_eq(tr_arena_exhausted(a), 0);
    cr_assert_null(tr_arena_alloc(a, 1024));
    cr_assert_eq(tr_arena_exhausted(a), 1, "a refusal for the limit is remembered");
    tr_arena_free(a);
}
