/* Search: IVF/flat search through FAISS, and exact search over the store with kernels/.
 *
 * Per-request nprobe without a lock. FAISS 1.7.3's C API has no per-call search parameters, and
 * setting IndexIVF::nprobe from concurrent searches races. So every IVF index here keeps nprobe
 * == nlist for good, and a search does the coarse step itself: it asks the quantizer for the
 * request's nprobe nearest lists, lays them out with stride nlist padded with -1 (FAISS skips
 * list -1), and calls search_preassigned, which only reads the index. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>

#include "internal.h"
#include "quiver/kernels.h"
#include "quiver/rerank.h"

/* The argument checks every search makes, in order. */
static qv_status check_args(const qv_collection *c, const float *queries, size_t n,
                            const qv_search_params *p, qv_error *err) {
  if (c == NULL || p == NULL)
    return qv_error_set(err, QV_EINVAL, "search: collection or params are NULL");
  if (n == 0)
    return qv_error_set(err, QV_EINVAL, "search: empty batch (send at least one query)");
  if (queries == NULL)
    return qv_error_set(err, QV_EINVAL, "search: NULL query or result buffer");
  if (p->k < 1 || p->k > QV_MAX_K)
    return qv_error_set(err, QV_EINVAL, "k = %zu is out of range 1..%d", p->k, QV_MAX_K);
  if (c->spec.nlist > 0 && p->nprobe > c->spec.nlist)
    return qv_error_set(err, QV_EINVAL, "nprobe = %u exceeds nlist = %u of index '%s'", p->nprobe,
                        c->spec.nlist, c->spec.text);
  if (c->spec.graph && p->nprobe > QV_MAX_EF_SEARCH)
    return qv_error_set(err, QV_EINVAL, "efSearch = %u is out of range 1..%d", p->nprobe,
                        QV_MAX_EF_SEARCH);
  if (p->filter != NULL && (int)p->filter_path != QV_FILTER_AUTO &&
      p->filter_path != QV_FILTER_EXACT && p->filter_path != QV_FILTER_INDEX)
    return qv_error_set(err, QV_EINVAL, "unknown filter path %d (use auto, exact or index)",
                        (int)p->filter_path);
  if (p->filter != NULL && qv__filter_hash(p->filter) != c->attrs.hash)
    return qv_error_set(err, QV_EINVAL,
                        "the filter was parsed for another collection's attribute schema");
  const size_t d = c->dim;
  if (n > SIZE_MAX / d / sizeof(float))
    return qv_error_set(err, QV_EINVAL, "search: batch of %zu queries is too large", n);
  return qv_check_vectors(queries, n, d, c->metric == QV_METRIC_COSINE, "query", err);
}

/* Validates the common arguments and returns the queries to use (normalised copy for cosine in
 * *owned, else the caller's). */
static qv_status prepare(qv_collection *c, const float *queries, size_t n,
                         const qv_search_params *p, const float *scores, const int64_t *ids,
                         const float **q, float **owned, qv_error *err) {
  *q = NULL; /* both outputs are set on every path, failures too */
  *owned = NULL;
  qv_status vst = check_args(c, queries, n, p, err);
  if (vst != QV_OK)
    return vst;
  if (scores == NULL || ids == NULL)
    return qv_error_set(err, QV_EINVAL, "search: NULL query or result buffer");
  const size_t d = c->dim;
  *q = queries;
  if (c->metric == QV_METRIC_COSINE) {
    float *x = malloc(n * d * sizeof(float));
    if (x == NULL)
      return qv_error_set(err, QV_ENOMEM, "search: out of memory for %zu queries", n);
    memcpy(x, queries, n * d * sizeof(float));
    qv_status st = qv_normalize_cpu(x, n, d, err);
    if (st != QV_OK) {
      free(x);
      return qv_error_prefix(err, st, "search: query");
    }
    *owned = x;
    *q = x;
  }
  return QV_OK;
}

/* FAISS pads missing results with +-FLT_MAX; our contract says +-INFINITY. */
static void fix_padding(qv_metric m, size_t nk, float *scores, const int64_t *ids) {
  float empty = qv_metric_larger_is_better(m) ? -INFINITY : INFINITY;
  for (size_t i = 0; i < nk; i++)
    if (ids[i] < 0)
      scores[i] = empty;
}

/* ---- a graph index's efSearch ------------------------------------------------------------ */

void qv__gate_init(qv__gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->cur = 0;
  g->users = g->closing = 0;
}

