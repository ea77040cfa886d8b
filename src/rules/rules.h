/* Recording and alerting rules in Prometheus's rule file format, evaluated with Prometheus's
 * semantics: groups run on their interval (aligned by the group's hash) as jobs on the work
 * queue; alerts go pending → firing after `for`, keep firing for `keep_firing_for`, resolve;
 * ALERTS / ALERTS_FOR_STATE and recording rules' results are appended to the metrics store.
 * The manager's state is read by /api/v1/rules and /api/v1/alerts (http/prom_rules.c). */
#ifndef TR_RULES_H
#define TR_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "metrics/metrics.h"
#include "util/buf.h"
#include "util/workq.h"

struct event_base;

/* ---- rule files ---- */

typedef struct tr_rkv {
    char *name, *value;
} tr_rkv;

typedef struct tr_rule_def {
    int alert; /* 1: alerting rule (name = alert), 0: recording rule (name = record) */
    char *name, *expr;
    int64_t for_ms, keep_firing_for_ms;
    tr_rkv *labels, *annotations;
    size_t nlabels, nannotations;
} tr_rule_def;

typedef struct tr_group_def {
    char *name, *file;
    int64_t interval_ms;     /* 0: the default interval */
    int64_t query_offset_ms; /* evaluation looks this far back */
    int64_t limit;           /* 0: none */
    tr_rule_def *rules;
    size_t nrules;
} tr_group_def;

typedef struct tr_ruleset {
    tr_group_def *groups;
    size_t ngroups;
} tr_ruleset;

/* Parses and validates one file's text as Prometheus does (the `groups:` layout, unknown
 * fields refused, expressions parsed, names and templates checked). Groups are appended to
 * rs. Each problem is written as one line "<file>: <message>" to `errs` (as promtool words
 * them). Returns the number of problems. */
int tr_rules_parse(const char *file, const char *text, size_t len, tr_ruleset *rs, tr_buf *errs);
/* Reads and parses a file (as above; a missing file is one problem). */
int tr_rules_parse_file(const char *path, tr_ruleset *rs, tr_buf *errs);
void tr_ruleset_free(tr_ruleset *rs);
/* Prometheus's model.ParseDuration (units y w d h m s ms, each once, in that order). */
int tr_parse_prom_duration(const char *s, int64_t *ms);
size_t tr_ruleset_count(const tr_ruleset *rs);

/* The rule file shipped with tricorder (rules/scotty.yml), embedded at build time. */
extern const char tr_default_rules_name[];
extern const char tr_default_rules[];
extern const size_t tr_default_rules_len;

/* ---- the manager ---- */

typedef struct tr_rules tr_rules;

typedef struct tr_rules_opts {
    tsdb *db;
    tr_workq *wq;
    struct event_base *base;
    const char *const *globs; /* --rule-files; none: the default rules (unless no_default) */
    size_t nglobs;
    int no_default;
    int64_t default_interval_ms; /* 0: 1m */
    int64_t query_timeout_ms, query_max_samples, query_lookback_ms;
    const char *external_url;         /* generatorURL's base, e.g. http://host:8428 */
    const char *const *alertmanagers; /* --alertmanager-url */
    size_t nalertmanagers;
    const char *const *webhooks; /* --alert-webhook-url */
    size_t nwebhooks;
} tr_rules_opts;

/* Loads the rules (an error in any file fails the start, with every problem in err) and
 * schedules the groups on `base`. */
tr_rules *tr_rules_new(const tr_rules_opts *o, char *err, size_t errlen);
/* Reloads the files (SIGHUP, or a change seen by the file watch). On error the old rules
 * stay, the reason is logged and shown as lastError. Returns 0 or -1. Loop thread. */
int tr_rules_reload(tr_rules *r);
/* Stops scheduling (before the work queue stops); pending evaluations finish. */
void tr_rules_stop(tr_rules *r);
void tr_rules_free(tr_rules *r);

/* /api/v1/rules's and /api/v1/alerts's data objects ({"groups":[…]} / {"alerts":[…]}).
 * Filters: type ("alert", "record" or NULL) and lists of names (n = 0: all). Any thread. */
typedef struct tr_rules_filter {
    const char *type;
    const char *const *rule_names, *const *group_names, *const *files;
    size_t nrule_names, ngroup_names, nfiles;
    int exclude_alerts;
} tr_rules_filter;
void tr_rules_json_rules(tr_rules *r, tr_json *j, const tr_rules_filter *f);
void tr_rules_json_alerts(tr_rules *r, tr_json *j);

/* Evaluates every group once at t_ms, synchronously on the calling thread (tests and
 * test-rules). */
void tr_rules_eval_all(tr_rules *r, int64_t t_ms);

/* Calls fn for every active alert (pending or firing; state 1 or 2) under the manager's lock. */
typedef void (*tr_rules_alert_fn)(void *ctx, const char *alertname, const tr_rkv *labels, size_t nl,
                                  const tr_rkv *annotations, size_t na, int state);
void tr_rules_foreach_alert(tr_rules *r, tr_rules_alert_fn fn, void *ctx);

/* `tricorder test-rules FILE…`: promtool test rules's format (input_series in the expanding
 * notation, alert_rule_test, promql_expr_test), its report and exit code. */
int tr_rules_test_main(int argc, char **argv, FILE *out, FILE *errout);

/* `tricorder check-rules FILE…`: promtool check rules's output and exit code. */
int tr_rules_check_main(int argc, char **argv, FILE *out, FILE *errout);

#endif
