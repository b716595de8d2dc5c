/* Embedding files: read .fvecs, .ivecs, .bvecs and .npy; write .npy and .ivecs.
 *
 * A qv_vecfile is a read-only, memory-mapped view of one file holding a 2-D matrix (rows x cols).
 * Opening validates the whole layout up front (magic, header, shape, dtype, and that the file
 * size is exactly what the header promises; for *vecs formats that every row has the same
 * dimension) and refuses anything else with QV_ECORRUPT (malformed or truncated) or
 * QV_EUNSUPPORTED (a valid file of a kind we do not read, e.g. a Fortran-order or 3-D .npy), with a
 * message that names the file and says what is wrong. Nothing is copied at open: large files stay
 * mapped and rows are converted on demand.
 *
 * Formats:
 *   .fvecs  per row: int32 dim, then dim float32           (little endian, TEXMEX)
 *   .ivecs  per row: int32 dim, then dim int32
 *   .bvecs  per row: int32 dim, then dim uint8
 *   .npy    NumPy format 1.0/2.0/3.0, 2-D (or 1-D, read as rows x 1), C order, little-endian
 *           dtype <f4, <f2, <i4, <i8 or |u1
 * The format is chosen by the file name's extension (case-insensitive).
 *
 * Lifecycle: qv_vecfile_open -> any number of reads -> qv_vecfile_close. A handle is immutable
 * after open, so reads from many threads at once are safe.
 */
#ifndef QUIVER_VECFILE_H
#define QUIVER_VECFILE_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qv_dtype {
  QV_DTYPE_F32 = 0,
  QV_DTYPE_F16 = 1,
  QV_DTYPE_I32 = 2,
  QV_DTYPE_I64 = 3,
  QV_DTYPE_U8 = 4,
} qv_dtype;

typedef enum qv_vecfile_format {
  QV_VECFILE_FVECS = 0,
  QV_VECFILE_IVECS = 1,
  QV_VECFILE_BVECS = 2,
  QV_VECFILE_NPY = 3,
} qv_vecfile_format;

typedef struct qv_vecfile qv_vecfile;

/* Opens and validates `path`. On success *out is a new handle (release with qv_vecfile_close);
 * on failure *out is NULL.
 * Returns QV_OK; QV_EINVAL (NULL argument, unknown extension); QV_EIO (cannot open/map: the message
 * carries strerror); QV_ECORRUPT (bad magic/header, truncated data, rows of differing dimension,
 * zero dimension); QV_EUNSUPPORTED (dtype, order or rank we do not read). An empty file of a *vecs
 * format is a valid 0 x 0 matrix; an .npy with zero rows is a valid 0 x cols matrix. */
QV_API qv_status qv_vecfile_open(qv_vecfile **out, const char *path, qv_error *err);

/* Unmaps and frees. NULL is allowed. */
QV_API void qv_vecfile_close(qv_vecfile *f);

QV_API size_t qv_vecfile_rows(const qv_vecfile *f);
QV_API size_t qv_vecfile_cols(const qv_vecfile *f);
QV_API qv_dtype qv_vecfile_dtype(const qv_vecfile *f);
QV_API qv_vecfile_format qv_vecfile_format_of(const qv_vecfile *f);
/* The path given at open (borrowed; valid until close). */
QV_API const char *qv_vecfile_path(const qv_vecfile *f);

/* Copies rows [row0, row0 + n) into `out` (caller-allocated, n * cols floats), converting from the
 * file's dtype (f16 and integers are converted exactly where float32 can hold them).
 * Returns QV_OK; QV_EINVAL when the range is outside the matrix or out is NULL with n > 0. */
QV_API qv_status qv_vecfile_read_f32(const qv_vecfile *f, size_t row0, size_t n, float *out,
                                     qv_error *err);

/* Copies rows [row0, row0 + n) into `out` (n * cols int64). Only integer dtypes (i32, i64, u8).
 * Returns QV_OK; QV_EINVAL for a bad range or a float dtype (message names the dtype). */
QV_API qv_status qv_vecfile_read_i64(const qv_vecfile *f, size_t row0, size_t n, int64_t *out,
                                     qv_error *err);

/* Writes a C-order .npy (format 1.0) of `rows` x `cols` with dtype f32 (data: float *), i32
 * (int32_t *) or i64 (int64_t *); cols == 0 writes a 1-D array of `rows`. Crash-safe: writes
 * "<path>.tmp.<pid>", fsyncs, renames over `path`.
 * Returns QV_OK; QV_EINVAL (NULL data with rows*cols > 0, unsupported dtype); QV_EIO. */
QV_API qv_status qv_npy_write(const char *path, qv_dtype dtype, size_t rows, size_t cols,
                              const void *data, qv_error *err);

/* Writes an .ivecs file (each row: int32 cols, then cols int32), crash-safe as above.
 * Returns QV_OK; QV_EINVAL; QV_EIO. */
QV_API qv_status qv_ivecs_write(const char *path, size_t rows, size_t cols, const int32_t *data,
                                qv_error *err);

/* Same as qv_npy_write but for .fvecs (float32). Used by tests and tools to make inputs. */
QV_API qv_status qv_fvecs_write(const char *path, size_t rows, size_t cols, const float *data,
                                qv_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_VECFILE_H */
