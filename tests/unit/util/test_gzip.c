/* Unit tests of the bounded gunzip: round trips, the exact limit, bombs refused with bounded
 * memory and time, concatenated members, truncation at every offset, trailing garbage. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/gzip.h"

static void gz(const void *in, size_t n, tr_buf *out) {
    tr_buf_init(out, 0);
    cr_assert_eq(tr_gzip(in, n, out), 0);
    cr_assert_gt(out->len, 18, "a gzip member has a 10-byte header and 8-byte trailer");
    cr_assert_eq((uint8_t)out->data[0], 0x1f);
    cr_assert_eq((uint8_t)out->data[1], 0x8b);
}

static uint8_t *pseudo_random(size_t n) {
    uint8_t *b = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 16);
    }
    return b;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

Test(gzip, round_trip) {
    size_t n = 200000;
    uint8_t *data = pseudo_random(n);
    tr_buf z, out;
    gz(data, n, &z);
    tr_buf_init(&out, 0);
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, 1u << 20, &out), TR_GZIP_OK);
    cr_assert_eq(out.len, n);
    cr_assert_arr_eq(out.data, data, n);
    cr_assert_eq(out.data[out.len], 0, "output stays NUL-terminated");
    /* reusing the output buffer resets it */
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, 1u << 20, &out), TR_GZIP_OK);
    cr_assert_eq(out.len, n);
    tr_buf_free(&z), tr_buf_free(&out), free(data);
}

Test(gzip, empty_content) {
    tr_buf z, out;
    gz("", 0, &z);
    tr_buf_init(&out, 0);
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, 100, &out), TR_GZIP_OK);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, 0, &out), TR_GZIP_OK, "nothing fits a zero limit");
    tr_buf_free(&z), tr_buf_free(&out);
}

Test(gzip, exact_limit) {
    size_t n = 100000;
    uint8_t *data = pseudo_random(n);
    tr_buf z, out;
    gz(data, n, &z);
    tr_buf_init(&out, 0);
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, n, &out), TR_GZIP_OK, "exactly the limit is allowed");
    cr_assert_eq(out.len, n);
    tr_buf fresh;
    tr_buf_init(&fresh, 0);
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, n - 1, &fresh), TR_GZIP_TOO_LARGE);
    cr_assert_leq(fresh.cap, n, "never grew past the limit + 1");
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, n - 1, &out), TR_GZIP_TOO_LARGE,
                 "also in a reused, larger buffer");
    tr_buf_free(&fresh);
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, 0, &out), TR_GZIP_TOO_LARGE);
    tr_buf_free(&z), tr_buf_free(&out), free(data);
}

Test(gzip, bomb_refused_quickly_with_bounded_memory) {
    size_t n = 10u * 1000 * 1000; /* 10 MB of zeros: about 44 KB at tr_gzip's level 1 */
    uint8_t *zeros = calloc(1, n);
    tr_buf z, out;
    gz(zeros, n, &z);
    free(zeros);
    cr_assert_lt(z.len, 100000, "a bomb: over 100 times smaller than what it inflates to");
    size_t limit = 4u << 20;
    tr_buf_init(&out, limit); /* as the receiver does: the buffer itself refuses to pass the limit */
    double t0 = now();
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, limit, &out), TR_GZIP_TOO_LARGE);
    double took = now() - t0;
    cr_assert_leq(out.cap, limit + 1, "memory bounded by the limit");
    cr_assert_leq(out.len, limit);
    cr_assert_lt(took, 2.0, "took %.3f s", took);
    tr_buf_free(&out);
    /* an unbounded buffer that is already larger than the limit must not loop forever */
    tr_buf big;
    tr_buf_init(&big, 0);
    cr_assert_eq(tr_buf_reserve(&big, 8u << 20), 0);
    cr_assert_eq(tr_gunzip((uint8_t *)z.data, z.len, limit, &big), TR_GZIP_TOO_LARGE);
    cr_assert_leq(big.len, limit);
    tr_buf_free(&big);
    tr_buf_free(&z);
}

