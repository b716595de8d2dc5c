/* Search: inline (rerank, exact, batching off) or through the collection's batcher. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "quiver/rerank_params.h"
#include "server_internal.h"

/* The request's search breadth for the index layer: IVF's nprobe or a graph's efSearch (one slot
 * there; check_search refused the one that does not fit the collection). */
static uint32_t breadth(const Quiver__V1__SearchRequest *r) {
  return r->ef_search ? r->ef_search : r->nprobe;
}

/* The slow query log: a Search r, accepted at t0, slower than --slow-query-ms, with what shaped
 * it (never the query vectors). batch: the queries of the index search that answered it (0: run
 * alone). */
void qv__slow_query(qv__server *s, const Quiver__V1__SearchRequest *r, double t0, uint32_t batch) {
  const double ms = (qv_monotonic_s() - t0) * 1e3;
  if (s->cfg->slow_query_ms <= 0 || ms < (double)s->cfg->slow_query_ms)
    return;
  QV_LOG_W("slow query: method=Search collection=%s floats=%zu k=%u nprobe=%u rerank=%s "
           "candidates=%u exact=%s filter=%s batch_queries=%u ms=%.2f threshold_ms=%lld",
           r->collection ? r->collection : "-", r->n_queries, r->k, breadth(r),
           r->rerank ? "yes" : "no", r->rerank ? r->rerank->candidates : 0, r->exact ? "yes" : "no",
           r->filter && r->filter[0] ? "yes" : "no", batch, ms, (long long)s->cfg->slow_query_ms);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* A sorted copy of an id list (the rerank stage looks ids up by binary search). */
static int64_t *sorted_copy(const int64_t *ids, size_t n) {
  int64_t *out = malloc((n ? n : 1) * sizeof *out);
  if (out != NULL && n > 0) {
    memcpy(out, ids, n * sizeof *out);
    qsort(out, n, sizeof *out, cmp_i64);
  }
  return out;
}

static qv_status search_reranked(qv__server *s, qv__entry *e, qv_collection *col,
                                 const qv_search_params *p, const Quiver__V1__SearchRequest *r,
                                 const float *queries, size_t n, float *scores, int64_t *ids,
                                 qv_error *err) {
  const Quiver__V1__RerankOptions *o = r->rerank;
  if (r->exact)
    return qv_error_set(err, QV_EINVAL,
                        "exact and rerank exclude each other: exact search is "
                        "already exact; send one of them");
  qv_collection_stats cs;
  qv_collection_stats_get(col, &cs, NULL);
  if (o->n_weights > 1 && o->n_weights != 1 + cs.n_features)
    return qv_error_set(err, QV_EINVAL,
                        "rerank.weights has %zu entries; items of collection '%s' carry %zu "
                        "features: send 1 weight (similarity) or %zu (similarity + features)",
                        o->n_weights, qv__entry_name(e), cs.n_features, 1 + cs.n_features);
  if (o->candidates != 0 && o->candidates < r->k)
    return qv_error_set(err, QV_EINVAL, "rerank.candidates = %u is below k = %u", o->candidates,
                        r->k);
  if (o->candidates > (uint64_t)s->cfg->max_candidates)
    return qv_error_set(err, QV_EINVAL,
                        "rerank.candidates = %u is above the server's limit %lld "
                        "(--max-candidates)",
                        o->candidates, (long long)s->cfg->max_candidates);
  qv_rerank_params rp;
  qv_rerank_params_init(&rp);
  rp.refine = o->refine;
  rp.weights = o->n_weights ? o->weights : NULL;
  rp.n_features = o->n_weights > 1 ? o->n_weights - 1 : 0;
  rp.mmr_lambda = o->mmr_lambda;
  int64_t *allow = o->n_allow_ids ? sorted_copy(o->allow_ids, o->n_allow_ids) : NULL;
  int64_t *deny = o->n_deny_ids ? sorted_copy(o->deny_ids, o->n_deny_ids) : NULL;
  qv_status st;
  if ((o->n_allow_ids && allow == NULL) || (o->n_deny_ids && deny == NULL)) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory for the filter lists");
  } else {
    rp.allow = allow;
    rp.n_allow = o->n_allow_ids;
    rp.deny = deny;
    rp.n_deny = o->n_deny_ids;
    st = qv_collection_search_refined(col, queries, n, p, o->candidates, &rp, scores, ids, err);
  }
  free(allow);
  free(deny);
  return st;
}

