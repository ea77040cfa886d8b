#define _GNU_SOURCE
/* Trace load generator for the trace-store benchmark: builds Scotty-shaped traces (a server
 * root span with HTTP attributes, 2–8 internal children, some events, a few errors) as
 * OTLP protobuf and POSTs them to an OTLP/HTTP endpoint until the asked number of spans has
 * been acknowledged. Prints one trace id per line to a file so searches can ask for them.
 *
 * usage: loadgen HOST PORT SPANS SPANS_PER_REQUEST SPREAD_SECONDS IDS_FILE */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "otlp_collector.pb-c.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue KV;
typedef Opentelemetry__Proto__Common__V1__AnyValue AV;
typedef Opentelemetry__Proto__Trace__V1__Span Span;

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* a bump allocator, reset per request */
static char *pool;
static size_t pool_used, pool_cap = 64u << 20;
static void *al(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (pool_used + n > pool_cap) { fprintf(stderr, "pool exhausted\n"); exit(1); }
    void *p = pool + pool_used;
    pool_used += n;
    memset(p, 0, n);
    return p;
}
static char *sdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = al(n);
    memcpy(d, s, n);
    return d;
}

static KV *kv_s(const char *k, const char *v) {
    KV *kv = al(sizeof *kv);
    opentelemetry__proto__common__v1__key_value__init(kv);
    AV *av = al(sizeof *av);
    opentelemetry__proto__common__v1__any_value__init(av);
    av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    av->string_value = sdup(v);
    kv->key = sdup(k);
    kv->value = av;
    return kv;
}
static KV *kv_i(const char *k, int64_t v) {
    KV *kv = kv_s(k, "");
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    kv->value->int_value = v;
    return kv;
}

static const char *routes[][2] = {
    {"GET", "/api/v1/authenticated/apps/info/{app_id}"}, {"GET", "/api/v1/authenticated/apps/list"},
    {"POST", "/api/v1/authenticated/apps/create"}, {"GET", "/api/v1/health"},
    {"POST", "/api/v1/authenticated/apps/{app_id}/run"}, {"POST", "/api/v1/authenticated/apps/{app_id}/stop"},
    {"GET", "/api/v1/authenticated/tasks/{task_id}"}, {"GET", "/ws"}, {"POST", "/api/v1/authenticated/apps/{app_id}/rebuild"},
    {"GET", "/api/v1/info"}, {"DELETE", "/api/v1/authenticated/apps/{app_id}/purge"}, {"GET", "/metrics"}};
static const char *funcs[] = {"transition", "find_apps", "inspect_app", "inspect_docker_compose", "inspect_docker_container",
                              "get_running_services", "get_app_settings", "run_app", "run_app_prepare", "stop_app",
                              "rebuild_app", "check_app_ttl", "schedule_app_check", "get_apps", "update_app",
                              "run_docker_compose_now", "handle_websocket_message"};
static const char *services[] = {"scotty", "scotty-api", "scotty-runner", "scotty-proxy"};
static const char *agents[] = {"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "scotty-cli/0.3.3", "curl/8.5.0",
                               "Mozilla/5.0 (Macintosh) Safari/605.1.15"};

static void ids(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rnd();
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
}

