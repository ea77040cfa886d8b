/* The metrics store (TSDB), shaped like Prometheus' TSDB: an in-memory head of compressed
 * chunks behind a write-ahead log, immutable zstd-compressed blocks on disk, background
 * compaction and retention. This header is the whole public surface: the append API (used by
 * the OTLP translation, remote write and import), the querier API (metadata APIs, export,
 * PromQL) and administration (flush, stats). Every function is thread-safe unless it says
 * otherwise; an appender or a querier is used by one thread at a time. */
#ifndef TR_METRICS_H
#define TR_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct event_base;

typedef struct tsdb tsdb;

/* A label: both strings are the caller's memory; the store copies (interns) what it keeps. */
typedef struct tsdb_label {
    const char *name, *value;
} tsdb_label;

typedef struct tsdb_options {
    const char *dir;             /* data directory of the store (created if missing) */
    int64_t retention_ms;        /* blocks whose data is all older than now - this are dropped; 0 = forever */
    int64_t retention_bytes;     /* oldest blocks dropped while blocks use more; 0 = no cap */
    int64_t ooo_window_ms;       /* samples up to this much older than a series' newest are accepted */
    int64_t future_window_ms;    /* samples more than this ahead of the clock are refused; 0 = no limit */
    int64_t max_series;          /* active series in the head; 0 = no limit */
    int64_t max_label_name_len;  /* 0 = default 256 */
    int64_t max_label_value_len; /* 0 = default 4096 */
    int64_t max_labels;          /* labels per series; 0 = default 64 */
    int64_t block_range_ms;      /* head data cut into blocks of this span; 0 = default 2h */
    int64_t max_exemplars;       /* size of the exemplar ring (memory + WAL); 0 = exemplars not kept */
    int64_t snapshots_keep;      /* snapshots kept (the newest); 0 = all */
    struct event_base *base;     /* commit callbacks run on this loop's thread; NULL = inline */
    /* With base: instead of the store's own event, the syncer thread calls wake(wake_ctx) when
     * acknowledgements are due, and the loop's owner then calls tsdb_run_completions() on the
     * loop thread (the application routes it through its one work queue). */
    void (*wake)(void *ctx);
    void *wake_ctx;
    int async_replay;          /* with base: replay the WAL on the background thread, so that
                                  tsdb_open returns at once; until it is done tsdb_ready() is 0
                                  and commits fail with TSDB_ERR_NOT_READY (retryable) */
    int64_t wal_segment_bytes; /* a new WAL segment is started past this size; 0 = 128 MiB */
    /* WAL readers (remote write out): before segments are deleted (a checkpoint covering up to
     * segment `upto`, at open or after a cut), wal_keep(ctx, upto) returns the lowest segment
     * number still needed; segments from it on are kept. NULL: none kept past checkpoints. */
    uint32_t (*wal_keep)(void *ctx, uint32_t upto);
    void *wal_keep_ctx;
} tsdb_options;

/* Runs the commit acknowledgements that are due (loop thread, after a wake). */
void tsdb_run_completions(tsdb *db);

/* Result codes of tsdb_appender_add and friends. */
enum {
    TSDB_OK = 0,
    TSDB_ERR_OUT_OF_ORDER = -1,   /* older than the series' newest sample minus --ooo-window */
    TSDB_ERR_TOO_OLD = -2,        /* outside the retention */
    TSDB_ERR_LABEL_NAME = -3,     /* invalid label name (or duplicate name) */
    TSDB_ERR_NO_NAME = -4,        /* no __name__ label, or an invalid metric name */
    TSDB_ERR_NAME_TOO_LONG = -5,  /* label name over the limit */
    TSDB_ERR_VALUE_TOO_LONG = -6, /* label value over the limit */
    TSDB_ERR_TOO_MANY_LABELS = -7,
    TSDB_ERR_MAX_SERIES = -8, /* would create a series beyond --max-series */
    TSDB_ERR_DUPLICATE = -9,  /* same timestamp, different value */
    TSDB_ERR_IO = -10,        /* WAL write failed (disk full, …) */
    TSDB_ERR_NOMEM = -11,
    TSDB_ERR_CLOSED = -12,
    TSDB_ERR_UTF8 = -13,      /* a label value (or name) is not valid UTF-8 */
    TSDB_ERR_NOT_READY = -14, /* the WAL is still being replayed: retry later */
    TSDB_ERR_TOO_NEW = -15,   /* more than the future window ahead of the clock */
};

