/* Internals shared by the HTTP server's files (server.c, stream.c). */
#ifndef TR_HTTP_INT_H
#define TR_HTTP_INT_H

/* Counts a reply in /metrics by status class. */
void tr_http__count_reply(int status);
/* A request's reply is complete (the in-flight count drops). */
void tr_http__request_finished(void);

#endif
