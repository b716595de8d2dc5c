/* Search through a router: one call to one in-sync replica of every shard, all at once on a
 * completion queue of the request's own, merged into the global top-k.
 *
 * Per shard: the replica with the fewest calls outstanding from this router (among those that
 * applied this router's last acknowledged write to the shard, when any did). A shard not
 * answering within --hedge-ms is asked on a second replica too; the first answer wins and the
 * other call is cancelled. A replica failing with a status another one may not give (UNAVAILABLE,
 * DEADLINE_EXCEEDED, NOT_FOUND: a replica just dropped, RESOURCE_EXHAUSTED, INTERNAL, ...) is
 * replaced by the next untried one while the deadline lasts; a refusal of the request itself
 * (INVALID_ARGUMENT, UNIMPLEMENTED, ...) ends the search with that answer, as a single node
 * would give it. Every call gets the caller's deadline less a margin (a tenth of what remains,
 * at most 10 ms), so the merge still makes it in time. */
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "quiver/clock.h"
#include "quiver/merge.h"
#include "quiver/shard.h"
#include "router_internal.h"

typedef struct shard_st shard_st;

typedef struct try_st {
  shard_st *sh;
  qv__rpeer *peer;
  size_t rep; /* index in the shard's replicas */
  grpc_call *call;
  grpc_byte_buffer *recv;
  grpc_metadata_array mi, mt;
  grpc_status_code status;
  grpc_slice details;
  int done;
} try_st;

struct shard_st {
  uint32_t k;
  const qv__rshard *rs;
  uint64_t acked;          /* this router's last acknowledged write to the shard */
  uint64_t version;        /* the data version every shard is asked for (pinned per query) */
  grpc_byte_buffer *req;   /* the shard's request; NULL: the shard is not asked (a Get) */
  uint64_t tried;          /* replicas asked (bit per index) */
  int outstanding, hedged; /* calls in flight; 1 once hedged */
  double hedge_at;
  ProtobufCMessage *resp; /* a SearchResponse, or the method's response */
  grpc_status_code last;  /* the last failure */
  char last_msg[160];
  char last_node[64];
};

typedef struct fanout {
  qv__router *r;
  grpc_completion_queue *cq;
  gpr_timespec deadline;
  try_st *tries;
  size_t ntries, cap;
  int pending;
  unsigned rr;                          /* breaks ties between equally loaded replicas */
  const char *method;                   /* the shards' method: Search, or Get */
  const ProtobufCMessageDescriptor *rd; /* its response */
} fanout;

static int retryable(grpc_status_code c) {
  switch (c) {
  case GRPC_STATUS_INVALID_ARGUMENT:
  case GRPC_STATUS_UNIMPLEMENTED:
  case GRPC_STATUS_OUT_OF_RANGE:
  case GRPC_STATUS_PERMISSION_DENIED:
  case GRPC_STATUS_UNAUTHENTICATED:
  case GRPC_STATUS_FAILED_PRECONDITION:
  case GRPC_STATUS_ALREADY_EXISTS:
    return 0;
  default:
    return 1;
  }
}

/* The next replica to ask, or -1. */
static int pick(fanout *f, shard_st *sh) {
  int best = -1, best_fresh = 0, best_load = 0;
  for (size_t i = 0; i < sh->rs->n && i < 64; i++) {
    const qv__rrep *x = &sh->rs->reps[i];
    if (x->r.state != QV__REP_IN_SYNC || x->peer == NULL || (sh->tried >> i & 1))
      continue;
    /* One that holds the query's version: serving it, or ready beside the serving one. */
    if (x->r.version != sh->version && !(x->r.beside_version == sh->version && x->r.beside_ready))
      continue;
    const int fresh = x->r.applied >= sh->acked;
    const int load = atomic_load(&x->peer->outstanding);
    if (best < 0 || fresh > best_fresh || (fresh == best_fresh && load < best_load) ||
        (fresh == best_fresh && load == best_load && (f->rr++ & 1))) {
      best = (int)i;
      best_fresh = fresh;
      best_load = load;
    }
  }
  return best;
}

