/* Alert notifications (private to the rules module): Alertmanager's API v2
 * (POST <url>/api/v2/alerts) and Alertmanager's webhook payload (version 4) for bridges.
 * Each target has a bounded queue of batches sent one at a time from the loop thread through
 * libevent's HTTP client, retried with back-off; sent, failed and dropped alerts are counted. */
#ifndef TR_RULES_NOTIFY_H
#define TR_RULES_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct tr_notice {
    char *labels_json, *annotations_json; /* JSON objects */
    char *generator_url;
    int64_t starts_ms, ends_ms;
    int resolved;
    uint64_t fp;
} tr_notice;

typedef struct tr_notifier tr_notifier;

/* NULL with err when a URL is not http://host[:port][/path]. */
tr_notifier *tr_notifier_new(struct event_base *base, const char *const *alertmanagers, size_t nam,
                             const char *const *webhooks, size_t nwh, const char *external_url, char *err,
                             size_t errlen);
/* Queues the alerts for every target (loop thread); frees n[0..count) and their strings. */
void tr_notifier_send(tr_notifier *t, tr_notice *n, size_t count);
void tr_notice_free(tr_notice *n);
void tr_notifier_free(tr_notifier *t);

#endif