void qv__gate_fini(qv__gate *g) {
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

/* A graph's efSearch, or a fast-scan IVF's nprobe. */
static qv_status set_param(FaissIndex *index, int fastscan, int v, qv_error *err) {
  if (fastscan) {
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(index);
    if (ivf == NULL)
      return qv_error_set(err, QV_EINTERNAL, "search: a fast-scan index that is not IVF");
    faiss_IndexIVF_set_nprobe(ivf, (size_t)v);
    return QV_OK;
  }
  FaissParameterSpace *ps = NULL;
  int rc = faiss_ParameterSpace_new(&ps);
  if (rc == 0)
    rc = faiss_ParameterSpace_set_index_parameter(ps, index, "efSearch", (double)v);
  faiss_ParameterSpace_free(ps);
  return rc == 0 ? QV_OK : qv__faiss_fail(err, QV_EINTERNAL, "search: setting efSearch");
}

/* Enters the gate with the parameter's value ef (set on the index when it differs and no one is
 * inside). */
static qv_status gate_enter(qv__gate *g, FaissIndex *index, int fastscan, int ef, qv_error *err) {
  pthread_mutex_lock(&g->mu);
  while (g->users > 0 && (g->cur != ef || g->closing)) {
    if (g->cur != ef)
      g->closing = 1; /* the searches inside finish; new ones with their value wait too */
    pthread_cond_wait(&g->cv, &g->mu);
  }
  qv_status st = QV_OK;
  if (g->cur != ef) {
    if ((st = set_param(index, fastscan, ef, err)) == QV_OK)
      g->cur = ef;
    else
      g->cur = 0;
  }
  if (st == QV_OK)
    g->users++;
  pthread_mutex_unlock(&g->mu);
  return st;
}

static void gate_leave(qv__gate *g) {
  pthread_mutex_lock(&g->mu);
  if (--g->users == 0) {
    g->closing = 0;
    pthread_cond_broadcast(&g->cv);
  }
  pthread_mutex_unlock(&g->mu);
}

/* A search of an index whose parameter (a graph's efSearch, a fast-scan IVF's nprobe) is a field
 * of it. */
static qv_status gated_search(FaissIndex *index, int fastscan, const float *q, size_t n, size_t k,
                              uint32_t v, qv__gate *gate, float *scores, int64_t *ids,
                              qv_error *err) {
  qv_status st = gate != NULL ? gate_enter(gate, index, fastscan, (int)v, err)
                              : set_param(index, fastscan, (int)v, err);
  if (st != QV_OK)
    return st;
  if (faiss_Index_search(index, (idx_t)n, q, (idx_t)k, scores, ids) != 0)
    st = qv__faiss_fail(err, QV_EINTERNAL, "search");
  if (gate != NULL)
    gate_leave(gate);
  return st;
}

qv_status qv__index_search(FaissIndex *index, const qv__spec *spec, size_t d, const float *q,
                           size_t n, size_t k, uint32_t nprobe, qv__gate *gate, float *scores,
                           int64_t *ids, qv_error *err) {
  if (qv__spec_gated(spec))
    return gated_search(index, spec->fastscan, q, n, k, nprobe, gate, scores, ids, err);
  if (spec->nlist == 0) {
    if (faiss_Index_search(index, (idx_t)n, q, (idx_t)k, scores, ids) != 0)
      return qv__faiss_fail(err, QV_EINTERNAL, "search");
    return QV_OK;
  }
  FaissIndexIVF *ivf = faiss_IndexIVF_cast(index);
  if (ivf == NULL)
    return qv_error_set(err, QV_EINTERNAL, "index of '%s' is not IVF", spec->text);
  FaissIndex *quant = faiss_IndexIVF_quantizer(ivf);
  const size_t nlist = spec->nlist;
  size_t chunk = ((size_t)1 << 20) / nlist; /* bounds the assign buffers to ~12 MiB */
  if (chunk < 1)
    chunk = 1;
  if (chunk > n)
    chunk = n;
  idx_t *near = malloc(chunk * nprobe * sizeof(idx_t));
  float *neard = malloc(chunk * nprobe * sizeof(float));
  idx_t *assign = malloc(chunk * nlist * sizeof(idx_t));
  float *cdis = malloc(chunk * nlist * sizeof(float));
  qv_status st = QV_OK;
  if (!near || !neard || !assign || !cdis) {
    st = qv_error_set(err, QV_ENOMEM, "search: out of memory for the coarse assignment");
    goto out;
  }
  for (size_t off = 0; off < n; off += chunk) {
    size_t m = n - off < chunk ? n - off : chunk;
    if (faiss_Index_search(quant, (idx_t)m, q + off * d, nprobe, neard, near) != 0) {
      st = qv__faiss_fail(err, QV_EINTERNAL, "search: coarse quantizer");
      goto out;
    }
    for (size_t i = 0; i < m; i++) {
      memcpy(assign + i * nlist, near + i * nprobe, nprobe * sizeof(idx_t));
      memcpy(cdis + i * nlist, neard + i * nprobe, nprobe * sizeof(float));
      for (size_t j = nprobe; j < nlist; j++) {
        assign[i * nlist + j] = -1;
        cdis[i * nlist + j] = 0.0f;
      }
    }
    if (faiss_IndexIVF_search_preassigned(ivf, (idx_t)m, q + off * d, (idx_t)k, assign, cdis,
                                          scores + off * k, ids + off * k, 0) != 0) {
      st = qv__faiss_fail(err, QV_EINTERNAL, "search");
      goto out;
    }
  }
out:
  free(near);
  free(neard);
  free(assign);
  free(cdis);
  return st;
}

/* One index search: the GPU copy when there is one that can take k and nprobe, else (or when it
 * fails) the CPU index. nprobe is resolved (1 .. nlist; unused for Flat). */
static qv_status index_search(qv_collection *c, const float *q, size_t n, size_t k, uint32_t nprobe,
                              float *scores, int64_t *ids, qv_error *err) {
  qv_status st = QV_OK;
  if (c->gpu != NULL && k <= QV__GPU_MAX_K && nprobe <= QV__GPU_MAX_K) {
    qv_error ge = {0};
    if (qv__gpu_search(c->gpu, q, n, k, c->spec.nlist ? nprobe : 0, scores, ids, &ge) == QV_OK)
      return QV_OK;
    __atomic_fetch_add(&c->gpu_fallbacks, 1, __ATOMIC_RELAXED); /* the CPU index answers */
  } else if (c->gpu != NULL) {
    __atomic_fetch_add(&c->gpu_fallbacks, 1, __ATOMIC_RELAXED);
  }
  st = qv__index_search(c->index, &c->spec, c->dim, q, n, k, nprobe, &c->gate, scores, ids, err);
  return st;
}

static qv_status exact_locked(qv_collection *c, const float *q, size_t n, size_t k, float *scores,
                              int64_t *ids, qv_error *err);

static float exact_score(qv_metric m, const float *a, const float *b, size_t d) {
  float s = 0.0f;
  if (m == QV_METRIC_L2) {
    for (size_t t = 0; t < d; t++) {
      float v = a[t] - b[t];
      s += v * v;
    }
  } else {
    for (size_t t = 0; t < d; t++)
      s += a[t] * b[t];
  }
  return s;
}

typedef struct tomb_hit {
  int64_t id;
  size_t pos;
} tomb_hit;

static int by_id_then_pos(const void *a, const void *b) {
  const tomb_hit *x = a, *y = b;
  if (x->id != y->id)
    return x->id < y->id ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Tombstones (see internal.h): from kf candidates per query, drops deleted ids, re-scores replaced
 * ones exactly from the store (once each: the stale and the live entry may both come back), and
 * keeps the best k. hits and keep are kf-sized scratch. */
static void tomb_fixup(qv_collection *c, const float *q, size_t n, size_t kf, const float *cs,
                       const int64_t *ci, size_t k, float *scores, int64_t *ids, tomb_hit *hits,
                       unsigned char *keep) {
  const int larger = qv_metric_larger_is_better(c->metric);
  const size_t d = c->dim;
  qv_topk_init(n, k, larger, scores, ids);
  for (size_t i = 0; i < n; i++) {
    const int64_t *row_ids = ci + i * kf;
    size_t nh = 0;
    for (size_t j = 0; j < kf; j++) {
      keep[j] = row_ids[j] >= 0;
      if (keep[j] && qv__idmap_get(&c->tomb, row_ids[j], NULL)) {
        if (qv__idmap_get(&c->map, row_ids[j], NULL))
          hits[nh++] = (tomb_hit){row_ids[j], j};
        else
          keep[j] = 0; /* deleted */
      }
    }
    /* A replaced id may come back more than once: keep its first entry. O(t log t). */
    qsort(hits, nh, sizeof *hits, by_id_then_pos);
    for (size_t t = 1; t < nh; t++)
      if (hits[t].id == hits[t - 1].id)
        keep[hits[t].pos] = 0;
    for (size_t t = 0; t < nh; t++)
      keep[hits[t].pos] |= 2; /* re-score from the store */
    for (size_t j = 0; j < kf; j++) {
      if (!(keep[j] & 1))
        continue;
      int64_t id = row_ids[j];
      float sc = cs[i * kf + j];
      if (keep[j] & 2) {
        uint64_t row;
        qv__idmap_get(&c->map, id, &row);
        sc = exact_score(c->metric, q + i * d, c->vecs + row * d, d);
      }
      qv_topk_push_cpu(1, k, larger, &sc, 1, 1, &id, 0, scores + i * k, ids + i * k);
    }
  }
  qv_topk_finish(n, k, larger, scores, ids);
}

/* ---- filtered search ------------------------------------------------------------------------
 * The filter is evaluated once per call into a bitmap of store rows (under the read lock the
 * whole search holds, so rows cannot move), then each query's candidates come from one of:
 *   exact      the matching rows, scanned exactly (recall 1; cost ~ matches x dim);
 *   list scan  a CPU IVF's probed lists, each entry kept when its row matches and scored exactly
 *              from the store (cost ~ probed entries; recall that of the probed lists);
 *   over-fetch any other index (graph, fast-scan, a GPU copy): k' = ~1.5 k / selectivity
 *              candidates, the matching ones kept; when fewer than k survive, k' grows 4x and
 *              the query runs again, until the index has no more to give.
 * A query the index path leaves short of k while more rows match is answered exactly. */

typedef struct matches {
  uint64_t *w; /* bit r: row r matches */
  uint64_t n;
} matches;

static int row_in(const matches *mt, uint64_t row) {
  return (int)((mt->w[row >> 6] >> (row & 63)) & 1);
}

/* Exact top-k of n queries over the matching rows; the caller holds c->rw for reading. */
static qv_status exact_rows(qv_collection *c, const matches *mt, const float *q, size_t n, size_t k,
                            float *scores, int64_t *ids, qv_error *err) {
  const size_t d = c->dim, BB = 2048, QB = 32;
  const int larger = qv_metric_larger_is_better(c->metric);
  qv_topk_init(n, k, larger, scores, ids);
  float *bv = malloc(BB * d * sizeof *bv);
  int64_t *bi = malloc(BB * sizeof *bi);
  if (bv == NULL || bi == NULL) {
    free(bv);
    free(bi);
    return qv_error_set(err, QV_ENOMEM, "filtered search: out of memory");
  }
  int failed = 0;
  size_t r = 0;
  const size_t count = c->count;
  while (r < count && !failed) {
    size_t m = 0;
    for (; r < count && m < BB; r++)
      if (row_in(mt, r)) {
        memcpy(bv + m * d, c->vecs + r * d, d * sizeof(float));
        bi[m++] = c->ids[r];
      }
    if (m == 0)
      break;
#pragma omp parallel for schedule(dynamic) reduction(| : failed) if (n > QB)
    for (size_t q0 = 0; q0 < n; q0 += QB) {
      size_t nq = n - q0 < QB ? n - q0 : QB;
      float *dist = malloc(QB * BB * sizeof(float));
      if (dist == NULL) {
        failed = 1;
        continue;
      }
      qv_distances_cpu(c->metric, q + q0 * d, nq, bv, m, d, dist, NULL);
      qv_topk_push_cpu(nq, k, larger, dist, m, m, bi, 0, scores + q0 * k, ids + q0 * k);
      free(dist);
    }
  }
  free(bv);
  free(bi);
  if (failed)
    return qv_error_set(err, QV_ENOMEM, "filtered search: out of memory");
  qv_topk_finish(n, k, larger, scores, ids);
  return QV_OK;
}

/* Answers queries marked in redo exactly (a path that found fewer than k of more matches). */
static qv_status redo_exact(qv_collection *c, const matches *mt, const float *q, size_t n, size_t k,
                            const unsigned char *redo, float *scores, int64_t *ids, qv_error *err) {
  size_t nr = 0;
  for (size_t i = 0; i < n; i++)
    nr += redo[i];
  if (nr == 0)
    return QV_OK;
  const size_t d = c->dim;
  float *rq = malloc(nr * d * sizeof *rq), *rs = malloc(nr * k * sizeof *rs);
  int64_t *ri = malloc(nr * k * sizeof *ri);
  qv_status st = QV_OK;
  if (rq == NULL || rs == NULL || ri == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "filtered search: out of memory");
    goto out;
  }
  for (size_t i = 0, j = 0; i < n; i++)
    if (redo[i])
      memcpy(rq + d * j++, q + i * d, d * sizeof(float));
  if ((st = exact_rows(c, mt, rq, nr, k, rs, ri, err)) != QV_OK)
    goto out;
  for (size_t i = 0, j = 0; i < n; i++)
    if (redo[i]) {
      memcpy(scores + i * k, rs + j * k, k * sizeof *rs);
      memcpy(ids + i * k, ri + j * k, k * sizeof *ri);
      j++;
    }
  __atomic_fetch_add(&c->filtered_exact, nr, __ATOMIC_RELAXED);
  __atomic_fetch_sub(&c->filtered_index, nr, __ATOMIC_RELAXED);
out:
  free(rq);
  free(rs);
  free(ri);
  return st;
}

/* Whether id, a replaced item's (tombstoned) id, was taken for this query already. */
static int seen_before(qv__idmap *seen, int64_t id) {
  if (qv__idmap_get(seen, id, NULL))
    return 1;
  qv__idmap_put(seen, id, 0); /* a failed put only lets a repeat through, re-scored alike */
  return 0;
}

/* A CPU IVF's own scan of each query's probed lists, restricted to the matching rows. The
 * nearest matches of a selective filter lie farther out than the nearest items, in more lists:
 * past the first nprobe lists, the scan goes on (in the quantizer's order) until it has scored
 * sqrt(selectivity) times the entries nprobe lists hold on average, so that recall at a
 * selectivity s stays near the unfiltered recall at nprobe while the distances computed stay
 * below the unfiltered search's (membership tests grow by 1 / sqrt(s)). */
static qv_status list_scan(qv_collection *c, const matches *mt, const float *q, size_t n, size_t k,
                           uint32_t nprobe_in, float *scores, int64_t *ids, unsigned char *redo,
                           qv_error *err) {
  const size_t nlist = c->spec.nlist;
  const double sel = (double)mt->n / (double)(c->count ? c->count : 1);
  const double target = sqrt(sel) * (double)nprobe_in / (double)nlist * (double)c->count;
  double widen = 2.0 * (double)nprobe_in / sqrt(sel > 1e-9 ? sel : 1e-9);
  const uint32_t nprobe = widen >= (double)nlist ? (uint32_t)nlist : (uint32_t)widen + 1;
  FaissIndexIVF *ivf = faiss_IndexIVF_cast(c->index);
  if (ivf == NULL)
    return qv_error_set(err, QV_EINTERNAL, "index of '%s' is not IVF", c->spec.text);
  FaissIndex *quant = faiss_IndexIVF_quantizer(ivf);
  const size_t d = c->dim, BB = 256;
  const int larger = qv_metric_larger_is_better(c->metric);
  idx_t *near = malloc(n * nprobe * sizeof *near), *lids = NULL;
  float *nd = malloc(n * nprobe * sizeof *nd), *bv = malloc(BB * d * sizeof *bv);
  float *dist = malloc(BB * sizeof *dist);
  int64_t *bi = malloc(BB * sizeof *bi);
  size_t lcap = 0;
  qv__idmap seen;
  qv__idmap_init(&seen);
  qv_status st = QV_OK;
  if (near == NULL || nd == NULL || bv == NULL || dist == NULL || bi == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "filtered search: out of memory");
    goto out;
  }
  if (faiss_Index_search(quant, (idx_t)n, q, nprobe, nd, near) != 0) {
    st = qv__faiss_fail(err, QV_EINTERNAL, "filtered search: coarse quantizer");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const float *qi = q + i * d;
    float *si = scores + i * k;
    int64_t *ii = ids + i * k;
    qv_topk_init(1, k, larger, si, ii);
    size_t found = 0, m = 0;
    if (c->n_dead > 0)
      qv__idmap_clear(&seen);
    for (size_t p = 0; p < nprobe; p++) {
      if (p >= nprobe_in && (double)(found + m) >= target && found + m >= k)
        break;
      const idx_t list = near[i * nprobe + p];
      if (list < 0)
        continue;
      const size_t sz = faiss_IndexIVF_get_list_size(ivf, (size_t)list);
      if (sz == 0)
        continue;
      if (sz > lcap) {
        idx_t *x = realloc(lids, sz * sizeof *x);
        if (x == NULL) {
          st = qv_error_set(err, QV_ENOMEM, "filtered search: out of memory");
          goto out;
        }
        lids = x;
        lcap = sz;
      }
      faiss_IndexIVF_invlists_get_ids(ivf, (size_t)list, lids);
      for (size_t e = 0; e < sz; e++) {
        uint64_t row;
        if (!qv__idmap_get(&c->map, lids[e], &row) || !row_in(mt, row))
          continue; /* deleted, or not a match */
        if (c->n_dead > 0 && qv__idmap_get(&c->tomb, lids[e], NULL) && seen_before(&seen, lids[e]))
          continue; /* a replaced item's stale entry: its live one is scored once */
        memcpy(bv + m * d, c->vecs + row * d, d * sizeof(float));
        bi[m++] = lids[e];
        if (m == BB) {
          qv_distances_cpu(c->metric, qi, 1, bv, m, d, dist, NULL);
          qv_topk_push_cpu(1, k, larger, dist, m, m, bi, 0, si, ii);
          found += m;
          m = 0;
        }
      }
    }
    if (m > 0) {
      qv_distances_cpu(c->metric, qi, 1, bv, m, d, dist, NULL);
      qv_topk_push_cpu(1, k, larger, dist, m, m, bi, 0, si, ii);
      found += m;
    }
    qv_topk_finish(1, k, larger, si, ii);
    redo[i] = found < k && found < mt->n;
  }
out:
  qv__idmap_fini(&seen);
  free(near);
  free(nd);
  free(bv);
  free(dist);
  free(bi);
  free(lids);
  return st;
}

