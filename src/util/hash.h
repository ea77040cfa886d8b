/* The 64-bit mixer (MurmurHash3's fmix64 finaliser) that the stores' hashes are built on.
 * The trace store persists hashes made with it: changing it changes that file format. */
#ifndef TR_HASH_H
#define TR_HASH_H

#include <stdint.h>

static inline uint64_t tr_mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

#endif
