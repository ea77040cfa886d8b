/* Unit tests of the bounded buffer, the streaming JSON writer (separators, escaping of control
 * characters, invalid UTF-8 as U+FFFD) and tr_format_double (Go's FormatFloat(f, 'f', -1, 64)
 * as Prometheus writes sample values). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

Test(buf, append_within_and_past_limit) {
    tr_buf b;
    tr_buf_init(&b, 8);
    cr_assert_eq(tr_buf_puts(&b, "abc"), 0);
    cr_assert_eq(tr_buf_putc(&b, 'd'), 0);
    cr_assert_eq(tr_buf_printf(&b, "%d", 1234), 0);
    cr_assert_str_eq(b.data, "abcd1234");
    cr_assert_eq(b.len, 8);
    cr_assert_leq(b.cap, 9, "capacity never passes max + 1");
    cr_assert_eq(tr_buf_putc(&b, 'x'), -1);
    cr_assert(b.failed);
    cr_assert_str_eq(b.data, "abcd1234", "a refused write changes nothing");
    tr_buf_reset(&b);
    cr_assert_not(b.failed);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    cr_assert_eq(tr_buf_printf(&b, "%s", "123456789"), -1, "printf past the limit");
    cr_assert_eq(b.len, 0);
    tr_buf_free(&b);
    cr_assert_null(b.data);
}

Test(buf, failure_is_sticky) {
    tr_buf b;
    tr_buf_init(&b, 4);
    cr_assert_eq(tr_buf_puts(&b, "hello"), -1);
    cr_assert_eq(tr_buf_puts(&b, "hi"), -1, "once a write was refused, later ones are too");
    cr_assert_eq(b.len, 0);
    tr_buf_free(&b);
}

Test(buf, unlimited_growth) {
    tr_buf b;
    tr_buf_init(&b, 0);
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(tr_buf_putc(&b, (char)('a' + i % 26)), 0);
    cr_assert_eq(b.len, 100000);
    cr_assert_eq(b.data[26], 'a');
    cr_assert_eq(b.data[b.len], 0);
    cr_assert_eq(tr_buf_reserve(&b, SIZE_MAX - 10), -1, "absurd sizes are refused, not wrapped");
    tr_buf_free(&b);
}

static char *json_of(void (*fn)(tr_json *)) {
    static tr_buf b;
    tr_buf_free(&b);
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    fn(&j);
    return b.data;
}

static void doc(tr_json *j) {
    tr_json_obj_open(j);
    tr_json_key(j, "a");
    tr_json_int(j, -5);
    tr_json_key(j, "b");
    tr_json_arr_open(j);
    tr_json_uint(j, UINT64_MAX);
    tr_json_str(j, "x");
    tr_json_null(j);
    tr_json_bool(j, 1);
    tr_json_obj_open(j);
    tr_json_obj_close(j);
    tr_json_arr_open(j);
    tr_json_arr_close(j);
    tr_json_raw(j, "{\"r\":1}", 7);
    tr_json_arr_close(j);
    tr_json_key(j, "c");
    tr_json_double(j, 0.1);
    tr_json_key(j, "d");
    tr_json_double(j, NAN);
    tr_json_key(j, "e");
    tr_json_double(j, 1e21);
    tr_json_key(j, "f");
    tr_json_strn(j, "abcdef", 3);
    tr_json_key(j, "h");
    tr_json_double(j, 300); /* as Go's encoding/json: not 3e+02 */
    tr_json_key(j, "i");
    tr_json_double(j, -1.5e-7);
    tr_json_key(j, "g");
    tr_json_str(j, NULL);
    tr_json_obj_close(j);
}

Test(json_writer, separators_and_values) {
    cr_assert_str_eq(json_of(doc),
                     "{\"a\":-5,\"b\":[18446744073709551615,\"x\",null,true,{},[],{\"r\":1}],"
                     "\"c\":0.1,\"d\":null,\"e\":1e+21,\"f\":\"abc\",\"h\":300,\"i\":-1.5e-7,\"g\":\"\"}");
}

static char *escaped(const char *s, size_t n) {
    static tr_buf b;
    tr_buf_free(&b);
    tr_buf_init(&b, 0);
    tr_json_escape(&b, s, n);
    return b.data ? b.data : "";
}

Test(json_writer, escaping) {
    cr_assert_str_eq(escaped("plain", 5), "plain");
    cr_assert_str_eq(escaped("q\"b\\s/", 6), "q\\\"b\\\\s/");
    cr_assert_str_eq(escaped("\n\r\t\b\f", 5), "\\n\\r\\t\\u0008\\u000c");
    cr_assert_str_eq(escaped("\x01\x1f", 2), "\\u0001\\u001f");
    cr_assert_str_eq(escaped("a\0b", 3), "a\\u0000b", "NUL is escaped, not a terminator");
    cr_assert_str_eq(escaped("\x7f", 1), "\x7f", "DEL needs no escape in JSON");
    const char *mb = "grüße ✓ \xf0\x9f\x98\x80";
    cr_assert_str_eq(escaped(mb, strlen(mb)), mb, "valid UTF-8 passes");
}

