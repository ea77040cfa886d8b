/* The memory ceiling (--memory-limit): ingestion is refused with a retryable error while the
 * process's resident memory is above it, instead of growing until the kernel kills us. RSS is
 * read from /proc/self/statm at most every TR_MEM_SAMPLE_MS, so asking is cheap enough for
 * every request. Thread-safe. */
#ifndef TR_MEMLIMIT_H
#define TR_MEMLIMIT_H

#include <stdint.h>

#define TR_MEM_SAMPLE_MS 100

/* Memory the process may use: the smaller of the machine's (MemTotal) and the cgroup's
 * (v2 memory.max, v1 memory.limit_in_bytes) when one is set; 0 when neither is known.
 * *from (may be NULL) says which: "machine" or "cgroup". */
int64_t tr_mem_available_total(const char **from);

/* Sets the ceiling in bytes (0: none) and creates its metrics. Call once at start. */
void tr_mem_set_limit(int64_t bytes);
int64_t tr_mem_limit(void);
/* The resident set size in bytes, at most TR_MEM_SAMPLE_MS old. */
int64_t tr_mem_rss(void);
/* 1 when a ceiling is set and RSS is above it: the caller refuses the write (retryably) and
 * this counts it in tricorder_memory_limit_refusals_total. 0 otherwise. */
int tr_mem_refuse(void);

#endif
