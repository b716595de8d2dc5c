#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int qv__log_min_level = QV_LOG_INFO;

void qv__log_write(qv__log_level lvl, const char *fmt, ...) {
  static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, names[lvl]);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  /* One event, one line: fold any newline a message carries (FAISS errors have some). */
  for (char *p = line; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  size_t len = strlen(line);
  line[len] = '\n';
  fwrite(line, 1, len + 1, stderr); /* one write: lines from threads do not interleave */
}

int qv__log_parse_level(const char *s) {
  if (s == NULL)
    return -1;
  if (!strcasecmp(s, "debug"))
    return QV_LOG_DEBUG;
  if (!strcasecmp(s, "info"))
    return QV_LOG_INFO;
  if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
    return QV_LOG_WARN;
  if (!strcasecmp(s, "error"))
    return QV_LOG_ERROR;
  return -1;
}