/* Opens (creating if needed) the store in o->dir: loads the blocks (a damaged one is moved to
 * <dir>/quarantine), replays the WAL (damaged records are skipped and counted; see wal.c), and
 * starts the WAL syncer and the compaction thread. Returns 0 and *out, or -1 with a message in
 * err. Free with tsdb_close(). */
int tsdb_open(const tsdb_options *o, tsdb **out, char *err, size_t errlen);
/* 1 once the WAL replay is done (at once unless o->async_replay), else 0: /-/ready answers 503
 * and writes are refused (TSDB_ERR_NOT_READY at commit, which ingest answers with 503 or
 * gRPC UNAVAILABLE, so clients retry instead of hanging). */
int tsdb_ready(tsdb *db);
/* Waits for pending commits, cuts the head into a block, truncates the WAL, stops the
 * threads and frees everything. NULL is a no-op. */
void tsdb_close(tsdb *db);

typedef struct tsdb_appender tsdb_appender;

/* Starts a batch. Returns NULL only when out of memory. */
tsdb_appender *tsdb_appender_begin(tsdb *db);
/* Adds one sample; `labels` in any order, must include __name__; empty values mean "absent"
 * (as in Prometheus). Returns TSDB_OK or a TSDB_ERR_* code: that sample is skipped (and
 * counted), the batch goes on. Stale markers are the StaleNaN bit pattern, stored as such.
 * A label set is fully validated (names, lengths, UTF-8) only when it creates a series, so
 * callers need not validate known series per sample. */
int tsdb_appender_add(tsdb_appender *a, const tsdb_label *labels, size_t n, int64_t t_ms, double v);
/* As tsdb_appender_add, for a label set a decoder has already put in the store's canonical
 * form while copying it: `key` holds len bytes, for each label sorted by name (byte order),
 * with no repeated names and no empty values, the name, a NUL, the value and a NUL. The
 * lookup then needs no sorting and no copy. A key not in that form is refused
 * (TSDB_ERR_LABEL_NAME, or as tsdb_appender_add would) when it would create a series. */
int tsdb_appender_add_key(tsdb_appender *a, const char *key, size_t len, int64_t t_ms, double v);
/* A sample for tsdb_appender_add_keys: a key as for tsdb_appender_add_key. */
typedef struct tsdb_keyed {
    const char *key;
    size_t len;
    int64_t t_ms;
    double v;
} tsdb_keyed;
/* As n calls of tsdb_appender_add_key, in order, with each result in rc[i]; faster, as the
 * lookups of many samples overlap. Returns how many were refused. */
size_t tsdb_appender_add_keys(tsdb_appender *a, const tsdb_keyed *s, size_t n, int *rc);
/* Adds an exemplar of the series `series` (labels as for tsdb_appender_add) to the batch.
 * It is kept by a bounded ring (o->max_exemplars, oldest evicted first) and the WAL. The
 * series must exist in the head at commit: a sample of this batch may create it, in any
 * order. Exemplar labels (copied; empty values dropped) are limited to 128 UTF-8 runes of
 * names and values together. Returns TSDB_OK (also when exemplars are not kept), or
 * TSDB_ERR_LABEL_NAME / TSDB_ERR_VALUE_TOO_LONG / TSDB_ERR_UTF8 / TSDB_ERR_NO_NAME /
 * TSDB_ERR_NOMEM: that exemplar is refused (and counted), the batch goes on. At commit, an
 * exemplar equal to its series' newest is dropped silently; one older than it (ordered by
 * time, then value, then labels) is refused and counted as out of order. */
