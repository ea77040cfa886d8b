/* Connections per client address: a small counting set keyed by the peer's IP (IPv4 kept as
 * its IPv4-mapped IPv6 form, so both families share one key space), for the per-address caps
 * of the listeners. Not thread-safe: each listener uses its own from the event loop. */
#ifndef TR_ADDRCOUNT_H
#define TR_ADDRCOUNT_H

#include <stddef.h>

struct sockaddr;

/* The help of tricorder_connections_refused_total{listener,reason}, shared by the listeners. */
#define TR_CONN_REFUSED_HELP                                                                                 \
    "Connections closed at accept: over --max-connections-per-ip (reason per_address) or --max-connections " \
    "(reason total)."

typedef struct tr_addrkey {
    unsigned char b[16];
} tr_addrkey;

typedef struct tr_addrcount tr_addrcount;

/* Fills *k from an AF_INET or AF_INET6 address (the port is ignored); other families (unix
 * sockets) all map to one key. */
void tr_addrkey_from(const struct sockaddr *sa, tr_addrkey *k);
/* Writes the address as text (no port) into out. */
void tr_addrkey_format(const tr_addrkey *k, char *out, size_t cap);

/* Returns NULL when out of memory. */
tr_addrcount *tr_addrcount_new(void);
void tr_addrcount_free(tr_addrcount *c);
/* Counts one more connection from k unless it already has `max` (0: no cap). Returns the new
 * count, or -1 when at the cap or out of memory (nothing counted). */
long tr_addrcount_acquire(tr_addrcount *c, const tr_addrkey *k, unsigned max);
/* Counts one connection from k less (forgets k at zero). */
void tr_addrcount_release(tr_addrcount *c, const tr_addrkey *k);
/* Connections counted for k. */
unsigned tr_addrcount_get(const tr_addrcount *c, const tr_addrkey *k);
/* Distinct addresses with at least one connection. */
size_t tr_addrcount_size(const tr_addrcount *c);

#endif
