/* Remote write out: the targets from --remote-write-url (one URL per line, all defaults) and
 * from --remote-write-config, a YAML file shaped like Prometheus's remote_write section. */
#include "rw_out.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/buf.h"
#include "util/clock.h"

static rw_target_config *grow(rw_target_config **v, size_t *n) {
    rw_target_config *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) return NULL;
    *v = nv;
    memset(&nv[*n], 0, sizeof nv[*n]);
    return &nv[(*n)++];
}

static char *read_small_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    return strdup(buf);
}

typedef struct ydoc {
    yaml_document_t d;
    const char *file;
    char *err;
    size_t errlen;
} ydoc;

static const char *scalar(ydoc *y, yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int fail(ydoc *y, yaml_node_t *n, const char *what) {
    snprintf(y->err, y->errlen, "%s:%zu: %s", y->file, n ? (size_t)n->start_mark.line + 1 : (size_t)0, what);
    return -1;
}

static int want_str(ydoc *y, yaml_node_t *n, char **out) {
    const char *s = scalar(y, n);
    if (!s) return fail(y, n, "expected a string");
    free(*out);
    *out = strdup(s);
    return *out ? 0 : fail(y, n, "out of memory");
}

static int want_int(ydoc *y, yaml_node_t *n, int64_t *out) {
    const char *s = scalar(y, n);
    char *e;
    long long v = s ? strtoll(s, &e, 10) : 0;
    if (!s || *e || v < 0) return fail(y, n, "expected a non-negative integer");
    *out = v;
    return 0;
}

static int want_dur(ydoc *y, yaml_node_t *n, int64_t *out) {
    const char *s = scalar(y, n);
    if (!s || tr_parse_model_duration(s, out) != 0) return fail(y, n, "expected a duration (500ms, 5s, 1m)");
    return 0;
}

/* appends a matcher to the selector string */
static int add_matcher(ydoc *y, yaml_node_t *at, rw_target_config *t, const char *label, const char *op,
                       const char *value) {
    tr_buf b;
    tr_buf_init(&b, 1 << 20);
    const char *cur = t->selector;
    if (cur && *cur) {
        size_t l = strlen(cur);
        if (cur[l - 1] != '}') {
            tr_buf_free(&b);
            return fail(y, at,
                        "series_selector must be of the form {label=\"value\", ...} to combine with "
                        "write_relabel_configs");
        }
        tr_buf_append(&b, cur, l - 1);
        if (l > 2 && cur[l - 2] != '{') tr_buf_putc(&b, ',');
    } else {
        tr_buf_putc(&b, '{');
    }
    tr_buf_printf(&b, "%s%s\"", label, op);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\') tr_buf_putc(&b, '\\');
        tr_buf_putc(&b, *p);
    }
    tr_buf_puts(&b, "\"}");

    free(t->selector);
    t->selector = strdup(b.data);
    tr_buf_free(&b);
    return t->selector ? 0 : fail(y, at, "out of memory");
}

static int relabel(ydoc *y, yaml_node_t *n, rw_target_config *t) {
    if (n->type != YAML_SEQUENCE_NODE) return fail(y, n, "write_relabel_configs: expected a list");
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *r = yaml_document_get_node(&y->d, *it);
        if (!r || r->type != YAML_MAPPING_NODE)
            return fail(y, r, "write_relabel_configs: expected a mapping");
        const char *action = "replace", *regex = "(.*)", *label = NULL;
        for (yaml_node_pair_t *p = r->data.mapping.pairs.start; p < r->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&y->d, p->key),
                        *v = yaml_document_get_node(&y->d, p->value);
            const char *key = scalar(y, k);
            if (!key) return fail(y, k, "expected a key");
            if (strcmp(key, "action") == 0 && scalar(y, v))
                action = scalar(y, v);
            else if (strcmp(key, "regex") == 0 && scalar(y, v))
                regex = scalar(y, v);
            else if (strcmp(key, "source_labels") == 0 && v->type == YAML_SEQUENCE_NODE &&
                     v->data.sequence.items.top - v->data.sequence.items.start == 1)
                label = scalar(y, yaml_document_get_node(&y->d, v->data.sequence.items.start[0]));
            else
                return fail(
                    y, k,
                    "write_relabel_configs: only action (keep/drop), regex and one source_labels entry "
                    "are supported");
        }
        if (!label) return fail(y, r, "write_relabel_configs: source_labels with one label is required");
        if (strcmp(action, "keep") == 0) {
            if (add_matcher(y, r, t, label, "=~", regex)) return -1;
        } else if (strcmp(action, "drop") == 0) {
            if (add_matcher(y, r, t, label, "!~", regex)) return -1;
        } else {
            return fail(y, r, "write_relabel_configs: only the keep and drop actions are supported");
        }
    }
    return 0;
}

