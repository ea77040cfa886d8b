/* libFuzzer target: the binary protobuf OTLP decoder, both signals, a fresh bounded arena per
 * input (as the receiver uses it). Any crash, over-read or UB is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/otlp_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int sig = OTLP_METRICS; sig <= OTLP_TRACES; sig++) {
        tr_arena *a = tr_arena_new(size * 24 + 65536);
        if (!a) return 0;
        otlp_export ex;
        memset(&ex, 0, sizeof ex);
        char err[200];
        err[0] = 0;
        int rc = otlp_decode_pb((otlp_signal)sig, data, size, a, &ex, err, sizeof err);
        if (rc != 0 && rc != -1) abort();
        if (rc == -1 && !err[0]) abort(); /* every refusal says why */
        if (rc == 0 && !(sig == OTLP_METRICS ? (void *)ex.metrics : (void *)ex.traces)) abort();
        tr_arena_free(a);
    }
    return 0;
}
