/* Private to the OTLP module and its tests: decoders, response encoders, gzip. */
#ifndef TR_OTLP_INT_H
#define TR_OTLP_INT_H

#include "otlp.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/pbwire.h"
#include "util/text.h"

/* Decodes a binary protobuf Export*ServiceRequest of signal `sig` into `a`. On success sets
 * ex->metrics or ex->traces and ex->items (data points / spans) and returns 0. On malformed
 * input (bad wire format, invalid UTF-8 in a string field, an id of the wrong length) returns
 * -1 with a one-line reason in err. Never reads outside buf[0..len). */
int otlp_decode_pb(otlp_signal sig, const uint8_t *buf, size_t len, tr_arena *a, otlp_export *ex, char *err,
                   size_t errlen);

/* As otlp_decode_pb for the OTLP JSON encoding (lowerCamelCase or snake_case keys, hex ids,
 * 64-bit integers as strings or numbers, enums as integers). */
int otlp_decode_json(otlp_signal sig, const uint8_t *buf, size_t len, tr_arena *a, otlp_export *ex, char *err,
                     size_t errlen);

/* Shared tail of both decoders: validates the request in ex->metrics / ex->traces (UTF-8 of
 * every string, id lengths, attribute nesting) and sets ex->items. Error paths name fields in
 * lowerCamelCase when `json`, else as in the .proto. Returns 0, or -1 with a reason in err. */
int otlp_finish_decode(otlp_export *ex, int json, char *err, size_t errlen);
/* Writes a field path such as "resource_spans[0].scope_spans[1].spans[3].name" (or the
 * lowerCamelCase form when `json`) from n proto field names and element indexes (-1: none)
 * into out; returns its length (truncated to cap - 1). */
size_t otlp_field_path(char *out, size_t cap, const char *const *names, const long *idx, int n, int json);

/* Appends the Export*ServiceResponse for `res` to out, as protobuf or as OTLP JSON. */
void otlp_encode_response(otlp_signal sig, int json, const otlp_result *res, tr_buf *out);
/* Appends a google.rpc.Status (code = gRPC code, message) as protobuf or JSON. */
void otlp_encode_status(int json, int grpc_code, const char *message, tr_buf *out);

/* gRPC status codes used by the receiver. */
enum {
    GRPC_OK = 0,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_UNAUTHENTICATED = 16
};
int otlp_status_to_grpc(otlp_status st);
int otlp_status_to_http(otlp_status st);

#endif
