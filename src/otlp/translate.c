/* OTLP metrics → Prometheus samples (see translate.h): metric and label naming exactly as the
 * Collector's prometheusremotewrite exporter with its default strategy
 * (UnderscoreEscapingWithSuffixes), job/instance/target_info/scope labels, every point type,
 * delta → cumulative with a bounded running state, exponential → classic histograms. */
#include "translate.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/text.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics pb_rm;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics pb_sm;
typedef Opentelemetry__Proto__Metrics__V1__Metric pb_metric;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint pb_num;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint pb_hist;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint pb_exph;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets pb_expb;
typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint pb_summ;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar pb_exemplar;

#define NO_RECORDED_VALUE                                                                                    \
    OPENTELEMETRY__PROTO__METRICS__V1__DATA_POINT_FLAGS__DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
#define TEMP_DELTA OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA
#define TEMP_CUMULATIVE                                                                                      \
    OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE

#define NAME_MAX_LEN 1024      /* longer metric names are refused rather than truncated */
#define MAX_EXEMPLAR_RUNES 128 /* OpenMetrics: filtered attributes only while under this */
#define EXP_OUT_MAX_SCALE 3    /* classic buckets from exponential ones: at most 8 per doubling */
#define EXP_MIN_SCALE (-10)    /* the OTLP data model's range of scales */
#define EXP_MAX_SCALE 20
#define EXP_STATE_MAX_BUCKETS 4096 /* a delta exponential state is downscaled to stay under */

static const char *nz(const char *s) { return s ? s : ""; }

static double stale_nan(void) {
    uint64_t bits = 0x7ff0000000000002ULL;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* ns since the epoch → ms, as the Collector does (int64 division). */
static int64_t ns_to_ms(uint64_t ns) { return (int64_t)ns / 1000000; }

/* ================================================================ naming */

static int metric_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':';
}
static int label_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Bytes of the UTF-8 rune at s (n bytes left); 1 for a byte that starts no valid rune, which
 * Go's range loop also reads as one (RuneError) rune. */
static size_t rune_len(const unsigned char *s, size_t n) {
    size_t l = tr_utf8_seq((const char *)s, n);
    return l ? l : 1; /* a bad byte is one rune (U+FFFD), as Go decodes it */
}

static const struct {
    const char *otel, *prom;
} unit_map[] = {
    {"d", "days"},
    {"h", "hours"},
    {"min", "minutes"},
    {"s", "seconds"},
    {"ms", "milliseconds"},
    {"us", "microseconds"},
    {"ns", "nanoseconds"},
    {"By", "bytes"},
    {"KiBy", "kibibytes"},
    {"MiBy", "mebibytes"},
    {"GiBy", "gibibytes"},
    {"TiBy", "tibibytes"},
    {"KBy", "kilobytes"},
    {"MBy", "megabytes"},
    {"GBy", "gigabytes"},
    {"TBy", "terabytes"},
    {"m", "meters"},
    {"V", "volts"},
    {"A", "amperes"},
    {"J", "joules"},
    {"W", "watts"},
    {"g", "grams"},
    {"Cel", "celsius"},
    {"Hz", "hertz"},
    {"1", ""},
    {"%", "percent"},
};
static const struct {
    const char *otel, *prom;
} per_unit_map[] = {
    {"s", "second"}, {"m", "minute"}, {"h", "hour"}, {"d", "day"},
    {"w", "week"},   {"mo", "month"}, {"y", "year"},
};

/* Copies s[0..n) trimmed of ASCII spaces (Go's TrimSpace, for the unit's ASCII world). */
static void trim(const char **s, size_t *n) {
    while (*n && ((*s)[0] == ' ' || (*s)[0] == '\t' || (*s)[0] == '\n' || (*s)[0] == '\r' ||
                  (*s)[0] == '\v' || (*s)[0] == '\f'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\n' ||
                  (*s)[*n - 1] == '\r' || (*s)[*n - 1] == '\v' || (*s)[*n - 1] == '\f'))
        (*n)--;
}

static int has_brace(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '{' || s[i] == '}') return 1;
    return 0;
}

/* cleanUpUnit: invalid metric characters → `_` (a multi-byte UTF-8 rune is one `_`), runs of
 * `_` collapsed, one leading `_` removed. */
static void clean_unit(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    int prev_us = 0;
    for (size_t i = 0; i < n && o + 1 < cap;) {
        unsigned char c = (unsigned char)s[i];
        size_t rl = rune_len((const unsigned char *)s + i, n - i);
        i += rl;
        char m = rl == 1 && metric_char((char)c) ? (char)c : '_';
        if (m == '_') {
            if (prev_us) continue;
            prev_us = 1;
        } else {
            prev_us = 0;
        }
        out[o++] = m;
    }
    out[o] = 0;
    if (out[0] == '_') memmove(out, out + 1, strlen(out));
}

/* buildUnitSuffixes + cleanUpUnit: main and per suffixes ("" when none). */
static void unit_suffixes(const char *unit, char *main_s, char *per_s, size_t cap) {
    main_s[0] = per_s[0] = 0;
    const char *slash = strchr(unit, '/');
    const char *m = unit;
    size_t mn = slash ? (size_t)(slash - unit) : strlen(unit);
    trim(&m, &mn);
    char tmp[512];
    if (mn && !has_brace(m, mn)) {
        const char *mapped = NULL;
        for (size_t i = 0; i < sizeof unit_map / sizeof unit_map[0]; i++)
            if (strlen(unit_map[i].otel) == mn && memcmp(unit_map[i].otel, m, mn) == 0)
                mapped = unit_map[i].prom;
        if (mapped)
            clean_unit(mapped, strlen(mapped), main_s, cap);
        else
            clean_unit(m, mn, main_s, cap);
    }
    if (slash && slash[1]) {
        const char *p = slash + 1;
        size_t pn = strlen(p);
        trim(&p, &pn);
        if (pn && !has_brace(p, pn)) {
            const char *mapped = NULL;
            for (size_t i = 0; i < sizeof per_unit_map / sizeof per_unit_map[0]; i++)
                if (strlen(per_unit_map[i].otel) == pn && memcmp(per_unit_map[i].otel, p, pn) == 0)
                    mapped = per_unit_map[i].prom;
            size_t l = mapped ? strlen(mapped) : pn;
            if (l + 5 < sizeof tmp) {
                memcpy(tmp, "per_", 4);
                memcpy(tmp + 4, mapped ? mapped : p, l);
                clean_unit(tmp, l + 4, per_s, cap);
            }
        }
    }
}

int otlp_prom_unit(const char *unit, char *out, size_t cap) {
    char m[256], p[256];
    unit_suffixes(nz(unit), m, p, sizeof m);
    char u[520];
    if (*m && *p)
        snprintf(u, sizeof u, "%s_%s", m, p);
    else
        snprintf(u, sizeof u, "%s", *m ? m : p);
    char *s = u;
    if (*s == '_') s++;
    size_t n = strlen(s);
    if (n && s[n - 1] == '_') s[--n] = 0;
    if (n + 1 > cap) return -1;
    memcpy(out, s, n + 1);
    return (int)n;
}

typedef struct tok {
    const char *s;
    size_t n;
} tok;

static int tok_eq(tok t, const char *s) { return strlen(s) == t.n && memcmp(t.s, s, t.n) == 0; }

int otlp_prom_metric_name(const char *name, const char *unit, otlp_metric_kind kind, char *out, size_t cap) {
    name = nz(name);
    unit = nz(unit);
    size_t len = strlen(name);
    if (len > NAME_MAX_LEN) return -1;
    /* tokens of [a-zA-Z0-9:]; every other byte separates (so does each byte of a non-ASCII
     * rune, which FieldsFunc would treat as one separator: the result is the same) */
    tok toks[NAME_MAX_LEN / 2 + 8];
    size_t nt = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && !metric_char(name[i]))
            i++;
        size_t st = i;
        while (i < len && metric_char(name[i]))
            i++;
        if (i > st) toks[nt++] = (tok){name + st, i - st};
    }
    char main_s[256], per_s[256];
    unit_suffixes(unit, main_s, per_s, sizeof main_s);
    /* addUnitTokens */
    for (size_t i = 0; i < nt; i++)
        if (tok_eq(toks[i], main_s)) main_s[0] = 0;
    if (strcmp(per_s, "per_") == 0) {
        per_s[0] = 0;
    } else {
        size_t pl = strlen(per_s);
        if (pl && per_s[pl - 1] == '_') per_s[pl - 1] = 0;
        for (size_t i = 0; i < nt; i++)
            if (tok_eq(toks[i], per_s)) per_s[0] = 0;
    }
    if (*per_s) {
        size_t ml = strlen(main_s);
        if (ml && main_s[ml - 1] == '_') main_s[ml - 1] = 0;
    }
    if (*main_s) toks[nt++] = (tok){main_s, strlen(main_s)};
    if (*per_s) toks[nt++] = (tok){per_s, strlen(per_s)};
    /* _total once at the end of counters; _ratio for unit "1" gauges */
    const char *suffix = NULL;
    if (kind == OTLP_KIND_COUNTER)
        suffix = "total";
    else if (kind == OTLP_KIND_GAUGE && strcmp(unit, "1") == 0)
        suffix = "ratio";
    if (suffix) {
        size_t k = 0;
        for (size_t i = 0; i < nt; i++)
            if (!tok_eq(toks[i], suffix)) toks[k++] = toks[i];
        nt = k;
        toks[nt++] = (tok){suffix, strlen(suffix)};
    }
    size_t o = 0;
    int digit = nt && toks[0].n && toks[0].s[0] >= '0' && toks[0].s[0] <= '9';
    if (digit) {
        if (cap < 2) return -1;
        out[o++] = '_';
    }
    for (size_t i = 0; i < nt; i++) {
        if (o + toks[i].n + 2 > cap) return -1;
        if (i) out[o++] = '_';
        memcpy(out + o, toks[i].s, toks[i].n);
        o += toks[i].n;
    }
    if (o == 0 || cap == 0) return -1;
    out[o] = 0;
    if (strcmp(out, name) != 0) {
        size_t i = 0;
        while (out[i] == '_')
            i++;
        if (!out[i]) return -1; /* only underscores */
    }
    return (int)o;
}

