/* zlib-based gzip with an output bound checked before each buffer growth. */
#include "gzip.h"

#include <string.h>
#include <zlib.h>

int tr_gunzip(const uint8_t *in, size_t len, size_t max_out, tr_buf *out) {
    tr_buf_reset(out);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return TR_GZIP_INVALID;
    zs.next_in = (Bytef *)in;
    zs.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
    int rc = TR_GZIP_INVALID;
    for (;;) {
        size_t room = out->cap > out->len + 1 ? out->cap - out->len - 1 : 0;
        if (room == 0) {
            if (out->len >= max_out) {
                /* full: one more byte of output would be over the limit */
                unsigned char probe;
                zs.next_out = &probe;
                zs.avail_out = 1;
                int z = inflate(&zs, Z_NO_FLUSH);
                if (zs.avail_out == 0) { rc = TR_GZIP_TOO_LARGE; break; }
                if (z == Z_STREAM_END && zs.avail_in == 0) { rc = TR_GZIP_OK; break; }
                if (z == Z_STREAM_END) { inflateReset(&zs); continue; }
                break;
            }
            size_t want = out->len < 65536 ? 65536 : out->len;
            if (want > max_out - out->len) want = max_out - out->len;
            if (tr_buf_reserve(out, want)) { rc = TR_GZIP_TOO_LARGE; break; }
            continue;
        }
        if (room > max_out - out->len) room = max_out - out->len;
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
        uInt before = zs.avail_out;
        int z = inflate(&zs, Z_NO_FLUSH);
        out->len += before - zs.avail_out;
        out->data[out->len] = 0;
        if (z == Z_STREAM_END) {
            if (zs.avail_in == 0) { rc = TR_GZIP_OK; break; }
            inflateReset(&zs); /* another member follows */
            continue;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) break;
        if (z == Z_BUF_ERROR && zs.avail_in == 0) break; /* truncated */
        if (z == Z_BUF_ERROR && zs.avail_out != 0) break;
    }
    inflateEnd(&zs);
    return rc;
}

int tr_gzip(const uint8_t *in, size_t len, tr_buf *out) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    size_t bound = deflateBound(&zs, len);
    if (tr_buf_reserve(out, bound)) {
        deflateEnd(&zs);
        return -1;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)bound;
    int z = deflate(&zs, Z_FINISH);
    if (z == Z_STREAM_END) {
        out->len += bound - zs.avail_out;
        out->data[out->len] = 0;
    }
    deflateEnd(&zs);
    return z == Z_STREAM_END ? 0 : -1;
}
