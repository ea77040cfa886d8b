/* libFuzzer target: bounded gunzip with a small limit (so bombs are cheap to find); the output
 * never passes the limit and a success re-compresses and inflates back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/gzip.h"

#define LIMIT (256u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tr_buf out;
    tr_buf_init(&out, 0);
    int rc = tr_gunzip(data, size, LIMIT, &out);
    if (rc != TR_GZIP_OK && rc != TR_GZIP_INVALID && rc != TR_GZIP_TOO_LARGE) abort();
    if (out.len > LIMIT || out.cap > LIMIT + 1) abort();
    if (rc == TR_GZIP_OK) {
        tr_buf z, back;
        tr_buf_init(&z, 0);
        tr_buf_init(&back, 0);
        if (tr_gzip((const uint8_t *)(out.data ? out.data : ""), out.len, &z)) abort();
        if (tr_gunzip((const uint8_t *)z.data, z.len, LIMIT, &back) != TR_GZIP_OK) abort();
        if (back.len != out.len || (out.len && memcmp(back.data, out.data, out.len))) abort();
        tr_buf_free(&z);
        tr_buf_free(&back);
    }
    tr_buf_free(&out);
    return 0;
}
