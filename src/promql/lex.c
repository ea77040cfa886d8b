/* PromQL lexer: tokens on demand, strings with Go's escapes, durations and numbers as
 * Prometheus 3 scans them. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql/ast.h"
#include "util/text.h"

void pq_lex_init(pq_lexer *lx, const char *s, size_t len) {
    memset(lx, 0, sizeof *lx);
    lx->s = s;
    lx->len = len;
}

static int is_unit(const char *s, size_t n, size_t *ul) {
    if (n >= 2 && s[0] == 'm' && s[1] == 's') {
        *ul = 2;
        return 1;
    }
    if (n >= 1 && strchr("smhdwy", s[0]) && s[0]) {
        *ul = 1;
        return 1;
    }
    return 0;
}

static int64_t unit_ms(const char *u, size_t ul) {
    if (ul == 2) return 1;
    switch (u[0]) {
    case 's':
        return 1000;
    case 'm':
        return 60000;
    case 'h':
        return 3600000;
    case 'd':
        return 86400000;
    case 'w':
        return 7 * 86400000LL;
    case 'y':
        return 365 * 86400000LL;
    }
    return 0;
}

int pq_parse_duration(const char *s, size_t len, int64_t *ms) {
    if (len == 1 && s[0] == '0') {
        *ms = 0;
        return 0;
    }
    size_t i = 0;
    int64_t total = 0;
    int last_rank = 100;
    if (len == 0) return -1;
    while (i < len) {
        if (!isdigit((unsigned char)s[i])) return -1;
        int64_t v = 0;
        while (i < len && isdigit((unsigned char)s[i])) {
            if (v > INT64_MAX / 10) return -1;
            v = v * 10 + (s[i] - '0');
            i++;
        }
        size_t ul;
        if (!is_unit(s + i, len - i, &ul)) return -1;
        static const char *order[] = {"y", "w", "d", "h", "m", "s", "ms"};
        int rank = 0;
        for (int k = 0; k < 7; k++)
            if (strlen(order[k]) == ul && !memcmp(order[k], s + i, ul)) rank = k;
        if (last_rank != 100 && rank <= last_rank) return -1;
        last_rank = rank;
        int64_t u = unit_ms(s + i, ul);
        if (v != 0 && v > INT64_MAX / u) return -1;
        total += v * u;
        i += ul;
    }
    *ms = total;
    return 0;
}

void pq_format_duration(int64_t ms, char *buf, size_t cap) {
    if (ms == 0) {
        snprintf(buf, cap, "0s");
        return;
    }
    size_t o = 0;
    if (ms < 0) {
        o += snprintf(buf + o, cap - o, "-");
        ms = -ms;
    }
    static const struct {
        const char *u;
        int64_t m;
    } us[] = {{"y", 365 * 86400000LL},
              {"w", 7 * 86400000LL},
              {"d", 86400000LL},
              {"h", 3600000},
              {"m", 60000},
              {"s", 1000},
              {"ms", 1}};
    for (int k = 0; k < 7 && o < cap; k++) {
        if (ms >= us[k].m) {
            int64_t c = ms / us[k].m;
            ms -= c * us[k].m;
            o += snprintf(buf + o, cap - o, "%lld%s", (long long)c, us[k].u);
        }
    }
}

void pq_format_float(double v, char *buf, size_t cap) {
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Go's strconv.FormatFloat(v, 'g', -1, 64) shape: shortest digits, exponent when exp < -4
     * || exp >= 21 (%v uses 'g' with shortest precision and exponent threshold 21). */
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* tmp is d.ddde±XX */
    char *e = strchr(tmp, 'e');
    int exp = atoi(e + 1);
    char digits[32];
    size_t nd = 0;
    int neg = tmp[0] == '-';
    for (char *p = tmp + neg; p < e; p++)
        if (isdigit((unsigned char)*p)) digits[nd++] = *p;
    digits[nd] = 0;
    if (exp < -4 || exp >= 21) {
        /* d.ddde+XX with at least two exponent digits */
        size_t o = 0;
        o += snprintf(buf + o, cap - o, "%s%c", neg ? "-" : "", digits[0]);
        if (nd > 1) o += snprintf(buf + o, cap - o, ".%s", digits + 1);
        snprintf(buf + o, cap - o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    size_t o = 0;
    if (neg) o += snprintf(buf + o, cap - o, "-");
    if (exp < 0) {
        o += snprintf(buf + o, cap - o, "0.");
        for (int k = 0; k < -exp - 1; k++)
            o += snprintf(buf + o, cap - o, "0");
        snprintf(buf + o, cap - o, "%s", digits);
    } else {
        for (int k = 0; k <= exp || k < (int)nd; k++) {
            if (k == exp + 1) o += snprintf(buf + o, cap - o, ".");
            o += snprintf(buf + o, cap - o, "%c", k < (int)nd ? digits[k] : '0');
        }
    }
}

static size_t put_utf8(char *o, uint32_t r) {
    if (r < 0x80) {
        o[0] = (char)r;
        return 1;
    }
    if (r < 0x800) {
        o[0] = (char)(0xC0 | (r >> 6));
        o[1] = (char)(0x80 | (r & 0x3F));
        return 2;
    }
    if (r < 0x10000) {
        o[0] = (char)(0xE0 | (r >> 12));
        o[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        o[2] = (char)(0x80 | (r & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (r >> 18));
    o[1] = (char)(0x80 | ((r >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((r >> 6) & 0x3F));
    o[3] = (char)(0x80 | (r & 0x3F));
    return 4;
}

int pq_unquote(tr_arena *a, const char *s, size_t len, char **out, size_t *outlen) {
    if (len < 2 || s[0] != s[len - 1]) return -1;
    char q = s[0];
    char *o = a ? tr_arena_alloc(a, len + 1) : malloc(len + 1);
    if (!o) return -1;
    size_t n = 0;
    if (q == '`') {
        memcpy(o, s + 1, len - 2);
        n = len - 2;
    } else {
        for (size_t i = 1; i < len - 1; i++) {
            char c = s[i];
            if (c == q || c == '\n') goto bad;
            if (c != '\\') {
                o[n++] = c;
                continue;
            }
            if (++i >= len - 1) goto bad;
            c = s[i];
            switch (c) {
            case 'a':
                o[n++] = '\a';
                break;
            case 'b':
                o[n++] = '\b';
                break;
            case 'f':
                o[n++] = '\f';
                break;
            case 'n':
                o[n++] = '\n';
                break;
            case 'r':
                o[n++] = '\r';
                break;
            case 't':
                o[n++] = '\t';
                break;
            case 'v':
                o[n++] = '\v';
                break;
            case '\\':
                o[n++] = '\\';
                break;
            case '\'':
            case '"':
                if (c != q) goto bad;
                o[n++] = c;
                break;
            case 'x': {
                if (i + 2 >= len - 1 + 1 || tr_hex_val((unsigned char)s[i + 1]) < 0 ||
                    tr_hex_val((unsigned char)s[i + 2]) < 0)
                    goto bad;
                o[n++] =
                    (char)(tr_hex_val((unsigned char)s[i + 1]) * 16 + tr_hex_val((unsigned char)s[i + 2]));
                i += 2;
                break;
            }
            case 'u':
            case 'U': {
                int nd = c == 'u' ? 4 : 8;
                if (i + nd >= len - 1 + 1) goto bad;
                uint32_t r = 0;
                for (int k = 1; k <= nd; k++) {
                    int h = tr_hex_val((unsigned char)s[i + k]);
                    if (h < 0) goto bad;
                    r = r * 16 + (uint32_t)h;
                }
                if (r > 0x10FFFF || (r >= 0xD800 && r < 0xE000)) goto bad;
                i += nd;
                n += put_utf8(o + n, r);
                break;
            }
            default:
                if (c >= '0' && c <= '7') {
                    if (i + 2 >= len - 1 + 1) goto bad;
                    int v = 0;
                    for (int k = 0; k < 3; k++) {
                        char d = s[i + k];
                        if (d < '0' || d > '7') goto bad;
                        v = v * 8 + (d - '0');
                    }
                    if (v > 255) goto bad;
                    o[n++] = (char)v;
                    i += 2;
                    break;
                }
                goto bad;
            }
        }
    }
    o[n] = 0;
    *out = o;
    if (outlen) *outlen = n;
    return 0;
bad:
    if (!a) free(o);
    return -1;
}

static pq_tok mk(pq_lexer *lx, pq_tok_kind k, size_t start) {
    pq_tok t = {k, (int)start, (int)(lx->pos - start), lx->s + start};
    return t;
}

static pq_tok lerr(pq_lexer *lx, size_t start, const char *msg) {
    snprintf(lx->err, sizeof lx->err, "%s", msg);
    return mk(lx, T_ERROR, start);
}

static int is_alpha(int c) { return isalpha(c) || c == '_'; }

pq_tok pq_lex_next(pq_lexer *lx) {
    const char *s = lx->s;
    size_t n = lx->len;
again:
    while (lx->pos < n && isspace((unsigned char)s[lx->pos]))
        lx->pos++;
    if (lx->pos < n && s[lx->pos] == '#') {
        while (lx->pos < n && s[lx->pos] != '\n')
            lx->pos++;
        goto again;
    }
    size_t st = lx->pos;
    if (st >= n) {
        /* Prometheus's lexer words these itself, at the end of the input */
        if (lx->brace_depth > 0) return lerr(lx, st, "unexpected end of input inside braces");
        if (lx->paren_depth > 0) return lerr(lx, st, "unclosed left parenthesis");
        if (lx->bracket) return lerr(lx, st, "unclosed left bracket");
        return mk(lx, T_EOF, st);
    }
    char c = s[st];
    char c2 = st + 1 < n ? s[st + 1] : 0;
    lx->pos++;
    switch (c) {
    case '(':
        if (!lx->brace_depth) lx->paren_depth++;
        return mk(lx, T_LPAREN, st);
    case ')':
        if (!lx->brace_depth) {
            if (lx->paren_depth == 0) return lerr(lx, st, "unexpected right parenthesis ')'");
            lx->paren_depth--;
        }
        return mk(lx, T_RPAREN, st);
    case '{':
        lx->brace_depth++;
        return mk(lx, T_LBRACE, st);
    case '}':
        if (lx->brace_depth > 0) lx->brace_depth--;
        return mk(lx, T_RBRACE, st);
    case '[':
        if (lx->bracket) return lerr(lx, st, "unexpected left bracket '['");
        lx->bracket = 1;
        return mk(lx, T_LBRACKET, st);
    case ']':
        if (!lx->bracket) return lerr(lx, st, "unexpected right bracket ']'");
        lx->bracket = 0;
        return mk(lx, T_RBRACKET, st);
    case ',':
        return mk(lx, T_COMMA, st);
    case ':':
        if (lx->bracket) return mk(lx, T_COLON, st);
        break; /* an identifier starting with ':' */
    case '@':
        return mk(lx, T_AT, st);
    case '+':
        return mk(lx, T_ADD, st);
    case '-':
        return mk(lx, T_SUB, st);
    case '*':
        return mk(lx, T_MUL, st);
    case '/':
        return mk(lx, T_DIV, st);
    case '%':
        return mk(lx, T_MOD, st);
    case '^':
        return mk(lx, T_POW, st);
    case '=':
        if (c2 == '=') {
            lx->pos++;
            return mk(lx, T_EQLC, st);
        }
        if (c2 == '~') {
            lx->pos++;
            return mk(lx, T_EQLREGEX, st);
        }
        return mk(lx, T_ASSIGN, st);
    case '!':
        if (c2 == '=') {
            lx->pos++;
            return mk(lx, T_NEQ, st);
        }
        if (c2 == '~') {
            lx->pos++;
            return mk(lx, T_NEQREGEX, st);
        }
        return lerr(lx, st, "unexpected character after '!': '?'");
    case '<':
        if (c2 == '=') {
            lx->pos++;
            return mk(lx, T_LTE, st);
        }
        return mk(lx, T_LSS, st);
    case '>':
        if (c2 == '=') {
            lx->pos++;
            return mk(lx, T_GTE, st);
        }
        return mk(lx, T_GTR, st);
    case '"':
    case '\'':
    case '`': {
        while (lx->pos < n && s[lx->pos] != c) {
            if (s[lx->pos] == '\\' && c != '`')
                lx->pos++;
            else if (s[lx->pos] == '\n' && c != '`')
                return lerr(lx, st, "unterminated quoted string");
            lx->pos++;
        }
        if (lx->pos >= n)
            return lerr(lx, st, c == '`' ? "unterminated raw string" : "unterminated quoted string");
        lx->pos++;
        return mk(lx, T_STRING, st);
    }
    }
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)c2))) {
        lx->pos = st;
        /* duration: (digits unit)+ */
        size_t p = st;
        while (p < n && isdigit((unsigned char)s[p]))
            p++;
        size_t ul;
        if (p > st && is_unit(s + p, n - p, &ul)) {
            size_t q = p;
            int ok = 1;
            for (;;) {
                q += ul;
                if (q < n && isdigit((unsigned char)s[q])) {
                    size_t d = q;
                    while (d < n && isdigit((unsigned char)s[d]))
                        d++;
                    if (!is_unit(s + d, n - d, &ul)) {
                        ok = 0;
                        break;
                    }
                    q = d;
                    continue;
                }
                break;
            }
            if (ok && !(q < n && (isalnum((unsigned char)s[q]) || s[q] == '_'))) {
                lx->pos = q;
                return mk(lx, T_DURATION, st);
            }
        }
        p = st;
        if (s[p] == '0' && p + 1 < n && (s[p + 1] == 'x' || s[p + 1] == 'X')) {
            p += 2;
            while (p < n && isxdigit((unsigned char)s[p]))
                p++;
        } else {
            while (p < n && isdigit((unsigned char)s[p]))
                p++;
            if (p < n && s[p] == '.') {
                p++;
                while (p < n && isdigit((unsigned char)s[p]))
                    p++;
            }
            if (p < n && (s[p] == 'e' || s[p] == 'E')) {
                size_t q = p + 1;
                if (q < n && (s[q] == '+' || s[q] == '-')) q++;
                if (q < n && isdigit((unsigned char)s[q])) {
                    while (q < n && isdigit((unsigned char)s[q]))
                        q++;
                    p = q;
                }
            }
        }
        if (p < n && (isalnum((unsigned char)s[p]) || s[p] == '_' || s[p] == '.')) {
            lx->pos = p + 1;
            return lerr(lx, st, "bad number or duration syntax");
        }
        lx->pos = p;
        return mk(lx, T_NUMBER, st);
    }
    if (is_alpha((unsigned char)c) || c == ':') {
        while (lx->pos < n && (isalnum((unsigned char)s[lx->pos]) || s[lx->pos] == '_' ||
                               (s[lx->pos] == ':' && !lx->bracket && !lx->brace_depth)))
            lx->pos++;
        size_t l = lx->pos - st;
        if ((l == 3 && !strncasecmp(s + st, "inf", 3)) || (l == 3 && !strncasecmp(s + st, "nan", 3)))
            if (!lx->brace_depth) return mk(lx, T_NUMBER, st);
        return mk(lx, T_IDENT, st);
    }
    char msg[64];
    snprintf(msg, sizeof msg, "unexpected character: '%c'", c);
    return lerr(lx, st, msg);
}
