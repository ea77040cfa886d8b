/* Appenders: a batch of samples validated one by one (labels, limits, order, retention),
 * then at commit written to the WAL, applied to the head, and acknowledged after the group
 * fsync. Series are created at add time, their WAL record goes out with the first commit. */
#include "metrics_int.h"
#include "util/buf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pend {
    series *s;
    int64_t t;
    double v;
} pend;

struct tsdb_appender {
    tsdb *db;
    int64_t min_t; /* older samples are outside the retention */
    int64_t max_t; /* newer samples are beyond the future window */
    pend *p;
    size_t n, cap;
    struct exbatch *ex; /* exemplars, applied at commit (exemplar.c) */
    int not_ready;      /* begun during the WAL replay: everything is refused at commit */
    /* the last block series read for the duplicate check (a backfill touches one series'
     * samples of one block many times): the block is referenced while cached */
    struct {
        block *b;
        const series *s;
        sample *smp;
        long n; /* < 0: the series is not in the block (or the block is damaged) */
    } bc;
};

/* Under db->mu. */
static void bcache_drop(tsdb_appender *a) {
    if (!a->bc.b) return;
    free(a->bc.smp);
    db_block_unref(a->db, a->bc.b);
    memset(&a->bc, 0, sizeof a->bc);
}

/* Whether a block holds series s at t with another value (Prometheus refuses such a sample as
 * a duplicate, wherever the first one lives). Asked only for samples not newer than the
 * newest block. Under db->mu; reads the block's chunk file (once per series and block in a
 * batch). */