int otlp_prom_label_name(const char *key, char *out, size_t cap) {
    key = nz(key);
    size_t n = strlen(key);
    if (n == 0) return -1;
    size_t o = 0;
    int reserved = n > 4 && key[0] == '_' && key[1] == '_' && key[n - 2] == '_' && key[n - 1] == '_';
    const char *s = key;
    size_t sn = n;
    if (reserved) {
        if (cap < 3) return -1;
        out[o++] = '_';
        out[o++] = '_';
        s += 2;
        sn -= 4;
    }
    int prev_us = 0;
    size_t start = o;
    for (size_t i = 0; i < sn;) {
        unsigned char c = (unsigned char)s[i];
        size_t rl = rune_len((const unsigned char *)s + i, sn - i);
        i += rl; /* one `_` per non-ASCII rune */
        if (rl == 1 && label_char((char)c)) {
            if (o + 1 >= cap) return -1;
            out[o++] = (char)c;
            prev_us = 0;
        } else if (!prev_us) {
            if (o + 1 >= cap) return -1;
            out[o++] = '_';
            prev_us = 1;
        }
    }
    if (reserved) {
        if (o + 3 > cap) return -1;
        out[o++] = '_';
        out[o++] = '_';
    }
    out[o] = 0;
    size_t i = 0;
    while (out[i] == '_')
        i++;
    if (!out[i]) return -1;
    if (out[start] >= '0' && out[start] <= '9' && !reserved) {
        if (o + 5 > cap) return -1;
        memmove(out + 4, out, o + 1);
        memcpy(out, "key_", 4);
        o += 4;
    }
    return (int)o;
}

/* ================================================================ attribute values */

/* Go's float formatting for attribute values and JSON numbers (pcommon AsString, encoding/json):
 * 'f' shortest, or 'e' shortest with "e-07" shortened to "e-7" outside [1e-6, 1e21). */
static void fmt_float_es6(double v, char *out, size_t cap) {
    double a = fabs(v);
    if (a != 0 && (a < 1e-6 || a >= 1e21)) {
        char e[40];
        int p;
        for (p = 1; p <= 17; p++) {
            snprintf(e, sizeof e, "%.*e", p - 1, v);
            if (strtod(e, NULL) == v) break;
        }
        /* C gives "1.5e-07"/"1e+21": the shape Go's 'e' has too; strip mantissa zeros */
        char *ep = strchr(e, 'e');
        char mant[32];
        size_t ml = (size_t)(ep - e);
        memcpy(mant, e, ml);
        mant[ml] = 0;
        if (strchr(mant, '.')) {
            while (ml && mant[ml - 1] == '0')
                mant[--ml] = 0;
            if (ml && mant[ml - 1] == '.') mant[--ml] = 0;
        }
        snprintf(out, cap, "%s%s", mant, ep);
        size_t n = strlen(out);
        if (n >= 4 && out[n - 4] == 'e' && out[n - 3] == '-' && out[n - 2] == '0') {
            out[n - 2] = out[n - 1];
            out[n - 1] = 0;
        }
        return;
    }
    tr_format_double(out, cap, v);
}

/* A JSON string as Go's encoding/json writes it (HTML-safe escapes included). */
static void json_go_string(tr_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    tr_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t rl = rune_len((const unsigned char *)s + i, n - i);
        if (rl > 1) {
            /* U+2028 and U+2029 are escaped by Go */
            if (rl == 3 && c == 0xE2 && (unsigned char)s[i + 1] == 0x80 &&
                ((unsigned char)s[i + 2] & 0xFE) == 0xA8)
                tr_buf_printf(b, "\\u202%c", (unsigned char)s[i + 2] == 0xA8 ? '8' : '9');
            else
                tr_buf_append(b, s + i, rl);
            i += rl;
            continue;
        }
        i++;
        if (c >= 0x80) {
            tr_buf_puts(b, "\\ufffd");
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
        case '\b':
            tr_buf_puts(b, "\\b");
            break;
        case '\f':
            tr_buf_puts(b, "\\f");
            break;
        case '<':
        case '>':
        case '&':
            tr_buf_printf(b, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            break;
        default:
            if (c < 0x20)
                tr_buf_printf(b, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            else
                tr_buf_putc(b, (char)c);
        }
    }
    tr_buf_putc(b, '"');
}

static int kv_cmp_key(const void *a, const void *b) {
    const pb_kv *x = *(pb_kv *const *)a, *y = *(pb_kv *const *)b;
    return strcmp(nz(x->key), nz(y->key));
}

/* JSON of a value inside an array or map (AsRaw then encoding/json). */
static void json_any(tr_buf *b, const pb_any *v, int depth) {
    char num[64];
    if (!v || depth > 32) {
        tr_buf_puts(b, "null");
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        json_go_string(b, nz(v->string_value), strlen(nz(v->string_value)));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        tr_buf_puts(b, v->bool_value ? "true" : "false");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        tr_buf_printf(b, "%lld", (long long)v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        if (isnan(v->double_value) || isinf(v->double_value))
            tr_buf_puts(b, "null");
        else {
            fmt_float_es6(v->double_value, num, sizeof num);
            tr_buf_puts(b, num);
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        tr_buf_putc(b, '"');
        tr_base64_encode(b, v->bytes_value.data, v->bytes_value.len);
        tr_buf_putc(b, '"');
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        tr_buf_putc(b, '[');
        const Opentelemetry__Proto__Common__V1__ArrayValue *a = v->array_value;
        for (size_t i = 0; a && i < a->n_values; i++) {
            if (i) tr_buf_putc(b, ',');
            json_any(b, a->values[i], depth + 1);
        }
        tr_buf_putc(b, ']');
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        /* Go maps marshal with sorted keys; a repeated key keeps its last value */
        const Opentelemetry__Proto__Common__V1__KeyValueList *l = v->kvlist_value;
        size_t n = l ? l->n_values : 0;
        pb_kv **sorted = n ? malloc(n * sizeof *sorted) : NULL;
        if (n && !sorted) {
            b->failed = 1;
            return;
        }
        if (n) memcpy(sorted, l->values, n * sizeof *sorted);
        for (size_t i = 1; i < n; i++) { /* insertion sort: stable, small */
            pb_kv *x = sorted[i];
            size_t j = i;
            while (j > 0 && kv_cmp_key(&sorted[j - 1], &x) > 0) {
                sorted[j] = sorted[j - 1];
                j--;
            }
            sorted[j] = x;
        }
        tr_buf_putc(b, '{');
        int first = 1;
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n && strcmp(nz(sorted[i]->key), nz(sorted[i + 1]->key)) == 0) continue;
            if (!first) tr_buf_putc(b, ',');
            first = 0;
            json_go_string(b, nz(sorted[i]->key), strlen(nz(sorted[i]->key)));
            tr_buf_putc(b, ':');
            json_any(b, sorted[i]->value, depth + 1);
        }
        tr_buf_putc(b, '}');
        free(sorted);
        break;
    }
    default:
        tr_buf_puts(b, "null");
    }
}

/* pcommon Value.AsString: the label value of an attribute. Strings are returned as they are
 * (no copy); other types are formatted into the arena. NULL when out of memory. */
static const char *any_string(tr_arena *a, const pb_any *v) {
    char num[96];
    if (!v) return "";
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        return nz(v->string_value);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        return v->bool_value ? "true" : "false";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        snprintf(num, sizeof num, "%lld", (long long)v->int_value);
        return tr_arena_strndup(a, num, strlen(num));
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        if (isnan(v->double_value) || isinf(v->double_value)) {
            /* pcommon's text for these (its JSON encoder refuses them) */
            char g[16];
            tr_format_double(g, sizeof g, v->double_value);
            snprintf(num, sizeof num, "json: unsupported value: %s", g);
        } else {
            fmt_float_es6(v->double_value, num, sizeof num);
        }
        return tr_arena_strndup(a, num, strlen(num));
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        tr_buf b;
        tr_buf_init(&b, 0);
        if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE)
            tr_base64_encode(&b, v->bytes_value.data, v->bytes_value.len);
        else
            json_any(&b, v, 0);
        const char *r = b.failed ? NULL : tr_arena_strndup(a, b.data ? b.data : "", b.len);
        tr_buf_free(&b);
        return r;
    }
    default:
        return "";
    }
}

/* ================================================================ label sets */

typedef struct attr {
    const char *key;  /* the OTLP key */
    const char *name; /* its label name */
    const char *value;
    size_t idx; /* position, for a stable sort */
} attr;

static int attr_cmp_key(const void *a, const void *b) {
    const attr *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}
