/* The Prometheus API layer's parameters: times and durations as Prometheus' parseTime and
 * parseDuration (Go's strconv.ParseFloat, time.Parse(RFC3339Nano), model.ParseDuration,
 * and Go's float → int conversions on amd64 for NaN and ±Inf), and the envelope. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/prom_api.h"

Test(prom_api, times_table) {
    static const struct {
        const char *in;
        int ok;
        int64_t ms;
    } c[] = {
        {"0", 1, 0},
        {"1e3", 1, 1000000},
        {"1E3", 1, 1000000},
        {"+1.5", 1, 1500},
        {".5", 1, 500},
        {"5.", 1, 5000},
        {"0x1p4", 1, 16000},
        {"0x_1p0", 1, 1000},
        {"1795563055.123", 1, 1795563055123LL},
        /* NaN and ±Inf parse as floats; Go's int64() of them is MinInt64 on amd64, and
         * time.Unix + timestamp.FromTime wrap it into this */
        {"NaN", 1, -9223372036855LL},
        {"nan", 1, -9223372036855LL},
        {"Inf", 1, -9223372036855LL},
        {"+Inf", 1, -9223372036855LL},
        {"-inf", 1, -9223372036855LL},
        {"infinity", 1, -9223372036855LL},
        {"2024-02-29T00:00:00Z", 1, 1709164800000LL},
        {"2023-01-01T00:00:00.5+01:00", 1, 1672527600500LL},
        {"2015-07-01T20:10:51.781123456Z", 1, 1435781451781LL},
        {"-292273086-05-16T16:47:06Z", 1, TR_PROM_MIN_TIME},
        {"292277025-08-18T07:12:54.999999999Z", 1, TR_PROM_MAX_TIME},
        {"2023-01-01T00:00:60Z", 0, 0}, /* no leap second */
        {"2023-02-30T00:00:00Z", 0, 0}, /* no 30 February */
        {"2023-02-29T00:00:00Z", 0, 0},
        {"2023-04-31T00:00:00Z", 0, 0},
        {"2023-01-01t00:00:00Z", 0, 0},
        {"2023-01-01T00:00:00z", 0, 0},
        {"2023-01-01T00:00:00", 0, 0},
        {"2023-1-01T00:00:00Z", 0, 0},
        {"2023-01-01T24:00:00Z", 0, 0},
        {"1_000", 0, 0}, /* underscores only after a base prefix */
        {"0x10", 0, 0},  /* a hex float needs its p exponent */
        {"1e400", 0, 0}, /* out of range */
        {"-NaN", 0, 0},
        {" 1", 0, 0},
        {"1 ", 0, 0},
        {"", 0, 0},
        {"abc", 0, 0},
        {"1s", 0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int64_t ms = 42;
        int rc = tr_prom_parse_time(c[i].in, &ms);
        cr_assert_eq(rc, c[i].ok ? 0 : -1, "%s", c[i].in);
        if (c[i].ok)
            cr_assert_eq(ms, c[i].ms, "%s: %lld != %lld", c[i].in, (long long)ms, (long long)c[i].ms);
    }
}

