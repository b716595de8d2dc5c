/* Helpers shared by the quiver CLI's offline (index, data) and server commands. */
#ifndef QUIVER_CLI_COMMON_H
#define QUIVER_CLI_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/clock.h"
#include "quiver/eval.h"
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
/* A recall in (0, 1] (--recall-floor, --target-recall); -1 on anything else. */
int cli_parse_recall(const char *s, double *out);
/* Opens an id/ground-truth file and refuses float dtypes with a message naming `flag`. */
qv_status cli_open_int_file(qv_vecfile **out, const char *path, const char *flag, qv_error *e);
/* Opens --ids FILE for the n rows of `input`, refusing anything but n x 1 integer ids. */
qv_status cli_open_ids(qv_vecfile **out, const char *path, const char *input, size_t n,
                       qv_error *e);
/* Reads rows [off, off + m) of `in` into buf and their ids into ids: from idf (opened with
 * cli_open_ids), or with idf NULL the row numbers. m == 0 reads nothing. */
qv_status cli_read_rows(qv_vecfile *in, qv_vecfile *idf, size_t off, size_t m, float *buf,
                        int64_t *ids, qv_error *e);
/* Reads the first n rows of --groundtruth FILE into a malloc'd buffer; *gk: its row length. A
 * file with fewer than n rows or rows shorter than k is refused with "FILE has R x C neighbours; "
 * and then `need` formatted with n and k (both size_t). */
qv_status cli_read_groundtruth(const char *path, size_t n, size_t k, const char *need, int64_t **gt,
                               size_t *gk, qv_error *e);
/* Reads a whole float file (rows x cols) into a malloc'd buffer. */
qv_status cli_read_f32(const char *path, float **out, size_t *rows, size_t *cols, qv_error *e);
/* Reads n rows of an integer file opened with cli_open_int_file into a malloc'd buffer. */
qv_status cli_read_i64(qv_vecfile *f, size_t n, int64_t **out, qv_error *e);
/* Sorts v[0..n) ascending. */
void cli_sort_doubles(double *v, size_t n);
/* The end of a search's text report: "  recall@K = R" when recall >= 0, then with first set the
 * first query's ids and scores (at most 10). */
void cli_print_results(double recall, size_t k, const int64_t *ids, const float *scores, int first);
/* s as the body of a JSON string (quotes, backslashes and control characters escaped). */
void cli_print_json_str(const char *s);
/* recall as a JSON value: %.4f, or null when it is < 0 (not measured). */
void cli_print_json_recall(double recall);
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
