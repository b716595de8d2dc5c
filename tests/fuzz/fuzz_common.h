/* Shared by the fuzz targets: scratch directories, a template data directory of small
 * collections made through the same APIs quiverd uses, and a directory copy. */
#ifndef QUIVER_TESTS_FUZZ_COMMON_H
#define QUIVER_TESTS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"

#define FZ_DIM 8

/* A new scratch directory under $TMPDIR (or /tmp); aborts when none can be made. */
char *fz_mkdtemp(const char *tag);
/* Copies the tree src to dst (dst must not exist). Aborts on failure. */
void fz_copy_tree(const char *src, const char *dst);
/* Removes a tree; quiet. */
void fz_rm_tree(const char *path);
/* Writes len bytes to path (creating its parent). Aborts on failure. */
void fz_write_file(const char *path, const uint8_t *data, size_t len);

/* Makes DATA_DIR/collections/{flat,ivf,sq} the way quiverd leaves them: created, filled, the IVF
 * ones built and saved, then more upserts and deletes left in each write-ahead log (no save), so
 * that opening replays them. flat: l2, Flat, 2 features; ivf: cosine, IVF4,Flat; sq: ip,
 * IVF4,SQ8. */
void fz_make_template(const char *data_dir);

/* The names of a collection directory's files, in the order fuzz inputs refer to them. */
extern const char *const fz_col_files[];
extern const size_t fz_ncol_files;

/* Rewrites the "files" sizes and CRC-32s of col_dir/MANIFEST.json and of the manifest of the
 * version it names to what is on disk (what a crafted directory would do to pass the checks). */
void fz_fix_manifests(const char *col_dir);

/* Sets quiverd's log threshold so the targets do not print every refusal (QV_FUZZ_LOG=debug to
 * see them). */
void fz_quiet_logs(void);

#endif
