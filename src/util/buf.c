/* Bounded growable buffer and the JSON writer used by every HTTP API. */
#include "buf.h"
#include "text.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tr_buf_init(tr_buf *b, size_t max) {
    memset(b, 0, sizeof *b);
    b->max = max;
}

void tr_buf_free(tr_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void tr_buf_reset(tr_buf *b) {
    b->len = 0;
    b->failed = 0;
    if (b->data) b->data[0] = 0;
}

int tr_buf_reserve(tr_buf *b, size_t n) {
    if (b->failed) return -1;
    if (n > SIZE_MAX / 2 - b->len || (b->max && b->len + n > b->max)) goto fail;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (b->max && cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p) goto fail;
    b->data = p;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return -1;
}

int tr_buf_append(tr_buf *b, const void *p, size_t n) {
    if (tr_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int tr_buf_puts(tr_buf *b, const char *s) { return tr_buf_append(b, s, strlen(s)); }
int tr_buf_putc(tr_buf *b, char c) { return tr_buf_append(b, &c, 1); }

int tr_buf_vprintf(tr_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || tr_buf_reserve(b, (size_t)n)) return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int tr_buf_printf(tr_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = tr_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- JSON ---- */

void tr_json_init(tr_json *j, tr_buf *b) {
    j->b = b;
    j->depth = 0;
    j->first = 1;
}

static void sep(tr_json *j) {
    uint64_t bit = 1ull << j->depth;
    if (j->first & bit)
        j->first &= ~bit;
    else
        tr_buf_putc(j->b, ',');
}

static void open(tr_json *j, char c) {
    sep(j);
    tr_buf_putc(j->b, c);
    if (j->depth < 63) j->depth++;
    j->first |= 1ull << j->depth;
}

static void close_(tr_json *j, char c) {
    tr_buf_putc(j->b, c);
    if (j->depth > 0) j->depth--;
}

void tr_json_obj_open(tr_json *j) { open(j, '{'); }
void tr_json_obj_close(tr_json *j) { close_(j, '}'); }
void tr_json_arr_open(tr_json *j) { open(j, '['); }
void tr_json_arr_close(tr_json *j) { close_(j, ']'); }

void tr_json_escape(tr_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            size_t st = i;
            while (i < n && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\' && p[i] < 0x80)
                i++;
            tr_buf_append(b, s + st, i - st);
            continue;
        }
        if (c >= 0x80) {
            size_t l = tr_utf8_seq(s + i, n - i);
            if (l == 0) {
                tr_buf_puts(b, "\xEF\xBF\xBD");
                i++;
            } else {
                tr_buf_append(b, s + i, l);
                i += l;
            }
            continue;
        }
        switch (c) {
        case '"':
            tr_buf_puts(b, "\\\"");
            break;
        case '\\':
            tr_buf_puts(b, "\\\\");
            break;
        case '\n':
            tr_buf_puts(b, "\\n");
            break;
        case '\r':
            tr_buf_puts(b, "\\r");
            break;
        case '\t':
            tr_buf_puts(b, "\\t");
            break;
        default:
            tr_buf_printf(b, "\\u%04x", c);
        }
        i++;
    }
}

void tr_json_key(tr_json *j, const char *k) {
    sep(j);
    tr_buf_putc(j->b, '"');
    tr_json_escape(j->b, k, strlen(k));
    tr_buf_puts(j->b, "\":");
    j->first |= 1ull << j->depth; /* the value that follows takes no comma */
}

void tr_json_strn(tr_json *j, const char *s, size_t n) {
    sep(j);
    tr_buf_putc(j->b, '"');
    if (s) tr_json_escape(j->b, s, n);
    tr_buf_putc(j->b, '"');
}

void tr_json_str(tr_json *j, const char *s) { tr_json_strn(j, s, s ? strlen(s) : 0); }

void tr_json_int(tr_json *j, int64_t v) {
    sep(j);
    tr_buf_printf(j->b, "%lld", (long long)v);
}

void tr_json_uint(tr_json *j, uint64_t v) {
    sep(j);
    tr_buf_printf(j->b, "%llu", (unsigned long long)v);
}

static int shortest_digits(double v, char digits[24], int *exp10, int *neg);

/* Go's encoding/json float64: shortest 'f' form, or 'e' below 1e-6 and from 1e21 on (with
 * "e-07" shortened to "e-7"), so 300 is 300, not 3e+02 */
void tr_json_double(tr_json *j, double v) {
    sep(j);
    if (!isfinite(v)) {
        tr_buf_puts(j->b, "null");
        return;
    }
    char tmp[TR_DOUBLE_MAX_TEXT];
    double a = fabs(v);
    if (a != 0 && (a < 1e-6 || a >= 1e21)) {
        char digits[24];
        int exp10, neg, nd = shortest_digits(v, digits, &exp10, &neg);
        int o = 0;
        if (neg) tmp[o++] = '-';
        tmp[o++] = digits[0];
        if (nd > 1) {
            tmp[o++] = '.';
            for (int i = 1; i < nd; i++)
                tmp[o++] = digits[i];
        }
        snprintf(tmp + o, sizeof tmp - (size_t)o, exp10 < 0 ? "e-%d" : "e+%02d", abs(exp10));
    } else {
        tr_format_double(tmp, sizeof tmp, v);
    }
    tr_buf_puts(j->b, tmp);
}

void tr_json_bool(tr_json *j, int v) {
    sep(j);
    tr_buf_puts(j->b, v ? "true" : "false");
}

void tr_json_null(tr_json *j) {
    sep(j);
    tr_buf_puts(j->b, "null");
}

void tr_json_raw(tr_json *j, const char *s, size_t n) {
    sep(j);
    tr_buf_append(j->b, s, n);
}

/* The shortest decimal digits of a finite v that read back as v: fills digits (no point, no
 * trailing zeros, "0" for zero), sets *exp10 (the power of ten of the first digit) and *neg;
 * returns the digit count. */
/* Parses "d.ddd…e±x" (as %e prints) into digits, exponent and sign; returns the digit count. */
static int parse_e(const char *e, char *digits, int *exp10, int *neg) {
    const char *ep = strchr(e, 'e');
    *exp10 = atoi(ep + 1);
    *neg = e[0] == '-';
    int nd = 0;
    for (const char *c = e + *neg; c < ep; c++)
        if (*c >= '0' && *c <= '9') digits[nd++] = *c;
    return nd;
}

/* Does the k-digit mantissa m (k digits, the first at 10^exp10) read back as v? */
static int reads_back(double v, const char *m, int k, int exp10, int neg) {
    char t[48];
    size_t o = 0;
    if (neg) t[o++] = '-';
    memcpy(t + o, m, (size_t)k);
    o += (size_t)k;
    int x = exp10 - (k - 1);
    t[o++] = 'e';
    if (x < 0) {
        t[o++] = '-';
        x = -x;
    }
    char r[8];
    int n = 0;
    do {
        r[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    while (n)
        t[o++] = r[--n];
    t[o] = 0;
    return strtod(t, NULL) == v;
}

/* Exact digits by 128-bit arithmetic for 1e-6 <= |v| < 1e15 (the values of most answers):
 * v = m * 2^-s exactly, so v * 10^j = m * 10^j >> s with the remainder deciding the rounding
 * (half to even, as printf rounds). A k-digit result N (15 or 16 digits, N < 2^53) reads back
 * iff N / 10^j == v: both exact doubles, one correctly rounded division (Clinger's fast path).
 * Returns the digit count, or 0 when the slow path must decide. */
static int shortest_fast(double v, char digits[24], int *exp10) {
    double a = fabs(v);
    if (!(a >= 1e-6 && a < 1e15)) return 0;
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    static const uint64_t p10i[] = {1ULL,
                                    10ULL,
                                    100ULL,
                                    1000ULL,
                                    10000ULL,
                                    100000ULL,
                                    1000000ULL,
                                    10000000ULL,
                                    100000000ULL,
                                    1000000000ULL,
                                    10000000000ULL,
                                    100000000000ULL,
                                    1000000000000ULL,
                                    10000000000000ULL,
                                    100000000000000ULL,
                                    1000000000000000ULL,
                                    10000000000000000ULL,
                                    100000000000000000ULL,
                                    1000000000000000000ULL,
                                    10000000000000000000ULL};
    int be;
    double fr = frexp(a, &be);            /* a = fr * 2^be, fr in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(fr, 53); /* exact: 53 bits */
    int sh = 53 - be;                     /* a = m / 2^sh */
    if (sh <= 0 || sh >= 120) return 0;
    int e = (int)floor(log10(a)); /* first digit's power, fixed below */
    int fixes = 0;
    for (int k = 15; k <= 17; k++) {
        int j = k - 1 - e;
        if (j < 0 || j > 22) return 0;
        unsigned __int128 p = (unsigned __int128)p10i[j > 19 ? 19 : j] * (j > 19 ? p10i[j - 19] : 1);
        unsigned __int128 x = (unsigned __int128)m * p;
        unsigned __int128 n = x >> sh, rem = x - (n << sh), half = (unsigned __int128)1 << (sh - 1);
        if (rem > half || (rem == half && (n & 1))) n++;
        /* the estimate of e may be one off: then N has k-1 or k+1 digits */
        unsigned __int128 lo = p10i[k - 1], hi = p10i[k];
        if ((n >= hi || n < lo) && ++fixes > 4) return 0;
        if (n >= hi) {
            e++;
            k--;
            continue; /* redo this k with the right exponent */
        }
        if (n < lo) {
            e--;
            k--;
            continue;
        }
        if (k < 17) {
            if (n < ((unsigned __int128)1 << 53)) {
                if ((double)(uint64_t)n / p10[j] != a) continue;
            } else {
                /* N is not exact as a double: N / 10^j reads back iff it lies within half an
                 * ulp (2^-sh) of a = m / 2^sh, i.e. |N 2^(sh+1) - 2 m 10^j| < 10^j; a tie
                 * reads back when m is even. At a power of two the ulp below is half: left
                 * to the slow path. */
                if (m == (1ULL << 52) || sh > 72) return 0;
                unsigned __int128 l = n << (sh + 1), r = x << 1;
                unsigned __int128 dd = l > r ? l - r : r - l;
                if (dd > p || (dd == p && (m & 1))) continue;
            }
        }
        uint64_t u = (uint64_t)n;
        for (int i = k - 1; i >= 0; i--) {
            digits[i] = (char)('0' + u % 10);
            u /= 10;
        }
        int nd = k;
        while (nd > 1 && digits[nd - 1] == '0')
            nd--;
        *exp10 = e;
        return nd;
    }
    return 0;
}

static int shortest_digits(double v, char digits[24], int *exp10, int *neg) {
    char e[40];
    if (v == 0) { /* frequent in answers (rates of idle counters): no printf round trip */
        digits[0] = '0';
        *exp10 = 0;
        *neg = signbit(v) != 0;
        return 1;
    }
    if (!(fabs(v) >= DBL_MIN)) { /* zero and subnormals (fewer bits): try every length */
        for (int p = 1; p <= 17; p++) {
            snprintf(e, sizeof e, "%.*e", p - 1, v);
            if (p == 17 || strtod(e, NULL) == v) break;
        }
        int nd = parse_e(e, digits, exp10, neg);
        while (nd > 1 && digits[nd - 1] == '0')
            nd--;
        return nd;
    }
    /* When the shortest form that reads back has k <= 15 digits, the correctly rounded 15-digit
     * form is that one padded with zeros (it lies within half an ulp of v, closer than half a
     * unit of the 15th digit), so 15, 16 and 17 digits are the only tries needed. The 15- and
     * 16-digit roundings come from the 17 digits printed once, except when the digits cut off
     * are exactly a half (then the exact value decides: printed again). */
    double a = fabs(v);
    if (a < 9007199254740992.0 && a == floor(a)) {
        /* an integer below 2^53 (counts, bucket bounds): its own digits are the shortest, as
         * any fewer would move it by at least 1, more than half its ulp */
        uint64_t u = (uint64_t)a;
        char r[20];
        int n = 0;
        while (u) {
            r[n++] = (char)('0' + u % 10);
            u /= 10;
        }
        int nd = n;
        for (int i = 0; i < n; i++)
            digits[i] = r[n - 1 - i];
        while (nd > 1 && digits[nd - 1] == '0')
            nd--;
        *exp10 = n - 1;
        *neg = signbit(v) != 0;
        return nd;
    }
    int fnd = shortest_fast(v, digits, exp10);
    if (fnd) {
        *neg = signbit(v) != 0;
        return fnd;
    }
    char d17[24];
    snprintf(e, sizeof e, "%.16e", v);
    int nd = parse_e(e, d17, exp10, neg);
    int e17 = *exp10;
    for (int k = 15; k <= 16 && nd == 17; k++) {
        char m[24];
        int ex = e17;
        int tail = k == 15 ? (d17[15] - '0') * 10 + (d17[16] - '0') : d17[16] - '0';
        int half = k == 15 ? 50 : 5;
        if (tail == half) {
            char e2[40];
            snprintf(e2, sizeof e2, "%.*e", k - 1, v);
            int n2 = parse_e(e2, m, &ex, neg);
            if (n2 != k) continue;
        } else {
            memcpy(m, d17, (size_t)k);
            if (tail > half) { /* round up, carrying */
                int i = k - 1;
                while (i >= 0 && m[i] == '9')
                    m[i--] = '0';
                if (i >= 0)
                    m[i]++;
                else { /* 99…9 became 100…0 */
                    m[0] = '1';
                    ex++;
                }
            }
        }
        m[k] = 0;
        if (reads_back(v, m, k, ex, *neg)) {
            memcpy(digits, m, (size_t)k);
            *exp10 = ex;
            nd = k;
            while (nd > 1 && digits[nd - 1] == '0')
                nd--;
            return nd;
        }
    }
    memcpy(digits, d17, (size_t)nd);
    *exp10 = e17;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    return nd;
}

/* Lays digits out without an exponent into tmp (TR_DOUBLE_MAX_TEXT bytes); returns the length. */
static int layout_fixed(char *tmp, const char *digits, int nd, int exp10, int neg) {
    int o = 0;
    if (neg) tmp[o++] = '-';
    int point = exp10 + 1; /* digits before the decimal point */
    if (point <= 0) {
        tmp[o++] = '0';
        tmp[o++] = '.';
        for (int i = 0; i < -point; i++)
            tmp[o++] = '0';
        for (int i = 0; i < nd; i++)
            tmp[o++] = digits[i];
    } else {
        for (int i = 0; i < point; i++)
            tmp[o++] = i < nd ? digits[i] : '0';
        if (nd > point) {
            tmp[o++] = '.';
            for (int i = point; i < nd; i++)
                tmp[o++] = digits[i];
        }
    }
    tmp[o] = 0;
    return o;
}

int tr_format_double(char *out, size_t cap, double v) {
    if (isnan(v)) return snprintf(out, cap, "NaN");
    if (isinf(v)) return snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    char digits[24], tmp[TR_DOUBLE_MAX_TEXT];
    int exp10, neg, nd = shortest_digits(v, digits, &exp10, &neg);
    if (nd == 1 && digits[0] == '0') return snprintf(out, cap, neg ? "-0" : "0"); /* Go keeps -0's sign */
    int len = layout_fixed(tmp, digits, nd, exp10, neg);
    if (cap) {
        size_t c = (size_t)len < cap ? (size_t)len : cap - 1;
        memcpy(out, tmp, c);
        out[c] = 0;
    }
    return len;
}

int tr_format_double_g(char *out, size_t cap, double v) {
    if (isnan(v)) return snprintf(out, cap, "NaN");
    if (isinf(v)) return snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    if (v == 0) return snprintf(out, cap, signbit(v) ? "-0" : "0");
    char digits[24], tmp[TR_DOUBLE_MAX_TEXT];
    int exp10, neg, nd = shortest_digits(v, digits, &exp10, &neg);
    if (exp10 >= -4 && exp10 < 6) { /* Go's shortest %g switches to an exponent outside this */
        layout_fixed(tmp, digits, nd, exp10, neg);
        return snprintf(out, cap, "%s", tmp);
    }
    int o = 0;
    if (neg) tmp[o++] = '-';
    tmp[o++] = digits[0];
    if (nd > 1) {
        tmp[o++] = '.';
        for (int i = 1; i < nd; i++)
            tmp[o++] = digits[i];
    }
    snprintf(tmp + o, sizeof tmp - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    return snprintf(out, cap, "%s", tmp);
}
