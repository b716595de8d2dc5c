#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quiver/status.h"

const char *qv_status_str(qv_status s) {
  switch (s) {
#define QV__STATUS_STR(name, value, text)                                                          \
  case name:                                                                                       \
    return text;
    QV_STATUS_MAP(QV__STATUS_STR)
#undef QV__STATUS_STR
  }
  return "unknown status";
}

const char *qv_status_name(qv_status s) {
  switch (s) {
#define QV__STATUS_NAME(name, value, text)                                                         \
  case name:                                                                                       \
    return #name;
    QV_STATUS_MAP(QV__STATUS_NAME)
#undef QV__STATUS_NAME
  }
  return "QV_UNKNOWN";
}

void qv_error_clear(qv_error *err) {
  if (err == NULL)
    return;
  err->code = QV_OK;
  err->msg[0] = '\0';
}

qv_status qv_error_setv(qv_error *err, qv_status code, const char *fmt, va_list ap) {
  if (err == NULL)
    return code;
  err->code = code;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  return code;
}

qv_status qv_error_set(qv_error *err, qv_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  qv_error_setv(err, code, fmt, ap);
  va_end(ap);
  return code;
}

qv_status qv_error_prefix(qv_error *err, qv_status code, const char *fmt, ...) {
  if (err == NULL)
    return code;
  char prefix[QV_ERROR_MSG_MAX];
  char old[QV_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  old[sizeof old - 1] = '\0';
  /* Truncation is intended: the message is cut to fit. */
  size_t n = strlen(prefix);
  if (n > sizeof err->msg - 3)
    n = sizeof err->msg - 3;
  memcpy(err->msg, prefix, n);
  memcpy(err->msg + n, ": ", 2);
  size_t rest = sizeof err->msg - n - 3;
  size_t ol = strlen(old);
  if (ol > rest)
    ol = rest;
  memcpy(err->msg + n + 2, old, ol);
  err->msg[n + 2 + ol] = '\0';
  return code;
}
