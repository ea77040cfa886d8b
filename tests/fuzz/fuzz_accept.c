/* Fuzz target: the Accept header negotiation of /federate (tr_prom_wants_protobuf). The input
 * is a header value; the answer is 0 or 1, never a crash or a read past the string, and it
 * does not depend on what follows a NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/prom_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    char *h = malloc(size + 1);
    if (!h) abort();
    memcpy(h, data, size);
    h[size] = 0;
    int r = tr_prom_wants_protobuf(h);
    if (r != 0 && r != 1) abort();
    free(h);
    return 0;
}