/* By label name, then original key, then position: the order in which the Collector joins
 * colliding values (it sorts stably by key, then groups by name). */
static int attr_cmp_name(const void *a, const void *b) {
    const attr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return attr_cmp_key(a, b);
}

/* Attribute lists are short: insertion sort, no allocation (glibc's qsort may malloc). */
static void sort_attrs(attr *at, size_t n, int (*cmp)(const void *, const void *)) {
    if (n > 24) {
        qsort(at, n, sizeof *at, cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        attr x = at[i];
        size_t j = i;
        while (j > 0 && cmp(&at[j - 1], &x) > 0) {
            at[j] = at[j - 1];
            j--;
        }
        at[j] = x;
    }
}
static int label_cmp(const void *a, const void *b) {
    return strcmp(((const otlp_label *)a)->name, ((const otlp_label *)b)->name);
}

/* A label set under construction: sorted by name, distinct. */
typedef struct lset {
    otlp_label *l;
    size_t n, cap;
} lset;

static int lset_reserve(tr_arena *a, lset *s, size_t more) {
    if (s->n + more <= s->cap) return 0;
    size_t cap = (s->n + more) * 2 + 8;
    otlp_label *l = tr_arena_alloc(a, cap * sizeof *l);
    if (!l) return -1;
    if (s->n) memcpy(l, s->l, s->n * sizeof *l);
    s->l = l;
    s->cap = cap;
    return 0;
}

/* Sets name=value, replacing an existing value (the later writer wins, as the Collector's
 * extras do). `name` must already be a valid label name. */
static int lset_put(tr_arena *a, lset *s, const char *name, const char *value) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->l[mid].name, name);
        if (c == 0) {
            s->l[mid].value = value;
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lset_reserve(a, s, 1)) return -1;
    memmove(s->l + lo + 1, s->l + lo, (s->n - lo) * sizeof *s->l);
    s->l[lo].name = name;
    s->l[lo].value = value;
    s->n++;
    return 0;
}

/* The Collector's createAttributes for a list of attributes: keys sanitised, sorted by the
 * original key so that colliding keys join their values with ';' (a value equal to what is
 * there already is not repeated). Keys that sanitise to nothing are skipped. */
static int lset_from_attrs(tr_arena *a, lset *out, attr *at, size_t n) {
    *out = (lset){0};
    for (size_t i = 0; i < n; i++)
        at[i].idx = i;
    sort_attrs(at, n, attr_cmp_name);
    out->n = 0;
    if (lset_reserve(a, out, n)) return -1;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        const char *v = at[i].value;
        for (; j < n && strcmp(at[j].name, at[i].name) == 0; j++) {
            if (strcmp(v, at[j].value) == 0) continue;
            size_t l1 = strlen(v), l2 = strlen(at[j].value);
            char *nv = tr_arena_alloc(a, l1 + l2 + 2);
            if (!nv) return -1;
            memcpy(nv, v, l1);
            nv[l1] = ';';
            memcpy(nv + l1 + 1, at[j].value, l2 + 1);
            v = nv;
        }
        out->l[out->n].name = at[i].name;
        out->l[out->n].value = v;
        out->n++;
        i = j;
    }
    return 0;
}

/* Sanitised label name in the arena, or "" when the key has none (skip it). NULL on OOM. */
static const char *label_name_dup(tr_arena *a, const char *key) {
    /* the common case: already a valid name that sanitising leaves alone */
    const char *k = key;
    int prev_us = 0, any = 0;
    if (*k >= '0' && *k <= '9') goto slow;
    for (; *k; k++) {
        if (*k == '_') {
            if (prev_us) goto slow;
            prev_us = 1;
        } else if (label_char(*k)) {
            prev_us = 0;
            any = 1;
        } else {
            goto slow;
        }
    }
    if (any) return key;
slow:;
    char buf[1024];
    int n = otlp_prom_label_name(key, buf, sizeof buf);
    if (n < 0) {
        if (strlen(key) < sizeof buf - 8) return ""; /* empty or only underscores */
        /* too long for the stack buffer: sanitise into the arena */
        size_t cap = strlen(key) * 3 + 8;
        char *big = tr_arena_alloc(a, cap);
        if (!big) return NULL;
        n = otlp_prom_label_name(key, big, cap);
        return n < 0 ? "" : big;
    }
    return tr_arena_strndup(a, buf, (size_t)n);
}

/* ================================================================ exponential buckets */

/* One side of an exponential histogram: counts of buckets off, off+1, … at some scale. */
typedef struct expb {
    int64_t off;
    size_t n;
    uint64_t *c; /* malloc'd when owned */
} expb;

static int64_t floor_shift(int64_t i, int s) { return i >= 0 ? i >> s : -((-i - 1) >> s) - 1; }

/* Lowers the resolution by `shift` scales in place: bucket i goes to floor(i / 2^shift).
 * Consecutive buckets map to the same or the next target, so writes never pass reads. */
static void expb_downscale(expb *b, int shift) {
    if (shift <= 0 || b->n == 0) return;
    int64_t noff = floor_shift(b->off, shift), cur = noff;
    size_t w = 0;
    uint64_t acc = 0;
    for (size_t i = 0; i < b->n; i++) {
        int64_t t = floor_shift(b->off + (int64_t)i, shift);
        if (t != cur) {
            b->c[w++] = acc;
            acc = 0;
            cur = t;
        }
        acc += b->c[i];
    }
    b->c[w++] = acc;
    b->off = noff;
    b->n = w;
}

/* dst += src (same scale); dst is malloc'd and grows. Returns 0 or -1 (OOM). */
static int expb_add(expb *dst, const expb *src) {
    if (src->n == 0) return 0;
    if (dst->n == 0) {
        uint64_t *c = malloc(src->n * sizeof *c);
        if (!c) return -1;
        memcpy(c, src->c, src->n * sizeof *c);
        free(dst->c);
        dst->c = c;
        dst->off = src->off;
        dst->n = src->n;
        return 0;
    }
    int64_t lo = dst->off < src->off ? dst->off : src->off;
    int64_t hi_d = dst->off + (int64_t)dst->n, hi_s = src->off + (int64_t)src->n;
    int64_t hi = hi_d > hi_s ? hi_d : hi_s;
    size_t nn = (size_t)(hi - lo);
    if (lo != dst->off || nn != dst->n) {
        uint64_t *c = calloc(nn, sizeof *c);
        if (!c) return -1;
        memcpy(c + (dst->off - lo), dst->c, dst->n * sizeof *c);
        free(dst->c);
        dst->c = c;
        dst->off = lo;
        dst->n = nn;
    }
    for (size_t i = 0; i < src->n; i++)
        dst->c[src->off - lo + (int64_t)i] += src->c[i];
    return 0;
}

/* 2^(k / 2^scale): the boundary between buckets k-1 and k. Exact powers of two for scale <= 0;
 * exp2 of the fraction otherwise. Overflows to +Inf, underflows to 0. */
static double exp_boundary(int64_t k, int scale) {
    int64_t q, r = 0;
    if (scale <= 0) {
        if (k > 4096 || k < -4096) return k > 0 ? INFINITY : 0.0;
        q = k * ((int64_t)1 << -scale);
    } else {
        q = floor_shift(k, scale);
        r = k - q * ((int64_t)1 << scale);
    }
    if (q > 1100) return INFINITY;
    if (q < -1100) return 0.0;
    double f = r ? exp2((double)r / (double)((int64_t)1 << scale)) : 1.0;
    return ldexp(f, (int)q);
}

/* ================================================================ delta state */

enum { DS_SUM = 1, DS_HIST, DS_EXPH };

typedef struct dstate {
    struct dstate *hnext, *prev, *next; /* hash chain; LRU list (head = most recent) */
    uint64_t hash;
    size_t klen;
    char *key;
    int kind;
    uint64_t start_ns, last_ns;
    double value; /* sums: the running total; histograms: the running sum */
    int has_sum;
    uint64_t count;
    size_t n_bounds, n_counts;
    double *bounds;
    uint64_t *counts;
    int scale;
    double zero_threshold;
    uint64_t zero_count;
    expb pos, neg;
} dstate;

static void dstate_free(dstate *d) {
    if (!d) return;
    free(d->key);
    free(d->bounds);
    free(d->counts);
    free(d->pos.c);
    free(d->neg.c);
    free(d);
}

/* `le` texts of bucket bounds by the bounds' bit patterns, for the translator's lifetime:
 * the same few bounds come back in every request, and formatting a double as Go does costs
 * about a microsecond. Entries are never replaced, so the texts stay put; bounds that find
 * no free slot near their hash are formatted each time. */
#define LE_CACHE 1024
#define LE_PROBE 8
typedef struct le_ent {
    uint64_t bits;
    char s[31];
    uint8_t used;
} le_ent;

struct otlp_translator {
    pthread_mutex_t mu;
    le_ent le[LE_CACHE];
    int promote_all;
    char **promote;
    size_t n_promote;
    size_t max_delta;
    uint64_t idle_ns;
    dstate **tab;
    size_t tab_n, count;
    dstate *lru_head, *lru_tail;
    uint64_t newest_ns;
};

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void lru_unlink(otlp_translator *t, dstate *d) {
    if (d->prev)
        d->prev->next = d->next;
    else
        t->lru_head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        t->lru_tail = d->prev;
    d->prev = d->next = NULL;
}
static void lru_push(otlp_translator *t, dstate *d) {
    d->prev = NULL;
    d->next = t->lru_head;
    if (t->lru_head) t->lru_head->prev = d;
    t->lru_head = d;
    if (!t->lru_tail) t->lru_tail = d;
}