static int block_conflicts(tsdb_appender *a, const series *s, int64_t t, double v) {
    tsdb *db = a->db;
    tsdb_label mine[512], theirs[512];
    int have_mine = 0;
    for (size_t bi = 0; bi < db->nblocks; bi++) {
        block *b = db->blocks[bi];
        if (t < b->mint || t > b->maxt || b->quarantined) continue;
        if (a->bc.b != b || a->bc.s != s) {
            bcache_drop(a);
            if (!have_mine) {
                series_labels(s, mine);
                have_mine = 1;
            }
            long lo = 0, hi = (long)b->nseries, at = -1;
            while (lo < hi && s->nl <= 512) {
                long mid = lo + (hi - lo) / 2;
                const bseries *bs = &b->series[mid];
                uint32_t nl = bs->nl < 512 ? bs->nl : 512;
                for (uint32_t j = 0; j < nl; j++) {
                    theirs[j].name = b->syms[bs->lbl[2 * j]];
                    theirs[j].value = b->syms[bs->lbl[2 * j + 1]];
                }
                int c = labels_cmp(theirs, nl, mine, s->nl);
                if (c == 0) {
                    at = mid;
                    break;
                }
                if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            b->refs++;
            a->bc.b = b;
            a->bc.s = s;
            a->bc.n = -1;
            if (at >= 0) { /* all its samples: later ones of this batch hit the cache */
                a->bc.n = block_series_samples(b, (uint32_t)at, &a->bc.smp);
                if (a->bc.n < 0) a->bc.smp = NULL; /* damaged: nothing to compare with */
            }
        }
        if (a->bc.n <= 0) continue;
        long lo = 0, hi = a->bc.n;
        while (lo < hi) {
            long mid = lo + (hi - lo) / 2;
            if (a->bc.smp[mid].t < t)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < a->bc.n && a->bc.smp[lo].t == t) return memcmp(&v, &a->bc.smp[lo].v, sizeof v) != 0;
    }
    return 0;
}

static const char *const errs[] = {
    "ok",
    "out of order sample (older than the series' newest sample minus the out-of-order window)",
    "sample too old (outside the retention)",
    "invalid label name",
    "missing or invalid metric name (__name__)",
    "label name too long",
    "label value too long",
    "too many labels",
    "too many series (--max-series reached)",
    "duplicate sample for timestamp",
    "WAL write failed",
    "out of memory",
    "store is closed",
    "label value is not valid UTF-8",
    "the metrics store is replaying its write-ahead log; retry",
    "sample timestamp too far in the future (more than --future-window ahead of the clock)",
};

const char *tsdb_strerror(int code) {
    if (code > 0 || -code >= (int)(sizeof errs / sizeof errs[0])) return "unknown error";
    return errs[-code];
}

int tsdb_is_stale_nan(double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    return b == TSDB_STALE_NAN_BITS;
}

double tsdb_stale_nan(void) {
    uint64_t b = TSDB_STALE_NAN_BITS;
    double v;
    memcpy(&v, &b, 8);
    return v;
}

tsdb_appender *tsdb_appender_begin(tsdb *db) {
    tsdb_appender *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->db = db;
    int64_t now = tr_now_ms();
    a->min_t = db->o.retention_ms > 0 ? now - db->o.retention_ms : INT64_MIN;
    a->max_t = db->o.future_window_ms > 0 ? now + db->o.future_window_ms : INT64_MAX;
    a->not_ready = !tsdb_ready(db);
    return a;
}

size_t tsdb_appender_count(const tsdb_appender *a) { return a->n; }

static void count_reject(tsdb *db, int rc) {
    /* under db->mu */
    switch (rc) {
    case TSDB_ERR_OUT_OF_ORDER:
        db->st.out_of_order++;
        if (db->self_on) tr_counter_add(db->self.ooo_rej, 1);
        break;
    case TSDB_ERR_DUPLICATE:
        db->st.duplicates++;
        if (db->self_on) tr_counter_add(db->self.duplicates, 1);
        break;
    case TSDB_ERR_TOO_NEW:
        db->st.too_new++;
        if (db->self_on) tr_counter_add(db->self.too_new, 1);
        break;
    case TSDB_ERR_TOO_OLD:
        db->st.too_old++;
        if (db->self_on) tr_counter_add(db->self.too_old, 1);
        break;
    case TSDB_ERR_NOMEM:
    case TSDB_ERR_IO:
        break;
    default:
        db->st.limit_rejections++;
        if (db->self_on) tr_counter_add(db->self.limits, 1);
    }
}

/* Sorts the labels into out (dropping empty values); checks only what the lookup needs
 * (a name, no duplicate names, the count). Returns the count or an error. */
static int sort_labels(tsdb *db, const tsdb_label *in, size_t n, tsdb_label *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in[i].name || !in[i].value) return TSDB_ERR_LABEL_NAME;
        if (!in[i].value[0]) continue;
        if (k == cap) return TSDB_ERR_TOO_MANY_LABELS;
        /* insertion sort: label sets are small */
        size_t j = k++;
        /* already sorted input (remote write sends it so) costs one byte compare per label */
        while (j > 0 && (out[j - 1].name[0] > in[i].name[0] ||
                         (out[j - 1].name[0] == in[i].name[0] && strcmp(out[j - 1].name, in[i].name) > 0))) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = in[i];
        if (j > 0 && out[j - 1].name[0] == out[j].name[0] && strcmp(out[j - 1].name, out[j].name) == 0)
            return TSDB_ERR_LABEL_NAME;
        if (j + 1 < k && out[j + 1].name[0] == out[j].name[0] && strcmp(out[j + 1].name, out[j].name) == 0)
            return TSDB_ERR_LABEL_NAME;
    }
    if (!k || strcmp(out[0].name, "__name__") != 0) {
        /* "__name__" sorts after upper-case names: look for it */
        int has = 0;
        for (size_t i = 0; i < k && !has; i++)
            has = strcmp(out[i].name, "__name__") == 0;
        if (!has) return TSDB_ERR_NO_NAME;
    }
    return (int)k;
}

/* The full validation, done once when a series is created. */
static int validate_labels(tsdb *db, const tsdb_label *l, size_t k) {
    size_t maxn = (size_t)db->o.max_label_name_len, maxv = (size_t)db->o.max_label_value_len;
    for (size_t i = 0; i < k; i++) {
        size_t nl = strlen(l[i].name), vl = strlen(l[i].value);
        if (nl > maxn) return TSDB_ERR_NAME_TOO_LONG;
        if (vl > maxv) return TSDB_ERR_VALUE_TOO_LONG;
        if (strcmp(l[i].name, "__name__") == 0) {
            if (!mt_valid_metric_name(l[i].value, vl)) return TSDB_ERR_NO_NAME;
        } else if (!mt_valid_label_name(l[i].name, nl)) {
            return TSDB_ERR_LABEL_NAME;
        }
        if (!tr_utf8_valid(l[i].value, strlen(l[i].value))) return TSDB_ERR_UTF8;
    }
    return TSDB_OK;
}

/* Splits a key given to tsdb_appender_add_key into labels, checking that it is in the
 * canonical form the lookup relies on (sorted, distinct names, no empty values, a name).
 * Returns the count or an error. */