Test(prom_api, durations_table) {
    static const struct {
        const char *in;
        int ok;
        int64_t ns;
    } c[] = {
        {"0", 1, 0},
        {"5", 1, 5000000000LL},
        {"1.5", 1, 1500000000LL},
        {"1e-6", 1, 1000},
        {"5m", 1, 300000000000LL},
        {"1h30m", 1, 5400000000000LL},
        {"5ms", 1, 5000000},
        {"1m5ms", 1, 60005000000LL},
        {"2d", 1, 172800000000000LL},
        {"1w", 1, 604800000000000LL},
        {"1y", 1, 31536000000000000LL},
        {"30m1h", 0, 0}, /* units in order */
        {"1h1h", 0, 0},
        {"1.5h", 0, 0},
        {"1ns", 0, 0},
        {"1us", 0, 0},
        {"-5m", 0, 0},
        {"", 0, 0},
        {"abc", 0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int64_t ns = 42;
        char err[200];
        int rc = tr_prom_parse_duration(c[i].in, &ns, err, sizeof err);
        cr_assert_eq(rc, c[i].ok ? 0 : -1, "%s", c[i].in);
        if (c[i].ok) cr_assert_eq(ns, c[i].ns, "%s: %lld", c[i].in, (long long)ns);
    }
    char err[200];
    int64_t ns;
    cr_assert_eq(tr_prom_parse_duration("abc", &ns, err, sizeof err), -1);
    cr_assert_str_eq(err, "cannot parse \"abc\" to a valid duration");
    cr_assert_eq(tr_prom_parse_duration("1e20", &ns, err, sizeof err), -1);
    cr_assert_str_eq(err, "cannot parse \"1e20\" to a valid duration. It overflows int64");
}

Test(prom_api, params_and_errors) {
    tr_form f = {0};
    char err[600];
    const char *q = "start=abc&limit=x&end=&match[]={job=~\".*\"}";
    tr_form_parse(&f, q, strlen(q), err, sizeof err);
    int64_t t;
    cr_assert_eq(tr_prom_time_param(&f, "start", 0, &t, err, sizeof err), -1);
    cr_assert_str_eq(err, "invalid parameter \"start\": Invalid time value for 'start': cannot parse \"abc\" "
                          "to a valid timestamp");
    cr_assert_eq(tr_prom_time_param(&f, "end", 7, &t, err, sizeof err), 0);
    cr_assert_eq(t, 7);
    long l;
    cr_assert_eq(tr_prom_limit_param(&f, "limit", &l, err, sizeof err), -1);
    cr_assert_str_eq(err, "limit must be a number");
    tr_prom_matchsets ms;
    cr_assert_eq(tr_prom_match_params(&f, &ms, err, sizeof err), -1);
    cr_assert_str_eq(err,
                     "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher");
    tr_form_free(&f);
    cr_assert_str_eq(tr_prom_errtype_name(TR_PROM_EXECUTION), "execution");
    cr_assert_eq(tr_prom_errtype_status(TR_PROM_EXECUTION), 422);
    cr_assert_eq(tr_prom_errtype_status(TR_PROM_BAD_DATA), 400);
    cr_assert_eq(tr_prom_errtype_status(TR_PROM_TIMEOUT), 503);
    cr_assert_eq(tr_prom_errtype_status(TR_PROM_INTERNAL), 500);
    cr_assert_eq(tr_prom_errtype_status(TR_PROM_NOT_FOUND), 404);
}

Test(prom_api, envelope_with_capped_warnings_and_infos) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_prom_notes n = {0};
    for (int i = 0; i < 12; i++)
        tr_prom_warn(&n, "w");
    tr_prom_info(&n, "i");
    tr_prom_open_success(&j);
    tr_json_arr_open(&j);
    tr_json_arr_close(&j);
    tr_prom_close_success(&j, &n);
    cr_assert_str_eq(b.data, "{\"status\":\"success\",\"data\":[],\"warnings\":[\"w\",\"w\",\"w\",\"w\","
                             "\"w\",\"w\",\"w\",\"w\",\"w\",\"w\","
                             "\"2 more warning annotations omitted\"],\"infos\":[\"i\"]}");
    tr_prom_notes_free(&n);
    tr_buf_free(&b);
}

/* /federate's content negotiation: expfmt.Negotiate over goautoneg's ordering (q first, then
 * concrete types before wildcards, header order among equals). */
Test(prom_api, federate_accept_negotiation) {
    static const struct {
        const char *accept;
        int proto;
    } c[] = {
        {NULL, 0},
        {"", 0},
        {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", 1},
        {"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", 1},
        {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.2,"
         "text/plain;version=0.0.4;q=0.5",
         0},
        {"text/plain;version=0.0.4;q=0.5,application/"
         "vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=delimited;q=0.7",
         1},
        {"text/plain;version=0.0.4,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=delimited",
         0},
        {"text/plain;version=1.0.0,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=delimited",
         1},
        {"*/*,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", 1},
        {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", 0},
        {"application/vnd.google.protobuf;encoding=delimited", 0},
        {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q= 0.9,"
         "text/plain;q=0.1",
         0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        cr_expect_eq(tr_prom_wants_protobuf(c[i].accept), c[i].proto, "%s",
                     c[i].accept ? c[i].accept : "(none)");
}
