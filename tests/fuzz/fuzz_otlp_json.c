/* libFuzzer target: the OTLP/JSON decoder, both signals, a fresh bounded arena per input. A
 * request that decodes must also re-encode as protobuf and decode back to the same item count
 * (the JSON path builds well-formed protobuf-c structs). */
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
        int rc = otlp_decode_json((otlp_signal)sig, data, size, a, &ex, err, sizeof err);
        if (rc != 0 && rc != -1) abort();
        if (rc == -1 && !err[0]) abort();
        if (rc == 0) {
            const ProtobufCMessage *m = sig == OTLP_METRICS ? &ex.metrics->base : &ex.traces->base;
            size_t n = protobuf_c_message_get_packed_size(m);
            uint8_t *pb = malloc(n ? n : 1);
            if (!pb) abort();
            protobuf_c_message_pack(m, pb);
            tr_arena *b = tr_arena_new(0);
            otlp_export ex2;
            memset(&ex2, 0, sizeof ex2);
            if (otlp_decode_pb((otlp_signal)sig, pb, n, b, &ex2, err, sizeof err) != 0) abort();
            if (ex2.items != ex.items) abort();
            tr_arena_free(b);
            free(pb);
        }
        tr_arena_free(a);
    }
    return 0;
}
