/* The admin handlers (CreateCollection, DropCollection, DescribeCollection, ListCollections),
 * Delete and Health/Check. */
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "quiver_wire.h"
#include "server_internal.h"

/* ---- unary handlers --------------------------------------------------------------------- */

qv_status qv__create_opts_from(const qv__server *s, const Quiver__V1__CreateCollectionRequest *r,
                               qv_collection_opts *o, qv_attr_field *fields, qv_error *err) {
  qv_collection_opts_init(o);
  if (r->dim == 0 || r->dim > QV_MAX_DIM)
    return qv_error_set(err, QV_EINVAL, "dim = %u is out of range 1..%d", r->dim, QV_MAX_DIM);
  o->dim = r->dim;
  if (qv__metric_from_pb(r->metric, &o->metric) != 0)
    return qv_error_set(err, QV_EINVAL,
                        "metric is required: METRIC_L2, METRIC_IP or METRIC_COSINE (got %d)",
                        (int)r->metric);
  o->spec = r->index_spec && r->index_spec[0] ? r->index_spec : "Flat";
  /* A graph's efSearch rides in the index layer's nprobe slot. */
  const int graph = qv_spec_is_graph(o->spec);
  if (graph && r->default_nprobe != 0)
    return qv_error_set(err, QV_EINVAL,
                        "default_nprobe applies to IVF indexes; '%.64s' is a graph: set "
                        "default_ef_search",
                        o->spec);
  if (!graph && r->default_ef_search != 0)
    return qv_error_set(err, QV_EINVAL,
                        "default_ef_search applies to HNSW indexes; '%.64s' is not one: set "
                        "default_nprobe",
                        o->spec);
  if (r->default_ef_search > QV_MAX_EF_SEARCH)
    return qv_error_set(err, QV_EINVAL, "default_ef_search = %u is out of range 1..%d",
                        r->default_ef_search, QV_MAX_EF_SEARCH);
  o->default_nprobe = graph ? r->default_ef_search : r->default_nprobe;
  o->train_sample = r->train_sample;
  o->n_features = r->n_features;
  o->deferred_deletes = r->deferred_deletes;
  if (qv__device_from_pb(r->device, s->default_device, &o->device) != 0)
    return qv_error_set(err, QV_EINVAL,
                        "device %d is unknown: DEVICE_AUTO, DEVICE_CPU or DEVICE_GPU (or unset for "
                        "the server default)",
                        (int)r->device);
  qv_status st = qv__schema_from_pb(r->n_attributes, r->attributes, fields, err);
  if (st != QV_OK)
    return st;
  o->n_attrs = r->n_attributes;
  o->attrs = r->n_attributes ? fields : NULL;
  return QV_OK;
}

qv_status qv__h_create(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                       grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__CreateCollectionRequest *r = (const Quiver__V1__CreateCollectionRequest *)m;
  qv_status st = qv__name_check(r->name, err);
  if (st != QV_OK)
    return st;
  if (r->shards > 1 || r->replicas > 1)
    return qv_error_set(err, QV_EINVAL,
                        "shards = %u, replicas = %u: this is a single node; a collection split "
                        "into shards or replicated needs a fleet (send it to a router: "
                        "docs/cluster.md)",
                        r->shards, r->replicas);
  qv_collection_opts o;
  qv_attr_field fields[QV_MAX_ATTRS];
  if ((st = qv__create_opts_from(s, r, &o, fields, err)) != QV_OK)
    return st;
  qv__entry *e;
  if ((st = qv__registry_create(s->reg, r->name, &o, &e, err)) != QV_OK)
    return st;
  Quiver__V1__CollectionInfo info;
  char spec[INFO_BUF];
  qv__fill_info(e, &info, spec);
  *resp = qv__wire_pack(&info.base);
  QV_LOG_I("CreateCollection collection=%s dim=%zu metric=%s spec=%s device=%s attributes=%zu (%s)",
           qv__entry_name(e), o.dim, qv_metric_name(o.metric), spec, qv_device_name(o.device),
           o.n_attrs, info.placement);
  qv__registry_put(s->reg, e);
  return QV_OK;
}

