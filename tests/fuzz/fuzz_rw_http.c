/* libFuzzer target: the remote-write client's HTTP response-head parser (what a remote-write
 * target, or anything at its address, sends back). A head it accepts has a status of 100..999,
 * a length within the input, and a Retry-After that is not negative unless absent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forward/rw_out.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *p = malloc(size ? size : 1);
    if (!p) return 0;
    if (size) memcpy(p, data, size);
    rw_http_resp r;
    long n = rw_http_parse_head(p, size, 1700000000000LL, &r);
    if (n < -1 || n > (long)size) abort();
    if (n > 0) {
        if (r.status < 100 || r.status > 999) abort();
        if (r.retry_after_ms < -1 || r.content_length < -1) abort();
        /* the same head with more bytes behind it parses the same */
        char *q = malloc(size + 8);
        if (q) {
            memcpy(q, p, size);
            memcpy(q + size, "trailing", 8);
            rw_http_resp r2;
            if (rw_http_parse_head(q, size + 8, 1700000000000LL, &r2) != n || r2.status != r.status) abort();
            free(q);
        }
    }
    int64_t d = rw_backoff_ms(30, 5000, (unsigned)(size % 64), n > 0 ? r.retry_after_ms : -1);
    if (d < 30 || d > 5 * 60 * 1000) abort();
    free(p);
    return 0;
}
