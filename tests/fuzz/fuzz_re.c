/* Fuzz target: util/re.h. The input is a pattern; it compiles or fails with a Go-worded
 * message, never crashes and never takes unbounded memory. A compiled pattern is matched
 * against fixed subjects, and its fast paths (literal sets, prefixes, suffixes, .* and .+,
 * which answer without RE2) are checked against RE2 itself: the same pattern wrapped in
 * (?:…) has no fast shape, so both must agree. label_replace's expansion runs too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/re.h"

static const char *const subjects[] = {
    "",       "a",    "ab", "abc",  "foo", "foobar", "xfoo", "a.b", "café",
    "日本語", "a\nb", "up", "down", "AbC", "123",    "$1",   "a|b", "\xff",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char err[512];
    tr_re *re = tr_re_compile((const char *)data, size, err, sizeof err);
    if (!re) {
        if (strncmp(err, "error parsing regexp: ", 22) != 0) abort();
        return 0;
    }
    if (strlen(tr_re_pattern(re)) > size) abort();
    /* the generic RE2 path for the same pattern */
    char *w = malloc(size + 5);
    if (!w) abort();
    memcpy(w, "(?:", 3);
    memcpy(w + 3, data, size);
    w[size + 3] = ')';
    int comparable = !memmem(data, size, "\\Q", 2);
    tr_re *g = comparable ? tr_re_compile(w, size + 4, err, sizeof err) : NULL;
    if (g && tr_re_kind_of(g) != TR_RE_GENERIC) abort();
    size_t ns = 0;
    const char *const *set = tr_re_set(re, &ns);
    if ((tr_re_kind_of(re) == TR_RE_SET) != (ns > 0)) abort();
    for (size_t i = 0; i < ns; i++)
        if (!tr_re_match(re, set[i], strlen(set[i]))) abort();
    for (size_t i = 0; i < sizeof subjects / sizeof *subjects; i++) {
        const char *s = subjects[i];
        int m = tr_re_match(re, s, strlen(s));
        /* invalid UTF-8 subjects: the fast paths answer as Go, RE2 does not (see re.cc) */
        if (g && i + 1 < sizeof subjects / sizeof *subjects && m != tr_re_match(g, s, strlen(s))) abort();
        char *out = NULL;
        size_t n = 0;
        int rc = tr_re_replace(re, s, strlen(s), "<$1|${2}|$name|$$|$0>", 21, &out, &n);
        if (rc == 1 && (!out || strlen(out) != n)) abort();
        if (rc != 1 && out) abort();
        free(out);
    }
    tr_re_free(g);
    tr_re_free(re);
    free(w);
    return 0;
}
