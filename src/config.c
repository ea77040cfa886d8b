/* Flag and environment parsing, table-driven so that --help, the environment names and the
 * parser never disagree. */
#include "config.h"

#include "util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward/otlp_fwd.h"
#include "util/re.h"

#ifndef TRICORDER_VERSION
#define TRICORDER_VERSION "dev"
#endif

/* F_INT: a plain count, no unit; F_LIST: repeatable, values joined by newlines; F_BOOL: no
 * value on the command line */
typedef enum { F_STRING, F_DURATION, F_SIZE, F_LEVEL, F_INT, F_LIST, F_BOOL } ftype;

typedef struct flag {
    const char *name;
    ftype type;
    size_t off;
    const char *def; /* NULL: unset */
    const char *help;
} flag;

#define OFF(f) offsetof(tr_config, f)
static const flag flags[] = {
    {"data-dir", F_STRING, OFF(data_dir), "./data", "directory for all stored data (locked while in use)"},
    {"http-addr", F_STRING, OFF(http_addr), ":8428", "HTTP: APIs, web UI, /metrics, OTLP/HTTP"},
    {"otlp-grpc-addr", F_STRING, OFF(otlp_grpc_addr), ":4317", "OTLP/gRPC listener"},
    {"otlp-http-addr", F_STRING, OFF(otlp_http_addr), ":4318", "OTLP/HTTP listener"},
    {"retention", F_DURATION, OFF(retention_ms), "30d", "how long data is kept (12h, 14d, 90d, 1y)"},
    {"retention-size", F_SIZE, OFF(retention_bytes), NULL,
     "cap on the metric blocks on disk, oldest blocks go first (e.g. 10GiB)"},
    {"ooo-window", F_DURATION, OFF(ooo_window_ms), "10m",
     "samples this much older than a series' newest are still accepted"},
    {"future-window", F_DURATION, OFF(future_window_ms), "2h",
     "samples more than this ahead of the clock are refused (0: no limit)"},
    {"max-series", F_STRING, OFF(max_series_s), "auto",
     "active series in the metrics head; auto: --memory-limit / 2KiB (0: no limit)"},
    {"memory-limit", F_STRING, OFF(memory_limit_s), "80%",
     "resident memory above which writes are refused, retryably (503 / RESOURCE_EXHAUSTED): a size (2GiB), a "
     "share of the machine's or the cgroup's memory (80%), or 0 for none"},
    {"max-label-name-length", F_INT, OFF(max_label_name_len), "256", "longest label name accepted"},
    {"max-label-value-length", F_INT, OFF(max_label_value_len), "4096", "longest label value accepted"},
    {"max-labels-per-series", F_INT, OFF(max_labels_per_series), "64",
     "most labels in one series (__name__ included)"},
    {"max-exemplars", F_INT, OFF(max_exemplars), "100000",
     "exemplars kept (newest win; in memory and the WAL) for /api/v1/query_exemplars (0: none)"},
    {"log-level", F_LEVEL, OFF(log_level), "info", "debug, info, warn or error"},
    {"basic-auth", F_STRING, OFF(basic_auth), NULL,
     "user:password (plain text: logs a warning; prefer --basic-auth-file) required on every HTTP endpoint "
     "but "
     "/healthz"},
    {"basic-auth-file", F_STRING, OFF(basic_auth_file), NULL,
     "htpasswd file of users with bcrypt hashes (htpasswd -B); reloaded when it changes; with or instead of "
     "--basic-auth"},
    {"ingest-token", F_STRING, OFF(ingest_token), NULL,
     "OTLP requests must carry Authorization: Bearer <token>"},
    {"tls-cert-file", F_STRING, OFF(tls_cert_file), NULL,
     "PEM certificate (then its chain, served whole): with --tls-key-file, TLS on every listener; "
     "reloaded on SIGHUP and when the files change"},
    {"tls-key-file", F_STRING, OFF(tls_key_file), NULL, "PEM private key (unencrypted) of --tls-cert-file"},
    {"tls-client-ca-file", F_STRING, OFF(tls_client_ca_file), NULL,
     "PEM CA: OTLP ingestion (gRPC, OTLP/HTTP listener, ingest routes on --http-addr) requires a client "
     "certificate it signed (mTLS); the UI and APIs are not affected"},
    {"http-tls", F_BOOL, OFF(http_tls), "true", "TLS on --http-addr when a certificate is set"},
    {"otlp-grpc-tls", F_BOOL, OFF(otlp_grpc_tls), "true",
     "TLS on --otlp-grpc-addr when a certificate is set"},
    {"otlp-http-tls", F_BOOL, OFF(otlp_http_tls), "true",
     "TLS on --otlp-http-addr when a certificate is set"},
    {"ingest-token-file", F_STRING, OFF(ingest_token_file), NULL,
     "file of ingest tokens, one a line ('#' comments), accepted besides --ingest-token; reloaded when it "
     "changes"},
    {"snapshots-keep", F_INT, OFF(snapshots_keep), "3",
     "snapshots (POST /api/v1/admin/tsdb/snapshot) kept, the newest; older ones are removed (0: all); what "
     "only "
     "snapshots hold counts in --retention-size, and the oldest snapshot goes first"},
    {"auth-reads", F_BOOL, OFF(auth_reads), "true",
     "false: the read endpoints (queries, the UI) need no credentials; writes and admin calls always do"},
    {"max-buffered-body-bytes", F_SIZE, OFF(max_buffered_body_bytes), "256MiB",
     "request bodies being read at once, over all connections; more are answered 503 (0: no cap)"},
    {"otlp-max-message-bytes", F_SIZE, OFF(otlp_max_message_bytes), "4MiB",
     "largest OTLP message, after decompression"},
    {"max-import-bytes", F_SIZE, OFF(max_import_bytes), "32MiB",
     "largest body of the text import (/api/v1/import/prometheus), as sent and after gzip"},
    {"otlp-promote-resource-attributes", F_STRING, OFF(otlp_promote_resource_attributes), "all",
     "resource attributes copied onto every metric series as labels: all (as Scotty's collector does), none, "
     "or a comma list of keys"},
    {"shutdown-timeout", F_DURATION, OFF(shutdown_timeout_ms), "8s",
     "how long SIGTERM waits for in-flight requests"},
    {"idle-timeout", F_DURATION, OFF(idle_timeout_ms), "60s",
     "idle client connections are closed after this"},
    {"header-timeout", F_DURATION, OFF(header_timeout_ms), "10s",
     "a request's headers must arrive within this of the accept or of its first byte, else 408 and close (0: "
     "none)"},
    {"body-timeout", F_DURATION, OFF(body_timeout_ms), "60s",
     "a request's body must arrive within this of the end of its headers, else 408 and close (0: none)"},
    {"max-connections", F_INT, OFF(max_connections), "4096",
     "open connections per listener; more are closed at accept (0: no limit)"},
    {"max-connections-per-ip", F_INT, OFF(max_connections_per_ip), "256",
     "open connections per listener from one client address; more are closed at accept (0: no limit)"},
    {"trace-retention", F_DURATION, OFF(trace_retention_ms), NULL,
     "how long spans are kept (default: --retention)"},
    {"trace-retention-size", F_SIZE, OFF(trace_retention_bytes), NULL,
     "cap on the trace database size, oldest spans go first (e.g. 10GiB)"},
    {"trace-sync", F_STRING, OFF(trace_sync), "full",
     "full: acknowledged spans survive a power cut (fsync per commit, concurrent exports share one); normal: "
     "they survive a crash of tricorder only"},
    {"trace-max-attributes", F_INT, OFF(trace_max_attributes), "128",
     "attributes kept per span, event and link (0: no limit)"},
    {"trace-max-attribute-value-bytes", F_SIZE, OFF(trace_max_value_bytes), "4096",
     "longer string/bytes attribute values are cut (0: no limit)"},
    {"trace-max-events", F_INT, OFF(trace_max_events), "128", "events kept per span (0: no limit)"},
    {"trace-max-links", F_INT, OFF(trace_max_links), "128", "links kept per span (0: no limit)"},
    {"query-timeout", F_DURATION, OFF(query_timeout_ms), "2m", "longest a PromQL query may run"},
    {"query-max-samples", F_INT, OFF(query_max_samples), "50000000",
     "most samples one PromQL query may load into memory"},
    {"query-max-concurrency", F_INT, OFF(query_max_concurrency), "20",
     "PromQL queries evaluated at once; more are answered 503"},
    {"query-lookback-delta", F_DURATION, OFF(query_lookback_ms), "5m",
     "how far back an instant selector looks for a sample"},
    {"query-log-threshold", F_DURATION, OFF(query_log_threshold_ms), "10s",
     "queries slower than this are logged (0: none)"},
    {"web-cors-origin", F_STRING, OFF(web_cors_origin), ".*",
     "regex (anchored, as Prometheus' --web.cors.origin) of the origins the APIs answer CORS requests for"},
    {"jaeger-max-clock-skew-adjust", F_DURATION, OFF(jaeger_max_skew_ms), "0",
     "largest clock-skew shift the Jaeger API applies to a span from another host (0: as jaeger-query, skew "
     "is only warned about)"},
    {"self-scrape-interval", F_DURATION, OFF(self_scrape_interval_ms), "15s",
     "tricorder stores its own /metrics this often under job=\"tricorder\" (0: off)"},
    {"dashboards-dir", F_STRING, OFF(dashboards_dir), NULL,
     "directory of Grafana dashboard JSON files added to the web UI (same uid: replaces a built-in one)"},
    {"rule-files", F_LIST, OFF(rule_files), NULL,
     "Prometheus rule files (globs; repeatable, or comma-separated in the environment); replace the built-in "
     "rules/scotty.yml; reloaded on SIGHUP and when they change"},
    {"no-default-rules", F_BOOL, OFF(no_default_rules), NULL,
     "do not load the built-in rules (Scotty's four alerts)"},
    {"rule-evaluation-interval", F_DURATION, OFF(rule_eval_interval_ms), "1m",
     "evaluation interval of rule groups that set none"},
    {"alertmanager-url", F_LIST, OFF(alertmanager_urls), NULL,
     "Alertmanager to send alerts to (http://host:9093; repeatable): POST /api/v2/alerts"},
    {"alert-webhook-url", F_LIST, OFF(alert_webhook_urls), NULL,
     "URL that receives Alertmanager's webhook payload (version 4) for each batch of alerts (repeatable)"},
    {"remote-write-url", F_LIST, OFF(remote_write_urls), NULL,
     "forward every stored sample to this Prometheus remote-write receiver (http://host:9090/api/v1/write; "
     "repeatable), read from the metrics WAL; https:// is verified against the system CA store (other TLS "
     "settings: --remote-write-config)"},
    {"remote-write-config", F_STRING, OFF(remote_write_config), NULL,
     "YAML file with a Prometheus-style remote_write: list (url, name, headers, basic_auth, bearer_token, "
     "series_selector, write_relabel_configs keep/drop, queue_config, metadata_config, tls_config: ca_file, "
     "cert_file, key_file, server_name, insecure_skip_verify)"},
    {"remote-write-max-backlog", F_SIZE, OFF(remote_write_max_backlog), "1GiB",
     "WAL kept for remote write targets that lag behind; past it the oldest segments go (samples dropped, "
     "counted)"},
    {"wal-segment-size", F_SIZE, OFF(wal_segment_size), "128MiB",
     "size at which the metrics WAL starts a new segment"},
    {"otlp-forward-endpoint", F_LIST, OFF(otlp_forward_endpoints), NULL,
     "forward every OTLP metrics/traces export, as received, to grpc://host:port or "
     "http://host:port[/prefix], or over TLS grpcs:// or https:// "
     "(repeatable); options after ';': header=Name=value (repeatable), compression=gzip, "
     "signals=traces|metrics, "
     "timeout=<seconds>; for TLS ca=FILE (default: the system CAs), cert=FILE and key=FILE (client "
     "certificate), server_name=NAME, insecure (no verification)"},
    {"otlp-forward-max-queue-bytes", F_SIZE, OFF(otlp_forward_max_queue_bytes), "1GiB",
     "disk queue per forwarding endpoint (under <data-dir>/otlp-forward); when full the oldest exports are "
     "dropped "
     "and counted"},
    {"external-url", F_STRING, OFF(external_url), NULL,
     "the URL users reach tricorder at (alert links); default http://<hostname><http-addr>"},
};
#define NFLAGS (sizeof flags / sizeof flags[0])

