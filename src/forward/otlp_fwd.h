/* OTLP forwarding: each OTLP export tricorder receives is appended, as protobuf, to a durable
 * queue on disk per endpoint before the client is acknowledged, and a sender thread per
 * endpoint delivers it (OTLP/gRPC over h2c or OTLP/HTTP/1.1) with retries and back-off. */
#ifndef TR_OTLP_FWD_H
#define TR_OTLP_FWD_H

#include <stddef.h>
#include <stdint.h>

/* ---- the disk queue (one directory per endpoint) ---- */

/* A record on disk: a 16-byte header, then the payload.
 *   u32 payload length (little endian), u32 CRC32C of bytes 8..16 and the payload,
 *   u8 signal (0 metrics, 1 traces), 3 bytes zero, u32 item count (points or spans). */
#define OTLP_FWDQ_HDR 16
#define OTLP_FWDQ_MAX_RECORD ((size_t)1 << 30)

typedef struct otlp_fwdq_rec {
    uint8_t signal;
    uint32_t items;
    const uint8_t *payload; /* points into the buffer given to the parser */
    size_t len;
} otlp_fwdq_rec;

enum { OTLP_FWDQ_MORE = 0, OTLP_FWDQ_BAD = -1 };

/* Parses the record at buf[0..len). Returns the bytes it takes (header + payload, > 0) and
 * fills *r; OTLP_FWDQ_MORE when buf holds only part of it (a torn tail); OTLP_FWDQ_BAD when
 * it is not a record (checksum, reserved bytes, signal, or length over max_payload). Pure. */
long otlp_fwdq_parse(const uint8_t *buf, size_t len, size_t max_payload, otlp_fwdq_rec *r);
/* Writes the header of a record of payload p[0..n) into hdr. */
void otlp_fwdq_header(uint8_t hdr[OTLP_FWDQ_HDR], uint8_t signal, uint32_t items, const uint8_t *p, size_t n);

typedef struct otlp_fwdq otlp_fwdq;

typedef struct otlp_fwdq_stats {
    uint64_t pending_bytes;   /* unsent records (headers included) */
    uint64_t disk_bytes;      /* segment files on disk (sent records linger until their segment goes) */
    uint64_t dropped_records; /* dropped to stay under the bound, since open */
    uint64_t dropped_items, dropped_bytes;
} otlp_fwdq_stats;

/* Opens (creating) the queue in dir, bounded to max_bytes on disk (segments of at most
 * max_bytes/4, at least 64 KiB). A torn record at the end of the newest segment is cut
 * off; the read position comes from dir/position. Returns NULL with a message in err. */
otlp_fwdq *otlp_fwdq_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);
/* Saves the position and closes. NULL is fine. */
void otlp_fwdq_close(otlp_fwdq *q);
/* Appends one record (write(2) done when it returns: it survives a crash of the process).
 * Drops the oldest segments to stay under the bound; a record larger than the bound is
 * itself dropped (returns 1). Returns 0, 1, or -1 on a disk error (errno set). Thread-safe. */
int otlp_fwdq_append(otlp_fwdq *q, uint8_t signal, uint32_t items, const uint8_t *p, size_t n);
/* Reads the oldest unsent record into *buf (malloc'd, replaced; *cap its size), waiting up to
 * wait_ms for one. Returns 1 with *r filled (r->payload into *buf), 0 when none came, -1 on
 * a disk error. A corrupt record skips the rest of its segment (counted as dropped). */
int otlp_fwdq_peek(otlp_fwdq *q, int wait_ms, uint8_t **buf, size_t *cap, otlp_fwdq_rec *r);
/* Marks the record last peeked as sent; segments fully sent are deleted. The position is
 * saved (rename of a small file) at most every 100 ms, and by otlp_fwdq_sync and close.
 * Returns 0 or -1 (the save failed). */
int otlp_fwdq_commit(otlp_fwdq *q);
/* Wakes a peek that waits (for shutdown). */
void otlp_fwdq_wake(otlp_fwdq *q);
/* Saves a position not yet saved, and fdatasyncs what was appended since the last call (the
 * sender calls it about once a second). */
void otlp_fwdq_sync(otlp_fwdq *q);
void otlp_fwdq_stats_get(otlp_fwdq *q, otlp_fwdq_stats *s);

/* ---- the forwarder ---- */

typedef struct otlp_fwd otlp_fwd;

/* Parses one --otlp-forward-endpoint value: URL (grpc://host:port, http://host:port[/prefix],
 * or over TLS grpcs://, https://) then ;-separated options: header=Name=value (repeatable),
 * compression=gzip|none, signals=traces|metrics (only those; default both), timeout=<seconds>;
 * for TLS ca=FILE (default: the system store), cert=FILE and key=FILE (a client certificate),
 * server_name=NAME (verified instead of the host), insecure (no verification). The TLS files
 * are loaded and checked. Returns 0, or -1 with a message in err. Used by otlp_fwd_new and tests. */
int otlp_fwd_check_endpoint(const char *spec, char *err, size_t errlen);

/* Starts one queue (under dir/<hash of the URL>) and one sender thread per endpoint spec
 * (newline-separated). Returns NULL with a message in err. */
otlp_fwd *otlp_fwd_new(const char *specs, const char *dir, uint64_t max_queue_bytes, char *err,
                       size_t errlen);
/* Appends one export (protobuf, uncompressed) to every endpoint's queue. signal: 0 metrics,
 * 1 traces. Returns 0, or -1 when a queue could not write it (the export must then not be
 * acknowledged). Called on the event loop; cost: one write(2) per endpoint. */
int otlp_fwd_enqueue(otlp_fwd *f, int signal, uint32_t items, const uint8_t *p, size_t n);
/* Stops the senders (an unsent record stays queued for the next start) and frees. NULL ok. */
void otlp_fwd_free(otlp_fwd *f);

#endif