/* Prometheus's tls_config: ca_file, cert_file, key_file, server_name, insecure_skip_verify
 * (min_version: TLS12 accepted, the floor anyway) */
static int tls_config(ydoc *y, yaml_node_t *n, rw_target_config *t) {
    if (n->type != YAML_MAPPING_NODE) return fail(y, n, "tls_config: expected a mapping");
    for (yaml_node_pair_t *h = n->data.mapping.pairs.start; h < n->data.mapping.pairs.top; h++) {
        yaml_node_t *k = yaml_document_get_node(&y->d, h->key), *v = yaml_document_get_node(&y->d, h->value);
        const char *key = scalar(y, k), *val = scalar(y, v);
        int rc;
        if (!key) return fail(y, k, "expected a key");
        if (strcmp(key, "ca_file") == 0)
            rc = want_str(y, v, &t->tls_ca_file);
        else if (strcmp(key, "cert_file") == 0)
            rc = want_str(y, v, &t->tls_cert_file);
        else if (strcmp(key, "key_file") == 0)
            rc = want_str(y, v, &t->tls_key_file);
        else if (strcmp(key, "server_name") == 0)
            rc = want_str(y, v, &t->tls_server_name);
        else if (strcmp(key, "insecure_skip_verify") == 0) {
            if (!val || (strcmp(val, "true") != 0 && strcmp(val, "false") != 0))
                return fail(y, v, "tls_config: insecure_skip_verify: expected true or false");
            t->tls_insecure = strcmp(val, "true") == 0;
            rc = 0;
        } else if (strcmp(key, "min_version") == 0 && val && strcmp(val, "TLS12") == 0)
            rc = 0; /* the floor anyway */
        else
            return fail(y, k,
                        "tls_config: ca_file, cert_file, key_file, server_name or insecure_skip_verify "
                        "(inline ca/cert/key are not supported)");
        if (rc) return -1;
    }
    if (!t->tls_cert_file != !t->tls_key_file)
        return fail(y, n, "tls_config: cert_file and key_file go together");
    return 0;
}