int tsdb_appender_add_exemplar(tsdb_appender *a, const tsdb_label *series, size_t n,
                               const tsdb_label *ex_labels, size_t en, int64_t t_ms, double v);
/* Samples added so far to this batch (accepted ones). */
size_t tsdb_appender_count(const tsdb_appender *a);
/* Writes the batch to the WAL, makes it visible, waits (group commit: one fsync serves many
 * commits) until it is on disk, then calls done(cookie, status, msg) on the thread of
 * o->base (inline before returning when o->base is NULL). status is TSDB_OK or TSDB_ERR_IO
 * (msg says why; the batch was then not stored). Frees the appender. done may be NULL. */
void tsdb_appender_commit(tsdb_appender *a, void (*done)(void *cookie, int status, const char *msg),
                          void *cookie);
/* Drops the batch and frees the appender. */
void tsdb_appender_rollback(tsdb_appender *a);
/* A short English text for a TSDB_* code (static storage). */
const char *tsdb_strerror(int code);

/* Metric family metadata for /api/v1/metadata (type: counter|gauge|histogram|summary|unknown…;
 * help and unit may be NULL). Every distinct (type, help, unit) of a family is kept (the
 * latest 8), in memory and in <dir>/metadata.tsv at close. */
void tsdb_set_metadata(tsdb *db, const char *family, const char *type, const char *help, const char *unit);
typedef struct tsdb_metadata {
    const char *family, *type, *help, *unit;
} tsdb_metadata;
/* Calls fn for every (family, type, help, unit), families sorted by name, a family's triples
 * oldest first (fn returns non-zero to stop). */
void tsdb_metadata_foreach(tsdb *db, int (*fn)(void *ctx, const tsdb_metadata *m), void *ctx);

/* ---- querier ---- */

typedef enum { TSDB_MATCH_EQ, TSDB_MATCH_NEQ, TSDB_MATCH_RE, TSDB_MATCH_NRE } tsdb_match_type;

/* A label matcher. Regexes are fully anchored and use Go RE2 syntax as far as POSIX ERE can
 * express it (\d \w \s, (?i), (?:…), non-greedy quantifiers are translated). */
typedef struct tsdb_matcher tsdb_matcher;
/* Returns a new matcher or NULL with err set (bad regex). Free with tsdb_matcher_free(). */
tsdb_matcher *tsdb_matcher_new(tsdb_match_type type, const char *name, const char *value, char *err,
                               size_t errlen);
void tsdb_matcher_free(tsdb_matcher *m);
/* 1 when the matcher accepts `value` ("" stands for an absent label). */
int tsdb_matcher_matches(const tsdb_matcher *m, const char *value);
const char *tsdb_matcher_name(const tsdb_matcher *m);
const char *tsdb_matcher_value(const tsdb_matcher *m);
tsdb_match_type tsdb_matcher_type(const tsdb_matcher *m);

/* Frees n matchers and the array (selectors are parsed by promql_parse_selector). */
void tsdb_matchers_free(tsdb_matcher **m, size_t n);

/* A querier sees the head and the blocks that overlap [mint, maxt] as of its creation; blocks
 * it uses are not deleted before it is closed. mint is raised to now - retention: nothing
 * older than the retention is answered. Returns NULL when out of memory. */
typedef struct tsdb_querier tsdb_querier;
tsdb_querier *tsdb_querier_open(tsdb *db, int64_t mint, int64_t maxt);
void tsdb_querier_close(tsdb_querier *q);
/* Warnings gathered so far by selections and loads through q, for Prometheus' `warnings`
 * field: a block found damaged (checksum mismatch) has its data left out of the answer (never
 * served) and is quarantined; the answer is the rest plus one warning naming the block.
 * *out holds the returned number of strings, valid until q is closed or used again. */
size_t tsdb_querier_warnings(const tsdb_querier *q, const char *const **out);

/* The series matching every matcher (AND), with data overlapping the querier's range, sorted
 * by label set. Flags: TSDB_SELECT_SAMPLES also loads each series' samples in range.
 * Returns NULL with err set on failure. Free with tsdb_seriesset_free(). */
