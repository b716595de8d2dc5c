/* Server logging: one line per event to stderr, as text ("TIME LEVEL message"), JSON (one object
 * per line: time, level, msg, and each key=value word of the message as a field) or logfmt
 * (time=... level=... msg="..." key=value ...). The level is checked before anything is
 * formatted. Only server/ and clients/ log; library layers return errors. Messages never carry
 * vectors or tokens. */
#ifndef QUIVER_SERVER_LOG_H
#define QUIVER_SERVER_LOG_H

typedef enum qv__log_level {
  QV_LOG_DEBUG = 0,
  QV_LOG_INFO = 1,
  QV_LOG_WARN = 2,
  QV_LOG_ERROR = 3,
} qv__log_level;

typedef enum qv__log_format { QV_LOG_TEXT = 0, QV_LOG_JSON = 1, QV_LOG_LOGFMT = 2 } qv__log_format;

extern int qv__log_min_level;
extern qv__log_format qv__log_fmt;

/* Parses text|json|logfmt; -1 when unknown. */
int qv__log_parse_format(const char *s);

void qv__log_write(qv__log_level lvl, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Parses debug|info|warn|error; -1 when unknown. */
int qv__log_parse_level(const char *s);

#define QV_LOG(lvl, ...)                                                                           \
  do {                                                                                             \
    if ((int)(lvl) >= qv__log_min_level)                                                           \
      qv__log_write((lvl), __VA_ARGS__);                                                           \
  } while (0)
#define QV_LOG_D(...) QV_LOG(QV_LOG_DEBUG, __VA_ARGS__)
#define QV_LOG_I(...) QV_LOG(QV_LOG_INFO, __VA_ARGS__)
#define QV_LOG_W(...) QV_LOG(QV_LOG_WARN, __VA_ARGS__)
#define QV_LOG_E(...) QV_LOG(QV_LOG_ERROR, __VA_ARGS__)

#endif