/* The work a search asks for, in multiply-adds (a query component against a stored one): the
 * coarse quantizer and the probed lists (or every vector: Flat, exact), then the rerank stage
 * (refine: k' rows per query; MMR: k x k' pairs per query). */
static double search_work(const Quiver__V1__SearchRequest *r, const qv_collection_stats *cs,
                          size_t n) {
  const double d = (double)cs->dim, count = (double)cs->count;
  double per = count * d;       /* exact, or Flat */
  if (!r->exact && cs->graph) { /* about efSearch nodes visited, each with up to 2M links */
    const double ef = breadth(r) ? breadth(r) : cs->default_nprobe ? cs->default_nprobe : 16;
    per = (ef > r->k ? ef : r->k) * 64 * d;
  } else if (!r->exact && cs->nlist > 0) {
    const double probe = r->nprobe ? r->nprobe : cs->default_nprobe ? cs->default_nprobe : 1;
    per = ((double)cs->nlist + probe * count / cs->nlist) * d;
  }
  if (r->rerank != NULL) {
    const double k = r->k, kp = r->rerank->candidates ? r->rerank->candidates : 4.0 * r->k;
    per += kp * d;
    if (r->rerank->mmr_lambda != 0)
      per += k * kp * d;
  }
  return per * (double)n;
}

/* Checks a search request against collection e: *n gets the number of queries. */
static qv_status check_search(qv__server *s, qv__entry *e, const Quiver__V1__SearchRequest *r,
                              const qv_collection_stats *cs, int self_slot, size_t *n,
                              qv_error *err) {
  const size_t dim = cs->dim;
  *n = 0;
  if (r->n_queries == 0)
    return qv_error_set(err, QV_EINVAL, "no queries: send n x %zu floats", dim);
  if (r->dim != 0 && r->dim != dim)
    return qv_error_set(err, QV_EINVAL,
                        "query dimension %u does not match collection '%s' (dimension %zu)", r->dim,
                        qv__entry_name(e), dim);
  if (r->n_queries % dim != 0)
    return qv_error_set(err, QV_EINVAL,
                        "queries hold %zu floats, not a multiple of collection '%s' dimension %zu",
                        r->n_queries, qv__entry_name(e), dim);
  if (cs->graph && r->nprobe != 0)
    return qv_error_set(err, QV_EINVAL,
                        "nprobe applies to IVF indexes; collection '%s' is a graph (%s): send "
                        "ef_search",
                        qv__entry_name(e), cs->spec);
  if (!cs->graph && r->ef_search != 0)
    return qv_error_set(err, QV_EINVAL,
                        "ef_search applies to HNSW indexes; collection '%s' is %s: send nprobe",
                        qv__entry_name(e), cs->spec);
  if (r->filter_path < QUIVER__V1__FILTER_PATH__FILTER_PATH_AUTO ||
      r->filter_path > QUIVER__V1__FILTER_PATH__FILTER_PATH_INDEX)
    return qv_error_set(err, QV_EINVAL,
                        "filter_path %d is not one of FILTER_PATH_AUTO, FILTER_PATH_EXACT, "
                        "FILTER_PATH_INDEX",
                        (int)r->filter_path);
  if (r->k < 1 || r->k > (uint64_t)s->cfg->max_k + (self_slot ? 1 : 0))
    return qv_error_set(err, QV_EINVAL, "k = %u is out of range 1..%lld (server --max-k)", r->k,
                        (long long)s->cfg->max_k);
  if ((*n = r->n_queries / dim) > (size_t)s->cfg->max_queries)
    return qv_error_set(err, QV_ENOMEM,
                        "%zu queries in one request exceed the server limit %lld: split the batch",
                        *n, (long long)s->cfg->max_queries);
  const double work = search_work(r, cs, *n), cap = (double)s->cfg->max_search_gwork * 1e9;
  if (cap > 0 && work > cap)
    return qv_error_set(err, QV_ENOMEM,
                        "this search is about %.0f G multiply-adds of work, over the server's "
                        "--max-search-gwork %lld: split the batch, or lower k, candidates or "
                        "nprobe",
                        work / 1e9, (long long)s->cfg->max_search_gwork);
  return QV_OK;
}