enum { TSDB_SELECT_SAMPLES = 1 };
typedef struct tsdb_seriesset tsdb_seriesset;
tsdb_seriesset *tsdb_select(tsdb_querier *q, tsdb_matcher *const *m, size_t n, int flags, char *err,
                            size_t errlen);
size_t tsdb_seriesset_len(const tsdb_seriesset *s);
/* The labels of series i, sorted by name (valid until the set is freed). */
size_t tsdb_seriesset_labels(const tsdb_seriesset *s, size_t i, const tsdb_label **out);
/* Samples of series i within [mint, maxt], ascending, one per timestamp (only when selected
 * with TSDB_SELECT_SAMPLES; else 0). */
size_t tsdb_seriesset_samples(const tsdb_seriesset *s, size_t i, const int64_t **t, const double **v);
/* Loads the samples of series i of a set selected without TSDB_SELECT_SAMPLES (or reloads
 * them), so that a caller can walk many series holding one at a time; afterwards
 * tsdb_seriesset_samples gives them. The querier must still be open. Returns 0 or -1 with
 * err set. tsdb_seriesset_unload frees them again. */
int tsdb_seriesset_load(tsdb_seriesset *s, size_t i, char *err, size_t errlen);
void tsdb_seriesset_unload(tsdb_seriesset *s, size_t i);
void tsdb_seriesset_free(tsdb_seriesset *s);

/* Sorted, distinct label names (resp. values of `name`) of the series matching any of the
 * `nsets` matcher sets (all series when nsets is 0) in the querier's range. On success returns
 * a malloc'd array of *n malloc'd strings (free with tsdb_strings_free) and 0, else -1. */
int tsdb_label_names(tsdb_querier *q, tsdb_matcher **const *sets, const size_t *set_lens, size_t nsets,
                     char ***out, size_t *n, char *err, size_t errlen);
int tsdb_label_values(tsdb_querier *q, const char *name, tsdb_matcher **const *sets, const size_t *set_lens,
                      size_t nsets, char ***out, size_t *n, char *err, size_t errlen);
void tsdb_strings_free(char **s, size_t n);

/* ---- exemplars ---- */

typedef struct tsdb_exemplar {
    const tsdb_label *labels; /* sorted by name */
    size_t n_labels;
    double value;
    int64_t t_ms;
} tsdb_exemplar;

/* The exemplars of the series matching any of the `nsets` matcher sets (each an AND of
 * matchers; every series with exemplars when nsets is 0) with a timestamp in [mint, maxt].
 * On success stores a result in *out (free with tsdb_exemplars_free) and returns 0; else -1
 * with err set. Series are sorted by labels, each one's exemplars ascending in time. */
typedef struct tsdb_exemplars tsdb_exemplars;
int tsdb_query_exemplars(tsdb *db, tsdb_matcher **const *sets, const size_t *set_lens, size_t nsets,
                         int64_t mint, int64_t maxt, tsdb_exemplars **out, char *err, size_t errlen);
size_t tsdb_exemplars_len(const tsdb_exemplars *r);
/* Labels of result series i (sorted; valid until the result is freed) and its exemplars. */
size_t tsdb_exemplars_series(const tsdb_exemplars *r, size_t i, const tsdb_label **labels);
size_t tsdb_exemplars_of(const tsdb_exemplars *r, size_t i, const tsdb_exemplar **ex);
void tsdb_exemplars_free(tsdb_exemplars *r);

typedef struct tsdb_exemplar_stats {
    uint64_t in_storage, series, max;
    uint64_t appended, out_of_order, duplicates, label_rejections, unknown_series;
} tsdb_exemplar_stats;
void tsdb_get_exemplar_stats(tsdb *db, tsdb_exemplar_stats *st);

/* ---- administration ---- */

/* Cuts the whole head into a block now (synchronously) and truncates the WAL. Returns 0 or -1
 * with err set. */
