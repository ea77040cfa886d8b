/* The web UI's HTTP side: embedded assets with gzip, ETag and a strict CSP; the single-page
 * routes that all answer index.html; the dashboards (built-in and --dashboards-dir); the
 * flags in force. Nothing here reads the UI from disk: only --dashboards-dir files, which
 * are parsed as JSON (bounded in size and count), never executed. */
#include "ui.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "ui/assets.h"
#include "util/buf.h"
#include "util/gzip.h"
#include "util/log.h"

#define MAX_DASHBOARD_BYTES (8u << 20) /* one --dashboards-dir file */
#define MAX_DASHBOARD_FILES 500

/* No inline scripts or styles, no eval; uPlot styles its elements through the CSSOM, which
 * style-src does not govern. */
static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                          "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                          "frame-ancestors 'none'";

typedef struct builtin {
    char *uid, *title;
    cJSON *tags;
    const tr_ui_asset *asset;
} builtin;

struct tr_ui {
    char *dir;
    char *flags_json;
    builtin *dash;
    size_t ndash;
};

const tr_ui_asset *tr_ui_find_asset(const char *path) {
    for (size_t i = 0; i < tr_ui_nassets; i++)
        if (tr_ui_assets[i].path && strcmp(tr_ui_assets[i].path, path) == 0) return &tr_ui_assets[i];
    return NULL;
}

int tr_ui_etag_match(const char *inm, const char *etag) {
    if (!inm) return 0;
    size_t el = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*') return 1;
        if (strncmp(p, "W/", 2) == 0) p += 2;
        size_t n = strcspn(p, ",");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == el && strncmp(p, etag, el) == 0) return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

int tr_ui_accepts_gzip(const char *ae) {
    if (!ae) return 0;
    const char *p = ae;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t t = strcspn(p, ";,");
        while (t && p[t - 1] == ' ')
            t--;
        if ((t == 4 && strncasecmp(p, "gzip", 4) == 0) || (t == 1 && *p == '*')) {
            const char *q = memchr(p, ';', n);
            if (!q) return 1;
            const char *qv = strstr(q, "q=");
            if (!qv || qv > p + n) return 1;
            return strtod(qv + 2, NULL) > 0;
        }
        p += n;
    }
    return 0;
}

static void common_headers(struct evhttp_request *req, const char *ctype) {
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (ctype) evhttp_add_header(oh, "Content-Type", ctype);
    evhttp_add_header(oh, "Content-Security-Policy", CSP);
    evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(oh, "Referrer-Policy", "no-referrer");
    evhttp_add_header(oh, "X-Frame-Options", "DENY");
}

/* Sends an embedded asset: 304 when the client has it, gzip as stored when accepted, else
 * inflated. Every asset is revalidated (no-cache): URLs carry no content hash, and a 304 on
 * loopback costs less than a stale UI after an upgrade. */
static void send_asset(struct evhttp_request *req, const tr_ui_asset *a) {
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    common_headers(req, NULL);
    evhttp_add_header(oh, "ETag", a->etag);
    evhttp_add_header(oh, "Cache-Control", "no-cache");
    evhttp_add_header(oh, "Vary", "Accept-Encoding");
    if (tr_ui_etag_match(tr_http_header(req, "If-None-Match"), a->etag)) {
        tr_http_reply(req, 304, NULL, NULL, 0);
        return;
    }
    if (tr_ui_accepts_gzip(tr_http_header(req, "Accept-Encoding"))) {
        evhttp_add_header(oh, "Content-Encoding", "gzip");
        tr_http_reply(req, 200, a->ctype, a->gz, a->gz_len);
        return;
    }
    tr_buf b;
    tr_buf_init(&b, 0);
    if (tr_gunzip(a->gz, a->gz_len, a->raw_len, &b) != TR_GZIP_OK) {
        tr_buf_free(&b);
        tr_http_reply_text(req, 500, "embedded asset is corrupt");
        return;
    }
    tr_http_reply_buf(req, 200, a->ctype, &b);
    tr_buf_free(&b);
}

/* ---- dashboards ---- */

static cJSON *parse_asset_json(const tr_ui_asset *a) {
    tr_buf b;
    tr_buf_init(&b, 0);
    cJSON *j = NULL;
    if (tr_gunzip(a->gz, a->gz_len, a->raw_len, &b) == TR_GZIP_OK)
        j = cJSON_ParseWithLength((const char *)b.data, b.len);
    tr_buf_free(&b);
    return j;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Reads a --dashboards-dir file: a JSON object, at most MAX_DASHBOARD_BYTES. */
static cJSON *read_dashboard_file(const char *dir, const char *name) {
    char path[4400];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) return NULL;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (size_t)st.st_size > MAX_DASHBOARD_BYTES)
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    cJSON *j = buf ? cJSON_ParseWithLength(buf, n) : NULL;
    free(buf);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

