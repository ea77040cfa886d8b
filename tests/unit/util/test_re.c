/* The regex table: every expected answer is what Go's regexp (and so Prometheus 3, which
 * matches ^(?s:PATTERN)$) gives, written from Go's documented semantics: '.' is one Unicode
 * character and matches "\n"; (?i) folds Unicode simply (no "ß" → "SS"); \d, \w, \b are
 * ASCII; \p{Han} and friends are Unicode classes; the match is of the whole string. Errors
 * carry Go's wording; explosive patterns are refused at once. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/re.h"

typedef struct {
    const char *pat, *s;
    int want;
} mcase;

static const mcase matches[] = {
    /* Unicode '.' */
    {"caf.", "café", 1},
    {"caf.", "cafe", 1},
    {"caf..", "café", 0}, /* é is one character, not two bytes */
    {"...", "日本語", 1},
    {"..", "日本語", 0},
    /* (?i) beyond ASCII: simple folding only */
    {"(?i)straße", "STRASSE", 0},
    {"(?i)straße", "STRAßE", 1},
    {"(?i)é", "É", 1},
    {"(?i)σ", "Σ", 1},
    {"(?i)σ", "ς", 1},
    {"(?i)k", "\u212a", 1}, /* KELVIN SIGN folds to k */
    {"é", "É", 0},
    /* Unicode classes */
    {"\\p{Han}+", "漢字", 1},
    {"\\p{Han}", "a", 0},
    {"\\P{Han}", "a", 1},
    {"\\pL+", "Ünïcödé", 1},
    {"\\p{Greek}+", "αβγ", 1},
    {"[\\p{Lu}]+", "ÀB", 1},
    /* ASCII-only Perl classes */
    {"\\d+", "123", 1},
    {"\\d+", "١٢٣", 0},
    {"\\w+", "é", 0},
    {"\\s", "\u00a0", 0},
    {"[[:alpha:]]+", "abc", 1},
    {"[[:^digit:]]", "x", 1},
    /* '.' matches newline (Prometheus 3); flags turn it off */
    {"a.b", "a\nb", 1},
    {"(?s)a.b", "a\nb", 1},
    {"(?-s)a.b", "a\nb", 0},
    {".+", "\n", 1},
    {".*", "", 1},
    {".+", "", 0},
    /* word boundaries (ASCII) */
    {"\\bfoo\\b", "foo", 1},
    {".*\\bfoo\\b.*", "a foo b", 1},
    {".*\\bfoo\\b.*", "afoob", 0},
    {".*\\Bo\\B.*", "a o b", 0},
    {".*\\Bo\\B.*", "fooo", 1},
    /* escapes */
    {"\\x07", "\a", 1},
    {"\\x{263a}", "☺", 1},
    {"\\a", "\a", 1},
    {"a\\.b", "a.b", 1},
    {"a\\.b", "axb", 0},
    {"\\Qa.b\\E", "a.b", 1},
    {"\\Qa.b\\E", "axb", 0},
    {"\\Q(", "(", 1},
    /* empty alternations and the empty pattern */
    {"a|", "", 1},
    {"a|", "a", 1},
    {"|a", "", 1},
    {"a||b", "", 1},
    {"", "", 1},
    {"", "a", 0},
    {"()", "", 1},
    /* fully anchored */
    {"a", "ba", 0},
    {"a", "ab", 0},
    {"a", "a", 1},
    {"^a$", "a", 1},
    {"a$", "a\n", 0},
    {"(?m)a$\n", "a\n", 1},
    {"up|down", "up", 1},
    {"up|down", "dow", 0},
    {"up|down", "upx", 0},
    {"a|ab", "ab", 1}, /* anchoring applies to the whole alternation, not its first branch */
    /* prefixes, suffixes, contains */
    {"foo.*", "foobar", 1},
    {"foo.*", "foo", 1},
    {"foo.*", "xfoo", 0},
    {".*foo", "xfoo", 1},
    {".*foo", "foox", 0},
    {".*foo.*", "xfoox", 1},
    {".*foo.*", "fo", 0},
    {"ab*", "a", 1},
    {"ab*c", "ac", 1},
    {"ab?c", "abc", 1},
    {"é+x", "éééx", 1},
    {"abc|abd.*", "abdxyz", 1},
    {"a(b|c)d", "acd", 1},
    {"(?i)foo.*", "FOObar", 1},
    /* repetition and flags */
    {"x*", "xxx", 1},
    {"a{2,3}", "aaaa", 0},
    {"a{2,3}", "aaa", 1},
    {"a{,5}", "a{,5}", 1}, /* not a repetition: literal text, as in Go */
    {"(?U)a+", "aaa", 1},
    {"a+?", "aaa", 1},
    {"(?<n>a)b", "ab", 1}, /* Go 1.22 named-group syntax */
    {"(?P<n>a)(?P<n>b)", "ab", 1},
    {"[^a]", "\n", 1},
    {"[]a]+", "]a", 1},
};

