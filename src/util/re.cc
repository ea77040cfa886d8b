/* util/re.h over RE2: the one C++ file of the tree. Semantics follow Prometheus 3, which parses
 * the pattern with Go's regexp/syntax (Perl flags plus DotNL) and matches it fully anchored:
 * RE2 is built with dot_nl and matched with ANCHOR_BOTH, which is ^(?s:PATTERN)$ without
 * changing the group numbers or the text quoted in error messages.
 *
 * Where RE2 and Go differ, this file makes RE2 answer as Go does:
 *  - error messages use Go's wording ("error parsing regexp: missing closing ): `(a`");
 *  - \C (any byte) is refused, as Go has no such escape;
 *  - (?<name>re) is accepted as (?P<name>re) (Go 1.22+, which Prometheus 3 builds with);
 *  - nesting deeper than 1000 is refused ("expression nests too deeply").
 * One difference is left: a subject that is not valid UTF-8 has its bad bytes matched by '.'
 * in Go (as U+FFFD) and not by RE2. The store only holds valid UTF-8 label values.
 *
 * Memory: every program is bounded by max_mem (kMaxMem below); RE2 refuses counted repetition
 * above 1000, nested counted repetition whose product is above 1000, and programs over the
 * bound, each at parse or compile time, so explosive patterns cost microseconds. */
#include "util/re.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace {

/* Each compiled pattern's program and DFA caches together; RE2's default is 8 MiB. */
constexpr int64_t kMaxMem = 8 << 20;
constexpr int kMaxNest = 1000;

/* How a pattern can be answered without running RE2. */
enum class Shape { Generic, Any, NonEmpty, Set, Prefix, Suffix, Contains };

const char *go_code(RE2::ErrorCode c) {
    switch (c) {
    case RE2::ErrorBadEscape:
        return "invalid escape sequence";
    case RE2::ErrorBadCharClass:
        return "invalid character class";
    case RE2::ErrorBadCharRange:
        return "invalid character class range";
    case RE2::ErrorMissingBracket:
        return "missing closing ]";
    case RE2::ErrorMissingParen:
        return "missing closing )";
    case RE2::ErrorUnexpectedParen:
        return "unexpected )";
    case RE2::ErrorTrailingBackslash:
        return "trailing backslash at end of expression";
    case RE2::ErrorRepeatArgument:
        return "missing argument to repetition operator";
    case RE2::ErrorRepeatSize:
        return "invalid repeat count";
    case RE2::ErrorRepeatOp:
        return "invalid nested repetition operator";
    case RE2::ErrorBadPerlOp:
        return "invalid or unsupported Perl syntax";
    case RE2::ErrorBadUTF8:
        return "invalid UTF-8";
    case RE2::ErrorBadNamedCapture:
        return "invalid named capture";
    case RE2::ErrorPatternTooLarge:
        return "expression too large";
    default:
        return "unexpected error";
    }
}

void set_err(char *err, size_t errlen, const char *code, const std::string &arg) {
    if (err && errlen) snprintf(err, errlen, "error parsing regexp: %s: `%s`", code, arg.c_str());
}

/* A literal run: plain characters and escaped punctuation. Appends its text to *out and
 * returns the number of pattern bytes it spans (it stops at the first metacharacter).
 * *last_atom is set to the offset in *out where the last character starts (so that a
 * quantifier after it can take it back). */
size_t literal_run(const std::string &p, size_t i, std::string *out, size_t *last_atom) {
    size_t start = i;
    while (i < p.size()) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\') {
            if (i + 1 >= p.size()) break;
            unsigned char e = (unsigned char)p[i + 1];
            if (e >= 0x80 || e == 0 || isalnum(e)) break; /* \d, \pL, \x41, \Q…: not plain */
            if (last_atom) *last_atom = out->size();
            out->push_back((char)e);
            i += 2;
            continue;
        }
        if (c == 0 || strchr(".+*?()[]{}|^$", c)) break; /* a set holds C strings: no NUL */
        if (last_atom) *last_atom = out->size();
        /* a UTF-8 sequence is one atom for a following quantifier */
        size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (i + n > p.size()) n = p.size() - i;
        out->append(p, i, n);
        i += n;
    }
    return i - start;
}