/* Over-fetch through the index (graph, fast-scan, a GPU copy, Flat). */
static qv_status over_fetch(qv_collection *c, const matches *mt, const float *q, size_t n, size_t k,
                            uint32_t nprobe, qv_filter_path path, float *scores, int64_t *ids,
                            unsigned char *redo, qv_error *err) {
  const size_t d = c->dim;
  const int larger = qv_metric_larger_is_better(c->metric);
  const size_t total = (size_t)faiss_Index_ntotal(c->index);
  const size_t cap = total < QV_MAX_K ? total : QV_MAX_K;
  const double sel = (double)mt->n / (double)(c->count ? c->count : 1);
  double want = 1.5 * (double)k / sel + 16.0;
  size_t kp0 = want > (double)cap ? cap : (size_t)want;
  if (kp0 < k)
    kp0 = k < cap ? k : cap;
  if (kp0 == 0)
    kp0 = 1;
  size_t kpmax = kp0;
  float *cs = NULL;
  int64_t *ci = NULL;
  qv__idmap seen;
  qv__idmap_init(&seen);
  qv_status st = QV_OK;
  for (size_t i = 0; st == QV_OK && i < n; i++) {
    const float *qi = q + i * d;
    float *si = scores + i * k;
    int64_t *ii = ids + i * k;
    size_t next_kp = kp0;
    for (size_t kp = kp0;; kp = next_kp) {
      if (kp > kpmax || cs == NULL) {
        float *x = realloc(cs, kp * sizeof *cs);
        int64_t *y = x ? realloc(ci, kp * sizeof *ci) : NULL;
        if (x)
          cs = x;
        if (y)
          ci = y;
        if (x == NULL || y == NULL) {
          st =
              qv_error_set(err, QV_ENOMEM, "filtered search: out of memory for %zu candidates", kp);
          break;
        }
        kpmax = kp;
      }
      /* A graph's search stops after efSearch steps whatever k is (FAISS 1.7.3's
       * search_from_candidates): k' candidates need an efSearch of k' to be the nearest k'. */
      uint32_t np = nprobe;
      if (c->spec.graph && kp > np)
        np = kp < QV_MAX_EF_SEARCH ? (uint32_t)kp : QV_MAX_EF_SEARCH;
      if ((st = index_search(c, qi, 1, kp, np, cs, ci, err)) != QV_OK)
        break;
      qv_topk_init(1, k, larger, si, ii);
      size_t found = 0;
      if (c->n_dead > 0)
        qv__idmap_clear(&seen);
      for (size_t j = 0; j < kp; j++) {
        uint64_t row;
        if (ci[j] < 0 || !qv__idmap_get(&c->map, ci[j], &row) || !row_in(mt, row))
          continue;
        float sc = cs[j];
        if (c->n_dead > 0 && qv__idmap_get(&c->tomb, ci[j], NULL)) {
          if (seen_before(&seen, ci[j]))
            continue;
          sc = exact_score(c->metric, qi, c->vecs + row * d, d); /* may be a stale entry */
        }
        qv_topk_push_cpu(1, k, larger, &sc, 1, 1, &ci[j], 0, si, ii);
        found++;
      }
      qv_topk_finish(1, k, larger, si, ii);
      if (found >= k || found >= mt->n || kp >= cap) {
        redo[i] = found < k && found < mt->n;
        break;
      }
      /* Too few survived: the next k' from what this query's neighbourhood showed (a filter
       * correlated with the vectors may hold far fewer matches near it than the selectivity
       * says). When that asks for more than an automatic search would over-fetch (512; a forced
       * index path: 4096), or more than the matches, the exact scan of the matches answers. */
      double est = found ? 1.5 * (double)k * (double)kp / (double)found + 16.0 : 8.0 * (double)kp;
      if (est < 2.0 * (double)kp)
        est = 2.0 * (double)kp;
      const double limit = path == QV_FILTER_INDEX ? 4096.0 : 512.0;
      if (est > limit || est > (double)mt->n) {
        redo[i] = 1;
        break;
      }
      next_kp = est > (double)cap ? cap : (size_t)est;
      __atomic_fetch_add(&c->filtered_retries, 1, __ATOMIC_RELAXED);
    }
  }
  qv__idmap_fini(&seen);
  free(cs);
  free(ci);
  return st;
}

