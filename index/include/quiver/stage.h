/* Receiving a collection directory file by file (an import pushed over the network).
 *
 * A stage is a fresh directory "PARENT/.import-NAME-XXXXXX" that takes chunks of the files a
 * collection directory holds (MANIFEST.json and vNNNNNN/{index.faiss, vectors.npy, ids.npy,
 * features.npy, MANIFEST.json}; docs/index-format.md) and nothing else. Each chunk carries its
 * offset, which must be where the file ends so far (chunks of one file in order), and its CRC-32,
 * checked before a byte is written. Limits: the bytes received in all, and the space a chunk may
 * leave free on the disk. When every file is in, qv_collection_open(qv_stage_dir(st)) verifies
 * the directory as it would any other (the manifest's sizes and CRC-32s). Not thread-safe: one
 * stage is fed by one caller at a time. */
#ifndef QUIVER_STAGE_H
#define QUIVER_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/dirformat.h" /* qv_collection_file_ok */
#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qv_stage qv_stage;

typedef struct qv_stage_limits {
  uint64_t max_bytes;      /* the files may hold at most this many bytes in all; 0 = no limit */
  uint64_t min_free_bytes; /* a chunk must leave this much free on the disk; 0 = no check */
  /* How the caller's users set each limit, quoted before its value in MiB in the error that
   * names it (e.g. a server's flag); NULL = "its limit (MiB)" and "its reserve of". */
  const char *max_bytes_name;
  const char *min_free_name;
} qv_stage_limits;

/* Makes the stage directory under `parent` (which must exist) for collection `name` (used in the
 * directory's name only). lim may be NULL (no limits). QV_OK, or QV_EIO / QV_ENOMEM. */
QV_API qv_status qv_stage_create(qv_stage **out, const char *parent, const char *name,
                                 const qv_stage_limits *lim, qv_error *err);

/* Appends len bytes at `offset` of file `rel`. Returns QV_OK; QV_EINVAL (a name outside the
 * format, an offset that is not the file's end; the message says what to send); QV_ECORRUPT
 * (the chunk's CRC-32 is not crc32: damaged in transit); QV_ENOMEM (a limit, named as the caller
 * named it); QV_EIO. A failed chunk may leave the file partly written: free the stage. */
QV_API qv_status qv_stage_write(qv_stage *st, const char *rel, uint64_t offset, const void *data,
                                size_t len, uint32_t crc32, qv_error *err);

QV_API const char *qv_stage_dir(const qv_stage *st);
QV_API uint64_t qv_stage_bytes(const qv_stage *st); /* received so far */
QV_API uint32_t qv_stage_files(const qv_stage *st); /* files started so far */

/* Removes the directory and everything in it, and frees st. NULL is a no-op. */
QV_API void qv_stage_free(qv_stage *st);

/* Removes the stage directories a process left under `parent` (one that stopped mid-import);
 * call at start, before any stage is made there. Returns how many were removed. */
QV_API size_t qv_stage_clean(const char *parent);

#ifdef __cplusplus
}
#endif

#endif
