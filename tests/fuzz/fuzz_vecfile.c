/* The vector file readers (.npy, .fvecs, .ivecs, .bvecs) that `quiver upsert`, `quiver index
 * build` and quiverd's demo use: the first byte picks the extension, the rest is the file. Every
 * row is read back as floats (and as ids where the type allows). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "quiver/vecfile.h"

static char *g_dir;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  g_dir = fz_mkdtemp("vecfile");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const kExt[] = {"npy", "fvecs", "ivecs", "bvecs"};
  if (size < 1)
    return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/in.%s", g_dir, kExt[data[0] % 4]);
  fz_write_file(path, data + 1, size - 1);
  qv_vecfile *f;
  qv_error err = {0};
  if (qv_vecfile_open(&f, path, &err) == QV_OK) {
    const size_t rows = qv_vecfile_rows(f), cols = qv_vecfile_cols(f);
    /* Read in blocks of up to 64 rows, as the clients do, within a bounded buffer. */
    const size_t block = cols > 0 && cols <= (1u << 16) ? 64 : 1;
    float *x = malloc(block * (cols ? cols : 1) * sizeof *x);
    int64_t *ids = malloc(block * sizeof *ids);
    for (size_t r = 0; x && ids && r < rows && r < 4096; r += block) {
      const size_t n = rows - r < block ? rows - r : block;
      if (cols <= (1u << 16))
        qv_vecfile_read_f32(f, r, n, x, &err);
      if (cols <= 1)
        qv_vecfile_read_i64(f, r, n, ids, &err);
    }
    free(x);
    free(ids);
    qv_vecfile_close(f);
  }
  unlink(path);
  return 0;
}