static int key_labels(const char *key, size_t len, tsdb_label *out, size_t cap) {
    const char *p = key, *end = key + len;
    size_t k = 0;
    int has_name = 0;
    while (p < end) {
        const char *nz = memchr(p, 0, (size_t)(end - p));
        if (!nz || nz + 1 >= end) return TSDB_ERR_LABEL_NAME;
        const char *v = nz + 1, *vz = memchr(v, 0, (size_t)(end - v));
        if (!vz || vz == v) return TSDB_ERR_LABEL_NAME;
        if (k == cap) return TSDB_ERR_TOO_MANY_LABELS;
        if (k && strcmp(out[k - 1].name, p) >= 0) return TSDB_ERR_LABEL_NAME;
        has_name |= strcmp(p, "__name__") == 0;
        out[k].name = p;
        out[k++].value = v;
        p = vz + 1;
    }
    return has_name ? (int)k : TSDB_ERR_NO_NAME;
}

/* The part of an add after the lookup key is known, under db->mu: `sorted` (k labels) when
 * the caller has them, else (NULL) they are taken from the key if it creates a series. */
static int add_locked(tsdb_appender *a, const char *key, size_t keylen, uint64_t h, const tsdb_label *sorted,
                      int k, int64_t t, double v) {
    tsdb *db = a->db;
    int rc = TSDB_OK;
    tsdb_label from_key[256];
    if (k < 0) {
        rc = k;
        goto out;
    }
    if (db->closing) {
        rc = TSDB_ERR_CLOSED;
        goto out;
    }
    if (t < a->min_t) {
        rc = TSDB_ERR_TOO_OLD;
        goto out;
    }
    if (t > a->max_t) {
        rc = TSDB_ERR_TOO_NEW;
        goto out;
    }
    series *s = head_lookup(&db->h, key, keylen, h);
    if (!s) {
        /* a new series: validate it fully once (outside the hot path of known series) */
        if (!sorted) {
            size_t cap = (size_t)db->o.max_labels < 256 ? (size_t)db->o.max_labels : 256;
            k = key_labels(key, keylen, from_key, cap);
            if (k < 0) {
                rc = k;
                goto out;
            }
            sorted = from_key;
        }
        rc = validate_labels(db, sorted, (size_t)k);
        if (rc) goto out;
        int created = 0, err = 0;
        s = head_get_or_create(db, sorted, (size_t)k, key, keylen, h, &created, &err);
        if (!s) {
            rc = err;
            goto out;
        }
    }
    if (s->maxt != INT64_MIN && t < s->maxt - db->o.ooo_window_ms) {
        rc = TSDB_ERR_OUT_OF_ORDER;
        goto out;
    }
    if (head_conflicts(s, t, v)) { /* refused now, so the writer hears of it */
        rc = TSDB_ERR_DUPLICATE;
        goto out;
    }
    /* samples as old as the data cut into blocks (a backfill; live samples are newer than
     * every block, so ingestion pays one comparison) */
    if (t <= db->blocks_maxt && db->nblocks && block_conflicts(a, s, t, v)) {
        rc = TSDB_ERR_DUPLICATE;
        goto out;
    }
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        pend *np = realloc(a->p, nc * sizeof *np);
        if (!np) {
            rc = TSDB_ERR_NOMEM;
            goto out;
        }
        a->p = np;
        a->cap = nc;
    }
    s->pending++;
    a->p[a->n].s = s;
    a->p[a->n].t = t;
    a->p[a->n++].v = v;
out:
    if (rc) count_reject(db, rc);
    return rc;
}

static int add_keyed(tsdb_appender *a, const char *key, size_t keylen, uint64_t h, const tsdb_label *sorted,
                     int k, int64_t t, double v) {
    pthread_mutex_lock(&a->db->mu);
    int rc = add_locked(a, key, keylen, h, sorted, k, t, v);
    pthread_mutex_unlock(&a->db->mu);
    return rc;
}

int tsdb_appender_add(tsdb_appender *a, const tsdb_label *labels, size_t n, int64_t t, double v) {
    tsdb *db = a->db;
    if (a->not_ready) return TSDB_OK; /* the head is not touched; the commit refuses the batch */
    tsdb_label sorted[256];
    size_t cap = (size_t)db->o.max_labels < 256 ? (size_t)db->o.max_labels : 256;
    int k = sort_labels(db, labels, n, sorted, cap);
    char small[4096], *key = small;
    size_t keylen = 0;
    uint64_t h = 0;
    small[0] = 0; /* an error (k < 0) passes it on unread */
    if (k > 0) {
        keylen = labels_key(sorted, (size_t)k, small, sizeof small);
        if (keylen > sizeof small) {
            key = malloc(keylen);
            if (!key) return TSDB_ERR_NOMEM;
            labels_key(sorted, (size_t)k, key, keylen);
        }
        h = mt_hash(key, keylen, 0x12345);
    }
    int rc = add_keyed(a, key, keylen, h, sorted, k, t, v);
    if (key != small) free(key);
    return rc;
}

