/* Start-up and shutdown order: data dir lock → stores → receiver → listeners → loop;
 * on SIGTERM/SIGINT: stop accepting → wait for in-flight work → flush stores → exit 0. */
#include "app.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "forward/otlp_fwd.h"
#include "forward/rw_out.h"
#include "http/api.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "otlp/otlp.h"
#include "otlp/translate.h"
#include "rules/rules.h"
#include "tls/tls.h"
#include "traces/traces.h"
#include "ui/ui.h"
#include "util/credentials.h"
#include "util/file.h"
#include "util/log.h"
#include "util/memlimit.h"
#include "util/selfmon.h"
#include "util/workq.h"

typedef struct app {
    const tr_config *cfg;
    struct event_base *base;
    tr_http *http;
    tr_credstore *creds; /* users and tokens, reloaded from their files */
    otlp_receiver *recv;
    otlp_grpc *grpc;
    tsdb *db;                 /* the metrics store */
    otlp_metrics_sink *msink; /* OTLP metrics → db */
    tr_ingest *ingest;        /* remote write and text import → db */
    traces_store *traces;
    tr_workq *wq;                 /* heavy reads and flushes; completions on the loop */
    tr_workq_waker *traces_waker; /* the trace store's threads ask for its completions */
    tr_workq_waker *tsdb_waker;   /* the metrics store's WAL syncer asks for its acknowledgements */
    tr_api_env env;
    tr_rules *rules; /* recording and alerting rules */
    struct event *sigterm, *sigint, *sighup, *drain;
    struct timespec stop_at;
    int stopping;
    tr_metric *rss, *cpu, *fds, *start, *grpc_conns;
    tr_ui *ui;             /* the web UI */
    tr_selfscrape *scrape; /* --self-scrape-interval */
    tr_tls *tls;           /* --tls-cert-file: certificates of the TLS listeners */
    rw_out *rwout;         /* remote write out; NULL: no target */
    otlp_fwd *fwd;         /* --otlp-forward-endpoint */
} app;

static int forward_export(void *ctx, otlp_signal sig, uint64_t items, const uint8_t *pb, size_t len) {
    return otlp_fwd_enqueue(ctx, sig == OTLP_TRACES, items > UINT32_MAX ? UINT32_MAX : (uint32_t)items, pb,
                            len);
}

int tr_app_listen(const char *addr, char *err, size_t errlen) {
    char host[256], port[16];
    int p;
    if (tr_parse_addr(addr, host, sizeof host, &p)) {
        snprintf(err, errlen, "invalid address %s", addr);
        return -1;
    }
    snprintf(port, sizeof port, "%d", p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (gai) {
        snprintf(err, errlen, "listen on %s: %s", addr, gai_strerror(gai));
        return -1;
    }
    /* with no host, prefer the IPv6 wildcard that also takes IPv4, else IPv4 */
    int fd = -1, last = 0;
    for (int pass = 0; pass < 2 && fd < 0; pass++)
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            if (!*host && pass == 0 && ai->ai_family != AF_INET) continue;
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                last = errno;
                continue;
            }
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0) {
                last = errno;
                close(fd);
                fd = -1;
            }
        }
    freeaddrinfo(res);
    if (fd < 0) snprintf(err, errlen, "listen on %s: %s", addr, strerror(last));
    return fd;
}

/* Returns the lock file's fd (kept open for the process's life) or -1 with err set. */
static int lock_data_dir(const char *dir, char *err, size_t errlen) {
    if (tr_mkdir_p(dir) != 0) {
        snprintf(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/tricorder.lock", dir) >= sizeof path) {
        snprintf(err, errlen, "data dir path too long");
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %.300s/tricorder.lock: %s", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        snprintf(err, errlen, "data dir %s is in use by another tricorder%s%s%s", dir, *pid ? " (pid " : "",
                 pid, *pid ? ")" : "");
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, n, 0) != n) { /* best effort */
    }
    return fd;
}

