/* Data versions on a node (docs/rollout.md): an import staged beside the serving version, the
 * writes it takes meanwhile, and the Rollout call that flips to it, drops it, rolls back or
 * releases the previous version. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "server_internal.h"

void qv__slot_write(qv__entry *e, size_t n, const int64_t *ids, const float *vectors,
                    const float *features, const qv_attr_batch *attrs, int upsert) {
  if (n == 0)
    return;
  int kind = QV__SLOT_NONE;
  qv_collection *c = qv__entry_slot_get(e, 0, &kind);
  if (c == NULL)
    return;
  if (!qv__entry_slot_fed(e)) { /* a fleet replica feeds it from its log first */
    qv__entry_slot_put(e);
    return;
  }
  qv_error err = {0};
  size_t deleted = 0;
  const uint64_t g = qv_collection_generation(c);
  const qv_status st = upsert ? qv_collection_upsert(c, n, ids, vectors, features, attrs, &err)
                              : qv_collection_delete(c, n, ids, &deleted, &err);
  qv__entry_slot_put(e);
  if (st == QV_OK)
    return;
  uint64_t dropped = 0;
  if (qv__entry_slot_drop(e, kind, &dropped, NULL) == QV_OK)
    QV_LOG_E("collection '%s': its %s version %llu could not take a write the serving version "
             "took (%s): dropped, so that it never serves without it; stage it again",
             qv__entry_name(e), kind == QV__SLOT_STAGED ? "staged" : "previous",
             (unsigned long long)g, err.msg);
}

qv_status qv__import_stage(import_call *u, qv__entry *e, qv_collection *src, qv_build_report *rep,
                           uint64_t *version, qv_error *err) {
  qv__server *s = u->s;
  qv__registry *reg = s->reg;
  qv_collection *col = qv__entry_col(e);
  qv_collection_stats cs, ns;
  qv_collection_stats_get(col, &cs, NULL);
  qv_collection_stats_get(src, &ns, NULL);
  const uint64_t serving = cs.generation;
  const uint64_t v = u->version ? u->version : serving + 1;
  qv_status st = QV_OK;
  qv_collection *staged = NULL;
  if (v <= serving)
    st = qv_error_set(err, QV_EINVAL,
                      "version %llu is not above the version collection '%s' serves (%llu): "
                      "stage a newer one, or send version 0 for %llu",
                      (unsigned long long)v, u->name, (unsigned long long)serving,
                      (unsigned long long)(serving + 1));
  else if (ns.dim != cs.dim || ns.metric != cs.metric)
    st =
        qv_error_set(err, QV_EINVAL,
                     "the index has dim %zu, metric %s; collection '%s' has dim %zu, metric %s "
                     "(a version of a collection keeps its dimension and metric)",
                     ns.dim, qv_metric_name(ns.metric), u->name, cs.dim, qv_metric_name(cs.metric));
  else if (ns.n_features != cs.n_features && ns.n_features != 0)
    st = qv_error_set(err, QV_EINVAL, "the index's items carry %zu features, collection '%s' %zu",
                      ns.n_features, u->name, cs.n_features);
  if (st == QV_OK && reg->cfg.memory_budget > 0) {
    /* Both versions at once, beside the others (what is held beside e now is dropped first). */
    const uint64_t need = qv__registry_memory(reg, e) + cs.vector_bytes + cs.index_bytes +
                          cs.attr_bytes + ns.vector_bytes + ns.index_bytes + ns.attr_bytes;
    if (need > reg->cfg.memory_budget)
      st = qv_error_set(err, QV_ENOMEM,
                        "staging needs about %llu MiB with the serving version and the other "
                        "collections, over --memory-budget-mb %llu",
                        (unsigned long long)(need >> 20),
                        (unsigned long long)(reg->cfg.memory_budget >> 20));
  }
  if (st == QV_OK) {
    /* An empty collection of e's shape takes src's state through the import's own checks
     * (built, features) and recall measure; it keeps e's device ask, so a GPU collection's
     * staged version gets its GPU copy now (warm before it serves). */
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = cs.dim;
    o.metric = cs.metric;
    o.spec = "Flat";
    o.n_features = cs.n_features;
    o.device = cs.device;
    o.deferred_deletes = cs.deferred_deletes;
    o.n_attrs = cs.n_attrs; /* the serving version's schema: its writes reach this one too */
    o.attrs = cs.attrs;
    st = qv_collection_create(&staged, &o, err);
  }
  /* Files without attributes: the staged items keep the serving version's (by id). */
  if (st == QV_OK && cs.n_attrs > 0 && ns.n_attrs == 0)
    st = qv_collection_adopt_attrs(src, qv__entry_col(e), err);
  if (st == QV_OK)
    st = qv_collection_replace(staged, src, &u->opts, rep, err);
  if (st == QV_OK)
    st = qv_collection_set_generation(staged, v, err);
  if (st == QV_OK)
    st = qv__entry_stage(reg, e, staged, err);
  if (st == QV_OK) {
    staged = NULL; /* e's now */
    *version = v;
  }
  qv_collection_close(staged);
  return st;
}

