/* Back-off for failed logins, per client address: after `free_failures` failures in a row an
 * address is refused for base_ms, then twice as long after each further failure, up to
 * max_ms. A success clears the address. The table is bounded (set-associative: an address
 * hashes to a set of 8 slots; a full set forgets its least recently failed address), so
 * many addresses cost memory only up to `capacity`. Not thread-safe (the loop's). */
#ifndef TR_RATELIMIT_H
#define TR_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_ratelimit tr_ratelimit;

/* capacity is rounded up to a multiple of 8. NULL when out of memory. */
tr_ratelimit *tr_ratelimit_new(size_t capacity, unsigned free_failures, int64_t base_ms, int64_t max_ms);
void tr_ratelimit_free(tr_ratelimit *r);
/* Milliseconds the key is still refused at now_ms (0: allowed). */
int64_t tr_ratelimit_blocked(const tr_ratelimit *r, const char *key, int64_t now_ms);
/* Records a failure; returns the back-off now in force for key (0 while under the free
 * failures). */
int64_t tr_ratelimit_fail(tr_ratelimit *r, const char *key, int64_t now_ms);
void tr_ratelimit_success(tr_ratelimit *r, const char *key);

#endif
