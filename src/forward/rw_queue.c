/* Remote write out: targets, their reader threads, shards, encoding, retries, positions and
 * self-metrics (see rw_out.h). */
#include "rw_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "promql/promql.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/selfmon.h"
#include "util/text.h"

typedef struct rw_tgt {
    struct rw_out *o;
    rw_target_config c;
    rw_url u;
    char *hdrs;
    char label[4600]; /* remote_name="…",url="…" */
    tsdb_matcher **m;
    size_t nm;
    char pos_path[4300];
    pthread_mutex_t mu;
    rw_pos acked;
    int has_pos;
    int drop_logged;
    pthread_t th;
    int running;
    /* shard workers 1..max_shards-1 (shard 0 is the reader thread), started as the backlog
     * first needs them and kept */
    pthread_t *wth;
    size_t nw;
    pthread_mutex_t pmu;
    pthread_cond_t pcv, dcv;
    struct shard_job **slot; /* per worker: its job of the current round, or NULL */
    size_t busy;
    int quit;
    rw_conn *conns;
    tr_metric *samples, *failed, *retried, *dropped, *pending, *sent_ts, *in_ts, *shards, *shards_desired,
        *shards_max, *exemplars, *ex_failed, *ex_retried, *metadata, *bytes, *segment, *failed_req;
} rw_tgt;

struct rw_out {
    char wal_dir[4200];
    char pos_dir[4200];
    char *user_agent;
    int64_t max_backlog;
    rw_tgt *t;
    size_t n;
    tsdb *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int64_t stop_deadline; /* monotonic ms */
};

/* ---- positions ---- */

int rw_pos_load(const char *path, rw_pos *p) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned seg;
    unsigned long long off;
    int ok = fscanf(f, "%u %llu", &seg, &off) == 2;
    fclose(f);
    if (!ok) return -1;
    p->seg = seg;
    p->off = off;
    return 0;
}

int rw_pos_save(const char *path, const rw_pos *p) {
    char tmp[4400], line[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(line, sizeof line, "%u %llu\n", p->seg, (unsigned long long)p->off);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int rc = tr_write_all(fd, line, (size_t)n);
    if (rc == 0 && fdatasync(fd) != 0) rc = -1;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc) unlink(tmp);
    return rc;
}

static void save_pos(rw_tgt *t, rw_pos p) {
    pthread_mutex_lock(&t->mu);
    t->acked = p;
    t->has_pos = 1;
    pthread_mutex_unlock(&t->mu);
    if (rw_pos_save(t->pos_path, &p) != 0) {
        char q[4400];
        TR_ERROR_LIMITED(t->pos_path, "remote write: cannot save the WAL position", "file=%s errno=%d",
                         tr_log_quote(q, sizeof q, t->pos_path), errno);
        tr_storage_error("metrics", "remote_write_position");
    }
    tr_gauge_set(t->segment, p.seg);
}

/* ---- the WAL floor (called by the store before it deletes segments) ---- */

uint32_t rw_out_wal_keep(void *ctx, uint32_t upto) {
    rw_out *o = ctx;
    uint32_t floor = UINT32_MAX;
    for (size_t i = 0; i < o->n; i++) {
        pthread_mutex_lock(&o->t[i].mu);
        if (o->t[i].has_pos && o->t[i].acked.seg < floor) floor = o->t[i].acked.seg;
        pthread_mutex_unlock(&o->t[i].mu);
    }
    if (floor > upto) return floor;
    size_t ns;
    uint32_t *segs = rw_wal_segments(o->wal_dir, &ns, NULL);
    uint64_t *sz = calloc(ns ? ns : 1, sizeof *sz), total = 0;
    char path[4300];
    for (size_t i = 0; sz && i < ns; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%08u", o->wal_dir, segs[i]);
        if (segs[i] >= floor && segs[i] <= upto && stat(path, &st) == 0)
            total += sz[i] = (uint64_t)st.st_size;
    }
    /* past the backlog bound the oldest kept segments go; what the targets had not sent of
     * them is counted as dropped */
    for (size_t i = 0; sz && i < ns && total > (uint64_t)o->max_backlog; i++) {
        if (segs[i] < floor || segs[i] > upto) continue;
        snprintf(path, sizeof path, "%s/%08u", o->wal_dir, segs[i]);
        for (size_t k = 0; k < o->n; k++) {
            rw_tgt *t = &o->t[k];
            pthread_mutex_lock(&t->mu);
            int behind = t->has_pos && t->acked.seg <= segs[i];
            uint64_t from = t->has_pos && t->acked.seg == segs[i] ? t->acked.off : 0;
            int logged = t->drop_logged;
            if (behind) t->drop_logged = 1;
            pthread_mutex_unlock(&t->mu);
            if (!behind) continue;
            uint64_t lost = rw_wal_count_samples(path, from);
            tr_counter_add(t->dropped, lost);
            if (!logged)
                TR_ERROR(
                    "remote write: the target is further behind than --remote-write-max-backlog; the oldest "
                    "WAL segments are deleted and their samples dropped for it (logged once; see "
                    "prometheus_remote_storage_samples_dropped_total)",
                    "%s segment=%08u samples=%llu", t->label, segs[i], (unsigned long long)lost);
        }
        total -= sz[i];
        floor = segs[i] + 1;
    }
    free(sz);
    free(segs);
    return floor;
}