static void ds_remove(otlp_translator *t, dstate *d) {
    dstate **pp = &t->tab[d->hash & (t->tab_n - 1)];
    while (*pp && *pp != d)
        pp = &(*pp)->hnext;
    if (*pp) *pp = d->hnext;
    lru_unlink(t, d);
    t->count--;
    dstate_free(d);
}

static dstate *ds_find(otlp_translator *t, const char *key, size_t klen, uint64_t h) {
    for (dstate *d = t->tab[h & (t->tab_n - 1)]; d; d = d->hnext)
        if (d->hash == h && d->klen == klen && memcmp(d->key, key, klen) == 0) return d;
    return NULL;
}

static int ds_grow(otlp_translator *t) {
    size_t nn = t->tab_n * 2;
    dstate **tab = calloc(nn, sizeof *tab);
    if (!tab) return -1;
    for (size_t i = 0; i < t->tab_n; i++)
        for (dstate *d = t->tab[i], *nx; d; d = nx) {
            nx = d->hnext;
            d->hnext = tab[d->hash & (nn - 1)];
            tab[d->hash & (nn - 1)] = d;
        }
    free(t->tab);
    t->tab = tab;
    t->tab_n = nn;
    return 0;
}

/* A new empty state for key (evicting the least recently updated one when full). */
static dstate *ds_insert(otlp_translator *t, const char *key, size_t klen, uint64_t h, int kind) {
    while (t->count >= t->max_delta && t->lru_tail)
        ds_remove(t, t->lru_tail);
    if (t->count + 1 > t->tab_n && ds_grow(t)) return NULL;
    dstate *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->key = malloc(klen ? klen : 1);
    if (!d->key) {
        free(d);
        return NULL;
    }
    memcpy(d->key, key, klen);
    d->klen = klen;
    d->hash = h;
    d->kind = kind;
    d->hnext = t->tab[h & (t->tab_n - 1)];
    t->tab[h & (t->tab_n - 1)] = d;
    lru_push(t, d);
    t->count++;
    return d;
}

/* Forgets states not updated within the idle window of the newest data seen. */
static void ds_expire(otlp_translator *t) {
    while (t->lru_tail && t->newest_ns > t->idle_ns && t->lru_tail->last_ns < t->newest_ns - t->idle_ns)
        ds_remove(t, t->lru_tail);
}

/* How a delta point relates to the running state of its series. */
typedef enum { D_NEW, D_ADD, D_OUT_OF_ORDER } dmode;

/* Delta → cumulative, the rule for every point type: the first point of a series starts a
 * run; a point that ends at or before the last one accepted is out of order (refused); a point
 * whose window starts before the end of the last accepted one overlaps what is already
 * counted, so the sender has restarted its stream ("start-time reset"): a new run begins with
 * this point (PromQL sees a counter reset). Otherwise the point is added to the run. Gaps
 * (start after the last end) are normal for delta exporters that skip idle intervals, and
 * are added too. */
static dmode ds_mode(const dstate *d, uint64_t start_ns, uint64_t t_ns) {
    if (!d) return D_NEW;
    if (t_ns <= d->last_ns) return D_OUT_OF_ORDER;
    if (start_ns && start_ns < d->last_ns) return D_NEW;
    return D_ADD;
}

/* ================================================================ translation */

typedef struct ctx {
    otlp_translator *t;
    const otlp_emit *emit;
    otlp_translate_stats *st;
    uint64_t point;    /* index of the current data point */
    int point_refused; /* a sample of the current point was refused */
    int oom;
    tr_arena *pa; /* memory of the current point */
    /* resource */
    attr *promoted; /* resource attributes copied onto every series */
    size_t n_promoted;
    const char *job, *instance;
    uint64_t newest_ns; /* newest point time in the ResourceMetrics (stamps target_info) */
    /* scope */
    lset scope;
    lset fixed; /* the labels of a point without attributes (see point_labels) */
    /* metric */
    tr_arena *ma; /* memory of the current metric */
    char *n_sum, *n_count, *n_bucket;
    const double *le_b; /* the last bucket bounds formatted, and their text */
    const char **le_s;
    size_t le_n, le_misses;
    /* metric */
    const char *name; /* base name */
} ctx;

static void reason(ctx *c, const char *fmt, const char *arg) {
    if (c->st->message[0]) return;
    snprintf(c->st->message, sizeof c->st->message, fmt, arg);
}

/* The labels every sample of a data point shares (no __name__ yet), exactly as the Collector
 * builds them. */
static int point_labels_exact(ctx *c, tr_arena *a, pb_kv **attrs, size_t n, lset *out) {
    *out = (lset){0};
    size_t total = n + (c->t->promote_all ? c->n_promoted : 0);
    attr *at = tr_arena_alloc(a, (total ? total : 1) * sizeof *at);
    if (!at) return -1;
    size_t k = 0;
    if (c->t->promote_all) {
        /* resource_to_telemetry_conversion: resource attributes overwrite the point's */
        if (c->n_promoted) memcpy(at, c->promoted, c->n_promoted * sizeof *at);
        k = c->n_promoted;
    }
    for (size_t i = 0; i < n; i++) {
        const pb_kv *kv = attrs[i];
        if (!kv) continue;
        const char *key = nz(kv->key);
        if (c->t->promote_all) {
            int shadowed = 0;
            for (size_t j = 0; j < c->n_promoted && !shadowed; j++)
                shadowed = strcmp(c->promoted[j].key, key) == 0;
            if (shadowed) continue;
        }
        const char *name = label_name_dup(a, key);
        const char *value = any_string(a, kv->value);
        if (!name || !value) return -1;
        if (!*name) continue;
        at[k++] = (attr){key, name, value, 0};
    }
    if (lset_from_attrs(a, out, at, k)) return -1;
    if (!c->t->promote_all) {
        /* a promotion list works as Prometheus' promote_resource_attributes: it fills in,
         * the point's own attributes win */
        for (size_t j = 0; j < c->n_promoted; j++) {
            int present = 0;
            for (size_t i = 0; i < out->n && !present; i++)
                present = strcmp(out->l[i].name, c->promoted[j].name) == 0;
            if (!present && lset_put(a, out, c->promoted[j].name, c->promoted[j].value)) return -1;
        }
    }
    if (c->job && lset_put(a, out, "job", c->job)) return -1;
    if (c->instance && lset_put(a, out, "instance", c->instance)) return -1;
    for (size_t i = 0; i < c->scope.n; i++)
        if (lset_put(a, out, c->scope.l[i].name, c->scope.l[i].value)) return -1;
    return 0;
}

/* The same, fast: the labels that do not depend on the point (resource, job, instance, scope)
 * are built once per scope (c->fixed); the point's own attributes are sanitised, joined and
 * merged in. When one of them has the name of a fixed label, the exact order of overwrites
 * matters and the exact path decides. */
static int point_labels(ctx *c, pb_kv **attrs, size_t n, lset *out) {
    tr_arena *a = c->pa;
    attr *at = tr_arena_alloc(a, (n ? n : 1) * sizeof *at);
    if (!at) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const pb_kv *kv = attrs[i];
        if (!kv) continue;
        const char *name = label_name_dup(a, nz(kv->key));
        const char *value = any_string(a, kv->value);
        if (!name || !value) return -1;
        if (!*name) continue;
        at[k++] = (attr){nz(kv->key), name, value, 0};
    }
    lset own = {0};
    if (lset_from_attrs(a, &own, at, k)) return -1;
    *out = (lset){0};
    if (lset_reserve(a, out, own.n + c->fixed.n)) return -1;
    size_t i = 0, j = 0;
    while (i < own.n || j < c->fixed.n) {
        int cmp = i == own.n ? 1 : j == c->fixed.n ? -1 : strcmp(own.l[i].name, c->fixed.l[j].name);
        if (cmp == 0) return point_labels_exact(c, a, attrs, n, out);
        out->l[out->n++] = cmp < 0 ? own.l[i++] : c->fixed.l[j++];
    }
    return 0;
}

/* Hands one sample to the sink: base + __name__ (+ le/quantile), empty values dropped. */
static int emit_sample(ctx *c, const lset *base, const char *name, const char *xname, const char *xvalue,
                       int64_t t_ms, double v, const otlp_exemplar *ex, size_t nex, uint64_t point) {
    lset s = {0};
    if (lset_reserve(c->pa, &s, base->n + 2)) return -1;
    if (base->n) memcpy(s.l, base->l, base->n * sizeof *s.l);
    s.n = base->n;
    if (lset_put(c->pa, &s, "__name__", name)) return -1;
    if (xname && lset_put(c->pa, &s, xname, xvalue)) return -1;
    size_t k = 0;
    for (size_t i = 0; i < s.n; i++)
        if (s.l[i].value && s.l[i].value[0]) s.l[k++] = s.l[i];
    otlp_sample smp = {.labels = s.l,
                       .n_labels = k,
                       .t_ms = t_ms,
                       .value = v,
                       .exemplars = ex,
                       .n_exemplars = nex,
                       .point = point};
    const char *why = NULL;
    c->st->samples++;
    if (c->emit->sample(c->emit->ctx, &smp, &why)) {
        c->st->samples_refused++;
        if (point != OTLP_NO_POINT) c->point_refused = 1;
        if (!c->st->message[0]) {
            if (point == OTLP_NO_POINT)
                snprintf(c->st->message, sizeof c->st->message, "%s: %s", name, why ? why : "refused");
            else
                reason(c, "%s", why ? why : "sample refused by the store");
        }
    }
    return 0;
}

