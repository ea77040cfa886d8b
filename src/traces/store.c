/* The trace store's life: opening the database (schema creation, migrations, refusing files
 * that are not ours or are newer), the writer and reader threads, and the queue that hands
 * completions back to the event-loop thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "traces_int.h"
#include "util/log.h"

int traces_exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int traces_db_open(const char *path, int readonly, sqlite3 **out, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    int flags =
        (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    /* readers cache and map more: a search reads old chunks and postings. The writer's cache
     * stays small: it touches only the right edges of the B-trees, and the cost of each commit
     * grew with its cache (a 64 MiB one was ~10% of ingest CPU in SQLite's page-cache
     * truncation at commit, measured with perf) */
    if (traces_exec(db,
                    readonly
                        ? "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=268435456"
                        : "PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY",
                    err, errlen)) {
        int code = sqlite3_errcode(db);
        if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
            snprintf(err, errlen,
                     "%s is not a usable trace database (%s): it is damaged or not an SQLite file; move it "
                     "away to start afresh",
                     path, sqlite3_errstr(code));
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

/* The current schema; see traces_int.h for the model. */
static const char *const schema_tables =
    "CREATE TABLE chunk(id INTEGER PRIMARY KEY, min_start INTEGER NOT NULL, max_start INTEGER NOT NULL,"
    " min_dur INTEGER NOT NULL, max_dur INTEGER NOT NULL, nspans INTEGER NOT NULL, rawlen INTEGER NOT NULL,"
    " data BLOB NOT NULL, crc INTEGER);"
    "CREATE INDEX chunk_max_start ON chunk(max_start);"
    "CREATE TABLE operation(service TEXT NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL, crc INTEGER, PRIMARY KEY(service, name, kind)) WITHOUT ROWID;";
/* The index tables of schema 2 (also created by the migration from 1). */
static const char *const schema_index_v2 =
    "CREATE TABLE trace_idx(chunk INTEGER PRIMARY KEY, tids BLOB NOT NULL);"
    "CREATE TABLE trace_post(b INTEGER NOT NULL, tid INTEGER NOT NULL, chunk INTEGER NOT NULL,"
    " PRIMARY KEY(b, tid, chunk)) WITHOUT ROWID;"
    "CREATE TABLE tag_idx(chunk INTEGER PRIMARY KEY, keys BLOB NOT NULL);"
    "CREATE TABLE sum_idx(chunk INTEGER PRIMARY KEY, ents BLOB NOT NULL);"
    "CREATE TABLE tag_post(b INTEGER NOT NULL, h INTEGER NOT NULL, bits INTEGER NOT NULL,"
    " PRIMARY KEY(b, h)) WITHOUT ROWID;"
    "CREATE TABLE sum_post(b INTEGER NOT NULL, k INTEGER NOT NULL, bits INTEGER NOT NULL, bounds BLOB NOT "
    "NULL,"
    " PRIMARY KEY(b, k)) WITHOUT ROWID;"
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta VALUES('open_bucket', 0);";

/* Writes one trace_idx row per chunk from (chunk, tid) rows in chunk order. */
static int migrate_trace_lists(sqlite3 *db, char *e, size_t el) {
    sqlite3_stmt *rd = NULL, *wr = NULL;
    uint8_t *blob = NULL;
    size_t n = 0, cap = 0;
    int64_t cur = -1;
    int rc = sqlite3_prepare_v2(db, "SELECT chunk, tid FROM v1_trace_idx ORDER BY chunk, tid", -1, &rd, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO trace_idx(chunk, tids) VALUES(?,?)", -1, &wr, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(rd);
        int row = rc == SQLITE_ROW;
        if (!row && rc != SQLITE_DONE) break;
        int64_t chunk = row ? sqlite3_column_int64(rd, 0) : -1;
        if (cur >= 0 && chunk != cur) {
            sqlite3_bind_int64(wr, 1, cur);
            sqlite3_bind_blob(wr, 2, blob, (int)(8 * n), SQLITE_STATIC);
            int wrc = sqlite3_step(wr);
            sqlite3_reset(wr);
            if (wrc != SQLITE_DONE) {
                rc = wrc;
                break;
            }
            n = 0;
        }
        if (!row) break;
        cur = chunk;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint8_t *nb = realloc(blob, 8 * cap);
            if (!nb) {
                rc = SQLITE_NOMEM;
                break;
            }
            blob = nb;
        }
        put_u64(blob + 8 * n++, (uint64_t)sqlite3_column_int64(rd, 1));
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) snprintf(e, el, "%s", rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(db));
    sqlite3_finalize(rd);
    sqlite3_finalize(wr);
    free(blob);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Schema 1 → 2: the per-chunk index rows of schema 1 become per-chunk trace lists and
 * bucketed posting rows; every existing bucket counts as sealed (new chunks start in the
 * next one). */
static int migrate_1_to_2(sqlite3 *db, char *e, size_t el) {
    char sql[512];
    if (traces_exec(db,
                    "ALTER TABLE trace_idx RENAME TO v1_trace_idx;"
                    "ALTER TABLE sum_idx RENAME TO v1_sum_idx;"
                    "ALTER TABLE tag_idx RENAME TO v1_tag_idx;",
                    e, el) ||
        traces_exec(db, schema_index_v2, e, el) || migrate_trace_lists(db, e, el))
        return -1;
    snprintf(sql, sizeof sql,
             "INSERT INTO trace_post(b, tid, chunk) SELECT chunk >> %d, tid, chunk FROM v1_trace_idx;"
             /* distinct powers of two: their sum is their OR, and stays within int64 */
             "INSERT INTO tag_post(b, h, bits) SELECT chunk >> %d, h, sum(1 << (chunk & %d)) FROM v1_tag_idx"
             " GROUP BY chunk >> %d, h;",
             TRACE_BUCKET_BITS, BUCKET_BITS, CHUNK_BUCKET - 1, BUCKET_BITS);
    if (traces_exec(db, sql, e, el)) return -1;
    /* summaries: rows come in (k, chunk) order, so each (k, bucket) group is contiguous */
    sqlite3_stmt *rd = NULL, *wr = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT k, chunk, min_start, max_start, min_dur, max_dur FROM v1_sum_idx ORDER BY k, chunk", -1,
        &rd, NULL);
    if (rc == SQLITE_OK)
        rc =
            sqlite3_prepare_v2(db, "INSERT INTO sum_post(b, k, bits, bounds) VALUES(?,?,?,?)", -1, &wr, NULL);
    uint8_t bounds[CHUNK_BUCKET * SUM_BOUNDS * 8];
    size_t nb = 0;
    uint64_t bits = 0, cur_k = 0;
    int64_t cur_b = -1;
    for (int more = rc == SQLITE_OK; more;) {
        rc = sqlite3_step(rd);
        int row = rc == SQLITE_ROW;
        if (!row && rc != SQLITE_DONE) break;
        uint64_t k = row ? (uint64_t)sqlite3_column_int64(rd, 0) : 0;
        int64_t chunk = row ? sqlite3_column_int64(rd, 1) : 0;
        if (cur_b >= 0 && (!row || k != cur_k || chunk >> BUCKET_BITS != cur_b)) {
            sqlite3_bind_int64(wr, 1, cur_b);
            sqlite3_bind_int64(wr, 2, (int64_t)cur_k);
            sqlite3_bind_int64(wr, 3, (int64_t)bits);
            sqlite3_bind_blob(wr, 4, bounds, (int)nb, SQLITE_STATIC);
            rc = sqlite3_step(wr);
            sqlite3_reset(wr);
            if (rc != SQLITE_DONE) break;
            cur_b = -1;
        }
        if (!row) {
            more = 0;
            rc = SQLITE_DONE;
            break;
        }
        if (cur_b < 0) {
            cur_b = chunk >> BUCKET_BITS;
            cur_k = k;
            bits = 0;
            nb = 0;
        }
        bits |= 1ULL << (chunk & (CHUNK_BUCKET - 1));
        for (int i = 0; i < SUM_BOUNDS; i++, nb += 8)
            put_u64(bounds + nb, (uint64_t)sqlite3_column_int64(rd, 2 + i));
    }
    if (rc != SQLITE_DONE) snprintf(e, el, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(rd);
    sqlite3_finalize(wr);
    if (rc != SQLITE_DONE) return -1;
    snprintf(
        sql, sizeof sql,
        "UPDATE meta SET v = coalesce((SELECT (max(id) >> %d) + 1 FROM chunk), 0) WHERE k = 'open_bucket';"
        "DROP TABLE v1_trace_idx; DROP TABLE v1_sum_idx; DROP TABLE v1_tag_idx;",
        BUCKET_BITS);
    return traces_exec(db, sql, e, el);
}

/* The quarantine of schema 3: damaged chunk rows moved aside whole (never deleted), with
 * when and why. */
static const char *const schema_quarantine_v3 =
    "CREATE TABLE quarantine(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, reason TEXT NOT NULL,"
    " min_start INTEGER, max_start INTEGER, min_dur INTEGER, max_dur INTEGER, nspans INTEGER,"
    " rawlen INTEGER, data BLOB, crc INTEGER);";

/* Schema 2 → 3: chunks and operation rows get a CRC-32C column (NULL for the rows written
 * before: chunks are then checked by decoding only, operation rows not at all until they
 * are refreshed) and damaged chunks a quarantine table. */
static int migrate_2_to_3(sqlite3 *db, char *e, size_t el) {
    return traces_exec(
               db, "ALTER TABLE chunk ADD COLUMN crc INTEGER; ALTER TABLE operation ADD COLUMN crc INTEGER",
               e, el) ||
                   traces_exec(db, schema_quarantine_v3, e, el)
               ? -1
               : 0;
}

/* Migrations: entry i upgrades user_version i to i+1 inside one transaction (entry 0, a file
 * of ours without tables, gets the current schema at once). */
typedef int (*migration_fn)(sqlite3 *db, char *e, size_t el);
static int create_current(sqlite3 *db, char *e, size_t el) {
    return traces_exec(db, schema_tables, e, el) || traces_exec(db, schema_index_v2, e, el) ||
                   traces_exec(db, schema_quarantine_v3, e, el)
               ? -1
               : 0;
}
static const migration_fn migrations[TRACES_SCHEMA_VERSION] = {create_current, migrate_1_to_2,
                                                               migrate_2_to_3};

static int64_t q_int(sqlite3 *db, const char *sql, int *rc) {
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    *rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (*rc == SQLITE_OK) {
        *rc = sqlite3_step(st);
        if (*rc == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
            *rc = SQLITE_OK;
        } else if (*rc == SQLITE_DONE) {
            *rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return v;
}

static int schema_check(sqlite3 *db, const char *path, char *err, size_t errlen) {
    int rc;
    int64_t app = q_int(db, "PRAGMA application_id", &rc);
    if (rc != SQLITE_OK) goto bad;
    int64_t ver = q_int(db, "PRAGMA user_version", &rc);
    if (rc != SQLITE_OK) goto bad;
    int64_t ntab = q_int(db, "SELECT count(*) FROM sqlite_master", &rc);
    if (rc != SQLITE_OK) goto bad;
    if (app == 0 && ver == 0 && ntab == 0) {
        /* a new file: auto_vacuum must be chosen before the first table exists */
        char e[256];
        if (traces_exec(db, "PRAGMA auto_vacuum=INCREMENTAL", e, sizeof e) ||
            traces_exec(db, "PRAGMA journal_mode=WAL", e, sizeof e) ||
            traces_exec(db, "BEGIN", e, sizeof e) || create_current(db, e, sizeof e)) {
            snprintf(err, errlen, "cannot create the trace database %s: %s", path, e);
            return -1;
        }
        char sql[128];
        snprintf(sql, sizeof sql, "PRAGMA application_id=%d; PRAGMA user_version=%d; COMMIT", TRACES_APP_ID,
                 TRACES_SCHEMA_VERSION);
        if (traces_exec(db, sql, e, sizeof e)) {
            snprintf(err, errlen, "cannot create the trace database %s: %s", path, e);
            return -1;
        }
        return 0;
    }
    if (app != TRACES_APP_ID) {
        snprintf(err, errlen,
                 "%s is an SQLite database of another program (application_id %lld), not a tricorder trace "
                 "store; move it away or choose another --data-dir",
                 path, (long long)app);
        return -1;
    }
    if (ver > TRACES_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s has trace schema version %lld, newer than this tricorder understands (%d); run a newer "
                 "tricorder",
                 path, (long long)ver, TRACES_SCHEMA_VERSION);
        return -1;
    }
    for (int64_t v = ver; v < TRACES_SCHEMA_VERSION; v++) {
        char e[256], sql[96];
        int64_t to = v == 0 ? TRACES_SCHEMA_VERSION : v + 1;
        snprintf(sql, sizeof sql, "PRAGMA user_version=%lld; COMMIT", (long long)to);
        if (traces_exec(db, "BEGIN IMMEDIATE", e, sizeof e) || migrations[v](db, e, sizeof e) ||
            traces_exec(db, sql, e, sizeof e)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            snprintf(err, errlen, "cannot upgrade the trace database %s to schema %lld: %s", path,
                     (long long)to, e);
            return -1;
        }
        TR_INFO("trace database upgraded", "schema=%lld", (long long)to);
        v = to - 1;
    }
    char e[256];
    if (traces_exec(db, "PRAGMA journal_mode=WAL", e, sizeof e)) {
        snprintf(err, errlen, "trace database %s: %s", path, e);
        return -1;
    }
    /* a cheap structural check of the schema pages: a damaged file fails here, not later */
    q_int(db, "SELECT count(*) FROM (SELECT 1 FROM chunk ORDER BY id DESC LIMIT 1)", &rc);
    if (rc != SQLITE_OK) goto bad;
    return 0;
bad:
    if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT)
        snprintf(err, errlen,
                 "%s is not a usable trace database (%s): it is damaged or not an SQLite file; move it away "
                 "to start afresh",
                 path, sqlite3_errstr(rc));
    else
        snprintf(err, errlen, "cannot read the trace database %s: %s", path, sqlite3_errmsg(db));
    return -1;
}

static void q_push(struct tqueue *q, tq_item *it);

/* ---- WAL damage, seen before SQLite's recovery drops it ---- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* SQLite's WAL checksum over n bytes (n a multiple of 8), continuing s[2]. */
static void wal_cksum(int native_le, const uint8_t *p, size_t n, uint32_t s[2]) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint32_t x0, x1;
        if (native_le) {
            x0 = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
                 (uint32_t)p[i + 3] << 24;
            x1 = (uint32_t)p[i + 4] | (uint32_t)p[i + 5] << 8 | (uint32_t)p[i + 6] << 16 |
                 (uint32_t)p[i + 7] << 24;
        } else {
            x0 = be32(p + i);
            x1 = be32(p + i + 4);
        }
        s[0] += x0 + s[1];
        s[1] += x1 + s[0];
    }
}