/* Offset of the first byte of s that does not begin a valid UTF-8 sequence. */
size_t bad_utf8_at(const std::string &s) {
    static const RE2 valid("(?s)(.*)"); /* RE2's '.' takes valid UTF-8 only */
    re2::StringPiece m;
    if (!valid.Match(s, 0, s.size(), RE2::ANCHOR_START, &m, 1)) return 0;
    return m.size();
}

int is_quant(char c) { return c == '*' || c == '+' || c == '?' || c == '{'; }

/* A pattern made of "|"-separated literals only (a|b|c, "" and "a|" included) → the set. */
bool literal_set(const std::string &p, std::vector<std::string> *set) {
    size_t i = 0;
    for (;;) {
        std::string lit;
        i += literal_run(p, i, &lit, nullptr);
        set->push_back(lit);
        if (i == p.size()) return true;
        if (p[i] != '|') return false;
        i++;
    }
}

/* The fast shape of a pattern: LIT, LIT.*, .*LIT, .*LIT.*, .*, .+, or literal sets. */
Shape shape_of(const std::string &p, std::vector<std::string> *set, std::string *lit) {
    if (p == ".*") return Shape::Any;
    if (p == ".+") return Shape::NonEmpty;
    if (literal_set(p, set)) return Shape::Set;
    set->clear();
    bool lead = p.compare(0, 2, ".*") == 0;
    size_t i = lead ? 2 : 0;
    size_t n = literal_run(p, i, lit, nullptr);
    if (n == 0) return Shape::Generic;
    i += n;
    bool trail = p.size() - i == 2 && p.compare(i, 2, ".*") == 0;
    if (!trail && i != p.size()) return Shape::Generic;
    if (lead && trail) return Shape::Contains;
    if (lead) return Shape::Suffix;
    if (trail) return Shape::Prefix;
    return Shape::Generic; /* a lone literal is a Set, found above */
}

/* A literal every match must begin with: the leading literal run of a pattern with no
 * top-level alternation (its last character dropped when a quantifier follows it). */
std::string required_prefix(const std::string &p) {
    int depth = 0;
    bool cls = false;
    for (size_t i = 0; i < p.size(); i++) {
        char c = p[i];
        if (c == '\\') {
            if (i + 1 < p.size() && p[i + 1] == 'Q') return ""; /* \Q…\E: keep it simple */
            i++;
        } else if (cls) {
            size_t e =
                c == '[' && i + 1 < p.size() && p[i + 1] == ':' ? p.find(":]", i + 2) : std::string::npos;
            if (e != std::string::npos)
                i = e + 1; /* [:alpha:] inside a class */
            else if (c == ']')
                cls = false;
        } else if (c == '[') {
            cls = true;
            if (i + 1 < p.size() && p[i + 1] == '^') i++;
            if (i + 1 < p.size() && p[i + 1] == ']') i++; /* a leading ] is literal */
        } else if (c == '(')
            depth++;
        else if (c == ')')
            depth--;
        else if (c == '|' && depth == 0)
            return "";
    }
    std::string lit;
    size_t last = 0;
    size_t n = literal_run(p, 0, &lit, &last);
    if (n < p.size() && is_quant(p[n])) lit.resize(last);
    return lit;
}

/* Go's differences from RE2, checked and rewritten before RE2 sees the pattern (see the file
 * comment). Returns false with err set when Go would refuse the pattern. */
