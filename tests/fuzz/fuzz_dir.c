/* Opens mutated collection directories the way quiverd does at start (qv__registry_open: the
 * manifest, the FAISS index file, the id map, the vectors, the write-ahead log replay), then
 * uses what opened: a search, an exact search, a filtered search, an upsert, a delete and the
 * save at close.
 * Nothing here may crash, leak or hang; a refusal is the expected answer to damage.
 *
 * Built three times, one per QV_FUZZ_MODE:
 *   dir       the input is a set of replaced files: a flags byte (bit 0: rewrite the manifests'
 *             sizes and CRC-32s to match, as a crafted directory would; bits 1-2: which of the
 *             three template collections), then records [u8 file][u16 le length][bytes], the
 *             file an index into fz_col_files (bit 7 set: remove that file instead)
 *   manifest  the input is the manifest text, written as the top and the version manifest of
 *             the collection the first byte picks
 *   wal       the input is wal.log of the collection the first byte picks */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "quiver/collection.h"
#include "quiver/fsutil.h"
#include "registry.h"

#define MODE_DIR 1
#define MODE_MANIFEST 2
#define MODE_WAL 3

static char *g_template, *g_scratch;
static const char *const kNames[] = {"flat", "ivf", "sq"};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fz_quiet_logs();
  g_template = fz_mkdtemp("template");
  fz_make_template(g_template);
  g_scratch = fz_mkdtemp("scratch");
  rmdir(g_scratch);
  return 0;
}

static void use(qv__registry *reg) {
  for (size_t i = 0; i < reg->n; i++) {
    qv__entry *e = reg->items[i];
    qv_collection_stats cs;
    qv_collection_stats_get(qv__entry_col(e), &cs, NULL);
    if (cs.dim != FZ_DIM)
      continue; /* a manifest may claim any dimension; our probes are FZ_DIM wide */
    float q[FZ_DIM] = {0.5f, -0.25f, 1, 2, 0, 0, 1, 3}, scores[4];
    int64_t ids[4], one = 7;
    qv_search_params p = {.k = 4, .nprobe = 2};
    qv_error err = {0};
    qv_collection_search(qv__entry_col(e), q, 1, &p, scores, ids, &err);
    qv_collection_search_exact(qv__entry_col(e), q, 1, &p, scores, ids, &err);
    /* What a damaged attrs.bin or attribute log record left: a filter over every type. */
    qv_filter *f = NULL;
    if (qv_filter_parse(qv__entry_col(e),
                        "cat < 0 or brand in ('red', '') or tags has all ('green', 'blue') or on",
                        &f, &err) == QV_OK) {
      p.filter = f;
      qv_collection_search(qv__entry_col(e), q, 1, &p, scores, ids, &err);
      p.filter_path = QV_FILTER_INDEX;
      qv_collection_search(qv__entry_col(e), q, 1, &p, scores, ids, &err);
      p.filter = NULL;
      qv_filter_free(f);
    }
    float feats[QV_MAX_ITEM_FEATURES] = {0};
    if (qv_collection_add_features(qv__entry_col(e), 1, &one, q, cs.n_features ? feats : NULL,
                                   &err) == QV_OK)
      qv__entry_mark_dirty(e);
    size_t deleted = 0;
    int64_t del = 4;
    if (qv_collection_delete(qv__entry_col(e), 1, &del, &deleted, &err) == QV_OK && deleted)
      qv__entry_mark_dirty(e);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  char col[2048], path[4096];
  const int which = QV_FUZZ_MODE == MODE_DIR ? (data[0] >> 1) % 3 : data[0] % 3;
  /* Only the collection the input changes: a data directory of one collection. */
  snprintf(path, sizeof path, "%s/collections/%s", g_template, kNames[which]);
  snprintf(col, sizeof col, "%s/collections", g_scratch);
  qv_mkdirs(col, NULL);
  snprintf(col, sizeof col, "%s/collections/%s", g_scratch, kNames[which]);
  fz_copy_tree(path, col);
#if QV_FUZZ_MODE == MODE_DIR
  size_t off = 1;
  while (off + 3 <= size) {
    const uint8_t f = data[off];
    size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
    off += 3;
    if (len > size - off)
      len = size - off;
    snprintf(path, sizeof path, "%s/%s", col, fz_col_files[(f & 0x7f) % fz_ncol_files]);
    if (f & 0x80)
      unlink(path);
    else
      fz_write_file(path, data + off, len);
    off += len;
  }
  if (data[0] & 1)
    fz_fix_manifests(col);
#elif QV_FUZZ_MODE == MODE_MANIFEST
  snprintf(path, sizeof path, "%s/MANIFEST.json", col);
  fz_write_file(path, data + 1, size - 1);
  snprintf(path, sizeof path, "%s/v000001/MANIFEST.json", col);
  fz_write_file(path, data + 1, size - 1);
#elif QV_FUZZ_MODE == MODE_WAL
  snprintf(path, sizeof path, "%s/wal.log", col);
  fz_write_file(path, data + 1, size - 1);
#else
#error "QV_FUZZ_MODE must be 1 (dir), 2 (manifest) or 3 (wal)"
#endif
  qv__registry reg;
  qv__registry_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  qv_wal_opts_init(&cfg.wal);
  cfg.wal.sync_always = 0;
  cfg.keep_versions = 2;
  cfg.snapshot_bytes = 1 << 20;
  qv_error err = {0};
  if (qv__registry_open(&reg, g_scratch, &cfg, &err) == QV_OK) {
    use(&reg);
    qv__registry_close(&reg);
  }
  fz_rm_tree(g_scratch);
  return 0;
}
