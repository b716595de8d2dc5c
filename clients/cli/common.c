#define _GNU_SOURCE
#include "common.h"

#include "quiver/clock.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const qv_error *e) {
  fprintf(stderr, "quiver: %s: %s\n", qv_status_str(e->code), e->msg);
  return 1;
}

int cli_fail_remote(const qv_error *e) {
  fprintf(stderr, "quiver: %s\n", e->msg);
  return 1;
}

int cli_usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "quiver: usage error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(run 'quiver --help')\n");
  return EXIT_USAGE;
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out) {
  if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
    return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max)
    return -1;
  *out = v;
  return 0;
}

qv_status cli_open_int_file(qv_vecfile **out, const char *path, const char *flag, qv_error *e) {
  qv_status st = qv_vecfile_open(out, path, e);
  if (st != QV_OK)
    return st;
  qv_dtype t = qv_vecfile_dtype(*out);
  if (t == QV_DTYPE_F32 || t == QV_DTYPE_F16) {
    qv_vecfile_close(*out);
    *out = NULL;
    return qv_error_set(e, QV_EINVAL,
                        "%s %s holds floats; it must hold integer ids (.ivecs, or .npy of "
                        "int32/int64)",
                        flag, path);
  }
  return QV_OK;
}

qv_status cli_read_f32(const char *path, float **out, size_t *rows, size_t *cols, qv_error *e) {
  *out = NULL;
  qv_vecfile *f;
  qv_status st = qv_vecfile_open(&f, path, e);
  if (st != QV_OK)
    return st;
  *rows = qv_vecfile_rows(f);
  *cols = qv_vecfile_cols(f);
  *out = malloc((*rows * *cols > 0 ? *rows * *cols : 1) * sizeof(float));
  if (*out == NULL)
    st = qv_error_set(e, QV_ENOMEM, "out of memory reading %s", path);
  else
    st = qv_vecfile_read_f32(f, 0, *rows, *out, e);
  qv_vecfile_close(f);
  if (st != QV_OK) {
    free(*out);
    *out = NULL;
  }
  return st;
}

qv_status cli_read_i64(qv_vecfile *f, size_t n, int64_t **out, qv_error *e) {
  size_t cols = qv_vecfile_cols(f);
  *out = malloc((n * cols > 0 ? n * cols : 1) * sizeof(int64_t));
  if (*out == NULL)
    return qv_error_set(e, QV_ENOMEM, "out of memory");
  qv_status st = qv_vecfile_read_i64(f, 0, n, *out, e);
  if (st != QV_OK) {
    free(*out);
    *out = NULL;
  }
  return st;
}

double cli_recall(const int64_t *ids, const int64_t *gt, size_t gk, size_t n, size_t k) {
  size_t hits = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t a = 0; a < k; a++)
      for (size_t g = 0; g < k; g++)
        if (ids[i * k + a] >= 0 && ids[i * k + a] == gt[i * gk + g]) {
          hits++;
          break;
        }
  return n * k > 0 ? (double)hits / (double)(n * k) : 0.0;
}

qv_status cli_write_ids(const char *path, const int64_t *ids, size_t n, size_t k, qv_error *e) {
  size_t len = strlen(path);
  if (len > 6 && strcmp(path + len - 6, ".ivecs") == 0) {
    int32_t *i32 = malloc((n * k > 0 ? n * k : 1) * sizeof(int32_t));
    if (i32 == NULL)
      return qv_error_set(e, QV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n * k; i++)
      i32[i] = ids[i] > INT32_MAX ? -1 : (int32_t)ids[i];
    qv_status st = qv_ivecs_write(path, n, k, i32, e);
    free(i32);
    return st;
  }
  return qv_npy_write(path, QV_DTYPE_I64, n, k, ids, e);
}

void cli_progress_init(cli_progress *p) {
  p->tty = isatty(2);
  p->t0 = qv_monotonic_s();
}

int cli_progress_cb(void *user, const char *phase, uint64_t done, uint64_t total) {
  cli_progress *p = user;
  if (!p->tty)
    return 0;
  int width = 30, filled = total ? (int)((double)done / (double)total * width) : width;
  if (filled > width)
    filled = width;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\r%-6s [%s] %" PRIu64 "/%" PRIu64 "  %.1fs ", phase, bar, done, total,
          qv_monotonic_s() - p->t0);
  if (done >= total)
    fputc('\n', stderr);
  fflush(stderr);
  return 0;
}
