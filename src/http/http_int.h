/* Internals shared by the HTTP server's files (server.c, stream.c). */
#ifndef TR_HTTP_INT_H
#define TR_HTTP_INT_H

/* Counts a reply in /metrics by status class. */
void tr_http__count_reply(int status);
/* A reply (whole or streamed) is about to start: while shutting down it gets
 * `Connection: close` (see drain.h). */
struct evhttp_request;
void tr_http__reply_starting(struct evhttp_request *req);
/* A request's reply is complete (the in-flight count drops). */
void tr_http__request_finished(void);

#endif
