/* Private layout of the metrics store, shared by the files of src/metrics/ and its unit tests
 * only. Locking: db->mu guards the head (series, postings, chunks), the WAL writer and the
 * block list; blocks themselves are immutable and refcounted, read without the lock. */
#ifndef TR_METRICS_INT_H
#define TR_METRICS_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/hash.h"
#include "util/selfmon.h"
#include "util/text.h"

/* ---- small helpers (mutil.c) ---- */

uint64_t mt_hash(const void *p, size_t n, uint64_t seed);

/* Growable byte vector (abort-free: failures set .err). */
typedef struct bvec {
    uint8_t *p;
    size_t len, cap;
    int err;
} bvec;
void bv_reserve(bvec *b, size_t n);
void bv_put(bvec *b, const void *p, size_t n);
void bv_u8(bvec *b, uint8_t v);
void bv_uvar(bvec *b, uint64_t v);
void bv_svar(bvec *b, int64_t v);
void bv_u32le(bvec *b, uint32_t v);
void bv_u64le(bvec *b, uint64_t v);
void bv_free(bvec *b);

/* Bounded reader over bytes; any overrun sets .err and returns zeros. */
typedef struct rd {
    const uint8_t *p, *end;
    int err;
} rd;
uint64_t rd_uvar(rd *r);
int64_t rd_svar(rd *r);
uint8_t rd_u8(rd *r);
uint32_t rd_u32le(rd *r);
uint64_t rd_u64le(rd *r);
const uint8_t *rd_bytes(rd *r, size_t n);

