/* Clocks and time stamps: the wall clock in ms and ns, a monotonic clock for intervals, and
 * RFC 3339 parsing as Go's time.Parse(time.RFC3339Nano, s) accepts it (what Prometheus and
 * Jaeger use for their time parameters). */
#ifndef TR_CLOCK_H
#define TR_CLOCK_H

#include <stdint.h>

/* Wall clock (CLOCK_REALTIME) since the Unix epoch. */
int64_t tr_now_ms(void);
int64_t tr_now_ns(void);
/* Monotonic clock (CLOCK_MONOTONIC), for timeouts and durations. */
int64_t tr_mono_ms(void);
int64_t tr_mono_ns(void);

/* Parses s as Go's time.Parse(time.RFC3339Nano, s) does: YYYY-MM-DDThh:mm:ss, an optional
 * fraction ('.' or ',' then digits, past nanoseconds ignored), then Z or ±hh:mm. The date
 * must exist (2023-02-30 and second 60 are errors); an hour may have one digit, and the
 * zone may be up to +24:60 (Go's general parser allows both). Returns 0 with the Unix
 * seconds and the nanoseconds (0 to 999999999), or -1. */
int tr_rfc3339_parse(const char *s, int64_t *sec, int32_t *nsec);
/* As tr_rfc3339_parse, in Unix milliseconds as Prometheus rounds (down). */
int tr_rfc3339_ms(const char *s, int64_t *ms);
/* As tr_rfc3339_parse, in Unix nanoseconds; -1 also past the int64 range (year 2262). */
int tr_rfc3339_ns(const char *s, int64_t *ns);

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (m 1..12). */
int64_t tr_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
