/* Configuration: every flag `--foo-bar` is also read from TRICORDER_FOO_BAR; a flag given on
 * the command line wins over the environment, which wins over the default. */
#ifndef TR_CONFIG_H
#define TR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

typedef struct tr_config {
    char *data_dir;
    char *http_addr;
    char *otlp_grpc_addr;
    char *otlp_http_addr;
    int64_t retention_ms;
    int64_t retention_bytes;    /* --retention-size: cap on metric blocks; 0: none */
    int64_t ooo_window_ms;      /* out-of-order samples accepted within this */
    char *max_series_s;         /* --max-series as given: a count or "auto" */
    int64_t max_series;         /* active head series; 0: no limit; -1: auto (from the memory limit) */
    char *memory_limit_s;       /* --memory-limit as given */
    int64_t memory_limit_bytes; /* resolved: a size (0: none) … */
    double memory_limit_pct;    /* … or a share of the machine's or cgroup's memory (0: not a share) */
    int64_t max_label_name_len, max_label_value_len, max_labels_per_series;
    int64_t max_exemplars; /* exemplar ring size; 0: exemplars not kept */
    tr_log_level log_level;
    char *basic_auth;              /* "user:password" as given */
    char *basic_auth_file;         /* htpasswd file (bcrypt), read by the server */
    char *basic_user, *basic_pass; /* resolved from either of the two */
    char *ingest_token;
    char *tls_cert_file, *tls_key_file;             /* PEM; both set: TLS on the listeners below */
    char *tls_client_ca_file;                       /* OTLP ingestion needs a client certificate it signed */
    int64_t http_tls, otlp_grpc_tls, otlp_http_tls; /* per listener, when a certificate is set */
    char *ingest_token_file;                        /* one token a line, read by the server */
    int64_t max_buffered_body_bytes;                /* request bodies being read at once; 0: no cap */
    int64_t snapshots_keep;                         /* --snapshots-keep: newest snapshots kept; 0: all */
    int64_t auth_reads;                             /* 0: reads open even with credentials set */
    int64_t otlp_max_message_bytes;
    int64_t max_import_bytes;               /* POST /api/v1/import/prometheus bodies */
    char *otlp_promote_resource_attributes; /* "all", "none" or a comma list of keys */
    int64_t shutdown_timeout_ms;
    int64_t idle_timeout_ms;         /* connections idle this long are closed */
    int64_t header_timeout_ms;       /* accept / first byte → end of a request's headers (0: none) */
    int64_t body_timeout_ms;         /* end of headers → end of body (0: none) */
    int64_t max_connections;         /* per listener (0: none) */
    int64_t max_connections_per_ip;  /* per listener and client address (0: none) */
    int64_t trace_retention_ms;      /* 0 on the command line: --retention */
    int64_t trace_retention_bytes;   /* 0: no size cap on the trace database */
    char *trace_sync;                /* "full" (default) or "normal" */
    int trace_sync_normal;           /* resolved from trace_sync */
    int64_t trace_max_attributes;    /* per span, event and link; 0: no limit */
    int64_t trace_max_value_bytes;   /* string/bytes attribute values cut to this; 0: no limit */
    int64_t trace_max_events;        /* per span; 0: no limit */
    int64_t trace_max_links;         /* per span; 0: no limit */
    int64_t query_timeout_ms;        /* PromQL evaluation time limit */
    int64_t query_max_samples;       /* samples one query may hold in memory */
    int64_t query_max_concurrency;   /* queries evaluated at once; more get 503 */
    int64_t query_lookback_ms;       /* --query-lookback-delta */
    int64_t query_log_threshold_ms;  /* slower queries are logged; 0: none */
    int64_t jaeger_max_skew_ms;      /* --jaeger-max-clock-skew-adjust */
    int64_t future_window_ms;        /* --future-window */
    const char *web_cors_origin;     /* --web-cors-origin (a regex) */
    int64_t self_scrape_interval_ms; /* tricorder stores its own /metrics this often; 0: off */
    char *dashboards_dir;            /* more Grafana dashboards for the web UI; NULL: none */
    char *rule_files;                /* --rule-files, repeatable: globs, one per line */
    int64_t no_default_rules;        /* --no-default-rules: no built-in rules/scotty.yml */
    int64_t rule_eval_interval_ms;   /* groups without an interval */
    char *external_url;              /* links in alerts (generatorURL) */
    char *alertmanager_urls;         /* --alertmanager-url, repeatable, one per line */
    char *alert_webhook_urls;        /* --alert-webhook-url, repeatable, one per line */
    /* remote write out: --remote-write-url (repeatable, one per line), --remote-write-config
     * (YAML), --remote-write-max-backlog (WAL bytes kept for lagging targets) */
    char *remote_write_urls;
    char *remote_write_config;
    int64_t remote_write_max_backlog;
    int64_t wal_segment_size;     /* --wal-segment-size */
    char *otlp_forward_endpoints; /* --otlp-forward-endpoint, one per line */
    /* --otlp-forward-max-queue-bytes: the disk queue of each endpoint */
    int64_t otlp_forward_max_queue_bytes;
} tr_config;

/* Outcome of tr_config_parse. */
enum { TR_CONFIG_OK = 0, TR_CONFIG_EXIT = 1, TR_CONFIG_ERROR = -1 };

/* Fills `c` from defaults, then `envp` (NULL-terminated "K=V" strings), then argv.
 * Returns TR_CONFIG_OK; TR_CONFIG_EXIT after printing --help or --version to stdout; or
 * TR_CONFIG_ERROR with a one-line message in err. Free with tr_config_free(). */
int tr_config_parse(tr_config *c, int argc, char **argv, char **envp, char *err, size_t errlen);
void tr_config_free(tr_config *c);
/* The flags in force as a JSON object {"flag-name":"value",...} (secrets shown as <hidden>),
 * for /api/v1/status/flags. Returns a malloc'd string or NULL when out of memory. */
char *tr_config_flags_json(const tr_config *c);

/* Prometheus-style durations: "30d", "12h", "1h30m", "90s", "500ms", "1y", "2w".
 * Returns 0 and the value in milliseconds, or -1. */
int tr_parse_duration(const char *s, int64_t *ms);
/* Sizes: "4194304", "4MiB", "512KB", "1GB" (KB=1000, KiB=1024). Returns 0 or -1. */
int tr_parse_size(const char *s, int64_t *bytes);
/* Splits "host:port", ":port", "[v6]:port" into host (empty for any) and port.
 * Returns 0 or -1. */
int tr_parse_addr(const char *s, char *host, size_t hostcap, int *port);

#endif
