/* Bearer-token authorization: a token file of "ROLE TOKEN" lines (roles read and admin; blank
 * lines and '#' comments skipped) loaded at start. A call's "authorization: Bearer TOKEN"
 * metadata gives its role; tokens are compared in constant time and never logged. */
#ifndef QUIVER_SERVER_AUTH_H
#define QUIVER_SERVER_AUTH_H

#include <grpc/grpc.h>

#include "quiver/status.h"

typedef enum qv__role { QV__ROLE_NONE = 0, QV__ROLE_READ = 1, QV__ROLE_ADMIN = 2 } qv__role;

typedef struct qv__auth qv__auth;

/* QV_EINVAL names the line that is wrong (never the token); QV_EIO when unreadable. */
qv_status qv__auth_load(const char *path, qv__auth **out, qv_error *err);
void qv__auth_free(qv__auth *a);
size_t qv__auth_count(const qv__auth *a);

/* The role of the call whose request metadata is md: QV__ROLE_NONE without a known token. */
qv__role qv__auth_role(const qv__auth *a, const grpc_metadata_array *md);

#endif
