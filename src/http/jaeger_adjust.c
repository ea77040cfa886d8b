/* The query-time adjusters Jaeger v2 runs on a trace before answering (all skipped with
 * raw=true): clock-skew correction between hosts (with its warnings), telemetry.sdk.* and
 * telemetry.distro.* span attributes moved to the resource, and the per-span warnings they
 * produce. The stored spans stay untouched: the adjustments are computed here and applied
 * while rendering (jaeger.c). Sorting, IP normalisation and empty-link removal are applied by
 * the renderer directly. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jaeger.h"

const char *const tr_jaeger_sdk_keys[TR_JAEGER_NSDK] = {"telemetry.sdk.language", "telemetry.sdk.name",
                                                        "telemetry.sdk.version", "telemetry.distro.name",
                                                        "telemetry.distro.version"};

/* Go's time.Duration.String(): 35ms, -45ms, 1.5µs, 4.32317975s, 1m30s, 1h0m0s, 0s. */
void tr_go_duration(int64_t d, char *out, size_t n) {
    if (d == 0) {
        snprintf(out, n, "0s");
        return;
    }
    const char *sign = d < 0 ? "-" : "";
    uint64_t u = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
    char frac[16] = "";
    if (u < 1000000000ULL) {
        uint64_t scale = u < 1000 ? 1 : u < 1000000 ? 1000 : 1000000;
        int prec = scale == 1 ? 0 : scale == 1000 ? 3 : 6;
        const char *unit = scale == 1 ? "ns" : scale == 1000 ? "µs" : "ms";
        if (prec) {
            snprintf(frac, sizeof frac, ".%0*llu", prec, (unsigned long long)(u % scale));
            size_t l = strlen(frac);
            while (l > 1 && frac[l - 1] == '0')
                frac[--l] = 0;
            if (l == 1) frac[0] = 0;
        }
        snprintf(out, n, "%s%llu%s%s", sign, (unsigned long long)(u / scale), frac, unit);
        return;
    }
    uint64_t secs = u / 1000000000ULL, ns = u % 1000000000ULL;
    if (ns) {
        snprintf(frac, sizeof frac, ".%09llu", (unsigned long long)ns);
        size_t l = strlen(frac);
        while (l > 1 && frac[l - 1] == '0')
            frac[--l] = 0;
    }
    uint64_t h = secs / 3600, m = secs / 60 % 60, s = secs % 60;
    if (h)
        snprintf(out, n, "%s%lluh%llum%llu%ss", sign, (unsigned long long)h, (unsigned long long)m,
                 (unsigned long long)s, frac);
    else if (m)
        snprintf(out, n, "%s%llum%llu%ss", sign, (unsigned long long)m, (unsigned long long)s, frac);
    else
        snprintf(out, n, "%s%llu%ss", sign, (unsigned long long)s, frac);
}

static int warn(tr_jaeger_span_adj *a, const char *fmt, ...) {
    char b[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    char **nw = realloc(a->warn, (a->nwarn + 1) * sizeof *nw);
    if (!nw) return -1;
    a->warn = nw;
    if (!(a->warn[a->nwarn] = strdup(b))) return -1;
    a->nwarn++;
    return 0;
}

static uint64_t id8(const ProtobufCBinaryData *d) {
    uint64_t v = 0;
    if (d->len != 8) return 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | d->data[i];
    return v;
}

/* The host a span ran on, as Jaeger's clock-skew adjuster tells hosts apart: the resource's
 * host.id, else host.ip (a string, or the first string of a list), else host.name; "" when
 * none (spans without a host are never adjusted against each other). */
static const char *host_key(const traces_pb_resource *res) {
    static const char *const keys[] = {"host.id", "host.ip", "host.name"};
    if (!res) return "";
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < res->n_attributes; i++) {
            const Opentelemetry__Proto__Common__V1__KeyValue *kv = res->attributes[i];
            if (!kv || !kv->key || strcmp(kv->key, keys[k]) || !kv->value) continue;
            const traces_pb_value *v = kv->value;
            if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                v->string_value)
                return v->string_value;
            if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE &&
                v->array_value && v->array_value->n_values && v->array_value->values[0] &&
                v->array_value->values[0]->value_case ==
                    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE &&
                v->array_value->values[0]->string_value)
                return v->array_value->values[0]->string_value;
            return "";
        }
    return "";
}

typedef struct idx_ent {
    uint64_t id;
    size_t i;
} idx_ent;

