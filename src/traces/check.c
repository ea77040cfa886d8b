/* Offline check of the trace store (`tricorder check`): SQLite's own integrity check of the
 * file's pages, then every chunk's checksum and decoding; with repair, damaged chunks move to
 * the quarantine table as the running store would move them. Run it while no tricorder uses
 * the data dir. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>

#include "traces_int.h"

#define CHECK_MAX_LISTED 1000 /* damaged chunks listed and repaired per run */

static int64_t one_int(sqlite3 *db, const char *sql, int *ok) {
    sqlite3_stmt *st;
    int64_t v = 0;
    *ok = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        *ok = 1;
    }
    sqlite3_finalize(st);
    return v;
}

int traces_check(const char *data_dir, int repair, FILE *report) {
    char path[4200];
    snprintf(path, sizeof path, "%s/traces.db", data_dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(report, "traces: %s absent (no spans stored yet): nothing to check\n", path);
        return 0;
    }
    /* 0. the WAL, before SQLite's recovery reads it */
    int wal_problems = 0;
    traces_wal_report w;
    if (traces_wal_scan(path, &w) == 0 && w.bad_frame >= 0 && w.commits_dropped > 0) {
        fprintf(report,
                "traces: %s-wal: frame %lld fails its checksum: SQLite's recovery keeps the %lld commits "
                "before it and drops "
                "%lld commits after it (%lld frames; their spans are lost). Keep a copy of the WAL before "
                "starting tricorder "
                "(tricorder keeps one too)\n",
                path, (long long)w.bad_frame, (long long)w.commits_kept, (long long)w.commits_dropped,
                (long long)w.frames_dropped);
        wal_problems = 1;
    } else if (w.index_frames > w.frames_kept && w.index_frames > w.backfilled) {
        fprintf(report,
                "traces: %s-wal: its index counts %lld committed frames but only %lld check out (the WAL was "
                "cut): the "
                "commits in the missing frames are lost at the next start\n",
                path, (long long)w.index_frames, (long long)w.frames_kept);
        wal_problems = 1;
    }
    if (wal_problems && repair) {
        /* a writable open recovers the WAL and checkpoints it at close: the damaged frames
         * would be gone */
        char copy[4400];
        if (traces_wal_keep_copy(path, copy, sizeof copy) == 0)
            fprintf(report, "traces: a copy of the WAL is kept as %s\n", copy);
        else
            fprintf(report, "traces: cannot copy the WAL (%s-wal): not repairing\n", path), repair = 0;
    }
    sqlite3 *db = NULL;
    int flags = repair ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        fprintf(report, "traces: cannot open %s: %s\n", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return 1;
    }
    sqlite3_busy_timeout(db, 5000);
    int problems = wal_problems, ok;
    int64_t app = one_int(db, "PRAGMA application_id", &ok);
    if (!ok) {
        fprintf(report, "traces: %s is not a readable SQLite database: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return 1;
    }
    if (app != TRACES_APP_ID) {
        fprintf(report, "traces: %s is not a tricorder trace store (application_id %lld)\n", path,
                (long long)app);
        sqlite3_close(db);
        return 1;
    }
    int64_t ver = one_int(db, "PRAGMA user_version", &ok);
    if (ver > TRACES_SCHEMA_VERSION) {
        fprintf(report, "traces: schema %lld is newer than this tricorder (%d): not checked\n",
                (long long)ver, TRACES_SCHEMA_VERSION);
        sqlite3_close(db);
        return 1;
    }
    /* 1. the pages: B-tree structure, free lists, indexes against their tables */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(100)", -1, &st, NULL) == SQLITE_OK) {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *m = (const char *)sqlite3_column_text(st, 0);
            if (m && strcmp(m, "ok") == 0) continue;
            fprintf(report, "traces: integrity_check: %s\n", m ? m : "?");
            problems++;
        }
        if (rc != SQLITE_DONE) {
            fprintf(report, "traces: integrity_check stopped: %s\n", sqlite3_errmsg(db));
            problems++;
        }
        sqlite3_finalize(st);
    } else {
        fprintf(report, "traces: integrity_check cannot run: %s\n", sqlite3_errmsg(db));
        problems++;
    }
    int page_problems = problems;
    if (page_problems)
        fprintf(
            report,
            "traces: SQLite page damage is not repaired here: stop tricorder, keep a copy, and rebuild with "
            "`sqlite3 traces.db .recover | sqlite3 traces-recovered.db`\n");
    /* 2. every chunk: its checksum (schema 3) and its decoding */
    const char *sql = ver >= 3 ? "SELECT id, data, rawlen, nspans, crc FROM chunk ORDER BY id"
                               : "SELECT id, data, rawlen, nspans, NULL FROM chunk ORDER BY id";
    if (ver < 3)
        fprintf(report, "traces: schema %lld: chunks carry no checksum yet, checked by decoding only\n",
                (long long)ver);
    int64_t *bad = NULL;
    const char **why = NULL;
    size_t nbad = 0;
    int64_t nchunks = 0;
    void *dctx = ZSTD_createDCtx();
    bad = malloc(CHECK_MAX_LISTED * sizeof *bad);
    why = malloc(CHECK_MAX_LISTED * sizeof *why);
    if (!dctx || !bad || !why || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(report, "traces: cannot read the chunks: %s\n",
                dctx && bad && why ? sqlite3_errmsg(db) : "out of memory");
        problems++;
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        nchunks++;
        int64_t id = sqlite3_column_int64(st, 0);
        tr_arena *a = tr_arena_new(0);
        if (!a) break;
        const char *damage = chunk_check(id, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                                         sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                                         sqlite3_column_type(st, 4) != SQLITE_NULL,
                                         (uint32_t)sqlite3_column_int64(st, 4), a, dctx, NULL);
        tr_arena_free(a);
        if (!damage) continue;
        problems++;
        fprintf(report, "traces: chunk %lld: %s\n", (long long)id, damage);
        if (nbad < CHECK_MAX_LISTED) {
            bad[nbad] = id;
            why[nbad++] = damage;
        }
    }
    if (rc != SQLITE_DONE) {
        fprintf(report, "traces: reading the chunks stopped at chunk %lld: %s\n", (long long)nchunks,
                sqlite3_errmsg(db));
        problems++;
    }
    sqlite3_finalize(st);
    /* 3. operation rows (the service and operation lists) */
    if (ver >= 3 &&
        sqlite3_prepare_v2(db, "SELECT service, name, kind, crc FROM operation WHERE crc IS NOT NULL", -1,
                           &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *svc = (const char *)sqlite3_column_text(st, 0),
                       *name = (const char *)sqlite3_column_text(st, 1);
            int kind = sqlite3_column_int(st, 2);
            if (svc && name && operation_crc(svc, name, kind) == (uint32_t)sqlite3_column_int64(st, 3))
                continue;
            problems++;
            fprintf(report,
                    "traces: operation row (%s, %s, kind %d): checksum mismatch (left out of the lists; the "
                    "true row is written again when seen)\n",
                    svc ? svc : "?", name ? name : "?", kind);
        }
        sqlite3_finalize(st);
    }
    int64_t quarantined = ver >= 3 ? one_int(db, "SELECT count(*) FROM quarantine", &ok) : 0;
    fprintf(report, "traces: %lld chunks checked, %zu damaged; %lld chunks already in quarantine\n",
            (long long)nchunks, nbad, (long long)quarantined);
    if (repair && nbad) {
        if (ver < 3) {
            fprintf(report,
                    "traces: --repair needs schema 3 (start tricorder once to upgrade): nothing moved\n");
        } else if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
            int failed = 0;
            for (size_t i = 0; i < nbad && !failed; i++)
                failed = chunk_quarantine(db, bad[i], why[i], tr_now_ms()) < 0;
            if (failed || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                fprintf(report, "traces: repair failed: %s; nothing moved\n", sqlite3_errmsg(db));
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            } else {
                fprintf(report,
                        "traces: repaired: %zu damaged chunks moved to the quarantine table (kept, not "
                        "deleted)\n",
                        nbad);
            }
        } else {
            fprintf(report, "traces: repair cannot start a transaction: %s (is tricorder running?)\n",
                    sqlite3_errmsg(db));
        }
    }
out:
    ZSTD_freeDCtx(dctx);
    free(bad);
    free(why);
    sqlite3_close(db);
    return problems;
}
