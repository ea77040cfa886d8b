/* Credentials read from files: htpasswd users with bcrypt hashes (--basic-auth-file), bearer
 * tokens one per line (--ingest-token-file), the bcrypt check itself (libxcrypt, slow: run it
 * on the work queue, never on the loop), a keyed hash for caching verified pairs, and a
 * watcher that tells when a file changed (inode, size or mtime). */
#ifndef TR_CREDENTIALS_H
#define TR_CREDENTIALS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TR_HTPASSWD_MAX_USERS 10000
#define TR_HTPASSWD_MAX_BYTES (4u << 20) /* a larger file is refused before it is read */
#define TR_CRED_MAX_LEN 256              /* longest user name, password or token accepted */

typedef struct tr_htpasswd tr_htpasswd;

/* Parses htpasswd text: one `user:hash` a line, blank lines and lines starting with '#'
 * ignored, CRLF accepted. Hashes must be bcrypt ($2a$, $2b$ or $2y$, cost 04..31, 53 more
 * characters); anything else (MD5 $apr1$, SHA {SHA}, crypt, plain) is refused with the line
 * number, as is a duplicate user, an empty user, a NUL byte or more than
 * TR_HTPASSWD_MAX_USERS users. Returns NULL with err set (also when out of memory). */
tr_htpasswd *tr_htpasswd_parse(const char *text, size_t len, char *err, size_t errlen);
void tr_htpasswd_free(tr_htpasswd *p);
size_t tr_htpasswd_count(const tr_htpasswd *p);
/* The stored hash of user (ulen bytes), or, for a user not in the file, a fixed hash of the
 * highest cost in the file, so that verifying an unknown user costs as much as a known one.
 * *known tells which. Never NULL. */
const char *tr_htpasswd_hash(const tr_htpasswd *p, const char *user, size_t ulen, int *known);

/* 1 when password matches the bcrypt hash (crypt_r; thread-safe; slow by design). */
int tr_bcrypt_verify(const char *password, const char *hash);

typedef struct tr_tokens tr_tokens;
/* One token a line; blank lines and '#' lines ignored; surrounding spaces and CR dropped.
 * A token with a NUL, a control character or longer than TR_CRED_MAX_LEN is refused. An
 * empty list is valid (then nothing matches). NULL with err set on error. */
tr_tokens *tr_tokens_parse(const char *text, size_t len, char *err, size_t errlen);
void tr_tokens_free(tr_tokens *t);
size_t tr_tokens_count(const tr_tokens *t);
/* 1 when given equals one of the tokens (each compared in constant time). */
int tr_tokens_match(const tr_tokens *t, const char *given);

/* SipHash-2-4 of p[0..n) under a 128-bit key. */
uint64_t tr_siphash(const uint8_t key[16], const void *p, size_t n);
/* Fills key with random bytes (getrandom); 0 or -1. */
int tr_random_bytes(void *key, size_t n);

/* What identifies a file's version. */
typedef struct tr_file_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    int exists;
} tr_file_stamp;
/* Reads the stamp of path; returns 1 when it differs from *st (and updates it), else 0. */
int tr_file_changed(const char *path, tr_file_stamp *st);
/* Reads a whole file of at most max bytes (NUL-terminated). Returns a malloc'd buffer with
 * *len set, or NULL with err set. */
char *tr_read_small_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif

/* ---- the credentials in force, reloaded from their files ---- */

struct event_base;
typedef struct tr_credstore tr_credstore;
typedef struct tr_credstore_config {
    const char *basic_user, *basic_pass; /* --basic-auth (plain text); NULL: none */
    const char *htpasswd_file;           /* --basic-auth-file; NULL: none */
    const char *token;                   /* --ingest-token; NULL: none */
    const char *token_file;              /* --ingest-token-file; NULL: none */
    int64_t check_interval_ms;           /* how often the files are looked at (0: 2 s) */
} tr_credstore_config;
/* Reads the files (an unreadable or invalid file is an error here) and, with a base, looks
 * at them every check_interval_ms: a changed file that parses replaces the old credentials
 * (logged); one that does not keeps them (one log line per change). NULL with err set. */
tr_credstore *tr_credstore_new(struct event_base *base, const tr_credstore_config *cfg, char *err,
                               size_t errlen);
void tr_credstore_free(tr_credstore *s);
/* Reads the files again now, if they changed (the timer's work; for tests and SIGHUP). */
void tr_credstore_check(tr_credstore *s);
/* Any basic-auth credentials configured (plain or file) / any token configured. */
int tr_credstore_has_basic(const tr_credstore *s);
int tr_credstore_has_tokens(const tr_credstore *s);
/* The Authorization header carries `Bearer <t>` with t one of the tokens. */
int tr_credstore_bearer_ok(const tr_credstore *s, const char *authorization);
/* The plain --basic-auth pair, or NULL. */
const char *tr_credstore_plain_user(const tr_credstore *s);
const char *tr_credstore_plain_pass(const tr_credstore *s);
/* The htpasswd users in force (NULL without --basic-auth-file) and a counter that changes
 * with every reload (cached verifications of an older generation are void). */
const tr_htpasswd *tr_credstore_users(const tr_credstore *s);
uint64_t tr_credstore_generation(const tr_credstore *s);
