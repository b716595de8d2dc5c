/* Get (fetch by ids), and item-to-item search (SearchRequest.query_ids): the ids' stored vectors
 * as the queries, each query's own id left out of its results. The node and the router share
 * the checks and the two steps around the vector search (qv__qids_*). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

/* ---- what Get and item-to-item share ------------------------------------------------------ */

qv_status qv__get_fields(const Quiver__V1__GetRequest *r, int *want_vec, int *want_feat,
                         int *want_attrs, qv_error *err) {
  *want_vec = *want_feat = *want_attrs = r->n_fields == 0;
  for (size_t i = 0; i < r->n_fields; i++) {
    const char *f = r->fields[i] ? r->fields[i] : "";
    if (strcmp(f, "vector") == 0)
      *want_vec = 1;
    else if (strcmp(f, "features") == 0)
      *want_feat = 1;
    else if (strcmp(f, "attributes") == 0)
      *want_attrs = 1;
    else
      return qv_error_set(err, QV_EINVAL,
                          "fields[%zu] = '%.64s' is not a field of an item: ask for \"vector\", "
                          "\"features\" and/or \"attributes\" (none = all)",
                          i, f);
  }
  return QV_OK;
}

/* Ids to look up: at least one, at most max, none negative. what names the field. */
qv_status qv__ids_check(const int64_t *ids, size_t n, int64_t max, const char *what,
                        qv_error *err) {
  if (n == 0)
    return qv_error_set(err, QV_EINVAL, "no %s: send at least one id", what);
  if (n > (uint64_t)max)
    return qv_error_set(err, QV_ENOMEM,
                        "%zu %s in one request exceed the server limit %lld (--max-queries): "
                        "split them",
                        n, what, (long long)max);
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0)
      return qv_error_set(err, QV_EINVAL, "%s[%zu] = %lld is negative: ids are >= 0", what, i,
                          (long long)ids[i]);
  return QV_OK;
}

qv_status qv__qids_check(const qv__server *s, const Quiver__V1__SearchRequest *r, qv_error *err) {
  if (r->n_queries > 0)
    return qv_error_set(err, QV_EINVAL,
                        "the request carries both queries and query_ids: send one of them");
  /* Without include_self each query searches k + 1, which a shard behind a router must take. */
  const int64_t max_k = s->cfg->max_k - (r->include_self ? 0 : 1);
  if (r->k < 1 || r->k > (uint64_t)max_k)
    return qv_error_set(
        err, QV_EINVAL, "k = %u is out of range 1..%lld for query_ids (server --max-k%s)", r->k,
        (long long)max_k, r->include_self ? "" : ", less one for the query's own id");
  return qv__ids_check(r->query_ids, r->n_query_ids, s->cfg->max_queries, "query_ids", err);
}

