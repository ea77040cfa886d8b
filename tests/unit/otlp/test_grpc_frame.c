/* Unit tests of the gRPC transport's pure helpers: the length-prefixed message reader fed in
 * every possible chunking, method routing, content-type and grpc-encoding checks, and the
 * percent-encoding of grpc-message. */
#include <criterion/criterion.h>
#include <string.h>

#include "otlp/grpc_frame.h"

/* What the reader reported, in order, as a small transcript. */
typedef struct rec {
    char log[512];
    uint8_t body[256];
    size_t body_len;
    int stop_at_message; /* return this from message() when nonzero */
    uint32_t stop_if_longer;
} rec;

static void logf_(rec *r, const char *s) { strncat(r->log, s, sizeof r->log - strlen(r->log) - 1); }

static int on_message(void *ud, int compressed, uint32_t length) {
    rec *r = ud;
    char b[48];
    snprintf(b, sizeof b, "M%d:%u ", compressed, length);
    logf_(r, b);
    if (r->stop_if_longer && length > r->stop_if_longer) return 7;
    return 0;
}
static int on_body(void *ud, const uint8_t *p, size_t n) {
    rec *r = ud;
    cr_assert_leq(r->body_len + n, sizeof r->body);
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return 0;
}
static int on_complete(void *ud) {
    logf_(ud, "C ");
    return 0;
}
static const grpc_reader_ops ops = {on_message, on_body, on_complete};

static size_t msg(uint8_t *out, int flag, const char *payload) {
    size_t n = strlen(payload);
    out[0] = (uint8_t)flag;
    out[1] = (uint8_t)(n >> 24);
    out[2] = (uint8_t)(n >> 16);
    out[3] = (uint8_t)(n >> 8);
    out[4] = (uint8_t)n;
    memcpy(out + 5, payload, n);
    return 5 + n;
}

Test(grpc_reader, one_message_in_one_chunk) {
    uint8_t in[64];
    size_t n = msg(in, 0, "hello");
    grpc_reader rd;
    grpc_reader_init(&rd);
    rec r = {0};
    cr_assert_eq(grpc_reader_feed(&rd, in, n, &ops, &r), 0);
    cr_assert_str_eq(r.log, "M0:5 C ");
    cr_assert_eq(r.body_len, 5);
    cr_assert_eq(memcmp(r.body, "hello", 5), 0);
    cr_assert(grpc_reader_idle(&rd));
    cr_assert_eq(rd.messages, 1);
}

Test(grpc_reader, every_split_point_gives_the_same_result) {
    uint8_t in[128];
    size_t n = msg(in, 1, "abcdefgh");
    n += msg(in + n, 0, "");
    n += msg(in + n, 0, "xyz");
    for (size_t a = 0; a <= n; a++)
        for (size_t b = a; b <= n; b++) {
            grpc_reader rd;
            grpc_reader_init(&rd);
            rec r = {0};
            cr_assert_eq(grpc_reader_feed(&rd, in, a, &ops, &r), 0);
            cr_assert_eq(grpc_reader_feed(&rd, in + a, b - a, &ops, &r), 0);
            cr_assert_eq(grpc_reader_feed(&rd, in + b, n - b, &ops, &r), 0);
            cr_assert_str_eq(r.log, "M1:8 C M0:0 C M0:3 C ", "split %zu/%zu: %s", a, b, r.log);
            cr_assert_eq(r.body_len, 11);
            cr_assert_eq(memcmp(r.body, "abcdefghxyz", 11), 0);
            cr_assert(grpc_reader_idle(&rd));
            cr_assert_eq(rd.messages, 3);
        }
}

Test(grpc_reader, partial_message_is_not_idle) {
    uint8_t in[64];
    size_t n = msg(in, 0, "0123456789");
    grpc_reader rd;
    grpc_reader_init(&rd);
    rec r = {0};
    cr_assert(grpc_reader_idle(&rd));
    cr_assert_eq(grpc_reader_feed(&rd, in, 3, &ops, &r), 0);
    cr_assert_not(grpc_reader_idle(&rd));
    cr_assert_eq(grpc_reader_partial(&rd), 3);
    cr_assert_str_eq(r.log, "", "no callback before the prefix is whole");
    cr_assert_eq(grpc_reader_feed(&rd, in + 3, 9, &ops, &r), 0);
    cr_assert_eq(grpc_reader_partial(&rd), 12);
    cr_assert_str_eq(r.log, "M0:10 ");
    cr_assert_eq(grpc_reader_feed(&rd, in + 12, n - 12, &ops, &r), 0);
    cr_assert(grpc_reader_idle(&rd));
}