/* Walks traces.db-wal as SQLite's recovery will: frames of this WAL generation (its salts)
 * whose cumulative checksum holds. When a frame fails although later frames of the same
 * generation hold commits, recovery will drop those commits (acknowledged spans): say so
 * loudly, count it, and keep a copy of the WAL for the post-mortem. A torn tail without a
 * commit after it is the normal trace of a crash mid-transaction (nothing acknowledged). */
/* The wal-index (-shm) header of the last process: its committed frame count (mxFrame) and
 * how many of them were already copied into the database (nBackfill), when the header is
 * initialised and its two copies agree. salt: the WAL header's salts, or NULL. */
static int shm_frames(const char *dbpath, const uint8_t *salt, int64_t *mx, int64_t *backfilled) {
    char shm[4200];
    snprintf(shm, sizeof shm, "%s-shm", dbpath);
    FILE *sf = fopen(shm, "rb");
    uint8_t ih[104];
    int ok = sf && fread(ih, 1, sizeof ih, sf) == sizeof ih && ih[12] == 1 && memcmp(ih, ih + 48, 48) == 0 &&
             (!salt || memcmp(ih + 32, salt, 8) == 0);
    if (sf) fclose(sf);
    if (!ok) return 0;
    uint32_t m, b;
    memcpy(&m, ih + 16, 4); /* native byte order */
    memcpy(&b, ih + 96, 4); /* WalCkptInfo.nBackfill */
    *mx = m;
    *backfilled = b;
    return 1;
}

