/* What the write-ahead log costs upserts: the same stream of upserts into a built IVF collection,
 * in-process, with no log, with the log synced at most every 100 ms, and with the log synced
 * before every acknowledgement, side by side in one run (BENCHMARKING.md: quote ratios).
 *
 *   wal_bench [--dir DIR] [--n N] [--dim D] [--batch B,B,...] [--seconds S]
 *
 * DIR must be on the disk the server's data directory would use (default: a temporary
 * directory under $TMPDIR or /tmp). Each configuration upserts N new vectors (default 50000; at
 * most S seconds, default 30) in batches of B, three times interleaved with the others, and
 * reports the median vectors/s, syncs/s and the ratio to "no log". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quiver/clock.h"
#include "quiver/collection.h"
#include "quiver/fsutil.h"

static uint64_t rng_state = 88172645463325252ULL;
static float frand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float)(rng_state >> 40) / (float)(1u << 24) - 0.5f;
}

static int fail(const qv_error *e) {
  fprintf(stderr, "wal_bench: %s\n", e->msg);
  return 1;
}

typedef struct result {
  double vps, bps;
} result;

/* mode 0: no log; 1: interval 100 ms; 2: always. */
static int run(const char *root, int mode, size_t dim, size_t batch, size_t max_n, double seconds,
               result *out) {
  char dir[QV_PATH_MAX];
  qv_path_fmt(dir, NULL, "%s/c%d-%zu", root, mode, batch);
  qv_error e = {0};
  qv_collection_opts o;
  qv_collection_opts_init(&o);
  o.dim = dim;
  o.spec = "IVF64,Flat";
  qv_collection *c = NULL;
  if (qv_collection_create(&c, &o, &e) != QV_OK)
    return fail(&e);
  /* Trained on 20k vectors first, so upserts go into a live IVF index as in the server. */
  const size_t n0 = 20000;
  float *v = malloc(n0 * dim * sizeof(float));
  int64_t *ids = malloc(n0 * sizeof(int64_t));
  if (v == NULL || ids == NULL)
    return 1;
  for (size_t i = 0; i < n0 * dim; i++)
    v[i] = frand();
  for (size_t i = 0; i < n0; i++)
    ids[i] = (int64_t)i;
  if (qv_collection_add(c, n0, ids, v, &e) != QV_OK || qv_collection_build(c, NULL, NULL, &e) ||
      qv_collection_save(c, dir, &e) != QV_OK)
    return fail(&e);
  if (mode > 0) {
    qv_wal_opts wo;
    qv_wal_opts_init(&wo);
    wo.sync_always = mode == 2;
    if (qv_collection_wal_attach(c, dir, &wo, NULL, &e) != QV_OK)
      return fail(&e);
  }
  int64_t next = (int64_t)n0;
  size_t done = 0, batches = 0;
  double t0 = qv_monotonic_s(), t = t0;
  while (done < max_n && (t - t0) < seconds) {
    for (size_t i = 0; i < batch; i++)
      ids[i] = next++;
    if (qv_collection_add(c, batch, ids, v + (batches % 8) * dim, &e) != QV_OK)
      return fail(&e);
    done += batch;
    batches++;
    t = qv_monotonic_s();
  }
  out->vps = (double)done / (t - t0);
  out->bps = (double)batches / (t - t0);
  qv_collection_close(c);
  qv_remove_tree(dir, NULL);
  free(v);
  free(ids);
  return 0;
}

int main(int argc, char **argv) {
  const char *dir_arg = NULL;
  size_t n = 50000, dim = 128;
  double seconds = 30.0;
  const int reps = 3;
  const char *batches = "1,10,100,1000";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--dir"))
      dir_arg = argv[i + 1];
    else if (!strcmp(argv[i], "--n"))
      n = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--dim"))
      dim = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--batch"))
      batches = argv[i + 1];
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else {
      fprintf(stderr, "usage: wal_bench [--dir DIR] [--n N] [--dim D] [--batch B,B,...] "
                      "[--seconds S]\n");
      return 2;
    }
  }
  char root[QV_PATH_MAX];
  if (dir_arg != NULL) {
    qv_path_fmt(root, NULL, "%s", dir_arg);
  } else {
    const char *tmp = getenv("TMPDIR");
    qv_path_fmt(root, NULL, "%s/wal-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(root) == NULL) {
      fprintf(stderr, "wal_bench: mkdtemp: %s\n", strerror(errno));
      return 1;
    }
  }
  printf("# wal_bench: %zu new %zu-dim vectors upserted in batches of B into a built IVF64,Flat "
         "collection (20000 vectors), in-process, 1 writer, median of %d interleaved runs, dir "
         "%s\n",
         n, dim, reps, root);
  printf("| batch B | no log: vectors/s | interval=100ms: vectors/s (ratio) | always: vectors/s "
         "(ratio) | always: syncs/s |\n|---|---|---|---|---|\n");
  char *list = strdup(batches);
  for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
    size_t b = strtoull(tok, NULL, 10);
    if (b == 0 || b > 20000)
      continue;
    result all[3][3], r[3];
    for (int rep = 0; rep < reps; rep++)
      for (int mode = 0; mode < 3; mode++)
        if (run(root, mode, dim, b, n, seconds, &all[mode][rep]) != 0)
          return 1;
    for (int mode = 0; mode < 3; mode++) { /* median of three */
      result *x = all[mode];
      int lo = 0, hi = 0;
      for (int i = 1; i < 3; i++) {
        if (x[i].vps < x[lo].vps)
          lo = i;
        if (x[i].vps > x[hi].vps)
          hi = i;
      }
      r[mode] = x[lo == hi ? 0 : 3 - lo - hi];
    }
    printf("| %zu | %.0f | %.0f (%.2f) | %.0f (%.3f) | %.0f |\n", b, r[0].vps, r[1].vps,
           r[1].vps / r[0].vps, r[2].vps, r[2].vps / r[0].vps, r[2].bps);
    fflush(stdout);
  }
  free(list);
  if (dir_arg == NULL)
    rmdir(root);
  return 0;
}