/* Whether a call's work should go on: QV_EDEADLINE once its deadline passed, QV_EUNAVAILABLE
 * once the server stops. */
static qv_status still_wanted(qv__server *s, const gpr_timespec *deadline, size_t done,
                              size_t total, qv_error *err) {
  if (deadline != NULL && qv__deadline_passed(*deadline))
    return qv_error_set(err, QV_EDEADLINE,
                        "the deadline passed after %zu of %zu queries: the rest were not searched",
                        done, total);
  if (atomic_load(&s->stopping))
    return qv_error_set(err, QV_EUNAVAILABLE,
                        "the server is shutting down: %zu of %zu queries were searched; retry "
                        "elsewhere or after the restart",
                        done, total);
  return QV_OK;
}

/* The collection that answers a search for data version `want` (0: the serving one): e's serving
 * collection, or the version held beside it with its slot lock held (*on_slot = 1: release it
 * with qv__entry_slot_put). *version gets the version it holds now. A flip or a rollback between
 * reading the serving version and looking beside it (the look waits for it) moves the versions:
 * looked at again, so that a version held throughout is always found. */
static qv_status pick_version(qv__entry *e, uint64_t want, qv_collection **col, int *on_slot,
                              uint64_t *version, qv_error *err) {
  *on_slot = 0;
  *col = qv__entry_col(e);
  int kind = QV__SLOT_NONE;
  uint64_t beside = 0;
  for (int attempt = 0;; attempt++) {
    *version = qv_collection_generation(*col);
    if (want == 0 || want == *version)
      return QV_OK;
    qv_collection *c = qv__entry_slot_get(e, want, &kind);
    if (c != NULL) {
      *col = c;
      *on_slot = 1;
      *version = want;
      return QV_OK;
    }
    beside = 0;
    qv_collection *b = qv__entry_slot_get(e, 0, &kind);
    if (b != NULL) {
      beside = qv_collection_generation(b);
      qv__entry_slot_put(e);
    }
    if (attempt >= 2 || qv_collection_generation(*col) == *version)
      break; /* nothing moved meanwhile: it is not held */
  }
  if (beside != 0)
    return qv_error_set(err, QV_EPRECONDITION,
                        "collection '%s' does not hold data version %llu: it serves version %llu "
                        "and holds %s version %llu",
                        qv__entry_name(e), (unsigned long long)want, (unsigned long long)*version,
                        kind == QV__SLOT_STAGED ? "staged" : "previous",
                        (unsigned long long)beside);
  return qv_error_set(err, QV_EPRECONDITION,
                      "collection '%s' does not hold data version %llu: it serves version %llu "
                      "(and holds no other)",
                      qv__entry_name(e), (unsigned long long)want, (unsigned long long)*version);
}

/* A search of collection col (one version of e) pinned to data version gen: every query, in
 * steps; QV_EPRECONDITION when col's state is not (or no longer) that version. self_slot: r is
 * an item-to-item search's vector search (its k has one more, for the query's own id). */