static int id_empty(const ProtobufCBinaryData *b) {
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i]) return 0;
    return 1;
}

static size_t runes(const char *s) {
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len; n++)
        i += rune_len((const unsigned char *)s + i, len - i);
    return n;
}

static double exemplar_value(const pb_exemplar *e) {
    if (e->value_case == OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_INT) return (double)e->as_int;
    if (e->value_case == OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE) return e->as_double;
    return 0;
}

/* Exemplars of a point: trace_id and span_id in hex, then the filtered attributes (with
 * sanitised names) only while everything stays within 128 runes, as the Collector does. */
static int build_exemplars(ctx *c, pb_exemplar **in, size_t n, otlp_exemplar **out) {
    *out = NULL;
    if (!n) return 0;
    otlp_exemplar *ex = tr_arena_calloc(c->pa, n, sizeof *ex);
    if (!ex) return -1;
    for (size_t i = 0; i < n; i++) {
        const pb_exemplar *e = in[i];
        if (!e) continue;
        otlp_label *l = tr_arena_alloc(c->pa, (e->n_filtered_attributes + 2) * sizeof *l);
        if (!l) return -1;
        size_t k = 0, r = 0;
        const ProtobufCBinaryData *ids[2] = {&e->trace_id, &e->span_id};
        const char *idn[2] = {"trace_id", "span_id"};
        for (int j = 0; j < 2; j++) {
            if (ids[j]->len == 0 || ids[j]->len > 64 || id_empty(ids[j])) continue;
            char *h = tr_arena_alloc(c->pa, ids[j]->len * 2 + 1);
            if (!h) return -1;
            tr_hex_encode(ids[j]->data, ids[j]->len, h);
            l[k++] = (otlp_label){idn[j], h};
            r += strlen(idn[j]) + ids[j]->len * 2;
        }
        size_t base = k;
        for (size_t j = 0; j < e->n_filtered_attributes; j++) {
            const pb_kv *kv = e->filtered_attributes[j];
            if (!kv) continue;
            const char *v = any_string(c->pa, kv->value);
            const char *nm = label_name_dup(c->pa, nz(kv->key));
            if (!v || !nm) return -1;
            r += runes(nz(kv->key)) + runes(v);
            if (*nm && *v) l[k++] = (otlp_label){nm, v};
        }
        if (r > MAX_EXEMPLAR_RUNES) k = base;
        qsort(l, k, sizeof *l, label_cmp);
        ex[i] = (otlp_exemplar){
            .labels = l, .n_labels = k, .t_ms = ns_to_ms(e->time_unix_nano), .value = exemplar_value(e)};
    }
    *out = ex;
    return 0;
}

/* The delta state key of a series: kind, base name and label set. */
static char *state_key(ctx *c, int kind, const lset *base, size_t *len) {
    size_t n = 2 + strlen(c->name);
    for (size_t i = 0; i < base->n; i++)
        n += strlen(base->l[i].name) + strlen(base->l[i].value) + 2;
    char *k = tr_arena_alloc(c->pa, n + 1);
    if (!k) return NULL;
    size_t o = 0;
    k[o++] = (char)kind;
    size_t nl = strlen(c->name);
    memcpy(k + o, c->name, nl);
    o += nl;
    k[o++] = '\xff';
    for (size_t i = 0; i < base->n; i++) {
        if (!base->l[i].value[0]) continue;
        size_t a = strlen(base->l[i].name), b = strlen(base->l[i].value);
        memcpy(k + o, base->l[i].name, a);
        o += a;
        k[o++] = '\xfe';
        memcpy(k + o, base->l[i].value, b);
        o += b;
        k[o++] = '\xff';
    }
    *len = o;
    return k;
}

static void touch(otlp_translator *t, dstate *d, uint64_t start_ns, uint64_t t_ns, int reset) {
    if (reset) d->start_ns = start_ns;
    d->last_ns = t_ns;
    lru_unlink(t, d);
    lru_push(t, d);
}

static void seen(ctx *c, uint64_t t_ns) {
    if (t_ns > c->newest_ns) c->newest_ns = t_ns;
    if (t_ns > c->t->newest_ns) c->t->newest_ns = t_ns;
}

/* ---- gauges and sums ---- */

/* The delta-temporality state of one point's series, found once for the three point types. */
typedef struct dref {
    char *key;
    size_t kl;
    uint64_t h;
    dstate *d; /* NULL until the series has state: delta_state() creates it */
    dmode m;
} dref;

/* Looks up the state of the series `base` of `kind`. Returns -1 on OOM; 1 when the point ends
 * here (a stale point forgets the series; an out-of-order point is refused with a reason);
 * 0 with r->m set otherwise. */
static int delta_lookup(ctx *c, int kind, const lset *base, int stale, uint64_t start_ns, uint64_t t_ns,
                        dref *r) {
    r->key = state_key(c, kind, base, &r->kl);
    if (!r->key) return -1;
    r->h = fnv1a(r->key, r->kl);
    r->d = ds_find(c->t, r->key, r->kl, r->h);
    if (stale) {
        if (r->d) ds_remove(c->t, r->d);
        return 1;
    }
    r->m = ds_mode(r->d, start_ns, t_ns);
    if (r->m == D_OUT_OF_ORDER) {
        c->point_refused = 1;
        reason(c, "delta point of %s at or before the previous point of its series", c->name);
        return 1;
    }
    return 0;
}

/* The state found by delta_lookup, created when the series had none; NULL on OOM. */
static dstate *delta_state(ctx *c, int kind, dref *r) {
    if (!r->d) r->d = ds_insert(c->t, r->key, r->kl, r->h, kind);
    return r->d;
}

static int do_number(ctx *c, otlp_metric_kind kind, int delta, const pb_num *pt) {
    lset base;
    if (point_labels(c, pt->attributes, pt->n_attributes, &base)) return -1;
    double v = pt->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT
                   ? (double)pt->as_int
               : pt->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE
                   ? pt->as_double
                   : 0.0;
    int stale = (pt->flags & NO_RECORDED_VALUE) != 0;
    seen(c, pt->time_unix_nano);
    if (delta) {
        dref r;
        int lk = delta_lookup(c, DS_SUM, &base, stale, pt->start_time_unix_nano, pt->time_unix_nano, &r);
        if (lk < 0) return -1;
        if (lk > 0 && !stale) return 0; /* refused: out of order */
        if (!stale) {
            dmode m = r.m;
            dstate *d = delta_state(c, DS_SUM, &r);
            if (!d) return -1;
            if (m == D_NEW)
                d->value = v;
            else
                d->value += v;
            touch(c->t, d, pt->start_time_unix_nano, pt->time_unix_nano, m == D_NEW);
            v = d->value;
        }
    }
    otlp_exemplar *ex = NULL;
    size_t nex = 0;
    if (kind == OTLP_KIND_COUNTER || kind == OTLP_KIND_UPDOWN) {
        if (build_exemplars(c, pt->exemplars, pt->n_exemplars, &ex)) return -1;
        nex = pt->n_exemplars;
    }
    return emit_sample(c, &base, c->name, NULL, NULL, ns_to_ms(pt->time_unix_nano), stale ? stale_nan() : v,
                       ex, nex, c->point);
}

/* ---- histograms ---- */

static char *suffixed(ctx *c, tr_arena *ar, const char *suffix) {
    size_t a = strlen(c->name), b = strlen(suffix);
    char *s = tr_arena_alloc(ar, a + b + 1);
    if (!s) return NULL;
    memcpy(s, c->name, a);
    memcpy(s + a, suffix, b + 1);
    return s;
}

/* The `le` text of one bound: from the translator's cache (under t->mu: translations are
 * serialised), else formatted into `ar`. */
static const char *le_text(ctx *c, tr_arena *ar, double b) {
    uint64_t bits;
    memcpy(&bits, &b, 8);
    uint64_t h = bits * 0x9e3779b97f4a7c15ULL;
    le_ent *free_slot = NULL;
    for (size_t k = 0; k < LE_PROBE; k++) {
        le_ent *e = &c->t->le[((h >> 54) + k) & (LE_CACHE - 1)];
        if (!e->used) {
            free_slot = e;
            break;
        }
        if (e->bits == bits) return e->s;
    }
    char buf[400];
    int n = tr_format_double(buf, sizeof buf, b);
    if (n < 0 || (size_t)n >= sizeof buf) n = (int)strlen(buf);
    if (free_slot && (size_t)n < sizeof free_slot->s) {
        memcpy(free_slot->s, buf, (size_t)n + 1);
        free_slot->bits = bits;
        free_slot->used = 1;
        return free_slot->s;
    }
    return tr_arena_strndup(ar, buf, (size_t)n);
}

/* The `le` texts of bucket bounds. The bounds of a metric's points are nearly always the same:
 * the last set is kept for the metric (up to a few different sets; after that, per point),
 * and each text comes from the translator's cache when it can. */