static int target(ydoc *y, yaml_node_t *n, rw_target_config *t) {
    if (n->type != YAML_MAPPING_NODE) return fail(y, n, "remote_write entry: expected a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&y->d, p->key), *v = yaml_document_get_node(&y->d, p->value);
        const char *key = scalar(y, k);
        if (!key) return fail(y, k, "expected a key");
        int rc = 0;
        if (strcmp(key, "url") == 0)
            rc = want_str(y, v, &t->url);
        else if (strcmp(key, "name") == 0)
            rc = want_str(y, v, &t->name);
        else if (strcmp(key, "series_selector") == 0) {
            char *s = NULL;
            rc = want_str(y, v, &s);
            if (!rc && t->selector) { /* relabel rules came first: fold them in */
                char *rules = t->selector;
                t->selector = s;
                size_t l = strlen(rules);
                /* "{a=~"x"}" -> re-add each by concatenating inside braces */
                if (l > 2 && strlen(s) > 1 && s[strlen(s) - 1] == '}') {
                    tr_buf b;
                    tr_buf_init(&b, 1 << 20);
                    tr_buf_append(&b, s, strlen(s) - 1);
                    if (s[strlen(s) - 2] != '{') tr_buf_putc(&b, ',');
                    tr_buf_append(&b, rules + 1, l - 1);

                    free(t->selector);
                    t->selector = strdup(b.data);
                    tr_buf_free(&b);
                } else {
                    rc = fail(y, v,
                              "series_selector must be of the form {label=\"value\", ...} to combine with "
                              "write_relabel_configs");
                }
                free(rules);
            } else if (!rc) {
                t->selector = s;
            }
        } else if (strcmp(key, "bearer_token") == 0)
            rc = want_str(y, v, &t->bearer_token);
        else if (strcmp(key, "bearer_token_file") == 0) {
            const char *f = scalar(y, v);
            if (!f) return fail(y, v, "expected a file name");
            free(t->bearer_token);
            if (!(t->bearer_token = read_small_file(f, y->err, y->errlen))) return -1;
        } else if (strcmp(key, "remote_timeout") == 0)
            rc = want_dur(y, v, &t->timeout_ms);
        else if (strcmp(key, "headers") == 0) {
            if (v->type != YAML_MAPPING_NODE) return fail(y, v, "headers: expected a mapping");
            for (yaml_node_pair_t *h = v->data.mapping.pairs.start; h < v->data.mapping.pairs.top; h++) {
                const char *hn = scalar(y, yaml_document_get_node(&y->d, h->key));
                const char *hv = scalar(y, yaml_document_get_node(&y->d, h->value));
                if (!hn || !hv) return fail(y, v, "headers: names and values are strings");
                rw_header *nh = realloc(t->headers, (t->nheaders + 1) * sizeof *nh);
                if (!nh) return fail(y, v, "out of memory");
                t->headers = nh;
                nh[t->nheaders].name = strdup(hn);
                nh[t->nheaders].value = strdup(hv);
                t->nheaders++;
            }
        } else if (strcmp(key, "basic_auth") == 0) {
            if (v->type != YAML_MAPPING_NODE) return fail(y, v, "basic_auth: expected a mapping");
            for (yaml_node_pair_t *h = v->data.mapping.pairs.start; h < v->data.mapping.pairs.top && !rc;
                 h++) {
                yaml_node_t *bk = yaml_document_get_node(&y->d, h->key),
                            *bv = yaml_document_get_node(&y->d, h->value);
                const char *bn = scalar(y, bk);
                if (bn && strcmp(bn, "username") == 0)
                    rc = want_str(y, bv, &t->basic_user);
                else if (bn && strcmp(bn, "password") == 0)
                    rc = want_str(y, bv, &t->basic_pass);
                else if (bn && strcmp(bn, "password_file") == 0 && scalar(y, bv)) {
                    free(t->basic_pass);
                    if (!(t->basic_pass = read_small_file(scalar(y, bv), y->err, y->errlen))) return -1;
                } else
                    rc = fail(y, bk, "basic_auth: username, password or password_file");
            }
        } else if (strcmp(key, "queue_config") == 0) {
            if (v->type != YAML_MAPPING_NODE) return fail(y, v, "queue_config: expected a mapping");
            for (yaml_node_pair_t *h = v->data.mapping.pairs.start; h < v->data.mapping.pairs.top && !rc;
                 h++) {
                yaml_node_t *qk = yaml_document_get_node(&y->d, h->key),
                            *qv = yaml_document_get_node(&y->d, h->value);
                const char *qn = scalar(y, qk);
                if (!qn) return fail(y, qk, "expected a key");
                if (strcmp(qn, "max_samples_per_send") == 0)
                    rc = want_int(y, qv, &t->max_samples_per_send);
                else if (strcmp(qn, "max_shards") == 0)
                    rc = want_int(y, qv, &t->max_shards);
                else if (strcmp(qn, "batch_send_deadline") == 0)
                    rc = want_dur(y, qv, &t->batch_send_deadline_ms);
                else if (strcmp(qn, "min_backoff") == 0)
                    rc = want_dur(y, qv, &t->min_backoff_ms);
                else if (strcmp(qn, "max_backoff") == 0)
                    rc = want_dur(y, qv, &t->max_backoff_ms);
                else if (strcmp(qn, "capacity") == 0 || strcmp(qn, "min_shards") == 0 ||
                         strcmp(qn, "retry_on_http_429") == 0) {
                    /* accepted for compatibility: the WAL is the queue, 429 is always retried */
                } else
                    rc = fail(y, qk, "queue_config: unknown key");
            }
        } else if (strcmp(key, "metadata_config") == 0) {
            if (v->type != YAML_MAPPING_NODE) return fail(y, v, "metadata_config: expected a mapping");
            for (yaml_node_pair_t *h = v->data.mapping.pairs.start; h < v->data.mapping.pairs.top && !rc;
                 h++) {
                yaml_node_t *mk = yaml_document_get_node(&y->d, h->key),
                            *mv = yaml_document_get_node(&y->d, h->value);
                const char *mn = scalar(y, mk), *ms = scalar(y, mv);
                if (mn && strcmp(mn, "send") == 0 && ms) {
                    if (strcmp(ms, "false") == 0) t->metadata_interval_ms = -1;
                } else if (mn && strcmp(mn, "send_interval") == 0) {
                    if (t->metadata_interval_ms >= 0) rc = want_dur(y, mv, &t->metadata_interval_ms);
                } else
                    rc = fail(y, mk, "metadata_config: send or send_interval");
            }
        } else if (strcmp(key, "write_relabel_configs") == 0)
            rc = relabel(y, v, t);
        else if (strcmp(key, "tls_config") == 0)
            rc = tls_config(y, v, t);
        else
            rc = fail(y, k, "unknown key in a remote_write entry");
        if (rc) return -1;
    }
    if (!t->url) return fail(y, n, "remote_write entry without url");
    return 0;
}