static qv_status search_in(qv__server *s, qv__entry *e, qv_collection *col, uint64_t gen,
                           const Quiver__V1__SearchRequest *r, int self_slot,
                           const gpr_timespec *deadline, size_t *nq, float **scores_out,
                           int64_t **ids_out, qv_error *err) {
  qv_collection_stats cs;
  qv_collection_stats_get(col, &cs, NULL);
  size_t n = 0;
  float *scores = NULL;
  int64_t *ids = NULL;
  qv_filter *filter = NULL;
  qv_status st;
  if ((st = check_search(s, e, r, &cs, self_slot, &n, err)) != QV_OK) {
    /* said */
  } else if (r->filter != NULL && r->filter[0] != '\0' &&
             (st = qv_filter_parse(col, r->filter, &filter, err)) != QV_OK) {
    /* parsed once per request, for col's schema: QV_EINVAL naming the column of the mistake,
     * QV_EPRECONDITION on a collection without attributes */
  } else if ((scores = malloc(n * r->k * sizeof *scores)) == NULL ||
             (ids = malloc(n * r->k * sizeof *ids)) == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory for %zu x %u results", n, r->k);
  } else {
    /* In steps of about half a G multiply-adds: between them the call's deadline and a stop
     * are checked, so that neither waits for the whole of a long search. */
    const double per_query = search_work(r, &cs, 1);
    size_t step = per_query > 0 ? (size_t)(5e8 / per_query) : n;
    step = step < 1 ? 1 : step > n ? n : step;
    qv_search_params p = {.k = r->k,
                          .nprobe = breadth(r),
                          .generation = gen,
                          .filter = filter,
                          .filter_path = (qv_filter_path)r->filter_path};
    for (size_t q0 = 0; st == QV_OK && q0 < n; q0 += step) {
      const size_t m = n - q0 < step ? n - q0 : step;
      const float *q = r->queries + q0 * cs.dim;
      if (q0 > 0 && (st = still_wanted(s, deadline, q0, n, err)) != QV_OK)
        break;
      st = r->rerank != NULL
               ? search_reranked(s, e, col, &p, r, q, m, scores + q0 * r->k, ids + q0 * r->k, err)
           : r->exact
               ? qv_collection_search_exact(col, q, m, &p, scores + q0 * r->k, ids + q0 * r->k, err)
               : qv_collection_search(col, q, m, &p, scores + q0 * r->k, ids + q0 * r->k, err);
    }
  }
  qv_filter_free(filter);
  if (st != QV_OK) {
    free(scores);
    free(ids);
    scores = NULL;
    ids = NULL;
  }
  *nq = n;
  *scores_out = scores;
  *ids_out = ids;
  return st;
}

/* The vector search of an item-to-item request r on col: its query_ids looked up there. */
static qv_status qids_lookup(qv_collection *col, const Quiver__V1__SearchRequest *r, qv__qids *q,
                             qv_error *err) {
  memset(q, 0, sizeof *q);
  const size_t n = r->n_query_ids;
  qv_collection_stats cs;
  qv_collection_stats_get(col, &cs, NULL);
  float *vecs = malloc(n * cs.dim * sizeof *vecs);
  uint8_t *found = malloc(n);
  if (vecs == NULL || found == NULL) {
    free(vecs);
    free(found);
    return qv_error_set(err, QV_ENOMEM, "out of memory for %zu query vectors", n);
  }
  qv_status st = qv_collection_get_items(col, n, r->query_ids, vecs, NULL, found, NULL, err);
  if (st != QV_OK) {
    free(vecs);
    free(found);
    return st;
  }
  return qv__qids_begin(q, r, cs.dim, vecs, found, err);
}

