/* Text and byte-string helpers shared by every module: UTF-8 validation, base64, hex, and a
 * constant-time comparison for secrets. */
#ifndef TR_TEXT_H
#define TR_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* 1 when s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
 * ASCII runs are checked eight bytes at a time. */
int tr_utf8_valid(const char *s, size_t n);
/* Length (1 to 4) of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 when invalid. */
size_t tr_utf8_seq(const char *s, size_t n);

/* Appends the standard base64 (RFC 4648 §4, with '=' padding) of p[0..n) to b. */
void tr_base64_encode(tr_buf *b, const uint8_t *p, size_t n);
/* Decodes base64 in the standard or the URL-safe alphabet, padding optional (but, when
 * present, completing a group of 4). out needs room for tr_base64_max(n) bytes and may be
 * s itself (the output never outruns the input). Returns the decoded length or -1. */
long tr_base64_decode(const char *s, size_t n, uint8_t *out);
#define tr_base64_max(n) ((n) / 4 * 3 + 2)

/* Writes the lowercase hex of p[0..n) and a NUL to out (2n+1 bytes). */
void tr_hex_encode(const uint8_t *p, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int tr_hex_val(int c);
/* Decodes exactly 2n hex digits of s into out[0..n). Returns 0 or -1. */
int tr_hex_decode(const char *s, size_t n, uint8_t *out);

/* 1 when the NUL-terminated strings are equal; the time taken depends on the length of
 * `secret` only, not on where `given` differs. */
int tr_secret_equal(const char *given, const char *secret);

#endif
