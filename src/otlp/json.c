/* OTLP/JSON decoding: a small streaming JSON parser that fills the same protobuf-c structs as
 * the binary decoder, driven by the generated descriptors, with every allocation drawn from
 * the request's arena.
 *
 * Why not a DOM parser (cJSON): OTLP carries 64-bit integers (timestamps, counts) as JSON
 * numbers too, and a double-based DOM silently rounds them past 2^53; a DOM also needs tens
 * of bytes per JSON value outside the request's memory bound. Parsing straight into the
 * structs keeps integers exact and the memory inside the arena limit.
 *
 * The mapping follows the protobuf JSON rules as the OTLP specification adapts them:
 * lowerCamelCase keys (the proto names are accepted too), trace and span ids as hex strings,
 * other bytes as base64, 64-bit integers as strings or numbers, doubles as numbers or
 * "NaN"/"Infinity"/"-Infinity", enums as integers or names, unknown keys ignored, null as
 * absent. A key given twice, or two members of one oneof, is an error. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_int.h"

/* The deepest JSON nesting accepted. OTLP needs 12 levels down to an attribute value and 4
 * more per kvlist level, so 32 nested attribute values fit; deeper input is refused here,
 * before it can cost stack. */
#define JSON_MAX_DEPTH 192

typedef struct jp {
    const char *begin, *p, *end;
    tr_arena *a;
    int depth;
    int failed;
    char *err;
    size_t errlen;
    /* path of the value being decoded: field names and element indexes */
    int nseg;
    const char *seg_name[JSON_MAX_DEPTH + 1];
    long seg_idx[JSON_MAX_DEPTH + 1];
} jp;

/* ---- errors ---- */