static void env_name(const char *name, char *out, size_t cap) {
    size_t o = snprintf(out, cap, "TRICORDER_");
    for (; *name && o + 1 < cap; name++)
        out[o++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    out[o] = 0;
}

int tr_parse_duration(const char *s, int64_t *ms) { return tr_parse_model_duration(s, ms); }

int tr_parse_size(const char *s, int64_t *bytes) {
    if (!s || !isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (errno || n < 0) return -1;
    static const struct {
        const char *suf;
        int64_t mul;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KB", 1000},
                 {"MB", 1000000},
                 {"GB", 1000000000LL},
                 {"TB", 1000000000000LL},
                 {"KiB", 1024},
                 {"MiB", 1048576},
                 {"GiB", 1073741824LL},
                 {"TiB", 1099511627776LL},
                 {"k", 1000},
                 {"K", 1024},
                 {"M", 1048576},
                 {"G", 1073741824LL}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].suf) == 0) {
            if (n > INT64_MAX / units[i].mul) return -1;
            *bytes = n * units[i].mul;
            return 0;
        }
    return -1;
}

int tr_parse_addr(const char *s, char *host, size_t hostcap, int *port) {
    const char *colon;
    if (!s || !*s) return -1;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        if ((size_t)(rb - s - 1) >= hostcap) return -1;
        memcpy(host, s + 1, rb - s - 1);
        host[rb - s - 1] = 0;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= hostcap) return -1;
        memcpy(host, s, colon - s);
        host[colon - s] = 0;
        if (strchr(host, ':')) return -1; /* bare IPv6 needs brackets */
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