static const char *action_name(int a) {
  switch (a) {
  case QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_FLIP:
    return "flip";
  case QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ABORT:
    return "abort";
  case QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ROLLBACK:
    return "rollback";
  case QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_RELEASE:
    return "release";
  default:
    return "status";
  }
}

qv_status qv__h_rollout(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                        grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__RolloutRequest *r = (const Quiver__V1__RolloutRequest *)m;
  const int a = r->action;
  if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_BEGIN)
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "BEGIN is a fleet rollout's: send it to a router (on a single node, "
                        "stage with ImportIndex stage = true and FLIP)");
  if (a < QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_STATUS ||
      a > QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_RELEASE)
    return qv_error_set(err, QV_EINVAL,
                        "rollout action %d is not one of STATUS, FLIP, ABORT, ROLLBACK, RELEASE",
                        a);
  qv__entry *e;
  qv_status st = qv__registry_get(s->reg, r->collection, &e, err);
  if (st != QV_OK)
    return st;
  const uint64_t before = qv_collection_generation(qv__entry_col(e));
  uint64_t other = 0;
  char msg[160] = "";
  if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_FLIP ||
      a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ROLLBACK) {
    const int back = a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ROLLBACK;
    if ((st = qv__registry_claim_build(s->reg, e, err)) == QV_OK) {
      const double t0 = qv_monotonic_s();
      st = qv__entry_flip(s->reg, e, back, back ? 0 : r->version, err);
      qv__entry_end_build(e);
      if (st == QV_OK)
        snprintf(msg, sizeof msg, "%s from version %llu to %llu in %.3f s",
                 back ? "rolled back" : "flipped", (unsigned long long)before,
                 (unsigned long long)qv_collection_generation(qv__entry_col(e)),
                 qv_monotonic_s() - t0);
    }
  } else if (a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ABORT ||
             a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_RELEASE) {
    const int abort = a == QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_ABORT;
    /* Not while an import stages (it holds the claim): it would stage again right after. */
    if ((st = qv__registry_claim_build(s->reg, e, err)) == QV_OK) {
      st = qv__entry_slot_drop(e, abort ? QV__SLOT_STAGED : QV__SLOT_PREVIOUS, &other, err);
      qv__entry_end_build(e);
      if (st == QV_OK)
        snprintf(msg, sizeof msg, "%s version %llu dropped", abort ? "staged" : "previous",
                 (unsigned long long)other);
    }
  } else {
    snprintf(msg, sizeof msg, "serving version %llu", (unsigned long long)before);
  }
  if (st == QV_OK) {
    Quiver__V1__RolloutStatus out = QUIVER__V1__ROLLOUT_STATUS__INIT;
    Quiver__V1__VersionInfo v, *vp = &v;
    out.collection = (char *)qv__entry_name(e);
    out.version = qv_collection_generation(qv__entry_col(e));
    if (qv__fill_version(e, &v)) {
      out.n_versions = 1;
      out.versions = &vp;
    }
    out.message = msg;
    *resp = qv__wire_pack(&out.base);
    if (a != QUIVER__V1__ROLLOUT_ACTION__ROLLOUT_ACTION_STATUS)
      QV_LOG_I("Rollout collection=%s %s: %s", qv__entry_name(e), action_name(a), msg);
  }
  qv__registry_put(s->reg, e);
  return st;
}