/* A value that does not fit its field: "<path>: <why>". */
static int fail_at(jp *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_at(jp *j, const char *fmt, ...) {
    if (j->failed) return -1;
    j->failed = 1;
    char path[160];
    otlp_field_path(path, sizeof path, j->seg_name, j->seg_idx, j->nseg, 1);
    char why[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (path[0])
        snprintf(j->err, j->errlen, "%s: %s", path, why);
    else
        snprintf(j->err, j->errlen, "%s", why);
    return -1;
}

/* Text that is not JSON at all: names the byte offset. */
static int fail_syntax(jp *j, const char *what) {
    if (j->failed) return -1;
    j->failed = 1;
    if (j->p >= j->end)
        snprintf(j->err, j->errlen, "invalid JSON: unexpected end of input (%s)", what);
    else
        snprintf(j->err, j->errlen, "invalid JSON at offset %zu: %s", (size_t)(j->p - j->begin), what);
    return -1;
}

/* ---- lexing ---- */

static int peek(struct jp *j);

/* A value of the wrong type for its field: a type error when the text there is a JSON value
 * at all, else a syntax error (so "[}" reads as broken JSON, not as a wrong type). */
static int fail_type(jp *j, const char *what) {
    int c = peek(j);
    if (c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n' || c == '-' ||
        (c >= '0' && c <= '9'))
        return fail_at(j, "%s", what);
    return fail_syntax(j, "expected a value");
}

static void ws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int peek(jp *j) {
    ws(j);
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

static int expect(jp *j, char c, const char *what) {
    if (peek(j) != c) return fail_syntax(j, what);
    j->p++;
    return 0;
}

static int literal(jp *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n)) return fail_syntax(j, "unknown literal");
    j->p += n;
    return 0;
}

static long hex4(const char *s) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = tr_hex_val((unsigned char)s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Scans the string token at j->p ('"'): checks control characters, escapes (including
 * surrogate pairs) and the UTF-8 of the raw bytes. On success sets [*s, *e) to the raw
 * contents, *esc when there are escapes, and moves past the closing quote. */
static int str_span(jp *j, const char **s, const char **e, int *esc) {
    const char *p = j->p + 1, *end = j->end;
    int any_esc = 0, high = 0;
    *s = p;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) {
            j->p = p;
            return fail_syntax(j, "control character in string");
        }
        if (c == '\\') {
            any_esc = 1;
            if (end - p < 2) {
                p = end;
                break;
            }
            char x = p[1];
            if (x == 'u') {
                if (end - p < 6) {
                    p = end;
                    break;
                }
                long u = hex4(p + 2);
                if (u < 0) {
                    j->p = p;
                    return fail_syntax(j, "bad \\u escape");
                }
                /* a low surrogate must follow a high one; nothing else may */
                if (u >= 0xDC00 && u <= 0xDFFF) {
                    if (!high) {
                        j->p = p;
                        return fail_syntax(j, "unpaired surrogate in \\u escape");
                    }
                    high = 0;
                } else if (high) {
                    j->p = p;
                    return fail_syntax(j, "unpaired surrogate in \\u escape");
                } else if (u >= 0xD800 && u <= 0xDBFF) {
                    high = 1;
                }
                p += 6;
                continue;
            }
            if (high) {
                j->p = p;
                return fail_syntax(j, "unpaired surrogate in \\u escape");
            }
            if (!strchr("\"\\/bfnrt", x) || x == 0) {
                j->p = p;
                return fail_syntax(j, "bad escape in string");
            }
            p += 2;
            continue;
        }
        if (high) {
            j->p = p;
            return fail_syntax(j, "unpaired surrogate in \\u escape");
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* one multi-byte sequence */
        size_t l = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        if ((size_t)(end - p) < l || !tr_utf8_valid(p, l) || l == 1) {
            j->p = p;
            return fail_syntax(j, "invalid UTF-8 in string");
        }
        p += l;
    }
    if (high) {
        j->p = p;
        return fail_syntax(j, "unpaired surrogate in \\u escape");
    }
    if (p >= end) {
        j->p = end;
        return fail_syntax(j, "unterminated string");
    }
    *e = p;
    *esc = any_esc;
    j->p = p + 1;
    return 0;
}

static size_t put_utf8(char *o, unsigned long c) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Decodes the raw contents [s, e) already checked by str_span into o (room for e - s + 1
 * bytes: no escape grows); returns the length and NUL-terminates. */
static size_t unescape(const char *s, const char *e, char *o) {
    size_t n = 0;
    while (s < e) {
        if (*s != '\\') {
            o[n++] = *s++;
            continue;
        }
        char x = s[1];
        s += 2;
        switch (x) {
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
        case 'u': {
            unsigned long u = (unsigned long)hex4(s);
            s += 4;
            if (u >= 0xD800 && u <= 0xDBFF) { /* str_span guarantees the low half follows */
                unsigned long lo = (unsigned long)hex4(s + 2);
                s += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(o + n, u);
            break;
        }
        default:
            o[n++] = x;
            break; /* " \ / */
        }
    }
    o[n] = 0;
    return n;
}

/* Parses a string token into the arena: *out (NUL-terminated), *len. */
static int parse_string(jp *j, char **out, size_t *len) {
    const char *s, *e;
    int esc;
    if (str_span(j, &s, &e, &esc)) return -1;
    char *o = tr_arena_alloc(j->a, (size_t)(e - s) + 1);
    if (!o) return fail_at(j, "request too large to decode");
    if (esc) {
        *len = unescape(s, e, o);
    } else {
        memcpy(o, s, (size_t)(e - s));
        o[e - s] = 0;
        *len = (size_t)(e - s);
    }
    *out = o;
    return 0;
}

/* Scans a JSON number token; sets [*s, *e). */
static int number_span(const char *p, const char *end, const char **e) {
    const char *q = p;
    if (q < end && *q == '-') q++;
    if (q >= end || *q < '0' || *q > '9') return -1;
    if (*q == '0')
        q++;
    else
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    if (q < end && *q == '.') {
        q++;
        if (q >= end || *q < '0' || *q > '9') return -1;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-')) q++;
        if (q >= end || *q < '0' || *q > '9') return -1;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    *e = q;
    return 0;
}

static int parse_number(jp *j, const char **s, size_t *n) {
    const char *e;
    if (number_span(j->p, j->end, &e)) return fail_syntax(j, "malformed number");
    *s = j->p;
    *n = (size_t)(e - j->p);
    j->p = e;
    return 0;
}

/* Skips any JSON value (unknown keys), still checking its syntax and depth. */
static int skip_value(jp *j) {
    int c = peek(j);
    switch (c) {
    case '"': {
        const char *s, *e;
        int esc;
        return str_span(j, &s, &e, &esc);
    }
    case 't':
        return literal(j, "true");
    case 'f':
        return literal(j, "false");
    case 'n':
        return literal(j, "null");
    case '{':
    case '[': {
        if (++j->depth > JSON_MAX_DEPTH) return fail_syntax(j, "nested too deeply");
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (peek(j) == close) {
            j->p++;
            j->depth--;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                const char *s, *e;
                int esc;
                if (peek(j) != '"') return fail_syntax(j, "expected a member name");
                if (str_span(j, &s, &e, &esc) || expect(j, ':', "expected ':'")) return -1;
            }
            if (skip_value(j)) return -1;
            int d = peek(j);
            if (d == ',') {
                j->p++;
                continue;
            }
            if (d == close) {
                j->p++;
                j->depth--;
                return 0;
            }
            return fail_syntax(j, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    default: {
        const char *s;
        size_t n;
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(j, &s, &n);
        return fail_syntax(j, "expected a value");
    }
    }
}

/* ---- scalars ---- */

/* The text of a numeric value given as a JSON number or string; *quoted tells which. The
 * returned text is NUL-terminated (copied into tmp, or into the arena when long). */
static int numeric_text(jp *j, char *tmp, size_t cap, const char **txt, size_t *n, int *quoted) {
    int c = peek(j);
    const char *s;
    if (c == '"') {
        const char *e;
        int esc;
        if (str_span(j, &s, &e, &esc)) return -1;
        size_t raw = (size_t)(e - s);
        char *o = raw < cap ? tmp : tr_arena_alloc(j->a, raw + 1);
        if (!o) return fail_at(j, "request too large to decode");
        if (esc)
            *n = unescape(s, e, o);
        else
            memcpy(o, s, raw), o[raw] = 0, *n = raw;
        *txt = o;
        *quoted = 1;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (parse_number(j, &s, n)) return -1;
        char *o = *n < cap ? tmp : tr_arena_alloc(j->a, *n + 1);
        if (!o) return fail_at(j, "request too large to decode");
        memcpy(o, s, *n);
        o[*n] = 0;
        *txt = o;
        *quoted = 0;
        return 0;
    }
    return fail_type(j, "expected a number");
}

/* Parses an integer value (number, or string holding one) within [min, max] (signed) or
 * [0, umax] (unsigned). Exponent and fraction forms are accepted when they denote an exact
 * integer, as protobuf JSON parsers do. */
static int parse_int(jp *j, int is_signed, int64_t min, int64_t max, uint64_t umax, int64_t *sv,
                     uint64_t *uv) {
    char tmp[64];
    const char *t = NULL, *e = NULL; /* set by numeric_text: initialised for gcc -O3's sake */
    size_t n = 0;
    int quoted;
    if (numeric_text(j, tmp, sizeof tmp, &t, &n, &quoted)) return -1;
    if (n == 0 || number_span(t, t + n, &e) || e != t + n) return fail_at(j, "not an integer");
    int plain = 1;
    for (size_t i = 0; i < n; i++)
        if (t[i] == '.' || t[i] == 'e' || t[i] == 'E') plain = 0;
    if (plain) {
        errno = 0;
        char *end;
        if (is_signed) {
            long long v = strtoll(t, &end, 10);
            if (errno == ERANGE || v < min || v > max) return fail_at(j, "integer out of range");
            *sv = v;
        } else {
            if (t[0] == '-') {
                /* "-0" is zero; any other negative is out of range */
                for (size_t i = 1; i < n; i++)
                    if (t[i] != '0') return fail_at(j, "integer out of range");
                *uv = 0;
                return 0;
            }
            unsigned long long v = strtoull(t, &end, 10);
            if (errno == ERANGE || v > umax) return fail_at(j, "integer out of range");
            *uv = v;
        }
        return 0;
    }
    double d = strtod(t, NULL);
    if (d != floor(d) || fabs(d) > 9007199254740992.0) return fail_at(j, "not an exact integer");
    if (is_signed) {
        if (d < (double)min || d > (double)max) return fail_at(j, "integer out of range");
        *sv = (int64_t)d;
    } else {
        if (d < 0 || d > (double)umax) return fail_at(j, "integer out of range");
        *uv = (uint64_t)d;
    }
    return 0;
}

static int parse_double(jp *j, double *out) {
    char tmp[64];
    const char *t = NULL, *e = NULL; /* set by numeric_text: initialised for gcc -O3's sake */
    size_t n = 0;
    int quoted;
    if (numeric_text(j, tmp, sizeof tmp, &t, &n, &quoted)) return -1;
    if (quoted) {
        if (!strcmp(t, "NaN")) {
            *out = NAN;
            return 0;
        }
        if (!strcmp(t, "Infinity")) {
            *out = INFINITY;
            return 0;
        }
        if (!strcmp(t, "-Infinity")) {
            *out = -INFINITY;
            return 0;
        }
        if (n == 0 || number_span(t, t + n, &e) || e != t + n) return fail_at(j, "not a number");
    }
    double d = strtod(t, NULL);
    if (isinf(d)) return fail_at(j, "number out of range");
    *out = d;
    return 0;
}

static int parse_enum(jp *j, const ProtobufCEnumDescriptor *ed, int32_t *out) {
    if (peek(j) == '"') {
        const char *s, *e;
        int esc;
        const char *at = j->p;
        if (str_span(j, &s, &e, &esc)) return -1;
        char name[96];
        size_t n = (size_t)(e - s);
        if (!esc && n < sizeof name) {
            memcpy(name, s, n);
            name[n] = 0;
            const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(ed, name);
            if (v) {
                *out = v->value;
                return 0;
            }
        }
        /* a number in quotes is accepted like any other integer */
        if (n > 0 && n < 16 && ((s[0] >= '0' && s[0] <= '9') || s[0] == '-')) {
            j->p = at;
        } else {
            return fail_at(j, "unknown %s value", ed->short_name);
        }
    }
    int64_t v;
    uint64_t uv;
    if (parse_int(j, 1, INT32_MIN, INT32_MAX, 0, &v, &uv)) return -1;
    *out = (int32_t)v; /* proto3 enums are open: unknown numbers are kept */
    return 0;
}

static int parse_bool(jp *j, protobuf_c_boolean *out) {
    int c = peek(j);
    if (c == 't') {
        *out = 1;
        return literal(j, "true");
    }
    if (c == 'f') {
        *out = 0;
        return literal(j, "false");
    }
    return fail_type(j, "expected true or false");
}

/* Trace and span ids are hex in OTLP/JSON (32 and 16 digits, any case; "" = empty). */
static int parse_hex_id(jp *j, size_t bytes, ProtobufCBinaryData *out) {
    if (peek(j) != '"') return fail_type(j, "expected a hex string");
    const char *s, *e;
    int esc;
    if (str_span(j, &s, &e, &esc)) return -1;
    size_t n = (size_t)(e - s);
    out->len = 0;
    out->data = NULL;
    if (n == 0) return 0;
    if (esc || n != bytes * 2) return fail_at(j, "not %zu hex digits", bytes * 2);
    uint8_t *d = tr_arena_alloc(j->a, bytes);
    if (!d) return fail_at(j, "request too large to decode");
    if (tr_hex_decode(s, bytes, d)) return fail_at(j, "not %zu hex digits", bytes * 2);
    out->data = d;
    out->len = bytes;
    return 0;
}

/* Other bytes are base64, standard or URL-safe alphabet, padding optional. */
static int parse_base64(jp *j, ProtobufCBinaryData *out) {
    if (peek(j) != '"') return fail_type(j, "expected a base64 string");
    char *s;
    size_t n;
    if (parse_string(j, &s, &n)) return -1;
    /* decode in place: output never outruns input */
    long on = tr_base64_decode(s, n, (uint8_t *)s);
    if (on < 0) return fail_at(j, "invalid base64");
    uint8_t *o = (uint8_t *)s;
    out->data = on ? o : NULL;
    out->len = (size_t)on;
    return 0;
}

/* ---- messages ---- */

static int parse_message(jp *j, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out);

static size_t elem_size(const ProtobufCFieldDescriptor *f) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 8;
}

/* Parses one value of field f's type into dst. */
static int parse_value(jp *j, const ProtobufCFieldDescriptor *f, void *dst) {
    int64_t sv = 0;
    uint64_t uv = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (parse_int(j, 1, INT32_MIN, INT32_MAX, 0, &sv, &uv)) return -1;
        *(int32_t *)dst = (int32_t)sv;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (parse_int(j, 0, 0, 0, UINT32_MAX, &sv, &uv)) return -1;
        *(uint32_t *)dst = (uint32_t)uv;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (parse_int(j, 1, INT64_MIN, INT64_MAX, 0, &sv, &uv)) return -1;
        *(int64_t *)dst = sv;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (parse_int(j, 0, 0, 0, UINT64_MAX, &sv, &uv)) return -1;
        *(uint64_t *)dst = uv;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return parse_double(j, (double *)dst);
    case PROTOBUF_C_TYPE_FLOAT: {
        double d;
        if (parse_double(j, &d)) return -1;
        *(float *)dst = (float)d;
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        return parse_bool(j, (protobuf_c_boolean *)dst);
    case PROTOBUF_C_TYPE_ENUM:
        return parse_enum(j, f->descriptor, (int32_t *)dst);
    case PROTOBUF_C_TYPE_STRING: {
        if (peek(j) != '"') return fail_type(j, "expected a string");
        size_t n;
        if (parse_string(j, (char **)dst, &n)) return -1;
        /* protobuf-c keeps strings NUL-terminated: a \u0000 would silently cut the value */
        if (memchr(*(char **)dst, 0, n)) return fail_at(j, "string holds a NUL character (\\u0000)");
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        size_t idlen = !strcmp(f->name, "trace_id")                                          ? 16
                       : (!strcmp(f->name, "span_id") || !strcmp(f->name, "parent_span_id")) ? 8
                                                                                             : 0;
        return idlen ? parse_hex_id(j, idlen, dst) : parse_base64(j, dst);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (peek(j) != '{') return fail_type(j, "expected an object");
        return parse_message(j, f->descriptor, (ProtobufCMessage **)dst);
    }
    }
    return fail_at(j, "unsupported field type");
}

/* A repeated field: a JSON array, collected into a growing arena vector. */
static int parse_repeated(jp *j, const ProtobufCFieldDescriptor *f, char *base) {
    if (peek(j) != '[') return fail_type(j, "expected an array");
    if (++j->depth > JSON_MAX_DEPTH) return fail_syntax(j, "nested too deeply");
    j->p++;
    size_t esz = elem_size(f), n = 0, cap = 0;
    char *v = NULL;
    if (peek(j) == ']') {
        j->p++;
    } else {
        for (;;) {
            j->seg_idx[j->nseg - 1] = (long)n;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 4;
                char *nv = tr_arena_alloc(j->a, nc * esz);
                if (!nv) return fail_at(j, "request too large to decode");
                if (n) memcpy(nv, v, n * esz);
                v = nv;
                cap = nc;
            }
            if (peek(j) == 'n') return fail_at(j, "null is not allowed in an array");
            memset(v + n * esz, 0, esz);
            if (parse_value(j, f, v + n * esz)) return -1;
            n++;
            int c = peek(j);
            if (c == ',') {
                j->p++;
                continue;
            }
            if (c == ']') {
                j->p++;
                break;
            }
            return fail_syntax(j, "expected ',' or ']'");
        }
    }
    j->seg_idx[j->nseg - 1] = -1;
    j->depth--;
    *(size_t *)(base + f->quantifier_offset) = n;
    *(void **)(base + f->offset) = v;
    return 0;
}

/* Finds the field a JSON member name denotes: the proto name, or its lowerCamelCase form. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d, const char *key,
                                                  size_t n) {
    char snake[80];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (c >= 'A' && c <= 'Z') {
            if (o + 2 >= sizeof snake) return NULL;
            snake[o++] = '_';
            snake[o++] = (char)(c + 32);
        } else {
            if (o + 1 >= sizeof snake || c == 0) return NULL;
            snake[o++] = c;
        }
    }
    snake[o] = 0;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, snake);
    if (!f) return NULL;
    if (o == n) return f; /* the key had no capitals: it is the proto name itself */
    /* the key had capitals: accept only the exact lowerCamelCase spelling of the name */
    char camel[80];
    const char *names[1] = {f->name};
    long idx[1] = {-1};
    otlp_field_path(camel, sizeof camel, names, idx, 1, 1);
    return strlen(camel) == n && !memcmp(camel, key, n) ? f : NULL;
}

static int parse_message(jp *j, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out) {
    if (++j->depth > JSON_MAX_DEPTH) return fail_syntax(j, "nested too deeply");
    if (j->nseg >= JSON_MAX_DEPTH) return fail_syntax(j, "nested too deeply");
    ProtobufCMessage *m = tr_arena_alloc(j->a, d->sizeof_message);
    if (!m) return fail_at(j, "request too large to decode");
    d->message_init(m);
    char *base = (char *)m;
    uint64_t seen = 0;
    j->p++; /* '{' */
    if (peek(j) == '}') {
        j->p++;
        goto done;
    }
    for (;;) {
        if (peek(j) != '"') return fail_syntax(j, "expected a member name");
        const char *ks, *ke;
        int esc;
        if (str_span(j, &ks, &ke, &esc)) return -1;
        char kb[80];
        size_t kn = (size_t)(ke - ks);
        const ProtobufCFieldDescriptor *f = NULL;
        if (kn < sizeof kb) {
            if (esc)
                kn = unescape(ks, ke, kb);
            else
                memcpy(kb, ks, kn), kb[kn] = 0;
            f = find_field(d, kb, kn);
        }
        if (expect(j, ':', "expected ':'")) return -1;
        if (!f) {
            if (skip_value(j)) return -1;
        } else if (peek(j) == 'n') {
            if (literal(j, "null")) return -1; /* null: the field is absent */
        } else {
            unsigned fi = (unsigned)(f - d->fields);
            j->seg_name[j->nseg] = f->name;
            j->seg_idx[j->nseg] = -1;
            j->nseg++;
            if (fi < 64 && (seen & (1ull << fi))) return fail_at(j, "given more than once");
            if (fi < 64) seen |= 1ull << fi;
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                if (parse_repeated(j, f, base)) return -1;
            } else {
                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                    uint32_t *c = (uint32_t *)(base + f->quantifier_offset);
                    if (*c != 0 && *c != f->id)
                        return fail_at(j, "another field of the same oneof is already set");
                    *c = f->id;
                } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                           f->type != PROTOBUF_C_TYPE_STRING) {
                    *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
                }
                if (parse_value(j, f, base + f->offset)) return -1;
            }
            j->nseg--;
        }
        int c = peek(j);
        if (c == ',') {
            j->p++;
            continue;
        }
        if (c == '}') {
            j->p++;
            break;
        }
        return fail_syntax(j, "expected ',' or '}'");
    }