static int set_flag(tr_config *c, const flag *f, const char *v, const char *src, char *err, size_t errlen) {
    char *base = (char *)c;
    switch (f->type) {
    case F_STRING: {
        char **slot = (char **)(base + f->off);
        char *d = strdup(v);
        if (!d) goto oom;
        free(*slot);
        *slot = d;
        return 0;
    }
    case F_DURATION:
        if (tr_parse_duration(v, (int64_t *)(base + f->off)) == 0) return 0;
        snprintf(err, errlen, "%s: invalid duration %s (want e.g. 30s, 12h, 14d, 1y)", src, v);
        return -1;
    case F_SIZE:
        if (tr_parse_size(v, (int64_t *)(base + f->off)) == 0) return 0;
        snprintf(err, errlen, "%s: invalid size %s (want e.g. 4194304, 4MiB, 1GB)", src, v);
        return -1;
    case F_INT: {
        /* digits only: a size suffix on a count (128KB attributes) is a mistake, not 128000 */
        char *end = (char *)v;
        errno = 0;
        long long n = isdigit((unsigned char)*v) ? strtoll(v, &end, 10) : -1;
        if (n >= 0 && !errno && !*end) {
            *(int64_t *)(base + f->off) = n;
            return 0;
        }
        snprintf(err, errlen, "%s: invalid count %s (want a whole number, e.g. 128)", src, v);
        return -1;
    }
    case F_LIST: {
        char **slot = (char **)(base + f->off);
        /* the environment separates by commas, the command line by repetition */
        int env = strncmp(src, "--", 2) != 0;
        size_t old = *slot ? strlen(*slot) : 0, add = strlen(v);
        char *d = realloc(*slot, old + add + 2);
        if (!d) goto oom;
        if (old) d[old++] = '\n';
        memcpy(d + old, v, add + 1);
        if (env)
            for (char *p = d + old; *p; p++)
                if (*p == ',') *p = '\n';
        *slot = d;
        return 0;
    }
    case F_BOOL: {
        int on = !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes");
        if (!on && strcmp(v, "0") && strcmp(v, "false") && strcmp(v, "no") && *v) {
            snprintf(err, errlen, "%s: invalid boolean %s (want true or false)", src, v);
            return -1;
        }
        *(int64_t *)(base + f->off) = on;
        return 0;
    }
    case F_LEVEL:
        if (tr_log_parse_level(v, (tr_log_level *)(base + f->off)) == 0) return 0;
        snprintf(err, errlen, "%s: invalid log level %s (want debug, info, warn or error)", src, v);
        return -1;
    }
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void usage(void) {
    printf("tricorder %s: an all-in-one observability appliance\n"
           "(OTLP receiver, Prometheus-compatible metrics store, Jaeger-compatible trace store)\n\n"
           "Usage: tricorder [flags]\n\nFlags (each also read from the environment variable shown):\n",
           TRICORDER_VERSION);
    char env[64];
    for (size_t i = 0; i < NFLAGS; i++) {
        env_name(flags[i].name, env, sizeof env);
        printf("  --%-34s %s\n  %-36s env %s", flags[i].name, flags[i].help, "", env);
        if (flags[i].def) printf(", default %s", flags[i].def);
        printf("\n");
    }
    printf("  --%-34s print this help\n  --%-34s print the version\n", "help", "version");
}

int tr_config_parse(tr_config *c, int argc, char **argv, char **envp, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    char src[96];
    char cli_list[NFLAGS] = {0};
    for (size_t i = 0; i < NFLAGS; i++)
        if (flags[i].def && set_flag(c, &flags[i], flags[i].def, "default", err, errlen))
            return TR_CONFIG_ERROR;
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "TRICORDER_", 10) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char env[64];
        for (size_t i = 0; i < NFLAGS; i++) {
            env_name(flags[i].name, env, sizeof env);
            if (strlen(env) == (size_t)(eq - *e) && strncmp(*e, env, eq - *e) == 0) {
                snprintf(src, sizeof src, "%s", env);
                if (set_flag(c, &flags[i], eq + 1, src, err, errlen)) return TR_CONFIG_ERROR;
            }
        }
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage();
            return TR_CONFIG_EXIT;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("tricorder %s\n", TRICORDER_VERSION);
            return TR_CONFIG_EXIT;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument %s (see --help)", arg);
            return TR_CONFIG_ERROR;
        }
        const char *name = arg + 2, *val = strchr(name, '=');
        size_t nlen = val ? (size_t)(val - name) : strlen(name);
        const flag *f = NULL;
        for (size_t i = 0; i < NFLAGS; i++)
            if (strlen(flags[i].name) == nlen && strncmp(flags[i].name, name, nlen) == 0) f = &flags[i];
        if (!f) {
            snprintf(err, errlen, "unknown flag --%.*s (see --help)", (int)nlen, name);
            return TR_CONFIG_ERROR;
        }
        if (val) {
            val++;
        } else if (f->type == F_BOOL) {
            val = "true";
        } else {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "flag --%s needs a value", f->name);
                return TR_CONFIG_ERROR;
            }
            val = argv[++a];
        }
        snprintf(src, sizeof src, "--%s", f->name);
        if (f->type == F_LIST &&
            !cli_list[f - flags]) { /* the command line replaces the environment's list */
            cli_list[f - flags] = 1;
            free(*(char **)((char *)c + f->off));
            *(char **)((char *)c + f->off) = NULL;
        }
        if (set_flag(c, f, val, src, err, errlen)) return TR_CONFIG_ERROR;
    }
    if (c->basic_auth) {
        char *colon = strchr(c->basic_auth, ':');
        if (!colon || colon == c->basic_auth) {
            snprintf(err, errlen, "basic auth must be user:password");
            return TR_CONFIG_ERROR;
        }
        c->basic_user = strndup(c->basic_auth, colon - c->basic_auth);
        c->basic_pass = strdup(colon + 1);
    }
    if (c->ingest_token && !*c->ingest_token) {
        free(c->ingest_token);
        c->ingest_token = NULL;
    }
    char **tls_files[] = {&c->tls_cert_file, &c->tls_key_file, &c->tls_client_ca_file};
    for (int i = 0; i < 3; i++)
        if (*tls_files[i] && !**tls_files[i]) { /* empty in the environment: unset */
            free(*tls_files[i]);
            *tls_files[i] = NULL;
        }
    if (!c->tls_cert_file != !c->tls_key_file) {
        snprintf(err, errlen, "--tls-cert-file and --tls-key-file go together");
        return TR_CONFIG_ERROR;
    }
    if (c->tls_client_ca_file && !c->tls_cert_file) {
        snprintf(err, errlen, "--tls-client-ca-file needs --tls-cert-file and --tls-key-file");
        return TR_CONFIG_ERROR;
    }
    if (c->retention_ms <= 0) {
        snprintf(err, errlen, "--retention must be positive");
        return TR_CONFIG_ERROR;
    }
    if (c->trace_retention_ms == 0) c->trace_retention_ms = c->retention_ms;
    if (c->trace_max_attributes > 100000 || c->trace_max_events > 100000 || c->trace_max_links > 100000 ||
        c->trace_max_value_bytes > (1LL << 24)) {
        snprintf(err, errlen, "--trace-max-* limits: at most 100000 items and 16MiB per value");
        return TR_CONFIG_ERROR;
    }
    if (strcmp(c->trace_sync, "full") != 0 && strcmp(c->trace_sync, "normal") != 0) {
        snprintf(err, errlen, "--trace-sync must be full or normal, not %s", c->trace_sync);
        return TR_CONFIG_ERROR;
    }
    c->trace_sync_normal = strcmp(c->trace_sync, "normal") == 0;
    if (c->query_timeout_ms <= 0 || c->query_max_samples <= 0 || c->query_max_concurrency <= 0 ||
        c->query_max_concurrency > 1000 || c->query_lookback_ms <= 0) {
        snprintf(err, errlen,
                 "--query-timeout, --query-max-samples, --query-lookback-delta must be positive, "
                 "--query-max-concurrency between 1 and 1000");
        return TR_CONFIG_ERROR;
    }
    {
        char rerr[300];
        tr_re *re = tr_re_compile(c->web_cors_origin, strlen(c->web_cors_origin), rerr, sizeof rerr);
        if (!re) {
            snprintf(err, errlen, "--web-cors-origin: %s", rerr);
            return TR_CONFIG_ERROR;
        }
        tr_re_free(re);
    }
    if (strcmp(c->max_series_s, "auto") == 0) {
        c->max_series = -1; /* resolved with the memory limit */
    } else {
        char *end;
        errno = 0;
        long long n = isdigit((unsigned char)c->max_series_s[0]) ? strtoll(c->max_series_s, &end, 10) : -1;
        if (n < 0 || errno || *end) {
            snprintf(err, errlen, "--max-series: invalid count %s (want a whole number or auto)",
                     c->max_series_s);
            return TR_CONFIG_ERROR;
        }
        c->max_series = n;
    }
    {
        const char *m = c->memory_limit_s;
        size_t ml = strlen(m);
        char *end;
        if (ml > 1 && m[ml - 1] == '%') {
            errno = 0;
            double pct = isdigit((unsigned char)m[0]) ? strtod(m, &end) : -1;
            if (pct <= 0 || pct > 100 || errno || end != m + ml - 1) {
                snprintf(err, errlen, "--memory-limit: invalid share %s (want e.g. 80%%)", m);
                return TR_CONFIG_ERROR;
            }
            c->memory_limit_pct = pct;
        } else if (tr_parse_size(m, &c->memory_limit_bytes) != 0) {
            snprintf(err, errlen,
                     "--memory-limit: invalid value %s (want a size such as 2GiB, a share such as "
                     "80%%, or 0)",
                     m);
            return TR_CONFIG_ERROR;
        }
    }
    if (c->max_connections > 1000000 || c->max_connections_per_ip > 1000000) {
        snprintf(err, errlen, "--max-connections and --max-connections-per-ip: at most 1000000");
        return TR_CONFIG_ERROR;
    }
    if (c->otlp_max_message_bytes < 1024 || c->otlp_max_message_bytes > (1LL << 30)) {
        snprintf(err, errlen, "--otlp-max-message-bytes must be between 1KiB and 1GiB");
        return TR_CONFIG_ERROR;
    }
    if (c->max_import_bytes < 1024 || c->max_import_bytes > (1LL << 30)) {
        snprintf(err, errlen, "--max-import-bytes must be between 1KiB and 1GiB");
        return TR_CONFIG_ERROR;
    }
    if (c->otlp_forward_max_queue_bytes < 65536) {
        snprintf(err, errlen, "--otlp-forward-max-queue-bytes must be at least 64KiB");
        return TR_CONFIG_ERROR;
    }
    for (const char *p = c->otlp_forward_endpoints; p && *p;) {
        size_t l = strcspn(p, "\n");
        char *one = strndup(p, l);
        int bad = !one || otlp_fwd_check_endpoint(one, err, errlen) != 0;
        free(one);
        if (bad) return TR_CONFIG_ERROR;
        p += l + (p[l] == '\n');
    }
    char host[256];
    int port;
    const char *addrs[][2] = {{"--http-addr", c->http_addr},
                              {"--otlp-grpc-addr", c->otlp_grpc_addr},
                              {"--otlp-http-addr", c->otlp_http_addr}};
    for (int i = 0; i < 3; i++)
        if (tr_parse_addr(addrs[i][1], host, sizeof host, &port)) {
            snprintf(err, errlen, "%s: invalid address %s (want host:port or :port)", addrs[i][0],
                     addrs[i][1]);
            return TR_CONFIG_ERROR;
        }
    return TR_CONFIG_OK;
}

