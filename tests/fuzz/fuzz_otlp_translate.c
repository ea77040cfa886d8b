/* libFuzzer target: OTLP metrics (binary protobuf, decoded as the receiver does) through the
 * Prometheus translation, twice through one translator so the delta state is exercised. Every
 * sample handed out must have sorted, distinct, non-empty, valid label names with a valid
 * __name__, and the counts of points and rejections must add up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/otlp_int.h"
#include "otlp/translate.h"

static int label_ok(const char *s, int metric) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (metric && *p == ':') ||
                 (p > s && *p >= '0' && *p <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static int on_sample(void *ctx, const otlp_sample *s, const char **why) {
    int has_name = 0;
    for (size_t i = 0; i < s->n_labels; i++) {
        if (i && strcmp(s->labels[i - 1].name, s->labels[i].name) >= 0) abort();
        if (!s->labels[i].value[0]) abort();
        if (!strcmp(s->labels[i].name, "__name__")) {
            has_name = 1;
            if (!label_ok(s->labels[i].value, 1)) abort();
        } else if (!label_ok(s->labels[i].name, 0)) {
            abort();
        }
    }
    if (!has_name) abort();
    for (size_t e = 0; e < s->n_exemplars; e++)
        for (size_t i = 0; i < s->exemplars[e].n_labels; i++)
            if (!label_ok(s->exemplars[e].labels[i].name, 0)) abort();
    (*(size_t *)ctx)++;
    /* refuse some, as a store would */
    if (s->t_ms & 1) {
        *why = "odd";
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tr_arena *a = tr_arena_new(size * 24 + 65536);
    otlp_export ex = {.signal = OTLP_METRICS};
    char err[200];
    if (otlp_decode_pb(OTLP_METRICS, data, size, a, &ex, err, sizeof err) == 0) {
        otlp_translate_opts o = {.promote_resource_attributes =
                                     size & 1 ? "all" : "service.version,host.name",
                                 .max_delta_series = 16};
        otlp_translator *t = otlp_translator_new(&o, err, sizeof err);
        if (!t) abort();
        for (int round = 0; round < 2; round++) {
            size_t n = 0;
            otlp_emit e = {.ctx = &n, .sample = on_sample};
            otlp_translate_stats st;
            if (otlp_translate(t, ex.metrics, &e, &st) != 0) abort();
            if (st.points != ex.items || st.rejected > st.points || st.samples != n || st.samples_refused > n)
                abort();
            if (st.rejected && !st.message[0]) abort();
        }
        if (otlp_translator_delta_series(t) > 16) abort();
        otlp_translator_free(t);
    }
    tr_arena_free(a);
    return 0;
}
