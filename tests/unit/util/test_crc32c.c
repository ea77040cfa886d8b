/* CRC32C: the published check values, and the fast paths (slicing-by-8 or SSE4.2) against a
 * bit-at-a-time reference over every length and alignment up to 300 bytes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "util/crc32c.h"

static uint32_t ref(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

Test(crc32c, known_vectors) {
    cr_assert_eq(crc32c("123456789", 9), 0xE3069283u);
    cr_assert_eq(crc32c("", 0), 0);
    uint8_t z[32] = {0}, f[32];
    memset(f, 0xff, sizeof f);
    /* RFC 3720 (iSCSI) appendix B.4 */
    cr_assert_eq(crc32c(z, 32), 0x8A9136AAu);
    cr_assert_eq(crc32c(f, 32), 0x62A8AB43u);
    uint8_t inc[32];
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    cr_assert_eq(crc32c(inc, 32), 0x46DD794Eu);
}

Test(crc32c, matches_reference_at_every_length_and_alignment) {
    uint8_t buf[320];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= 300; n++)
            cr_assert_eq(crc32c(buf + off, n), ref(buf + off, n), "off %zu n %zu", off, n);
}

Test(crc32c, incremental_equals_whole) {
    const char *s = "The quick brown fox jumps over the lazy dog, twice over and again";
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++)
        cr_assert_eq(crc32c_update(crc32c(s, k), s + k, n - k), crc32c(s, n));
}