int tr_app_healthcheck(const tr_config *cfg) {
    char host[256], port[16];
    int p;
    if (tr_parse_addr(cfg->http_addr, host, sizeof host, &p)) return 1;
    snprintf(port, sizeof port, "%d", p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(*host && strcmp(host, "0.0.0.0") && strcmp(host, "::") ? host : "127.0.0.1", port, &hints,
                    &res))
        return 1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    int ok = 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        static const char req[] = "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
        char buf[64] = "";
        if (cfg->tls_cert_file && cfg->http_tls) {
            if (connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
                tr_tls_client_exchange(fd, req, sizeof req - 1, buf, sizeof buf) > 0)
                ok = strncmp(buf, "HTTP/1.1 200", 12) == 0 || strncmp(buf, "HTTP/1.0 200", 12) == 0;
        } else if (connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
                   write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            buf[n > 0 ? n : 0] = 0;
            ok = strncmp(buf, "HTTP/1.1 200", 12) == 0 || strncmp(buf, "HTTP/1.0 200", 12) == 0;
        }
        close(fd);
    }
    freeaddrinfo(res);
    printf("%s\n", ok ? "healthy" : "unhealthy");
    return ok ? 0 : 1;
}

/* ---- process metrics ---- */

static void process_collect(void *ctx) {
    app *a = ctx;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    tr_gauge_set(a->rss, (double)rss * (double)sysconf(_SC_PAGESIZE));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    tr_gauge_set(a->cpu,
                 ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    int nfd = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') nfd++;
        closedir(d);
        nfd--; /* the one opendir holds */
    }
    tr_gauge_set(a->fds, nfd);
    if (a->grpc) tr_gauge_set(a->grpc_conns, otlp_grpc_connections(a->grpc));
}

static void process_metrics(app *a) {
    a->rss = tr_gauge_new("process_resident_memory_bytes", "Resident memory size in bytes.", NULL);
    a->cpu =
        tr_gauge_new("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", NULL);
    a->fds = tr_gauge_new("process_open_fds", "Number of open file descriptors.", NULL);
    a->start = tr_gauge_new("process_start_time_seconds",
                            "Start time of the process since unix epoch in seconds.", NULL);
    a->grpc_conns =
        tr_gauge_new("tricorder_open_connections", "Open client connections.", "listener=\"otlp_grpc\"");
    tr_metric *info =
        tr_gauge_new("tricorder_build_info", "A metric with a constant '1' value labeled by version.",
                     "version=\"" TRICORDER_VERSION "\"");
    tr_gauge_set(info, 1);
    tr_gauge_set(a->start, (double)time(NULL));
    tr_selfmon_add_collector(process_collect, a);
}

/* ---- the trace store as the receiver's traces sink ---- */

typedef struct traces_call {
    otlp_done_fn done;
    void *cookie;
} traces_call;

static void traces_acked(void *cookie, int status, uint64_t rejected, const char *msg) {
    traces_call *c = cookie;
    otlp_result r = {.status = status == TRACES_OK ? OTLP_OK : OTLP_UNAVAILABLE, .rejected = rejected};
    snprintf(r.message, sizeof r.message, "%s", msg ? msg : "");
    otlp_done_fn done = c->done;
    void *ck = c->cookie;
    free(c);
    done(ck, &r);
}

static void traces_sink_submit(void *ctx, const otlp_export *ex, otlp_done_fn done, void *cookie) {
    traces_call *c = malloc(sizeof *c);
    if (!c) {
        otlp_result r = {.status = OTLP_UNAVAILABLE};
        snprintf(r.message, sizeof r.message, "out of memory");
        done(cookie, &r);
        return;
    }
    c->done = done;
    c->cookie = cookie;
    traces_submit(ctx, ex->traces, traces_acked, c);
}

static void traces_wake(void *ctx) { tr_workq_wake(((app *)ctx)->traces_waker); }
static void tsdb_wake(void *ctx) { tr_workq_wake(((app *)ctx)->tsdb_waker); }
static void tsdb_completions_due(void *arg) { tsdb_run_completions(((app *)arg)->db); }
static void traces_ready(void *arg) { traces_run_completions(((app *)arg)->traces); }