/* Whether the matching rows are few enough that scanning them beats the index. */
static int filter_exact(const qv_collection *c, qv_filter_path path, uint64_t nsel, size_t k,
                        uint32_t nprobe, int scan) {
  if (path == QV_FILTER_EXACT)
    return 1;
  if (path == QV_FILTER_INDEX)
    return 0;
  if (c->spec.nlist == 0 && !c->spec.graph)
    return 1; /* Flat: the exact scan of the matches is never more work than the index's */
  if (nsel <= 2048)
    return 1;
  const double sel = (double)nsel / (double)c->count;
  if (scan) /* the list scan reads nprobe / nlist of the entries */
    return sel <= 4.0 * (double)nprobe / (double)c->spec.nlist;
  return 1.5 * (double)k / sel > 512.0; /* over-fetch would ask for more than ~500 */
}

/* A filtered search; the caller holds c->rw for reading. exact: the caller asked for exact
 * search. */
static qv_status filtered_locked(qv_collection *c, const qv_filter *f, qv_filter_path path,
                                 const float *q, size_t n, size_t k, uint32_t nprobe, int exact,
                                 float *scores, int64_t *ids, qv_error *err) {
  matches mt = {malloc(((c->count + 63) / 64 + 1) * sizeof(uint64_t)), 0};
  unsigned char *redo = calloc(n, 1);
  qv_status st = QV_OK;
  if (mt.w == NULL || redo == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "filtered search: out of memory");
    goto out;
  }
  if ((st = qv__filter_eval(f, &c->attrs, c->count, mt.w, &mt.n, err)) != QV_OK)
    goto out;
  const int scan = c->gpu == NULL && c->spec.nlist > 0 && !qv__spec_gated(&c->spec);
  if (exact || mt.n == 0 || filter_exact(c, path, mt.n, k, nprobe, scan)) {
    st = exact_rows(c, &mt, q, n, k, scores, ids, err);
    __atomic_fetch_add(&c->filtered_exact, n, __ATOMIC_RELAXED);
  } else {
    __atomic_fetch_add(&c->filtered_index, n, __ATOMIC_RELAXED);
    st = scan ? list_scan(c, &mt, q, n, k, nprobe, scores, ids, redo, err)
              : over_fetch(c, &mt, q, n, k, nprobe, path, scores, ids, redo, err);
    if (st == QV_OK)
      st = redo_exact(c, &mt, q, n, k, redo, scores, ids, err);
  }
  if (st == QV_OK)
    fix_padding(c->metric, n * k, scores, ids);