qv_status qv__qids_begin(qv__qids *q, const Quiver__V1__SearchRequest *r, size_t dim, float *vecs,
                         uint8_t *found, qv_error *err) {
  memset(q, 0, sizeof *q);
  q->r = r;
  q->n = r->n_query_ids;
  q->vecs = vecs;
  q->found = found;
  q->unknown = malloc((q->n ? q->n : 1) * sizeof *q->unknown);
  if (q->unknown == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory for %zu query ids", q->n);
  for (size_t i = 0; i < q->n; i++) {
    if (!found[i]) {
      q->unknown[q->nunknown++] = (uint32_t)i;
      continue;
    }
    if (q->nknown != i)
      memmove(vecs + q->nknown * dim, vecs + i * dim, dim * sizeof(float));
    q->nknown++;
  }
  if (q->nknown == 0)
    return qv_error_set(err, QV_ENOTFOUND,
                        "none of the %zu query_ids is in collection '%.80s' (the first: %lld)",
                        q->n, r->collection ? r->collection : "", (long long)r->query_ids[0]);
  q->k_in = r->k + (r->include_self ? 0 : 1);
  q->req = *r;
  q->req.n_query_ids = 0;
  q->req.query_ids = NULL;
  q->req.queries = vecs;
  q->req.n_queries = q->nknown * dim;
  q->req.dim = (uint32_t)dim;
  q->req.k = q->k_in;
  if (r->rerank != NULL) {
    q->rr = *r->rerank;
    if (q->rr.candidates != 0 && q->rr.candidates < q->k_in)
      q->rr.candidates = q->k_in; /* room for the query's own id */
    q->req.rerank = &q->rr;
  }
  return QV_OK;
}

void qv__qids_finish(const qv__qids *q, qv_metric metric, const float *in_scores,
                     const int64_t *in_ids, float *scores, int64_t *ids) {
  const Quiver__V1__SearchRequest *r = q->r;
  const size_t k = r->k;
  const int blended = r->rerank != NULL && (r->rerank->n_weights > 0 || r->rerank->mmr_lambda > 0);
  const float pad = blended || qv_metric_larger_is_better(metric) ? -INFINITY : INFINITY;
  size_t row = 0;
  for (size_t i = 0; i < q->n; i++) {
    float *os = scores + i * k;
    int64_t *oi = ids + i * k;
    if (!q->found[i]) {
      for (size_t j = 0; j < k; j++) {
        os[j] = pad;
        oi[j] = -1;
      }
      continue;
    }
    const float *is = in_scores + row * q->k_in;
    const int64_t *ii = in_ids + row * q->k_in;
    row++;
    /* Without include_self: its own id dropped where it is, else the last result. */
    size_t skip = q->k_in;
    if (q->k_in > k) {
      skip = q->k_in - 1;
      for (size_t j = 0; j < q->k_in; j++)
        if (ii[j] == r->query_ids[i]) {
          skip = j;
          break;
        }
    }
    for (size_t j = 0, o = 0; j < q->k_in && o < k; j++)
      if (j != skip) {
        os[o] = is[j];
        oi[o++] = ii[j];
      }
  }
}

void qv__qids_free(qv__qids *q) {
  free(q->vecs);
  free(q->found);
  free(q->unknown);
  memset(q, 0, sizeof *q);
}

/* ---- Get's answer (node and router) -------------------------------------------------------- */

qv_status qv__get_alloc(const qv__server *s, size_t n, size_t d, size_t nf, qv__get_rows *g,
                        qv_error *err) {
  memset(g, 0, sizeof *g);
  g->n = n;
  g->d = d;
  g->nf = nf;
  const double bytes = (double)n * (8.0 + 4.0 * (double)(d + nf));
  if (bytes > (double)s->cfg->max_message_mb * 1024 * 1024)
    return qv_error_set(err, QV_ENOMEM,
                        "the answer to %zu ids would be about %.0f MiB, over the server's message "
                        "limit of %lld MiB (--max-message-mb): ask for fewer ids or fewer fields",
                        n, bytes / 1048576.0, (long long)s->cfg->max_message_mb);
  if ((d > 0 && (g->vecs = malloc(n * d * sizeof *g->vecs)) == NULL) ||
      (nf > 0 && (g->feats = malloc(n * nf * sizeof *g->feats)) == NULL) ||
      (g->found = malloc(n ? n : 1)) == NULL) {
    qv__get_free(g);
    return qv_error_set(err, QV_ENOMEM, "out of memory for %zu items", n);
  }
  return QV_OK;
}

void qv__get_free(qv__get_rows *g) {
  free(g->vecs);
  free(g->feats);
  free(g->found);
  memset(g, 0, sizeof *g);
}

qv_status qv__get_answer(const qv__server *s, qv__get_rows *g, const int64_t *ids, uint32_t dim,
                         uint32_t num_features, const qv_attr_batch *attrs, grpc_byte_buffer **resp,
                         qv_error *err) {
  const size_t n = g->n, d = g->d, nf = g->nf;
  /* The attributes of the ids found, in request order (before the rows move). */
  qv__attrs_out ao;
  qv_status st = qv__attrs_to_pb(attrs, n, g->found, &ao, err);
  if (st != QV_OK)
    return st;
  int64_t *hit = malloc((n ? n : 1) * sizeof *hit), *miss = malloc((n ? n : 1) * sizeof *miss);
  if (hit == NULL || miss == NULL) {
    free(hit);
    free(miss);
    qv__attrs_out_free(&ao);
    return qv_error_set(err, QV_ENOMEM, "out of memory for %zu items", n);
  }
  /* The rows of the ids found, moved up in request order. */
  size_t nfound = 0, nmiss = 0;
  for (size_t i = 0; i < n; i++) {
    if (!g->found[i]) {
      miss[nmiss++] = ids[i];
      continue;
    }
    if (nfound != i) {
      if (d > 0)
        memmove(g->vecs + nfound * d, g->vecs + i * d, d * sizeof *g->vecs);
      if (nf > 0)
        memmove(g->feats + nfound * nf, g->feats + i * nf, nf * sizeof *g->feats);
    }
    hit[nfound++] = ids[i];
  }
  Quiver__V1__GetResponse out = QUIVER__V1__GET_RESPONSE__INIT;
  out.n_ids = nfound;
  out.ids = hit;
  out.n_missing_ids = nmiss;
  out.missing_ids = miss;
  out.dim = dim;
  out.num_features = num_features;
  out.n_vectors = nfound * d;
  out.vectors = g->vecs;
  out.n_features = nfound * nf;
  out.features = g->feats;
  out.n_attributes = ao.n;
  out.attributes = ao.n ? ao.ptrs : NULL;
  /* qv__get_alloc counted the vectors and features; strings are only known now. */
  const size_t bytes = protobuf_c_message_get_packed_size(&out.base);
  if ((double)bytes > (double)s->cfg->max_message_mb * 1024 * 1024)
    st = qv_error_set(err, QV_ENOMEM,
                      "the answer to %zu ids would be about %.0f MiB, over the server's message "
                      "limit of %lld MiB (--max-message-mb): ask for fewer ids or fewer fields",
                      n, (double)bytes / 1048576.0, (long long)s->cfg->max_message_mb);
  else
    *resp = qv__wire_pack(&out.base);
  free(hit);
  free(miss);
  qv__attrs_out_free(&ao);
  return st;
}

/* ---- Get on a node -------------------------------------------------------------------------- */

qv_status qv__h_get(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                    grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__GetRequest *r = (const Quiver__V1__GetRequest *)m;
  if (r->collection == NULL || r->collection[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "collection is required");
  int want_vec, want_feat, want_attrs;
  qv_status st = qv__get_fields(r, &want_vec, &want_feat, &want_attrs, err);
  if (st == QV_OK)
    st = qv__ids_check(r->ids, r->n_ids, s->cfg->max_queries, "ids", err);
  if (st != QV_OK)
    return st;
  qv__entry *e;
  if ((st = qv__registry_get(s->reg, r->collection, &e, err)) != QV_OK)
    return st;
  qv_collection *col = qv__entry_col(e);
  qv_collection_stats cs;
  qv_collection_stats_get(col, &cs, NULL);
  /* Attributes only where there is a schema (one column per attribute, schema order). */
  const int attrs = want_attrs && cs.n_attrs > 0;
  qv_attr_batch ab = {0};
  qv__get_rows g;
  if ((st = qv__get_alloc(s, r->n_ids, want_vec ? cs.dim : 0, want_feat ? cs.n_features : 0, &g,
                          err)) == QV_OK &&
      (st = qv_collection_get_items_attrs(col, r->n_ids, r->ids, g.vecs, g.feats, g.found, NULL,
                                          attrs ? &ab : NULL, err)) == QV_OK)
    st = qv__get_answer(s, &g, r->ids, (uint32_t)cs.dim, (uint32_t)cs.n_features,
                        attrs ? &ab : NULL, resp, err);
  if (attrs)
    qv_attr_batch_free(&ab);
  qv__get_free(&g);
  qv__registry_put(s->reg, e);
  return st;
}