int traces_wal_scan(const char *dbpath, traces_wal_report *out) {
    memset(out, 0, sizeof *out);
    out->bad_frame = -1;
    int64_t mx = 0, bf = 0;
    /* a WAL cut before its header: only the index can tell what it held */
    if (shm_frames(dbpath, NULL, &mx, &bf) && mx > bf) out->index_frames = mx, out->backfilled = bf;
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    FILE *f = fopen(wal, "rb");
    if (!f) return 0;
    uint8_t hdr[32];
    if (fread(hdr, 1, 32, f) != 32) {
        fclose(f);
        return 0;
    }
    uint32_t magic = be32(hdr), psize = be32(hdr + 8);
    if ((magic & 0xFFFFFFFE) != 0x377f0682 || psize < 512 || psize > 65536 || (psize & (psize - 1))) {
        fclose(f);
        return 0;
    }
    int native_le = (magic & 1) == 0;
    uint32_t s[2] = {0, 0};
    wal_cksum(native_le, hdr, 24, s);
    if (s[0] != be32(hdr + 24) || s[1] != be32(hdr + 28)) {
        fclose(f);
        return 0;
    } /* an unused or stale WAL */
    uint8_t *frame = malloc(24 + (size_t)psize);
    if (!frame) {
        fclose(f);
        return -1;
    }
    int64_t n = 0, bad_at = -1, commits_after = 0, frames_after = 0, good_commits = 0, last_commit = 0;
    while (fread(frame, 1, 24 + (size_t)psize, f) == 24 + (size_t)psize) {
        n++;
        if (memcmp(frame + 8, hdr + 16, 8) != 0) break; /* an older generation: the end */
        if (bad_at >= 0) {
            frames_after++;
            if (be32(frame + 4)) commits_after++;
            continue;
        }
        uint32_t t[2] = {s[0], s[1]};
        wal_cksum(native_le, frame, 8, t);
        wal_cksum(native_le, frame + 24, psize, t);
        if (t[0] != be32(frame + 16) || t[1] != be32(frame + 20)) {
            bad_at = n;
            frames_after = 1;
            if (be32(frame + 4)) commits_after++;
            continue;
        }
        s[0] = t[0];
        s[1] = t[1];
        if (be32(frame + 4)) {
            good_commits++;
            last_commit = n;
        }
    }
    fclose(f);
    free(frame);
    out->frames_kept = last_commit;
    /* the wal-index (-shm) of the process that died says how many frames it had committed:
     * fewer that check out (beyond those already copied into the database) means a cut or
     * damaged WAL. SQLite rebuilds the index from the WAL at the next open: read it before. */
    out->index_frames = out->backfilled = 0;
    if (shm_frames(dbpath, hdr + 16, &mx, &bf)) {
        out->index_frames = mx;
        out->backfilled = bf;
    }
    out->bad_frame = bad_at;
    out->frames_dropped = frames_after;
    out->commits_dropped = commits_after;
    out->commits_kept = good_commits;
    return 0;
}

