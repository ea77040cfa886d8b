/* The application: opens the data dir, the stores and the listeners, runs the event loop
 * until SIGTERM/SIGINT, then shuts down in order. */
#ifndef TR_APP_H
#define TR_APP_H

#include "config.h"

/* Runs tricorder with `cfg`; returns the process exit code (0 after a clean shutdown,
 * 1 when start-up failed, with one clear log line saying why). */
int tr_app_run(const tr_config *cfg);

/* Binds and listens on "host:port" (":port" = all interfaces). Returns a non-blocking fd or
 * -1 with a message in err. */
int tr_app_listen(const char *addr, char *err, size_t errlen);

/* Asks the running tricorder at cfg->http_addr for GET /healthz (the image's HEALTHCHECK, so
 * that it needs no curl). Returns 0 when it answered 200, else 1. */
int tr_app_healthcheck(const tr_config *cfg);

#endif
