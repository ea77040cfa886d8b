/* Remote write out, private: the WAL reader (rw_wal.c) and what it hands to the queue. */
#ifndef TR_FORWARD_RW_INT_H
#define TR_FORWARD_RW_INT_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "rw_out.h"

/* A series the reader learnt from a series record: its labels already encoded as the
 * repeated Label fields of a TimeSeries. */
typedef struct rw_series {
    uint64_t ref;
    uint8_t *pb; /* in the same allocation, right after the struct */
    uint32_t pblen;
    uint8_t selected; /* matches the target's selector */
    /* the lowest WAL segment that may still hold its samples: the segment of its series record
     * (checkpoint.N's series: N + 1); dropped from the map at a newer checkpoint without it */
    uint32_t seg;
    /* scratch of the one shard encoding it (a series goes to one shard per round): its first
     * and last sample in the request being encoded, UINT32_MAX when none */
    uint32_t first, last;
    struct rw_series *next_retired;
} rw_series;

typedef struct rw_sample {
    rw_series *s;
    uint32_t h; /* the ref's hash: picks the shard without touching the series */
    int64_t t;
    uint64_t v; /* value bits, as in the WAL (a staleness marker keeps its exact bits) */
} rw_sample;

typedef struct rw_exemplar {
    const rw_series *s;
    int64_t t;
    uint64_t v;
    uint8_t *pb; /* its labels, encoded as repeated Label fields (malloc'd) */
    uint32_t pblen;
} rw_exemplar;

typedef struct rw_batch {
    rw_sample *s;
    size_t n, cap;
    rw_exemplar *e;
    size_t ne, cape;
    int64_t max_t; /* newest sample timestamp in the batch */
} rw_batch;
void rw_batch_clear(rw_batch *b);
void rw_batch_free(rw_batch *b);

typedef struct rw_reader {
    char wal_dir[4096];
    tsdb_matcher **m; /* the selector (not owned) */
    size_t nm;
    /* ref -> series, open addressing; the ref and the selector's verdict are kept in the slot
     * so that neither a probe nor skipping an unselected sample touches the series */
    struct rw_slot {
        uint64_t ref;
        rw_series *s;
        uint8_t selected;
    } * slots;
    size_t nslots, nseries;
    rw_series *retired;      /* redefined refs, freed once no batch can point at them */
    long checkpoint;         /* the newest checkpoint the map was trimmed by (-1: none) */
    uint64_t series_trimmed; /* series dropped from the map at checkpoints */
    int check_checkpoint;    /* a segment change since the last look for a new checkpoint */
    /* read position: the next record starts at (seg, off) */
    uint32_t seg;
    uint64_t off;
    int fd;
    uint8_t *buf; /* file bytes [buf_off, buf_off + len) not parsed yet, at buf + head */
    size_t head, len, cap;
    uint64_t buf_off;
    uint64_t records_skipped;  /* damaged records met */
    uint64_t segments_missing; /* segments found gone (dropped by the backlog bound) */
} rw_reader;

/* Starts reading at pos: the series are learnt from the newest checkpoint and every segment
 * before pos (and pos.seg up to pos.off). Returns 0 or -1 (err). */
int rw_reader_open(rw_reader *r, const char *wal_dir, rw_pos pos, tsdb_matcher **m, size_t nm, char *err,
                   size_t errlen);
/* Appends the selected samples and exemplars of whole records to b until it holds max_samples
 * or the end of the written WAL is reached. Returns 1 when it read something (the position
 * moved), 0 at the end of the WAL. When b is empty and a checkpoint newer than the last one
 * covers only segments before the one being read, the series map is trimmed to the series
 * still alive (those in the checkpoint or defined after it), as Prometheus's WAL watcher does. */
int rw_reader_next(rw_reader *r, rw_batch *b, size_t max_samples);
void rw_reader_close(rw_reader *r);
/* Samples in the sample records of a segment file from byte `from` on (for the dropped count). */
uint64_t rw_wal_count_samples(const char *path, uint64_t from);

/* Encodes a WriteRequest of b's samples s[i] for i in idx[0..n) and exemplars e[j] for j in
 * eidx[0..ne) (grouped per series, in order) into out; returns its length or 0 (out of memory). */
typedef struct rw_bytes {
    uint8_t *p;
    size_t len, cap;
    int err;
} rw_bytes;
void rwb_put(rw_bytes *b, const void *p, size_t n);
int rwb_reserve(rw_bytes *b, size_t n); /* room for n more bytes; 0 or -1 (b->err set) */
void rwb_varint(rw_bytes *b, uint64_t v);
void rwb_free(rw_bytes *b);

#endif

/* ---- HTTP/1.1 client (rw_http.c): blocking, one connection per shard, kept alive ---- */
typedef struct rw_conn {
    int fd;
    struct tr_tls_conn *tls; /* https: the TLS session over fd */
} rw_conn;
/* POSTs body to u with the given extra header block ("Name: value\r\n" lines). Returns 0 with
 * *r filled (and up to errcap-1 bytes of the response body in errbody), or -1 on a network
 * error (err says what). The connection is reused unless the server closes it. */
int rw_http_post(rw_conn *c, const rw_url *u, const char *headers, const uint8_t *body, size_t len,
                 int64_t timeout_ms, rw_http_resp *r, char *errbody, size_t errcap, char *err, size_t errlen);
void rw_conn_close(rw_conn *c);
