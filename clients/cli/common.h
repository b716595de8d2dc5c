/* Helpers shared by the quiver CLI's offline (index, data) and server commands. */
#ifndef QUIVER_CLI_COMMON_H
#define QUIVER_CLI_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/clock.h"
#include "quiver/status.h"
#include "quiver/vecfile.h"

#define EXIT_USAGE 2

/* Prints "quiver: <status>: <message>" and returns 1 (offline commands). */
int cli_fail(const qv_error *e);
/* Prints "quiver: <message>" and returns 1: the client library's messages already start with the
 * gRPC status name ("INVALID_ARGUMENT: ..."). */
int cli_fail_remote(const qv_error *e);
/* Prints a usage error (fmt takes one %s) and returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, const char *arg);
/* Non-negative decimal integer <= max; -1 on junk, sign, overflow. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* Opens an id/ground-truth file and refuses float dtypes with a message naming `flag`. */
qv_status cli_open_int_file(qv_vecfile **out, const char *path, const char *flag, qv_error *e);
/* Reads a whole float file (rows x cols) into a malloc'd buffer. */
qv_status cli_read_f32(const char *path, float **out, size_t *rows, size_t *cols, qv_error *e);
/* Reads n rows of an integer file opened with cli_open_int_file into a malloc'd buffer. */
qv_status cli_read_i64(qv_vecfile *f, size_t n, int64_t **out, qv_error *e);
/* recall@k of ids (n x k) against gt (n x gk). */
double cli_recall(const int64_t *ids, const int64_t *gt, size_t gk, size_t n, size_t k);
/* Writes n x k ids to .ivecs (by extension) or .npy (int64). */
qv_status cli_write_ids(const char *path, const int64_t *ids, size_t n, size_t k, qv_error *e);

/* A progress bar on stderr, drawn only when stderr is a terminal. */
typedef struct cli_progress {
  int tty;
  double t0;
} cli_progress;
void cli_progress_init(cli_progress *p);
int cli_progress_cb(void *user, const char *phase, uint64_t done, uint64_t total);

#endif
