/* Small file-system helpers for crash-safe writes, shared by index/ and the tools.
 *
 * The pattern for a file that must never be seen half-written: write "<path>.tmp.<pid>", fsync it,
 * rename it over <path>, fsync the directory. qv_file_write_atomic does all four.
 */
#ifndef QUIVER_FSUTIL_H
#define QUIVER_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes `len` bytes to `path` atomically (temp file, fsync, rename, fsync of the directory).
 * Returns QV_OK or QV_EIO (message names the path and strerror). */
QV_API qv_status qv_file_write_atomic(const char *path, const void *data, size_t len,
                                      qv_error *err);

/* fsync()s the directory `dir` so that a rename or create inside it is durable. QV_OK or QV_EIO. */
QV_API qv_status qv_dir_fsync(const char *dir, qv_error *err);

/* fsync()s the file at `path`. QV_OK or QV_EIO. */
QV_API qv_status qv_file_fsync(const char *path, qv_error *err);

/* Reads a whole file into a new malloc'd, NUL-terminated buffer (*out, release with free());
 * *len gets the size without the NUL. Refuses files larger than `max_len` with QV_ECORRUPT.
 * Returns QV_OK; QV_ENOTFOUND (no such file); QV_EIO; QV_ENOMEM. */
QV_API qv_status qv_file_read_all(const char *path, size_t max_len, char **out, size_t *len,
                                  qv_error *err);

/* CRC-32 (zlib's polynomial) of a whole file, streamed. QV_OK; QV_ENOTFOUND; QV_EIO. */
QV_API qv_status qv_file_crc32(const char *path, uint32_t *crc, uint64_t *size, qv_error *err);

/* Room for any path Quiver builds (Linux's PATH_MAX, with its NUL). */
#define QV_PATH_MAX 4096

/* Formats a path into out (QV_PATH_MAX bytes). QV_OK, or QV_EINVAL when it would not fit: then
 * out is "" (so that a truncated path never names another file). */
QV_API qv_status qv_path_fmt(char out[QV_PATH_MAX], qv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mkdir -p. QV_OK (also when it already exists as a directory) or QV_EIO. */
QV_API qv_status qv_mkdirs(const char *path, qv_error *err);

/* rm -rf of a directory tree we own (does not follow symlinks). QV_OK (also when absent) or QV_EIO.
 */
QV_API qv_status qv_remove_tree(const char *path, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_FSUTIL_H */
