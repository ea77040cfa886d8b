/* OTLP/gRPC over HTTP/2 cleartext (nghttp2 on libevent). Placeholder until the transport
 * lands: accepts nothing. */
#include <stdlib.h>
#include <unistd.h>

#include "otlp.h"

struct otlp_grpc {
    int fd;
};

otlp_grpc *otlp_grpc_new(struct event_base *base, otlp_receiver *r, int fd) {
    (void)base;
    (void)r;
    otlp_grpc *g = calloc(1, sizeof *g);
    if (g) g->fd = fd;
    return g;
}
void otlp_grpc_stop_accepting(otlp_grpc *g) { (void)g; }
unsigned otlp_grpc_connections(const otlp_grpc *g) { (void)g; return 0; }
void otlp_grpc_free(otlp_grpc *g) {
    if (!g) return;
    close(g->fd);
    free(g);
}