int tsdb_appender_add_key(tsdb_appender *a, const char *key, size_t len, int64_t t, double v) {
    if (a->not_ready) return TSDB_OK;
    return add_keyed(a, key, len, mt_hash(key, len, 0x12345), NULL, 0, t, v);
}

/* Lookups are software-pipelined: the bucket head of sample i + 2*AHEAD and the series of
 * sample i + AHEAD are fetched while sample i is added, so that the cache misses of series
 * scattered over the heap overlap instead of coming one after the other. */
#define KEYS_BATCH 64
#define AHEAD 6

static inline void prefetch_series(const series *x) {
    /* the lookup reads the hash, the key length and the key */
    __builtin_prefetch(&x->hash);
    __builtin_prefetch(x->key);
    __builtin_prefetch(x->key + 64);
}

size_t tsdb_appender_add_keys(tsdb_appender *a, const tsdb_keyed *s, size_t n, int *rc) {
    tsdb *db = a->db;
    size_t refused = 0;
    uint64_t h[KEYS_BATCH];
    if (a->not_ready) {
        for (size_t i = 0; i < n; i++)
            rc[i] = TSDB_OK;
        return 0;
    }
    for (size_t base = 0; base < n; base += KEYS_BATCH) {
        size_t m = n - base < KEYS_BATCH ? n - base : KEYS_BATCH;
        const tsdb_keyed *k = s + base;
        for (size_t i = 0; i < m; i++)
            h[i] = mt_hash(k[i].key, k[i].len, 0x12345);
        pthread_mutex_lock(&db->mu);
        for (size_t i = 0; i < m + 2 * AHEAD; i++) {
            /* reread: adding a new series may grow the table */
            series **b = db->h.buckets;
            size_t mask = db->h.nbuckets - 1;
            if (i < m) __builtin_prefetch(&b[h[i] & mask]);
            if (i >= AHEAD && i - AHEAD < m) {
                const series *x = b[h[i - AHEAD] & mask];
                if (x) prefetch_series(x);
            }
            if (i >= 2 * AHEAD) {
                size_t j = i - 2 * AHEAD;
                rc[base + j] = add_locked(a, k[j].key, k[j].len, h[j], NULL, 0, k[j].t_ms, k[j].v);
                refused += rc[base + j] != TSDB_OK;
            }
        }
        pthread_mutex_unlock(&db->mu);
    }
    return refused;
}

int tsdb_appender_add_exemplar(tsdb_appender *a, const tsdb_label *series_l, size_t n,
                               const tsdb_label *ex_labels, size_t en, int64_t t, double v) {
    tsdb_label sorted[256];
    size_t cap = (size_t)a->db->o.max_labels < 256 ? (size_t)a->db->o.max_labels : 256;
    if (a->not_ready) return TSDB_OK;
    /* no full validation: the series must exist at commit, so it was validated then */
    int k = sort_labels(a->db, series_l, n, sorted, cap);
    if (k < 0) return k;
    return exb_add(a->db, &a->ex, sorted, (size_t)k, ex_labels, en, t, v);
}

static inline void prefetch_commit(const series *s) {
    __builtin_prefetch(&s->ref);
    __builtin_prefetch(&s->open);
    __builtin_prefetch(&s->maxt);
}

/* A varint at o (room is the caller's); returns the byte after it. */
static inline uint8_t *put_uvar(uint8_t *o, uint64_t v) {
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}

static void release(tsdb_appender *a) {
    for (size_t i = 0; i < a->n; i++)
        a->p[i].s->pending--;
}

void tsdb_appender_rollback(tsdb_appender *a) {
    if (!a) return;
    pthread_mutex_lock(&a->db->mu);
    release(a);
    bcache_drop(a);
    pthread_mutex_unlock(&a->db->mu);
    exb_free(a->ex);
    free(a->p);
    free(a);
}

