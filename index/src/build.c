/* Builds and whole-state replacement (quiver/collection.h).
 *
 * A build never blocks searches and blocks writers only for its last step. It copies the store
 * (ids + vectors) under the writers' lock, then trains and fills the new index from the copy with
 * no lock held while writers go on; each id they touch is recorded (c->touched). Before the swap
 * it measures recall against exact search on a sample of the copy (and tunes nprobe when asked),
 * then, under the writers' lock, removes the touched ids from the new index and re-adds the ones
 * still stored, makes the GPU copy when the collection has one, and swaps the pointers under the
 * readers' lock. Searches that started before the swap hold the read lock and finish on the old
 * index, which is freed after the swap. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <faiss/c_api/Index_c.h>

#include "internal.h"
#include "quiver/clock.h"

void qv_build_opts_init(qv_build_opts *o) {
  memset(o, 0, sizeof *o);
  o->eval_queries = 200;
  o->eval_k = 10;
}

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static int report(qv_progress_fn fn, void *user, const char *phase, uint64_t done, uint64_t total) {
  return fn != NULL && fn(user, phase, done, total) != 0;
}

/* Picks ns of n rows with a seeded partial Fisher-Yates shuffle; rows must hold n entries. */
static void sample_rows(size_t *rows, size_t n, size_t ns, uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    rows[i] = i;
  uint64_t s = seed ? seed : 1;
  for (size_t i = 0; i < ns; i++) {
    size_t j = i + (size_t)(rng_next(&s) % (n - i));
    size_t t = rows[i];
    rows[i] = rows[j];
    rows[j] = t;
  }
}

static uint64_t index_bytes(const qv__spec *s, size_t d, uint64_t n) {
  return n * (s->code_bytes + sizeof(int64_t)) + (uint64_t)s->nlist * d * sizeof(float);
}

/* Caller holds c->wmu (or c->rw): the figures do not move. */
static uint64_t build_memory_locked(qv_collection *c) {
  const uint64_t n = c->count, d = c->dim;
  uint64_t held = n * (d * sizeof(float) + sizeof(int64_t) + c->n_features * sizeof(float));
  if (c->trained)
    held += index_bytes(&c->spec, d, (uint64_t)faiss_Index_ntotal(c->index));
  return held + n * (d * sizeof(float) + sizeof(int64_t)) + index_bytes(&c->spec, d, n);
}

uint64_t qv_collection_build_memory(qv_collection *c) {
  if (c == NULL)
    return 0;
  pthread_mutex_lock(&c->wmu);
  uint64_t b = build_memory_locked(c);
  pthread_mutex_unlock(&c->wmu);
  return b;
}

qv_status qv_build_opts_check(const qv_build_opts *o, qv_error *err) {
  if (o == NULL)
    return qv_error_set(err, QV_EINVAL, "build options are NULL");
  if (!(o->recall_floor >= 0 && o->recall_floor <= 1) ||
      !(o->target_recall >= 0 && o->target_recall <= 1))
    return qv_error_set(err, QV_EINVAL,
                        "recall floor and target recall must be in [0, 1] (0 = none); got %g, %g",
                        o->recall_floor, o->target_recall);
  if (o->eval_queries < 1 || o->eval_queries > 100000)
    return qv_error_set(err, QV_EINVAL, "eval_queries must be 1..100000 (got %u)", o->eval_queries);
  if (o->eval_k < 1 || o->eval_k > 1024)
    return qv_error_set(err, QV_EINVAL, "eval_k must be 1..1024 (got %u)", o->eval_k);
  return QV_OK;
}

/* ---- recall on a sample of the stored vectors ------------------------------------------- */

typedef struct evalset {
  size_t nq, k, k1; /* queries, recall@k, k + 1 fetched (the query itself is in the data) */
  float *q;         /* nq x d */
  int64_t *self;    /* the query's own id */
  int64_t *gt;      /* nq x k exact neighbours, self left out (-1 padded) */
  float *sc;        /* nq x k1 scratch */
  int64_t *res;     /* nq x k1 scratch */
} evalset;

static void evalset_free(evalset *e) {
  free(e->q);
  free(e->self);
  free(e->gt);
  free(e->sc);
  free(e->res);
}

