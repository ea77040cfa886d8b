/* Bounded gzip inflation: a decompression bomb is refused, not inflated. */
#ifndef TR_GZIP_H
#define TR_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum { TR_GZIP_OK = 0, TR_GZIP_INVALID = -1, TR_GZIP_TOO_LARGE = -2 };

/* Inflates the gzip stream in[0..len) into out (which is reset first), stopping as soon as
 * the output would pass max_out bytes. Concatenated gzip members are accepted. Returns
 * TR_GZIP_OK, TR_GZIP_INVALID (corrupt, truncated, or followed by anything but another gzip
 * member) or TR_GZIP_TOO_LARGE. Memory used: at most max_out + 1 bytes in out. */
int tr_gunzip(const uint8_t *in, size_t len, size_t max_out, tr_buf *out);

/* Compresses in[0..len) as one gzip member into out (appended). Returns 0 or -1. */
int tr_gzip(const uint8_t *in, size_t len, tr_buf *out);

#endif