static Span *mkspan(const uint8_t *tid, const uint8_t *parent, const char *name, int kind, uint64_t st, uint64_t du) {
    Span *s = al(sizeof *s);
    opentelemetry__proto__trace__v1__span__init(s);
    s->trace_id.data = (uint8_t *)tid;
    s->trace_id.len = 16;
    s->span_id.data = al(8);
    s->span_id.len = 8;
    ids(s->span_id.data, 8);
    if (parent) { s->parent_span_id.data = (uint8_t *)parent; s->parent_span_id.len = 8; }
    s->name = sdup(name);
    s->kind = kind;
    s->start_time_unix_nano = st;
    s->end_time_unix_nano = st + du;
    return s;
}

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); exit(1); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void post(int fd, const char *host, int port, const uint8_t *body, size_t len) {
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr, "POST /v1/traces HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/x-protobuf\r\nContent-Length: %zu\r\n\r\n", host, port, len);
    if (write(fd, hdr, (size_t)h) != h) { perror("write"); exit(1); }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, body + off, len - off);
        if (w <= 0) { perror("write"); exit(1); }
        off += (size_t)w;
    }
    /* read the whole response: headers, then Content-Length bytes */
    char buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0) { fprintf(stderr, "connection closed\n"); exit(1); }
        got += (size_t)r;
        buf[got] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        char *cl = strcasestr(buf, "Content-Length:");
        size_t blen = cl ? strtoul(cl + 15, NULL, 10) : 0;
        if (got >= (size_t)(end + 4 - buf) + blen) break;
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) { fprintf(stderr, "export failed: %.200s\n", buf); exit(1); }
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: loadgen HOST PORT SPANS SPANS_PER_REQUEST SPREAD_SECONDS IDS_FILE\n"); return 2; }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    long total = atol(argv[3]), per = atol(argv[4]);
    uint64_t spread = strtoull(argv[5], NULL, 10) * 1000000000ULL;
    FILE *idf = fopen(argv[6], "w");
    if (!idf) { perror(argv[6]); return 1; }
    pool = malloc(pool_cap);
    int fd = connect_to(host, port);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
    long sent = 0, reqs = 0;
    uint8_t *packed = malloc(64u << 20);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (sent < total) {
        pool_used = 0;
        /* one request: one ResourceSpans per service, spans appended per trace */
        Opentelemetry__Proto__Collector__V1__ExportTraceServiceRequest req = OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
        size_t ns = sizeof services / sizeof services[0];
        req.n_resource_spans = ns;
        req.resource_spans = al(ns * sizeof *req.resource_spans);
        Opentelemetry__Proto__Trace__V1__ScopeSpans *sss[4];
        for (size_t i = 0; i < ns; i++) {
            Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = al(sizeof *rs);
            opentelemetry__proto__trace__v1__resource_spans__init(rs);
            Opentelemetry__Proto__Resource__V1__Resource *res = al(sizeof *res);
            opentelemetry__proto__resource__v1__resource__init(res);
            res->n_attributes = 6;
            res->attributes = al(6 * sizeof(KV *));
            res->attributes[0] = kv_s("service.name", services[i]);
            res->attributes[1] = kv_s("service.version", "0.3.3");
            res->attributes[2] = kv_s("telemetry.sdk.language", "rust");
            res->attributes[3] = kv_s("telemetry.sdk.name", "opentelemetry");
            res->attributes[4] = kv_s("telemetry.sdk.version", "0.31.0");
            char hn[32];
            snprintf(hn, sizeof hn, "node-%d", (int)i);
            res->attributes[5] = kv_s("host.name", hn);
            rs->resource = res;
            rs->n_scope_spans = 1;
            rs->scope_spans = al(sizeof *rs->scope_spans);
            sss[i] = al(sizeof *sss[i]);
            opentelemetry__proto__trace__v1__scope_spans__init(sss[i]);
            sss[i]->scope = al(sizeof *sss[i]->scope);
            opentelemetry__proto__common__v1__instrumentation_scope__init(sss[i]->scope);
            sss[i]->spans = al((size_t)(per + 16) * sizeof(Span *));
            rs->scope_spans[0] = sss[i];
            req.resource_spans[i] = rs;
        }
        long in_req = 0;
        while (in_req < per && sent + in_req < total) {
            size_t si = rnd() % ns;
            Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = sss[si];
            uint8_t *tid = al(16);
            ids(tid, 16);
            uint64_t st = now_ns - rnd() % spread;
            int nchild = 2 + (int)(rnd() % 7);
            uint64_t dur = 200000 + rnd() % 50000000; /* 0.2–50 ms */
            if (rnd() % 100 == 0) dur += 2000000000ULL; /* 1% slow: > 2 s */
            int r = (int)(rnd() % (sizeof routes / sizeof routes[0]));
            char name[160], app[32], path[160];
            snprintf(name, sizeof name, "%s %s", routes[r][0], routes[r][1]);
            snprintf(app, sizeof app, "app-%d", (int)(rnd() % 200));
            snprintf(path, sizeof path, "%s", routes[r][1]);
            char *brace = strchr(path, '{');
            if (brace) { char *cb = strchr(brace, '}'); char rest[160]; snprintf(rest, sizeof rest, "%s", cb + 1); snprintf(brace, sizeof path - (size_t)(brace - path), "%s%s", app, rest); }
            int status = rnd() % 20 == 0 ? 500 : rnd() % 10 == 0 ? 404 : 200;
            Span *root = mkspan(tid, NULL, name, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER, st, dur);
            root->n_attributes = 10;
            root->attributes = al(10 * sizeof(KV *));
            root->attributes[0] = kv_s("http.request.method", routes[r][0]);
            root->attributes[1] = kv_s("http.route", routes[r][1]);
            root->attributes[2] = kv_s("network.protocol.version", rnd() % 4 ? "1.1" : "2.0");
            root->attributes[3] = kv_s("server.address", "scotty.example.org");
            root->attributes[4] = kv_s("user_agent.original", agents[rnd() % 4]);
            root->attributes[5] = kv_s("url.path", path);
            root->attributes[6] = kv_s("url.scheme", "");
            root->attributes[7] = kv_i("http.response.status_code", status);
            root->attributes[8] = kv_s("span.type", "web");
            root->attributes[9] = kv_s("app.name", app);
            if (status == 500) {
                root->status = al(sizeof *root->status);
                opentelemetry__proto__trace__v1__status__init(root->status);
                root->status->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
                root->status->message = sdup("internal error");
            }
            ss->spans[ss->n_spans++] = root;
            uint64_t cst = st + 50000;
            for (int c = 0; c < nchild; c++) {
                const char *fn = funcs[rnd() % (sizeof funcs / sizeof funcs[0])];
                uint64_t cd = dur / (uint64_t)(nchild + 1);
                Span *ch = mkspan(tid, root->span_id.data, fn, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL, cst, cd);
                cst += cd;
                ch->n_attributes = 4;
                ch->attributes = al(4 * sizeof(KV *));
                ch->attributes[0] = kv_s("app_name", app);
                ch->attributes[1] = kv_s("code.namespace", "scotty::apps");
                ch->attributes[2] = kv_i("thread.id", (int64_t)(rnd() % 16));
                ch->attributes[3] = kv_s("busy_ns", "12345");
                if (rnd() % 5 == 0) {
                    ch->n_events = 1;
                    ch->events = al(sizeof *ch->events);
                    ch->events[0] = al(sizeof *ch->events[0]);
                    opentelemetry__proto__trace__v1__span__event__init(ch->events[0]);
                    ch->events[0]->name = sdup(rnd() % 2 ? "state changed" : "docker compose output");
                    ch->events[0]->time_unix_nano = cst - cd / 2;
                    ch->events[0]->n_attributes = 1;
                    ch->events[0]->attributes = al(sizeof(KV *));
                    ch->events[0]->attributes[0] = kv_s("level", "INFO");
                }
                ss->spans[ss->n_spans++] = ch;
            }
            in_req += 1 + nchild;
            static const char hx[] = "0123456789abcdef";
            char t[33];
            for (int i = 0; i < 16; i++) { t[2 * i] = hx[tid[i] >> 4]; t[2 * i + 1] = hx[tid[i] & 15]; }
            t[32] = 0;
            if (rnd() % 50 == 0) fprintf(idf, "%s\n", t);
        }
        size_t len = opentelemetry__proto__collector__v1__export_trace_service_request__pack(&req, packed);
        post(fd, host, port, packed, len);
        sent += in_req;
        reqs++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sent %ld spans in %ld requests in %.1f s (%.0f spans/s wall)\n", sent, reqs, secs, sent / secs);
    fclose(idf);
    close(fd);
    return 0;
}
