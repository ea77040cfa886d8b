/* The router: patterns with {name} segments, literal segments winning over variables, 405
 * with the allowed methods for a known path, 404 otherwise. */
#include <criterion/criterion.h>
#include <string.h>

#include <event2/event.h>

#include "http/http.h"

static void h(struct evhttp_request *req, const tr_http_match *m, void *ctx) {}

static tr_http *H;
static struct event_base *B;
static int a, b, c, d;

static void setup(void) {
    B = event_base_new();
    tr_http_config cfg = {0};
    H = tr_http_new(B, &cfg);
    tr_http_route(H, TR_GET, "/api/v1/label/{name}/values", 0, h, &a);
    tr_http_route(H, TR_GET | TR_POST, "/api/v1/series", 0, h, &b);
    tr_http_route(H, TR_GET, "/api/traces/{id}", 0, h, &c);
    tr_http_route(H, TR_GET, "/api/traces/search", 0, h, &d);
    tr_http_route(H, ((unsigned)EVHTTP_REQ_DELETE), "/api/v1/series", 0, h, &d);
}
static void teardown(void) {
    tr_http_free(H);
    event_base_free(B);
}
TestSuite(router, .init = setup, .fini = teardown);

static int resolve(unsigned method, const char *path, tr_http_match *m, void **ctx, unsigned *allow) {
    static char scratch[1024];
    return tr_http_resolve(H, method, path, m, scratch, sizeof scratch, ctx, allow);
}

Test(router, patterns_and_vars) {
    tr_http_match m;
    void *ctx;
    unsigned allow;
    cr_assert_eq(resolve(EVHTTP_REQ_GET, "/api/v1/label/job/values", &m, &ctx, &allow), 0);
    cr_assert_eq(ctx, &a);
    cr_assert_str_eq(tr_http_var(&m, "name"), "job");
    cr_assert_null(tr_http_var(&m, "nope"));
    /* segments are percent-decoded after splitting: an encoded slash stays in the value */
    cr_assert_eq(resolve(EVHTTP_REQ_GET, "/api/v1/label/U__a%2Fb/values", &m, &ctx, &allow), 0);
    cr_assert_str_eq(tr_http_var(&m, "name"), "U__a/b");
    cr_assert_str_eq(m.path, "/api/v1/label/U__a/b/values");
    cr_assert_eq(resolve(EVHTTP_REQ_GET, "/api/traces/abc123", &m, &ctx, &allow), 0);
    cr_assert_eq(ctx, &c);
    cr_assert_str_eq(tr_http_var(&m, "id"), "abc123");
    /* a literal segment wins over a variable */
    cr_assert_eq(resolve(EVHTTP_REQ_GET, "/api/traces/search", &m, &ctx, &allow), 0);
    cr_assert_eq(ctx, &d);
    /* HEAD is answered by GET routes */
    cr_assert_eq(resolve(EVHTTP_REQ_HEAD, "/api/traces/x", &m, &ctx, &allow), 0);
}

Test(router, not_found) {
    tr_http_match m;
    void *ctx;
    unsigned allow;
    const char *paths[] = {"/",
                           "/api/v1/label/job",
                           "/api/v1/label//values",
                           "/api/v1/label/job/values/x",
                           "/api/traces/",
                           "/api/v1/seriesx",
                           "/api/v1/label/%zz/values",
                           "nope"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        cr_assert_eq(resolve(EVHTTP_REQ_GET, paths[i], &m, &ctx, &allow), 404, "%s", paths[i]);
}

Test(router, method_not_allowed_lists_allow) {
    tr_http_match m;
    void *ctx;
    unsigned allow;
    cr_assert_eq(resolve(EVHTTP_REQ_POST, "/api/v1/label/job/values", &m, &ctx, &allow), 405);
    cr_assert_eq(allow, TR_GET);
    cr_assert_eq(resolve(EVHTTP_REQ_PUT, "/api/v1/series", &m, &ctx, &allow), 405);
    cr_assert_eq(allow, TR_GET | TR_POST | ((unsigned)EVHTTP_REQ_DELETE));
    /* two routes on one pattern: each method finds its own handler */
    cr_assert_eq(resolve(EVHTTP_REQ_DELETE, "/api/v1/series", &m, &ctx, &allow), 0);
    cr_assert_eq(ctx, &d);
    cr_assert_eq(resolve(EVHTTP_REQ_POST, "/api/v1/series", &m, &ctx, &allow), 0);
    cr_assert_eq(ctx, &b);
}

/* ---- a client that goes away sets the watched flag ---- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile int watched_flag;
static struct evhttp_request *held;

static void deferred(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    held = req; /* answered later, as a job's done would */
    tr_http_watch(req, &watched_flag);
}

Test(router, watch_sets_the_flag_when_the_client_goes_away) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    tr_http_route(H, TR_GET, "/slow", TR_HTTP_PUBLIC, deferred, NULL);
    cr_assert_eq(tr_http_listen(H, lfd, 0), 0);

    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    static const char rq[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(cfd, rq, sizeof rq - 1), (ssize_t)(sizeof rq - 1));
    for (int i = 0; i < 200 && !held; i++) {
        event_base_loop(B, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    cr_assert_not_null(held);
    cr_assert_eq(watched_flag, 0);
    cr_assert_eq(tr_http_inflight(H), 1);
    close(cfd);
    for (int i = 0; i < 500 && !watched_flag; i++) {
        event_base_loop(B, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    cr_assert_eq(watched_flag, 1, "the client's close reached the job's flag");
    /* the late reply goes to an orphaned request: libevent frees it, nothing is written */
    tr_http_reply_text(held, 200, "late");
    cr_assert_eq(tr_http_inflight(H), 0);
}