Test(gzip, concatenated_members) {
    tr_buf a, b, out;
    gz("hello, ", 7, &a);
    gz("world", 5, &b);
    tr_buf_append(&a, b.data, b.len);
    tr_buf empty;
    gz("", 0, &empty);
    tr_buf_append(&a, empty.data, empty.len); /* an empty third member */
    tr_buf_init(&out, 0);
    cr_assert_eq(tr_gunzip((uint8_t *)a.data, a.len, 100, &out), TR_GZIP_OK);
    cr_assert_str_eq(out.data, "hello, world");
    /* the limit counts across members */
    cr_assert_eq(tr_gunzip((uint8_t *)a.data, a.len, 12, &out), TR_GZIP_OK);
    cr_assert_eq(tr_gunzip((uint8_t *)a.data, a.len, 11, &out), TR_GZIP_TOO_LARGE);
    tr_buf_free(&a), tr_buf_free(&b), tr_buf_free(&empty), tr_buf_free(&out);
}

Test(gzip, truncated_at_every_offset) {
    size_t n = 5000;
    uint8_t *data = pseudo_random(n);
    tr_buf z, out;
    gz(data, n, &z);
    tr_buf_init(&out, 0);
    for (size_t cut = 0; cut < z.len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, z.data, cut);
        cr_assert_eq(tr_gunzip(copy, cut, 1u << 20, &out), TR_GZIP_INVALID, "cut at %zu of %zu", cut, z.len);
        free(copy);
    }
    tr_buf_free(&z), tr_buf_free(&out), free(data);
}

Test(gzip, trailing_garbage_and_corruption) {
    tr_buf z, out;
    gz("payload", 7, &z);
    tr_buf_init(&out, 0);
    tr_buf bad;
    tr_buf_init(&bad, 0);
    tr_buf_append(&bad, z.data, z.len);
    tr_buf_puts(&bad, "junk");
    cr_assert_eq(tr_gunzip((uint8_t *)bad.data, bad.len, 100, &out), TR_GZIP_INVALID, "trailing garbage");
    tr_buf_reset(&bad);
    tr_buf_append(&bad, z.data, z.len);
    tr_buf_append(&bad, "\0\0\0\0", 4);
    cr_assert_eq(tr_gunzip((uint8_t *)bad.data, bad.len, 100, &out), TR_GZIP_INVALID, "trailing zeros");
    tr_buf_reset(&bad);
    tr_buf_append(&bad, z.data, z.len);
    bad.data[bad.len - 8] ^= 1; /* CRC */
    cr_assert_eq(tr_gunzip((uint8_t *)bad.data, bad.len, 100, &out), TR_GZIP_INVALID, "bad CRC");
    tr_buf_reset(&bad);
    tr_buf_append(&bad, z.data, z.len);
    bad.data[bad.len - 4] ^= 1; /* ISIZE */
    cr_assert_eq(tr_gunzip((uint8_t *)bad.data, bad.len, 100, &out), TR_GZIP_INVALID, "bad length");
    cr_assert_eq(tr_gunzip((const uint8_t *)"not gzip at all", 15, 100, &out), TR_GZIP_INVALID);
    cr_assert_eq(tr_gunzip((const uint8_t *)"", 0, 100, &out), TR_GZIP_INVALID,
                 "an empty body is not a gzip stream");
    cr_assert_eq(tr_gunzip(NULL, 0, 100, &out), TR_GZIP_INVALID);
    /* zlib-wrapped deflate is not gzip */
    static const uint8_t zlib_stream[] = {0x78, 0x9c, 0x4b, 0x04, 0x00, 0x00, 0x62, 0x00, 0x62};
    cr_assert_eq(tr_gunzip(zlib_stream, sizeof zlib_stream, 100, &out), TR_GZIP_INVALID);
    tr_buf_free(&z), tr_buf_free(&out), tr_buf_free(&bad);
}

Test(gzip, gzip_fails_on_full_buffer) {
    tr_buf out;
    tr_buf_init(&out, 10);
    cr_assert_eq(tr_gzip((const uint8_t *)"hello", 5, &out), -1,
                 "the output buffer's own limit is respected");
    tr_buf_free(&out);
}