/* ---- encoding ---- */

static size_t vlen(uint64_t v) {
    size_t k = 1;
    while (v >= 0x80) {
        v >>= 7;
        k++;
    }
    return k;
}

static void put_fixed64(rw_bytes *b, uint64_t v) {
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    rwb_put(b, t, 8);
}

static size_t sample_len(int64_t t) { return 1 + 8 + 1 + vlen((uint64_t)t); }

static uint8_t *pvar(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* samples idx[0..n) (in WAL order) as TimeSeries, one per series with its labels once and its
 * samples in order; each written in place after one size check. The samples are grouped by
 * chaining them per series (nx: the next sample of the same series, order: each series' first)
 * rather than sorted; the chains live in the series' scratch fields, which only this shard uses. */
static void encode_samples(rw_bytes *out, const rw_sample *s, const size_t *idx, size_t n, uint32_t *nx,
                           uint32_t *order) {
    size_t no = 0;
    for (size_t i = 0; i < n; i++) {
        rw_series *ser = s[idx[i]].s;
        nx[i] = UINT32_MAX;
        if (ser->first == UINT32_MAX) {
            ser->first = (uint32_t)i;
            order[no++] = (uint32_t)i;
        } else {
            nx[ser->last] = (uint32_t)i;
        }
        ser->last = (uint32_t)i;
    }
    for (size_t o = 0; o < no && !out->err; o++) {
        const rw_series *ser = s[idx[order[o]]].s;
        size_t len = ser->pblen;
        for (uint32_t i = order[o]; i != UINT32_MAX; i = nx[i]) {
            size_t l = sample_len(s[idx[i]].t);
            len += 1 + vlen(l) + l;
        }
        if (rwb_reserve(out, 1 + 10 + len) != 0) break;
        uint8_t *p = out->p + out->len;
        *p++ = (1 << 3) | 2;
        p = pvar(p, len);
        memcpy(p, ser->pb, ser->pblen);
        p += ser->pblen;
        for (uint32_t i = order[o]; i != UINT32_MAX; i = nx[i]) {
            const rw_sample *x = &s[idx[i]];
            *p++ = (2 << 3) | 2;
            *p++ = (uint8_t)sample_len(x->t); /* at most 20: one byte */
            *p++ = (1 << 3) | 1;
            for (int k = 0; k < 8; k++)
                *p++ = (uint8_t)(x->v >> (8 * k));
            *p++ = 2 << 3;
            p = pvar(p, (uint64_t)x->t);
        }
        out->len = (size_t)(p - out->p);
    }
    for (size_t o = 0; o < no; o++)
        s[idx[order[o]]].s->first = UINT32_MAX;
}

static void encode_exemplars(rw_bytes *out, const rw_exemplar *e, const size_t *idx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const rw_exemplar *x = &e[idx[i]];
        size_t el = x->pblen + 1 + 8 + 1 + vlen((uint64_t)x->t);
        size_t len = x->s->pblen + 1 + vlen(el) + el;
        rwb_varint(out, (1 << 3) | 2);
        rwb_varint(out, len);
        rwb_put(out, x->s->pb, x->s->pblen);
        rwb_varint(out, (3 << 3) | 2);
        rwb_varint(out, el);
        rwb_put(out, x->pb, x->pblen);
        rwb_varint(out, (2 << 3) | 1);
        put_fixed64(out, x->v);
        rwb_varint(out, 3 << 3);
        rwb_varint(out, (uint64_t)x->t);
    }
}

/* ---- sending ---- */

static int64_t mono(void) { return tr_mono_ms(); }

static int stopping_past_deadline(rw_out *o) {
    pthread_mutex_lock(&o->mu);
    int r = o->stop && mono() >= o->stop_deadline;
    pthread_mutex_unlock(&o->mu);
    return r;
}

/* sleeps up to ms; returns early (1) when the stop deadline has passed */
static int nap(rw_out *o, int64_t ms) {
    int64_t until = mono() + ms;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        int64_t now = mono();
        if (o->stop && now >= o->stop_deadline) break;
        if (now >= until) break;
        int64_t w = until - now;
        if (o->stop && o->stop_deadline - now < w) w = o->stop_deadline - now;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += w / 1000;
        ts.tv_nsec += (w % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&o->cv, &o->mu, &ts);
    }
    int r = o->stop && mono() >= o->stop_deadline;
    pthread_mutex_unlock(&o->mu);
    return r;
}

