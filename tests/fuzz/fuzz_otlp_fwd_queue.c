/* libFuzzer target: the OTLP forwarding queue's on-disk record reader. The input is parsed as
 * a run of records (the pure parser), then written as a queue segment and read back through
 * the queue itself (open: scan and cut of a torn tail; peek/commit until empty). Every record
 * handed out must check out, and the reader must never hand out more bytes than the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward/otlp_fwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t off = 0, good = 0;
    for (;;) {
        otlp_fwdq_rec r;
        long n = otlp_fwdq_parse(data + off, size - off, OTLP_FWDQ_MAX_RECORD, &r);
        if (n <= 0) break;
        if ((size_t)n > size - off || r.len + OTLP_FWDQ_HDR != (size_t)n || r.signal > 1) abort();
        off += (size_t)n;
        good++;
    }

    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/tr-fuzz-fwdq-%d", (int)getpid());
    }
    char seg[128], pos[128];
    snprintf(seg, sizeof seg, "%s/00000000000000000001.seg", dir);
    snprintf(pos, sizeof pos, "%s/position", dir);
    char err[200];
    otlp_fwdq *q = otlp_fwdq_open(dir, 1 << 22, err, sizeof err); /* creates the directory */
    if (!q) abort();
    otlp_fwdq_close(q);
    unlink(pos);
    FILE *f = fopen(seg, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    q = otlp_fwdq_open(dir, 1 << 22, err, sizeof err);
    if (!q) abort();
    uint8_t *buf = NULL;
    size_t cap = 0, got = 0, bytes = 0;
    otlp_fwdq_rec r;
    while (otlp_fwdq_peek(q, 0, &buf, &cap, &r) == 1) {
        bytes += r.len + OTLP_FWDQ_HDR;
        if (bytes > size || r.signal > 1) abort();
        got++;
        if (otlp_fwdq_commit(q) != 0) abort();
    }
    if (got != good) abort(); /* the queue reads exactly the valid prefix */
    free(buf);
    otlp_fwdq_close(q);
    unlink(seg);
    unlink(pos);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/position.tmp", dir);
    unlink(tmp);
    rmdir(dir); /* recreated by the next input's open */
    return 0;
}
