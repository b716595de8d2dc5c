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

int cli_parse_recall(const char *s, double *out) {
  char *end;
  double x = strtod(s, &end);
  if (end == s || *end != '\0' || !(x > 0 && x <= 1))
    return -1;
  *out = x;
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

qv_status cli_open_ids(qv_vecfile **out, const char *path, const char *input, size_t n,
                       qv_error *e) {
  qv_status st = cli_open_int_file(out, path, "--ids", e);
  if (st != QV_OK)
    return st;
  size_t rows = qv_vecfile_rows(*out), cols = qv_vecfile_cols(*out);
  if (rows == n && cols == 1)
    return QV_OK;
  qv_vecfile_close(*out);
  *out = NULL;
  return qv_error_set(e, QV_EINVAL, "%s has %zu x %zu ids; %s has %zu rows: need %zu x 1", path,
                      rows, cols, input, n, n);
}

qv_status cli_read_rows(qv_vecfile *in, qv_vecfile *idf, size_t off, size_t m, float *buf,
                        int64_t *ids, qv_error *e) {
  if (m == 0)
    return QV_OK;
  qv_status st = qv_vecfile_read_f32(in, off, m, buf, e);
  if (st != QV_OK)
    return st;
  if (idf != NULL)
    return qv_vecfile_read_i64(idf, off, m, ids, e);
  for (size_t i = 0; i < m; i++)
    ids[i] = (int64_t)(off + i);
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

qv_status cli_read_groundtruth(const char *path, size_t n, size_t k, const char *need, int64_t **gt,
                               size_t *gk, qv_error *e) {
  *gt = NULL;
  qv_vecfile *f;
  qv_status st = cli_open_int_file(&f, path, "--groundtruth", e);
  if (st != QV_OK)
    return st;
  *gk = qv_vecfile_cols(f);
  if (qv_vecfile_rows(f) < n || *gk < k) {
    char what[160];
    snprintf(what, sizeof what, need, n, k);
    st = qv_error_set(e, QV_EINVAL, "%s has %zu x %zu neighbours; %s", path, qv_vecfile_rows(f),
                      *gk, what);
  } else {
    st = cli_read_i64(f, n, gt, e);
  }
  qv_vecfile_close(f);
  return st;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void cli_sort_doubles(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
}

void cli_print_results(double recall, size_t k, const int64_t *ids, const float *scores,
                       int first) {
  if (recall >= 0)
    printf("  recall@%zu = %.4f\n", k, recall);
  if (first) {
    printf("  query 0:");
    for (size_t a = 0; a < k && a < 10; a++)
      printf(" %" PRId64 "(%.4g)", ids[a], scores[a]);
    printf("\n");
  }
}

void cli_print_json_str(const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
}

void cli_print_json_recall(double recall) {
  if (recall >= 0)
    printf("%.4f", recall);
  else
    printf("null");
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