int traces_wal_keep_copy(const char *dbpath, char *copy, size_t cap) {
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    snprintf(copy, cap, "%s.damaged-%lld", wal, (long long)(tr_now_ms() / 1000));
    FILE *in = fopen(wal, "rb"), *out = fopen(copy, "wb");
    int copied = in && out;
    char buf[65536];
    size_t k;
    while (copied && (k = fread(buf, 1, sizeof buf, in)) > 0)
        copied = fwrite(buf, 1, k, out) == k;
    if (in) fclose(in);
    if (out && fclose(out) != 0) copied = 0;
    return copied ? 0 : -1;
}

static void wal_inspect(const char *dbpath) {
    traces_wal_report w;
    if (traces_wal_scan(dbpath, &w)) return;
    int damaged = w.bad_frame >= 0 && w.commits_dropped > 0;
    int truncated = w.index_frames > w.frames_kept && w.index_frames > w.backfilled;
    if (!damaged && !truncated) return;
    int64_t bad_at = w.bad_frame, frames_after = w.frames_dropped, commits_after = w.commits_dropped,
            good_commits = w.commits_kept;
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    char copy[4300];
    int copied = traces_wal_keep_copy(dbpath, copy, sizeof copy) == 0;
    tr_storage_error("traces", "wal_corrupt");
    if (damaged)
        TR_ERROR("trace WAL damaged: SQLite's recovery keeps the commits before the damaged frame and drops "
                 "the rest; the "
                 "spans in the dropped commits are lost",
                 "wal=\"%s\" bad_frame=%lld frames_dropped=%lld commits_dropped=%lld commits_kept=%lld "
                 "copy=\"%s\"",
                 wal, (long long)bad_at, (long long)frames_after, (long long)commits_after,
                 (long long)good_commits, copied ? copy : "(copy failed)");
    else
        TR_ERROR("trace WAL shorter than its index: the WAL was cut after frames its index counts as "
                 "committed; the "
                 "spans in the missing commits are lost",
                 "wal=\"%s\" frames_committed=%lld frames_present=%lld commits_kept=%lld copy=\"%s\"", wal,
                 (long long)w.index_frames, (long long)w.frames_kept, (long long)good_commits,
                 copied ? copy : "(copy failed)");
}

