/* Query strings and form bodies parsed as Go parses them (net/url.ParseQuery and
 * net/http.Request.ParseForm), so that every API reads its parameters as the server it
 * imitates (Prometheus, Jaeger) does: names are case-sensitive, `;` is not a separator,
 * values may hold any byte once decoded (multi-line PromQL, pretty-printed JSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "http.h"

static int hexdig(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Go's strconv.Quote for the short pieces an error quotes (printable ASCII kept, the rest
 * escaped; multi-byte UTF-8 is kept as Go keeps printable runes). */
static void go_quote(char *out, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    if (cap < 3) return;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
        else if (c == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (c == '\r')
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (c == '\t')
            o += (size_t)snprintf(out + o, cap - o, "\\t");
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = 0;
}

/* Go's url.QueryUnescape of s[0..n) into a fresh string. Returns 0, -1 with err set (a bad
 * escape), or -2 when out of memory. */
static int unescape(const char *s, size_t n, char **out, size_t *outlen, char *err, size_t errlen) {
    char *d = malloc(n + 1);
    if (!d) return -2;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            d[o++] = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= n || hexdig((unsigned char)s[i + 1]) < 0 || hexdig((unsigned char)s[i + 2]) < 0) {
                char q[32];
                size_t k = n - i < 3 ? n - i : 3;
                go_quote(q, sizeof q, s + i, k);
                snprintf(err, errlen, "invalid URL escape %s", q);
                free(d);
                return -1;
            }
            d[o++] = (char)(hexdig((unsigned char)s[i + 1]) << 4 | hexdig((unsigned char)s[i + 2]));
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    d[o] = 0;
    *out = d;
    *outlen = o;
    return 0;
}

static int add_pair(tr_form *f, char *k, size_t kl, char *v, size_t vl) {
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        if (f->n >= TR_FORM_MAX_PAIRS) return -2;
        tr_form_kv *nk = realloc(f->kv, nc * sizeof *nk);
        if (!nk) return -2;
        f->kv = nk;
        f->cap = nc;
    }
    f->kv[f->n++] = (tr_form_kv){.key = k, .value = v, .klen = kl, .vlen = vl};
    return 0;
}

int tr_form_parse(tr_form *f, const char *s, size_t len, char *err, size_t errlen) {
    int rc = 0;
    const char *end = s + len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pe = amp ? amp : end;
        size_t n = (size_t)(pe - s);
        const char *pair = s;
        s = amp ? amp + 1 : end;
        if (memchr(pair, ';', n)) {
            /* Go overwrites its error here, so this text wins over an earlier escape error */
            snprintf(err, errlen, "invalid semicolon separator in query");
            rc = -1;
            continue;
        }
        if (!n) continue;
        const char *eq = memchr(pair, '=', n);
        size_t kn = eq ? (size_t)(eq - pair) : n;
        char *k = NULL, *v = NULL, e2[128];
        size_t kl, vl;
        int r = unescape(pair, kn, &k, &kl, e2, sizeof e2);
        if (r == 0) r = unescape(eq ? eq + 1 : "", eq ? n - kn - 1 : 0, &v, &vl, e2, sizeof e2);
        if (r == 0) r = add_pair(f, k, kl, v, vl);
        if (r == 0) continue;
        free(k);
        free(v);
        if (r == -2) {
            snprintf(err, errlen, f->n >= TR_FORM_MAX_PAIRS ? "too many parameters" : "out of memory");
            return -2;
        }
        if (rc == 0) {
            snprintf(err, errlen, "%s", e2);
            rc = -1;
        }
    }
    return rc;
}

const char *tr_form_get(const tr_form *f, const char *key) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->kv[i].key, key) == 0) return f->kv[i].value;
    return NULL;
}

const char *tr_form_get_nonempty(const tr_form *f, const char *key) {
    const char *v = tr_form_get(f, key);
    return v && *v ? v : NULL;
}

void tr_form_free(tr_form *f) {
    for (size_t i = 0; i < f->n; i++) {
        free(f->kv[i].key);
        free(f->kv[i].value);
    }
    free(f->kv);
    memset(f, 0, sizeof *f);
}

int tr_http_query_form(struct evhttp_request *req, tr_form *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    return q ? tr_form_parse(out, q, strlen(q), err, errlen) : 0;
}

/* Go's parsePostForm: the media type before any parameters, compared case-insensitively. */
static int is_form_type(const char *ct) {
    static const char want[] = "application/x-www-form-urlencoded";
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, sizeof want - 1) != 0) return 0;
    const char *p = ct + sizeof want - 1;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == 0 || *p == ';';
}

int tr_http_form(struct evhttp_request *req, tr_form *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    enum evhttp_cmd_type c = evhttp_request_get_command(req);
    int rc = 0;
    if ((c == EVHTTP_REQ_POST || c == EVHTTP_REQ_PUT || c == EVHTTP_REQ_PATCH) &&
        is_form_type(evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type"))) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        /* the body was already bounded by the server's body limit */
        const char *body = n ? (const char *)evbuffer_pullup(in, -1) : "";
        if (!body) {
            snprintf(err, errlen, "out of memory");
            return -2;
        }
        rc = tr_form_parse(out, body, n, err, errlen);
        if (rc == -2) return rc;
    }
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (q) {
        char e2[256];
        int r = tr_form_parse(out, q, strlen(q), e2, sizeof e2);
        if (r == -2) {
            snprintf(err, errlen, "%s", e2);
            return r;
        }
        if (r && !rc) {
            snprintf(err, errlen, "%s", e2);
            rc = r;
        }
    }
    return rc;
}