enum { SENT = 0, REFUSED = 1, ABORTED = -1 };

/* Sends one WriteRequest (raw protobuf) with retries. */
static int send_req(rw_tgt *t, rw_conn *c, const rw_bytes *pb, uint64_t nsamples, uint64_t nex,
                    uint64_t nmeta) {
    size_t cap = snappy_max_compressed_length(pb->len);
    char *z = malloc(cap ? cap : 1);
    size_t zl = cap;
    if (!z || snappy_compress((const char *)pb->p, pb->len, z, &zl) != SNAPPY_OK) {
        free(z);
        TR_ERROR_LIMITED(t->label, "remote write: out of memory compressing a batch; retrying", "%s",
                         t->label);
        nap(t->o, 1000);
        return ABORTED;
    }
    unsigned attempt = 0;
    int rc = ABORTED;
    for (;;) {
        rw_http_resp r;
        char body[512], err[512];
        int64_t t0 = mono();
        int e = rw_http_post(c, &t->u, t->hdrs, (const uint8_t *)z, zl, t->c.timeout_ms, &r, body,
                             sizeof body, err, sizeof err);
        (void)t0;
        int64_t retry_after = -1;
        if (e == 0 && r.status >= 200 && r.status < 300) {
            tr_counter_add(t->samples, nsamples);
            tr_counter_add(t->exemplars, nex);
            tr_counter_add(t->metadata, nmeta);
            tr_counter_add(t->bytes, zl);
            rc = SENT;
            break;
        }
        if (e == 0 && r.status != 429 && r.status < 500) {
            /* the target refuses this data for good: retrying cannot help */
            tr_counter_add(t->failed, nsamples);
            tr_counter_add(t->ex_failed, nex);
            tr_counter_add(t->failed_req, 1);
            char q[600];
            TR_ERROR_LIMITED(t->label, "remote write: the target refused a batch (not retried)",
                             "%s status=%d samples=%llu body=%s", t->label, r.status,
                             (unsigned long long)nsamples, tr_log_quote(q, sizeof q, body));
            rc = REFUSED;
            break;
        }
        if (e == 0) {
            retry_after = r.retry_after_ms;
            TR_WARN_LIMITED(t->label, "remote write: the target answered with a retryable error; retrying",
                            "%s status=%d retry_after_ms=%lld", t->label, r.status, (long long)retry_after);
        } else {
            TR_WARN_LIMITED(t->label, "remote write: cannot reach the target; retrying", "%s error=\"%s\"",
                            t->label, err);
        }
        tr_counter_add(t->retried, nsamples);
        tr_counter_add(t->ex_retried, nex);
        if (nap(t->o, rw_backoff_ms(t->c.min_backoff_ms, t->c.max_backoff_ms, attempt, retry_after))) break;
        if (attempt < 30) attempt++;
    }
    free(z);
    return rc;
}

typedef struct shard_job {
    rw_tgt *t;
    rw_batch *b;
    int shard;
    size_t *idx, n; /* sample indexes of this shard */
    size_t *eidx, ne;
    int rc;
} shard_job;

static void *shard_main(void *arg) {
    shard_job *j = arg;
    rw_tgt *t = j->t;
    rw_conn *c = &t->conns[j->shard];
    size_t per = (size_t)t->c.max_samples_per_send;
    rw_bytes pb = {0};
    j->rc = SENT;
    size_t most = j->n < per ? j->n : per;
    uint32_t *nx = most ? malloc(most * sizeof *nx) : NULL,
             *order = most ? malloc(most * sizeof *order) : NULL;
    if (most && (!nx || !order)) j->rc = ABORTED;
    for (size_t i = 0; i < j->n && j->rc != ABORTED; i += per) {
        size_t k = j->n - i < per ? j->n - i : per;
        pb.len = 0;
        pb.err = 0;
        encode_samples(&pb, j->b->s, j->idx + i, k, nx, order);
        if (pb.err) {
            j->rc = ABORTED;
            break;
        }
        int r = send_req(t, c, &pb, k, 0, 0);
        if (r == ABORTED) j->rc = ABORTED;
    }
    for (size_t i = 0; i < j->ne && j->rc != ABORTED; i += per) {
        size_t k = j->ne - i < per ? j->ne - i : per;
        pb.len = 0;
        pb.err = 0;
        encode_exemplars(&pb, j->b->e, j->eidx + i, k);
        if (pb.err) {
            j->rc = ABORTED;
            break;
        }
        if (send_req(t, c, &pb, 0, k, 0) == ABORTED) j->rc = ABORTED;
    }
    free(nx);
    free(order);
    rwb_free(&pb);
    return NULL;
}

