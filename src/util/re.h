/* Regular expressions with Prometheus's semantics: RE2 syntax (as Go's regexp), fully
 * anchored, '.' matching any character including a newline (Prometheus 3 wraps every pattern
 * as ^(?s:…)$), UTF-8 aware. Implemented over RE2 in one C++ file (re.cc); every module that
 * matches a regex (the store's postings, PromQL's matchers and label_replace) goes through
 * this header. */
#ifndef TR_RE_H
#define TR_RE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_re tr_re;

/* Compiles `pat` (len bytes, need not be NUL-terminated). Returns NULL with a message in err
 * (as Go's regexp phrases it, e.g. "error parsing regexp: missing closing ): `(a`") when the
 * pattern is invalid or its compiled program would exceed the memory bound (explosive
 * repetition such as ((a{1000}){1000}){1000} is refused at once). Free with tr_re_free(). */
tr_re *tr_re_compile(const char *pat, size_t len, char *err, size_t errlen);
void tr_re_free(tr_re *re);

/* 1 when the whole of s[0..len) matches, else 0. Thread-safe on a shared tr_re. */
int tr_re_match(const tr_re *re, const char *s, size_t len);

/* The pattern as given. */
const char *tr_re_pattern(const tr_re *re);

/* Fast-path shape of a pattern, for callers that can do better than a regex run (postings
 * look-ups, Prometheus's FastRegexMatcher):
 *   TR_RE_GENERIC  nothing known;
 *   TR_RE_ANY      .* : matches everything, the empty string included;
 *   TR_RE_NONEMPTY .+ : everything but the empty string;
 *   TR_RE_SET      a literal alternation (a|b|c, possibly case-sensitive literals only):
 *                  tr_re_set() lists the strings. */
typedef enum { TR_RE_GENERIC, TR_RE_ANY, TR_RE_NONEMPTY, TR_RE_SET } tr_re_kind;
tr_re_kind tr_re_kind_of(const tr_re *re);
/* For TR_RE_SET: the literal alternatives (*n of them, owned by re). */
const char *const *tr_re_set(const tr_re *re, size_t *n);

/* label_replace's step: when the whole of s[0..len) matches, writes the expansion of tmpl
 * (Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$) into a malloc'd, NUL-terminated *out
 * (its length in *outlen) and returns 1; returns 0 when s does not match; -1 when out of
 * memory. */
int tr_re_replace(const tr_re *re, const char *s, size_t len, const char *tmpl, size_t tlen, char **out,
                  size_t *outlen);

#ifdef __cplusplus
}
#endif
#endif