Test(re, go_semantics_table) {
    for (size_t i = 0; i < sizeof matches / sizeof *matches; i++) {
        const mcase *c = &matches[i];
        char err[256];
        tr_re *re = tr_re_compile(c->pat, strlen(c->pat), err, sizeof err);
        cr_assert_not_null(re, "/%s/: %s", c->pat, err);
        cr_expect_eq(tr_re_match(re, c->s, strlen(c->s)), c->want, "/%s/ on \"%s\": want %d", c->pat, c->s,
                     c->want);
        cr_expect_str_eq(tr_re_pattern(re), c->pat);
        tr_re_free(re);
    }
}

Test(re, pattern_need_not_be_nul_terminated) {
    char err[64];
    tr_re *re = tr_re_compile("abXYZ", 2, err, sizeof err);
    cr_assert_not_null(re);
    cr_assert(tr_re_match(re, "ab", 2));
    cr_assert_not(tr_re_match(re, "abX", 3));
    cr_assert_str_eq(tr_re_pattern(re), "ab");
    cr_assert(tr_re_match(re, "abc", 2), "the subject is bounded by its length too");
    tr_re_free(re);
    /* a NUL inside the pattern is a literal character */
    re = tr_re_compile("a\0b", 3, err, sizeof err);
    cr_assert_not_null(re);
    cr_assert(tr_re_match(re, "a\0b", 3));
    cr_assert_not(tr_re_match(re, "a", 1));
    tr_re_free(re);
}

typedef struct {
    const char *pat, *err;
} ecase;

static const ecase errors[] = {
    {"(a", "error parsing regexp: missing closing ): `(a`"},
    {"a)", "error parsing regexp: unexpected ): `a)`"},
    {"[a", "error parsing regexp: missing closing ]: `[a`"},
    {"*", "error parsing regexp: missing argument to repetition operator: `*`"},
    {"a**", "error parsing regexp: invalid nested repetition operator: `**`"},
    {"a++", "error parsing regexp: invalid nested repetition operator: `++`"},
    {"x{2}{3}", "error parsing regexp: invalid nested repetition operator: `{2}{3}`"},
    {"a{1001}", "error parsing regexp: invalid repeat count: `{1001}`"},
    {"a{2,1}", "error parsing regexp: invalid repeat count: `{2,1}`"},
    {"\\C", "error parsing regexp: invalid escape sequence: `\\C`"},
    {"\\8", "error parsing regexp: invalid escape sequence: `\\8`"},
    {"\\", "error parsing regexp: trailing backslash at end of expression: ``"},
    {"[z-a]", "error parsing regexp: invalid character class range: `z-a`"},
    {"\\p{Foo}", "error parsing regexp: invalid character class range: `\\p{Foo}`"},
    {"[[:foo:]]", "error parsing regexp: invalid character class range: `[:foo:]`"},
    {"(?x)", "error parsing regexp: invalid or unsupported Perl syntax: `(?x`"},
    {"(?=a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"},
    {"(?P<>a)", "error parsing regexp: invalid named capture: `(?P<>`"},
    {"ab\xff", "error parsing regexp: invalid UTF-8: `\xff`"},
};