done:
    j->depth--;
    *out = m;
    return 0;
}

int otlp_decode_json(otlp_signal sig, const uint8_t *buf, size_t len, tr_arena *a, otlp_export *ex, char *err,
                     size_t errlen) {
    const ProtobufCMessageDescriptor *d;
    if (sig == OTLP_METRICS)
        d = &opentelemetry__proto__collector__v1__export_metrics_service_request__descriptor;
    else if (sig == OTLP_TRACES)
        d = &opentelemetry__proto__collector__v1__export_trace_service_request__descriptor;
    else {
        snprintf(err, errlen, "unsupported signal");
        return -1;
    }
    jp *j = tr_arena_alloc(a, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "request too large to decode");
        return -1;
    }
    memset(j, 0, sizeof *j);
    j->begin = j->p = (const char *)(buf ? buf : (const uint8_t *)"");
    j->end = j->begin + len;
    j->a = a;
    j->err = err;
    j->errlen = errlen;
    ProtobufCMessage *m = NULL;
    if (peek(j) != '{') {
        fail_syntax(j, "expected a JSON object");
        return -1;
    }
    if (parse_message(j, d, &m)) return -1;
    if (peek(j) != -1) {
        fail_syntax(j, "unexpected data after the JSON object");
        return -1;
    }
    ex->metrics = NULL;
    ex->traces = NULL;
    if (sig == OTLP_METRICS)
        ex->metrics = (otlp_metrics_req *)m;
    else
        ex->traces = (otlp_traces_req *)m;
    return otlp_finish_decode(ex, 1, err, errlen);
}