/* ---- errors ---- */

const char *traces_storage_error(sqlite3 *db, int rc, const char *what) {
    int sys = db ? sqlite3_system_errno(db) : 0;
    int prim = rc & 0xFF;
    /* SQLite clears the errno of a write that hit ENOSPC and reports SQLITE_FULL instead
     * (its only other cause, max_page_count, is not set by tricorder) */
    if (prim == SQLITE_FULL && sys == 0) sys = ENOSPC;
    const char *kind = prim == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT ? "disk_full"
                       : prim == SQLITE_IOERR                                ? "io"
                       : prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB     ? "corrupt"
                       : prim == SQLITE_READONLY || sys == EROFS             ? "readonly"
                       : prim == SQLITE_BUSY || prim == SQLITE_LOCKED        ? "busy"
                       : prim == SQLITE_NOMEM                                ? "nomem"
                                                                             : "other";
    tr_storage_error("traces", kind);
    char q[300];
    tr_log_quote(q, sizeof q, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    char key[64];
    snprintf(key, sizeof key, "%s/%s", what, kind);
    TR_ERROR_LIMITED(key, "trace store write failed",
                     "op=%s kind=%s error=%s code=%d errno=%d errno_text=\"%s\"", what, kind, q, rc, sys,
                     sys ? strerror(sys) : "none");
    return kind;
}

/* ---- quarantine ---- */

int chunk_quarantine(sqlite3 *db, int64_t id, const char *reason, int64_t now_ms) {
    static const char *const sql[] = {
        "INSERT OR REPLACE INTO "
        "quarantine(id,at,reason,min_start,max_start,min_dur,max_dur,nspans,rawlen,data,crc)"
        " SELECT id,?2,?3,min_start,max_start,min_dur,max_dur,nspans,rawlen,data,crc FROM chunk WHERE id=?1",
        /* the trace rows are found by bucket, not through the chunk's own (maybe damaged) list */
        "DELETE FROM trace_post WHERE b=?1 >> " TRACES_XSTR(TRACE_BUCKET_BITS) " AND chunk=?1",
        "DELETE FROM trace_idx WHERE chunk=?1",
        "DELETE FROM tag_idx WHERE chunk=?1",
        "DELETE FROM sum_idx WHERE chunk=?1",
        "DELETE FROM chunk WHERE id=?1",
    };
    int moved = 0;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK) return -1;
        sqlite3_bind_int64(st, 1, id);
        if (i == 0) {
            sqlite3_bind_int64(st, 2, now_ms);
            sqlite3_bind_text(st, 3, reason, -1, SQLITE_TRANSIENT);
        }
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return -1;
        if (i == 0) {
            moved = sqlite3_changes(db) > 0;
            if (!moved) return 0; /* gone already (quarantined or expired) */
        }
    }
    return moved;
}