Test(re, invalid_patterns_with_go_errors) {
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
        char err[256] = "unset";
        tr_re *re = tr_re_compile(errors[i].pat, strlen(errors[i].pat), err, sizeof err);
        cr_expect_null(re, "/%s/ compiled", errors[i].pat);
        tr_re_free(re);
        cr_expect_str_eq(err, errors[i].err);
    }
}

Test(re, deep_nesting_refused) {
    size_t d = 1001;
    char *p = malloc(2 * d + 1);
    memset(p, '(', d);
    memset(p + d, ')', d);
    p[2 * d] = 0;
    char err[64];
    tr_re *re = tr_re_compile(p, 2 * d, err, sizeof err);
    cr_assert_null(re);
    cr_assert(strncmp(err, "error parsing regexp: expression nests too deeply", 49) == 0, "%s", err);
    /* 100 deep is fine */
    re = tr_re_compile(p + d - 100, 200, err, sizeof err);
    cr_assert_not_null(re, "%s", err);
    cr_assert(tr_re_match(re, "", 0));
    tr_re_free(re);
    free(p);
}

static double ms_since(const struct timespec *a) {
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

Test(re, explosive_patterns_refused_at_once) {
    const char *bad[] = {
        "((a{1000}){1000}){1000}", "(((a{100}){100}){100})",
        "(\\pL{1000}){1000}",      "((((((((((a{2}){2}){2}){2}){2}){2}){2}){2}){2}){2}){2}", /* 2^11 > 1000 */
        "(a{1000}|b{1000}){1000}", "(?:(?:x{999}){2})",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256];
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tr_re *re = tr_re_compile(bad[i], strlen(bad[i]), err, sizeof err);
        double ms = ms_since(&t0);
        cr_expect_null(re, "/%s/ compiled", bad[i]);
        tr_re_free(re);
        cr_expect(strncmp(err, "error parsing regexp: invalid repeat count: `{", 46) == 0, "%s", err);
        cr_expect_lt(ms, 10.0, "/%s/ took %.3f ms to refuse", bad[i], ms);
    }
    /* large but bounded programs compile */
    char err[256];
    tr_re *re = tr_re_compile("a{1000}b{1000}", 14, err, sizeof err);
    cr_assert_not_null(re, "%s", err);
    tr_re_free(re);
}

Test(re, program_over_the_memory_bound_refused) {
    /* Go accepts this (one instruction per class); RE2 expands \pL into UTF-8 byte ranges and
     * the program passes the bound: refused rather than allowed to grow. */
    char err[256];
    tr_re *re = tr_re_compile("\\pL{1000}", 9, err, sizeof err);
    cr_assert_null(re);
    cr_assert_str_eq(err, "error parsing regexp: expression too large: `\\pL{1000}`");
}

Test(re, kinds_and_sets) {
    char err[128];
    struct {
        const char *pat;
        tr_re_kind kind;
        const char *set; /* sorted, '\n'-joined */
    } k[] = {
        {".*", TR_RE_ANY, NULL},
        {".+", TR_RE_NONEMPTY, NULL},
        {"a|b|c", TR_RE_SET, "a\nb\nc"},
        {"up", TR_RE_SET, "up"},
        {"", TR_RE_SET, ""},
        {"b|a|", TR_RE_SET, "\na\nb"},
        {"a\\.b|c", TR_RE_SET, "a.b\nc"},
        {"x|x", TR_RE_SET, "x"},
        {"(?i)a|b", TR_RE_GENERIC, NULL},
        {"a.|b", TR_RE_GENERIC, NULL},
        {"(a|b)", TR_RE_GENERIC, NULL},
        {"foo.*", TR_RE_GENERIC, NULL},
        {"\\d", TR_RE_GENERIC, NULL},
        {".*?", TR_RE_GENERIC, NULL},
    };
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        tr_re *re = tr_re_compile(k[i].pat, strlen(k[i].pat), err, sizeof err);
        cr_assert_not_null(re, "%s", err);
        cr_expect_eq(tr_re_kind_of(re), k[i].kind, "/%s/", k[i].pat);
        size_t n = 99;
        const char *const *set = tr_re_set(re, &n);
        if (k[i].set) {
            char joined[64] = "";
            for (size_t j = 0; j < n; j++) {
                if (j) strcat(joined, "\n");
                strcat(joined, set[j]);
            }
            cr_expect_str_eq(joined, k[i].set, "/%s/", k[i].pat);
        } else {
            cr_expect_eq(n, 0);
        }
        tr_re_free(re);
    }
}

