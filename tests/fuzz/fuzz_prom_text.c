/* libFuzzer target: the Prometheus text format parser of /api/v1/import/prometheus. Every
 * sample it returns must be well formed (a valid metric name, valid distinct label names,
 * UTF-8 values), and writing the samples back out as text must parse again to the same
 * samples with no bad line. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/promwire.h"
#include "util/buf.h"

static int metric_name_ok(const char *s) {
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == ':')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == ':'))
            return 0;
    return 1;
}
static int label_name_ok(const char *s) {
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static void escaped(tr_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            tr_buf_puts(b, "\\\\");
        else if (*s == '"')
            tr_buf_puts(b, "\\\"");
        else if (*s == '\n')
            tr_buf_puts(b, "\\n");
        else
            tr_buf_putc(b, *s);
    }
}

static int same_value(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tr_arena *a = tr_arena_new(0);
    tr_text_result r;
    if (tr_prom_text_parse((const char *)data, size, a, &r) != 0) abort();
    if (r.bad_lines && !r.err[0]) abort();
    tr_buf b;
    tr_buf_init(&b, 0);
    for (size_t i = 0; i < r.n_samples; i++) {
        const tr_text_sample *s = &r.samples[i];
        if (s->n_labels < 1 || strcmp(s->labels[0].name, "__name__") || !metric_name_ok(s->labels[0].value))
            abort();
        for (size_t j = 1; j < s->n_labels; j++) {
            if (!label_name_ok(s->labels[j].name) || !strcmp(s->labels[j].name, "__name__")) abort();
            for (size_t k = 1; k < j; k++)
                if (!strcmp(s->labels[j].name, s->labels[k].name)) abort();
        }
        tr_buf_printf(&b, "%s{", s->labels[0].value);
        for (size_t j = 1; j < s->n_labels; j++) {
            tr_buf_printf(&b, "%s=\"", s->labels[j].name);
            escaped(&b, s->labels[j].value);
            tr_buf_puts(&b, "\",");
        }
        char v[40];
        if (isnan(s->value))
            snprintf(v, sizeof v, "NaN");
        else if (isinf(s->value))
            snprintf(v, sizeof v, s->value > 0 ? "+Inf" : "-Inf");
        else
            snprintf(v, sizeof v, "%.17g", s->value);
        tr_buf_printf(&b, "} %s", v);
        if (s->has_t) tr_buf_printf(&b, " %lld", (long long)s->t_ms);
        tr_buf_putc(&b, '\n');
    }
    for (size_t i = 0; i < r.n_meta; i++)
        if (!metric_name_ok(r.meta[i].family)) abort();
    tr_arena *a2 = tr_arena_new(0);
    tr_text_result r2;
    if (tr_prom_text_parse(b.data ? b.data : "", b.len, a2, &r2) != 0) abort();
    if (r2.bad_lines || r2.n_samples != r.n_samples) abort();
    for (size_t i = 0; i < r.n_samples; i++) {
        const tr_text_sample *x = &r.samples[i], *y = &r2.samples[i];
        if (x->n_labels != y->n_labels || !same_value(x->value, y->value) || x->has_t != y->has_t ||
            (x->has_t && x->t_ms != y->t_ms))
            abort();
        for (size_t j = 0; j < x->n_labels; j++)
            if (strcmp(x->labels[j].name, y->labels[j].name) ||
                strcmp(x->labels[j].value, y->labels[j].value))
                abort();
    }
    tr_buf_free(&b);
    tr_arena_free(a2);
    tr_arena_free(a);
    return 0;
}