static int load_yaml(const char *file, rw_target_config **out, size_t *n, char *err, size_t errlen) {
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", file, strerror(errno));
        return -1;
    }
    yaml_parser_t p;
    ydoc y = {.file = file, .err = err, .errlen = errlen};
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    int rc = 0;
    if (!yaml_parser_load(&p, &y.d)) {
        snprintf(err, errlen, "%s:%zu: %s", file, (size_t)p.problem_mark.line + 1,
                 p.problem ? p.problem : "bad YAML");
        yaml_parser_delete(&p);
        fclose(f);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&y.d);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = fail(&y, root, "expected a mapping with a remote_write list");
        goto out;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top && !rc;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(&y.d, pr->key), *v = yaml_document_get_node(&y.d, pr->value);
        const char *key = scalar(&y, k);
        if (!key || strcmp(key, "remote_write") != 0) {
            rc = fail(&y, k, "only remote_write is read from this file");
            break;
        }
        if (v->type != YAML_SEQUENCE_NODE) {
            rc = fail(&y, v, "remote_write: expected a list");
            break;
        }
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top && !rc;
             it++) {
            rw_target_config *t = grow(out, n);
            if (!t) {
                rc = fail(&y, v, "out of memory");
                break;
            }
            rc = target(&y, yaml_document_get_node(&y.d, *it), t);
        }
    }
out:
    yaml_document_delete(&y.d);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

int rw_config_load(const char *urls, const char *yaml_file, rw_target_config **out, size_t *n, char *err,
                   size_t errlen) {
    for (const char *p = urls; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l) {
            rw_target_config *t = grow(out, n);
            if (!t || !(t->url = strndup(p, l))) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
        p += l + (e ? 1 : 0);
    }
    if (yaml_file && *yaml_file) return load_yaml(yaml_file, out, n, err, errlen);
    return 0;
}
