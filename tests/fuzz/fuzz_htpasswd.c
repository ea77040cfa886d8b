/* Fuzz target: util/credentials.h's file parsers. The input is an htpasswd file (and, the
 * same bytes, a token file): it parses or fails with a message, never crashes; a parsed
 * file answers lookups of every user it holds with a 60-character bcrypt hash, and
 * unknown users with the dummy of the same shape. bcrypt itself is not run (too slow to
 * fuzz; libxcrypt's own). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char err[256];
    err[0] = 0;
    tr_htpasswd *p = tr_htpasswd_parse((const char *)data, size, err, sizeof err);
    if (!p && !err[0]) abort();
    if (p) {
        int known;
        const char *h = tr_htpasswd_hash(p, "nobody-here", 11, &known);
        if (strlen(h) != 60 || strncmp(h, "$2", 2) != 0) abort();
        /* every user named in the input is found */
        const char *s = (const char *)data;
        for (size_t off = 0; off < size;) {
            const char *nl = memchr(s + off, '\n', size - off);
            size_t n = nl ? (size_t)(nl - (s + off)) : size - off;
            const char *colon = memchr(s + off, ':', n);
            if (colon && s[off] != '#' && s[off] != ' ' && s[off] != '\t') {
                tr_htpasswd_hash(p, s + off, (size_t)(colon - (s + off)), &known);
                if (!known) abort();
            }
            off += n + 1;
        }
        tr_htpasswd_free(p);
    }
    err[0] = 0;
    tr_tokens *t = tr_tokens_parse((const char *)data, size, err, sizeof err);
    if (!t && !err[0]) abort();
    if (t) {
        tr_tokens_match(t, "x");
        tr_tokens_free(t);
    }
    return 0;
}
