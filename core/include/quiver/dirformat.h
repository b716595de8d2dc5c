/* The names of the collection directory format (docs/index-format.md), in one place for the index
 * layer that writes and reads it and for the clients that push one to a server:
 *
 *   DIR/MANIFEST.json                  the current version, every file's size and CRC-32
 *   DIR/vNNNNNN/{index.faiss, vectors.npy, ids.npy, features.npy, MANIFEST.json}
 *
 * features.npy exists only when items carry features. */
#ifndef QUIVER_DIRFORMAT_H
#define QUIVER_DIRFORMAT_H

#include "quiver/export.h"
#include "quiver/fsutil.h"
#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QV_MANIFEST "MANIFEST.json"
/* The data files of a version directory, in the order a save writes them; features.npy only
 * when items carry features, attrs.bin only when the collection has attributes. */
#define QV_VERSION_NFILES 5
QV_API extern const char *const qv_version_files[QV_VERSION_NFILES];

/* Longest path of a collection directory itself: every file inside it then fits in QV_PATH_MAX
 * (quiver/fsutil.h). */
#define QV_COLLECTION_DIR_MAX (QV_PATH_MAX - 64)

/* Longest path inside a collection directory ("vNNNNNN/features.npy"), with its NUL. */
#define QV_REL_MAX 32

/* 1 when `rel` (a path inside a collection directory) names a file the format has. */
QV_API int qv_collection_file_ok(const char *rel);

/* The files to send to push the collection directory `dir`: the current version's files that
 * are present, then MANIFEST.json last (so that a receiver never holds a manifest before the
 * files it names). files holds QV_VERSION_NFILES + 2 entries; *n gets how many were written.
 * Returns QV_OK; QV_ENOTFOUND (no MANIFEST.json: the message says how to build one);
 * QV_ECORRUPT (a manifest that names no version directory); QV_EIO. */
QV_API qv_status qv_collection_push_files(const char *dir, char files[][QV_REL_MAX], int *n,
                                          qv_error *err);

#ifdef __cplusplus
}
#endif

#endif