struct wstart {
    rw_tgt *t;
    size_t i;
};

static void *worker_main(void *arg) {
    struct wstart ws = *(struct wstart *)arg;
    free(arg);
    rw_tgt *t = ws.t;
    pthread_mutex_lock(&t->pmu);
    for (;;) {
        while (!t->slot[ws.i] && !t->quit)
            pthread_cond_wait(&t->pcv, &t->pmu);
        if (!t->slot[ws.i]) break; /* quit */
        shard_job *j = t->slot[ws.i];
        pthread_mutex_unlock(&t->pmu);
        shard_main(j);
        pthread_mutex_lock(&t->pmu);
        t->slot[ws.i] = NULL;
        if (--t->busy == 0) pthread_cond_signal(&t->dcv);
    }
    pthread_mutex_unlock(&t->pmu);
    return NULL;
}

/* Sends the batch over as many shards as it needs; 0 when every part was sent or refused. */
static int send_round(rw_tgt *t, rw_batch *b) {
    size_t per = (size_t)t->c.max_samples_per_send;
    size_t want = (b->n + per - 1) / per;
    if (want < 1) want = 1;
    tr_gauge_set(t->shards_desired, (double)want);
    size_t k = want > (size_t)t->c.max_shards ? (size_t)t->c.max_shards : want;
    tr_gauge_set(t->shards, (double)k);
    tr_gauge_set(t->pending, (double)b->n);
    shard_job *jobs = calloc(k, sizeof *jobs);
    size_t *idx = malloc((b->n + 1) * sizeof *idx), *eidx = malloc((b->ne + 1) * sizeof *eidx);
    size_t *cnt = calloc(k, sizeof *cnt), *ecnt = calloc(k, sizeof *ecnt);
    if (!jobs || !idx || !eidx || !cnt || !ecnt) {
        free(jobs);
        free(idx);
        free(eidx);
        free(cnt);
        free(ecnt);
        return -1;
    }
    /* shard by series: a series' samples stay in order on one shard */
    for (size_t i = 0; i < b->n; i++)
        cnt[b->s[i].h % k]++;
    for (size_t i = 0; i < b->ne; i++)
        ecnt[tr_mix64(b->e[i].s->ref) % k]++;
    size_t off = 0, eoff = 0;
    for (size_t s = 0; s < k; s++) {
        jobs[s] = (shard_job){.t = t, .b = b, .shard = (int)s, .idx = idx + off, .eidx = eidx + eoff};
        off += cnt[s];
        eoff += ecnt[s];
    }
    for (size_t i = 0; i < b->n; i++) {
        shard_job *j = &jobs[b->s[i].h % k];
        j->idx[j->n++] = i;
    }
    for (size_t i = 0; i < b->ne; i++) {
        shard_job *j = &jobs[tr_mix64(b->e[i].s->ref) % k];
        j->eidx[j->ne++] = i;
    }
    /* shards 1..k-1 on the workers (started when first needed), shard 0 here */
    pthread_mutex_lock(&t->pmu);
    while (t->nw + 1 < k) {
        struct wstart *ws = malloc(sizeof *ws);
        if (!ws) break;
        ws->t = t;
        ws->i = t->nw;
        if (pthread_create(&t->wth[t->nw], NULL, worker_main, ws) != 0) {
            free(ws);
            break;
        }
        t->nw++;
    }
    size_t remote = k - 1 < t->nw ? k - 1 : t->nw;
    for (size_t s = 1; s <= remote; s++)
        t->slot[s - 1] = &jobs[s];
    t->busy = remote;
    pthread_cond_broadcast(&t->pcv);
    pthread_mutex_unlock(&t->pmu);
    shard_main(&jobs[0]);
    for (size_t s = remote + 1; s < k; s++) /* workers that could not be started */
        shard_main(&jobs[s]);
    pthread_mutex_lock(&t->pmu);
    while (t->busy)
        pthread_cond_wait(&t->dcv, &t->pmu);
    pthread_mutex_unlock(&t->pmu);
    int rc = 0;
    for (size_t s = 0; s < k; s++)
        if (jobs[s].rc == ABORTED) rc = -1;
    if (rc == 0) {
        tr_gauge_set(t->pending, 0);
        if (b->n) {
            double cur = tr_metric_value(t->sent_ts);
            if ((double)b->max_t / 1000.0 > cur) tr_gauge_set(t->sent_ts, (double)b->max_t / 1000.0);
        }
    }
    free(jobs);
    free(idx);
    free(eidx);
    free(cnt);
    free(ecnt);
    return rc;
}

