/* The memory ceiling: the default from the machine and the cgroup, and the cached RSS. */
#include "memlimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "selfmon.h"

static int64_t g_limit;
static int64_t g_rss, g_rss_at = -1000000; /* __atomic accessed */
static tr_metric *g_refused, *g_limit_gauge;

static int64_t read_num_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char b[64] = "";
    int64_t v = 0;
    if (fgets(b, sizeof b, f) && strncmp(b, "max", 3) != 0) v = strtoll(b, NULL, 10);
    fclose(f);
    return v > 0 ? v : 0;
}

/* This process's cgroup limit: v2 (the "0::/path" line), else v1's memory controller. */
static int64_t cgroup_limit(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    char line[1024], path[1200];
    int64_t best = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        int64_t v = 0;
        if (c1 + 1 == c2) { /* v2: the smallest limit of our cgroup and its parents */
            char rel[1024];
            snprintf(rel, sizeof rel, "%s", c2 + 1);
            for (;;) {
                snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", strcmp(rel, "/") ? rel : "");
                int64_t x = read_num_file(path);
                if (x && (!v || x < v)) v = x;
                char *sl = strrchr(rel, '/');
                if (!sl || sl == rel) break;
                *sl = 0;
            }
        } else if (strstr(c1, "memory")) {
            snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", c2 + 1);
            v = read_num_file(path);
            if (!v) v = read_num_file("/sys/fs/cgroup/memory/memory.limit_in_bytes");
            if (v >= (int64_t)1 << 60) v = 0; /* v1's "no limit" is a huge number */
        }
        if (v && (!best || v < best)) best = v;
    }
    fclose(f);
    return best;
}

int64_t tr_mem_available_total(const char **from) {
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    int64_t machine = pages > 0 && psz > 0 ? (int64_t)pages * psz : 0;
    int64_t cg = cgroup_limit();
    if (from) *from = "machine";
    if (cg && (!machine || cg < machine)) {
        if (from) *from = "cgroup";
        return cg;
    }
    return machine;
}

void tr_mem_set_limit(int64_t bytes) {
    __atomic_store_n(&g_limit, bytes > 0 ? bytes : 0, __ATOMIC_RELAXED);
    g_refused =
        tr_counter_new("tricorder_memory_limit_refusals_total",
                       "Writes refused (retryably) because resident memory was above --memory-limit.", NULL);
    g_limit_gauge =
        tr_gauge_new("tricorder_memory_limit_bytes", "The --memory-limit in force (0: none).", NULL);
    tr_gauge_set(g_limit_gauge, (double)g_limit);
}

int64_t tr_mem_limit(void) { return __atomic_load_n(&g_limit, __ATOMIC_RELAXED); }

int64_t tr_mem_rss(void) {
    int64_t now = tr_mono_ms();
    int64_t at = __atomic_load_n(&g_rss_at, __ATOMIC_RELAXED);
    if (now - at < TR_MEM_SAMPLE_MS) return __atomic_load_n(&g_rss, __ATOMIC_RELAXED);
    /* one reader refreshes; the others use the last value meanwhile */
    if (!__atomic_compare_exchange_n(&g_rss_at, &at, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return __atomic_load_n(&g_rss, __ATOMIC_RELAXED);
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    int64_t v = (int64_t)res * sysconf(_SC_PAGESIZE);
    __atomic_store_n(&g_rss, v, __ATOMIC_RELAXED);
    return v;
}

int tr_mem_refuse(void) {
    int64_t lim = tr_mem_limit();
    if (lim <= 0 || tr_mem_rss() <= lim) return 0;
    if (g_refused) tr_counter_add(g_refused, 1);
    return 1;
}
