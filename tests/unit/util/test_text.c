/* Unit tests of util/text.h: the UTF-8 validator (its ASCII fast path at every alignment),
 * base64 both ways, hex, and the constant-time comparison. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"

Test(text, utf8_validator) {
    cr_assert(tr_utf8_valid("", 0));
    cr_assert(tr_utf8_valid("plain ascii", 11));
    cr_assert(tr_utf8_valid("a\0b", 3), "NUL is a valid code point");
    cr_assert(tr_utf8_valid("\xef\xbf\xbd", 3));
    const char *mixed = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80";
    cr_assert(tr_utf8_valid(mixed, strlen(mixed)));
    cr_assert(tr_utf8_valid("\xf4\x8f\xbf\xbf", 4), "U+10FFFF");
    cr_assert_not(tr_utf8_valid("\xe0\x80\x80", 3), "overlong 3-byte");
    cr_assert_not(tr_utf8_valid("\xf0\x80\x80\x80", 4), "overlong 4-byte");
    cr_assert_not(tr_utf8_valid("\xc0\xaf", 2), "overlong 2-byte");
    cr_assert_not(tr_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    cr_assert_not(tr_utf8_valid("\xf4\x90\x80\x80", 4), "past U+10FFFF");
    cr_assert_not(tr_utf8_valid("\x80", 1), "lone continuation");
    cr_assert_not(tr_utf8_valid("\xf8\x88\x80\x80\x80", 5), "5-byte form");
    cr_assert_not(tr_utf8_valid("\xc3\xa9", 1), "cut by the length");
    cr_assert_not(tr_utf8_valid("\xff", 1));
}

Test(text, utf8_ascii_fast_path_at_every_offset) {
    /* one bad or multi-byte character placed at each position of a long ASCII run, so the
     * eight-byte steps meet it at every alignment and at the tail */
    char s[80];
    for (size_t len = 1; len < sizeof s; len++) {
        for (size_t at = 0; at < len; at++) {
            memset(s, 'a', sizeof s);
            s[at] = (char)0xff;
            cr_assert_not(tr_utf8_valid(s, len), "0xff at %zu of %zu", at, len);
            if (at + 1 < len) {
                s[at] = (char)0xc3, s[at + 1] = (char)0xa9;
                cr_assert(tr_utf8_valid(s, len), "é at %zu of %zu", at, len);
                cr_assert_not(tr_utf8_valid(s, at + 1), "é cut at %zu", at);
            }
        }
        memset(s, 'a', sizeof s);
        cr_assert(tr_utf8_valid(s, len));
    }
}

Test(text, utf8_seq) {
    cr_assert_eq(tr_utf8_seq("a", 1), 1);
    cr_assert_eq(tr_utf8_seq("\xc3\xa9x", 3), 2);
    cr_assert_eq(tr_utf8_seq("\xe6\x97\xa5", 3), 3);
    cr_assert_eq(tr_utf8_seq("\xf0\x9f\x98\x80", 4), 4);
    cr_assert_eq(tr_utf8_seq("\xf0\x9f\x98", 3), 0);
    cr_assert_eq(tr_utf8_seq("\xa9", 1), 0);
}

static char *b64(const char *s, size_t n) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_base64_encode(&b, (const uint8_t *)s, n);
    char *r = strdup(b.data ? b.data : "");
    tr_buf_free(&b);
    return r;
}

Test(text, base64_encode_rfc4648_vectors) {
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = b64(in[i], strlen(in[i]));
        cr_assert_str_eq(e, out[i]);
        free(e);
    }
    char *e = b64("\xfb\xff", 2);
    cr_assert_str_eq(e, "+/8=", "the standard alphabet");
    free(e);
}

Test(text, base64_decode) {
    struct {
        const char *in;
        const char *out; /* NULL: invalid */
    } c[] = {
        {"", ""},
        {"Zg==", "f"},
        {"Zg", "f"},
        {"Zm8=", "fo"},
        {"Zm8", "fo"},
        {"Zm9vYmFy", "foobar"},
        {"+/8=", "\xfb\xff"},
        {"-_8", "\xfb\xff"},
        {"Z", NULL},
        {"Zg=", NULL},
        {"Z===", NULL},
        {"Zm9v!", NULL},
        {"Zm 9v", NULL},
        {"=", NULL},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        size_t n = strlen(c[i].in);
        uint8_t out[32];
        long r = tr_base64_decode(c[i].in, n, out);
        if (!c[i].out) {
            cr_expect_eq(r, -1, "\"%s\" decoded", c[i].in);
            continue;
        }
        cr_expect_eq(r, (long)strlen(c[i].out), "\"%s\"", c[i].in);
        cr_expect(r >= 0 && memcmp(out, c[i].out, (size_t)r) == 0, "\"%s\"", c[i].in);
        cr_expect_leq((size_t)r, tr_base64_max(n));
    }
    /* in place, and a round trip over every byte value */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    char *e = b64((const char *)all, 256);
    long r = tr_base64_decode(e, strlen(e), (uint8_t *)e);
    cr_assert_eq(r, 256);
    cr_assert(memcmp(e, all, 256) == 0);
    free(e);
}

Test(text, hex) {
    char out[9];
    tr_hex_encode((const uint8_t *)"\x01\xab\xcd\xef", 4, out);
    cr_assert_str_eq(out, "01abcdef");
    tr_hex_encode(NULL, 0, out);
    cr_assert_str_eq(out, "");
    uint8_t d[4];
    cr_assert_eq(tr_hex_decode("01ABcdef", 4, d), 0);
    cr_assert(memcmp(d, "\x01\xab\xcd\xef", 4) == 0);
    cr_assert_eq(tr_hex_decode("01abcdeg", 4, d), -1);
    cr_assert_eq(tr_hex_decode("01a", 2, d), -1, "a short string ends at its NUL");
    cr_assert_eq(tr_hex_val('F'), 15);
    cr_assert_eq(tr_hex_val('g'), -1);
    cr_assert_eq(tr_hex_val(0), -1);
}

Test(text, secret_equal) {
    cr_assert(tr_secret_equal("s3cret", "s3cret"));
    cr_assert(tr_secret_equal("", ""));
    cr_assert_not(tr_secret_equal("s3cre", "s3cret"));
    cr_assert_not(tr_secret_equal("s3cretx", "s3cret"));
    cr_assert_not(tr_secret_equal("S3cret", "s3cret"));
    cr_assert_not(tr_secret_equal("", "s3cret"));
    cr_assert_not(tr_secret_equal("x", ""));
}
