/* The text exposition parser behind POST /api/v1/import/prometheus (the remote write decoder
 * is tested in test_remote_write.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/promwire.h"

static tr_arena *A;
static void setup(void) { A = tr_arena_new(0); }
static void teardown(void) { tr_arena_free(A); }

TestSuite(prom_text, .init = setup, .fini = teardown);

static tr_text_result parse(const char *s) {
    tr_text_result r;
    cr_assert_eq(tr_prom_text_parse(s, strlen(s), A, &r), 0);
    return r;
}

static const char *label(const tr_text_sample *s, const char *name) {
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->labels[i].name, name) == 0) return s->labels[i].value;
    return NULL;
}

Test(prom_text, samples_labels_timestamps) {
    tr_text_result r = parse("# HELP http_requests_total The total number of HTTP requests.\n"
                             "# TYPE http_requests_total counter\n"
                             "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
                             "http_requests_total{method=\"post\",code=\"400\",}    3 1395066363000\r\n"
                             "\n"
                             "  # a comment\n"
                             "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot "
                             "find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n"
                             "metric_without_timestamp_and_labels 12.47\n"
                             "something_weird{problem=\"division by zero\"} +Inf -3982045\n"
                             "nan_value NaN\n"
                             "neg_inf -Inf\n"
                             "x:y:z{} 0x10\n"
                             "with_exemplar_total 5 # {trace_id=\"abc\"} 1.0 1600000000.000\n");
    cr_assert_eq(r.bad_lines, 0, "%s", r.err);
    cr_assert_eq(r.n_samples, 9);
    const tr_text_sample *s = r.samples;
    cr_assert_str_eq(s[0].labels[0].name, "__name__");
    cr_assert_str_eq(s[0].labels[0].value, "http_requests_total");
    cr_assert_str_eq(label(&s[0], "method"), "post");
    cr_assert_str_eq(label(&s[0], "code"), "200");
    cr_assert_eq(s[0].value, 1027);
    cr_assert(s[0].has_t);
    cr_assert_eq(s[0].t_ms, 1395066363000LL);
    cr_assert_str_eq(label(&s[1], "code"), "400", "a trailing comma and CRLF are fine");
    cr_assert_eq(s[1].value, 3);
    cr_assert_str_eq(label(&s[2], "path"), "C:\\DIR\\FILE.TXT");
    cr_assert_str_eq(label(&s[2], "error"), "Cannot find file:\n\"FILE.TXT\"");
    cr_assert_eq(s[2].value, 1.458255915e9);
    cr_assert(!s[2].has_t);
    cr_assert_eq(s[3].n_labels, 1);
    cr_assert_eq(s[3].value, 12.47);
    cr_assert(isinf(s[4].value) && s[4].value > 0);
    cr_assert_eq(s[4].t_ms, -3982045);
    cr_assert(isnan(s[5].value));
    cr_assert(isinf(s[6].value) && s[6].value < 0);
    cr_assert_str_eq(s[7].labels[0].value, "x:y:z");
    cr_assert_eq(s[7].value, 16);
    cr_assert_str_eq(s[8].labels[0].value, "with_exemplar_total");
    cr_assert_eq(s[8].value, 5);
    cr_assert(!s[8].has_t, "the exemplar's timestamp is not the sample's");
    cr_assert_eq(r.n_meta, 1);
    cr_assert_str_eq(r.meta[0].family, "http_requests_total");
    cr_assert_str_eq(r.meta[0].type, "counter");
    cr_assert_str_eq(r.meta[0].help, "The total number of HTTP requests.");
}

Test(prom_text, metadata) {
    tr_text_result r =
        parse("# TYPE a gauge\n# HELP b line\\nnext \\\\ done\n# HELP a A\n# TYPE b untyped\n# EOF\n");
    cr_assert_eq(r.bad_lines, 0, "%s", r.err);
    cr_assert_eq(r.n_meta, 2);
    cr_assert_str_eq(r.meta[0].family, "a");
    cr_assert_str_eq(r.meta[0].type, "gauge");
    cr_assert_str_eq(r.meta[0].help, "A");
    cr_assert_str_eq(r.meta[1].type, "unknown");
    cr_assert_str_eq(r.meta[1].help, "line\nnext \\ done");
}

Test(prom_text, name_as_a_label) {
    tr_text_result r = parse("{__name__=\"up\",job=\"x\"} 1\n");
    cr_assert_eq(r.bad_lines, 0, "%s", r.err);
    cr_assert_eq(r.n_samples, 1);
    cr_assert_str_eq(r.samples[0].labels[0].value, "up");
    cr_assert_str_eq(label(&r.samples[0], "job"), "x");
}

Test(prom_text, bad_lines_are_skipped_and_reported) {
    static const char *bad[] = {
        "no_value\n",
        "v{a=\"1\" 1\n",
        "v{a=1} 1\n",
        "v{a=\"1\",a=\"2\"} 1\n",
        "v{a=\"x\\q\"} 1\n",
        "v 1 2 3\n",
        "v abc\n",
        "v 1 1.5\n",
        "1abc 1\n",
        "v{a=\"\xff\"} 1\n",
        "{} 1\n",
        "v{a=\"open 1\n",
        "# TYPE v bogus\n",
        "# TYPE 9v counter\n",
        "v{=\"a\"} 1\n",
        "v 1e999\n",
        "v nan(0x1)\n",
        "v{a=\"1\"\n",
        "v{a=\"x\\",
        "v1\n",
        "{__name__=\"*\"} 1\n",
        "{__name__=\"9a\",b=\"c\"} 1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[256];
        snprintf(in, sizeof in, "ok 1\n%s", bad[i]);
        tr_text_result r = parse(in);
        cr_expect_eq(r.bad_lines, 1, "bad line %zu: %s", i, bad[i]);
        cr_expect_eq(r.n_samples, 1, "line %zu: the good line stays", i);
        cr_expect(strncmp(r.err, "line 2: ", 8) == 0, "line %zu: %s", i, r.err);
    }
    tr_text_result r = parse("a 1\nb\nc 3\nd{x} 4\n");
    cr_assert_eq(r.n_samples, 2);
    cr_assert_eq(r.bad_lines, 2);
    cr_assert(strstr(r.err, "line 2") && strstr(r.err, ": b"), "%s", r.err);
}

Test(prom_text, empty_and_blank) {
    tr_text_result r = parse("");
    cr_assert_eq(r.n_samples, 0);
    r = parse("\n\n   \n\t\n");
    cr_assert_eq(r.n_samples, 0);
    cr_assert_eq(r.bad_lines, 0);
    /* no final newline */
    r = parse("a 1");
    cr_assert_eq(r.n_samples, 1);
    /* NUL bytes are not sample text */
    char nul[] = "a 1\nb\0 2\n";
    cr_assert_eq(tr_prom_text_parse(nul, sizeof nul - 1, A, &r), 0);
    cr_assert_eq(r.n_samples, 1);
    cr_assert_eq(r.bad_lines, 1);
}