static int start_try(fanout *f, shard_st *sh) {
  const int i = pick(f, sh);
  if (i < 0 || f->ntries == f->cap)
    return 0;
  sh->tried |= 1ULL << i;
  try_st *t = &f->tries[f->ntries];
  memset(t, 0, sizeof *t);
  t->sh = sh;
  t->rep = (size_t)i;
  t->peer = sh->rs->reps[i].peer;
  grpc_slice method = grpc_slice_from_static_string(f->method);
  t->call = grpc_channel_create_call(t->peer->ch, NULL, GRPC_PROPAGATE_DEFAULTS, f->cq, method,
                                     NULL, f->deadline, NULL);
  if (t->call == NULL)
    return 0;
  grpc_metadata_array_init(&t->mi);
  grpc_metadata_array_init(&t->mt);
  t->details = grpc_empty_slice();
  grpc_byte_buffer *send = grpc_byte_buffer_copy(sh->req);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &t->mi;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &t->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &t->mt;
  ops[5].data.recv_status_on_client.status = &t->status;
  ops[5].data.recv_status_on_client.status_details = &t->details;
  const grpc_call_error rc = grpc_call_start_batch(t->call, ops, 6, t, NULL);
  grpc_byte_buffer_destroy(send);
  if (rc != GRPC_CALL_OK) {
    grpc_call_unref(t->call);
    grpc_metadata_array_destroy(&t->mi);
    grpc_metadata_array_destroy(&t->mt);
    return 0;
  }
  f->ntries++;
  f->pending++;
  sh->outstanding++;
  atomic_fetch_add(&t->peer->outstanding, 1);
  return 1;
}

static void cancel_shard(fanout *f, shard_st *sh) {
  for (size_t i = 0; i < f->ntries; i++)
    if (f->tries[i].sh == sh && !f->tries[i].done)
      grpc_call_cancel(f->tries[i].call, NULL);
}

static void cancel_all(fanout *f) {
  for (size_t i = 0; i < f->ntries; i++)
    if (!f->tries[i].done)
      grpc_call_cancel(f->tries[i].call, NULL);
}

/* A try finished: 1 when the whole search must stop (a refusal). */
static int on_done(fanout *f, try_st *t, int ok, int out_of_time) {
  shard_st *sh = t->sh;
  t->done = 1;
  f->pending--;
  sh->outstanding--;
  atomic_fetch_sub(&t->peer->outstanding, 1);
  if (sh->resp != NULL)
    return 0; /* the other try of a hedged shard won */
  if (ok && t->status == GRPC_STATUS_OK && t->recv != NULL) {
    qv_error err = {0};
    sh->resp = qv__decode(t->recv, f->rd, &err);
    if (sh->resp != NULL && f->rd == &quiver__v1__search_response__descriptor &&
        ((Quiver__V1__SearchResponse *)sh->resp)->version != sh->version) {
      /* Never merged: an answer from another version than the query's (a replica that let it
       * go between its report and this call). Another replica is asked. */
      protobuf_c_message_free_unpacked(sh->resp, NULL);
      sh->resp = NULL;
      t->status = GRPC_STATUS_UNAVAILABLE;
    } else if (sh->resp != NULL) {
      cancel_shard(f, sh);
      return 0;
    } else {
      t->status = GRPC_STATUS_INTERNAL;
    }
  }
  sh->last = t->status == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : t->status;
  char *d = grpc_slice_to_c_string(t->details);
  snprintf(sh->last_msg, sizeof sh->last_msg, "%s", d && *d ? d : "no answer");
  gpr_free(d);
  snprintf(sh->last_node, sizeof sh->last_node, "%s", sh->rs->reps[t->rep].node);
  /* A replica that no longer holds the query's version (released or rolled back since its
   * report) refuses it: another one may hold it. */
  const int unheld = sh->last == GRPC_STATUS_FAILED_PRECONDITION &&
                     strstr(sh->last_msg, "does not hold data version") != NULL;
  if (!retryable(sh->last) && !unheld)
    return 1;
  atomic_fetch_add(&f->r->shard_failures, 1);
  if (!out_of_time && sh->outstanding == 0 && start_try(f, sh))
    atomic_fetch_add(&f->r->retries, 1);
  return 0;
}

