/* The built-in web UI: its embedded assets (web/, uPlot, dashboards/) served at `/` and
 * `/ui/…`, the dashboards list (built-in plus --dashboards-dir) and /api/v1/status/flags. */
#ifndef TR_UI_H
#define TR_UI_H

#include "http/http.h"

typedef struct tr_ui tr_ui;

typedef struct tr_ui_options {
    const char *dashboards_dir; /* NULL: only the built-in dashboards */
    const char *flags_json;     /* the flags in force, a JSON object (copied); NULL: {} */
} tr_ui_options;

/* Registers the UI's routes on `h` (GET): the pages `/`, `/dashboards`, `/explore`, `/traces`,
 * `/status`, `/d/{uid}`, `/trace/{id}`; the files under `/ui/`; the dashboards under
 * `/ui/api/dashboards`; and `/api/v1/status/flags`. Nothing else: unknown `/api/…` paths stay
 * the router's 404. Returns NULL when out of memory. Free after the server. */
tr_ui *tr_ui_new(tr_http *h, const tr_ui_options *o);
void tr_ui_free(tr_ui *ui);

/* Exposed for tests: the embedded asset at `path` (e.g. "/ui/index.html"), or NULL. */
struct tr_ui_asset;
const struct tr_ui_asset *tr_ui_find_asset(const char *path);
/* Whether an If-None-Match header value matches `etag` (a quoted tag): a list, W/ or "*". */
int tr_ui_etag_match(const char *if_none_match, const char *etag);
/* Whether an Accept-Encoding header value accepts gzip (not with q=0). */
int tr_ui_accepts_gzip(const char *accept_encoding);

#endif