bool go_syntax(const std::string &p, std::string *out, char *err, size_t errlen) {
    out->reserve(p.size() + 8);
    int depth = 0;
    bool cls = false;
    for (size_t i = 0; i < p.size(); i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            char e = p[i + 1];
            if (e == 'C') {
                set_err(err, errlen, "invalid escape sequence", "\\C");
                return false;
            }
            if (e == 'Q') { /* \Q…\E is literal text: copy it whole */
                size_t end = p.find("\\E", i + 2);
                end = end == std::string::npos ? p.size() : end + 2;
                out->append(p, i, end - i);
                i = end - 1;
                continue;
            }
            out->push_back(c);
            out->push_back(e);
            i++;
            continue;
        }
        if (cls) {
            size_t e =
                c == '[' && i + 1 < p.size() && p[i + 1] == ':' ? p.find(":]", i + 2) : std::string::npos;
            if (e != std::string::npos) { /* [:alpha:] inside a class */
                out->append(p, i, e + 2 - i);
                i = e + 1;
                continue;
            }
            if (c == ']') cls = false;
        } else if (c == '[') {
            cls = true;
            out->push_back(c);
            if (i + 1 < p.size() && p[i + 1] == '^') out->push_back(p[++i]);
            if (i + 1 < p.size() && p[i + 1] == ']') out->push_back(p[++i]);
            continue;
        } else if (c == '(') {
            if (++depth > kMaxNest) {
                set_err(err, errlen, "expression nests too deeply", p);
                return false;
            }
            if (p.compare(i, 3, "(?<") == 0 && i + 3 < p.size() && p[i + 3] != '=' && p[i + 3] != '!') {
                out->append("(?P<");
                i += 2;
                continue;
            }
        } else if (c == ')')
            depth--;
        out->push_back(c);
    }
    return true;
}

} // namespace

struct tr_re {
    RE2 *re = nullptr;
    std::string pattern;
    Shape shape = Shape::Generic;
    std::string lit;                /* Prefix / Suffix / Contains */
    std::vector<std::string> set;   /* Set: sorted, unique */
    std::vector<const char *> setp; /* Set: C views of set */
    std::string prefix;             /* Generic: every match starts with it */
};

extern "C" tr_re *tr_re_compile(const char *pat, size_t len, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    tr_re *r = new (std::nothrow) tr_re;
    if (!r) goto oom;
    try {
        r->pattern.assign(pat, len);
        std::string go;
        if (!go_syntax(r->pattern, &go, err, errlen)) {
            delete r;
            return nullptr;
        }
        RE2::Options o;
        o.set_dot_nl(true);
        o.set_log_errors(false);
        o.set_max_mem(kMaxMem);
        r->re = new RE2(go, o);
        if (!r->re->ok()) {
            RE2::ErrorCode c = r->re->error_code();
            std::string arg = r->re->error_arg();
            if (c == RE2::ErrorMissingParen || c == RE2::ErrorPatternTooLarge ||
                c == RE2::ErrorUnexpectedParen || c == RE2::ErrorInternal)
                arg = r->pattern; /* Go quotes the whole expression for these */
            else if (c == RE2::ErrorTrailingBackslash)
                arg = "";
            else if (c == RE2::ErrorBadUTF8)
                arg = r->pattern.substr(bad_utf8_at(r->pattern)); /* Go quotes from there */
            set_err(err, errlen, go_code(c), arg);
            delete r->re;
            delete r;
            return nullptr;
        }
        r->shape = shape_of(r->pattern, &r->set, &r->lit);
        if (r->shape == Shape::Set) {
            std::sort(r->set.begin(), r->set.end());
            r->set.erase(std::unique(r->set.begin(), r->set.end()), r->set.end());
            for (auto &s : r->set)
                r->setp.push_back(s.c_str());
        } else if (r->shape == Shape::Generic) {
            r->prefix = required_prefix(r->pattern);
        }
        return r;
    } catch (const std::bad_alloc &) {
        if (r) delete r->re;
        delete r;
    }
oom:
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return nullptr;
}

extern "C" void tr_re_free(tr_re *re) {
    if (!re) return;
    delete re->re;
    delete re;
}

extern "C" const char *tr_re_pattern(const tr_re *re) { return re->pattern.c_str(); }

extern "C" int tr_re_match(const tr_re *re, const char *s, size_t len) {
    const std::string &l = re->lit;
    switch (re->shape) {
    case Shape::Any:
        return 1;
    case Shape::NonEmpty:
        return len > 0;
    case Shape::Set: {
        re2::StringPiece v(s, len);
        return std::binary_search(re->set.begin(), re->set.end(), v,
                                  [](re2::StringPiece a, re2::StringPiece b) { return a < b; });
    }
    case Shape::Prefix:
        return len >= l.size() && memcmp(s, l.data(), l.size()) == 0;
    case Shape::Suffix:
        return len >= l.size() && memcmp(s + len - l.size(), l.data(), l.size()) == 0;
    case Shape::Contains:
        return memmem(s, len, l.data(), l.size()) != nullptr;
    case Shape::Generic:
        break;
    }
    const std::string &p = re->prefix;
    if (len < p.size() || memcmp(s, p.data(), p.size()) != 0) return 0;
    return re->re->Match(re2::StringPiece(s, len), 0, len, RE2::ANCHOR_BOTH, nullptr, 0);
}

