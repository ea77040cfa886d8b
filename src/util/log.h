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
void tr_log(tr_log_level l, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quotes `s` for logfmt into `out` (size `cap`); returns out. Newlines and quotes escaped. */
const char *tr_log_quote(char *out, unsigned cap, const char *s);

#define TR_DEBUG(...) tr_log(TR_LOG_DEBUG, __VA_ARGS__)
#define TR_INFO(...) tr_log(TR_LOG_INFO, __VA_ARGS__)
#define TR_WARN(...) tr_log(TR_LOG_WARN, __VA_ARGS__)
#define TR_ERROR(...) tr_log(TR_LOG_ERROR, __VA_ARGS__)

#endif
