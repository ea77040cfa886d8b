/* Logging: one logfmt line per event on stderr, `ts=… level=… msg="…" key=value…`. */
#ifndef TR_LOG_H
#define TR_LOG_H

typedef enum { TR_LOG_DEBUG = 0, TR_LOG_INFO, TR_LOG_WARN, TR_LOG_ERROR } tr_log_level;

void tr_log_set_level(tr_log_level l);
tr_log_level tr_log_get_level(void);
/* Parses "debug|info|warn|error"; returns 0 and sets *out, or -1. */
int tr_log_parse_level(const char *s, tr_log_level *out);

/* Writes one line: `msg` is quoted; `kv` is printf-formatted logfmt pairs (may be NULL).
 * Values given through tr_log_quote() stay one line whatever they contain. */
void tr_log(tr_log_level l, const char *msg, const char *kv_fmt, ...) __attribute__((format(printf, 3, 4)));

/* Quotes `s` for logfmt into `out` (size `cap`); returns out. Newlines and quotes escaped. */
const char *tr_log_quote(char *out, unsigned cap, const char *s);

/* Rate-limited logging, for errors that can repeat at every request (a full disk, a damaged
 * file): the first occurrence of a (call site, key) is written at once; later ones within
 * TR_LOG_LIMIT_MS are only counted, and the count is written as one line
 * (`msg=… repeated=N window=10s`) at the next occurrence after the window, or by
 * tr_log_limited_tick() (call it every second or so from any thread). `key` (may be NULL)
 * separates kinds of one site, e.g. the errno name. Thread-safe. */
#define TR_LOG_LIMIT_MS 10000
void tr_log_limited(const char *site, const char *key, tr_log_level l, const char *msg, const char *kv_fmt,
                    ...) __attribute__((format(printf, 5, 6)));
/* Writes the pending counts of windows that have ended. */
void tr_log_limited_tick(void);
#define TR_LOG_STR_(x) #x
#define TR_LOG_XSTR(x) TR_LOG_STR_(x)
#define TR_ERROR_LIMITED(key, ...)                                                                           \
    tr_log_limited(__FILE__ ":" TR_LOG_XSTR(__LINE__), key, TR_LOG_ERROR, __VA_ARGS__)
#define TR_WARN_LIMITED(key, ...)                                                                            \
    tr_log_limited(__FILE__ ":" TR_LOG_XSTR(__LINE__), key, TR_LOG_WARN, __VA_ARGS__)

/* Tests: log lines go to fd (default 2); the limiter's clock in ms (NULL: CLOCK_MONOTONIC);
 * forget every limiter state. */
void tr_log_set_fd(int fd);
void tr_log_set_clock(long long (*now_ms)(void));
void tr_log_limited_reset(void);

#define TR_DEBUG(...) tr_log(TR_LOG_DEBUG, __VA_ARGS__)
#define TR_INFO(...) tr_log(TR_LOG_INFO, __VA_ARGS__)
#define TR_WARN(...) tr_log(TR_LOG_WARN, __VA_ARGS__)
#define TR_ERROR(...) tr_log(TR_LOG_ERROR, __VA_ARGS__)

#endif
