/* Quiver status codes and the error object shared by every layer.
 *
 * Every fallible function returns a qv_status (QV_OK == 0 is success) and takes a `qv_error *err`
 * as its last argument. `err` may be NULL; when it is not, a failing call fills it with the same
 * code and a message that says what was wrong and what to fix. A successful call leaves `err`
 * untouched. The error object belongs to the caller: there is no thread-local "last error".
 *
 * The server maps each code to exactly one gRPC status (server/, STYLE 7); the comment beside each
 * code names it.
 */
#ifndef QUIVER_STATUS_H
#define QUIVER_STATUS_H

#include <stdarg.h>

#include "quiver/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, text) — the one list from which the enum and its strings are generated. */
#define QV_STATUS_MAP(X)                                                                           \
  X(QV_OK, 0, "ok")                                                                                \
  X(QV_EINVAL, 1, "invalid argument")           /* INVALID_ARGUMENT */                             \
  X(QV_ENOTFOUND, 2, "not found")               /* NOT_FOUND */                                    \
  X(QV_EEXIST, 3, "already exists")             /* ALREADY_EXISTS */                               \
  X(QV_EPRECONDITION, 4, "failed precondition") /* FAILED_PRECONDITION: e.g. index not trained */  \
  X(QV_ENOMEM, 5, "resource exhausted")         /* RESOURCE_EXHAUSTED: memory, limits, queues */   \
  X(QV_EIO, 6, "i/o error")                     /* INTERNAL: a file operation failed (full */      \
                                                /* disk, EIO); retrying does not help until the */ \
                                                /* operator acts: the message names the file */    \
  X(QV_ECORRUPT, 7, "corrupt data")             /* DATA_LOSS: a file failed its checks */          \
  X(QV_EUNSUPPORTED, 8, "unsupported")          /* UNIMPLEMENTED */                                \
  X(QV_EDEADLINE, 9, "deadline exceeded")       /* DEADLINE_EXCEEDED */                            \
  X(QV_ECANCELLED, 10, "cancelled")             /* CANCELLED */                                    \
  X(QV_EUNAVAILABLE, 11, "unavailable")         /* UNAVAILABLE: e.g. device lost */                \
  X(QV_EINTERNAL, 12, "internal error")         /* INTERNAL: a broken invariant, a FAISS throw */  \
  X(QV_EUNAUTHENTICATED, 13, "unauthenticated") /* UNAUTHENTICATED: no or unknown token */         \
  X(QV_EPERMISSION, 14, "permission denied")    /* PERMISSION_DENIED: the token's role forbids */

typedef enum qv_status {
#define QV__STATUS_ENUM(name, value, text) name = value,
  QV_STATUS_MAP(QV__STATUS_ENUM)
#undef QV__STATUS_ENUM
} qv_status;

/* Size of qv_error.msg, including the terminating NUL. */
#define QV_ERROR_MSG_MAX 256

typedef struct qv_error {
  qv_status code;             /* QV_OK until a call fails */
  char msg[QV_ERROR_MSG_MAX]; /* NUL-terminated, human readable, says what to fix */
} qv_error;

/* Static, never NULL: "invalid argument" etc.; "unknown status" for a value outside the enum. */
QV_API const char *qv_status_str(qv_status s);

/* The enumerator's own name ("QV_EINVAL"), for logs and tests; "QV_UNKNOWN" outside the enum. */
QV_API const char *qv_status_name(qv_status s);

/* Resets `err` (NULL allowed) to QV_OK with an empty message. */
QV_API void qv_error_clear(qv_error *err);

/* Fills `err` (NULL allowed) with `code` and a printf-formatted message, truncated to fit, and
 * returns `code` so that callers can write `return qv_error_set(err, QV_EINVAL, "...")`. */
QV_API qv_status qv_error_set(qv_error *err, qv_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* As qv_error_set, with a va_list. */
QV_API qv_status qv_error_setv(qv_error *err, qv_status code, const char *fmt, va_list ap);

/* Prepends "prefix: " to the message of an error already set (for adding context such as a file
 * name; NULL allowed) and returns `code`, the failure being passed on, so that callers write
 * `return qv_error_prefix(err, st, "...")` and keep the failure when err is NULL. */
QV_API qv_status qv_error_prefix(qv_error *err, qv_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_STATUS_H */