static double timespec_s(gpr_timespec t) {
  t = gpr_convert_clock_type(t, GPR_CLOCK_MONOTONIC);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void run(fanout *f, shard_st *sh, uint32_t nshards) {
  const double hedge_s = (double)f->r->cfg->hedge_ms / 1e3;
  const double now0 = timespec_s(gpr_now(GPR_CLOCK_MONOTONIC));
  for (uint32_t k = 0; k < nshards; k++) {
    sh[k].hedge_at = now0 + hedge_s;
    if (sh[k].req == NULL)
      continue;
    if (!start_try(f, &sh[k])) {
      sh[k].last = GRPC_STATUS_UNAVAILABLE;
      snprintf(sh[k].last_msg, sizeof sh[k].last_msg,
               "no in-sync replica holding data version %llu", (unsigned long long)sh[k].version);
    }
  }
  const double end = timespec_s(f->deadline);
  int out_of_time = 0, stop = 0;
  while (f->pending > 0) {
    double wake = end;
    if (hedge_s > 0 && !out_of_time && !stop)
      for (uint32_t k = 0; k < nshards; k++)
        if (sh[k].resp == NULL && !sh[k].hedged && sh[k].outstanding == 1 && sh[k].hedge_at < wake)
          wake = sh[k].hedge_at;
    /* Past the deadline (or once refused) the calls end themselves: wait for them. */
    gpr_timespec until = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    if (!out_of_time && !stop) {
      double wait = wake - timespec_s(gpr_now(GPR_CLOCK_MONOTONIC));
      until =
          gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                       gpr_time_from_micros(wait > 0 ? (int64_t)(wait * 1e6) : 0, GPR_TIMESPAN));
    }
    grpc_event ev = grpc_completion_queue_next(f->cq, until, NULL);
    const double now = timespec_s(gpr_now(GPR_CLOCK_MONOTONIC));
    if (now >= end)
      out_of_time = 1;
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
      for (uint32_t k = 0; k < nshards && !out_of_time; k++)
        if (sh[k].resp == NULL && !sh[k].hedged && sh[k].outstanding == 1 &&
            now >= sh[k].hedge_at) {
          sh[k].hedged = 1;
          if (start_try(f, &sh[k]))
            atomic_fetch_add(&f->r->hedges, 1);
        }
      continue;
    }
    if (ev.type != GRPC_OP_COMPLETE)
      break;
    if (on_done(f, ev.tag, ev.success, out_of_time) && !stop) {
      stop = 1;
      cancel_all(f);
    }
  }
}