void tsdb_appender_commit(tsdb_appender *a, void (*done)(void *cookie, int status, const char *msg),
                          void *cookie) {
    tsdb *db = a->db;
    bvec ser = {0}, smp = {0}, rec = {0}, exr = {0};
    int status = TSDB_OK;
    const char *msg = NULL;
    uint64_t upto = 0;
    if (a->bc.b) { /* the duplicate check's block reference, not needed at commit */
        pthread_mutex_lock(&db->mu);
        bcache_drop(a);
        pthread_mutex_unlock(&db->mu);
    }
    if (a->not_ready) {
        exb_free(a->ex);
        free(a->p);
        free(a);
        if (done) done(cookie, TSDB_ERR_NOT_READY, tsdb_strerror(TSDB_ERR_NOT_READY));
        return;
    }
    if (a->n == 0 && !exb_pending(a->ex)) {
        exb_free(a->ex);
        free(a->p);
        free(a);
        if (done) done(cookie, TSDB_OK, NULL);
        return;
    }
    /* the samples record: room for every entry at once (a count, then per sample at most
     * 10 + 10 + 8 bytes), written without a call per field */
    bv_reserve(&smp, 10 + a->n * 28);
    uint8_t *o = smp.err ? NULL : smp.p;
    if (o) o = put_uvar(o, a->n);
    int64_t prev = 0;
    pthread_mutex_lock(&db->mu);
    /* the batch touches thousands of series scattered over the heap: prefetch a few ahead
     * (what this loop and the next read: the WAL fields, the open chunk's header) */
    for (size_t i = 0; i < a->n && i < 16; i++)
        prefetch_commit(a->p[i].s);
    for (size_t i = 0; i < a->n; i++) {
        series *s = a->p[i].s;
        if (i + 16 < a->n) prefetch_commit(a->p[i + 16].s);
        if (i + 4 < a->n) {
            const xorenc *e = &a->p[i + 4].s->open;
            if (e->buf) __builtin_prefetch(e->buf + (e->bits >> 3), 1);
        }
        if (!s->logged) {
            s->logged = 2; /* 2: in this batch, not yet written */
            bv_uvar(&ser, s->ref);
            bv_uvar(&ser, s->nl);
            for (uint16_t j = 0; j < 2 * s->nl; j++) {
                bv_uvar(&ser, s->lbl[j]->len);
                bv_put(&ser, s->lbl[j]->s, s->lbl[j]->len);
            }
        }
        if (o) {
            uint64_t vb;
            memcpy(&vb, &a->p[i].v, 8);
            o = put_uvar(o, s->ref);
            o = put_uvar(o, zz_enc((int64_t)((uint64_t)a->p[i].t - (uint64_t)prev)));
            prev = a->p[i].t;
            for (int b = 0; b < 8; b++)
                *o++ = (uint8_t)(vb >> (8 * b)); /* little-endian */
        }
    }
    if (o) smp.len = (size_t)(o - smp.p);
    exb_encode(db, a->ex, &ser, &exr); /* series records it needs join `ser` */
    if (ser.len) wal_record(&rec, WAL_SERIES, &ser);
    if (a->n) wal_record(&rec, WAL_SAMPLES, &smp);
    if (exr.len) wal_record(&rec, WAL_EXEMPLARS, &exr);
    if (rec.err || ser.err || smp.err || exr.err) {
        status = TSDB_ERR_NOMEM;
        msg = "out of memory";
    } else if (wal_write(db, rec.p, rec.len) != 0) {
        status = TSDB_ERR_IO;
        msg = "WAL write failed (disk full?)";
    }
    uint64_t ok = 0;
    for (size_t i = 0; i < a->n; i++) {
        series *s = a->p[i].s;
        if (i + 4 < a->n) {
            const xorenc *e = &a->p[i + 4].s->open;
            if (e->buf) __builtin_prefetch(e->buf + (e->bits >> 3), 1);
        }
        if (s->logged == 2) s->logged = status ? 0 : 1;
        if (status) continue;
        int rc = head_append(db, s, a->p[i].t, a->p[i].v, 0);
        if (rc)
            count_reject(db, rc);
        else
            ok++;
        if (rc == TSDB_OK && a->p[i].t < s->maxt && db->self_on) tr_counter_add(db->self.ooo_acc, 1);
    }
    exb_apply(db, a->ex, status);
    release(a);
    db->st.samples_appended += ok;
    upto = db->wal_written;
    pthread_mutex_unlock(&db->mu);
    if (db->self_on && ok) tr_counter_add(db->self.appended, ok);
    bv_free(&ser);
    bv_free(&smp);
    bv_free(&rec);
    bv_free(&exr);
    exb_free(a->ex);
    free(a->p);
    free(a);
    syncer_wait(db, upto, done, cookie, status, msg);
}