out:
  free(mt.w);
  free(redo);
  return st;
}

/* A search pinned to a data version (p->generation != 0) the collection's state does not hold;
 * the caller holds c->rw for reading. */
static qv_status generation_check(const qv_collection *c, const qv_search_params *p,
                                  qv_error *err) {
  if (p->generation == 0 || p->generation == c->generation)
    return QV_OK;
  return qv_error_set(err, QV_EPRECONDITION,
                      "the collection holds data version %llu, not the version %llu asked for",
                      (unsigned long long)c->generation, (unsigned long long)p->generation);
}

/* The index search proper; the caller holds c->rw for reading. */
static qv_status search_locked(qv_collection *c, const float *q, size_t n, size_t k,
                               uint32_t req_nprobe, const qv_search_params *p, float *scores,
                               int64_t *ids, qv_error *err) {
  if (!c->trained)
    return qv_error_set(err, QV_EPRECONDITION,
                        "index '%s' is not built yet: build it first (%zu vectors stored)",
                        c->spec.text, c->count);
  uint32_t nprobe = req_nprobe ? req_nprobe : c->default_nprobe;
  if (nprobe > c->spec.nlist && !c->spec.graph)
    nprobe = c->spec.nlist;
  if (p->filter != NULL)
    return filtered_locked(c, p->filter, p->filter_path, q, n, k, nprobe, 0, scores, ids, err);
  if (c->n_dead == 0) {
    qv_status st = index_search(c, q, n, k, nprobe, scores, ids, err);
    if (st == QV_OK)
      fix_padding(c->metric, n * k, scores, ids);
    return st;
  }
  /* Over-fetch by the stale entries so that k live results survive the fix-up. Past what one
   * search may fetch, the exact answer from the store is the only correct one left. */
  if (c->n_dead > QV_MAX_K - k)
    return exact_locked(c, q, n, k, scores, ids, err);
  const size_t kf = k + c->n_dead;
  /* Queries in blocks: the candidate buffers stay near 32 MiB whatever n and kf are. */
  size_t qb = ((size_t)32 << 20) / (kf * (sizeof(float) + sizeof(int64_t)));
  if (qb < 1)
    qb = 1;
  if (qb > n)
    qb = n;
  float *cs = malloc(qb * kf * sizeof *cs);
  int64_t *ci = malloc(qb * kf * sizeof *ci);
  tomb_hit *hits = malloc(kf * sizeof *hits);
  unsigned char *keep = malloc(kf);
  qv_status st = QV_OK;
  if (cs == NULL || ci == NULL || hits == NULL || keep == NULL)
    st = qv_error_set(err, QV_ENOMEM, "search: out of memory for %zu x %zu candidates", qb, kf);
  for (size_t off = 0; st == QV_OK && off < n; off += qb) {
    size_t m = n - off < qb ? n - off : qb;
    if ((st = index_search(c, q + off * c->dim, m, kf, nprobe, cs, ci, err)) == QV_OK)
      tomb_fixup(c, q + off * c->dim, m, kf, cs, ci, k, scores + off * k, ids + off * k, hits,
                 keep);
  }
  free(cs);
  free(ci);
  free(hits);
  free(keep);
  return st;
}