/* ---- metadata ---- */

static int meta_type(const char *s) {
    static const char *names[] = {"unknown",        "counter", "gauge", "histogram",
                                  "gaugehistogram", "summary", "info",  "stateset"};
    for (int i = 0; i < 8; i++)
        if (s && strcmp(s, names[i]) == 0) return i;
    return 0;
}

typedef struct meta_ctx {
    rw_bytes pb;
    uint64_t n;
} meta_ctx;

static void put_str(rw_bytes *b, int field, const char *s) {
    size_t l = s ? strlen(s) : 0;
    if (!l) return;
    rwb_varint(b, ((uint64_t)field << 3) | 2);
    rwb_varint(b, l);
    rwb_put(b, s, l);
}

static size_t str_len(int field, const char *s) {
    size_t l = s ? strlen(s) : 0;
    return l ? 1 + vlen(l) + l : 0;
}

static int on_meta(void *ctx, const tsdb_metadata *m) {
    meta_ctx *c = ctx;
    int ty = meta_type(m->type);
    size_t len =
        (ty ? 1 + vlen((uint64_t)ty) : 0) + str_len(2, m->family) + str_len(4, m->help) + str_len(5, m->unit);
    rwb_varint(&c->pb, (3 << 3) | 2);
    rwb_varint(&c->pb, len);
    if (ty) {
        rwb_varint(&c->pb, 1 << 3);
        rwb_varint(&c->pb, (uint64_t)ty);
    }
    put_str(&c->pb, 2, m->family);
    put_str(&c->pb, 4, m->help);
    put_str(&c->pb, 5, m->unit);
    c->n++;
    return 0;
}

static void send_metadata(rw_tgt *t) {
    meta_ctx c = {0};
    tsdb_metadata_foreach(t->o->db, on_meta, &c);
    if (c.n && !c.pb.err) send_req(t, &t->conns[0], &c.pb, 0, 0, c.n);
    rwb_free(&c.pb);
}

/* ---- the reader thread ---- */

static void *target_main(void *arg) {
    rw_tgt *t = arg;
    rw_out *o = t->o;
    while (!tsdb_ready(o->db)) {
        if (nap(o, 50)) return NULL;
        pthread_mutex_lock(&o->mu);
        int st = o->stop;
        pthread_mutex_unlock(&o->mu);
        if (st) return NULL;
    }
    rw_reader r;
    char err[256];
    pthread_mutex_lock(&t->mu);
    rw_pos start = t->acked;
    pthread_mutex_unlock(&t->mu);
    rw_reader_open(&r, o->wal_dir, start, t->m, t->nm, err, sizeof err);
    rw_batch b = {0};
    b.max_t = INT64_MIN;
    size_t per = (size_t)t->c.max_samples_per_send, most = per * (size_t)t->c.max_shards;
    int64_t first = 0, last_meta = 0, last_save = 0;
    uint64_t missing = 0;
    for (;;) {
        pthread_mutex_lock(&o->mu);
        int st = o->stop;
        pthread_mutex_unlock(&o->mu);
        int moved = rw_reader_next(&r, &b, most);
        if (r.segments_missing > missing) {
            missing = r.segments_missing;
            TR_WARN("remote write: a WAL segment the target needed is gone; continuing with the next",
                    "%s segment=%08u", t->label, r.seg);
        }
        int64_t now = mono();
        if ((b.n || b.ne) && !first) first = now;
        if (b.n && b.max_t / 1000.0 > tr_metric_value(t->in_ts)) tr_gauge_set(t->in_ts, b.max_t / 1000.0);
        rw_pos here = {r.seg, r.off};
        int flush = b.n >= most || b.ne >= per ||
                    ((b.n || b.ne) && now - first >= t->c.batch_send_deadline_ms) || (st && (b.n || b.ne));
        if (flush) {
            if (send_round(t, &b) != 0) break; /* stopped mid-send: the position stays where it was */
            rw_batch_clear(&b);
            first = 0;
            /* at most one fdatasync'd save a second: a restart sends the last second again */
            if (now - last_save >= 1000 || st) {
                save_pos(t, here);
                last_save = now;
            }
        } else if (!b.n && !b.ne && (here.seg != t->acked.seg || here.off != t->acked.off) &&
                   (now - last_save >= 1000 || st)) {
            save_pos(t, here); /* records without selected samples */
            last_save = now;
        }
        if (t->c.metadata_interval_ms > 0 && now - last_meta >= t->c.metadata_interval_ms && !st) {
            send_metadata(t);
            last_meta = mono();
        }
        if (st && !moved && !b.n && !b.ne) break;
        if (stopping_past_deadline(o)) break;
        if (!moved && !flush) nap(o, st ? 10 : 100);
    }
    if (b.n || b.ne)
        TR_WARN("remote write: stopped before everything read was sent; it is sent again at the next start",
                "%s samples=%zu", t->label, b.n);
    rw_batch_free(&b);
    rw_reader_close(&r);
    return NULL;
}

