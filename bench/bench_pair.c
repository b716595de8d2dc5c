#include "bench_pair.h"

#include <stdio.h>

#include "bench_common.h"

void bench_pair_build(bench_pair *p, const qv_collection_opts *o, const float *base, size_t nb,
                      const int64_t *ids, const char *dir, char *path, size_t path_size) {
  qv_error e = {0};
  if (qv_collection_create(&p->col, o, &e) || qv_collection_add(p->col, nb, ids, base, &e) ||
      qv_collection_build(p->col, NULL, NULL, &e) || qv_collection_save(p->col, dir, &e))
    bench_die(o->spec, e.msg);
  snprintf(path, path_size, "%s/v000001/index.faiss", dir);
}

void bench_pair_search_quiver(void *ctx, size_t off, size_t m) {
  bench_pair *p = ctx;
  qv_error e = {0};
  if (qv_collection_search(p->col, p->q + off * p->d, m, &p->sp, p->sc + off * p->k,
                           p->ia + off * p->k, &e))
    bench_die("quiver search", e.msg);
}