static inline uint64_t zz_enc(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t zz_dec(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Map from a non-zero pointer-sized key to a pointer (open addressing). */
typedef struct ptrmap {
    uintptr_t *keys;
    void **vals;
    size_t cap, n;
} ptrmap;
void *pm_get(const ptrmap *m, uintptr_t k);
int pm_put(ptrmap *m, uintptr_t k, void *v); /* 0 or -1 (OOM) */
void pm_free(ptrmap *m);

/* Interned, refcounted strings: equal strings are one pointer. */
typedef struct sym {
    uint32_t refs, len;
    uint64_t hash;
    char s[];
} sym;
typedef struct symtab {
    sym **tab;
    size_t cap, n;
    size_t bytes;
} symtab;
sym *sym_intern(symtab *t, const char *s, size_t len);     /* new reference; NULL on OOM */
sym *sym_find(const symtab *t, const char *s, size_t len); /* no reference taken */
void sym_ref(sym *s);
void sym_unref(symtab *t, sym *s);
void symtab_free(symtab *t);

/* Sorted id lists (postings) and their set operations; results malloc'd. */
typedef struct idlist {
    uint32_t *v;
    size_t n, cap;
} idlist;
void il_push(idlist *l, uint32_t id);
void il_free(idlist *l);
void il_intersect(idlist *a, const idlist *b); /* a = a ∩ b */
void il_subtract(idlist *a, const idlist *b);  /* a = a − b */
void il_union_many(idlist *out, const uint32_t *const *lists, const size_t *lens, size_t k);

/* Label validity (Prometheus classic rules). */
int mt_valid_label_name(const char *s, size_t n);
int mt_valid_metric_name(const char *s, size_t n);

/* ---- Gorilla XOR chunks (chunk.c) ---- */

#define CHUNK_SAMPLES 120

typedef struct xorenc {
    uint8_t *buf;
    size_t cap;
    uint64_t bits; /* bits written */
    int64_t t, tdelta, mint;
    uint64_t vbits;
    uint8_t lead, trail;
    uint16_t n;
} xorenc;
void xor_append(xorenc *e, int64_t t, double v); /* sets .err-free; aborts never: OOM drops */
int xor_oom(const xorenc *e);
void xor_reset(xorenc *e);

typedef struct xordec {
    const uint8_t *buf;
    uint64_t nbits, pos;
    int64_t t, tdelta;
    uint64_t vbits;
    uint8_t lead, trail;
    uint16_t n, i;
    int err;
} xordec;
void xor_dec_init(xordec *d, const uint8_t *buf, size_t nbytes, uint16_t n);
int xor_dec_next(xordec *d, int64_t *t, double *v); /* 1, or 0 at the end / on corruption */

/* A sealed chunk of the head. */
typedef struct hchunk {
    int64_t mint, maxt;
    uint16_t n;
    uint32_t len;
    uint8_t data[];
} hchunk;

/* ---- head (head.c) ---- */

typedef struct sample {
    int64_t t;
    double v;
} sample;

typedef struct series {
    uint64_t ref; /* stable id in the WAL */
    uint64_t hash;
    struct series *hnext;
    uint32_t slot; /* position in head.slots, the id used by the postings */
    uint16_t nl;
    uint8_t logged; /* its series record is in the current WAL segment set */
    uint8_t pad;
    uint32_t pending; /* open appenders referring to it */
    sym **lbl;        /* 2*nl: name, value, … sorted by name */
    uint32_t keylen;
    hchunk **chunks;
    uint32_t nchunks, capchunks;
    xorenc open;
    int64_t maxt; /* newest in-order timestamp; INT64_MIN when none */
    double lastv;
    sample *ooo; /* out-of-order samples, sorted by t */
    uint32_t nooo, capooo;
    char key[]; /* "name\0value\0…": the label set in one piece, next to the struct,
                   so that a lookup touches one or two cache lines */
} series;

typedef struct head {
    symtab syms;
    series **buckets; /* by label hash */
    size_t nbuckets, nseries;
    series **slots; /* by slot; NULL holes after deletion until the next GC */
    uint32_t nslots, capslots;
    ptrmap names; /* name sym* -> ptrmap* (value sym* -> idlist*) */
    uint64_t next_ref;
    int64_t mint, maxt;
    uint64_t nchunks;
} head;

/* ---- blocks (block.c) ---- */

typedef struct bseries {
    uint32_t *lbl; /* 2*nl symbol indexes */
    uint32_t nl;
    int64_t mint, maxt;
    uint32_t n;
    uint64_t frame_off;
    uint32_t frame_len, in_off, in_len;
} bseries;

typedef struct bvalues {
    uint32_t sym;
    uint32_t n;
    uint32_t *ids;
} bvalues;
typedef struct bname {
    uint32_t sym;
    uint32_t nvals;
    bvalues *vals; /* sorted by value string */
} bname;

typedef struct block {
    char *dir;
    char id[64];
    int64_t mint, maxt;
    uint64_t nseries, nsamples, bytes;
    int level;
    int refs;   /* under db->mu */
    int doomed; /* delete the directory when the last ref goes */
    char **syms;
    uint32_t nsyms;
    bseries *series; /* sorted by labels */
    bname *names;    /* sorted by name */
    uint32_t nnames;
    int fd;           /* chunks file */
    void *arena;      /* one allocation holding syms/series/postings */
    int version;      /* format: 1 (no chunk checksums) or 2 */
    int quarantined;  /* moved aside: never deleted, not listed (under db->mu) */
    char damage[160]; /* the first damage found reading it (under the frame cache's lock) */
} block;

/* One series handed to the block writer: labels sorted, samples ascending and distinct. */
typedef struct wseries {
    tsdb_label *lbl;
    size_t nl;
    sample *s;
    size_t n;
} wseries;

/* Supplies the series of a block in label order: fills *out (valid until the next call) and
 * returns 1, 0 at the end, or -1 on error. Series with no samples are skipped. */
typedef int (*wseries_next)(void *ctx, wseries *out);
/* Writes a block of the series `next` gives into blocks_dir/<id> (streaming: one series and
 * one frame in memory at a time); returns 0, 1 when there was no sample (nothing written,
 * id_out empty), or -1 with err set. */
int block_write(const char *blocks_dir, wseries_next next, void *ctx, int level, char *id_out, size_t idcap,
                char *err, size_t errlen);
/* Opens a block, verifying meta.json (strictly parsed, checked against the index) and every
 * index checksum. NULL with err set on failure; *damaged says whether the block itself is bad
 * (quarantine it) rather than the process (out of memory or file descriptors). */
block *block_open(const char *path, int *damaged, char *err, size_t errlen);
/* Parses meta.json text into v[] (version, minTime, maxTime, numSeries, numSamples, level):
 * 0, or -1 with why. */
int block_parse_meta(const char *js, size_t len, int64_t *v, char *why, size_t whylen);
void block_free(block *b);
/* Samples of block series i (all of them), malloc'd in *out; returns the count, -1 when out of
 * memory, or -2 when the block is damaged (checksum mismatch, short file, undecodable data;
 * b->damage then says where). Damaged bytes are never returned as samples. */
long block_series_samples(block *b, uint32_t i, sample **out);
/* Ids of series matching all matchers (sorted). */
int block_select(block *b, tsdb_matcher *const *m, size_t n, idlist *out);
/* Encoding of one series' samples in a block (columnar; decimal integers when exact). */
void blockenc_series(bvec *out, const sample *s, size_t n);
long blockdec_series(const uint8_t *p, size_t len, sample **out);

/* ---- matchers (index.c) ---- */

struct tsdb_matcher {
    tsdb_match_type type;
    char *name, *value;
    struct tr_re *re; /* =~ and !~ (util/re.h); NULL for = and != */
    int matches_empty;
};

/* A read view of an index: the head's or a block's postings. */
typedef struct ixview {
    void *ctx;
    void (*all)(void *ctx, idlist *out); /* every id, sorted */
    /* calls fn for each value of label `name` with its sorted ids; fn returns non-zero to fail */
    int (*values)(void *ctx, const char *name,
                  int (*fn)(void *c, const char *v, const uint32_t *ids, size_t n), void *c);
    void (*lookup)(void *ctx, const char *name, const char *value, const uint32_t **ids, size_t *n);
} ixview;
/* Ids of the series matching every matcher, sorted. Returns 0 or -1 (OOM). */
int ix_select(const ixview *ix, tsdb_matcher *const *m, size_t n, idlist *out);

/* ---- exemplars (exemplar.c) ----
 * A fixed ring of exemplars, shaped like Prometheus' CircularExemplarStorage: each slot holds
 * one exemplar and the index of the next newer exemplar of the same series; a per-series
 * entry (keyed by the series' label key, independent of head series, which cuts may drop)
 * knows its oldest and newest slot. Writing a slot evicts what it held, always the oldest
 * exemplar of its series. Guarded by exstore.mu (lock order: db->mu, then exstore.mu). */

typedef struct exseries {
    struct exseries *hnext;
    uint64_t hash;
    int64_t oldest, newest; /* ring slots */
    uint32_t keylen;
    char key[]; /* "name\0value\0…", sorted: the head's lookup key */
} exseries;

typedef struct exslot {
    exseries *ser; /* NULL: empty */
    int64_t next;  /* slot of the next newer exemplar of ser; -1: this is the newest */
    char *lbl;     /* exemplar labels as "name\0value\0…" (sorted), NULL when none */
    uint32_t lbllen;
    int64_t t;
    double v;
} exslot;

typedef struct exstore {
    pthread_mutex_t mu;
    exslot *ring;
    size_t cap, next, used;
    exseries **buckets;
    size_t nbuckets, nseries;
    tsdb_exemplar_stats st;
    tr_metric *m_appended, *m_ooo, *m_lbl, *m_stored, *m_series, *m_max;
} exstore;

#define EX_MAX_LABEL_RUNES 128
struct exbatch;
int ex_init(exstore *x, int64_t cap, char *err, size_t errlen);
void ex_free(exstore *x);
void ex_self_init(tsdb *db);
/* Appender side: collects an exemplar (sorted series labels; copies everything). */
int exb_add(tsdb *db, struct exbatch **b, const tsdb_label *sorted, size_t n, const tsdb_label *ex_labels,
            size_t en, int64_t t, double v);
int exb_pending(const struct exbatch *b);
/* At commit, under db->mu: resolves the series, appends series records for those not yet
 * logged to `ser` and the exemplar record's payload to `pl`. */
void exb_encode(tsdb *db, struct exbatch *b, bvec *ser, bvec *pl);
/* After the WAL write (status TSDB_OK or not), under db->mu: marks series and stores. */
void exb_apply(tsdb *db, struct exbatch *b, int status);
void exb_free(struct exbatch *b);
/* Replays one exemplar record; refs maps WAL series refs to head series. */
void ex_replay(tsdb *db, const uint8_t *pl, size_t len, const ptrmap *refs);
/* The whole ring as framed WAL records (for a checkpoint), under db->mu. */
void ex_checkpoint(tsdb *db, bvec *out);

/* ---- the store (db.c) ---- */

typedef struct waiter {
    struct waiter *next;
    uint64_t upto; /* WAL logical offset that must be synced */
    int status;
    char msg[128];
    void (*done)(void *, int, const char *);
    void *cookie;
} waiter;

typedef struct tsdb_metrics_self {
    tr_metric *series, *appended, *ooo_rej, *too_old, *limits, *wal_fsyncs, *wal_bytes, *blocks, *compactions,
        *disk_bytes, *head_chunks, *series_created, *ooo_acc, *quarantined, *wal_skipped, *wal_dropped,
        *duplicates, *too_new;
} tsdb_metrics_self;

struct tsdb {
    tsdb_options o;
    char *dir, *wal_dir, *blocks_dir;
    pthread_mutex_t mu;
    /* sealed head chunks are freed only by cuts, holding this for writing; queriers decode
     * them outside mu holding it for reading (lock order: chunk_rw, then mu) */
    pthread_rwlock_t chunk_rw;
    head h;
    /* WAL (wal.c) */
    int wal_fd;
    uint32_t wal_seg;       /* current segment number */
    uint64_t wal_written;   /* logical bytes written (all segments) */
    uint64_t wal_synced;    /* logical bytes known on disk */
    uint64_t wal_seg_bytes; /* bytes in the current segment */
    int *retired_fds;       /* segment fds to close after the syncer passes */
    size_t nretired;
    int wal_broken;
    /* syncer */
    pthread_t syncer;
    pthread_mutex_t smu; /* guards waiters, done list, stop */
    pthread_cond_t scv;
    waiter *waiting, *done_head, **done_tail;
    int sync_stop;
    struct event *done_ev;
    /* blocks */
    block **blocks; /* sorted by mint */
    size_t nblocks;
    int64_t blocks_maxt; /* the newest block's maxt, for the duplicate check (under mu) */
    /* background */
    pthread_t bg;
    pthread_mutex_t bmu; /* serialises cuts and compactions */
    pthread_cond_t bcv;
    int bg_stop;
    /* metadata */
    pthread_mutex_t metamu;
    ptrmap meta; /* family sym-less: key = hash → list */
    struct metaent **metas;
    size_t nmetas, capmetas;
    int64_t meta_pruned_ms; /* when meta_prune last ran (wall clock) */
    /* counters */
    tsdb_stats st;
    int self_on;
    tsdb_metrics_self self;
    int closing;
    int ready; /* WAL replayed (atomic) */
    int replay_failed;
    exstore ex; /* exemplars (exemplar.c) */
};

/* head.c */
int head_init(head *h);
void head_free(head *h);
series *head_get_or_create(tsdb *db, const tsdb_label *sorted, size_t n, const char *key, size_t keylen,
                           uint64_t hash, int *created, int *err);
series *head_lookup(head *h, const char *key, size_t keylen, uint64_t hash);
/* Writes the lookup key of sorted labels into buf (if it fits) and returns its length. */
size_t labels_key(const tsdb_label *l, size_t n, char *buf, size_t cap);
series *head_create_with_ref(tsdb *db, const tsdb_label *sorted, size_t n, uint64_t ref);
/* Appends one sample, honouring the OOO window unless `force`; returns TSDB_OK or an error. */
int head_append(tsdb *db, series *s, int64_t t, double v, int force);
/* Whether s already holds another value at t (t at most its newest): head_append would
 * refuse the sample as a duplicate. Under db->mu. */
int head_conflicts(const series *s, int64_t t, double v);
/* A copy of what a query needs from a head series, taken under db->mu and decoded after it
 * is released (with chunk_rw held for reading). */
typedef struct hsnap {
    hchunk **chunks;
    uint32_t nchunks;
    uint16_t open_n;
    uint8_t *open;
    size_t open_len;
    sample *ooo;
    uint32_t nooo;
} hsnap;
int head_snapshot(const series *s, int64_t mint, int64_t maxt, hsnap *out); /* 0 or -1 (OOM) */
long hsnap_samples(hsnap *h, int64_t mint, int64_t maxt, sample **out);     /* frees the copies */
int head_select(head *h, tsdb_matcher *const *m, size_t n, idlist *out);
uint64_t labels_hash(const tsdb_label *l, size_t n);
int labels_cmp(const tsdb_label *a, size_t na, const tsdb_label *b, size_t nb);
/* Removes series left without data that no appender holds, rebuilds the postings if any
 * went, and recomputes the head's time range. */
void head_remove_all_empty(tsdb *db);
void series_labels(const series *s, tsdb_label *out);

/* wal.c */
int wal_open(tsdb *db, char *err, size_t errlen); /* replays, then opens for append */
int wal_write(tsdb *db, const void *p, size_t n); /* under db->mu; 0 or -1 */
void wal_record(bvec *b, uint8_t type, const bvec *payload);
/* A checkpoint of the head: begin under db->mu (snapshot, new segment), finish without it
 * (writes wal/checkpoint.N, deletes the segments it covers). finish does not free c. */
typedef struct wal_ckpt wal_ckpt;
wal_ckpt *wal_checkpoint_begin(tsdb *db, char *err, size_t errlen);
int wal_checkpoint_finish(tsdb *db, wal_ckpt *c, char *err, size_t errlen);
void wal_checkpoint_free(wal_ckpt *c);
void wal_close(tsdb *db);
void wal_delete_before(tsdb *db, uint32_t seg);
uint64_t wal_disk_bytes(tsdb *db);
int syncer_start(tsdb *db);
void syncer_stop(tsdb *db);
void syncer_wait(tsdb *db, uint64_t upto, void (*done)(void *, int, const char *), void *cookie, int status,
                 const char *msg);
enum { WAL_SERIES = 1, WAL_SAMPLES = 2, WAL_EXEMPLARS = 3 };
/* Parses one WAL file; calls fn for each intact record. Returns the offset of the first
 * damaged byte (n when none). */
size_t wal_scan(const uint8_t *p, size_t n,
                void (*fn)(void *ctx, uint8_t type, const uint8_t *pl, size_t len), void *ctx);
/* What a scan skipped: damaged regions (each counted as one record, or exactly one record
 * when its header was intact), their bytes, the sample count that intact headers of damaged
 * sample records announced, the first damaged offset (n when none) and whether the last
 * damaged region reaches the end of the file (a torn tail). */
typedef struct wal_damage {
    uint64_t records, bad_records, bad_bytes, samples_hint;
    size_t first_bad;
    int tail;
} wal_damage;
/* As wal_scan, skipping damage: reading resumes at the next record that checks out. fn may
 * be NULL (verification only). Returns n. */
size_t wal_scan_ex(const uint8_t *p, size_t n,
                   void (*fn)(void *ctx, uint8_t type, const uint8_t *pl, size_t len), void *ctx,
                   wal_damage *d);

/* db.c */
void db_block_unref(tsdb *db, block *b); /* under db->mu */
/* Takes a damaged block off the list and moves its directory to <dir>/quarantine/<id>
 * (logged once, counted, never deleted). Takes db->mu; a no-op when it is no longer listed. */
void db_quarantine_block(tsdb *db, block *b, const char *why);
int db_cut(tsdb *db, int64_t before, char *err, size_t errlen);
/* Forgets the metadata of families that no series (head or block) carries any more and that
 * were not given metadata within the last grace_ms. Returns how many went. */
size_t db_meta_prune(tsdb *db, int64_t grace_ms);
/* One round of background work: cut the head if it spans too long, compact, retention. */
void tsdb_maintain(tsdb *db);

/* Removes a block directory (its three files, then the directory). */
void block_remove_dir(const char *dir);

#endif
