/* Chunk encodings of the metrics store: Gorilla (head) and the block column format must give
 * back every timestamp and every value bit for bit. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_int.h"

static uint64_t rng = 88172645463325252ULL;
static uint64_t xr(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double bits(uint64_t b) {
    double v;
    memcpy(&v, &b, 8);
    return v;
}

static int same(double a, double b) { return memcmp(&a, &b, 8) == 0; }

/* Values that must survive exactly, mixed into every series. */
static double special(int i) {
    switch (i % 12) {
    case 0:
        return bits(TSDB_STALE_NAN_BITS);
    case 1:
        return INFINITY;
    case 2:
        return -INFINITY;
    case 3:
        return -0.0;
    case 4:
        return 4.9e-324; /* smallest denormal */
    case 5:
        return bits(0x7ff8000000000001ULL); /* NaN with a payload */
    case 6:
        return bits(0xfff0000000000abcULL); /* negative signalling NaN */
    case 7:
        return 1.7976931348623157e308;
    case 8:
        return 0.1;
    case 9:
        return -2.2250738585072014e-308;
    case 10:
        return 0.0;
    default:
        return 123456789.0;
    }
}

static void roundtrip_gorilla(const sample *s, size_t n) {
    xorenc e = {0};
    for (size_t i = 0; i < n; i++)
        xor_append(&e, s[i].t, s[i].v);
    cr_assert(!xor_oom(&e));
    cr_assert_eq(e.n, n);
    xordec d;
    xor_dec_init(&d, e.buf, (size_t)((e.bits + 7) / 8), e.n);
    int64_t t;
    double v;
    size_t k = 0;
    while (xor_dec_next(&d, &t, &v)) {
        cr_assert_lt(k, n);
        cr_assert_eq(t, s[k].t, "sample %zu: t %lld != %lld", k, (long long)t, (long long)s[k].t);
        cr_assert(same(v, s[k].v), "sample %zu: value bits differ (%g vs %g)", k, v, s[k].v);
        k++;
    }
    cr_assert_eq(k, n);
    cr_assert_eq(d.err, 0);
    xor_reset(&e);
}

static void roundtrip_block(const sample *s, size_t n) {
    bvec b = {0};
    blockenc_series(&b, s, n);
    cr_assert(!b.err);
    sample *out;
    long m = blockdec_series(b.p, b.len, &out);
    cr_assert_eq(m, (long)n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(out[i].t, s[i].t);
        cr_assert(same(out[i].v, s[i].v), "block sample %zu differs: %.17g vs %.17g", i, out[i].v, s[i].v);
    }
    free(out);
    bv_free(&b);
}

Test(metrics_chunk, gorilla_random_and_special_values) {
    sample s[CHUNK_SAMPLES * 3];
    for (int round = 0; round < 50; round++) {
        int64_t t = (int64_t)(xr() % 2000000000000ULL) - 1000000000000LL;
        size_t n = 1 + xr() % (sizeof s / sizeof s[0]);
        for (size_t i = 0; i < n; i++) {
            /* regular steps, jitter, and now and then huge gaps */
            uint64_t r = xr() % 100;
            t += r < 70   ? 15000
                 : r < 90 ? (int64_t)(xr() % 100000)
                 : r < 98 ? (int64_t)(xr() % 10000000000ULL)
                          : (int64_t)(xr() % 1000000000000000ULL);
            s[i].t = t;
            uint64_t k = xr() % 4;
            s[i].v = k == 0   ? special((int)(xr() % 12))
                     : k == 1 ? bits(xr())
                     : k == 2 ? (double)(i * 3)
                              : (double)(xr() % 1000) / 7.0;
        }
        /* keep timestamps strictly increasing (the head only appends in order) */
        for (size_t i = 1; i < n; i++)
            if (s[i].t <= s[i - 1].t) s[i].t = s[i - 1].t + 1;
        roundtrip_gorilla(s, n);
        roundtrip_block(s, n);
    }
}

Test(metrics_chunk, every_special_value_in_one_chunk) {
    sample s[24];
    for (int i = 0; i < 24; i++) {
        s[i].t = 1000 + i * 1000;
        s[i].v = special(i);
    }
    roundtrip_gorilla(s, 24);
    roundtrip_block(s, 24);
}

Test(metrics_chunk, extreme_timestamps) {
    sample s[4] = {{INT64_MIN + 1, 1}, {-1, 2}, {0, 3}, {INT64_MAX / 2, 4}};
    roundtrip_gorilla(s, 4);
    roundtrip_block(s, 4);
}

Test(metrics_chunk, decimal_values_compress_and_stay_exact) {
    /* counters and gauges with few decimals take the integer path: much smaller than the 8+
     * bytes per value of a plain XOR form */
    sample c[360], g[360];
    double acc = 0;
    for (int i = 0; i < 360; i++) {
        acc += (double)(xr() % 50);
        c[i].t = g[i].t = 1700000000000LL + i * 15000;
        c[i].v = acc;
        g[i].v = (double)(xr() % 10000) / 100.0;
    }
    bvec b = {0};
    blockenc_series(&b, c, 360);
    cr_assert_lt(b.len, 360 * 3, "counter: %zu bytes", b.len);
    b.len = 0;
    blockenc_series(&b, g, 360);
    cr_assert_lt(b.len, 360 * 4, "gauge: %zu bytes", b.len);
    bv_free(&b);
    roundtrip_block(c, 360);
    roundtrip_block(g, 360);
}

Test(metrics_chunk, corrupt_input_is_an_error_not_a_crash) {
    uint8_t junk[64];
    for (int r = 0; r < 200; r++) {
        size_t n = xr() % sizeof junk;
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)xr();
        sample *out = NULL;
        long m = blockdec_series(junk, n, &out);
        if (m > 0) free(out);
        xordec d;
        xor_dec_init(&d, junk, n, (uint16_t)(xr() % 200));
        int64_t t;
        double v;
        int k = 0;
        while (xor_dec_next(&d, &t, &v))
            k++;
        cr_assert_leq(k, 200);
    }
}