void tr_config_free(tr_config *c) {
    for (size_t i = 0; i < NFLAGS; i++)
        if (flags[i].type == F_STRING || flags[i].type == F_LIST) free(*(char **)((char *)c + flags[i].off));
    free(c->basic_user);
    free(c->basic_pass);
    memset(c, 0, sizeof *c);
}

char *tr_config_flags_json(const tr_config *c) {
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    len += snprintf(out, cap, "{");
    for (size_t i = 0; i < NFLAGS; i++) {
        const flag *f = &flags[i];
        const char *base = (const char *)c;
        char val[600];
        switch (f->type) {
        case F_STRING: {
            const char *s = *(char *const *)(base + f->off);
            int secret = strcmp(f->name, "basic-auth") == 0 || strcmp(f->name, "ingest-token") == 0;
            snprintf(val, sizeof val, "%s", !s ? "" : secret ? "<hidden>" : s);
            break;
        }
        case F_DURATION: {
            int64_t ms = *(const int64_t *)(base + f->off);
            static const struct {
                const char *u;
                int64_t ms;
            } us[] = {{"y", 365 * 86400000LL}, {"d", 86400000LL}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
            snprintf(val, sizeof val, "%lldms", (long long)ms);
            for (size_t k = 0; k < sizeof us / sizeof us[0]; k++)
                if (ms && ms % us[k].ms == 0) {
                    snprintf(val, sizeof val, "%lld%s", (long long)(ms / us[k].ms), us[k].u);
                    break;
                }
            if (!ms) snprintf(val, sizeof val, "0s");
            break;
        }
        case F_SIZE:
        case F_INT:
            snprintf(val, sizeof val, "%lld", (long long)*(const int64_t *)(base + f->off));
            break;
        case F_LEVEL:
            snprintf(val, sizeof val, "%s",
                     (const char *[]){"debug", "info", "warn",
                                      "error"}[*(const tr_log_level *)(base + f->off) & 3]);
            break;
        case F_LIST: { /* one value per line, shown comma-separated as Prometheus shows lists */
            const char *s = *(char *const *)(base + f->off);
            size_t k = 0;
            /* forwarding options may carry credentials (header=Authorization=...): not shown */
            int hide_opts = strcmp(f->name, "otlp-forward-endpoint") == 0, in_opts = 0;
            for (size_t j = 0; s && s[j] && k + 1 < sizeof val; j++) {
                if (s[j] == '\n') in_opts = 0;
                if (hide_opts && s[j] == ';') in_opts = 1;
                if (!in_opts) val[k++] = s[j] == '\n' ? ',' : s[j];
            }
            val[k] = 0;
            break;
        }
        case F_BOOL:
            snprintf(val, sizeof val, "%s", *(const int64_t *)(base + f->off) ? "true" : "false");
            break;
        }
        /* JSON-escape the value (names are plain) */
        char esc[1300];
        size_t e = 0;
        for (const unsigned char *p = (const unsigned char *)val; *p && e + 8 < sizeof esc; p++) {
            if (*p == '"' || *p == '\\')
                esc[e++] = '\\', esc[e++] = (char)*p;
            else if (*p < 0x20)
                e += snprintf(esc + e, sizeof esc - e, "\\u%04x", *p);
            else
                esc[e++] = (char)*p;
        }
        esc[e] = 0;
        size_t need = strlen(f->name) + e + 8;
        if (len + need + 2 >= cap) {
            char *n = realloc(out, cap = (cap + need) * 2);
            if (!n) {
                free(out);
                return NULL;
            }
            out = n;
        }
        len += snprintf(out + len, cap - len, "%s\"%s\":\"%s\"", i ? "," : "", f->name, esc);
    }
    snprintf(out + len, cap - len, "}");
    return out;
}