qv_status qv_collection_search_check(qv_collection *c, const float *queries, size_t n,
                                     const qv_search_params *p, qv_error *err) {
  qv_status st = check_args(c, queries, n, p, err);
  if (st != QV_OK)
    return st;
  pthread_rwlock_rdlock(&c->rw);
  if ((st = generation_check(c, p, err)) != QV_OK)
    ;
  else if (!c->trained)
    st = qv_error_set(err, QV_EPRECONDITION,
                      "index '%s' is not built yet: build it first (%zu vectors stored)",
                      c->spec.text, c->count);
  pthread_rwlock_unlock(&c->rw);
  return st;
}

static qv_status exact_locked(qv_collection *c, const float *q, size_t n, size_t k, float *scores,
                              int64_t *ids, qv_error *err);

/* A whole search: checks, normalises the queries (cosine) and runs it under the read lock,
 * through the index or exactly over the store. */
static qv_status run_search(qv_collection *c, const float *queries, size_t n,
                            const qv_search_params *p, float *scores, int64_t *ids, int exact,
                            qv_error *err) {
  const float *q = NULL;
  float *owned = NULL;
  qv_status st = prepare(c, queries, n, p, scores, ids, &q, &owned, err);
  if (st != QV_OK)
    return st;
  pthread_rwlock_rdlock(&c->rw);
  if ((st = generation_check(c, p, err)) == QV_OK)
    st = exact && p->filter != NULL
             ? filtered_locked(c, p->filter, QV_FILTER_EXACT, q, n, p->k, 0, 1, scores, ids, err)
         : exact ? exact_locked(c, q, n, p->k, scores, ids, err)
                 : search_locked(c, q, n, p->k, p->nprobe, p, scores, ids, err);
  pthread_rwlock_unlock(&c->rw);
  free(owned);
  return st;
}