qv_status qv__h_drop(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                     grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DropCollectionRequest *r = (const Quiver__V1__DropCollectionRequest *)m;
  qv_status st = qv__registry_drop(s->reg, r->name, err);
  if (st != QV_OK)
    return st;
  QV_LOG_I("DropCollection collection=%s", r->name);
  Quiver__V1__DropCollectionResponse out = QUIVER__V1__DROP_COLLECTION_RESPONSE__INIT;
  *resp = qv__wire_pack(&out.base);
  return QV_OK;
}

qv_status qv__h_describe(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                         grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DescribeCollectionRequest *r = (const Quiver__V1__DescribeCollectionRequest *)m;
  qv__entry *e;
  qv_status st = qv__registry_get(s->reg, r->name, &e, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__CollectionInfo info;
  char spec[INFO_BUF];
  qv__fill_info(e, &info, spec);
  *resp = qv__wire_pack(&info.base);
  qv__registry_put(s->reg, e);
  return QV_OK;
}

qv_status qv__h_list(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                     grpc_byte_buffer **resp, qv_error *err) {
  (void)unused, (void)m;
  qv__entry **es;
  size_t n;
  qv_status st = qv__registry_list(s->reg, &es, &n, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__CollectionInfo *infos = calloc(n ? n : 1, sizeof *infos);
  Quiver__V1__CollectionInfo **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  char(*specs)[INFO_BUF] = calloc(n ? n : 1, INFO_BUF);
  if (!infos || !ptrs || !specs) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory listing %zu collections", n);
  } else {
    for (size_t i = 0; i < n; i++) {
      qv__fill_info(es[i], &infos[i], specs[i]);
      ptrs[i] = &infos[i];
    }
    Quiver__V1__ListCollectionsResponse out = QUIVER__V1__LIST_COLLECTIONS_RESPONSE__INIT;
    out.n_collections = n;
    out.collections = ptrs;
    *resp = qv__wire_pack(&out.base);
  }
  for (size_t i = 0; i < n; i++)
    qv__registry_put(s->reg, es[i]);
  free(es);
  free(infos);
  free(ptrs);
  free(specs);
  return st;
}

qv_status qv__h_delete(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                       grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DeleteRequest *r = (const Quiver__V1__DeleteRequest *)m;
  qv__entry *e;
  qv_status st = qv__registry_get(s->reg, r->collection, &e, err);
  if (st != QV_OK)
    return st;
  size_t deleted = 0;
  qv__entry_write_begin(e);
  st = qv_collection_delete(qv__entry_col(e), r->n_ids, r->ids, &deleted, err);
  if (st == QV_OK)
    qv__slot_write(e, r->n_ids, r->ids, NULL, NULL, NULL, 0);
  qv__entry_write_end(e);
  /* The delete is in the write-ahead log (synced per --wal-sync) before it returned. */
  if (st == QV_OK && deleted > 0)
    st = qv__entry_wrote(s->reg, e, err);
  if (st == QV_OK) {
    qv_collection_stats cs;
    qv_collection_stats_get(qv__entry_col(e), &cs, NULL);
    Quiver__V1__DeleteResponse out = QUIVER__V1__DELETE_RESPONSE__INIT;
    out.deleted = deleted;
    out.count = cs.count;
    *resp = qv__wire_pack(&out.base);
  }
  qv__registry_put(s->reg, e);
  return st;
}

qv_status qv__h_health(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                       grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Grpc__Health__V1__HealthCheckRequest *r = (const Grpc__Health__V1__HealthCheckRequest *)m;
  if (!qv__health_known(r->service))
    return qv_error_set(err, QV_ENOTFOUND, "unknown service '%.100s'", r->service);
  Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  out.status = qv__health_serving(s)
                   ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  *resp = qv__wire_pack(&out.base);
  return QV_OK;
}