static const char **le_strings(ctx *c, const double *les, size_t nb) {
    if (c->le_s && c->le_n == nb && (nb == 0 || memcmp(c->le_b, les, nb * sizeof *les) == 0)) return c->le_s;
    tr_arena *ar = c->le_misses++ < 16 ? c->ma : c->pa;
    const char **s = tr_arena_alloc(ar, (nb ? nb : 1) * sizeof *s);
    double *b = tr_arena_alloc(ar, (nb ? nb : 1) * sizeof *b);
    if (!s || !b) return NULL;
    for (size_t j = 0; j < nb; j++)
        if (!(s[j] = le_text(c, ar, les[j]))) return NULL;
    if (nb) memcpy(b, les, nb * sizeof *b);
    if (ar == c->ma) {
        c->le_b = b;
        c->le_s = s;
        c->le_n = nb;
    }
    return s;
}

/* Emits _sum, _count, the cumulative _bucket{le} series and +Inf. `les`/`cum` are ascending
 * bounds and cumulative counts; exemplars go to the first bucket whose bound is >= their value
 * (+Inf when none is). */
static int emit_buckets(ctx *c, const lset *base, int64_t t_ms, int stale, int has_sum, double sum,
                        uint64_t count, const double *les, const uint64_t *cum, size_t nb, pb_exemplar **pex,
                        size_t npex) {
    const char *n_sum = c->n_sum, *n_count = c->n_count, *n_bucket = c->n_bucket;
    double sn = stale_nan();
    const char **le_s = le_strings(c, les, nb);
    if (!le_s) return -1;
    if (has_sum && emit_sample(c, base, n_sum, NULL, NULL, t_ms, stale ? sn : sum, NULL, 0, c->point))
        return -1;
    if (emit_sample(c, base, n_count, NULL, NULL, t_ms, stale ? sn : (double)count, NULL, 0, c->point))
        return -1;
    otlp_exemplar *ex = NULL;
    if (build_exemplars(c, pex, npex, &ex)) return -1;
    size_t *target = NULL;
    otlp_exemplar *grp = NULL;
    if (npex) {
        target = tr_arena_alloc(c->pa, npex * sizeof *target);
        grp = tr_arena_alloc(c->pa, npex * sizeof *grp);
        if (!target || !grp) return -1;
        for (size_t i = 0; i < npex; i++) {
            target[i] = nb; /* +Inf */
            double best = INFINITY;
            for (size_t j = 0; j < nb; j++)
                if (ex[i].value <= les[j] && les[j] < best) {
                    best = les[j];
                    target[i] = j;
                }
        }
    }
    for (size_t j = 0; j <= nb; j++) {
        size_t ng = 0;
        for (size_t i = 0; i < npex; i++)
            if (target[i] == j) grp[ng++] = ex[i];
        const char *le = j < nb ? le_s[j] : "+Inf";
        double v = stale ? sn : j < nb ? (double)cum[j] : (double)count;
        if (emit_sample(c, base, n_bucket, "le", le, t_ms, v, ng ? grp : NULL, ng, c->point)) return -1;
    }
    return 0;
}

static int do_histogram(ctx *c, int delta, const pb_hist *pt) {
    lset base;
    if (point_labels(c, pt->attributes, pt->n_attributes, &base)) return -1;
    seen(c, pt->time_unix_nano);
    int stale = (pt->flags & NO_RECORDED_VALUE) != 0;
    int has_sum = pt->_sum_case == OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
    double sum = has_sum ? pt->sum : 0;
    uint64_t count = pt->count;
    const uint64_t *counts = pt->bucket_counts;
    size_t nb = pt->n_explicit_bounds < pt->n_bucket_counts ? pt->n_explicit_bounds : pt->n_bucket_counts;
    if (delta) {
        dref r;
        int lk = delta_lookup(c, DS_HIST, &base, stale, pt->start_time_unix_nano, pt->time_unix_nano, &r);
        if (lk < 0) return -1;
        if (lk > 0 && !stale) return 0; /* refused: out of order */
        if (!stale) {
            dmode m = r.m;
            dstate *d = r.d;
            /* a changed bucket layout cannot be added up: it starts a new run */
            if (m == D_ADD && (d->n_bounds != pt->n_explicit_bounds || d->n_counts != pt->n_bucket_counts ||
                               (pt->n_explicit_bounds && memcmp(d->bounds, pt->explicit_bounds,
                                                                pt->n_explicit_bounds * sizeof(double)))))
                m = D_NEW;
            if (!(d = delta_state(c, DS_HIST, &r))) return -1;
            if (m == D_NEW) {
                double *nbnd = malloc((pt->n_explicit_bounds + 1) * sizeof *nbnd);
                uint64_t *ncnt = malloc((pt->n_bucket_counts + 1) * sizeof *ncnt);
                if (!nbnd || !ncnt) {
                    free(nbnd);
                    free(ncnt);
                    return -1;
                }
                if (pt->n_explicit_bounds)
                    memcpy(nbnd, pt->explicit_bounds, pt->n_explicit_bounds * sizeof *nbnd);
                if (pt->n_bucket_counts) memcpy(ncnt, pt->bucket_counts, pt->n_bucket_counts * sizeof *ncnt);
                free(d->bounds);
                free(d->counts);
                d->bounds = nbnd;
                d->counts = ncnt;
                d->n_bounds = pt->n_explicit_bounds;
                d->n_counts = pt->n_bucket_counts;
                d->count = count;
                d->value = sum;
                d->has_sum = has_sum;
            } else {
                for (size_t i = 0; i < d->n_counts; i++)
                    d->counts[i] += pt->bucket_counts[i];
                d->count += count;
                d->value += sum;
                d->has_sum = d->has_sum && has_sum;
            }
            touch(c->t, d, pt->start_time_unix_nano, pt->time_unix_nano, m == D_NEW);
            counts = d->counts;
            count = d->count;
            sum = d->value;
            has_sum = d->has_sum;
        }
    }
    uint64_t *cum = tr_arena_alloc(c->pa, (nb + 1) * sizeof *cum);
    if (!cum) return -1;
    uint64_t acc = 0;
    for (size_t i = 0; i < nb; i++)
        cum[i] = acc += counts[i];
    return emit_buckets(c, &base, ns_to_ms(pt->time_unix_nano), stale, has_sum, sum, count,
                        pt->explicit_bounds, cum, nb, pt->exemplars, pt->n_exemplars);
}

/* ---- exponential histograms ---- */

typedef struct lec {
    double le;
    uint64_t n;
} lec;

static int lec_cmp(const void *a, const void *b) {
    double x = ((const lec *)a)->le, y = ((const lec *)b)->le;
    return x < y ? -1 : x > y;
}

static int expb_copy(const pb_expb *b, expb *out) {
    *out = (expb){0};
    if (!b || b->n_bucket_counts == 0) return 0;
    out->c = malloc(b->n_bucket_counts * sizeof *out->c);
    if (!out->c) return -1;
    memcpy(out->c, b->bucket_counts, b->n_bucket_counts * sizeof *out->c);
    out->off = b->offset;
    out->n = b->n_bucket_counts;
    return 0;
}

/* Exponential → classic buckets. The buckets are first merged down to scale
 * min(scale, EXP_OUT_MAX_SCALE), so every `le` lies on one fixed grid of boundaries
 * 2^(k/8) whatever scale the sender used: the same bound always has the same text, and a
 * series `le="x"` means the same thing from point to point. Then:
 *   positive bucket i, covering (b^i, b^(i+1)], becomes le = b^(i+1);
 *   the zero bucket, |v| <= zero_threshold, becomes le = zero_threshold (le="0" when 0);
 *   negative bucket i, covering [-b^(i+1), -b^i), becomes le = -b^i;
 * and the counts are made cumulative in ascending `le` order, with +Inf = count. Every count
 * is exact (a bucket is never split); only an observation exactly equal to -b^i is counted one
 * bucket lower, because OTLP's negative buckets include their lower end. Buckets whose bound
 * over- or underflows a double fold into +Inf or the zero bucket. */
