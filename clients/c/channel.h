/* Channel credentials and call metadata of the C client, shared with the CLI's load generator
 * (clients/cli/bench.c). Internal to clients/. */
#ifndef QUIVER_CLIENT_CHANNEL_H
#define QUIVER_CLIENT_CHANNEL_H

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "quiver/client.h"

/* Insecure credentials, or TLS ones from o->tls_ca (+ tls_cert/tls_key). NULL with err set when a
 * file cannot be read or the pair is incomplete. Release with grpc_channel_credentials_release. */
grpc_channel_credentials *qv__client_creds(const qv_client_opts *o, qv_error *err);

/* The "authorization: Bearer TOKEN" metadata for token (NULL or "" = none): *md gets 0 or 1
 * entries owned by the caller (release with qv__client_md_free). */
void qv__client_md(const char *token, grpc_metadata *md, size_t *n);
void qv__client_md_free(grpc_metadata *md, size_t n);

#endif