Test(json_writer, invalid_utf8_becomes_replacement_char) {
    cr_assert_str_eq(escaped("a\xff"
                             "b",
                             3),
                     "a\xef\xbf\xbd"
                     "b");
    cr_assert_str_eq(escaped("\xc3", 1), "\xef\xbf\xbd", "sequence cut by the end");
    cr_assert_str_eq(escaped("\xc3(", 2), "\xef\xbf\xbd(", "bad continuation keeps the next character");
    cr_assert_str_eq(escaped("\xc0\x80", 2), "\xef\xbf\xbd\xef\xbf\xbd", "overlong");
    cr_assert_str_eq(escaped("\xed\xa0\x80", 3), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", "surrogate");
    cr_assert_str_eq(escaped("\xf4\x90\x80\x80", 4), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                     "past U+10FFFF");
    cr_assert_str_eq(escaped("\xe2\x82\xac", 2), "\xef\xbf\xbd\xef\xbf\xbd", "length cuts the sequence");
}

Test(json_writer, keys_are_escaped) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_json_obj_open(&j);
    tr_json_key(&j, "k\"\n\xff");
    tr_json_int(&j, 1);
    tr_json_obj_close(&j);
    cr_assert_str_eq(b.data, "{\"k\\\"\\n\xef\xbf\xbd\":1}");
    tr_buf_free(&b);
}

Test(json_writer, output_limit) {
    tr_buf b;
    tr_buf_init(&b, 10);
    tr_json j;
    tr_json_init(&j, &b);
    tr_json_arr_open(&j);
    for (int i = 0; i < 100; i++)
        tr_json_int(&j, i);
    tr_json_arr_close(&j);
    cr_assert(b.failed, "the writer stops at the buffer's limit");
    cr_assert_leq(b.len, 10);
    tr_buf_free(&b);
}

static const char *fmt(double v) {
    static char out[TR_DOUBLE_MAX_TEXT];
    int n = tr_format_double(out, sizeof out, v);
    cr_assert_eq((size_t)n, strlen(out));
    return out;
}

Test(format_double, go_f_minus_one) {
    cr_assert_str_eq(fmt(0), "0");
    cr_assert_str_eq(fmt(5), "5");
    cr_assert_str_eq(fmt(0.005), "0.005");
    cr_assert_str_eq(fmt(2500), "2500");
    cr_assert_str_eq(fmt(1e-7), "0.0000001");
    cr_assert_str_eq(fmt(1e21), "1000000000000000000000");
    cr_assert_str_eq(fmt(-0.5), "-0.5");
    cr_assert_str_eq(fmt(-0.0), "-0", "Go keeps the sign of negative zero");
    cr_assert_str_eq(fmt(NAN), "NaN");
    cr_assert_str_eq(fmt(INFINITY), "+Inf");
    cr_assert_str_eq(fmt(-INFINITY), "-Inf");
    cr_assert_str_eq(fmt(0.1 + 0.2), "0.30000000000000004", "shortest digits that round-trip");
    cr_assert_str_eq(fmt(123456789.125), "123456789.125");
    cr_assert_str_eq(fmt(1.5e300 / 1e300), "1.5");
    cr_assert_str_eq(fmt(9007199254740993.0), "9007199254740992");
    cr_assert_str_eq(fmt(-1234.5e-10), "-0.00000012345");
    char max[310];
    memcpy(max, "17976931348623157", 17);
    memset(max + 17, '0', 309 - 17);
    max[309] = 0;
    cr_assert_str_eq(fmt(1.7976931348623157e308), max, "DBL_MAX: 309 digits, no exponent");
    const char *tiny = fmt(5e-324);
    cr_assert_eq(strlen(tiny), 2 + 323 + 1, "0. then 323 zeros then 5");
    cr_assert_eq(tiny[strlen(tiny) - 1], '5');
}

Test(format_double, round_trips) {
    /* every output parses back to the same double */
    double vals[] = {1.0 / 3, 2.0 / 3, 1e-300, 6.02214076e23, 299792458, 0.1, 1e15 + 0.3, -7e-5};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        const char *s = fmt(vals[i]);
        cr_assert_null(strchr(s, 'e'), "%s has no exponent", s);
        cr_assert_eq(strtod(s, NULL), vals[i], "%s", s);
    }
}

/* the shortest digits that read back, found by trying every precision (the slow reference) */
static void shortest_ref(double v, char *out, size_t cap) {
    for (int p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* tr_format_double tries only 15, 16 and 17 digits: the same digits as trying them all */
Test(buf, format_double_shortest_matches_trying_every_precision) {
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 300000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        if (i % 3 == 0) {
            memcpy(&v, &x, sizeof v); /* any bit pattern */
        } else if (i % 6 == 4) {
            v = pow(10, (double)(x % 2300000) / 100000.0 - 7.5) * (x & 1 ? -1 : 1); /* 3e-8 .. 3e15 */
        } else if (i % 3 == 1) {
            v = (double)(x % 1000000) / 1000.0; /* short decimals */
        } else if (x & 4) {
            v = (double)(x >> (x % 64)) * (x & 2 ? -1 : 1); /* integers, up to 2^53 and past */
        } else {
            v = (double)(x % 100000) * 0.1 + (double)(x >> 40) / 7.0;
        }
        if (!isfinite(v)) continue;
        char got[TR_DOUBLE_MAX_TEXT], want[64];
        tr_format_double_g(got, sizeof got, v);
        shortest_ref(v, want, sizeof want);
        cr_assert_eq(strtod(got, NULL), v, "%s", got);
        /* same significant digits: compare as the reference's %g and ours re-read */
        char a[64], b[64];
        int na = 0, nb = 0;
        for (const char *c = got; *c && *c != 'e'; c++)
            if (*c >= '0' && *c <= '9' && (na || *c != '0')) a[na++] = *c;
        for (const char *c = want; *c && *c != 'e'; c++)
            if (*c >= '0' && *c <= '9' && (nb || *c != '0')) b[nb++] = *c;
        while (na && a[na - 1] == '0')
            na--;
        while (nb && b[nb - 1] == '0')
            nb--;
        a[na] = b[nb] = 0;
        cr_assert_str_eq(a, b, "%.17g: %s vs %s", v, got, want);
    }
}