static int do_exp_histogram(ctx *c, int delta, const pb_exph *pt) {
    int rc = -1;
    expb pos = {0}, neg = {0};
    lset base;
    if (point_labels(c, pt->attributes, pt->n_attributes, &base)) return -1;
    seen(c, pt->time_unix_nano);
    if (pt->scale < EXP_MIN_SCALE || pt->scale > EXP_MAX_SCALE) {
        c->point_refused = 1;
        reason(c, "exponential histogram %s has a scale outside [-10, 20]", c->name);
        return 0;
    }
    int stale = (pt->flags & NO_RECORDED_VALUE) != 0;
    int has_sum =
        pt->_sum_case == OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___SUM_SUM;
    double sum = has_sum ? pt->sum : 0;
    uint64_t count = pt->count, zero_count = pt->zero_count;
    double zt = pt->zero_threshold > 0 ? pt->zero_threshold : 0; /* also maps NaN to 0 */
    int scale = pt->scale;
    if (expb_copy(pt->positive, &pos) || expb_copy(pt->negative, &neg)) goto out;
    if (delta) {
        dref r;
        int lk = delta_lookup(c, DS_EXPH, &base, stale, pt->start_time_unix_nano, pt->time_unix_nano, &r);
        if (lk < 0) goto out;
        if (lk > 0 && !stale) { /* refused: out of order */
            rc = 0;
            goto out;
        }
        if (!stale) {
            dmode m = r.m;
            dstate *d = r.d;
            if (m == D_ADD && d->zero_threshold != zt) m = D_NEW;
            if (!(d = delta_state(c, DS_EXPH, &r))) goto out;
            if (m == D_NEW) {
                free(d->pos.c);
                free(d->neg.c);
                d->pos = d->neg = (expb){0};
                d->scale = scale;
                d->zero_threshold = zt;
                d->zero_count = d->count = 0;
                d->value = 0;
                d->has_sum = 1;
            }
            int ts = d->scale < scale ? d->scale : scale;
            expb_downscale(&d->pos, d->scale - ts);
            expb_downscale(&d->neg, d->scale - ts);
            expb_downscale(&pos, scale - ts);
            expb_downscale(&neg, scale - ts);
            d->scale = ts;
            if (expb_add(&d->pos, &pos) || expb_add(&d->neg, &neg)) goto out;
            while ((d->pos.n > EXP_STATE_MAX_BUCKETS || d->neg.n > EXP_STATE_MAX_BUCKETS) &&
                   d->scale > EXP_MIN_SCALE) {
                expb_downscale(&d->pos, 1);
                expb_downscale(&d->neg, 1);
                d->scale--;
            }
            d->zero_count += zero_count;
            d->count += count;
            d->value += sum;
            d->has_sum = d->has_sum && has_sum;
            touch(c->t, d, pt->start_time_unix_nano, pt->time_unix_nano, m == D_NEW);
            /* output from the running state */
            free(pos.c);
            free(neg.c);
            pos = neg = (expb){0};
            expb sp = {d->pos.off, d->pos.n, NULL}, sn = {d->neg.off, d->neg.n, NULL};
            if (d->pos.n && !(sp.c = malloc(d->pos.n * sizeof *sp.c))) goto out;
            if (d->neg.n && !(sn.c = malloc(d->neg.n * sizeof *sn.c))) {
                free(sp.c);
                goto out;
            }
            if (d->pos.n) memcpy(sp.c, d->pos.c, d->pos.n * sizeof *sp.c);
            if (d->neg.n) memcpy(sn.c, d->neg.c, d->neg.n * sizeof *sn.c);
            pos = sp;
            neg = sn;
            scale = d->scale;
            zero_count = d->zero_count;
            count = d->count;
            sum = d->value;
            has_sum = d->has_sum;
        }
    }
    int os = scale < EXP_OUT_MAX_SCALE ? scale : EXP_OUT_MAX_SCALE;
    expb_downscale(&pos, scale - os);
    expb_downscale(&neg, scale - os);
    size_t n = pos.n + neg.n + 1, k = 0;
    lec *pairs = tr_arena_alloc(c->pa, n * sizeof *pairs);
    if (!pairs) goto out;
    uint64_t folded_zero = zero_count;
    for (size_t i = 0; i < neg.n; i++) {
        double b = exp_boundary(neg.off + (int64_t)i, os);
        if (isinf(b)) continue; /* below -DBL_MAX: only +Inf holds it */
        if (b == 0) {
            folded_zero += neg.c[i];
            continue;
        }
        pairs[k++] = (lec){-b, neg.c[i]};
    }
    for (size_t i = 0; i < pos.n; i++) {
        double b = exp_boundary(pos.off + (int64_t)i + 1, os);
        if (isinf(b)) continue;
        if (b <= zt) {
            folded_zero += pos.c[i];
            continue;
        }
        pairs[k++] = (lec){b, pos.c[i]};
    }
    pairs[k++] = (lec){zt, folded_zero};
    qsort(pairs, k, sizeof *pairs, lec_cmp);
    double *les = tr_arena_alloc(c->pa, k * sizeof *les);
    uint64_t *cum = tr_arena_alloc(c->pa, k * sizeof *cum);
    if (!les || !cum) goto out;
    size_t m = 0;
    uint64_t acc = 0;
    for (size_t i = 0; i < k; i++) {
        acc += pairs[i].n;
        if (m && les[m - 1] == pairs[i].le) {
            cum[m - 1] = acc;
            continue;
        }
        les[m] = pairs[i].le;
        cum[m++] = acc;
    }
    rc = emit_buckets(c, &base, ns_to_ms(pt->time_unix_nano), stale, has_sum, sum, count, les, cum, m,
                      pt->exemplars, pt->n_exemplars);
out:
    free(pos.c);
    free(neg.c);
    return rc;
}

/* ---- summaries ---- */

static int do_summary(ctx *c, const pb_summ *pt) {
    lset base;
    if (point_labels(c, pt->attributes, pt->n_attributes, &base)) return -1;
    seen(c, pt->time_unix_nano);
    int stale = (pt->flags & NO_RECORDED_VALUE) != 0;
    int64_t t = ns_to_ms(pt->time_unix_nano);
    double sn = stale_nan();
    const char *n_sum = c->n_sum, *n_count = c->n_count;
    if (emit_sample(c, &base, n_sum, NULL, NULL, t, stale ? sn : pt->sum, NULL, 0, c->point)) return -1;
    if (emit_sample(c, &base, n_count, NULL, NULL, t, stale ? sn : (double)pt->count, NULL, 0, c->point))
        return -1;
    for (size_t i = 0; i < pt->n_quantile_values; i++) {
        const Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile *q =
            pt->quantile_values[i];
        if (!q) continue;
        const char *qs = le_text(c, c->pa, q->quantile);
        if (!qs) return -1;
        if (emit_sample(c, &base, c->name, "quantile", qs, t, stale ? sn : q->value, NULL, 0, c->point))
            return -1;
    }
    return 0;
}

/* ---- one metric ---- */

static size_t metric_points(const pb_metric *m) {
    switch (m->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        return m->gauge ? m->gauge->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        return m->sum ? m->sum->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        return m->histogram ? m->histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        return m->exponential_histogram ? m->exponential_histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        return m->summary ? m->summary->n_data_points : 0;
    default:
        return 0;
    }
}

static int do_metric(ctx *c, const pb_metric *m) {
    size_t np = metric_points(m);
    otlp_metric_kind kind;
    int temporality = TEMP_CUMULATIVE;
    const char *type;
    switch (m->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        kind = OTLP_KIND_GAUGE, type = "gauge";
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        kind = m->sum->is_monotonic ? OTLP_KIND_COUNTER : OTLP_KIND_UPDOWN;
        type = m->sum->is_monotonic ? "counter" : "gauge";
        temporality = m->sum->aggregation_temporality;
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        kind = OTLP_KIND_HISTOGRAM, type = "histogram";
        temporality = m->histogram->aggregation_temporality;
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        kind = OTLP_KIND_EXP_HISTOGRAM, type = "histogram";
        temporality = m->exponential_histogram->aggregation_temporality;
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        kind = OTLP_KIND_SUMMARY, type = "summary";
        break;
    default:
        return 0; /* a metric without data has no points */
    }
    c->st->points += np;
    char name[NAME_MAX_LEN + 300];
    if (otlp_prom_metric_name(m->name, m->unit, kind, name, sizeof name) < 0) {
        c->point += np;
        c->st->rejected += np;
        reason(c, "metric name \"%.200s\" gives no valid Prometheus name", nz(m->name));
        return 0;
    }
    if (temporality != TEMP_CUMULATIVE && temporality != TEMP_DELTA) {
        c->point += np;
        c->st->rejected += np;
        reason(c, "metric \"%.200s\" has no aggregation temporality", nz(m->name));
        return 0;
    }
    c->name = name;
    c->ma = tr_arena_new(0);
    if (!c->ma) return -1;
    c->le_s = NULL;
    c->le_b = NULL;
    c->le_n = c->le_misses = 0;
    c->n_sum = suffixed(c, c->ma, "_sum");
    c->n_count = suffixed(c, c->ma, "_count");
    c->n_bucket = suffixed(c, c->ma, "_bucket");
    if (!c->n_sum || !c->n_count || !c->n_bucket) {
        tr_arena_free(c->ma);
        c->ma = NULL;
        return -1;
    }
    if (c->emit->metadata) {
        char unit[512];
        if (otlp_prom_unit(m->unit, unit, sizeof unit) < 0) unit[0] = 0;
        otlp_metadata md = {.family = name, .type = type, .help = nz(m->description), .unit = unit};
        c->emit->metadata(c->emit->ctx, &md);
    }
    int delta = temporality == TEMP_DELTA;
    uint64_t first = c->point;
    for (size_t i = 0; i < np; i++, c->point++) {
        /* points share a scratch arena, renewed once it holds 64 KiB: memory stays
         * bounded without a malloc and free per point */
        if (c->pa && tr_arena_used(c->pa) > (64u << 10)) {
            tr_arena_free(c->pa);
            c->pa = NULL;
        }
        if (!c->pa && !(c->pa = tr_arena_new(0))) break;
        c->point_refused = 0;
        int rc = 0;
        switch (m->data_case) {
        case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
            if (m->gauge->data_points[i]) rc = do_number(c, kind, 0, m->gauge->data_points[i]);
            break;
        case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
            if (m->sum->data_points[i]) rc = do_number(c, kind, delta, m->sum->data_points[i]);
            break;
        case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
            if (m->histogram->data_points[i]) rc = do_histogram(c, delta, m->histogram->data_points[i]);
            break;
        case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
            if (m->exponential_histogram->data_points[i])
                rc = do_exp_histogram(c, delta, m->exponential_histogram->data_points[i]);
            break;
        case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
            if (m->summary->data_points[i]) rc = do_summary(c, m->summary->data_points[i]);
            break;
        default:
            break;
        }
        if (rc) break;
        if (c->point_refused) c->st->rejected++;
    }
    tr_arena_free(c->pa);
    c->pa = NULL;
    int failed = c->point < first + np;
    tr_arena_free(c->ma);
    c->ma = NULL;
    c->le_s = NULL;
    c->name = NULL;
    return failed ? -1 : 0;
}

