/* Growable byte buffer with a hard maximum, and a streaming JSON writer on top of it. */
#ifndef TR_BUF_H
#define TR_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr_buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len, cap;
    size_t max; /* 0 = unlimited */
    int failed; /* set once a write was refused (limit or OOM); later writes are no-ops */
} tr_buf;

/* Initialises an empty buffer that will never hold more than `max` bytes (0 = no limit). */
void tr_buf_init(tr_buf *b, size_t max);
void tr_buf_free(tr_buf *b);
void tr_buf_reset(tr_buf *b);
/* Each returns 0, or -1 when the limit would be passed (and sets b->failed). */
int tr_buf_append(tr_buf *b, const void *p, size_t n);
int tr_buf_puts(tr_buf *b, const char *s);
int tr_buf_putc(tr_buf *b, char c);
int tr_buf_printf(tr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tr_buf_vprintf(tr_buf *b, const char *fmt, va_list ap);
/* Ensures room for `n` more bytes; returns 0 or -1. */
int tr_buf_reserve(tr_buf *b, size_t n);

/* JSON output. Writers insert commas themselves: call tr_json_key() before each value
 * inside an object; values inside arrays need nothing. Depth is limited to 64. */
typedef struct tr_json {
    tr_buf *b;
    int depth;
    uint64_t first; /* bit d set: the next item at depth d is the first (no comma) */
} tr_json;

void tr_json_init(tr_json *j, tr_buf *b);
void tr_json_obj_open(tr_json *j);
void tr_json_obj_close(tr_json *j);
void tr_json_arr_open(tr_json *j);
void tr_json_arr_close(tr_json *j);
void tr_json_key(tr_json *j, const char *k);
void tr_json_str(tr_json *j, const char *s);
void tr_json_strn(tr_json *j, const char *s, size_t n);
void tr_json_int(tr_json *j, int64_t v);
void tr_json_uint(tr_json *j, uint64_t v);
/* Finite doubles in shortest round-trip form; NaN/Inf are written as null. */
void tr_json_double(tr_json *j, double v);
void tr_json_bool(tr_json *j, int v);
void tr_json_null(tr_json *j);
/* Writes already-encoded JSON text as one value. */
void tr_json_raw(tr_json *j, const char *s, size_t n);
/* Appends `s` (length n) JSON-escaped, without quotes. Invalid UTF-8 becomes U+FFFD. */
void tr_json_escape(tr_buf *b, const char *s, size_t n);

/* Formats a double as Go's strconv.FormatFloat(v, 'f', -1, 64) does (the shortest digits
 * that round-trip, never an exponent: how Prometheus writes `le` and sample values), with
 * "+Inf", "-Inf" and "NaN". Returns the length of the whole text, as snprintf does; out holds
 * a NUL-terminated prefix when cap is smaller. 32 bytes hold every value in [1e-15, 1e21);
 * TR_DOUBLE_MAX_TEXT bytes hold any double. */
#define TR_DOUBLE_MAX_TEXT 400
int tr_format_double(char *out, size_t cap, double v);
/* As Go's strconv.FormatFloat(v, 'g', -1, 64): how the text exposition format writes sample
 * values (1e+06, 0.0001, 1.5e-05). Same return and buffer rules as tr_format_double. */
int tr_format_double_g(char *out, size_t cap, double v);

#endif