/* Row i of in (k1 ids) without `self`, first k, into out. */
static void drop_self(const int64_t *in, size_t k1, int64_t self, size_t k, int64_t *out) {
  size_t j = 0;
  for (size_t i = 0; i < k1 && j < k; i++)
    if (in[i] != self)
      out[j++] = in[i];
  while (j < k)
    out[j++] = -1;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static qv_status evalset_make(evalset *e, qv_metric metric, size_t d, const float *vecs,
                              const int64_t *ids, size_t n, size_t nq, size_t k, uint64_t seed,
                              qv_error *err) {
  memset(e, 0, sizeof *e);
  e->nq = nq;
  e->k = k;
  e->k1 = k + 1;
  size_t *rows = malloc(n * sizeof *rows);
  e->q = calloc(nq * d, sizeof(float)); /* calloc: gcc cannot see that every row is filled */
  e->self = malloc(nq * sizeof(int64_t));
  e->gt = malloc(nq * k * sizeof(int64_t));
  e->sc = malloc(nq * e->k1 * sizeof(float));
  e->res = malloc(nq * e->k1 * sizeof(int64_t));
  if (!rows || !e->q || !e->self || !e->gt || !e->sc || !e->res) {
    free(rows);
    evalset_free(e);
    return qv_error_set(err, QV_ENOMEM, "build: out of memory for a recall sample of %zu", nq);
  }
  sample_rows(rows, n, nq, seed ^ 0x5DEECE66DULL);
  for (size_t i = 0; i < nq; i++) {
    memcpy(e->q + i * d, vecs + rows[i] * d, d * sizeof(float));
    e->self[i] = ids[rows[i]];
  }
  free(rows);
  qv_status st = qv__exact_search(metric, vecs, ids, n, d, e->q, nq, e->k1, e->sc, e->res, err);
  if (st != QV_OK) {
    evalset_free(e);
    return st;
  }
  for (size_t i = 0; i < nq; i++) {
    drop_self(e->res + i * e->k1, e->k1, e->self[i], k, e->gt + i * k);
    qsort(e->gt + i * k, k, sizeof(int64_t), cmp_i64);
  }
  return QV_OK;
}

/* recall@k of idx at nprobe over the sample. */
static qv_status evalset_recall(evalset *e, FaissIndex *idx, const qv__spec *spec, size_t d,
                                uint32_t nprobe, double *recall, qv_error *err) {
  qv_status st =
      qv__index_search(idx, spec, d, e->q, e->nq, e->k1, nprobe, NULL, e->sc, e->res, err);
  if (st != QV_OK)
    return st;
  uint64_t hit = 0, want = 0;
  int64_t row[1024];
  for (size_t i = 0; i < e->nq; i++) {
    const int64_t *gt = e->gt + i * e->k;
    drop_self(e->res + i * e->k1, e->k1, e->self[i], e->k, row);
    for (size_t j = 0; j < e->k; j++) {
      if (gt[j] >= 0)
        want++;
      if (row[j] >= 0 && bsearch(&row[j], gt, e->k, sizeof(int64_t), cmp_i64) != NULL)
        hit++;
    }
  }
  *recall = want ? (double)hit / (double)want : 1.0;
  return QV_OK;
}

/* Measures recall of idx (and tunes nprobe when asked); fills rep. QV_EPRECONDITION when under
 * the floor. */
static qv_status evaluate(qv_metric metric, const qv__spec *spec, size_t d, FaissIndex *idx,
                          const float *vecs, const int64_t *ids, size_t n, uint64_t seed,
                          uint32_t default_nprobe, const qv_build_opts *o, qv_progress_fn progress,
                          void *user, qv_build_report *rep, qv_error *err) {
  if (n < 2)
    return QV_OK; /* nothing to measure: every query would be the only vector */
  size_t nq = o->eval_queries < n ? o->eval_queries : n;
  size_t k = o->eval_k < n - 1 ? o->eval_k : n - 1;
  evalset e;
  qv_status st = evalset_make(&e, metric, d, vecs, ids, n, nq, k, seed, err);
  if (st != QV_OK)
    return st;
  const uint32_t nlist = spec->nlist;
  uint32_t nprobe = nlist ? (default_nprobe < nlist ? default_nprobe : nlist) : 0;
  double r = 0;
  if (spec->graph) {
    nprobe = default_nprobe ? default_nprobe : 16;
    if (o->target_recall > 0) {
      /* The smallest efSearch of a ladder reaching the target (recall grows with it). */
      static const uint32_t ladder[] = {8,   12,  16,  24,  32,   48,   64,   96,   128,
                                        192, 256, 384, 512, 1024, 2048, 4096, 8192, 16384};
      const size_t nl = sizeof ladder / sizeof ladder[0];
      size_t lo = 0, hi = nl - 1;
      double rhi;
      if ((st = evalset_recall(&e, idx, spec, d, ladder[hi], &rhi, err)) != QV_OK)
        goto out;
      rep->target_reached = rhi >= o->target_recall;
      uint32_t step = 0;
      while (rep->target_reached && lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (report(progress, user, "tune", ++step, 0)) {
          st = qv_error_set(err, QV_ECANCELLED, "build cancelled; the previous index stays");
          goto out;
        }
        if ((st = evalset_recall(&e, idx, spec, d, ladder[mid], &r, err)) != QV_OK)
          goto out;
        if (r >= o->target_recall)
          hi = mid;
        else
          lo = mid + 1;
      }
      nprobe = ladder[hi];
      rep->tuned_nprobe = nprobe;
    }
  } else if (nlist > 0 && o->target_recall > 0) {
    /* Smallest nprobe reaching the target: recall grows with nprobe (the probed lists nest). */
    uint32_t lo = 1, hi = nlist, step = 0;
    double rhi;
    if ((st = evalset_recall(&e, idx, spec, d, hi, &rhi, err)) != QV_OK)
      goto out;
    rep->target_reached = rhi >= o->target_recall;
    while (rep->target_reached && lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (report(progress, user, "tune", ++step, 0)) {
        st = qv_error_set(err, QV_ECANCELLED, "build cancelled; the previous index stays");
        goto out;
      }
      if ((st = evalset_recall(&e, idx, spec, d, mid, &r, err)) != QV_OK)
        goto out;
      if (r >= o->target_recall)
        hi = mid;
      else
        lo = mid + 1;
    }
    nprobe = hi;
    rep->tuned_nprobe = hi;
  }
  if ((st = evalset_recall(&e, idx, spec, d, nprobe, &r, err)) != QV_OK)
    goto out;
  rep->recall = r;
  rep->recall_k = (uint32_t)k;
  rep->recall_nprobe = nprobe;
  rep->eval_queries = (uint32_t)nq;
  if (o->recall_floor > 0 && r < o->recall_floor)
    st = qv_error_set(err, QV_EPRECONDITION,
                      "recall@%zu of the new index is %.4f at %s %u, below the floor %.4f: "
                      "the previous index keeps serving (use %s, a target recall, or a less "
                      "lossy spec)",
                      k, r, spec->graph ? "efSearch" : "nprobe", nprobe, o->recall_floor,
                      spec->graph ? "a larger efSearch" : "more lists per probe");
out:
  evalset_free(&e);
  return st;
}

/* ---- build ------------------------------------------------------------------------------ */

/* Re-applies the ids written since the copy to idx: removed, then re-added from the store when
 * still there. A graph index cannot remove: its touched ids are only re-added, and *stale gets
 * them (malloc'd, *nstale of them) for tombstones once idx serves. Caller holds c->wmu. */
static qv_status catch_up(qv_collection *c, FaissIndex *idx, uint64_t *n_out, int64_t **stale,
                          size_t *nstale, qv_error *err) {
  *n_out = 0;
  *stale = NULL;
  *nstale = 0;
  if (c->touched_lost)
    return qv_error_set(err, QV_ENOMEM,
                        "build: out of memory tracking writes made during the build; the "
                        "previous index stays (build again)");
  size_t nt = c->touched.count;
  if (nt == 0)
    return QV_OK;
  int64_t *ids = malloc(nt * sizeof *ids), *live = malloc(nt * sizeof *live);
  float *v = malloc(nt * c->dim * sizeof *v);
  qv_status st = QV_OK;
  if (!ids || !live || !v) {
    st = qv_error_set(err, QV_ENOMEM, "build: out of memory catching up on %zu writes", nt);
    goto out;
  }
  size_t m = qv__idmap_keys(&c->touched, ids, nt), nl = 0;
  for (size_t i = 0; i < m; i++) {
    uint64_t row;
    if (qv__idmap_get(&c->map, ids[i], &row)) {
      live[nl] = ids[i];
      memcpy(v + nl * c->dim, c->vecs + row * c->dim, c->dim * sizeof(float));
      nl++;
    }
  }
  if (qv__spec_gated(&c->spec)) {
    if (qv__idmap_reserve(&c->tomb, c->tomb.count + m) != 0) {
      st = qv_error_set(err, QV_ENOMEM, "build: out of memory for %zu tombstones", m);
      goto out;
    }
  } else if ((st = qv__index_remove(idx, m, ids, err)) != QV_OK) {
    goto out;
  }
  if (nl > 0 && faiss_Index_add_with_ids(idx, (idx_t)nl, v, live) != 0) {
    st = qv__faiss_fail(err, QV_EINTERNAL, "build: re-adding vectors written during the build");
    goto out;
  }
  *n_out = m;
  if (qv__spec_gated(&c->spec)) {
    *stale = ids;
    *nstale = m;
    ids = NULL;
  }
out:
  free(ids);
  free(live);
  free(v);
  return st;
}

qv_status qv_collection_build(qv_collection *c, qv_progress_fn progress, void *user,
                              qv_error *err) {
  return qv_collection_build_ex(c, NULL, progress, user, NULL, err);
}

/* build_ex and replace get their options and report from the wrappers below: never NULL (the
 * defaults, a scratch report), the report cleared (recall -1: not measured). */
static void with_defaults(const qv_build_opts **o, qv_build_opts *defaults, qv_build_report **rep,
                          qv_build_report *scratch) {
  if (*o == NULL) {
    qv_build_opts_init(defaults);
    *o = defaults;
  }
  if (*rep == NULL)
    *rep = scratch;
  memset(*rep, 0, sizeof **rep);
  (*rep)->recall = -1;
}

static qv_status build_ex(qv_collection *c, const qv_build_opts *o, qv_progress_fn progress,
                          void *user, qv_build_report *rep, qv_error *err) {
  if (c == NULL)
    return qv_error_set(err, QV_EINVAL, "build: collection is NULL");
  qv_status st = qv_build_opts_check(o, err);
  if (st != QV_OK)
    return st;
  const double t0 = qv_monotonic_s();
  FaissIndex *idx = NULL;
  float *copy = NULL, *sample = NULL;
  int64_t *copy_ids = NULL;
  size_t *rows = NULL;
  const size_t d = c->dim;

  pthread_mutex_lock(&c->wmu);
  if (c->building) {
    pthread_mutex_unlock(&c->wmu);
    return qv_error_set(err, QV_EPRECONDITION, "build: a build of this collection is running");
  }
  const size_t n = c->count;
  const qv__spec spec = c->spec;
  const qv_metric metric = c->metric;
  const uint64_t seed = c->seed;
  const size_t train_sample = c->train_sample;
  const uint32_t default_nprobe = c->default_nprobe;
  if (n < spec.train_min || (spec.nlist > 0 && n == 0)) {
    pthread_mutex_unlock(&c->wmu);
    return qv_error_set(err, QV_EPRECONDITION,
                        "build: '%s' needs at least %zu vectors to train, the collection has %zu",
                        spec.text, spec.train_min ? spec.train_min : 1, n);
  }
  rep->memory_needed = build_memory_locked(c);
  if (o->memory_budget > 0 && rep->memory_needed > o->memory_budget) {
    pthread_mutex_unlock(&c->wmu);
    return qv_error_set(err, QV_ENOMEM,
                        "build needs about %llu MiB (the store and index now held, a copy of "
                        "the store and the new index) but the memory budget allows %llu MiB: "
                        "raise the budget or free memory (drop or shrink collections)",
                        (unsigned long long)(rep->memory_needed >> 20),
                        (unsigned long long)(o->memory_budget >> 20));
  }
  copy = malloc((n ? n : 1) * d * sizeof(float));
  copy_ids = malloc((n ? n : 1) * sizeof(int64_t));
  if (copy == NULL || copy_ids == NULL) {
    pthread_mutex_unlock(&c->wmu);
    st = qv_error_set(err, QV_ENOMEM, "build: out of memory copying %zu vectors", n);
    goto done;
  }
  if (n > 0) { /* an empty store has no arrays yet (memcpy from NULL is undefined, even of 0) */
    memcpy(copy, c->vecs, n * d * sizeof(float));
    memcpy(copy_ids, c->ids, n * sizeof(int64_t));
  }
  c->building = 1;
  c->touched_lost = 0;
  qv__idmap_clear(&c->touched);
  pthread_mutex_unlock(&c->wmu);

  /* From here writers go on; everything below reads only the copy. */
  if ((st = qv__index_new(&spec, d, metric, &idx, err)) != QV_OK)
    goto out;
  if (spec.nlist > 0 || spec.train_min > 0) { /* IVF, or a graph over SQ8 codes */
    size_t ns = train_sample ? train_sample : spec.nlist ? (size_t)256 * spec.nlist : 65536;
    if (ns < spec.train_min)
      ns = spec.train_min;
    if (ns > n)
      ns = n;
    if (report(progress, user, "sample", 0, ns))
      goto cancelled;
    const float *train = copy;
    if (ns < n) {
      rows = malloc(n * sizeof *rows);
      sample = malloc(ns * d * sizeof(float));
      if (rows == NULL || sample == NULL) {
        st = qv_error_set(err, QV_ENOMEM, "build: out of memory for a sample of %zu", ns);
        goto out;
      }
      sample_rows(rows, n, ns, seed);
      for (size_t i = 0; i < ns; i++)
        memcpy(sample + i * d, copy + rows[i] * d, d * sizeof(float));
      train = sample;
    }
    if (report(progress, user, "train", 0, 1))
      goto cancelled;
    if (faiss_Index_train(idx, (idx_t)ns, train) != 0) {
      st = qv__faiss_fail(err, QV_EINTERNAL, "build: training");
      goto out;
    }
    if (report(progress, user, "train", 1, 1))
      goto cancelled;
  }
  const size_t chunk = 65536;
  for (size_t off = 0; off < n; off += chunk) {
    size_t m = n - off < chunk ? n - off : chunk;
    if (report(progress, user, "add", off, n))
      goto cancelled;
    if (faiss_Index_add_with_ids(idx, (idx_t)m, copy + off * d, copy_ids + off) != 0) {
      st = qv__faiss_fail(err, QV_EINTERNAL, "build: adding vectors");
      goto out;
    }
  }
  report(progress, user, "add", n, n);
  qv__index_prepare(idx, &spec);
  if (report(progress, user, "evaluate", 0, 1))
    goto cancelled;
  if ((st = evaluate(metric, &spec, d, idx, copy, copy_ids, n, seed, default_nprobe, o, progress,
                     user, rep, err)) != QV_OK)
    goto out;
  free(copy);
  copy = NULL;
  if (report(progress, user, "evaluate", 1, 1))
    goto cancelled;

  pthread_mutex_lock(&c->wmu);
  int64_t *stale = NULL;
  size_t nstale = 0;
  if ((st = catch_up(c, idx, &rep->caught_up, &stale, &nstale, err)) != QV_OK) {
    pthread_mutex_unlock(&c->wmu);
    goto out;
  }
  /* The GPU copy of the new index is made before the swap; searches go on meanwhile. */
  qv__gpu_index *gpu = NULL;
  char note[QV__NOTE];
  if ((st = qv__place(c, idx, c->gpu, &gpu, note, err)) != QV_OK) {
    pthread_mutex_unlock(&c->wmu);
    free(stale);
    goto out;
  }
  pthread_rwlock_wrlock(&c->rw);
  FaissIndex *old = c->index;
  qv__gpu_index *old_gpu = c->gpu;
  c->index = idx;
  c->gpu = gpu;
  qv__gate_reset(&c->gate);
  memcpy(c->placement, note, sizeof note);
  c->trained = 1;
  c->version++;
  qv__idmap_clear(&c->tomb); /* the new index holds only live entries */
  c->n_dead = 0;
  /* ... but for the graph's entries of ids written during the build (reserved in catch_up) */
  for (size_t i = 0; i < nstale; i++) {
    qv__idmap_put(&c->tomb, stale[i],
                  qv__idmap_get(&c->map, stale[i], NULL) ? QV__TOMB_REPLACED : QV__TOMB_DELETED);
    c->n_dead++;
  }
  free(stale);
  if (rep->tuned_nprobe > 0)
    c->default_nprobe = rep->tuned_nprobe;
  c->build_recall = rep->recall;
  c->build_recall_k = rep->recall_k;
  c->build_nprobe = rep->recall_nprobe;
  pthread_rwlock_unlock(&c->rw);
  c->building = 0;
  qv__idmap_clear(&c->touched);
  qv__attrs_resort(c); /* under wmu: the rows hold still */
  pthread_mutex_unlock(&c->wmu);
  qv__gpu_free(old_gpu);
  idx = old; /* freed below, outside every lock */
  goto done;
cancelled:
  st = qv_error_set(err, QV_ECANCELLED, "build cancelled; the previous index stays");
out:
  pthread_mutex_lock(&c->wmu);
  c->building = 0;
  qv__idmap_clear(&c->touched);
  pthread_mutex_unlock(&c->wmu);
done:
  if (idx != NULL)
    faiss_Index_free(idx);
  free(copy);
  free(copy_ids);
  free(sample);
  free(rows);
  rep->seconds = qv_monotonic_s() - t0;
  return st;
}

/* ---- replace (import) ------------------------------------------------------------------- */

#define SWAP(a, b)                                                                                 \
  do {                                                                                             \
    __typeof__(a) t_ = (a);                                                                        \
    (a) = (b);                                                                                     \
    (b) = t_;                                                                                      \
  } while (0)

qv_status qv_collection_build_ex(qv_collection *c, const qv_build_opts *o, qv_progress_fn progress,
                                 void *user, qv_build_report *rep, qv_error *err) {
  qv_build_opts defaults;
  qv_build_report scratch;
  with_defaults(&o, &defaults, &rep, &scratch);
  qv__blas_build(+1); /* training and the recall check's exact search may use every core */
  const qv_status st = build_ex(c, o, progress, user, rep, err);
  qv__blas_build(-1);
  return st;
}

/* src takes c's attributes for the ids both have: c's schema first when src has none (every item
 * then starts with defaults). The caller holds what keeps both still (c->wmu or c->rw; src not
 * shared, or its wmu and rw). */
static qv_status adopt_attrs(qv_collection *src, qv_collection *c, qv_error *err) {
  const int fresh = src->attrs.n == 0;
  if (fresh) {
    qv_status st = qv__attrs_set_schema(&src->attrs, c->attrs.n, c->attrs.f, err);
    if (st != QV_OK)
      return st;
    if (qv__attrs_reserve(&src->attrs, src->cap) != 0)
      return qv_error_set(err, QV_ENOMEM, "replace: out of memory for attributes");
    for (size_t j = 0; j < src->attrs.n; j++)
      memset(src->attrs.col[j], 0, (src->cap ? src->cap : 1) * sizeof(uint64_t));
  } else if (!qv__attrs_same_schema(&src->attrs, &c->attrs)) {
    return qv_error_set(err, QV_EINVAL, "the two collections have other attribute schemas");
  }
  for (size_t r = 0; r < src->count; r++) {
    uint64_t cr;
    if (!qv__idmap_get(&c->map, src->ids[r], &cr)) {
      static const uint64_t defaults[QV_MAX_ATTRS];
      if (fresh)
        qv__attrs_put(&src->attrs, r, defaults, 0);
      continue;
    }
    if (!fresh)
      qv__attrs_drop(&src->attrs, r);
    if (qv__attrs_copy_row(&src->attrs, r, &c->attrs, cr) != 0)
      return qv_error_set(err, QV_ENOMEM, "replace: out of memory for attributes");
  }
  return QV_OK;
}

qv_status qv_collection_adopt_attrs(qv_collection *dst, qv_collection *from, qv_error *err) {
  if (dst == NULL || from == NULL || dst == from)
    return qv_error_set(err, QV_EINVAL, "adopt_attrs: NULL or identical collections");
  if (from->attrs.n == 0)
    return QV_OK;
  pthread_mutex_lock(&dst->wmu);
  pthread_rwlock_wrlock(&dst->rw);
  pthread_rwlock_rdlock(&from->rw);
  qv_status st = adopt_attrs(dst, from, err);
  pthread_rwlock_unlock(&from->rw);
  pthread_rwlock_unlock(&dst->rw);
  pthread_mutex_unlock(&dst->wmu);
  return st;
}

static qv_status replace(qv_collection *c, qv_collection *src, const qv_build_opts *o,
                         qv_build_report *rep, qv_error *err) {
  if (c == NULL || src == NULL || c == src)
    return qv_error_set(err, QV_EINVAL, "replace: NULL or identical collections");
  qv_status st = qv_build_opts_check(o, err);
  if (st != QV_OK)
    return st;
  const double t0 = qv_monotonic_s();
  if (src->dim != c->dim || src->metric != c->metric)
    return qv_error_set(err, QV_EINVAL,
                        "the index has dim %zu, metric %s; the collection has dim %zu, metric %s "
                        "(build it from embeddings of the same model and metric)",
                        src->dim, qv_metric_name(src->metric), c->dim, qv_metric_name(c->metric));
  if (src->n_features != c->n_features && src->n_features != 0)
    return qv_error_set(err, QV_EINVAL,
                        "the index's items carry %zu features, the collection's %zu",
                        src->n_features, c->n_features);
  if (!src->trained)
    return qv_error_set(err, QV_EPRECONDITION,
                        "the index to import is not built (run 'quiver index build' on it)");
  if (src->attrs.n > 0 && !qv__attrs_same_schema(&src->attrs, &c->attrs))
    return qv_error_set(err, QV_EINVAL,
                        "the index's items have another attribute schema than the collection's");
  if (c->n_features > 0 && src->n_features == 0) { /* items without features: all zeros */
    src->feats = calloc(src->cap ? src->cap : 1, c->n_features * sizeof(float));
    if (src->feats == NULL)
      return qv_error_set(err, QV_ENOMEM, "replace: out of memory for features");
    src->n_features = c->n_features;
  }
  if ((st = qv__fold_tombstones(src, err)) != QV_OK)
    return st;
  if ((st = evaluate(src->metric, &src->spec, src->dim, src->index, src->vecs, src->ids, src->count,
                     src->seed, src->default_nprobe, o, NULL, NULL, rep, err)) != QV_OK)
    return st;
  pthread_mutex_lock(&c->wmu);
  if (c->building) {
    pthread_mutex_unlock(&c->wmu);
    return qv_error_set(err, QV_EPRECONDITION,
                        "a build of this collection is running: retry "
                        "when it ends");
  }
  /* Placed for c's device with src's own spec (its nlist, its size); a copy src got when it was
   * opened is dropped first so that its budget is free. */
  qv__gpu_free(src->gpu);
  src->gpu = NULL;
  src->device = c->device;
  qv__gpu_index *gpu = NULL;
  char note[QV__NOTE];
  if ((st = qv__place(src, src->index, c->gpu, &gpu, note, err)) != QV_OK) {
    pthread_mutex_unlock(&c->wmu);
    return st;
  }
  if (c->attrs.n > 0 && src->attrs.n == 0 && (st = adopt_attrs(src, c, err)) != QV_OK) {
    qv__gpu_free(gpu);
    pthread_mutex_unlock(&c->wmu);
    return st;
  }
  pthread_rwlock_wrlock(&c->rw);
  SWAP(c->attrs, src->attrs);
  SWAP(c->spec, src->spec);
  SWAP(c->index, src->index);
  SWAP(c->vecs, src->vecs);
  SWAP(c->feats, src->feats);
  SWAP(c->ids, src->ids);
  SWAP(c->count, src->count);
  SWAP(c->cap, src->cap);
  SWAP(c->map, src->map);
  SWAP(c->train_sample, src->train_sample);
  SWAP(c->generation, src->generation);
  qv__gate_reset(&c->gate);
  qv__gate_reset(&src->gate);
  src->gpu = c->gpu; /* the old copy goes with the old state */
  c->gpu = gpu;
  memcpy(c->placement, note, sizeof note);
  c->default_nprobe = rep->tuned_nprobe ? rep->tuned_nprobe : src->default_nprobe;
  c->trained = 1;
  c->version++;
  qv__idmap_clear(&c->tomb);
  c->n_dead = 0;
  c->build_recall = rep->recall;
  c->build_recall_k = rep->recall_k;
  c->build_nprobe = rep->recall_nprobe;
  pthread_rwlock_unlock(&c->rw);
  pthread_mutex_unlock(&c->wmu);
  rep->seconds = qv_monotonic_s() - t0;
  return QV_OK;
}

qv_status qv_collection_replace(qv_collection *c, qv_collection *src, const qv_build_opts *o,
                                qv_build_report *rep, qv_error *err) {
  qv_build_opts defaults;
  qv_build_report scratch;
  with_defaults(&o, &defaults, &rep, &scratch);
  qv__blas_build(+1); /* the recall check's exact search may use every core, like a build */
  const qv_status st = replace(c, src, o, rep, err);
  qv__blas_build(-1);
  return st;
}

qv_status qv_collection_swap(qv_collection *a, qv_collection *b, qv_error *err) {
  if (a == NULL || b == NULL || a == b)
    return qv_error_set(err, QV_EINVAL, "swap: NULL or identical collections");
  if (a->dim != b->dim || a->metric != b->metric || a->n_features != b->n_features)
    return qv_error_set(err, QV_EINVAL,
                        "swap: the versions differ in dim (%zu, %zu), metric or features (%zu, "
                        "%zu)",
                        a->dim, b->dim, a->n_features, b->n_features);
  if (!qv__attrs_same_schema(&a->attrs, &b->attrs))
    return qv_error_set(err, QV_EINVAL, "swap: the versions have other attribute schemas");
  /* Writers' locks in address order: two swaps of one pair cannot deadlock. */
  qv_collection *lo = a < b ? a : b, *hi = a < b ? b : a;
  pthread_mutex_lock(&lo->wmu);
  pthread_mutex_lock(&hi->wmu);
  qv_status st = QV_OK;
  if (a->building || b->building)
    st = qv_error_set(err, QV_EPRECONDITION,
                      "a build of this collection is running: retry when "
                      "it ends");
  else if (!a->trained || !b->trained)
    st = qv_error_set(err, QV_EPRECONDITION, "swap: both versions must be built");
  if (st == QV_OK) {
    pthread_rwlock_wrlock(&lo->rw);
    pthread_rwlock_wrlock(&hi->rw);
    SWAP(a->attrs, b->attrs);
    SWAP(a->spec, b->spec);
    SWAP(a->index, b->index);
    SWAP(a->vecs, b->vecs);
    SWAP(a->feats, b->feats);
    SWAP(a->ids, b->ids);
    SWAP(a->count, b->count);
    SWAP(a->cap, b->cap);
    SWAP(a->map, b->map);
    SWAP(a->train_sample, b->train_sample);
    SWAP(a->generation, b->generation);
    qv__gate_reset(&a->gate);
    qv__gate_reset(&b->gate);
    SWAP(a->default_nprobe, b->default_nprobe);
    SWAP(a->version, b->version);
    SWAP(a->gpu, b->gpu);
    char note[sizeof a->placement];
    memcpy(note, a->placement, sizeof note);
    memcpy(a->placement, b->placement, sizeof note);
    memcpy(b->placement, note, sizeof note);
    SWAP(a->tomb, b->tomb);
    SWAP(a->n_dead, b->n_dead);
    SWAP(a->build_recall, b->build_recall);
    SWAP(a->build_recall_k, b->build_recall_k);
    SWAP(a->build_nprobe, b->build_nprobe);
    pthread_rwlock_unlock(&hi->rw);
    pthread_rwlock_unlock(&lo->rw);
  }
  pthread_mutex_unlock(&hi->wmu);
  pthread_mutex_unlock(&lo->wmu);
  return st;
}