/* ---- resource and scope ---- */

static const char *res_attr(const pb_rm *rm, const char *key, tr_arena *a, int *found) {
    *found = 0;
    const char *v = "";
    if (!rm->resource) return v;
    for (size_t i = 0; i < rm->resource->n_attributes; i++) {
        const pb_kv *kv = rm->resource->attributes[i];
        if (kv && strcmp(nz(kv->key), key) == 0) {
            *found = 1;
            v = any_string(a, kv->value); /* the last of repeated keys wins, as in a map */
            if (!v) return NULL;
        }
    }
    return v;
}

static int identifying(const char *key) {
    return strcmp(key, "service.name") == 0 || strcmp(key, "service.namespace") == 0 ||
           strcmp(key, "service.instance.id") == 0;
}

static int is_promoted(const otlp_translator *t, const char *key) {
    if (t->promote_all) return 1;
    for (size_t i = 0; i < t->n_promote; i++)
        if (strcmp(t->promote[i], key) == 0) return 1;
    return 0;
}

static int do_resource(ctx *c, const pb_rm *rm) {
    int rc = -1;
    tr_arena *ra = tr_arena_new(0);
    if (!ra) return -1;
    int has_name, has_ns, has_inst;
    const char *svc = res_attr(rm, "service.name", ra, &has_name);
    const char *ns = res_attr(rm, "service.namespace", ra, &has_ns);
    const char *inst = res_attr(rm, "service.instance.id", ra, &has_inst);
    if (!svc || !ns || !inst) goto out;
    c->job = NULL;
    c->instance = has_inst ? inst : NULL;
    if (has_name) {
        if (has_ns) {
            size_t a = strlen(ns), b = strlen(svc);
            char *j = tr_arena_alloc(ra, a + b + 2);
            if (!j) goto out;
            memcpy(j, ns, a);
            j[a] = '/';
            memcpy(j + a + 1, svc, b + 1);
            c->job = j;
        } else {
            c->job = svc;
        }
    }
    size_t nattr = rm->resource ? rm->resource->n_attributes : 0;
    attr *promoted = tr_arena_alloc(ra, (nattr ? nattr : 1) * sizeof *promoted);
    attr *info = tr_arena_alloc(ra, (nattr ? nattr : 1) * sizeof *info);
    if (!promoted || !info) goto out;
    size_t np = 0, ni = 0;
    for (size_t i = 0; i < nattr; i++) {
        const pb_kv *kv = rm->resource->attributes[i];
        if (!kv) continue;
        const char *key = nz(kv->key);
        const char *name = label_name_dup(ra, key), *value = any_string(ra, kv->value);
        if (!name || !value) goto out;
        if (!*name) continue;
        /* a repeated key: the last one wins, as in the Collector's attribute map */
        size_t j;
        for (j = 0; j < np && strcmp(promoted[j].key, key) != 0; j++) {
        }
        if (is_promoted(c->t, key)) {
            if (j < np)
                promoted[j].value = value;
            else
                promoted[np++] = (attr){key, name, value, 0};
        }
        if (!identifying(key)) {
            for (j = 0; j < ni && strcmp(info[j].key, key) != 0; j++) {
            }
            if (j < ni)
                info[j].value = value;
            else
                info[ni++] = (attr){key, name, value, 0};
        }
    }
    c->promoted = promoted;
    c->n_promoted = np;
    if (!c->t->promote_all && np > 1) {
        /* fill-in order for a list: by original key, like the attributes */
        for (size_t i = 0; i < np; i++)
            promoted[i].idx = i;
        sort_attrs(promoted, np, attr_cmp_key);
    }
    c->newest_ns = 0;
    for (size_t s = 0; s < rm->n_scope_metrics; s++) {
        const pb_sm *sm = rm->scope_metrics[s];
        if (!sm) continue;
        /* otel_scope_name, otel_scope_version and otel_scope_<attribute> on every series */
        c->scope = (lset){0};
        const Opentelemetry__Proto__Common__V1__InstrumentationScope *sc = sm->scope;
        if (sc) {
            if (sc->name && *sc->name && lset_put(ra, &c->scope, "otel_scope_name", sc->name)) goto out;
            if (sc->version && *sc->version && lset_put(ra, &c->scope, "otel_scope_version", sc->version))
                goto out;
            for (size_t i = 0; i < sc->n_attributes; i++) {
                const pb_kv *kv = sc->attributes[i];
                if (!kv) continue;
                size_t kl = strlen(nz(kv->key));
                char *full = tr_arena_alloc(ra, kl + 12);
                if (!full) goto out;
                memcpy(full, "otel_scope_", 11);
                memcpy(full + 11, nz(kv->key), kl + 1);
                const char *name = label_name_dup(ra, full), *value = any_string(ra, kv->value);
                if (!name || !value) goto out;
                if (*name && strcmp(name, "otel_scope_name") != 0 &&
                    strcmp(name, "otel_scope_version") != 0 && lset_put(ra, &c->scope, name, value))
                    goto out;
            }
        }
        if (point_labels_exact(c, ra, NULL, 0, &c->fixed)) goto out;
        for (size_t m = 0; m < sm->n_metrics; m++)
            if (sm->metrics[m] && do_metric(c, sm->metrics[m])) goto out;
    }
    /* target_info: the non-identifying resource attributes, once per ResourceMetrics, stamped
     * with its newest point; not when there is nothing to say or nothing to join on */
    if (ni && c->newest_ns && (c->job || c->instance)) {
        lset tl = {0};
        if (lset_from_attrs(ra, &tl, info, ni)) goto out;
        if (c->job && lset_put(ra, &tl, "job", c->job)) goto out;
        if (c->instance && lset_put(ra, &tl, "instance", c->instance)) goto out;
        c->pa = ra;
        c->name = "target_info";
        int e = emit_sample(c, &tl, "target_info", NULL, NULL, ns_to_ms(c->newest_ns), 1.0, NULL, 0,
                            OTLP_NO_POINT);
        c->pa = NULL;
        c->name = NULL;
        if (e) goto out;
    }
    rc = 0;
out:
    c->scope = (lset){0};
    c->fixed = (lset){0};
    c->promoted = NULL;
    c->n_promoted = 0;
    c->job = c->instance = NULL;
    tr_arena_free(ra);
    return rc;
}

int otlp_translate(otlp_translator *t, const otlp_metrics_req *req, const otlp_emit *emit,
                   otlp_translate_stats *st) {
    memset(st, 0, sizeof *st);
    if (!req) return 0;
    ctx c = {.t = t, .emit = emit, .st = st};
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    ds_expire(t);
    for (size_t i = 0; i < req->n_resource_metrics && rc == 0; i++)
        if (req->resource_metrics[i]) rc = do_resource(&c, req->resource_metrics[i]);
    pthread_mutex_unlock(&t->mu);
    if (rc) {
        snprintf(st->message, sizeof st->message, "out of memory while translating metrics");
        return -1;
    }
    if (st->rejected && st->message[0]) {
        char first[sizeof st->message];
        memcpy(first, st->message, sizeof first);
        snprintf(st->message, sizeof st->message, "%llu of %llu data points rejected: %.180s",
                 (unsigned long long)st->rejected, (unsigned long long)st->points, first);
    }
    return 0;
}

/* ---- life cycle ---- */

otlp_translator *otlp_translator_new(const otlp_translate_opts *o, char *err, size_t errlen) {
    otlp_translator *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    pthread_mutex_init(&t->mu, NULL);
    t->max_delta = o && o->max_delta_series ? o->max_delta_series : 100000;
    t->idle_ns = (uint64_t)(o && o->delta_idle_ms > 0 ? o->delta_idle_ms : 3600000) * 1000000ULL;
    t->tab_n = 64;
    t->tab = calloc(t->tab_n, sizeof *t->tab);
    if (!t->tab) goto oom;
    const char *spec = o ? o->promote_resource_attributes : NULL;
    if (!spec || strcmp(spec, "all") == 0) {
        t->promote_all = 1;
    } else if (*spec && strcmp(spec, "none") != 0) {
        for (const char *p = spec; *p;) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            const char *s = p;
            trim(&s, &n);
            if (n) {
                if (n == 3 && memcmp(s, "all", 3) == 0) {
                    snprintf(err, errlen,
                             "promote-resource-attributes: \"all\" cannot be combined with keys");
                    otlp_translator_free(t);
                    return NULL;
                }
                char **np = realloc(t->promote, (t->n_promote + 1) * sizeof *np);
                if (!np) goto oom;
                t->promote = np;
                if (!(t->promote[t->n_promote] = strndup(s, n))) goto oom;
                t->n_promote++;
            }
            p += e ? (size_t)(e - p) + 1 : strlen(p);
        }
    }
    return t;
oom:
    snprintf(err, errlen, "out of memory");
    otlp_translator_free(t);
    return NULL;
}

void otlp_translator_free(otlp_translator *t) {
    if (!t) return;
    while (t->lru_tail)
        ds_remove(t, t->lru_tail);
    free(t->tab);
    for (size_t i = 0; i < t->n_promote; i++)
        free(t->promote[i]);
    free(t->promote);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

size_t otlp_translator_delta_series(otlp_translator *t) {
    pthread_mutex_lock(&t->mu);
    size_t n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}