int tsdb_flush(tsdb *db, char *err, size_t errlen);
/* Flushes, then hard-links every block into <dir>/snapshots/<name>/ (name written to `name`).
 * Returns 0 or -1 with err set. */
int tsdb_snapshot(tsdb *db, char *name, size_t namecap, char *err, size_t errlen);

typedef struct tsdb_stats {
    uint64_t head_series, head_chunks, head_samples;
    int64_t head_mint, head_maxt; /* INT64_MAX/INT64_MIN when empty */
    uint64_t blocks, block_bytes, block_series, block_samples;
    uint64_t wal_bytes;
    uint64_t samples_appended, out_of_order, too_old, limit_rejections, series_created;
    uint64_t duplicates, too_new; /* refused: another value at an existing timestamp; too far ahead */
    uint64_t wal_fsyncs, wal_written, compactions, blocks_cut;
    uint64_t quarantined; /* damaged blocks moved to <dir>/quarantine since open */
    uint64_t wal_records_skipped, wal_samples_dropped; /* damage met by the last WAL replay */
} tsdb_stats;
void tsdb_get_stats(tsdb *db, tsdb_stats *st);

/* Cardinality statistics of the head for /api/v1/status/tsdb: top `limit` entries of each
 * list, by count descending then name. Strings are malloc'd; free with tsdb_card_free(). */
typedef struct tsdb_card_entry {
    char *name;
    uint64_t value;
} tsdb_card_entry;
typedef struct tsdb_card {
    uint64_t num_label_pairs, open_chunks;
    tsdb_card_entry *by_metric, *label_value_count, *memory_by_label, *by_pair;
    size_t n_by_metric, n_label_value_count, n_memory_by_label, n_by_pair;
} tsdb_card;
void tsdb_head_cardinality(tsdb *db, size_t limit, tsdb_card *out);
void tsdb_card_free(tsdb_card *c);

/* Offline check of the store in `dir` (not open anywhere): verifies meta.json, every index
 * section and chunk frame checksum of every block and every WAL record, writing one line per
 * finding to `report`. With repair, damaged blocks are moved to <dir>/quarantine/<id> and
 * damaged WAL files rewritten with their intact records (the original kept as .corrupt).
 * Returns 0 when nothing is damaged, 1 when something is (also when repaired). */
int tsdb_check(const char *dir, int repair, FILE *report);

/* ---- reading the WAL (remote write out tails it) ----
 * Segments are <dir>/wal/NNNNNNNN (8 digits), checkpoints <dir>/wal/checkpoint.NNNNNNNN.
 * Record payloads: TSDB_WAL_SERIES: repeated {uvarint ref, uvarint nlabels, nlabels x
 * (uvarint len, name bytes, uvarint len, value bytes)}; TSDB_WAL_SAMPLES: uvarint n, n x
 * {uvarint ref, svarint timestamp delta (from 0, then from the previous), u64le value bits};
 * TSDB_WAL_EXEMPLARS: uvarint n, n x {uvarint ref (0: then uvarint len + series key of
 * NUL-terminated name/value strings), svarint timestamp delta, u64le value bits, uvarint len +
 * labels as NUL-terminated name/value strings}. */
enum { TSDB_WAL_SERIES = 1, TSDB_WAL_SAMPLES = 2, TSDB_WAL_EXEMPLARS = 3 };
/* The record at p (n bytes available): 1 when it is whole and intact (*type, payload *pl of
 * *len bytes, *size bytes in all), else 0 (incomplete or damaged). */
int tsdb_wal_record(const uint8_t *p, size_t n, uint8_t *type, const uint8_t **pl, size_t *len, size_t *size);
/* The offset of the next intact record after damage at p (n when there is none). */
size_t tsdb_wal_resync(const uint8_t *p, size_t n);

/* The Prometheus stale marker and a test for it (bit-exact). */
#define TSDB_STALE_NAN_BITS 0x7ff0000000000002ULL
int tsdb_is_stale_nan(double v);
double tsdb_stale_nan(void);

#endif
