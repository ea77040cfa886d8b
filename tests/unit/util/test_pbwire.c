/* Unit tests of util/pbwire.h's varint reader (every length, the fast paths' boundaries,
 * truncation, overflow) and util/hash.h's mixer. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/hash.h"
#include "util/pbwire.h"

static size_t put(uint8_t *b, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80)
        b[n++] = (uint8_t)(v | 0x80), v >>= 7;
    b[n++] = (uint8_t)v;
    return n;
}

Test(pbwire, varint_round_trip) {
    uint64_t vals[] = {
        0,          1,         127, 128, 300, 16383, 16384, 2097151, 2097152, 1ULL << 32, (1ULL << 63) - 1,
        1ULL << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        uint8_t b[16];
        size_t n = put(b, vals[i]);
        b[n] = 0x55; /* the next byte is not read */
        const uint8_t *p = b;
        uint64_t v = 0;
        cr_assert_eq(tr_pb_varint(&p, b + n + 1, &v), 0, "%llu", (unsigned long long)vals[i]);
        cr_assert_eq(v, vals[i]);
        cr_assert_eq(p, b + n);
        /* cut short by one byte: refused, the cursor stays */
        p = b;
        cr_assert_eq(tr_pb_varint(&p, b + n - 1, &v), -1);
        cr_assert_eq(p, b);
    }
}

Test(pbwire, varint_non_minimal_and_bad) {
    /* a length written in a fixed three bytes (non-minimal: allowed) */
    const uint8_t three[] = {0x85, 0x80, 0x00};
    const uint8_t *p = three;
    uint64_t v;
    cr_assert_eq(tr_pb_varint(&p, three + 3, &v), 0);
    cr_assert_eq(v, 5);
    cr_assert_eq(p, three + 3);
    /* ten bytes whose last carries more than bit 63: overflow */
    uint8_t over[10];
    memset(over, 0xff, 9);
    over[9] = 0x02;
    p = over;
    cr_assert_eq(tr_pb_varint(&p, over + 10, &v), -1);
    cr_assert_eq(p, over);
    /* eleven bytes */
    uint8_t eleven[11];
    memset(eleven, 0x80, 10);
    eleven[10] = 0;
    p = eleven;
    cr_assert_eq(tr_pb_varint(&p, eleven + 11, &v), -1);
    /* empty */
    p = eleven;
    cr_assert_eq(tr_pb_varint(&p, eleven, &v), -1);
}

Test(hash, mix64) {
    cr_assert_eq(tr_mix64(0), 0);
    /* MurmurHash3 fmix64 reference value */
    cr_assert_eq(tr_mix64(1), 0xb456bcfc34c2cb2cULL);
    cr_assert_neq(tr_mix64(2), tr_mix64(3));
}