static void fanout_end(fanout *f) {
  for (size_t i = 0; i < f->ntries; i++) {
    try_st *t = &f->tries[i];
    if (t->recv)
      grpc_byte_buffer_destroy(t->recv);
    grpc_metadata_array_destroy(&t->mi);
    grpc_metadata_array_destroy(&t->mt);
    grpc_slice_unref(t->details);
    grpc_call_unref(t->call);
  }
  grpc_completion_queue_shutdown(f->cq);
  while (grpc_completion_queue_next(f->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(f->cq);
}

/* A fan-out over S shards of `method` (response rd) within the caller's deadline less a margin
 * (a call without one gets 30 s): *shp and *fp allocated (free with fanout_free). */
static qv_status fanout_new(qv__router *r, uint32_t S, const gpr_timespec *deadline,
                            const char *method, const ProtobufCMessageDescriptor *rd,
                            shard_st **shp, fanout **fp, qv_error *err) {
  shard_st *sh = calloc(S, sizeof *sh);
  fanout *f = calloc(1, sizeof *f);
  try_st *tries = calloc((size_t)S * 3 + 2, sizeof *tries);
  if (sh == NULL || f == NULL || tries == NULL) {
    free(sh);
    free(f);
    free(tries);
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  }
  f->r = r;
  f->tries = tries;
  f->cap = (size_t)S * 3 + 2; /* a first try, a hedge and a retry per shard */
  f->method = method;
  f->rd = rd;
  f->cq = grpc_completion_queue_create_for_next(NULL);
  gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  gpr_timespec dl =
      deadline != NULL && gpr_time_cmp(*deadline, gpr_inf_future(deadline->clock_type)) != 0
          ? gpr_convert_clock_type(*deadline, GPR_CLOCK_MONOTONIC)
          : gpr_time_add(now, gpr_time_from_seconds(30, GPR_TIMESPAN));
  int64_t left_us = gpr_time_to_millis(gpr_time_sub(dl, now)) * 1000;
  int64_t margin_us = left_us / 10 < 10000 ? left_us / 10 : 10000;
  f->deadline = gpr_time_sub(dl, gpr_time_from_micros(margin_us, GPR_TIMESPAN));
  *shp = sh;
  *fp = f;
  return QV_OK;
}

static void fanout_free(fanout *f, shard_st *sh, uint32_t S) {
  fanout_end(f);
  for (uint32_t k = 0; k < S; k++) {
    if (sh[k].req)
      grpc_byte_buffer_destroy(sh[k].req);
    if (sh[k].resp)
      protobuf_c_message_free_unpacked(sh[k].resp, NULL);
  }
  free(sh);
  free(f->tries);
  free(f);
}

/* A shard's message with its local collection name said as the fleet's ("x.shard1" -> "x"). */
static void unlocal(const char *msg, const char *name, char *out, size_t cap) {
  const size_t nl = strlen(name);
  size_t o = 0;
  for (const char *p = msg; *p && o + 1 < cap;) {
    if (strncmp(p, name, nl) == 0 && strncmp(p + nl, ".shard", 6) == 0) {
      const char *q = p + nl + 6;
      while (*q >= '0' && *q <= '9')
        q++;
      const size_t n = nl < cap - 1 - o ? nl : cap - 1 - o;
      memcpy(out + o, name, n);
      o += n;
      p = q;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
}

/* ---- fetch by ids ---------------------------------------------------------------------- */

/* The stored rows of n ids of collection c, each from its shard's serving version: found[i],
 * and (when not NULL) vecs + i * dim, feats + i * n_features, and the attributes of the n rows
 * in request order (*attrs, free with qv__attrs_merged_free). A shard without a replica
 * answering makes the whole fetch fail (UNAVAILABLE); so does its refusal. */
static qv_status rt_rows(qv__router *r, const qv__rcoll *c, const int64_t *ids, size_t n,
                         const gpr_timespec *deadline, float *vecs, float *feats, uint8_t *found,
                         qv__attrs_merged *attrs, qv_error *err) {
  const uint32_t S = c->c.shards;
  const size_t d = c->c.dim, nf = c->c.n_features;
  shard_st *sh;
  fanout *f;
  qv_status st = fanout_new(r, S, deadline, "/quiver.v1.Retrieval/Get",
                            &quiver__v1__get_response__descriptor, &sh, &f, err);
  if (st != QV_OK)
    return st;
  /* Each shard's ids, in request order: pos[off[k] ..] are their places in ids. */
  size_t *pos = malloc((n ? n : 1) * sizeof *pos), *off = calloc((size_t)S + 1, sizeof *off);
  int64_t *sub = malloc((n ? n : 1) * sizeof *sub);
  uint32_t *home = malloc((n ? n : 1) * sizeof *home);
  /* With attributes: the answer and its row that each id's attributes are in. */
  const Quiver__V1__GetResponse **asrc = attrs ? calloc(n ? n : 1, sizeof *asrc) : NULL;
  size_t *arow = attrs ? calloc(n ? n : 1, sizeof *arow) : NULL;
  if (pos == NULL || off == NULL || sub == NULL || home == NULL ||
      (attrs && (asrc == NULL || arow == NULL))) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory for %zu ids", n);
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    off[(home[i] = qv_shard_of(ids[i], S)) + 1]++;
  for (uint32_t k = 0; k < S; k++)
    off[k + 1] += off[k];
  {
    size_t *fill = calloc(S, sizeof *fill);
    if (fill == NULL) {
      st = qv_error_set(err, QV_ENOMEM, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < n; i++) {
      const size_t at = off[home[i]] + fill[home[i]]++;
      pos[at] = i;
      sub[at] = ids[i];
    }
    free(fill);
  }
  char local[QV__NAME_MAX + 1];
  /* Only what is wanted (features, the smallest, when nothing is: the ids found). */
  const char *fields[3];
  size_t nfields = 0;
  if (vecs)
    fields[nfields++] = "vector";
  if (feats || (!vecs && !attrs))
    fields[nfields++] = "features";
  if (attrs)
    fields[nfields++] = "attributes";
  for (uint32_t k = 0; k < S; k++) {
    sh[k].k = k;
    sh[k].version = c->c.version;
    sh[k].rs = &c->shards[k];
    if (off[k + 1] == off[k])
      continue; /* none of the ids lives there */
    Quiver__V1__GetRequest one = QUIVER__V1__GET_REQUEST__INIT;
    qv__fleet_local_name(c->c.name, k, local, sizeof local);
    one.collection = local;
    one.n_ids = off[k + 1] - off[k];
    one.ids = sub + off[k];
    one.n_fields = nfields;
    one.fields = (char **)fields;
    sh[k].req = qv__wire_pack(&one.base);
  }
  run(f, sh, S);
  for (uint32_t k = 0; k < S && st == QV_OK; k++) {
    if (sh[k].req == NULL)
      continue;
    const Quiver__V1__GetResponse *a = (const Quiver__V1__GetResponse *)sh[k].resp;
    char msg[QV_ERROR_MSG_MAX];
    if (a == NULL) {
      unlocal(sh[k].last_msg, c->c.name, msg, sizeof msg);
      st = retryable(sh[k].last)
               ? qv_error_set(err, QV_EUNAVAILABLE,
                              "collection '%s': shard %u of %u has no replica answering (last "
                              "from %s: %.120s)",
                              c->c.name, k, S, sh[k].last_node[0] ? sh[k].last_node : "-", msg)
               : qv_error_set(err, qv__from_grpc(sh[k].last), "%s", msg);
      break;
    }
    const size_t m = off[k + 1] - off[k];
    if (a->n_ids > m || (vecs && (a->dim != d || a->n_vectors != a->n_ids * d)) ||
        (feats && nf > 0 && a->n_features != a->n_ids * nf)) {
      st = qv_error_set(err, QV_EINTERNAL, "shard %u answered a Get of another shape", k);
      break;
    }
    /* Its ids found are in its request's order: matched in one pass. */
    size_t h = 0;
    for (size_t j = 0; j < m; j++) {
      const size_t i = pos[off[k] + j];
      found[i] = h < a->n_ids && a->ids[h] == sub[off[k] + j];
      if (found[i]) {
        if (vecs)
          memcpy(vecs + i * d, a->vectors + h * d, d * sizeof *vecs);
        if (feats && nf > 0)
          memcpy(feats + i * nf, a->features + h * nf, nf * sizeof *feats);
        if (attrs) {
          asrc[i] = a;
          arow[i] = h;
        }
        h++;
      }
    }
    if (h != a->n_ids)
      st = qv_error_set(err, QV_EINTERNAL, "shard %u answered ids it was not asked for", k);
  }
  /* Copied out while the shards' answers live. */
  if (st == QV_OK && attrs)
    st = qv__attrs_gather(c->c.n_attrs, c->c.attrs, n, asrc, arow, attrs, err);
out:
  fanout_free(f, sh, S);
  free(pos);
  free(off);
  free(sub);
  free(home);
  free(asrc);
  free(arow);
  return st;
}

qv_status qv__rt_get(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                     grpc_byte_buffer **resp, qv_error *err) {
  qv__router *r = s->router;
  const Quiver__V1__GetRequest *g = (const Quiver__V1__GetRequest *)m;
  if (g->collection == NULL || g->collection[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "collection is required");
  int want_vec, want_feat, want_attrs;
  qv_status st = qv__get_fields(g, &want_vec, &want_feat, &want_attrs, err);
  if (st == QV_OK)
    st = qv__ids_check(g->ids, g->n_ids, s->cfg->max_queries, "ids", err);
  if (st != QV_OK)
    return st;
  qv__rmap *map = qv__router_map_for(r, g->collection);
  const qv__rcoll *c = qv__rmap_find(map, g->collection);
  if (c == NULL) {
    qv__rmap_put(map);
    return qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist", g->collection);
  }
  /* Attributes only where there is a schema, as a node answers. */
  const int attrs = want_attrs && c->c.n_attrs > 0;
  qv__attrs_merged ag;
  memset(&ag, 0, sizeof ag);
  qv__get_rows rows;
  if ((st = qv__get_alloc(s, g->n_ids, want_vec ? c->c.dim : 0, want_feat ? c->c.n_features : 0,
                          &rows, err)) == QV_OK &&
      (st = rt_rows(r, c, g->ids, g->n_ids, deadline, rows.vecs, rows.feats, rows.found,
                    attrs ? &ag : NULL, err)) == QV_OK)
    st = qv__get_answer(s, &rows, g->ids, c->c.dim, c->c.n_features, attrs ? &ag.b : NULL, resp,
                        err);
  qv__attrs_merged_free(&ag);
  qv__get_free(&rows);
  qv__rmap_put(map);
  return st;
}

/* ---- search ----------------------------------------------------------------------------- */

static qv_status rt_search(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                           grpc_byte_buffer **resp, qv_error *err) {
  qv__router *r = s->router;
  const Quiver__V1__SearchRequest *q = (const Quiver__V1__SearchRequest *)m;
  const Quiver__V1__SearchRequest *orig = q;
  const int by_id = q->n_query_ids > 0;
  qv_status st = QV_OK;
  if (by_id && (st = qv__qids_check(s, q, err)) != QV_OK)
    return st;
  qv__rmap *map = qv__router_map_for(r, q->collection);
  const qv__rcoll *c = qv__rmap_find(map, q->collection);
  if (c == NULL) {
    st = qv_error_set(err, QV_ENOTFOUND, "collection '%.80s' does not exist",
                      q->collection ? q->collection : "");
    qv__rmap_put(map);
    return st;
  }
  const uint32_t S = c->c.shards;
  if (S > 1 && q->rerank != NULL && q->rerank->mmr_lambda > 0) {
    qv__rmap_put(map);
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "rerank.mmr_lambda through a router over %u shards is not supported yet: "
                        "diversity needs every shard's candidates in one place; search without "
                        "MMR, or keep the collection on one shard",
                        S);
  }
  /* Item-to-item: the ids' vectors fetched from their shards, then a vector search of k + 1. */
  qv__qids qs;
  memset(&qs, 0, sizeof qs);
  if (by_id) {
    const size_t n = q->n_query_ids;
    float *vecs = malloc(n * c->c.dim * sizeof *vecs);
    uint8_t *found = malloc(n);
    if (vecs == NULL || found == NULL) {
      free(vecs);
      free(found);
      st = qv_error_set(err, QV_ENOMEM, "out of memory for %zu query vectors", n);
    } else if ((st = rt_rows(r, c, q->query_ids, n, deadline, vecs, NULL, found, NULL, err)) !=
               QV_OK) {
      free(vecs);
      free(found);
    } else {
      st = qv__qids_begin(&qs, q, c->c.dim, vecs, found, err);
    }
    if (st != QV_OK) {
      qv__qids_free(&qs);
      qv__rmap_put(map);
      return st;
    }
    q = &qs.req;
  }
  /* k' per shard: k plus the configured extra, within what a node takes. */
  uint64_t kp = (uint64_t)q->k + (uint64_t)r->cfg->fanout_extra_k;
  if (kp > (uint64_t)r->cfg->max_k)
    kp = q->k > (uint64_t)r->cfg->max_k ? q->k : (uint64_t)r->cfg->max_k;
  shard_st *sh;
  fanout *f;
  if ((st = fanout_new(r, S, deadline, "/quiver.v1.Retrieval/Search",
                       &quiver__v1__search_response__descriptor, &sh, &f, err)) != QV_OK) {
    qv__qids_free(&qs);
    qv__rmap_put(map);
    return st;
  }
  char local[QV__NAME_MAX + 1];
  /* The version the whole query is answered from, read once: every shard is asked for it. */
  const uint64_t version = q->version ? q->version : c->c.version;
  qv__router_pin(r, c->c.name, version, +1);
  for (uint32_t k = 0; k < S; k++) {
    sh[k].k = k;
    sh[k].version = version;
    sh[k].rs = &c->shards[k];
    qv__rlog *l = NULL;
    /* Only a log this router already has: no NATS round trip on the search path. */
    pthread_mutex_lock(&r->lmu);
    char stream[64];
    qv__fleet_stream_name(c->c.uid, k, stream, sizeof stream);
    for (l = r->logs; l != NULL && strcmp(l->stream, stream) != 0; l = l->next) {
    }
    sh[k].acked = l ? atomic_load(&l->acked) : 0;
    pthread_mutex_unlock(&r->lmu);
    Quiver__V1__SearchRequest one = *q;
    qv__fleet_local_name(c->c.name, k, local, sizeof local);
    one.collection = local;
    one.k = (uint32_t)kp;
    one.allow_partial = 0;
    one.version = version;
    sh[k].req = qv__wire_pack(&one.base);
  }
  atomic_fetch_add(&r->fanouts, 1);
  const double t0 = qv_monotonic_s();
  run(f, sh, S);
  qv__router_fanout_observe(r, qv_monotonic_s() - t0);
  qv__router_pin(r, c->c.name, version, -1);
  /* The answer: a refusal first, then what is missing, then the merge. */
  uint32_t missing[QV__FLEET_MAX_SHARDS];
  size_t nmissing = 0;
  const shard_st *refused = NULL;
  for (uint32_t k = 0; k < S; k++) {
    if (sh[k].resp == NULL && !retryable(sh[k].last) && refused == NULL)
      refused = &sh[k];
    if (sh[k].resp == NULL)
      missing[nmissing++] = k;
  }
  const int past = gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), f->deadline) >= 0;
  char msg[QV_ERROR_MSG_MAX];
  if (refused != NULL) {
    unlocal(refused->last_msg, c->c.name, msg, sizeof msg);
    st = qv_error_set(err, qv__from_grpc(refused->last), "%s", msg);
  } else if (nmissing == S || (nmissing > 0 && !q->allow_partial)) {
    const shard_st *x = &sh[missing[0]];
    unlocal(x->last_msg, c->c.name, msg, sizeof msg);
    st = qv_error_set(err, past ? QV_EDEADLINE : QV_EUNAVAILABLE,
                      "collection '%s': shard %u of %u %s (%zu shard(s) missing; last from "
                      "%s: %.120s)%s",
                      c->c.name, x->k, S,
                      past ? "did not answer within the deadline" : "has no replica answering",
                      nmissing, x->last_node[0] ? x->last_node : "-", msg,
                      q->allow_partial ? "" : "; allow_partial answers from the other shards");
  } else {
    /* Every answer has the same shape (the same request went to each). */
    const Quiver__V1__SearchResponse *first = NULL;
    for (uint32_t k = 0; k < S && first == NULL; k++)
      first = (const Quiver__V1__SearchResponse *)sh[k].resp;
    const size_t nq = first->num_queries, kin = first->k;
    const float **scores = calloc(S, sizeof *scores);
    const int64_t **ids = calloc(S, sizeof *ids);
    Quiver__V1__SearchResponse out = QUIVER__V1__SEARCH_RESPONSE__INIT;
    out.k = q->k;
    out.num_queries = (uint32_t)nq;
    out.n_ids = out.n_scores = nq * q->k;
    out.ids = malloc((out.n_ids ? out.n_ids : 1) * sizeof *out.ids);
    out.scores = malloc((out.n_scores ? out.n_scores : 1) * sizeof *out.scores);
    size_t nl = 0;
    st = scores && ids && out.ids && out.scores ? QV_OK
                                                : qv_error_set(err, QV_ENOMEM, "out of memory");
    for (uint32_t k = 0; k < S && st == QV_OK; k++) {
      const Quiver__V1__SearchResponse *a = (const Quiver__V1__SearchResponse *)sh[k].resp;
      if (a == NULL)
        continue;
      if (a->num_queries != nq || a->k != kin || a->n_ids != nq * kin || a->n_scores != nq * kin)
        st = qv_error_set(err, QV_EINTERNAL, "shard %u answered %u x %u results, shard 0 %zu x %zu",
                          k, a->num_queries, a->k, nq, kin);
      scores[nl] = a->scores;
      ids[nl++] = a->ids;
    }
    /* Reranked scores (blend, MMR) are "larger is better" whatever the metric. */
    qv_metric metric = QV_METRIC_L2;
    qv__metric_from_pb((Quiver__V1__Metric)c->c.metric, &metric);
    if (q->rerank != NULL && (q->rerank->n_weights > 0 || q->rerank->mmr_lambda > 0))
      metric = QV_METRIC_IP;
    if (st == QV_OK && nq > 0 && q->k > 0)
      st = qv_merge_topk(metric, nq, q->k, nl, kin, scores, ids, out.scores, out.ids, err);
    if (st == QV_OK && by_id) {
      /* The item-to-item answer: len(query_ids) rows of the request's k. */
      const size_t n = qs.n, k = orig->k;
      const size_t nk = n * k > 0 ? n * k : 1;
      float *s2 = malloc(nk * sizeof *s2);
      int64_t *i2 = malloc(nk * sizeof *i2);
      if (s2 == NULL || i2 == NULL) {
        free(s2);
        free(i2);
        st = qv_error_set(err, QV_ENOMEM, "out of memory");
      } else {
        qv_metric cm = QV_METRIC_L2;
        qv__metric_from_pb((Quiver__V1__Metric)c->c.metric, &cm);
        qv__qids_finish(&qs, cm, out.scores, out.ids, s2, i2);
        free(out.scores);
        free(out.ids);
        out.scores = s2;
        out.ids = i2;
        out.k = (uint32_t)k;
        out.num_queries = (uint32_t)n;
        out.n_ids = out.n_scores = n * k;
        out.n_unknown_queries = qs.nunknown;
        out.unknown_queries = qs.unknown;
      }
    }
    if (st == QV_OK) {
      out.n_missing_shards = nmissing;
      out.missing_shards = missing;
      out.version = version;
      if (nmissing > 0)
        atomic_fetch_add(&r->partials, 1);
      *resp = qv__wire_pack(&out.base);
    }
    free(scores);
    free(ids);
    free(out.ids);
    free(out.scores);
  }
  fanout_free(f, sh, S);
  qv__qids_free(&qs);
  qv__rmap_put(map);
  return st;
}

qv_status qv__rt_search(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                        grpc_byte_buffer **resp, qv_error *err) {
  qv_status st = rt_search(s, m, deadline, resp, err);
  /* An unpinned search answers from the serving version whatever moved: when every replica
   * refused the version this router's map still showed (a rollback or a release read by the
   * shards before this router's next map poll), the map is read again and the search retried
   * once with the pointer it shows now. */
  const Quiver__V1__SearchRequest *q = (const Quiver__V1__SearchRequest *)m;
  if (st == QV_EPRECONDITION && q->version == 0 &&
      strstr(err->msg, "does not hold data version") != NULL) {
    qv_error re = {0};
    if (qv__router_refresh(s->router, &re) == QV_OK) {
      atomic_fetch_add(&s->router->retries, 1);
      st = rt_search(s, m, deadline, resp, err);
    }
  }
  return st;
}