typedef struct {
    const char *pat, *s, *tmpl, *want; /* want NULL: no match */
} rcase;

/* label_replace's expansions: Go's Regexp.Expand. */
static const rcase repl[] = {
    {"(.*):(.*)", "host:8080", "$1", "host"},
    {"(.*):(.*)", "host:8080", "${2}", "8080"},
    {"(.*):(.*)", "host:8080", "$2-$1", "8080-host"},
    {"(.*):(.*)", "host:8080", "$1x", ""}, /* group named "1x": none, so empty */
    {"(.*):(.*)", "host:8080", "${1}x", "hostx"},
    {"(.*):(.*)", "host:8080", "$$1", "$1"},
    {"(.*):(.*)", "host:8080", "$", "$"},     /* malformed: the $ stays */
    {"(.*):(.*)", "host:8080", "${1", "${1"}, /* no closing brace */
    {"(.*):(.*)", "host:8080", "$-", "$-"},
    {"(.*):(.*)", "host:8080", "$9", ""},  /* out of range */
    {"(.*):(.*)", "host:8080", "$01", ""}, /* leading zero: a name, not a number */
    {"(.*):(.*)", "host:8080", "$0", "host:8080"},
    {"(.*):(.*)", "host:8080", "a$1b", "a"}, /* $1b is the group named "1b" */
    {"(?P<h>.*):(?P<p>.*)", "host:8080", "$p/${h}", "8080/host"},
    {"(?P<h>.*):(?P<p>.*)", "host:8080", "$h_x", ""}, /* "h_x" is one name */
    {"(?P<h>.*):(?P<p>.*)", "host:8080", "${h}_x", "host_x"},
    {"(?P<x>a)|(?P<x>b)", "b", "[$x]", "[b]"}, /* the leftmost x that took part */
    {"(a)|(b)", "b", "[$1][$2]", "[][b]"},     /* a group that took no part is empty */
    {"(.*)", "é", "$1é", ""},                  /* é is a letter: part of the name */
    {"(.*)", "x", "${1}€", "x€"},
    {"(.*)", "x", "", ""},
    {"a(.*)", "bcd", "$1", NULL}, /* no match */
    {"c", "abc", "$0", NULL},     /* anchored */
    {"foo.*", "foobar", "$0!", "foobar!"},
    {"(?i)(FOO)", "foo", "$1", "foo"},
};

Test(re, replace_expansions) {
    for (size_t i = 0; i < sizeof repl / sizeof *repl; i++) {
        const rcase *c = &repl[i];
        char err[128];
        tr_re *re = tr_re_compile(c->pat, strlen(c->pat), err, sizeof err);
        cr_assert_not_null(re, "%s", err);
        char *out = NULL;
        size_t n = 0;
        int rc = tr_re_replace(re, c->s, strlen(c->s), c->tmpl, strlen(c->tmpl), &out, &n);
        if (!c->want) {
            cr_expect_eq(rc, 0, "/%s/ on %s", c->pat, c->s);
            cr_expect_null(out);
        } else {
            cr_expect_eq(rc, 1, "/%s/ on %s", c->pat, c->s);
            cr_expect_str_eq(out ? out : "(null)", c->want, "/%s/ %s with %s", c->pat, c->s, c->tmpl);
            cr_expect_eq(n, strlen(c->want));
        }
        free(out);
        tr_re_free(re);
    }
}
