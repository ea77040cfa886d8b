/* zlib-based gzip with a hard output bound: output is inflated into a buffer that never grows
 * past the limit, and one probe byte past the limit decides "too large", so a bomb costs at
 * most `max_out` bytes of memory and the time to inflate that much. */
#include "gzip.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

/* zlib counts in uInt (32 bits): feed longer inputs in slices. */
static uInt slice(size_t n) { return n > UINT_MAX ? UINT_MAX : (uInt)n; }

int tr_gunzip(const uint8_t *in, size_t len, size_t max_out, tr_buf *out) {
    tr_buf_reset(out);
    /* the buffer's own cap keeps its doubling from overshooting the limit */
    size_t saved_max = out->max;
    if (!out->max || out->max > max_out) out->max = max_out;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        out->max = saved_max;
        return TR_GZIP_INVALID;
    }
    const uint8_t *next = in;
    size_t left = len; /* input not yet handed to zlib */
    int rc = TR_GZIP_INVALID;
    for (;;) {
        if (zs.avail_in == 0 && left) {
            zs.next_in = (Bytef *)next;
            zs.avail_in = slice(left);
            next += zs.avail_in;
            left -= zs.avail_in;
        }
        size_t room = out->cap > out->len + 1 ? out->cap - out->len - 1 : 0;
        if (room > max_out - out->len) room = max_out - out->len;
        if (room == 0 && out->len < max_out) {
            /* grow geometrically, never past the limit */
            size_t want = out->len < 65536 ? 65536 : out->len;
            if (want > max_out - out->len) want = max_out - out->len;
            if (tr_buf_reserve(out, want)) {
                rc = TR_GZIP_TOO_LARGE;
                break;
            }
            continue;
        }
        /* At the limit, inflate into a 1-byte probe: any output at all means too large. */
        unsigned char probe;
        int probing = room == 0;
        zs.next_out = probing ? &probe : (Bytef *)out->data + out->len;
        zs.avail_out = probing ? 1 : slice(room);
        uInt before = zs.avail_out;
        int z = inflate(&zs, Z_NO_FLUSH);
        size_t produced = before - zs.avail_out;
        if (probing && produced) {
            rc = TR_GZIP_TOO_LARGE;
            break;
        }
        if (!probing && out->data) {
            out->len += produced;
            out->data[out->len] = 0;
        }
        if (z == Z_STREAM_END) {
            if (zs.avail_in == 0 && left == 0) {
                rc = TR_GZIP_OK;
                break;
            }
            /* more input: it must be another gzip member (anything else is rejected by the
             * header check of the next round) */
            if (inflateReset(&zs) != Z_OK) break;
            continue;
        }
        if (z == Z_OK) continue; /* progress was made */
        if (z == Z_BUF_ERROR) {
            if (zs.avail_in == 0 && left == 0) break;            /* truncated: input ended mid-stream */
            if (zs.avail_in == 0 || zs.avail_out == 0) continue; /* refill / grow / probe */
        }
        break; /* Z_DATA_ERROR (corrupt, bad CRC/length, trailing garbage), Z_MEM_ERROR, ... */
    }
    inflateEnd(&zs);
    out->max = saved_max;
    out->failed = 0;
    return rc;
}

int tr_gzip(const uint8_t *in, size_t len, tr_buf *out) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* Z_BEST_SPEED: replies are compressed on the request's path; level 1 costs a fraction of
     * level 6's time for JSON that is only somewhat larger */
    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    size_t bound = deflateBound(&zs, len);
    if (tr_buf_reserve(out, bound)) {
        deflateEnd(&zs);
        return -1;
    }
    const uint8_t *next = in;
    size_t left = len, oleft = bound;
    zs.next_out = (Bytef *)out->data + out->len;
    int ok = 0;
    for (;;) {
        if (zs.avail_in == 0 && left) {
            zs.next_in = (Bytef *)next;
            zs.avail_in = slice(left);
            next += zs.avail_in;
            left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && oleft) {
            zs.avail_out = slice(oleft);
            oleft -= zs.avail_out;
        }
        int z = deflate(&zs, left ? Z_NO_FLUSH : Z_FINISH);
        if (z == Z_STREAM_END) {
            ok = 1;
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) break;
        /* Z_BUF_ERROR means no progress: go on only if there is something to refill */
        if (z == Z_BUF_ERROR && !((zs.avail_in == 0 && left) || (zs.avail_out == 0 && oleft))) break;
    }
    if (ok) {
        out->len += bound - oleft - zs.avail_out;
        out->data[out->len] = 0;
    }
    deflateEnd(&zs);
    return ok ? 0 : -1;
}
