/* `tricorder check DATA_DIR [--repair]`: the offline integrity check of both stores, as
 * `promtool tsdb analyze` and SQLite's `PRAGMA integrity_check` are for theirs. It takes the
 * data dir's lock, so it never runs beside a tricorder that uses the same directory. Exit
 * code 0 when everything verifies, 1 when damage was found (also when --repair set it aside),
 * 2 on a usage error or when the directory cannot be checked. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "traces/traces.h"

static void usage(FILE *f) {
    fputs(
        "usage: tricorder check DATA_DIR [--repair]\n"
        "  Verifies every checksum of the metrics store (blocks: meta.json, index, chunks; WAL records)\n"
        "  and of the trace store, and lists what is damaged. With --repair, damaged blocks are moved to\n"
        "  DATA_DIR/metrics/quarantine/ and damaged WAL files keep only their intact records (the original\n"
        "  is kept as <name>.corrupt); nothing is deleted. Run it while tricorder is stopped.\n"
        "  Exit code: 0 clean, 1 damage found, 2 usage error or the directory cannot be checked.\n",
        f);
}

int tr_check_main(int argc, char **argv) {
    const char *dir = NULL;
    int repair = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repair") == 0)
            repair = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (!dir && argv[i][0] != '-')
            dir = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/tricorder.lock", dir);
    int lock = open(path, O_RDWR | O_CLOEXEC);
    if (lock < 0 && errno != ENOENT) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "%s is in use by a running tricorder: stop it first\n", dir);
        close(lock);
        return 2;
    }
    int rc = 0;
    snprintf(path, sizeof path, "%s/metrics", dir);
    if (access(path, F_OK) == 0)
        rc |= tsdb_check(path, repair, stdout);
    else
        printf("metrics: no store in %s\n", path);

    /* the trace store: SQLite's integrity_check, then every chunk's checksum */
    if (traces_check(dir, repair, stdout) != 0) rc |= 1;

    printf("%s\n", rc ? "damage found" : "ok: everything verifies");
    if (lock >= 0) close(lock);
    return rc ? 1 : 0;
}