/* ---- lifecycle ---- */

static char *dupz(const char *s) { return s ? strdup(s) : NULL; }

static void copy_target(rw_target_config *d, const rw_target_config *s) {
    *d = *s;
    d->url = dupz(s->url);
    d->name = dupz(s->name);
    d->basic_user = dupz(s->basic_user);
    d->basic_pass = dupz(s->basic_pass);
    d->bearer_token = dupz(s->bearer_token);
    d->selector = dupz(s->selector);
    d->tls_ca_file = dupz(s->tls_ca_file);
    d->tls_cert_file = dupz(s->tls_cert_file);
    d->tls_key_file = dupz(s->tls_key_file);
    d->tls_server_name = dupz(s->tls_server_name);
    d->headers = s->nheaders ? calloc(s->nheaders, sizeof *d->headers) : NULL;
    for (size_t i = 0; d->headers && i < s->nheaders; i++) {
        d->headers[i].name = dupz(s->headers[i].name);
        d->headers[i].value = dupz(s->headers[i].value);
    }
    if (!d->headers) d->nheaders = 0;
}

static void metrics_for(rw_tgt *t) {
    const char *l = t->label;
    t->samples = tr_counter_new("prometheus_remote_storage_samples_total",
                                "Samples sent to the remote storage (acknowledged).", l);
    t->failed =
        tr_counter_new("prometheus_remote_storage_samples_failed_total",
                       "Samples the remote storage refused for good (4xx other than 429); not retried.", l);
    t->retried = tr_counter_new("prometheus_remote_storage_samples_retried_total",
                                "Samples sent again after a retryable failure (5xx, 429, network).", l);
    t->dropped = tr_counter_new(
        "prometheus_remote_storage_samples_dropped_total",
        "Samples never sent: their WAL segments were deleted past --remote-write-max-backlog.", l);
    t->pending = tr_gauge_new("prometheus_remote_storage_samples_pending",
                              "Samples read from the WAL and not yet acknowledged by the remote storage.", l);
    t->sent_ts = tr_gauge_new("prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                              "Newest sample timestamp acknowledged by the remote storage.", l);
    t->in_ts = tr_gauge_new("prometheus_remote_storage_highest_timestamp_in_seconds",
                            "Newest sample timestamp read from the WAL for this target.", l);
    t->shards = tr_gauge_new("prometheus_remote_storage_shards", "Shards sending in parallel.", l);
    t->shards_desired =
        tr_gauge_new("prometheus_remote_storage_shards_desired", "Shards the backlog asks for.", l);
    t->shards_max = tr_gauge_new("prometheus_remote_storage_shards_max", "Most shards allowed.", l);
    t->exemplars = tr_counter_new("prometheus_remote_storage_exemplars_total",
                                  "Exemplars sent to the remote storage (acknowledged).", l);
    t->ex_failed = tr_counter_new("prometheus_remote_storage_exemplars_failed_total",
                                  "Exemplars the remote storage refused for good.", l);
    t->ex_retried = tr_counter_new("prometheus_remote_storage_exemplars_retried_total",
                                   "Exemplars sent again after a retryable failure.", l);
    t->metadata =
        tr_counter_new("prometheus_remote_storage_metadata_total", "Metric metadata entries sent.", l);
    t->bytes =
        tr_counter_new("prometheus_remote_storage_bytes_total", "Compressed request bytes acknowledged.", l);
    t->failed_req = tr_counter_new("prometheus_remote_storage_requests_refused_total",
                                   "Requests refused with a non-retryable status.", l);
    char cl[4700];
    snprintf(cl, sizeof cl, "consumer=\"%s\"", t->c.name);
    t->segment = tr_gauge_new("prometheus_wal_watcher_current_segment",
                              "WAL segment of the last acknowledged position.", cl);
    tr_gauge_set(t->shards_max, (double)t->c.max_shards);
}

/* Where a new target starts: the segment the store will open at this start (as wal_open
 * numbers it; called before the store opens), so it gets everything that arrives from now on. */
static rw_pos start_pos(rw_out *o) {
    size_t ns;
    long ck;
    uint32_t *segs = rw_wal_segments(o->wal_dir, &ns, &ck);
    uint32_t next = ns ? segs[ns - 1] + 1 : 1;
    free(segs);
    if (ck >= 0 && (uint32_t)ck + 1 > next) next = (uint32_t)ck + 1;
    return (rw_pos){next, 0};
}

rw_out *rw_out_new(const rw_out_config *c, char *err, size_t errlen) {
    rw_out *o = calloc(1, sizeof *o);
    if (!o) goto oom;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    snprintf(o->wal_dir, sizeof o->wal_dir, "%s/metrics/wal", c->data_dir);
    snprintf(o->pos_dir, sizeof o->pos_dir, "%s/remote_write", c->data_dir);
    o->user_agent = strdup(c->user_agent ? c->user_agent : "tricorder");
    o->max_backlog = c->max_backlog_bytes > 0 ? c->max_backlog_bytes : (int64_t)1 << 30;
    o->t = calloc(c->ntargets ? c->ntargets : 1, sizeof *o->t);
    if (!o->t || !o->user_agent) goto oom;
    if (c->ntargets && tr_mkdir_p(o->pos_dir) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", o->pos_dir, strerror(errno));
        rw_out_free(o);
        return NULL;
    }
    for (size_t i = 0; i < c->ntargets; i++) {
        rw_tgt *t = &o->t[i];
        o->n++;
        t->o = o;
        pthread_mutex_init(&t->mu, NULL);
        pthread_mutex_init(&t->pmu, NULL);
        pthread_cond_init(&t->pcv, NULL);
        pthread_cond_init(&t->dcv, NULL);
        copy_target(&t->c, &c->targets[i]);
        if (!t->c.url || rw_url_parse(t->c.url, &t->u, err, errlen) != 0 ||
            rw_url_tls_setup(&t->u, &t->c, err, errlen) != 0) {
            if (!t->c.url) snprintf(err, errlen, "remote write target without a url");
            rw_out_free(o);
            return NULL;
        }
        if (strpbrk(t->c.url, "\"\\")) {
            snprintf(err, errlen, "remote write URL %s: quotes and backslashes are not allowed", t->c.url);
            rw_out_free(o);
            return NULL;
        }
        if (!t->c.max_samples_per_send) t->c.max_samples_per_send = 2000;
        if (!t->c.batch_send_deadline_ms) t->c.batch_send_deadline_ms = 5000;
        if (!t->c.max_shards) t->c.max_shards = 8;
        if (!t->c.min_backoff_ms) t->c.min_backoff_ms = 30;
        if (!t->c.max_backoff_ms) t->c.max_backoff_ms = 5000;
        if (!t->c.timeout_ms) t->c.timeout_ms = 30000;
        if (!t->c.metadata_interval_ms) t->c.metadata_interval_ms = 60000;
        if (t->c.max_samples_per_send < 1 || t->c.max_shards < 1 || t->c.max_shards > 200) {
            snprintf(err, errlen, "remote write %s: max_samples_per_send must be >= 1 and max_shards 1..200",
                     t->c.url);
            rw_out_free(o);
            return NULL;
        }
        /* the id: the name, else a hash of the URL (positions survive restarts by it) */
        char id[64];
        if (t->c.name) {
            for (const char *p = t->c.name; *p; p++)
                if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
                      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
                    snprintf(err, errlen, "remote write name %s: only letters, digits, '_', '-' and '.'",
                             t->c.name);
                    rw_out_free(o);
                    return NULL;
                }
            snprintf(id, sizeof id, "%s", t->c.name);
        } else {
            uint64_t h = 1469598103934665603ULL;
            for (const char *p = t->c.url; *p; p++)
                h = (h ^ (uint8_t)*p) * 1099511628211ULL;
            snprintf(id, sizeof id, "%016llx", (unsigned long long)h);
            t->c.name = strdup(id);
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(o->t[k].c.name, t->c.name) == 0) {
                snprintf(err, errlen,
                         "remote write: two targets named %s (the same URL twice needs distinct names)", id);
                rw_out_free(o);
                return NULL;
            }
        snprintf(t->label, sizeof t->label, "remote_name=\"%s\",url=\"%s\"", t->c.name, t->c.url);
        snprintf(t->pos_path, sizeof t->pos_path, "%s/%s.pos", o->pos_dir, id);
        if (rw_pos_load(t->pos_path, &t->acked) == 0) t->has_pos = 1;
        metrics_for(t);
        if (!t->has_pos) save_pos(t, start_pos(o));
        if (t->c.selector) {
            int nm = promql_parse_selector(t->c.selector, strlen(t->c.selector), &t->m, err, errlen);
            if (nm < 0) {
                char e2[512];
                snprintf(e2, sizeof e2, "%s", err);
                snprintf(err, errlen, "remote write %s: selector %s: %s", t->c.url, t->c.selector, e2);
                rw_out_free(o);
                return NULL;
            }
            t->nm = (size_t)nm;
        }
        tr_buf hb;
        tr_buf_init(&hb, 1 << 20);
        tr_buf_printf(&hb,
                      "Content-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\n"
                      "X-Prometheus-Remote-Write-Version: 0.1.0\r\nUser-Agent: %s\r\n",
                      o->user_agent);
        if (t->c.basic_user) {
            tr_buf up;
            tr_buf_init(&up, 1 << 16);
            tr_buf_printf(&up, "%s:%s", t->c.basic_user, t->c.basic_pass ? t->c.basic_pass : "");
            tr_buf_puts(&hb, "Authorization: Basic ");
            tr_base64_encode(&hb, (const uint8_t *)up.data, up.len);
            tr_buf_puts(&hb, "\r\n");
            tr_buf_free(&up);
        } else if (t->c.bearer_token) {
            tr_buf_printf(&hb, "Authorization: Bearer %s\r\n", t->c.bearer_token);
        }
        for (size_t k = 0; k < t->c.nheaders; k++) {
            const rw_header *h = &t->c.headers[k];
            if (strpbrk(h->name, "\r\n:") || strpbrk(h->value, "\r\n") || !h->name[0]) {
                snprintf(err, errlen, "remote write %s: header %s: bad name or value", t->c.url, h->name);
                tr_buf_free(&hb);
                rw_out_free(o);
                return NULL;
            }
            tr_buf_printf(&hb, "%s: %s\r\n", h->name, h->value);
        }

        t->hdrs = strdup(hb.data ? hb.data : "");
        tr_buf_free(&hb);
        t->conns = calloc((size_t)t->c.max_shards, sizeof *t->conns);
        t->wth = calloc((size_t)t->c.max_shards, sizeof *t->wth);
        t->slot = calloc((size_t)t->c.max_shards, sizeof *t->slot);
        if (!t->hdrs || !t->conns || !t->wth || !t->slot) goto oom;
        for (int64_t k = 0; k < t->c.max_shards; k++)
            t->conns[k].fd = -1;
    }
    return o;
oom:
    snprintf(err, errlen, "out of memory");
    rw_out_free(o);
    return NULL;
}