qv_status qv_collection_search(qv_collection *c, const float *queries, size_t n,
                               const qv_search_params *p, float *scores, int64_t *ids,
                               qv_error *err) {
  return run_search(c, queries, n, p, scores, ids, 0, err);
}

qv_status qv_collection_search_refined(qv_collection *c, const float *queries, size_t n,
                                       const qv_search_params *p, size_t candidates,
                                       const qv_rerank_params *rp, float *scores, int64_t *ids,
                                       qv_error *err) {
  if (rp == NULL)
    return qv_error_set(err, QV_EINVAL, "search_refined: rerank params are NULL");
  if (rp->n_features > 0 && rp->n_features != c->n_features)
    return qv_error_set(err, QV_EINVAL,
                        "rerank blends %zu features but collection items carry %zu: send 1 + %zu "
                        "weights (or just the similarity's)",
                        rp->n_features, c->n_features, c->n_features);
  const float *q = NULL;
  float *owned = NULL;
  qv_status st = prepare(c, queries, n, p, scores, ids, &q, &owned, err);
  if (st != QV_OK)
    return st;
  size_t kc = candidates ? candidates : 4 * p->k;
  if (kc < p->k)
    kc = p->k;
  if (kc > QV_MAX_K) {
    free(owned);
    return qv_error_set(err, QV_EINVAL, "candidates k' = %zu is out of range %zu..%d", kc, p->k,
                        QV_MAX_K);
  }
  const size_t d = c->dim;
  const size_t F = rp->n_features;
  /* Queries go in blocks so that one request's candidate buffers stay near 128 MiB, whatever
   * n and k' a client asks for; one query's candidates alone may take at most 1 GiB. */
  const size_t per_query = kc * (d + F + 3); /* 4-byte words */
  if (per_query > ((size_t)256 << 20)) {
    free(owned);
    return qv_error_set(err, QV_ENOMEM,
                        "candidates k' = %zu at dimension %zu need %zu MiB per query (limit 1024): "
                        "ask for fewer candidates",
                        kc, d, per_query >> 18);
  }
  size_t qb = ((size_t)32 << 20) / per_query;
  if (qb < 1)
    qb = 1;
  if (qb > n)
    qb = n;
  float *cs = malloc(qb * kc * sizeof *cs), *cv = malloc(qb * kc * d * sizeof *cv);
  float *cf = F ? malloc(qb * kc * F * sizeof *cf) : NULL;
  int64_t *ci = malloc(qb * kc * sizeof *ci);
  if (cs == NULL || cv == NULL || ci == NULL || (F && cf == NULL)) {
    st = qv_error_set(err, QV_ENOMEM, "search_refined: out of memory for %zu x %zu candidates", qb,
                      kc);
    goto out;
  }
  qv_rerank_params r = *rp;
  r.k = p->k;
  for (size_t off = 0; st == QV_OK && off < n; off += qb) {
    const size_t m = n - off < qb ? n - off : qb;
    const float *qm = q + off * d;
    pthread_rwlock_rdlock(&c->rw);
    if ((st = generation_check(c, p, err)) == QV_OK)
      st = search_locked(c, qm, m, kc, p->nprobe, p, cs, ci, err);
    /* Gather each candidate's full vector under the same read lock (rows cannot move). */
    for (size_t i = 0; st == QV_OK && i < m * kc; i++) {
      uint64_t row;
      if (ci[i] >= 0 && qv__idmap_get(&c->map, ci[i], &row)) {
        memcpy(cv + i * d, c->vecs + row * d, d * sizeof(float));
        if (F)
          memcpy(cf + i * F, c->feats + row * F, F * sizeof(float));
      } else {
        ci[i] = -1; /* not in the store: never returned */
      }
    }
    pthread_rwlock_unlock(&c->rw);
    if (st == QV_OK)
      st = qv_rerank_cpu(c->metric, qm, m, d, ci, cs, cv, cf, kc, &r, scores + off * p->k,
                         ids + off * p->k, err);
  }
out:
  free(cs);
  free(cv);
  free(cf);
  free(ci);
  free(owned);
  return st;
}