static int is_json_name(const char *n) {
    size_t l = strlen(n);
    return n[0] != '.' && l > 5 && strcmp(n + l - 5, ".json") == 0;
}

/* The uid of a dashboard: its "uid", else the file name without .json. */
static void dash_uid(const cJSON *j, const char *file, char *out, size_t cap) {
    const char *u = json_str(j, "uid");
    if (u && *u)
        snprintf(out, cap, "%s", u);
    else
        snprintf(out, cap, "%.*s", (int)(strlen(file) - 5), file);
}

static void add_entry(cJSON *arr, const char *uid, const char *title, const cJSON *tags, const char *source) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "uid", uid);
    cJSON_AddStringToObject(e, "title", title ? title : uid);
    cJSON_AddItemToObject(e, "tags",
                          tags && cJSON_IsArray(tags) ? cJSON_Duplicate(tags, 1) : cJSON_CreateArray());
    cJSON_AddStringToObject(e, "source", source);
    cJSON_AddItemToArray(arr, e);
}

static void reply_json(struct evhttp_request *req, cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    if (!s) {
        tr_http_reply_text(req, 500, "out of memory");
        return;
    }
    common_headers(req, NULL);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
    tr_http_reply(req, 200, "application/json", s, strlen(s));
    free(s);
}

/* GET /ui/api/dashboards: [{uid,title,tags,source}], files first replacing built-ins of the
 * same uid. The directory is read on every request, so edits show on the next page load. */
static void list_dashboards(tr_ui *ui, struct evhttp_request *req) {
    cJSON *arr = cJSON_CreateArray();
    cJSON *seen = cJSON_CreateObject();
    if (ui->dir) {
        DIR *d = opendir(ui->dir);
        struct dirent *e;
        int files = 0;
        while (d && (e = readdir(d)) && files < MAX_DASHBOARD_FILES) {
            if (!is_json_name(e->d_name)) continue;
            files++;
            cJSON *j = read_dashboard_file(ui->dir, e->d_name);
            if (!j) continue;
            char uid[256];
            dash_uid(j, e->d_name, uid, sizeof uid);
            if (!cJSON_GetObjectItemCaseSensitive(seen, uid)) {
                cJSON_AddTrueToObject(seen, uid);
                add_entry(arr, uid, json_str(j, "title"), cJSON_GetObjectItemCaseSensitive(j, "tags"),
                          "file");
            }
            cJSON_Delete(j);
        }
        if (d) closedir(d);
    }
    for (size_t i = 0; i < ui->ndash; i++)
        if (!cJSON_GetObjectItemCaseSensitive(seen, ui->dash[i].uid))
            add_entry(arr, ui->dash[i].uid, ui->dash[i].title, ui->dash[i].tags, "built-in");
    cJSON_Delete(seen);
    reply_json(req, arr);
    cJSON_Delete(arr);
}

/* GET /ui/api/dashboards/<uid>: the dashboard's JSON (a file's wins over a built-in). */
static void get_dashboard(tr_ui *ui, struct evhttp_request *req, const char *uid) {
    if (ui->dir) {
        DIR *d = opendir(ui->dir);
        struct dirent *e;
        int files = 0;
        cJSON *found = NULL;
        while (d && !found && (e = readdir(d)) && files < MAX_DASHBOARD_FILES) {
            if (!is_json_name(e->d_name)) continue;
            files++;
            cJSON *j = read_dashboard_file(ui->dir, e->d_name);
            if (!j) continue;
            char u[256];
            dash_uid(j, e->d_name, u, sizeof u);
            if (strcmp(u, uid) == 0) {
                if (!json_str(j, "uid")) cJSON_AddStringToObject(j, "uid", u);
                found = j;
            } else {
                cJSON_Delete(j);
            }
        }
        if (d) closedir(d);
        if (found) {
            reply_json(req, found);
            cJSON_Delete(found);
            return;
        }
    }
    for (size_t i = 0; i < ui->ndash; i++)
        if (strcmp(ui->dash[i].uid, uid) == 0) {
            send_asset(req, ui->dash[i].asset);
            return;
        }
    static const char nf[] =
        "{\"status\":\"error\",\"errorType\":\"not_found\",\"error\":\"no dashboard with this uid\"}";
    tr_http_reply(req, 404, "application/json", nf, sizeof nf - 1);
}

/* ---- routes ---- */

