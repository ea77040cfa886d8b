/* Graceful shutdown of the HTTP/1.1 connections (private to src/http/): which connections have
 * a request in progress, so that on SIGTERM every request already read (or being read) is
 * answered with `Connection: close` and idle keep-alive connections are closed. The server
 * calls these from four places: dispatch, reply, connection close and stop. */
#ifndef TR_HTTP_DRAIN_H
#define TR_HTTP_DRAIN_H

#include <event2/http.h>

typedef struct tr_drain tr_drain;

tr_drain *tr_drain_new(void);
void tr_drain_free(tr_drain *d);
/* A request was read and is dispatched (its connection now has work in progress). */
void tr_drain_request(tr_drain *d, struct evhttp_request *req);
/* A reply to req is about to be sent: its work is done; while stopping, the reply gets
 * `Connection: close` (evhttp then closes the connection once it is written). */
void tr_drain_reply(tr_drain *d, struct evhttp_request *req);
/* The connection is being freed (from the server's close callback). */
void tr_drain_closed(tr_drain *d, struct evhttp_connection *evcon);
/* SIGTERM: from now on replies close their connections. */
void tr_drain_stop(tr_drain *d);
/* Closes the connections with nothing in progress: no request being handled or read, none
 * waiting unread in the socket, no reply being written. Returns the connections left. */
unsigned tr_drain_idle_close(tr_drain *d);

#endif