static int idx_cmp(const void *a, const void *b) {
    const idx_ent *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static long find_span(const idx_ent *ix, size_t n, uint64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ix[lo].id == id ? (long)ix[lo].i : -1;
}

/* How far the child must move to sit inside its parent (Jaeger's rule): a child longer than
 * its parent only when it starts first (to the parent's start); one that fits is left alone;
 * otherwise centred in the parent. */
static int64_t skew_of(int64_t cs, int64_t ce, int64_t ps, int64_t pe) {
    int64_t cd = ce - cs, pd = pe - ps;
    if (cd > pd) return cs < ps ? ps - cs : 0;
    if (cs >= ps && ce <= pe) return 0;
    return ps + (pd - cd) / 2 - cs;
}

typedef struct walk {
    size_t node;
    const char *host; /* the host the skew was computed for */
    int64_t delta;
} walk;

static int clock_skew(const traces_trace *t, int64_t max_ns, tr_jaeger_adj *a) {
    size_t n = t->n;
    idx_ent *ix = malloc((n ? n : 1) * sizeof *ix);
    long *parent = malloc((n ? n : 1) * sizeof *parent);
    size_t *kids = malloc((n ? n : 1) * sizeof *kids), *kid_off = calloc(n + 1, sizeof *kid_off);
    int64_t *st = malloc((n ? n : 1) * sizeof *st), *en = malloc((n ? n : 1) * sizeof *en);
    unsigned char *dup = calloc(n ? n : 1, 1);
    walk *stack = malloc((n ? n : 1) * sizeof *stack);
    int rc = -1;
    if (!ix || !parent || !kids || !kid_off || !st || !en || !dup || !stack) goto out;
    size_t nix = 0;
    for (size_t i = 0; i < n; i++) {
        const traces_pb_span *sp = t->spans[i].span;
        st[i] = (int64_t)sp->start_time_unix_nano;
        en[i] = (int64_t)(sp->end_time_unix_nano > sp->start_time_unix_nano ? sp->end_time_unix_nano
                                                                            : sp->start_time_unix_nano);
        ix[nix++] = (idx_ent){id8(&sp->span_id), i};
    }
    qsort(ix, nix, sizeof *ix, idx_cmp);
    /* a span id seen twice: the later ones are left out of the tree, with a warning */
    size_t w = 0;
    for (size_t k = 0; k < nix; k++) {
        if (w && ix[w - 1].id == ix[k].id) {
            dup[ix[k].i] = 1;
            if (warn(&a->sp[ix[k].i], "duplicate span IDs; skipping clock skew adjustment")) goto out;
            continue;
        }
        ix[w++] = ix[k];
    }
    nix = w;
    for (size_t i = 0; i < n; i++) {
        parent[i] = -1;
        if (dup[i]) continue;
        uint64_t p = id8(&t->spans[i].span->parent_span_id);
        if (!p) continue;
        parent[i] = find_span(ix, nix, p);
        if (parent[i] < 0 &&
            warn(&a->sp[i], "parent span ID=%016llx is not in the trace; skipping clock skew adjustment",
                 (unsigned long long)p))
            goto out;
        if (parent[i] >= 0) kid_off[parent[i] + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        kid_off[i + 1] += kid_off[i];
    {
        size_t *fill = calloc(n ? n : 1, sizeof *fill);
        if (!fill) goto out;
        for (size_t i = 0; i < n; i++)
            if (parent[i] >= 0) kids[kid_off[parent[i]] + fill[parent[i]]++] = i;
        free(fill);
    }
    /* depth first from every root (iterative: traces may be deep), the skew passed down by
     * value so that siblings on other hosts do not leak theirs */
    for (size_t r = 0; r < n; r++) {
        if (dup[r] || parent[r] >= 0) continue;
        size_t sp = 0;
        stack[sp++] = (walk){r, host_key(t->spans[r].resource), 0};
        while (sp) {
            walk cur = stack[--sp];
            size_t i = cur.node;
            const char *h = host_key(t->spans[i].resource);
            if (parent[i] >= 0 && strcmp(h, cur.host) != 0) {
                size_t p = (size_t)parent[i];
                cur.host = h;
                cur.delta = skew_of(st[i], en[i], st[p], en[p]);
            }
            if (cur.delta) {
                char d[48], m[48];
                int64_t ad = cur.delta < 0 ? -cur.delta : cur.delta;
                tr_go_duration(cur.delta, d, sizeof d);
                if (ad > max_ns) {
                    tr_go_duration(max_ns, m, sizeof m);
                    if (max_ns == 0
                            ? warn(&a->sp[i],
                                   "clock skew adjustment disabled; not applying calculated delta of %s", d)
                            : warn(&a->sp[i],
                                   "max clock skew adjustment delta of %s exceeded; not applying calculated "
                                   "delta of %s",
                                   m, d))
                        goto out;
                } else {
                    st[i] += cur.delta;
                    en[i] += cur.delta;
                    a->sp[i].delta_ns = cur.delta;
                    if (warn(&a->sp[i], "This span's timestamps were adjusted by %s", d)) goto out;
                }
            }
            for (size_t k = kid_off[i]; k < kid_off[i + 1]; k++)
                stack[sp++] = (walk){kids[k], cur.host, cur.delta};
        }
    }
    rc = 0;
out:
    free(ix);
    free(parent);
    free(kids);
    free(kid_off);
    free(st);
    free(en);
    free(dup);
    free(stack);
    return rc;
}

/* Whether a resource (with what earlier spans moved into it) holds key k, and its value's
 * string form. */
static const Opentelemetry__Proto__Common__V1__KeyValue *
res_get(const tr_jaeger_res_extra *rx, const traces_pb_resource *res, const char *k) {
    for (size_t i = 0; res && i < res->n_attributes; i++)
        if (res->attributes[i] && res->attributes[i]->key && !strcmp(res->attributes[i]->key, k))
            return res->attributes[i];
    for (size_t i = 0; rx && i < rx->n; i++)
        if (!strcmp(rx->kv[i]->key, k)) return rx->kv[i];
    return NULL;
}

static int same_value(const traces_pb_value *a, const traces_pb_value *b) {
    char x[512], y[512];
    size_t lx = traces_value_string(a, x, sizeof x), ly = traces_value_string(b, y, sizeof y);
    return lx == ly && lx < sizeof x && !strcmp(x, y);
}

static int sdk_move(const traces_trace *t, tr_jaeger_adj *a) {
    for (size_t i = 0; i < t->n; i++) {
        const traces_pb_span *sp = t->spans[i].span;
        const traces_pb_resource *res = t->spans[i].resource;
        for (size_t k = 0; k < sp->n_attributes; k++) {
            const Opentelemetry__Proto__Common__V1__KeyValue *kv = sp->attributes[k];
            if (!kv || !kv->key) continue;
            int s = -1;
            for (int q = 0; q < TR_JAEGER_NSDK && s < 0; q++)
                if (!strcmp(kv->key, tr_jaeger_sdk_keys[q])) s = q;
            if (s < 0) continue;
            tr_jaeger_res_extra *rx = NULL;
            for (size_t r = 0; r < a->nrx && !rx; r++)
                if (a->rx[r].res == res) rx = &a->rx[r];
            const Opentelemetry__Proto__Common__V1__KeyValue *have = res_get(rx, res, kv->key);
            if (have) {
                if (same_value(have->value, kv->value))
                    a->sp[i].sdk_moved |= 1u << s;
                else if (warn(&a->sp[i], "conflicting values between Span and Resource for attribute %s",
                              kv->key))
                    return -1;
                continue;
            }
            if (!rx) {
                tr_jaeger_res_extra *n = realloc(a->rx, (a->nrx + 1) * sizeof *n);
                if (!n) return -1;
                a->rx = n;
                rx = &a->rx[a->nrx++];
                memset(rx, 0, sizeof *rx);
                rx->res = res;
            }
            if (rx->n < TR_JAEGER_NSDK) rx->kv[rx->n++] = kv;
            a->sp[i].sdk_moved |= 1u << s;
        }
    }
    return 0;
}

int tr_jaeger_adjust(const traces_trace *t, int64_t max_skew_ns, tr_jaeger_adj *a) {
    memset(a, 0, sizeof *a);
    a->n = t->n;
    a->sp = calloc(t->n ? t->n : 1, sizeof *a->sp);
    if (!a->sp || clock_skew(t, max_skew_ns < 0 ? 0 : max_skew_ns, a) || sdk_move(t, a)) {
        tr_jaeger_adj_free(a);
        return -1;
    }
    return 0;
}

void tr_jaeger_adj_free(tr_jaeger_adj *a) {
    for (size_t i = 0; a->sp && i < a->n; i++) {
        for (size_t k = 0; k < a->sp[i].nwarn; k++)
            free(a->sp[i].warn[k]);
        free(a->sp[i].warn);
    }
    free(a->sp);
    free(a->rx);
    memset(a, 0, sizeof *a);
}

const tr_jaeger_res_extra *tr_jaeger_adj_extra(const tr_jaeger_adj *a, const traces_pb_resource *res) {
    for (size_t r = 0; a && r < a->nrx; r++)
        if (a->rx[r].res == res) return &a->rx[r];
    return NULL;
}