/* Writer thread: one quarantine in its own transaction, logged once with the chunk id. */
static void quarantine_one(traces_store *s, tq_item *it) {
    char e[256];
    int moved = -1;
    if (traces_exec(s->wdb, "BEGIN IMMEDIATE", e, sizeof e) == 0) {
        moved = chunk_quarantine(s->wdb, it->call_arg, it->msg, tr_now_ms());
        if (moved < 0) snprintf(e, sizeof e, "%s", sqlite3_errmsg(s->wdb));
        if (moved < 0 || traces_exec(s->wdb, "COMMIT", e, sizeof e)) {
            moved = -1;
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    if (moved < 0) {
        /* never served all the same: every read checks the chunk again */
        TR_ERROR_LIMITED("quarantine", "trace store: cannot quarantine a damaged chunk",
                         "chunk=%lld reason=\"%s\" error=\"%s\"", (long long)it->call_arg, it->msg, e);
        traces_storage_error(s->wdb, sqlite3_errcode(s->wdb), "quarantine");
        return;
    }
    /* a reload of the chunk position is not needed: quarantined ids are never reused (ids
     * restart after the newest chunk, which a damaged old chunk is not, or in a new bucket) */
    if (moved) {
        TR_ERROR("trace store: damaged chunk quarantined; its spans are no longer served",
                 "chunk=%lld reason=\"%s\" table=quarantine", (long long)it->call_arg, it->msg);
        tr_counter_add(s->m.quarantined, 1);
        tr_gauge_add(s->m.quarantine_rows, 1);
    }
}

void traces_report_damage(traces_store *s, int64_t id, const char *reason) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    int fresh = !s->closing && u64set_add(&s->damage_seen, (uint64_t)id) == 1;
    tq_item *it = fresh ? calloc(1, sizeof *it) : NULL;
    if (it) {
        it->kind = TQ_QUARANTINE;
        it->call_arg = id;
        snprintf(it->msg, sizeof it->msg, "%s", reason);
        q_push(&s->writes, it);
        pthread_cond_signal(&s->cv_writer);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- queues ---- */

static void q_push(tqueue *q, tq_item *it) {
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
}

static tq_item *q_pop(tqueue *q) {
    tq_item *it = q->head;
    if (it) {
        q->head = it->next;
        if (!q->head) q->tail = NULL;
    }
    return it;
}

void traces_complete(traces_store *s, tq_item *it) {
    pthread_mutex_lock(&s->mu);
    q_push(&s->completions, it);
    pthread_mutex_unlock(&s->mu);
    if (s->cfg.wake) s->cfg.wake(s->cfg.wake_ctx);
}

void traces_run_completions(traces_store *s) {
    for (;;) {
        pthread_mutex_lock(&s->mu);
        tq_item *it = q_pop(&s->completions);
        pthread_mutex_unlock(&s->mu);
        if (!it) return;
        if (it->kind == TQ_INGEST)
            it->done(it->cookie, it->status, it->rejected, it->msg);
        else if (it->kind == TQ_JOB && it->jdone)
            it->jdone(it->arg);
        free(it);
    }
}

/* ---- threads ---- */

#define RETENTION_EVERY_MS 10000

static void *writer_main(void *arg) {
    traces_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        tq_item *it = q_pop(&s->writes);
        if (it) {
            /* group commit: the exports queued behind this one share its transaction */
            tq_item *batch[INGEST_BATCH_MAX];
            size_t nb = 0;
            if (it->kind == TQ_INGEST) {
                batch[nb++] = it;
                while (nb < INGEST_BATCH_MAX && s->writes.head && s->writes.head->kind == TQ_INGEST)
                    batch[nb++] = q_pop(&s->writes);
            }
            pthread_mutex_unlock(&s->mu);
            if (nb) {
                ingest_batch(s, batch, nb);
                for (size_t i = 0; i < nb; i++)
                    traces_complete(s, batch[i]);
            } else if (it->kind == TQ_QUARANTINE) {
                quarantine_one(s, it);
                free(it);
            } else {
                it->call_ret = it->call(s, it->call_arg);
                pthread_mutex_lock(&s->mu);
                it->call_finished = 1;
                pthread_cond_broadcast(&s->cv_call);
                pthread_mutex_unlock(&s->mu);
            }
            /* between exports, keep expiring in small steps so neither starves */
            if (s->retention_busy) {
                int64_t d;
                s->retention_busy = retention_step(s, tr_now_ms(), &d);
            }
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->closing) break;
        int64_t now = tr_now_ms();
        tr_log_limited_tick(); /* pending counts of rate-limited errors, at least each second */
        if (s->retention_busy || now >= s->next_retention_ms) {
            pthread_mutex_unlock(&s->mu);
            int64_t d;
            s->retention_busy = retention_step(s, now, &d);
            if (!s->retention_busy) s->next_retention_ms = now + RETENTION_EVERY_MS;
            pthread_mutex_lock(&s->mu);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t wait = s->next_retention_ms - now;
        if (wait > 1000) wait = 1000;
        until.tv_sec += wait / 1000;
        until.tv_nsec += (wait % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv_writer, &s->mu, &until);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *reader_main(void *arg) {
    traces_store *s = arg;
    char err[256];
    traces_reader *r = traces_reader_open(s, err, sizeof err);
    if (!r) TR_ERROR("trace reader cannot open the database", "error=\"%s\"", err);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        tq_item *it = q_pop(&s->jobs);
        if (it) {
            pthread_mutex_unlock(&s->mu);
            if (r)
                it->run(r, it->arg);
            else
                it->run(NULL, it->arg);
            traces_complete(s, it);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->closing) break;
        pthread_cond_wait(&s->cv_reader, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    traces_reader_close(r);
    return NULL;
}

static void db_size_collect(void *ctx) {
    traces_store *s = ctx;
    tr_gauge_set(s->m.db_bytes, (double)traces_disk_bytes(s));
}

int64_t traces_wal_budget(int64_t retention_bytes) {
    int64_t b = retention_bytes / 4;
    if (b < 64 * 1024) b = 64 * 1024;
    if (b > 64 * 1024 * 1024) b = 64 * 1024 * 1024;
    return b;
}

int64_t traces_wal_bytes(traces_store *s) {
    char p[4200];
    snprintf(p, sizeof p, "%s-wal", s->path);
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

int64_t traces_disk_bytes(traces_store *s) {
    int64_t total = 0;
    const char *suffix[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", s->path, suffix[i]);
        struct stat st;
        if (stat(p, &st) == 0) total += (int64_t)st.st_size;
    }
    return total;
}

static void metrics_init(traces_store *s) {
    traces_metrics *m = &s->m;
    m->stored =
        tr_counter_new("tricorder_traces_spans_stored_total", "Spans committed to the trace store.", NULL);
    m->rejected = tr_counter_new("tricorder_traces_spans_rejected_total",
                                 "Spans refused by the trace store (no valid trace or span id).", NULL);
    m->expired = tr_counter_new("tricorder_traces_spans_expired_total",
                                "Spans deleted by trace retention (age or size).", NULL);
    m->db_bytes = tr_gauge_new("tricorder_traces_db_size_bytes",
                               "Size of the trace database file and its write-ahead log.", NULL);
    m->tx_seconds = tr_histogram_new(
        "tricorder_traces_transaction_duration_seconds",
        "Time of one trace store write transaction (the exports queued together: group commit).", NULL,
        tr_latency_buckets, tr_latency_buckets_n);
    m->search_seconds = tr_histogram_new("tricorder_traces_search_duration_seconds",
                                         "Time of one trace search or lookup in the store.", NULL,
                                         tr_latency_buckets, tr_latency_buckets_n);
    m->dropped_attrs = tr_counter_new("tricorder_traces_limit_dropped_total",
                                      "Span items dropped by a trace store limit.", "item=\"attributes\"");
    m->dropped_events = tr_counter_new("tricorder_traces_limit_dropped_total",
                                       "Span items dropped by a trace store limit.", "item=\"events\"");
    m->dropped_links = tr_counter_new("tricorder_traces_limit_dropped_total",
                                      "Span items dropped by a trace store limit.", "item=\"links\"");
    m->truncated_values = tr_counter_new("tricorder_traces_values_truncated_total",
                                         "Attribute values cut to --trace-max-attribute-value-bytes.", NULL);
    m->chunks = tr_counter_new("tricorder_traces_chunks_written_total",
                               "Compressed span chunks written to the trace store.", NULL);
    m->quarantined = tr_counter_new(
        "tricorder_traces_chunks_quarantined_total",
        "Damaged span chunks (checksum mismatch or undecodable) moved to the quarantine table of traces.db.",
        NULL);
    m->quarantine_rows =
        tr_gauge_new("tricorder_traces_quarantine_chunks",
                     "Chunks kept in the quarantine table of traces.db (never deleted by tricorder).", NULL);
    int rc;
    tr_gauge_set(m->quarantine_rows, (double)q_int(s->wdb, "SELECT count(*) FROM quarantine", &rc));
    tr_selfmon_add_collector(db_size_collect, s);
}

traces_store *traces_open(const traces_config *cfg, char *err, size_t errlen) {
    traces_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    if (s->cfg.readers <= 0) s->cfg.readers = 1;
    size_t pl = strlen(cfg->dir) + 16;
    s->path = malloc(pl);
    if (!s->path) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    snprintf(s->path, pl, "%s/traces.db", cfg->dir);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_writer, NULL);
    pthread_cond_init(&s->cv_reader, NULL);
    pthread_cond_init(&s->cv_call, NULL);
    wal_inspect(s->path); /* before SQLite's recovery rewrites it */
    if (traces_db_open(s->path, 0, &s->wdb, err, errlen)) goto fail;
    if (schema_check(s->wdb, s->path, err, errlen)) goto fail;
    /* FULL in WAL mode: the WAL is fsynced at every commit, before the exports it holds are
     * acknowledged (the writer batches the exports queued meanwhile into one commit, so the
     * fsync is shared). NORMAL: a commit is in the OS before the acknowledgement, so it
     * survives a crash of tricorder (kill -9) but not of the machine. */
    if (traces_exec(s->wdb, s->cfg.sync_normal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", err,
                    errlen) ||
        traces_exec(s->wdb, "PRAGMA wal_autocheckpoint=8192; PRAGMA journal_size_limit=67108864", err,
                    errlen))
        goto fail;
    if (s->cfg.retention_bytes > 0) {
        /* a size cap counts the WAL: checkpoint and cut it back at a budget of the cap */
        int64_t budget = traces_wal_budget(s->cfg.retention_bytes);
        char sql[160];
        int rc;
        int64_t psize = q_int(s->wdb, "PRAGMA page_size", &rc);
        int64_t pages = psize > 0 ? budget / 2 / psize : 16;
        if (pages < 16) pages = 16;
        snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint=%lld; PRAGMA journal_size_limit=%lld",
                 (long long)pages, (long long)budget);
        if (traces_exec(s->wdb, sql, err, errlen)) goto fail;
    }
    if (ingest_init(s, err, errlen)) goto fail;
    metrics_init(s);
    s->next_retention_ms = tr_now_ms() + 1000;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the trace writer thread");
        goto fail;
    }
    s->readers = calloc((size_t)s->cfg.readers, sizeof *s->readers);
    if (!s->readers) {
        snprintf(err, errlen, "out of memory");
        traces_close(s);
        return NULL;
    }
    for (int i = 0; i < s->cfg.readers; i++) {
        if (pthread_create(&s->readers[i], NULL, reader_main, s) != 0) {
            snprintf(err, errlen, "cannot start a trace reader thread");
            traces_close(s);
            return NULL;
        }
        s->nreaders++;
    }
    return s;
fail:
    ingest_fini(s);
    if (s->wdb) sqlite3_close(s->wdb);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_writer);
    pthread_cond_destroy(&s->cv_reader);
    pthread_cond_destroy(&s->cv_call);
    free(s->path);
    free(s);
    return NULL;
}

void traces_close(traces_store *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_broadcast(&s->cv_writer);
    pthread_cond_broadcast(&s->cv_reader);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    for (int i = 0; i < s->nreaders; i++)
        pthread_join(s->readers[i], NULL);
    free(s->readers);
    traces_run_completions(s);
    ingest_fini(s);
    sqlite3_close(s->wdb);
    u64set_free(&s->damage_seen);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_writer);
    pthread_cond_destroy(&s->cv_reader);
    pthread_cond_destroy(&s->cv_call);
    free(s->path);
    free(s);
}

void traces_submit(traces_store *s, const traces_request *req, traces_done_fn done, void *cookie) {
    tq_item *it = calloc(1, sizeof *it);
    if (!it) {
        done(cookie, TRACES_UNAVAILABLE, 0, "out of memory");
        return;
    }
    it->kind = TQ_INGEST;
    it->req = req;
    it->done = done;
    it->cookie = cookie;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        free(it);
        done(cookie, TRACES_UNAVAILABLE, 0, "trace store is shutting down");
        return;
    }
    q_push(&s->writes, it);
    pthread_cond_signal(&s->cv_writer);
    pthread_mutex_unlock(&s->mu);
}

int traces_job_submit(traces_store *s, traces_job_run run, traces_job_done done, void *arg) {
    tq_item *it = calloc(1, sizeof *it);
    if (!it) return -1;
    it->kind = TQ_JOB;
    it->run = run;
    it->jdone = done;
    it->arg = arg;
    pthread_mutex_lock(&s->mu);
    if (s->closing || s->nreaders == 0) {
        pthread_mutex_unlock(&s->mu);
        free(it);
        return -1;
    }
    q_push(&s->jobs, it);
    pthread_cond_signal(&s->cv_reader);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Runs fn on the writer thread and waits for it. */
static int64_t writer_call(traces_store *s, int64_t (*fn)(traces_store *, int64_t), int64_t arg) {
    tq_item it = {.kind = TQ_CALL, .call = fn, .call_arg = arg};
    pthread_mutex_lock(&s->mu);
    q_push(&s->writes, &it);
    pthread_cond_signal(&s->cv_writer);
    while (!it.call_finished)
        pthread_cond_wait(&s->cv_call, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return it.call_ret;
}

static int64_t retention_all(traces_store *s, int64_t now_ms) {
    int64_t total = 0, d;
    for (int i = 0; i < 1000000; i++) {
        int more = retention_step(s, now_ms, &d);
        total += d;
        if (!more) break;
    }
    s->retention_busy = 0;
    return total;
}

int64_t traces_retention_run(traces_store *s, int64_t now_ms) {
    return writer_call(s, retention_all, now_ms);
}

traces_reader *traces_reader_open(traces_store *s, char *err, size_t errlen) {
    traces_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->s = s;
    if (traces_db_open(s->path, 1, &r->db, err, errlen) || reader_prepare(r, err, errlen)) {
        traces_reader_close(r);
        return NULL;
    }
    return r;
}

void traces_reader_close(traces_reader *r) {
    if (!r) return;
    reader_finalize(r);
    sqlite3_close(r->db);
    free(r);
}
