/* Checks on a request's wire bytes that protobuf-c's unpacked message cannot show. */
#ifndef QUIVER_SERVER_STRCHECK_H
#define QUIVER_SERVER_STRCHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "quiver/status.h"

/* protobuf-c hands a string field to C as a NUL-terminated copy, so "ref\0junk" reads as "ref"
 * and a request would be served for another name than the one sent. Walks the encoded message
 * (already unpacked by protobuf-c, so well formed; every length is still checked) and every
 * message nested in it, and refuses a string field that holds a NUL byte or is not UTF-8 (proto3
 * strings must be). QV_OK, or QV_EINVAL naming the message, the field and the byte offset. */
qv_status qv__wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                                 qv_error *err);

#endif
