#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int qv__log_min_level = QV_LOG_INFO;
qv__log_format qv__log_fmt = QV_LOG_TEXT;

/* Appends s to out (cap bytes, *n used) as the body of a JSON string (or of a logfmt quoted
 * value: the same escapes). */
static void put_escaped(char *out, size_t cap, size_t *n, const char *s, size_t len) {
  for (size_t i = 0; i < len && *n + 7 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      out[(*n)++] = '\\';
      out[(*n)++] = (char)c;
    } else if (c < 0x20) {
      *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
    } else {
      out[(*n)++] = (char)c;
    }
  }
}

static void put(char *out, size_t cap, size_t *n, const char *s) {
  for (; *s && *n + 1 < cap; s++)
    out[(*n)++] = *s;
}

/* The key=value words of a message ("collection=demo status=NOT_FOUND: ...") as fields, so that
 * json and logfmt lines can be filtered on them. A value ends at a space; a trailing ':' or ','
 * is punctuation, not value. */
static void put_fields(char *out, size_t cap, size_t *n, const char *msg, int json) {
  for (const char *p = msg; *p;) {
    while (*p == ' ')
      p++;
    const char *k = p;
    while ((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9'))
      p++;
    if (p > k && *p == '=' && (k == msg || k[-1] == ' ')) {
      size_t klen = (size_t)(p - k);
      const char *v = ++p;
      while (*p && *p != ' ')
        p++;
      size_t vlen = (size_t)(p - v);
      while (vlen > 0 && (v[vlen - 1] == ':' || v[vlen - 1] == ','))
        vlen--;
      if (klen == 3 && (!strncmp(k, "msg", 3) || !strncmp(k, "lvl", 3)))
        continue;
      if ((klen == 4 && (!strncmp(k, "time", 4))) || (klen == 5 && !strncmp(k, "level", 5)))
        continue;
      put(out, cap, n, json ? ", \"" : " ");
      put_escaped(out, cap, n, k, klen);
      put(out, cap, n, json ? "\": \"" : "=\"");
      put_escaped(out, cap, n, v, vlen);
      put(out, cap, n, "\"");
    } else {
      while (*p && *p != ' ')
        p++;
    }
  }
}

void qv__log_write(qv__log_level lvl, const char *fmt, ...) {
  static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  static const char *const lower[] = {"debug", "info", "warn", "error"};
  char msg[1800], line[4096], when[64];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* One event, one line: fold any newline a message carries (FAISS errors have some). */
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  size_t n = 0;
  if (qv__log_fmt == QV_LOG_JSON) {
    n = (size_t)snprintf(line, sizeof line, "{\"time\": \"%s\", \"level\": \"%s\", \"msg\": \"",
                         when, lower[lvl]);
    put_escaped(line, sizeof line - 2, &n, msg, strlen(msg));
    put(line, sizeof line - 2, &n, "\"");
    put_fields(line, sizeof line - 2, &n, msg, 1);
    put(line, sizeof line - 1, &n, "}");
  } else if (qv__log_fmt == QV_LOG_LOGFMT) {
    n = (size_t)snprintf(line, sizeof line, "time=%s level=%s msg=\"", when, lower[lvl]);
    put_escaped(line, sizeof line - 2, &n, msg, strlen(msg));
    put(line, sizeof line - 2, &n, "\"");
    put_fields(line, sizeof line - 2, &n, msg, 0);
  } else {
    n = (size_t)snprintf(line, sizeof line, "%s %-5s %s", when, names[lvl], msg);
    if (n >= sizeof line - 1)
      n = sizeof line - 2;
  }
  line[n] = '\n';
  fwrite(line, 1, n + 1, stderr); /* one write: lines from threads do not interleave */
}

int qv__log_parse_format(const char *s) {
  if (s == NULL)
    return -1;
  if (!strcasecmp(s, "text"))
    return QV_LOG_TEXT;
  if (!strcasecmp(s, "json"))
    return QV_LOG_JSON;
  if (!strcasecmp(s, "logfmt"))
    return QV_LOG_LOGFMT;
  return -1;
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