/* ---- shutdown ---- */

static void on_sighup(evutil_socket_t sig, short what, void *arg) {
    app *a = arg;
    TR_INFO("SIGHUP: reloading rule files", NULL);
    if (a->rules) tr_rules_reload(a->rules);
    if (a->tls) tr_tls_reload(a->tls, 1);
}

/* --tls-cert-file: one certificate source, a context per TLS listener. The OTLP listeners
 * require a client certificate when --tls-client-ca-file is set; the HTTP listener only asks
 * for one (the UI does not need it), and its ingest routes refuse a client without one. */
#define TLS_WATCH_MS 2000
static int start_tls(app *a, tr_tls_server **http, tr_tls_server **otlp_http, tr_tls_server **grpc, char *err,
                     size_t errlen) {
    const tr_config *cfg = a->cfg;
    if (!cfg->tls_cert_file || !(cfg->http_tls || cfg->otlp_http_tls || cfg->otlp_grpc_tls)) return 0;
    tr_tls_files f = {cfg->tls_cert_file, cfg->tls_key_file, cfg->tls_client_ca_file};
    if (!(a->tls = tr_tls_new(&f, err, errlen))) return -1;
    if (cfg->http_tls &&
        !(*http = tr_tls_server_add(a->tls, "http", TR_TLS_ALPN_HTTP1, TR_TLS_CLIENT_OPTIONAL, err, errlen)))
        return -1;
    if (cfg->otlp_http_tls && !(*otlp_http = tr_tls_server_add(a->tls, "otlp-http", TR_TLS_ALPN_HTTP1,
                                                               TR_TLS_CLIENT_REQUIRED, err, errlen)))
        return -1;
    if (cfg->otlp_grpc_tls && !(*grpc = tr_tls_server_add(a->tls, "otlp-grpc", TR_TLS_ALPN_H2,
                                                          TR_TLS_CLIENT_REQUIRED, err, errlen)))
        return -1;
    if (tr_tls_watch(a->tls, a->base, TLS_WATCH_MS) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    TR_INFO("tls: serving", "http=%s otlp_http=%s otlp_grpc=%s client_ca=%s", *http ? "tls" : "plain",
            *otlp_http ? "tls" : "plain", *grpc ? "tls" : "plain", cfg->tls_client_ca_file ? "set" : "none");
    return 0;
}

/* --rule-files (one glob per line) → the rule manager */
/* Remote write targets (--remote-write-url, --remote-write-config): created before the store
 * opens, as the store asks them which WAL segments to keep. */
static int start_remote_write_out(app *a, tsdb_options *mo, char *err, size_t errlen) {
    const tr_config *cfg = a->cfg;
    rw_target_config *t = NULL;
    size_t n = 0;
    mo->wal_segment_bytes = cfg->wal_segment_size;
    if (rw_config_load(cfg->remote_write_urls, cfg->remote_write_config, &t, &n, err, errlen) != 0) {
        rw_config_free(t, n);
        return -1;
    }
    if (!n) return 0;
    rw_out_config rc = {.user_agent = "tricorder/" TRICORDER_VERSION,
                        .data_dir = cfg->data_dir,
                        .max_backlog_bytes = cfg->remote_write_max_backlog,
                        .targets = t,
                        .ntargets = n};
    a->rwout = rw_out_new(&rc, err, errlen);
    rw_config_free(t, n);
    if (!a->rwout) return -1;
    mo->wal_keep = rw_out_wal_keep;
    mo->wal_keep_ctx = a->rwout;
    return 0;
}

static int start_rules(app *a, char *err, size_t errlen) {
    const tr_config *cfg = a->cfg;
    char *globs[256];
    size_t n = 0;
    char *copy = cfg->rule_files ? strdup(cfg->rule_files) : NULL, *save = NULL;
    for (char *t = copy ? strtok_r(copy, "\n", &save) : NULL; t && n < 256; t = strtok_r(NULL, "\n", &save))
        if (*t) globs[n++] = t;
    char url[600];
    if (cfg->external_url) {
        snprintf(url, sizeof url, "%s", cfg->external_url);
    } else {
        char host[256] = "", h2[256];
        int port = 0;
        tr_parse_addr(cfg->http_addr, h2, sizeof h2, &port);
        if (gethostname(host, sizeof host) != 0 || !*host) snprintf(host, sizeof host, "localhost");
        snprintf(url, sizeof url, "%s://%s:%d", cfg->tls_cert_file && cfg->http_tls ? "https" : "http",
                 *h2 && strcmp(h2, "0.0.0.0") && strcmp(h2, "::") ? h2 : host, port);
    }
    size_t l = strlen(url);
    while (l && url[l - 1] == '/')
        url[--l] = 0;
    tr_rules_opts ro = {
        .db = a->db,
        .wq = a->wq,
        .base = a->base,
        .globs = (const char *const *)globs,
        .nglobs = n,
        .no_default = (int)cfg->no_default_rules,
        .default_interval_ms = cfg->rule_eval_interval_ms,
        .query_timeout_ms = cfg->query_timeout_ms,
        .query_max_samples = cfg->query_max_samples,
        .query_lookback_ms = cfg->query_lookback_ms,
        .external_url = url,
    };
    char *ams[64], *whs[64];
    size_t nam = 0, nwh = 0;
    char *amc = cfg->alertmanager_urls ? strdup(cfg->alertmanager_urls) : NULL;
    char *whc = cfg->alert_webhook_urls ? strdup(cfg->alert_webhook_urls) : NULL;
    for (char *t = amc ? strtok_r(amc, "\n", &save) : NULL; t && nam < 64; t = strtok_r(NULL, "\n", &save))
        if (*t) ams[nam++] = t;
    for (char *t = whc ? strtok_r(whc, "\n", &save) : NULL; t && nwh < 64; t = strtok_r(NULL, "\n", &save))
        if (*t) whs[nwh++] = t;
    ro.alertmanagers = (const char *const *)ams;
    ro.nalertmanagers = nam;
    ro.webhooks = (const char *const *)whs;
    ro.nwebhooks = nwh;
    a->rules = tr_rules_new(&ro, err, errlen);
    free(copy);
    free(amc);
    free(whc);
    return a->rules ? 0 : -1;
}

static int past(const struct timespec *t) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void drain_tick(evutil_socket_t fd, short what, void *arg) {
    app *a = arg;
    /* done when every request read has been answered and written: HTTP connections close
     * after their last reply (idle ones are closed here), gRPC ones after their GOAWAY */
    unsigned busy = tr_http_inflight(a->http) + otlp_receiver_inflight(a->recv) + tr_workq_busy(a->wq) +
                    tr_http_drain(a->http) + otlp_grpc_connections(a->grpc);
    if (busy == 0 || past(&a->stop_at)) {
        if (busy) TR_WARN("shutdown timeout: abandoning in-flight requests", "inflight=%u", busy);
        event_base_loopbreak(a->base);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(a->drain, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    app *a = arg;
    if (a->stopping) {
        TR_WARN("second signal: exiting now", "signal=%d", (int)sig);
        event_base_loopbreak(a->base);
        return;
    }
    a->stopping = 1;
    tr_rules_stop(a->rules);
    TR_INFO("shutting down", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    tr_http_stop_accepting(a->http);
    otlp_grpc_stop_accepting(a->grpc);
    clock_gettime(CLOCK_MONOTONIC, &a->stop_at);
    a->stop_at.tv_sec += a->cfg->shutdown_timeout_ms / 1000;
    a->stop_at.tv_nsec += (a->cfg->shutdown_timeout_ms % 1000) * 1000000;
    if (a->stop_at.tv_nsec >= 1000000000) {
        a->stop_at.tv_sec++;
        a->stop_at.tv_nsec -= 1000000000;
    }
    a->drain = evtimer_new(a->base, drain_tick, a);
    drain_tick(-1, 0, a);
}

/* Every connection and file takes a descriptor: a soft limit of 1024 (the usual default) is
 * reached long before the hard one, so take what the hard limit allows. */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = was;
    }
    TR_INFO("open files limit", "soft=%llu hard=%llu was=%llu", (unsigned long long)rl.rlim_cur,
            (unsigned long long)rl.rlim_max, (unsigned long long)was);
}

/* --memory-limit (a size or a share of the machine's or cgroup's memory) and --max-series
 * auto (the limit / MAX_SERIES_BYTES: a head series costs about 0.9 KB measured, issue 13, so
 * twice that leaves room for samples, queries and the trace store). */
#define MAX_SERIES_BYTES 2048
static void memory_limits(const tr_config *cfg, int64_t *max_series) {
    int64_t lim = cfg->memory_limit_bytes;
    const char *from = "flag";
    if (cfg->memory_limit_pct > 0) {
        int64_t total = tr_mem_available_total(&from);
        lim = (int64_t)((double)total * cfg->memory_limit_pct / 100.0);
    }
    tr_mem_set_limit(lim);
    *max_series = cfg->max_series;
    if (*max_series < 0) *max_series = lim > 0 ? lim / MAX_SERIES_BYTES : 0;
    TR_INFO("memory limit", "limit_bytes=%lld from=%s max_series=%lld", (long long)lim, from,
            (long long)*max_series);
}

int tr_app_run(const tr_config *cfg) {
    app A = {.cfg = cfg}, *a = &A;
    char err[512], q[600];
    int rc = 1, lockfd = -1, fd_http = -1, fd_grpc = -1, fd_otlp_http = -1;
    tr_log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    /* Request buffers and arenas come and go by the megabyte: keep freed memory in the heap
     * instead of handing it back to the kernel each time, which cost a quarter of ingest CPU in
     * page faults (bench/metrics). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);

    lockfd = lock_data_dir(cfg->data_dir, err, sizeof err);
    if (lockfd < 0) goto fail_msg;

    /* bind every listener before anything else, so a busy port fails fast and clearly */
    if ((fd_http = tr_app_listen(cfg->http_addr, err, sizeof err)) < 0) goto fail_msg;
    if ((fd_grpc = tr_app_listen(cfg->otlp_grpc_addr, err, sizeof err)) < 0) goto fail_msg;
    if ((fd_otlp_http = tr_app_listen(cfg->otlp_http_addr, err, sizeof err)) < 0) goto fail_msg;
    raise_nofile();
    int64_t max_series;
    memory_limits(cfg, &max_series);

    a->base = event_base_new();
    if (!a->base) {
        snprintf(err, sizeof err, "cannot create the event loop");
        goto fail_msg;
    }
    process_metrics(a);

    /* workers: enough for a few concurrent exports and queries on a small machine; the
     * queue bound turns a pile-up into quick 503s instead of unbounded memory. Its event also
     * brings the stores' acknowledgements back to the loop. */
    if (!(a->wq = tr_workq_new(a->base, 4, 256, err, sizeof err))) goto fail_msg;
    if (!(a->tsdb_waker = tr_workq_waker_new(a->wq, tsdb_completions_due, a))) {
        snprintf(err, sizeof err, "out of memory");
        goto fail_msg;
    }

    char mdir[4200];
    snprintf(mdir, sizeof mdir, "%s/metrics", cfg->data_dir);
    tsdb_options mo = {
        .dir = mdir,
        .retention_ms = cfg->retention_ms,
        .retention_bytes = cfg->retention_bytes,
        .snapshots_keep = cfg->snapshots_keep,
        .ooo_window_ms = cfg->ooo_window_ms,
        .future_window_ms = cfg->future_window_ms,
        .max_series = max_series,
        .max_label_name_len = cfg->max_label_name_len,
        .max_label_value_len = cfg->max_label_value_len,
        .max_labels = cfg->max_labels_per_series,
        .max_exemplars = cfg->max_exemplars,
        .base = a->base,
        .wake = tsdb_wake,
        .wake_ctx = a,
        .async_replay = 1, /* listeners answer (503 until replayed) instead of hanging */
    };
    if (start_remote_write_out(a, &mo, err, sizeof err) != 0) goto fail_msg;
    if (tsdb_open(&mo, &a->db, err, sizeof err) != 0) goto fail_msg;
    if (a->rwout && rw_out_start(a->rwout, a->db, err, sizeof err) != 0) goto fail_msg;
    otlp_translate_opts to = {.promote_resource_attributes = cfg->otlp_promote_resource_attributes};
    if (!(a->msink = otlp_metrics_sink_new(a->db, &to, err, sizeof err))) goto fail_msg;
    /* remote write bodies are snappy blocks: bounded as sent by the HTTP limit, and once
     * uncompressed by at least 16 MiB (vmagent sends blocks of up to 8 MiB) */
    size_t rw_max = (size_t)cfg->otlp_max_message_bytes * 4 > ((size_t)16 << 20)
                        ? (size_t)cfg->otlp_max_message_bytes * 4
                        : ((size_t)16 << 20);
    if (!(a->ingest = tr_ingest_new(a->db, (size_t)cfg->otlp_max_message_bytes, rw_max,
                                    (size_t)cfg->max_import_bytes))) {
        snprintf(err, sizeof err, "out of memory");
        goto fail_msg;
    }

    a->traces_waker = tr_workq_waker_new(a->wq, traces_ready, a);
    traces_config tc = {
        .dir = cfg->data_dir,
        .retention_ms = cfg->trace_retention_ms,
        .retention_bytes = cfg->trace_retention_bytes,
        .max_attributes = (uint32_t)cfg->trace_max_attributes,
        .max_value_bytes = (uint32_t)cfg->trace_max_value_bytes,
        .max_events = (uint32_t)cfg->trace_max_events,
        .max_links = (uint32_t)cfg->trace_max_links,
        .sync_normal = cfg->trace_sync_normal,
        .readers = 2,
        .wake = traces_wake,
        .wake_ctx = a,
    };
    if (!a->traces_waker || !(a->traces = traces_open(&tc, err, sizeof err))) goto fail_msg;

    tr_credstore_config cc = {.basic_user = cfg->basic_user,
                              .basic_pass = cfg->basic_pass,
                              .htpasswd_file = cfg->basic_auth_file,
                              .token = cfg->ingest_token,
                              .token_file = cfg->ingest_token_file};
    if (!(a->creds = tr_credstore_new(a->base, &cc, err, sizeof err))) goto fail_msg;
    if (cfg->basic_user && !(cfg->tls_cert_file && cfg->http_tls))
        TR_WARN("--basic-auth without TLS: the password crosses the network in clear text on every request; "
                "use --tls-cert-file, and --basic-auth-file (bcrypt) rather than a password in the arguments",
                NULL);
    else if (cfg->basic_user)
        TR_WARN(
            "--basic-auth: the password sits in the process' arguments; prefer --basic-auth-file (bcrypt)",
            NULL);
    otlp_config oc = {
        .max_message_bytes = (size_t)cfg->otlp_max_message_bytes,
        .ingest_token = cfg->ingest_token,
        .creds = a->creds,
        .traces = {.ctx = a->traces, .submit = traces_sink_submit},
        .metrics = otlp_metrics_sink_get(a->msink),
    };
    if (cfg->otlp_forward_endpoints && *cfg->otlp_forward_endpoints) {
        char fdir[4200];
        snprintf(fdir, sizeof fdir, "%s/otlp-forward", cfg->data_dir);
        if (!(a->fwd = otlp_fwd_new(cfg->otlp_forward_endpoints, fdir,
                                    (uint64_t)cfg->otlp_forward_max_queue_bytes, err, sizeof err)))
            goto fail_msg;
        oc.forward = forward_export;
        oc.forward_ctx = a->fwd;
    }
    a->recv = otlp_receiver_new(&oc);
    tr_http_config hc = {
        .creds = a->creds,
        .wq = a->wq,
        .max_body_bytes = (size_t)cfg->otlp_max_message_bytes,
        .max_import_bytes = (size_t)cfg->max_import_bytes,
        .max_buffered_body_bytes = (size_t)cfg->max_buffered_body_bytes,
        .open_reads = !cfg->auth_reads,
        .idle_timeout_s = (int)((cfg->idle_timeout_ms + 999) / 1000),
        .cors_origin = cfg->web_cors_origin,
        .max_conns = (unsigned)cfg->max_connections,
        .max_conns_per_addr = (unsigned)cfg->max_connections_per_ip,
        .header_timeout_ms = cfg->header_timeout_ms,
        .body_timeout_ms = cfg->body_timeout_ms,
    };
    a->http = tr_http_new(a->base, &hc);
    if (!a->recv || !a->http) {
        snprintf(err, sizeof err, "out of memory");
        goto fail_msg;
    }

    if (start_rules(a, err, sizeof err) != 0) goto fail_msg;
    a->env = (tr_api_env){.db = a->db,
                          .traces = a->traces,
                          .recv = a->recv,
                          .ingest = a->ingest,
                          .wq = a->wq,
                          .rules = a->rules,
                          .max_body_bytes = (size_t)cfg->otlp_max_message_bytes,
                          .retention_ms = cfg->retention_ms,
                          .query_timeout_ms = cfg->query_timeout_ms,
                          .query_max_samples = cfg->query_max_samples,
                          .query_lookback_ms = cfg->query_lookback_ms,
                          .query_log_threshold_ms = cfg->query_log_threshold_ms,
                          .query_max_concurrency = (unsigned)cfg->query_max_concurrency,
                          .jaeger_max_skew_ms = cfg->jaeger_max_skew_ms};
    tr_api_core_routes(a->http, &a->env);
    tr_api_otlp_routes(a->http, &a->env);
    tr_api_ingest_routes(a->http, &a->env);
    tr_api_prom_meta_routes(a->http, &a->env);
    tr_api_prom_export_routes(a->http, &a->env);
    tr_api_prom_exemplars_routes(a->http, &a->env);
    tr_api_prom_query_routes(a->http, &a->env);
    tr_api_prom_rules_routes(a->http, &a->env);
    tr_api_jaeger_routes(a->http, &a->env);
    char *flags_json = tr_config_flags_json(cfg);
    a->ui =
        tr_ui_new(a->http, &(tr_ui_options){.dashboards_dir = cfg->dashboards_dir, .flags_json = flags_json});
    free(flags_json);
    if (!a->ui) {
        snprintf(err, sizeof err, "out of memory");
        goto fail_msg;
    }
    char inst[300];
    snprintf(inst, sizeof inst, "%s%s", cfg->http_addr[0] == ':' ? "localhost" : "", cfg->http_addr);
    if (cfg->self_scrape_interval_ms > 0 &&
        !(a->scrape = tr_selfscrape_start(a->base, a->db, cfg->self_scrape_interval_ms, inst))) {
        snprintf(err, sizeof err, "out of memory");
        goto fail_msg;
    }

    tr_tls_server *tls_http = NULL, *tls_otlp_http = NULL, *tls_grpc = NULL;
    if (start_tls(a, &tls_http, &tls_otlp_http, &tls_grpc, err, sizeof err) != 0) goto fail_msg;
    if (tr_http_listen_tls(a->http, fd_http, 0, tls_http) != 0) {
        snprintf(err, sizeof err, "cannot serve HTTP on %s", cfg->http_addr);
        goto fail_msg;
    }
    fd_http = -1;
    if (tr_http_listen_tls(a->http, fd_otlp_http, 1, tls_otlp_http) != 0) {
        snprintf(err, sizeof err, "cannot serve OTLP/HTTP on %s", cfg->otlp_http_addr);
        goto fail_msg;
    }
    fd_otlp_http = -1;
    a->grpc = otlp_grpc_new(a->base, a->recv, fd_grpc);
    if (!a->grpc) {
        snprintf(err, sizeof err, "cannot serve OTLP/gRPC on %s", cfg->otlp_grpc_addr);
        goto fail_msg;
    }
    otlp_grpc_set_tls(a->grpc, tls_grpc);
    fd_grpc = -1;
    otlp_grpc_set_limits(a->grpc, (unsigned)cfg->max_connections, (unsigned)cfg->max_connections_per_ip);

    a->sigterm = evsignal_new(a->base, SIGTERM, on_signal, a);
    a->sigint = evsignal_new(a->base, SIGINT, on_signal, a);
    evsignal_add(a->sigterm, NULL);
    evsignal_add(a->sigint, NULL);
    a->sighup = evsignal_new(a->base, SIGHUP, on_sighup, a);
    evsignal_add(a->sighup, NULL);

    char ret[32];
    snprintf(ret, sizeof ret, "%lldh", (long long)(cfg->retention_ms / 3600000));
    if (cfg->retention_ms % 86400000 == 0)
        snprintf(ret, sizeof ret, "%lldd", (long long)(cfg->retention_ms / 86400000));
    TR_INFO("tricorder started",
            "version=%s http=%s otlp_grpc=%s otlp_http=%s data_dir=%s retention=%s auth=%s ingest_token=%s",
            TRICORDER_VERSION, cfg->http_addr, cfg->otlp_grpc_addr, cfg->otlp_http_addr,
            tr_log_quote(q, sizeof q, cfg->data_dir), ret,
            cfg->basic_auth_file ? "htpasswd"
            : cfg->basic_user    ? "basic"
                                 : "none",
            cfg->ingest_token || cfg->ingest_token_file ? "set" : "none");

    event_base_dispatch(a->base);

    /* the loop has ended: in-flight work is done (or timed out); close everything. Jobs
     * still running are cancelled; then the trace store: it finishes queued writes and
     * acknowledges them while the connections still exist. */
    tr_selfscrape_free(a->scrape);
    a->scrape = NULL;
    tr_workq_stop(a->wq);
    tr_api_jaeger_fini();
    traces_close(a->traces);
    a->traces = NULL;
    rw_out_stop(a->rwout, a->cfg->shutdown_timeout_ms); /* sends what it can, saves positions */
    tsdb_close(a->db); /* acknowledges the last commits, cuts the head into a block */
    a->db = NULL;
    otlp_grpc_free(a->grpc);
    a->grpc = NULL;
    tr_http_free(a->http);
    a->http = NULL;
    tr_tls_free(a->tls); /* after the connections: they hold references to its contexts */
    a->tls = NULL;
    TR_INFO("stopped", NULL);
    rc = 0;
    goto out;

fail_msg:
    TR_ERROR("cannot start", "error=%s", tr_log_quote(q, sizeof q, err));
out:
    if (a->sigterm) event_free(a->sigterm);
    if (a->sigint) event_free(a->sigint);
    if (a->sighup) event_free(a->sighup);
    if (a->drain) event_free(a->drain);
    otlp_grpc_free(a->grpc);
    tr_selfscrape_free(a->scrape);
    tr_http_free(a->http);
    tr_tls_free(a->tls);
    tr_ui_free(a->ui);
    tr_rules_stop(a->rules);
    tr_workq_stop(a->wq);
    tr_rules_free(a->rules); /* after the queue: no evaluation runs any more */
    a->rules = NULL;
    tr_api_jaeger_fini();
    traces_close(a->traces);
    tr_workq_waker_free(a->traces_waker);
    otlp_receiver_free(a->recv);
    otlp_metrics_sink_free(a->msink);
    tr_ingest_free(a->ingest);
    rw_out_stop(a->rwout, 0);
    tsdb_close(a->db);
    rw_out_free(a->rwout); /* after the store: its last checkpoint asks which segments to keep */
    tr_workq_waker_free(a->tsdb_waker);
    tr_workq_free(a->wq);
    tr_credstore_free(a->creds);
    if (a->base) event_base_free(a->base);
    if (fd_http >= 0) close(fd_http);
    if (fd_grpc >= 0) close(fd_grpc);
    if (fd_otlp_http >= 0) close(fd_otlp_http);
    otlp_fwd_free(a->fwd); /* after the receiver: nothing appends any more */
    if (lockfd >= 0) close(lockfd);
    tr_selfmon_reset();
    return rc;
}
