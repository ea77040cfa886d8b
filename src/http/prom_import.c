/* VictoriaMetrics' POST /api/v1/import/prometheus: the Prometheus text exposition format, one
 * sample per line with an optional millisecond timestamp (receive time otherwise, or the
 * `timestamp` query parameter), optionally gzip-compressed, with `extra_label=name=value`
 * parameters added to (and overriding on) every series. The parser is otlp/promwire.h's. Bad
 * lines are skipped and reported in a 400 answer; good lines are still stored. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "api.h"
#include "ingest.h"
#include "util/clock.h"
#include "util/gzip.h"
#include "util/memlimit.h"
#include "util/text.h"

/* [a-zA-Z_][a-zA-Z0-9_]* */
static int label_name_ok(const char *s, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- the handler */

typedef struct imp_pending {
    struct evhttp_request *req;
    tr_ingest *g;
    int bad; /* answer 400 with msg */
    char msg[600];
} imp_pending;

static void imp_reply_error(tr_ingest *g, struct evhttp_request *req, int status, const char *msg) {
    tr_counter_add(g->errors[TR_INGEST_TEXT], 1);
    tr_http_reply_text(req, status, msg);
}

static void imp_committed(void *cookie, int status, const char *msg) {
    imp_pending *p = cookie;
    if (status != TSDB_OK) {
        char m[300];
        snprintf(m, sizeof m, "samples not stored: %s", msg ? msg : tsdb_strerror(status));
        evhttp_add_header(evhttp_request_get_output_headers(p->req), "Retry-After", "5");
        imp_reply_error(p->g, p->req, 503, m);
    } else if (p->bad) {
        imp_reply_error(p->g, p->req, 400, p->msg);
    } else {
        tr_http_reply(p->req, 204, NULL, NULL, 0);
    }
    free(p);
}

#define IMPORT_PIECE (16u << 10) /* text parsed at a time (whole lines): a few ms of work */
#define MAX_EXTRA 32

/* An import in progress: its body is parsed and appended a few pieces per turn of the loop,
 * so a large body (hundreds of thousands of families) never holds the loop for long. */
typedef struct imp_job {
    tr_ingest *g;
    struct evhttp_request *req;
    struct event *ev;
    tr_form q;    /* owns the extra labels' strings */
    tr_buf plain; /* the body, when it came gzipped */
    const char *body;
    size_t len, off;
    tsdb_label extra[MAX_EXTRA];
    size_t nextra;
    int64_t ts_default;
    tsdb_appender *app;
    imp_pending *p;
    size_t total_samples, bad_lines;
    unsigned long long lines_before;
    uint64_t refused;
    char first[300], firstbad[sizeof(((tr_text_result *)0)->err)];
} imp_job;

#define IMPORT_STEP IMPORT_PIECE /* text handled per turn of the loop */

static void imp_job_free(imp_job *j) {
    event_free(j->ev);
    tr_buf_free(&j->plain);
    tr_form_free(&j->q);
    free(j);
}

static void imp_step(evutil_socket_t fd, short what, void *arg) {
    imp_job *j = arg;
    tr_ingest *g = j->g;
    tr_arena *a = NULL;
    tr_text_result r = {0};
    tsdb_label lb[256 + MAX_EXTRA];
    const char *body = j->body;
    size_t len = j->len, step_end = j->off + IMPORT_STEP;
    while (j->off < len && j->off < step_end) {
        size_t off = j->off, n = len - off;
        if (n > IMPORT_PIECE) {
            const char *nl = memrchr(body + off, '\n', IMPORT_PIECE);
            if (!nl)
                nl = memchr(body + off + IMPORT_PIECE, '\n', len - off - IMPORT_PIECE); /* one long line */
            n = nl ? (size_t)(nl - (body + off)) + 1 : len - off;
        }
        tr_arena_free(a);
        /* short lines parse into many times their size (a sample, its labels); a few MiB
         * covers a piece of the shortest, a long line needs about twice its own */
        a = tr_arena_new(n * 16 + (4u << 20));
        if (!a || tr_prom_text_parse(body + off, n, a, &r) != 0) {
            tr_arena_free(a);
            tsdb_appender_rollback(j->app);
            imp_reply_error(g, j->req, 503, "out of memory");
            free(j->p);
            imp_job_free(j);
            return;
        }
        j->off = off + n;
        if (r.bad_lines && !j->bad_lines) {
            /* the parser numbers the lines of its piece: count from the body's start */
            unsigned long long ln;
            int used = 0;
            if (sscanf(r.err, "line %llu: %n", &ln, &used) == 1 && used > 0)
                snprintf(j->firstbad, sizeof j->firstbad, "line %llu: %.200s", ln + j->lines_before,
                         r.err + used);
            else
                memcpy(j->firstbad, r.err, sizeof j->firstbad);
        }
        for (const char *c = body + off; c < body + off + n; c++)
            j->lines_before += *c == '\n';
        j->bad_lines += r.bad_lines;
        j->total_samples += r.n_samples;
        for (size_t i = 0; i < r.n_samples; i++) {
            const tr_text_sample *s = &r.samples[i];
            size_t k = s->n_labels < 256 ? s->n_labels : 256;
            memcpy(lb, s->labels, k * sizeof *lb);
            for (size_t e = 0; e < j->nextra; e++) {
                size_t x;
                for (x = 0; x < k && strcmp(lb[x].name, j->extra[e].name) != 0; x++) {
                }
                if (x == k) k++;
                lb[x] = j->extra[e];
            }
            int rc = s->n_labels > 256
                         ? TSDB_ERR_TOO_MANY_LABELS
                         : tsdb_appender_add(j->app, lb, k, s->has_t ? s->t_ms : j->ts_default, s->value);
            if (rc != TSDB_OK) {
                if (!j->refused)
                    snprintf(j->first, sizeof j->first, "%s for %.120s", tsdb_strerror(rc),
                             s->labels[0].value);
                j->refused++;
            }
        }
        for (size_t i = 0; i < r.n_meta; i++)
            tsdb_set_metadata(g->db, r.meta[i].family, r.meta[i].type ? r.meta[i].type : "unknown",
                              r.meta[i].help, NULL);
    }
    tr_arena_free(a);
    if (j->off < len) { /* more: after whatever else the loop has to do */
        struct timeval now = {0, 0};
        evtimer_add(j->ev, &now);
        return;
    }
    imp_pending *p = j->p;
    tr_counter_add(g->stored[TR_INGEST_TEXT], j->total_samples - j->refused);
    tr_counter_add(g->refused[TR_INGEST_TEXT], j->refused);
    p->req = j->req;
    p->g = g;
    if (j->bad_lines || j->refused) {
        p->bad = 1;
        size_t o = 0;
        if (j->bad_lines)
            o += snprintf(p->msg, sizeof p->msg, "%zu lines skipped (first: %s)", j->bad_lines, j->firstbad);
        if (j->refused && o < sizeof p->msg)
            snprintf(p->msg + o, sizeof p->msg - o, "%s%llu of %zu samples refused (first: %s)",
                     o ? "; " : "", (unsigned long long)j->refused, j->total_samples, j->first);
    }
    tsdb_appender *app = j->app;
    imp_job_free(j);
    tsdb_appender_commit(app, imp_committed, p);
}

static void api_prom_import(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_ingest *g = ((const tr_api_env *)ctx)->ingest;
    tr_counter_add(g->requests[TR_INGEST_TEXT], 1);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        imp_reply_error(g, req, 405, "the import takes POST");
        return;
    }
    /* parameters from the query string only: the body is the data, whatever its type says */
    tr_form q;
    char qerr[256];
    if (tr_http_query_form(req, &q, qerr, sizeof qerr) != 0) {
        tr_form_free(&q);
        imp_reply_error(g, req, 400, qerr);
        return;
    }
    imp_job *job = NULL;
    imp_pending *p = NULL;
    tsdb_appender *app = NULL;
    tr_buf plain;
    tr_buf_init(&plain, g->max_import);
    tsdb_label extra[MAX_EXTRA];
    size_t nextra = 0;
    int64_t ts_default = tr_now_ms();
    for (size_t qi = 0; qi < q.n; qi++) {
        tr_form_kv *kv = &q.kv[qi];
        if (strcmp(kv->key, "extra_label") == 0) {
            char *eq = strchr(kv->value, '=');
            if (!eq || !label_name_ok(kv->value, (size_t)(eq - kv->value)) ||
                !tr_utf8_valid(eq + 1, strlen(eq + 1))) {
                imp_reply_error(g, req, 400, "extra_label must be name=value with a valid label name");
                goto out;
            }
            if (nextra == MAX_EXTRA) {
                imp_reply_error(g, req, 400, "too many extra_label parameters");
                goto out;
            }
            *eq = 0; /* the form owns the string: split it in place */
            extra[nextra].name = kv->value;
            extra[nextra++].value = eq + 1;
        } else if (strcmp(kv->key, "timestamp") == 0) {
            errno = 0;
            char *end;
            long long t = strtoll(kv->value, &end, 10);
            if (!*kv->value || *end || errno) {
                imp_reply_error(g, req, 400, "timestamp must be integer milliseconds");
                goto out;
            }
            ts_default = t;
        }
    }
    if (tr_mem_refuse()) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
        imp_reply_error(g, req, 503, "server over its memory limit (--memory-limit); retry later");
        goto out;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > g->max_import) {
        char msg[160];
        snprintf(msg, sizeof msg, "request body over the --max-import-bytes limit of %zu bytes",
                 g->max_import);
        imp_reply_error(g, req, 413, msg);
        goto out;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *ce = tr_http_header(req, "Content-Encoding");
    if (ce && strcasecmp(ce, "gzip") == 0) {
        int z = tr_gunzip((const uint8_t *)body, len, g->max_import, &plain);
        if (z == TR_GZIP_TOO_LARGE) {
            char msg[160];
            snprintf(msg, sizeof msg, "decompressed body over the --max-import-bytes limit of %zu bytes",
                     g->max_import);
            imp_reply_error(g, req, 413, msg);
            goto out;
        }
        if (z != TR_GZIP_OK) {
            imp_reply_error(g, req, 400, "invalid gzip data");
            goto out;
        }
        body = plain.data ? plain.data : "";
        len = plain.len;
    } else if (ce && *ce && strcasecmp(ce, "identity") != 0) {
        imp_reply_error(g, req, 415, "unsupported content encoding: use gzip or none");
        goto out;
    }
    /* parsed and appended in pieces of whole lines: memory follows the piece, not the body;
     * the loop turns to other work between steps */
    job = calloc(1, sizeof *job);
    p = calloc(1, sizeof *p);
    app = tsdb_appender_begin(g->db);
    struct event_base *base = evhttp_connection_get_base(evhttp_request_get_connection(req));
    if (job) job->ev = evtimer_new(base, imp_step, job);
    if (!job || !job->ev || !p || !app) {
        imp_reply_error(g, req, 503, "out of memory");
        goto out;
    }
    job->g = g;
    job->req = req;
    job->q = q; /* the extra labels point into the form */
    job->plain = plain;
    job->body = body;
    job->len = len;
    memcpy(job->extra, extra, nextra * sizeof *extra);
    job->nextra = nextra;
    job->ts_default = ts_default;
    job->app = app;
    job->p = p;
    imp_step(-1, 0, job);
    return;
out:
    if (app) tsdb_appender_rollback(app);
    if (job && job->ev) event_free(job->ev);
    free(job);
    free(p);
    tr_buf_free(&plain);
    tr_form_free(&q);
}

void tr_api_ingest_routes(tr_http *h, const tr_api_env *env) {
    /* every method reaches the handlers, which count a wrong one as a failed ingest */
    tr_http_route(h, TR_ANY, "/api/v1/write", TR_HTTP_INGEST, tr_api__remote_write, (void *)env);
    tr_http_route(h, TR_ANY, "/api/v1/import/prometheus", TR_HTTP_INGEST | TR_HTTP_BIG_BODY, api_prom_import,
                  (void *)env);
}