int rw_out_start(rw_out *o, tsdb *db, char *err, size_t errlen) {
    o->db = db;
    for (size_t i = 0; i < o->n; i++) {
        rw_tgt *t = &o->t[i];
        if (pthread_create(&t->th, NULL, target_main, t) != 0) {
            snprintf(err, errlen, "cannot start the remote write thread: %s", strerror(errno));
            return -1;
        }
        t->running = 1;
        TR_INFO("remote write target", "%s selector=\"%s\" max_shards=%lld", t->label,
                t->c.selector ? t->c.selector : "", (long long)t->c.max_shards);
    }
    return 0;
}

void rw_out_stop(rw_out *o, int64_t timeout_ms) {
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    o->stop_deadline = mono() + timeout_ms;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    for (size_t i = 0; i < o->n; i++) {
        rw_tgt *t = &o->t[i];
        if (t->running) {
            pthread_join(t->th, NULL);
            t->running = 0;
        }
        pthread_mutex_lock(&t->pmu);
        t->quit = 1;
        pthread_cond_broadcast(&t->pcv);
        pthread_mutex_unlock(&t->pmu);
        for (size_t w = 0; w < t->nw; w++)
            pthread_join(t->wth[w], NULL);
        t->nw = 0;
    }
}

static void target_strings_free(rw_target_config *t) {
    free(t->url);
    free(t->name);
    free(t->basic_user);
    free(t->basic_pass);
    free(t->bearer_token);
    free(t->selector);
    free(t->tls_ca_file);
    free(t->tls_cert_file);
    free(t->tls_key_file);
    free(t->tls_server_name);
    for (size_t k = 0; k < t->nheaders; k++) {
        free(t->headers[k].name);
        free(t->headers[k].value);
    }
    free(t->headers);
}

void rw_config_free(rw_target_config *t, size_t n) {
    for (size_t i = 0; t && i < n; i++)
        target_strings_free(&t[i]);
    free(t);
}

void rw_out_free(rw_out *o) {
    if (!o) return;
    rw_out_stop(o, 0);
    for (size_t i = 0; i < o->n; i++) {
        rw_tgt *t = &o->t[i];
        for (int64_t k = 0; t->conns && k < t->c.max_shards; k++)
            rw_conn_close(&t->conns[k]);
        free(t->conns);
        rw_url_free(&t->u);
        free(t->wth);
        free(t->slot);
        free(t->hdrs);
        pthread_mutex_destroy(&t->pmu);
        pthread_cond_destroy(&t->pcv);
        pthread_cond_destroy(&t->dcv);
        if (t->m) tsdb_matchers_free(t->m, t->nm);
        pthread_mutex_destroy(&t->mu);
        target_strings_free(&t->c);
    }
    free(o->t);
    free(o->user_agent);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}