qv_status qv__exact_search(qv_metric metric, const float *vecs, const int64_t *vids, size_t nb,
                           size_t d, const float *q, size_t n, size_t k, float *scores,
                           int64_t *ids, qv_error *err) {
  const size_t QB = 32, BB = 4096;
  const int larger = qv_metric_larger_is_better(metric);
  qv_topk_init(n, k, larger, scores, ids);
  int failed = 0;
  /* Query blocks are independent: spread them over OpenMP threads. */
#pragma omp parallel for schedule(dynamic) reduction(| : failed)
  for (size_t q0 = 0; q0 < n; q0 += QB) {
    size_t nq = n - q0 < QB ? n - q0 : QB;
    float *dist = malloc(QB * BB * sizeof(float));
    if (dist == NULL) {
      failed = 1;
      continue;
    }
    for (size_t b0 = 0; b0 < nb; b0 += BB) {
      size_t m = nb - b0 < BB ? nb - b0 : BB;
      qv_distances_cpu(metric, q + q0 * d, nq, vecs + b0 * d, m, d, dist, NULL);
      qv_topk_push_cpu(nq, k, larger, dist, m, m, vids + b0, 0, scores + q0 * k, ids + q0 * k);
    }
    free(dist);
  }
  if (failed)
    return qv_error_set(err, QV_ENOMEM, "exact search: out of memory");
  qv_topk_finish(n, k, larger, scores, ids);
  return QV_OK;
}

/* Exact search over the store; the caller holds c->rw for reading. */
static qv_status exact_locked(qv_collection *c, const float *q, size_t n, size_t k, float *scores,
                              int64_t *ids, qv_error *err) {
  return qv__exact_search(c->metric, c->vecs, c->ids, c->count, c->dim, q, n, k, scores, ids, err);
}

qv_status qv_collection_search_exact(qv_collection *c, const float *queries, size_t n,
                                     const qv_search_params *p, float *scores, int64_t *ids,
                                     qv_error *err) {
  return run_search(c, queries, n, p, scores, ids, 1, err);
}