extern "C" tr_re_kind tr_re_kind_of(const tr_re *re) {
    switch (re->shape) {
    case Shape::Any:
        return TR_RE_ANY;
    case Shape::NonEmpty:
        return TR_RE_NONEMPTY;
    case Shape::Set:
        return TR_RE_SET;
    default:
        return TR_RE_GENERIC;
    }
}

extern "C" const char *const *tr_re_set(const tr_re *re, size_t *n) {
    *n = re->shape == Shape::Set ? re->setp.size() : 0;
    return *n ? re->setp.data() : nullptr;
}

namespace {

/* Go's unicode.IsLetter || unicode.IsDigit || '_', over a leading run of s: the length of
 * the longest such run (invalid UTF-8 ends it, as Go's RuneError is neither). */
size_t name_run(const char *s, size_t n) {
    static const RE2 word("([\\p{L}\\p{Nd}_]*)");
    re2::StringPiece m;
    if (!word.Match(re2::StringPiece(s, n), 0, n, RE2::ANCHOR_START, &m, 1)) return 0;
    return m.size();
}

} // namespace

extern "C" int tr_re_replace(const tr_re *re, const char *s, size_t len, const char *tmpl, size_t tlen,
                             char **out, size_t *outlen) {
    try {
        int ng = re->re->NumberOfCapturingGroups();
        std::vector<re2::StringPiece> g((size_t)ng + 1);
        if (!re->re->Match(re2::StringPiece(s, len), 0, len, RE2::ANCHOR_BOTH, g.data(), ng + 1)) return 0;
        std::string dst;
        /* Regexp.Expand: "$$" is "$"; "$name"/"${name}" is a group by number (all digits, no
         * leading zero) or by name, empty when there is no such group or it did not take part;
         * a malformed reference leaves the "$" as text. */
        size_t i = 0;
        while (i < tlen) {
            const char *d = (const char *)memchr(tmpl + i, '$', tlen - i);
            if (!d) break;
            dst.append(tmpl + i, (size_t)(d - tmpl) - i);
            i = (size_t)(d - tmpl) + 1;
            if (i < tlen && tmpl[i] == '$') {
                dst.push_back('$');
                i++;
                continue;
            }
            bool brace = i < tlen && tmpl[i] == '{';
            size_t ns = i + (brace ? 1 : 0);
            size_t nl = name_run(tmpl + ns, tlen - ns);
            if (nl == 0 || (brace && (ns + nl >= tlen || tmpl[ns + nl] != '}'))) {
                dst.push_back('$'); /* malformed: the rest is text */
                continue;
            }
            std::string name(tmpl + ns, nl);
            i = ns + nl + (brace ? 1 : 0);
            long num = 0;
            for (char c : name) {
                if (c < '0' || c > '9' || num >= 100000000) {
                    num = -1;
                    break;
                }
                num = num * 10 + (c - '0');
            }
            if (name[0] == '0' && name.size() > 1) num = -1;
            const re2::StringPiece *sub = nullptr;
            if (num >= 0) {
                if (num <= ng) sub = &g[(size_t)num];
            } else { /* the leftmost group of that name that took part (names may repeat) */
                for (auto &kv : re->re->CapturingGroupNames())
                    if (kv.second == name && g[(size_t)kv.first].data()) {
                        sub = &g[(size_t)kv.first];
                        break;
                    }
            }
            if (sub && sub->data()) dst.append(sub->data(), sub->size());
        }
        dst.append(tmpl + i, tlen - i);
        char *o = (char *)malloc(dst.size() + 1);
        if (!o) return -1;
        memcpy(o, dst.data(), dst.size());
        o[dst.size()] = 0;
        *out = o;
        *outlen = dst.size();
        return 1;
    } catch (const std::bad_alloc &) {
        return -1;
    }
}
