/* libFuzzer target: the remote write 1.0 decoder (snappy block format, then protobuf). The
 * first byte chooses how the rest is used: odd, it is a WriteRequest that is snappy-compressed
 * here first (so mutations explore the protobuf); even, it is the body as sent (so they explore
 * the snappy decoder and the size checks). A request that decodes must be walkable and pack
 * back; when the packed form decodes again, to the same shape. */
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/ingest.h"

#define MAX_UNCOMPRESSED (1u << 20)

static void walk(const Prometheus__WriteRequest *w, size_t *labels, size_t *samples) {
    for (size_t i = 0; i < w->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = w->timeseries[i];
        for (size_t j = 0; j < ts->n_labels; j++) *labels += strlen(ts->labels[j]->name) + strlen(ts->labels[j]->value) + 1;
        for (size_t j = 0; j < ts->n_samples; j++) *samples += ts->samples[j]->timestamp != 0x7fffffffffffffffLL;
        for (size_t j = 0; j < ts->n_exemplars; j++) *labels += ts->exemplars[j]->n_labels;
        for (size_t j = 0; j < ts->n_histograms; j++) *samples += ts->histograms[j]->n_positive_spans;
    }
    for (size_t i = 0; i < w->n_metadata; i++) *labels += strlen(w->metadata[i]->metric_family_name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    char *packed = NULL;
    if (data[0] & 1) {
        size_t cap = snappy_max_compressed_length(len);
        packed = malloc(cap ? cap : 1);
        if (!packed || snappy_compress((const char *)body, len, packed, &cap) != SNAPPY_OK) abort();
        body = (const uint8_t *)packed;
        len = cap;
    }
    tr_arena *a = tr_arena_new(MAX_UNCOMPRESSED * 20);
    Prometheus__WriteRequest *w = NULL;
    char err[256];
    int rc = tr_remote_write_decode(body, len, MAX_UNCOMPRESSED, a, &w, err, sizeof err);
    if (rc != 0 && rc != 400 && rc != 413) abort();
    if (rc != 0 && (w || !err[0])) abort();
    if (rc == 0) {
        size_t l1 = 0, s1 = 0, l2 = 0, s2 = 0;
        walk(w, &l1, &s1);
        size_t n = prometheus__write_request__get_packed_size(w);
        uint8_t *pb = malloc(n ? n : 1);
        prometheus__write_request__pack(w, pb);
        size_t cap = snappy_max_compressed_length(n);
        char *z = malloc(cap);
        if (snappy_compress((const char *)pb, n, z, &cap) != SNAPPY_OK) abort();
        Prometheus__WriteRequest *w2 = NULL;
        /* protobuf-c keeps unknown fields and may write them back in a form it then refuses
         * (a field number 0 read leniently from a two-byte tag): only a clean re-decode is
         * compared */
        if (tr_remote_write_decode((const uint8_t *)z, cap, n > MAX_UNCOMPRESSED ? n : MAX_UNCOMPRESSED, a, &w2, err, sizeof err) == 0) {
            walk(w2, &l2, &s2);
            if (l1 != l2 || s1 != s2 || w->n_timeseries != w2->n_timeseries || w->n_metadata != w2->n_metadata) abort();
        }
        free(pb);
        free(z);
    }
    tr_arena_free(a);
    free(packed);
    return 0;
}