Test(grpc_reader, bad_flag_is_reported) {
    uint8_t in[16] = {2, 0, 0, 0, 1, 'x'};
    grpc_reader rd;
    grpc_reader_init(&rd);
    rec r = {0};
    cr_assert_eq(grpc_reader_feed(&rd, in, 6, &ops, &r), GRPC_READER_BAD_FLAG);
    cr_assert_str_eq(r.log, "");
}

Test(grpc_reader, callback_stop_is_returned_and_body_is_not_read) {
    /* a huge declared length: the caller refuses it at the prefix, before any body byte */
    uint8_t in[16] = {0, 0x7f, 0xff, 0xff, 0xff, 'a', 'b'};
    grpc_reader rd;
    grpc_reader_init(&rd);
    rec r = {.stop_if_longer = 100};
    cr_assert_eq(grpc_reader_feed(&rd, in, 7, &ops, &r), 7);
    cr_assert_str_eq(r.log, "M0:2147483647 ");
    cr_assert_eq(r.body_len, 0);
}

Test(grpc_route, export_methods_only) {
    otlp_signal sig = (otlp_signal)-1;
    const char *m = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const char *t = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const char *l = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    cr_assert(grpc_route(m, strlen(m), &sig));
    cr_assert_eq(sig, OTLP_METRICS);
    cr_assert(grpc_route(t, strlen(t), &sig));
    cr_assert_eq(sig, OTLP_TRACES);
    cr_assert(grpc_route(l, strlen(l), &sig));
    cr_assert_eq(sig, OTLP_LOGS);
    cr_assert_not(grpc_route(t, strlen(t) - 1, &sig), "a prefix of a method is not the method");
    cr_assert_not(grpc_route("/opentelemetry.proto.collector.trace.v1.TraceService/ExportX", 60, &sig));
    cr_assert_not(grpc_route("", 0, &sig));
}

Test(grpc_headers, content_type) {
#define CT(s) grpc_content_type_ok(s, strlen(s))
    cr_assert(CT("application/grpc"));
    cr_assert(CT("application/grpc+proto"));
    cr_assert(CT("application/grpc;charset=utf-8"));
    cr_assert(CT("Application/GRPC"));
    cr_assert_not(CT("application/grpcx"));
    cr_assert_not(CT("application/grpc-web"), "gRPC-Web is a different protocol");
    cr_assert_not(CT("application/json"));
    cr_assert_not(CT(""));
#undef CT
}

Test(grpc_headers, encoding) {
    cr_assert_eq(grpc_parse_encoding("", 0), GRPC_ENC_IDENTITY);
    cr_assert_eq(grpc_parse_encoding("identity", 8), GRPC_ENC_IDENTITY);
    cr_assert_eq(grpc_parse_encoding("gzip", 4), GRPC_ENC_GZIP);
    cr_assert_eq(grpc_parse_encoding("GZIP", 4), GRPC_ENC_GZIP);
    cr_assert_eq(grpc_parse_encoding("deflate", 7), GRPC_ENC_UNSUPPORTED);
    cr_assert_eq(grpc_parse_encoding("gzipx", 5), GRPC_ENC_UNSUPPORTED);
}

Test(grpc_headers, percent_encoding) {
    char out[64];
    cr_assert_eq(grpc_percent_encode("plain text: ok", out, sizeof out), 14);
    cr_assert_str_eq(out, "plain text: ok");
    grpc_percent_encode("100% \"x\"\n\tz", out, sizeof out);
    cr_assert_str_eq(out, "100%25 \"x\"%0A%09z");
    grpc_percent_encode("caf\xc3\xa9", out, sizeof out);
    cr_assert_str_eq(out, "caf%C3%A9");
    /* truncation never splits an escape */
    char small[6];
    cr_assert_eq(grpc_percent_encode("ab\ncd", small, sizeof small), 5);
    cr_assert_str_eq(small, "ab%0A");
    cr_assert_eq(grpc_percent_encode("abcd\n", small, sizeof small), 4);
    cr_assert_str_eq(small, "abcd");
}
