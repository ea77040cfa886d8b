/* Protocol buffers wire format: the varint reader every hand-written decoder shares (the
 * remote-write decoder, the OTLP pre-scan, the trace chunk reader). Header-only so that hot
 * loops inline it. */
#ifndef TR_PBWIRE_H
#define TR_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

/* Wire types. */
enum { TR_PB_VARINT = 0, TR_PB_I64 = 1, TR_PB_LEN = 2, TR_PB_I32 = 5 };

/* Reads the varint at *p (before end) into *v and advances *p. Returns 0, or -1 (and *p
 * unchanged) when it is truncated, longer than 10 bytes, or overflows 64 bits (as Go's
 * protowire.ConsumeVarint refuses it). One to three bytes — tags and the lengths of most
 * fields — take no loop. */
static inline int tr_pb_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *v = *p;
        *pp = p + 1;
        return 0;
    }
    if (end - p >= 2 && p[1] < 0x80) { /* two bytes: lengths of 128 bytes to 16 KiB */
        *v = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        *pp = p + 2;
        return 0;
    }
    if (end - p >= 3 && p[2] < 0x80) { /* three: up to 2 MiB, or lengths written in a fixed 3 bytes */
        *v = (uint64_t)(p[0] & 0x7f) | (uint64_t)(p[1] & 0x7f) << 7 | (uint64_t)p[2] << 14;
        *pp = p + 3;
        return 0;
    }
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end) return -1;
        uint8_t b = *p++;
        if (shift == 63 && b > 1) return -1;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = r;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

/* Writes v as a varint at out (room for 10 bytes); returns the bytes written. */
static inline size_t tr_pb_put_varint(uint8_t *out, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

#endif