static const char NOT_BUILT[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tricorder</title></head><body>"
    "<h1>tricorder</h1><p>This binary was built without its web UI: uPlot was not installed when it was "
    "compiled. Run <code>./dev build</code>, or <code>(cd web &amp;&amp; npm ci)</code> and rebuild with "
    "CMake.</p><p>The APIs work: <a href=\"/metrics\">/metrics</a>, <a "
    "href=\"/api/v1/labels\">/api/v1/labels</a>, "
    "<a href=\"/api/services\">/api/services</a>.</p></body></html>\n";

/* /, /dashboards, /explore, /traces, /status, /d/{uid}, /trace/{id}: the single-page app. */
static void ui_index(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    (void)m;
    (void)ctx;
    const tr_ui_asset *a = tr_ui_built ? tr_ui_find_asset("/ui/index.html") : NULL;
    if (a) {
        send_asset(req, a);
        return;
    }
    common_headers(req, NULL);
    tr_http_reply(req, 200, "text/html; charset=utf-8", NOT_BUILT, sizeof NOT_BUILT - 1);
}

/* /ui/…: an embedded file. */
static void ui_asset(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    (void)ctx;
    const tr_ui_asset *a = tr_ui_find_asset(m->path);
    if (a)
        send_asset(req, a);
    else
        tr_http_reply_text(req, 404, "404 page not found");
}

static void ui_list(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    (void)m;
    list_dashboards(ctx, req);
}

static void ui_dashboard(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    get_dashboard(ctx, req, tr_http_var(m, "uid"));
}

static void flags_handler(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    (void)m;
    tr_ui *ui = ctx;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_buf_printf(&b, "{\"status\":\"success\",\"data\":%s}", ui->flags_json ? ui->flags_json : "{}");
    tr_http_reply_buf(req, 200, "application/json", &b);
    tr_buf_free(&b);
}

tr_ui *tr_ui_new(tr_http *h, const tr_ui_options *o) {
    tr_ui *ui = calloc(1, sizeof *ui);
    if (!ui) return NULL;
    if (o->dashboards_dir && *o->dashboards_dir && !(ui->dir = strdup(o->dashboards_dir))) goto oom;
    if (o->flags_json && !(ui->flags_json = strdup(o->flags_json))) goto oom;
    ui->dash = calloc(tr_ui_nassets + 1, sizeof *ui->dash);
    if (!ui->dash) goto oom;
    for (size_t i = 0; i < tr_ui_nassets; i++) {
        const tr_ui_asset *a = &tr_ui_assets[i];
        if (!a->path || strncmp(a->path, "/ui/dashboards/", 15) != 0) continue;
        cJSON *j = parse_asset_json(a);
        if (!j) {
            TR_WARN("built-in dashboard is not valid JSON", "path=%s", a->path);
            continue;
        }
        char uid[256];
        dash_uid(j, a->path + 15, uid, sizeof uid);
        builtin *d = &ui->dash[ui->ndash];
        d->uid = strdup(uid);
        const char *t = json_str(j, "title");
        d->title = strdup(t ? t : uid);
        cJSON *tags = cJSON_GetObjectItemCaseSensitive(j, "tags");
        d->tags = tags ? cJSON_Duplicate(tags, 1) : NULL;
        d->asset = a;
        cJSON_Delete(j);
        if (!d->uid || !d->title) goto oom;
        ui->ndash++;
    }
    static const char *const pages[] = {"/",       "/dashboards", "/explore",   "/traces",
                                        "/status", "/d/{uid}",    "/trace/{id}"};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
        tr_http_route(h, TR_GET, pages[i], 0, ui_index, ui);
    static const char *const assets[] = {"/ui/{a}", "/ui/{a}/{b}", "/ui/{a}/{b}/{c}", "/ui/{a}/{b}/{c}/{d}"};
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        tr_http_route(h, TR_GET, assets[i], 0, ui_asset, ui);
    tr_http_route(h, TR_GET, "/ui/api/dashboards", 0, ui_list, ui);
    tr_http_route(h, TR_GET, "/ui/api/dashboards/{uid}", 0, ui_dashboard, ui);
    tr_http_route(h, TR_GET, "/api/v1/status/flags", 0, flags_handler, ui);
    return ui;
oom:
    tr_ui_free(ui);
    return NULL;
}

void tr_ui_free(tr_ui *ui) {
    if (!ui) return;
    for (size_t i = 0; i < ui->ndash; i++) {
        free(ui->dash[i].uid);
        free(ui->dash[i].title);
        cJSON_Delete(ui->dash[i].tags);
    }
    free(ui->dash);
    free(ui->dir);
    free(ui->flags_json);
    free(ui);
}