qv_status qv__h_search(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                       grpc_byte_buffer **resp, qv_error *err) {
  const Quiver__V1__SearchRequest *r = (const Quiver__V1__SearchRequest *)m;
  if (r->collection == NULL || r->collection[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "collection is required");
  const int by_id = r->n_query_ids > 0;
  qv_status st;
  if (by_id && (st = qv__qids_check(s, r, err)) != QV_OK)
    return st;
  qv__entry *e;
  if ((st = qv__registry_get(s->reg, r->collection, &e, err)) != QV_OK)
    return st;
  size_t n = 0;
  float *scores = NULL;
  int64_t *ids = NULL;
  uint64_t version = 0;
  qv__qids q;
  memset(&q, 0, sizeof q);
  /* Every search is pinned to the version it picked, an unpinned one to the serving version it
   * read, so that the answer is all of that version and says so. One that meets a flip between
   * picking its version's collection and searching it (the search refuses a state of another
   * version) picks again: the version moved to the other collection of e (an unpinned one: the
   * serving version changed). */
  for (int attempt = 0; attempt < 3; attempt++) {
    qv_collection *col;
    int on_slot;
    if ((st = pick_version(e, r->version, &col, &on_slot, &version, err)) != QV_OK)
      break;
    qv__qids_free(&q);
    const Quiver__V1__SearchRequest *run = r;
    if (by_id && (st = qids_lookup(col, r, &q, err)) == QV_OK)
      run = &q.req;
    if (st == QV_OK)
      st = search_in(s, e, col, version, run, by_id, deadline, &n, &scores, &ids, err);
    const int moved = st == QV_EPRECONDITION && qv_collection_generation(col) != version;
    if (on_slot)
      qv__entry_slot_put(e);
    if (!moved)
      break;
  }
  if (st == QV_OK && by_id) {
    /* The item-to-item answer: n = len(query_ids) rows of k. */
    n = q.n;
    float *s2 = malloc(n * r->k * sizeof *s2);
    int64_t *i2 = malloc(n * r->k * sizeof *i2);
    if (s2 == NULL || i2 == NULL) {
      free(s2);
      free(i2);
      st = qv_error_set(err, QV_ENOMEM, "out of memory for %zu x %u results", n, r->k);
    } else {
      qv_collection_stats cs;
      qv_collection_stats_get(qv__entry_col(e), &cs, NULL);
      qv__qids_finish(&q, cs.metric, scores, ids, s2, i2);
      free(scores);
      free(ids);
      scores = s2;
      ids = i2;
    }
  }
  if (st == QV_OK) {
    qv__metrics_queries(n);
    Quiver__V1__SearchResponse out = QUIVER__V1__SEARCH_RESPONSE__INIT;
    out.k = r->k;
    out.num_queries = (uint32_t)n;
    out.n_ids = out.n_scores = n * r->k;
    out.ids = ids;
    out.scores = scores;
    out.version = version;
    out.n_unknown_queries = q.nunknown;
    out.unknown_queries = q.unknown;
    *resp = qv__wire_pack(&out.base);
  }
  qv__qids_free(&q);
  free(scores);
  free(ids);
  qv__registry_put(s->reg, e);
  return st;
}

/* ---- batched search --------------------------------------------------------------------- */

/* One search on its way through the collection's batcher: the request, the call, and room for
 * the answer, in one allocation. */
typedef struct search_call {
  qv__bq bq;
  double t0; /* arrival */
  qv__server *s;
  qv__entry *e;
  grpc_call *call;
  grpc_metadata_array md;
  ProtobufCMessage *req;
  uint64_t version; /* the data version it is answered from */
} search_call;

static void on_batched(qv__bq *r) {
  search_call *sc = (search_call *)r;
  grpc_byte_buffer *resp = NULL;
  if (r->st == QV_EPRECONDITION && r->generation != 0 &&
      qv_collection_generation(qv__entry_col(sc->e)) != r->generation) {
    /* A flip moved the version asked for to the collection beside the serving one while the
     * request was queued (an unpinned one: the serving version changed): answered from there,
     * or from the serving version now, on this thread. */
    r->st = qv__h_search(sc->s, sc->req, NULL, &resp, &r->err);
  } else if (r->st == QV_OK) {
    qv__metrics_queries(r->n);
    Quiver__V1__SearchResponse out = QUIVER__V1__SEARCH_RESPONSE__INIT;
    out.k = r->k;
    out.num_queries = (uint32_t)r->n;
    out.n_ids = out.n_scores = r->n * r->k;
    out.ids = r->ids;
    out.scores = r->scores;
    out.version = sc->version;
    resp = qv__wire_pack(&out.base);
  }
  if (r->st != QV_OK) {
    qv__log_failure("Search", qv__entry_name(sc->e), r->st, r->err.msg);
  }
  qv__metrics_call_end(M_SEARCH, r->st, sc->t0);
  qv__finish_call(sc->call, &sc->md, 0, resp, r->st, r->err.msg);
  if (r->st == QV_OK)
    qv__slow_query(sc->s, (const Quiver__V1__SearchRequest *)sc->req, sc->t0, r->batch_queries);
  protobuf_c_message_free_unpacked(sc->req, NULL);
  qv__registry_put(sc->s->reg, sc->e);
  free(sc);
}

/* Hands a plain search to its collection's batcher. Returns 0 when the request is not one the
 * batcher takes (rerank, exact, query_ids, a filter, batching off): the caller runs it inline.
 * Otherwise the call is answered (now, when it is refused, or later by the batcher) and req is
 * consumed. A filtered search is never coalesced: its matches are its own, and a coalesced
 * search has one set of parameters. */
int qv__search_batched(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                       gpr_timespec deadline, ProtobufCMessage *req, double t0) {
  Quiver__V1__SearchRequest *r = (Quiver__V1__SearchRequest *)req;
  if (r->rerank != NULL || r->exact || r->n_query_ids > 0 || r->collection == NULL ||
      r->collection[0] == '\0' || (r->filter != NULL && r->filter[0] != '\0'))
    return 0;
  qv_error err = {0};
  qv__entry *e;
  if (qv__registry_get(s->reg, r->collection, &e, &err) != QV_OK)
    return 0; /* the inline path says NOT_FOUND */
  const uint64_t serving = qv_collection_generation(qv__entry_col(e));
  if (qv__entry_batcher(e) == NULL || (r->version != 0 && r->version != serving)) {
    qv__registry_put(s->reg, e); /* another version than the serving one: inline */
    return 0;
  }
  qv_collection_stats cs;
  qv_collection_stats_get(qv__entry_col(e), &cs, NULL);
  size_t n = 0;
  qv_status st = check_search(s, e, r, &cs, 0, &n, &err);
  /* What would fail the whole coalesced search is refused here, for this request only, by the
   * index layer's own checks. */
  if (st == QV_OK) {
    const qv_search_params sp = {.k = r->k, .nprobe = breadth(r), .generation = serving};
    st = qv_collection_search_check(qv__entry_col(e), r->queries, n, &sp, &err);
    if (st == QV_EPRECONDITION && qv_collection_generation(qv__entry_col(e)) != serving) {
      qv__registry_put(s->reg, e); /* flipped since: inline, where it picks its version again */
      return 0;
    }
  }
  search_call *sc = NULL;
  const size_t nk = n * r->k;
  if (st == QV_OK && (sc = malloc(sizeof *sc + nk * (sizeof(float) + sizeof(int64_t)))) == NULL)
    st = qv_error_set(&err, QV_ENOMEM, "out of memory for %zu x %u results", n, r->k);
  if (st != QV_OK) {
    qv__log_failure("Search", qv__entry_name(e), st, err.msg);
    qv__metrics_call_end(M_SEARCH, st, t0);
    qv__finish_call(call, md, 0, NULL, st, err.msg);
    protobuf_c_message_free_unpacked(req, NULL);
    qv__registry_put(s->reg, e);
    return 1;
  }
  memset(&sc->bq, 0, sizeof sc->bq);
  sc->t0 = t0;
  sc->s = s;
  sc->e = e;
  sc->call = call;
  sc->md = *md;
  sc->req = req;
  sc->bq.q = r->queries;
  sc->bq.n = n;
  sc->bq.k = r->k;
  sc->bq.nprobe = breadth(r);
  /* Pinned to the serving version read above, an unpinned request too: a flip while it is
   * queued would otherwise answer it from the new version under the old one's number. */
  sc->bq.generation = serving;
  sc->version = serving;
  sc->bq.ids = (int64_t *)(sc + 1);
  sc->bq.scores = (float *)(sc->bq.ids + nk);
  sc->bq.done = on_batched;
  if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) != 0) {
    gpr_timespec left = gpr_time_sub(deadline, gpr_now(deadline.clock_type));
    sc->bq.deadline = qv_monotonic_s() + (double)left.tv_sec + left.tv_nsec * 1e-9;
  }
  /* This thread may lead the batch and answer sc (dropping its reference) before submit
   * returns: hold the entry (and so its batcher) until then. */
  qv__entry_ref(e);
  qv__batcher_submit(qv__entry_batcher(e), &sc->bq);
  qv__registry_put(s->reg, e);
  return 1;
}
