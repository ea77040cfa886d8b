/* Fuzz target: the decoders of the metrics store's on-disk data (a block's series record, a
 * Gorilla chunk, WAL record framing with and without resynchronisation, meta.json). Invariant: any bytes
 * decode or are refused, never a crash or an overrun; what decodes re-encodes to samples that decode
 * identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_int.h"

static void rec(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    if (type != WAL_SERIES && type != WAL_SAMPLES && type != WAL_EXEMPLARS) abort();
    (*(size_t *)ctx) += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    /* block series record */
    sample *s = NULL;
    long n = blockdec_series(data, size, &s);
    if (n > 0) {
        bvec b = {0};
        blockenc_series(&b, s, (size_t)n);
        sample *s2 = NULL;
        long n2 = b.err ? -1 : blockdec_series(b.p, b.len, &s2);
        if (n2 != n || memcmp(s, s2, (size_t)n * sizeof *s) != 0) abort();
        free(s2);
        bv_free(&b);
        free(s);
    }
    /* Gorilla chunk with a sample count taken from the first bytes */
    if (size >= 2) {
        xordec d;
        xor_dec_init(&d, data + 2, size - 2, (uint16_t)(data[0] | data[1] << 8));
        int64_t t;
        double v;
        unsigned k = 0;
        while (xor_dec_next(&d, &t, &v))
            k++;
        if (k > (unsigned)(data[0] | data[1] << 8)) abort();
    }
    /* WAL framing */
    size_t payload = 0;
    size_t good = wal_scan(data, size, rec, &payload);
    if (good > size || payload > size) abort(); /* records after damage are read too */
    /* WAL replay with resynchronisation: the whole input is accounted for */
    wal_damage dm;
    size_t all = 0;
    if (wal_scan_ex(data, size, rec, &all, &dm) != size || dm.bad_bytes > size || all > size) abort();
    if (!dm.bad_records && dm.first_bad != size) abort();
    /* meta.json: any text parses strictly or is refused */
    char *js = malloc(size + 1);
    if (js) {
        memcpy(js, data, size);
        js[size] = 0;
        int64_t mv[6];
        char why[128];
        block_parse_meta(js, size, mv, why, sizeof why);
        free(js);
    }
    return 0;
}
