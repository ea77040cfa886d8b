/* Pure helpers of the gRPC transport (grpc.c), kept apart from the nghttp2/libevent plumbing
 * so that unit tests reach them: the length-prefixed message reader, method routing, header
 * value checks and the percent-encoding of grpc-message. Private to the OTLP module. */
#ifndef TR_OTLP_GRPC_FRAME_H
#define TR_OTLP_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "otlp.h"

/* ---- length-prefixed messages: 1 byte compressed flag + 4 bytes big-endian length ---- */

/* Incremental reader of a stream of gRPC messages arriving in arbitrary chunks. Zero-initialise
 * it (or grpc_reader_init). It never allocates: the caller decides, per declared length,
 * whether to buffer the body. */
typedef struct grpc_reader {
    uint8_t prefix[5];
    unsigned prefix_got; /* bytes of the current prefix read so far */
    int in_body;         /* the prefix is complete, body bytes are due */
    uint32_t need;       /* body bytes of the current message still due */
    uint32_t length;     /* declared length of the current message */
    unsigned messages;   /* prefixes read so far (complete or not) */
} grpc_reader;

typedef struct grpc_reader_ops {
    /* A prefix was read (before any body byte). Return 0 to go on; a positive value stops
     * the reader and is returned by grpc_reader_feed. */
    int (*message)(void *ud, int compressed, uint32_t length);
    /* Body bytes of the current message, in order; same return convention. */
    int (*body)(void *ud, const uint8_t *p, size_t n);
    /* The current message is complete (also right after message() for a length of 0). */
    int (*complete)(void *ud);
} grpc_reader_ops;

enum { GRPC_READER_BAD_FLAG = -1 };

void grpc_reader_init(grpc_reader *r);
/* Feeds p[0..n). Returns 0 when everything was consumed, GRPC_READER_BAD_FLAG (negative)
 * when a compressed-flag byte is neither 0 nor 1, or the first nonzero value a callback
 * returned (the rest of the input is then left unread). */
int grpc_reader_feed(grpc_reader *r, const uint8_t *p, size_t n, const grpc_reader_ops *ops, void *ud);
/* 1 when the reader stands between two messages (no partial prefix or body). */
int grpc_reader_idle(const grpc_reader *r);
/* Bytes of the current message seen so far (prefix included) when not idle. */
size_t grpc_reader_partial(const grpc_reader *r);

/* ---- request headers ---- */

/* Maps a :path to the OTLP signal it exports. Returns 1 and sets *sig for the metrics, trace
 * and logs Export methods, 0 for any other path. */
int grpc_route(const char *path, size_t n, otlp_signal *sig);

/* 1 when a content-type names gRPC: "application/grpc" alone or followed by '+' or ';'
 * (grpc-go's rule; the media type compared case-insensitively). */
int grpc_content_type_ok(const char *v, size_t n);

typedef enum { GRPC_ENC_IDENTITY = 0, GRPC_ENC_GZIP = 1, GRPC_ENC_UNSUPPORTED = 2 } grpc_encoding;
/* Classifies a grpc-encoding value (absent = identity). */
grpc_encoding grpc_parse_encoding(const char *v, size_t n);

/* Percent-encodes `in` as gRPC requires for grpc-message (bytes outside 0x20..0x7E and '%'
 * become %XX) into out (size cap >= 1), never splitting an escape; always NUL-terminates.
 * Returns the length written. */
size_t grpc_percent_encode(const char *in, char *out, size_t cap);

#endif
