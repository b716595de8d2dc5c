/* libquiver_client: synchronous calls over gRPC's C core, one completion queue per call. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "channel.h"
#include "grpc/health/v1/health.pb-c.h"
#include "quiver/client.h"
#include "quiver/dirformat.h"
#include "quiver/fsutil.h"
#include "quiver/v1/retrieval.pb-c.h"
#include "quiver_wire.h"
#include "rpc_call.h"

struct qv_client {
  qv__rpc_peer peer;   /* the channel, its deadline, wait-for-ready, metadata (md) */
  grpc_metadata md[1]; /* authorization, when a token is set */
};

void qv_client_opts_init(qv_client_opts *o) {
  memset(o, 0, sizeof *o);
  o->target = "127.0.0.1:7070";
  o->timeout_ms = 30000;
  o->wait_for_ready = 0;
}

/* A whole PEM file (NUL-terminated), or NULL with err set. */
static char *read_pem(const char *path, const char *what, qv_error *err) {
  char *text = NULL;
  size_t len = 0;
  if (qv_file_read_all(path, 1 << 20, &text, &len, err) != QV_OK) {
    qv_error_set(err, QV_EINVAL, "%s %s cannot be read (a PEM file is expected)", what, path);
    return NULL;
  }
  return text; /* qv_file_read_all NUL-terminates */
}

grpc_channel_credentials *qv__client_creds(const qv_client_opts *o, qv_error *err) {
  if (o->tls_ca == NULL || o->tls_ca[0] == '\0') {
    if ((o->tls_cert && o->tls_cert[0]) || (o->tls_key && o->tls_key[0])) {
      qv_error_set(err, QV_EINVAL, "a client certificate needs TLS: give the server's CA too");
      return NULL;
    }
    return grpc_insecure_credentials_create();
  }
  if ((o->tls_cert && o->tls_cert[0]) != (o->tls_key && o->tls_key[0])) {
    qv_error_set(err, QV_EINVAL, "a client certificate and its key go together: give both");
    return NULL;
  }
  char *ca = read_pem(o->tls_ca, "TLS CA", err), *cert = NULL, *key = NULL;
  if (ca == NULL)
    return NULL;
  grpc_channel_credentials *cr = NULL;
  if (o->tls_cert && o->tls_cert[0]) {
    cert = read_pem(o->tls_cert, "TLS certificate", err);
    key = cert ? read_pem(o->tls_key, "TLS key", err) : NULL;
    if (key != NULL) {
      grpc_ssl_pem_key_cert_pair pair = {key, cert};
      cr = grpc_ssl_credentials_create(ca, &pair, NULL, NULL);
    }
  } else {
    cr = grpc_ssl_credentials_create(ca, NULL, NULL, NULL);
  }
  free(ca);
  free(cert);
  free(key);
  return cr;
}

void qv__client_md(const char *token, grpc_metadata *md, size_t *n) {
  *n = 0;
  if (token == NULL || token[0] == '\0')
    return;
  char *v = malloc(strlen(token) + 8);
  if (v == NULL)
    return;
  memcpy(v, "Bearer ", 7);
  memcpy(v + 7, token, strlen(token) + 1);
  memset(md, 0, sizeof *md);
  md->key = grpc_slice_from_static_string("authorization");
  md->value = grpc_slice_from_copied_string(v);
  free(v);
  *n = 1;
}

void qv__client_md_free(grpc_metadata *md, size_t n) {
  for (size_t i = 0; i < n; i++) {
    grpc_slice_unref(md[i].key);
    grpc_slice_unref(md[i].value);
  }
}

qv_status qv_client_connect(qv_client **out, const qv_client_opts *o, qv_error *err) {
  if (out == NULL)
    return qv_error_set(err, QV_EINVAL, "connect: out is NULL");
  *out = NULL;
  qv_client_opts def;
  qv_client_opts_init(&def);
  if (o == NULL)
    o = &def;
  const char *target = o->target && *o->target ? o->target : def.target;
  qv_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return qv_error_set(err, QV_ENOMEM, "connect: out of memory");
  grpc_init();
  grpc_arg args[2];
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = -1; /* answers can be large: n * k results */
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = -1; /* the server enforces its own limit, with a clear status */
  grpc_channel_args ca = {2, args};
  grpc_channel_credentials *creds = qv__client_creds(o, err);
  if (creds == NULL) {
    free(c);
    grpc_shutdown();
    return err ? err->code : QV_EINVAL;
  }
  c->peer.ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  qv__client_md(o->token, c->md, &c->peer.n_md);
  c->peer.md = c->md;
  if (c->peer.ch == NULL) {
    free(c);
    grpc_shutdown();
    return qv_error_set(err, QV_EINVAL, "connect: cannot create a channel to '%s'", target);
  }
  c->peer.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : def.timeout_ms;
  c->peer.wait_for_ready = o->wait_for_ready;
  *out = c;
  return QV_OK;
}

void qv_client_close(qv_client *c) {
  if (c == NULL)
    return;
  qv__client_md_free(c->md, c->peer.n_md);
  grpc_channel_destroy(c->peer.ch);
  free(c);
  grpc_shutdown();
}

/* ---- one call: proto/glue/rpc_call.h ---------------------------------------------------- */

typedef qv__rpc call;

static qv_status unary(qv_client *c, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp,
                       qv_error *err) {
  return qv__rpc_unary(&c->peer, method, 0, req, rd, resp, err);
}

/* ---- collections ------------------------------------------------------------------------ */

static void version_from_pb(const Quiver__V1__VersionInfo *p, qv_version_info *o) {
  memset(o, 0, sizeof *o);
  o->version = p->version;
  snprintf(o->state, sizeof o->state, "%s", p->state ? p->state : "");
  o->count = p->count;
  o->memory_bytes = p->memory_bytes;
  o->recall = p->recall;
  o->recall_k = p->recall_k;
  o->recall_nprobe = p->recall_nprobe;
}

/* ---- attributes ------------------------------------------------------------------------- */

static const char *const kAttrTypeNames[] = {NULL, "int64", "float", "bool", "keyword", "tags"};

const char *qv_client_attr_type_name(qv_client_attr_type t) {
  return (int)t >= QV_CLIENT_ATTR_INT64 && (int)t <= QV_CLIENT_ATTR_TAGS ? kAttrTypeNames[t] : NULL;
}

qv_status qv_client_attr_type_parse(const char *s, qv_client_attr_type *out, qv_error *err) {
  for (int t = QV_CLIENT_ATTR_INT64; s != NULL && t <= QV_CLIENT_ATTR_TAGS; t++)
    if (!strcmp(s, kAttrTypeNames[t])) {
      *out = (qv_client_attr_type)t;
      return QV_OK;
    }
  return qv_error_set(err, QV_EINVAL,
                      "unknown attribute type '%s': use int64, float, bool, keyword or tags",
                      s ? s : "(null)");
}

static const char *const kFilterPathNames[] = {"auto", "exact", "index"};

const char *qv_client_filter_path_name(qv_client_filter_path p) {
  return (int)p >= QV_CLIENT_FILTER_AUTO && (int)p <= QV_CLIENT_FILTER_INDEX ? kFilterPathNames[p]
                                                                             : NULL;
}

qv_status qv_client_filter_path_parse(const char *s, qv_client_filter_path *out, qv_error *err) {
  for (int p = QV_CLIENT_FILTER_AUTO; s != NULL && p <= QV_CLIENT_FILTER_INDEX; p++)
    if (!strcmp(s, kFilterPathNames[p])) {
      *out = (qv_client_filter_path)p;
      return QV_OK;
    }
  return qv_error_set(err, QV_EINVAL, "unknown filter path '%s': use auto, exact or index",
                      s ? s : "(null)");
}

/* The wire's AttributeType for ours (the values are the same; 0 for an unknown one). */
static Quiver__V1__AttributeType attr_type_to_pb(qv_client_attr_type t) {
  return qv_client_attr_type_name(t) ? (Quiver__V1__AttributeType)t
                                     : QUIVER__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_UNSPECIFIED;
}

static void info_from_pb(const Quiver__V1__CollectionInfo *p, qv_collection_info *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->name, sizeof o->name, "%s", p->name ? p->name : "");
  o->dim = p->dim;
  if (qv__metric_from_pb(p->metric, &o->metric) != 0)
    o->metric = QV_METRIC_L2;
  snprintf(o->index_spec, sizeof o->index_spec, "%s", p->index_spec ? p->index_spec : "");
  o->state = (int)p->state;
  o->default_nprobe = p->default_nprobe;
  o->default_ef_search = p->default_ef_search;
  o->count = p->count;
  o->indexed = p->indexed;
  o->nlist = p->nlist;
  o->memory_bytes = p->memory_bytes;
  o->vector_bytes = p->vector_bytes;
  o->index_bytes = p->index_bytes;
  o->index_version = p->index_version;
  o->n_features = p->n_features;
  if (qv__device_from_pb(p->device, QV_DEVICE_AUTO, &o->device) != 0)
    o->device = QV_DEVICE_AUTO;
  o->gpu = p->gpu;
  o->device_bytes = p->device_bytes;
  o->tombstones = p->tombstones;
  o->gpu_fallbacks = p->gpu_fallbacks;
  snprintf(o->placement, sizeof o->placement, "%s", p->placement ? p->placement : "");
  o->deferred_deletes = p->deferred_deletes;
  o->build_recall = p->build_recall;
  o->build_recall_k = p->build_recall_k;
  o->build_recall_nprobe = p->build_recall_nprobe;
  o->snapshot_version = p->snapshot_version;
  snprintf(o->storage_note, sizeof o->storage_note, "%s", p->storage_note ? p->storage_note : "");
  o->wal_bytes = p->wal_bytes;
  o->wal_records = p->wal_records;
  o->batched_requests = p->batched_requests;
  o->batches = p->batches;
  o->batched_queries = p->batched_queries;
  o->batch_expired = p->batch_expired;
  o->shards = p->shards ? p->shards : 1; /* a single node leaves them 0: one shard, one copy */
  o->replicas = p->replicas ? p->replicas : 1;
  o->version = p->version;
  if (p->n_versions > 0)
    version_from_pb(p->versions[0], &o->beside);
  for (size_t i = 0; i < p->n_attributes && o->n_attrs < QV_CLIENT_MAX_ATTRS; i++) {
    qv_client_attr_field *f = &o->attrs[o->n_attrs++];
    snprintf(f->name, sizeof f->name, "%s", p->attributes[i]->name ? p->attributes[i]->name : "");
    f->type = (qv_client_attr_type)p->attributes[i]->type;
  }
  o->attribute_bytes = p->attribute_bytes;
}

const char *qv_collection_state_name(int state) {
  switch (state) {
  case QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_NOT_BUILT:
    return "not built";
  case QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_READY:
    return "ready";
  case QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_BUILDING:
    return "building";
  default:
    return "unknown";
  }
}

#define CHECK_CLIENT(c, name)                                                                      \
  do {                                                                                             \
    if ((c) == NULL || (name) == NULL)                                                             \
      return qv_error_set(err, QV_EINVAL, "client or collection name is NULL");                    \
  } while (0)

qv_status qv_client_create(qv_client *c, const qv_create_opts *o, qv_collection_info *info,
                           qv_error *err) {
  if (c == NULL || o == NULL || o->name == NULL)
    return qv_error_set(err, QV_EINVAL, "create: client, options or name is NULL");
  Quiver__V1__CreateCollectionRequest req = QUIVER__V1__CREATE_COLLECTION_REQUEST__INIT;
  req.name = (char *)o->name;
  req.dim = o->dim;
  req.metric = qv__metric_to_pb(o->metric);
  req.index_spec = (char *)(o->index_spec ? o->index_spec : "");
  req.default_nprobe = o->default_nprobe;
  req.default_ef_search = o->default_ef_search;
  req.train_sample = o->train_sample;
  req.n_features = o->n_features;
  req.deferred_deletes = o->deferred_deletes != 0;
  req.shards = o->shards;
  req.replicas = o->replicas;
  if (o->device != NULL) {
    qv_device d;
    qv_status st = qv_device_parse(o->device, &d, err);
    if (st != QV_OK)
      return qv_error_prefix(err, st, "create");
    req.device = qv__device_to_pb(d);
  }
  const size_t na = o->attrs != NULL ? o->n_attrs : 0;
  if (na > QV_CLIENT_MAX_ATTRS)
    return qv_error_set(err, QV_EINVAL,
                        "INVALID_ARGUMENT: create: %zu attributes; at most %d are allowed", na,
                        QV_CLIENT_MAX_ATTRS);
  Quiver__V1__AttributeField fields[QV_CLIENT_MAX_ATTRS], *fp[QV_CLIENT_MAX_ATTRS];
  for (size_t i = 0; i < na; i++) {
    Quiver__V1__AttributeField f = QUIVER__V1__ATTRIBUTE_FIELD__INIT;
    fields[i] = f;
    fields[i].name = (char *)o->attrs[i].name;
    fields[i].type = attr_type_to_pb(o->attrs[i].type); /* the server names an unknown one */
    fp[i] = &fields[i];
  }
  req.n_attributes = na;
  req.attributes = na ? fp : NULL;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/CreateCollection", &req.base,
                       &quiver__v1__collection_info__descriptor, &resp, err);
  if (st == QV_OK) {
    if (info)
      info_from_pb((Quiver__V1__CollectionInfo *)resp, info);
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  return st;
}

qv_status qv_client_drop(qv_client *c, const char *name, qv_error *err) {
  CHECK_CLIENT(c, name);
  Quiver__V1__DropCollectionRequest req = QUIVER__V1__DROP_COLLECTION_REQUEST__INIT;
  req.name = (char *)name;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/DropCollection", &req.base,
                       &quiver__v1__drop_collection_response__descriptor, &resp, err);
  if (st == QV_OK)
    protobuf_c_message_free_unpacked(resp, NULL);
  return st;
}

qv_status qv_client_describe(qv_client *c, const char *name, qv_collection_info *info,
                             qv_error *err) {
  CHECK_CLIENT(c, name);
  Quiver__V1__DescribeCollectionRequest req = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
  req.name = (char *)name;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/DescribeCollection", &req.base,
                       &quiver__v1__collection_info__descriptor, &resp, err);
  if (st == QV_OK) {
    if (info)
      info_from_pb((Quiver__V1__CollectionInfo *)resp, info);
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  return st;
}

qv_status qv_client_list(qv_client *c, qv_collection_info **out, size_t *n, qv_error *err) {
  if (c == NULL || out == NULL || n == NULL)
    return qv_error_set(err, QV_EINVAL, "list: NULL argument");
  *out = NULL;
  *n = 0;
  Quiver__V1__ListCollectionsRequest req = QUIVER__V1__LIST_COLLECTIONS_REQUEST__INIT;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/ListCollections", &req.base,
                       &quiver__v1__list_collections_response__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__ListCollectionsResponse *r = (Quiver__V1__ListCollectionsResponse *)resp;
  if (r->n_collections > 0) {
    *out = calloc(r->n_collections, sizeof **out);
    if (*out == NULL) {
      protobuf_c_message_free_unpacked(resp, NULL);
      return qv_error_set(err, QV_ENOMEM, "list: out of memory");
    }
    for (size_t i = 0; i < r->n_collections; i++)
      info_from_pb(r->collections[i], &(*out)[i]);
  }
  *n = r->n_collections;
  protobuf_c_message_free_unpacked(resp, NULL);
  return QV_OK;
}

/* ---- the fleet -------------------------------------------------------------------------- */

void qv_cluster_status_free(qv_cluster_status *s) {
  if (s == NULL)
    return;
  free(s->nodes);
  free(s->collections);
  free(s->replicas);
  free(s);
}

/* Fills s from a ListCollections answer; QV_ENOMEM when an array cannot be allocated. */
static qv_status cluster_from_pb(const Quiver__V1__ListCollectionsResponse *r, qv_cluster_status *s,
                                 qv_error *err) {
  size_t nrep = 0;
  for (size_t i = 0; i < r->n_collections; i++)
    nrep += r->collections[i]->n_replica_info;
  /* calloc(0) may return NULL: ask for at least one entry, report the real counts. */
  s->nodes = calloc(r->n_nodes ? r->n_nodes : 1, sizeof *s->nodes);
  s->collections = calloc(r->n_collections ? r->n_collections : 1, sizeof *s->collections);
  s->replicas = calloc(nrep ? nrep : 1, sizeof *s->replicas);
  if (s->nodes == NULL || s->collections == NULL || s->replicas == NULL)
    return qv_error_set(err, QV_ENOMEM, "cluster status: out of memory");
  for (size_t i = 0; i < r->n_nodes; i++) {
    const Quiver__V1__NodeInfo *p = r->nodes[i];
    qv_node_info *o = &s->nodes[i];
    snprintf(o->id, sizeof o->id, "%s", p->id ? p->id : "");
    snprintf(o->addr, sizeof o->addr, "%s", p->addr ? p->addr : "");
    o->replicas = p->replicas;
  }
  s->n_nodes = r->n_nodes;
  for (size_t i = 0; i < r->n_collections; i++) {
    const Quiver__V1__CollectionInfo *p = r->collections[i];
    info_from_pb(p, &s->collections[i]);
    for (size_t j = 0; j < p->n_replica_info; j++) {
      const Quiver__V1__ReplicaInfo *q = p->replica_info[j];
      qv_replica_info *o = &s->replicas[s->n_replicas++];
      o->collection = i;
      o->shard = q->shard;
      snprintf(o->node, sizeof o->node, "%s", q->node ? q->node : "");
      snprintf(o->addr, sizeof o->addr, "%s", q->addr ? q->addr : "");
      snprintf(o->state, sizeof o->state, "%s", q->state ? q->state : "");
      o->applied_seq = q->applied_seq;
      o->log_seq = q->log_seq;
      o->count = q->count;
      o->index_version = q->index_version;
    }
  }
  s->n_collections = r->n_collections;
  return QV_OK;
}

qv_status qv_client_cluster_status(qv_client *c, qv_cluster_status **out, qv_error *err) {
  if (out != NULL)
    *out = NULL;
  if (c == NULL || out == NULL)
    return qv_error_set(err, QV_EINVAL, "cluster status: NULL argument");
  Quiver__V1__ListCollectionsRequest req = QUIVER__V1__LIST_COLLECTIONS_REQUEST__INIT;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/ListCollections", &req.base,
                       &quiver__v1__list_collections_response__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  qv_cluster_status *s = calloc(1, sizeof *s);
  if (s == NULL)
    st = qv_error_set(err, QV_ENOMEM, "cluster status: out of memory");
  else
    st = cluster_from_pb((const Quiver__V1__ListCollectionsResponse *)resp, s, err);
  protobuf_c_message_free_unpacked(resp, NULL);
  if (st != QV_OK) {
    qv_cluster_status_free(s);
    return st;
  }
  *out = s;
  return QV_OK;
}

/* ---- data ------------------------------------------------------------------------------- */

void qv_client_search_opts_init(qv_client_search_opts *o) {
  memset(o, 0, sizeof *o);
}

qv_status qv_client_search_ex(qv_client *c, const char *collection, const float *queries, size_t n,
                              size_t dim, size_t k, const qv_client_search_opts *o, float *scores,
                              int64_t *ids, uint32_t *missing, size_t missing_cap,
                              size_t *n_missing, qv_error *err) {
  if (n_missing)
    *n_missing = 0;
  qv_client_search_opts def;
  qv_client_search_opts_init(&def);
  if (o == NULL)
    o = &def;
  CHECK_CLIENT(c, collection);
  const int by_id = o->query_ids != NULL || o->n_query_ids > 0;
  if (by_id && (o->query_ids == NULL || queries != NULL || n != o->n_query_ids))
    return qv_error_set(err, QV_EINVAL,
                        "search: with query_ids pass queries NULL and n = n_query_ids");
  if ((n > 0 && queries == NULL && !by_id) || scores == NULL || ids == NULL)
    return qv_error_set(err, QV_EINVAL, "search: NULL buffer");
  if (dim > UINT32_MAX || k > UINT32_MAX)
    return qv_error_set(err, QV_EINVAL, "search: dim or k is too large");
  Quiver__V1__SearchRequest req = QUIVER__V1__SEARCH_REQUEST__INIT;
  req.collection = (char *)collection;
  req.queries = (float *)queries;
  req.n_queries = n * dim;
  req.dim = (uint32_t)dim;
  req.k = (uint32_t)k;
  req.nprobe = o->nprobe;
  req.ef_search = o->ef_search;
  req.exact = o->exact != 0;
  req.allow_partial = o->allow_partial != 0;
  req.version = o->version;
  if (o->filter != NULL)
    req.filter = (char *)o->filter;
  req.filter_path = (Quiver__V1__FilterPath)o->filter_path; /* the server refuses an unknown one */
  if (by_id) {
    req.queries = NULL;
    req.n_queries = 0;
    req.query_ids = (int64_t *)o->query_ids;
    req.n_query_ids = o->n_query_ids;
    req.include_self = o->include_self != 0;
  }
  Quiver__V1__RerankOptions ro = QUIVER__V1__RERANK_OPTIONS__INIT;
  const qv_client_rerank *rr = o->rerank;
  if (rr != NULL) {
    ro.candidates = rr->candidates;
    ro.refine = rr->refine != 0;
    ro.weights = (float *)rr->weights;
    ro.n_weights = rr->weights ? rr->n_weights : 0;
    ro.mmr_lambda = rr->mmr_lambda;
    ro.allow_ids = (int64_t *)rr->allow_ids;
    ro.n_allow_ids = rr->allow_ids ? rr->n_allow : 0;
    ro.deny_ids = (int64_t *)rr->deny_ids;
    ro.n_deny_ids = rr->deny_ids ? rr->n_deny : 0;
    req.rerank = &ro;
  }
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/Search", &req.base,
                       &quiver__v1__search_response__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__SearchResponse *r = (Quiver__V1__SearchResponse *)resp;
  if (r->n_ids != n * k || r->n_scores != n * k) {
    st = qv_error_set(err, QV_EINTERNAL, "INTERNAL: answer has %zu results, expected %zu", r->n_ids,
                      n * k);
  } else {
    memcpy(ids, r->ids, n * k * sizeof(int64_t));
    memcpy(scores, r->scores, n * k * sizeof(float));
    for (size_t i = 0; missing != NULL && i < r->n_missing_shards && i < missing_cap; i++)
      missing[i] = r->missing_shards[i];
    if (n_missing)
      *n_missing = r->n_missing_shards;
    if (o->answered_version)
      *o->answered_version = r->version;
    if (o->unknown != NULL) {
      memset(o->unknown, 0, n);
      for (size_t i = 0; i < r->n_unknown_queries; i++)
        if (r->unknown_queries[i] < n)
          o->unknown[r->unknown_queries[i]] = 1;
    }
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return st;
}

/* A copy of n elements of size sz (NULL when n is 0). */
static void *dup_array(const void *p, size_t n, size_t sz, int *oom) {
  if (n == 0)
    return NULL;
  void *q = malloc(n * sz);
  if (q == NULL)
    *oom = 1;
  else
    memcpy(q, p, n * sz);
  return q;
}

void qv_client_items_free(qv_client_items *it) {
  if (it == NULL)
    return;
  free(it->ids);
  free(it->missing_ids);
  free(it->vectors);
  free(it->features);
  for (size_t a = 0; it->attrs != NULL && a < it->n_attrs; a++) {
    qv_client_attr_column *col = &it->attrs[a];
    free((void *)col->name); /* ours: qv_client_get allocated every array of the column */
    free((void *)col->ints);
    free((void *)col->floats);
    free((void *)col->counts);
    free((void *)col->strs); /* one block: the pointers, then the strings they point into */
  }
  free(it->attrs);
  memset(it, 0, sizeof *it);
}

/* The n strings of ss (NULL = "") as one malloc'd block: n pointers, then the bytes they point
 * to. NULL when it cannot be allocated (or n is 0). */
static const char *const *dup_strings(char *const *ss, size_t n, int *oom) {
  if (n == 0)
    return NULL;
  size_t bytes = n * sizeof(char *);
  for (size_t i = 0; i < n; i++)
    bytes += strlen(ss[i] ? ss[i] : "") + 1;
  char **out = malloc(bytes);
  if (out == NULL) {
    *oom = 1;
    return NULL;
  }
  char *at = (char *)(out + n);
  for (size_t i = 0; i < n; i++) {
    const size_t len = strlen(ss[i] ? ss[i] : "") + 1;
    memcpy(at, ss[i] ? ss[i] : "", len);
    out[i] = at;
    at += len;
  }
  return (const char *const *)out;
}

/* Decodes GetResponse.attributes (n rows each) into out->attrs. Returns QV_OK; QV_EINTERNAL for a
 * column whose values do not match the rows (none of its type, or of several); QV_ENOMEM. */
static qv_status attrs_from_pb(const Quiver__V1__GetResponse *r, size_t n, qv_client_items *out,
                               qv_error *err) {
  if (r->n_attributes == 0)
    return QV_OK;
  out->attrs = calloc(r->n_attributes, sizeof *out->attrs);
  if (out->attrs == NULL)
    return qv_error_set(err, QV_ENOMEM, "get: out of memory for the attributes");
  int oom = 0;
  for (size_t a = 0; a < r->n_attributes; a++) {
    const Quiver__V1__AttributeColumn *p = r->attributes[a];
    qv_client_attr_column *col = &out->attrs[out->n_attrs++];
    const char *name = p->name ? p->name : "";
    col->name = dup_array(name, strlen(name) + 1, 1, &oom);
    /* The type is the one list that holds values; with no rows, none does: the schema's type is
     * then unknown here, and the column has no values to read anyway (an INT64 of 0 rows). */
    const int kinds = (p->n_ints > 0) + (p->n_floats > 0) + (p->n_bools > 0) + (p->n_keywords > 0) +
                      (p->n_tags > 0);
    if (kinds > 1 || (n > 0 && kinds == 0))
      return qv_error_set(err, QV_EINTERNAL,
                          "INTERNAL: the answer's attribute '%s' holds values of %d types", name,
                          kinds);
    const size_t got = p->n_floats > 0     ? p->n_floats
                       : p->n_bools > 0    ? p->n_bools
                       : p->n_keywords > 0 ? p->n_keywords
                       : p->n_tags > 0     ? p->n_tags
                                           : p->n_ints;
    if (got != n)
      return qv_error_set(err, QV_EINTERNAL,
                          "INTERNAL: the answer's attribute '%s' has %zu values for %zu ids", name,
                          got, n);
    if (p->n_floats > 0) {
      col->type = QV_CLIENT_ATTR_FLOAT;
      col->floats = dup_array(p->floats, n, sizeof(double), &oom);
    } else if (p->n_bools > 0) {
      col->type = QV_CLIENT_ATTR_BOOL;
      int64_t *v = malloc(n * sizeof *v);
      oom |= v == NULL;
      for (size_t i = 0; v != NULL && i < n; i++)
        v[i] = p->bools[i] != 0;
      col->ints = v;
    } else if (p->n_keywords > 0) {
      col->type = QV_CLIENT_ATTR_KEYWORD;
      col->strs = dup_strings(p->keywords, n, &oom);
    } else if (p->n_tags > 0) {
      col->type = QV_CLIENT_ATTR_TAGS;
      size_t total = 0;
      for (size_t i = 0; i < n; i++)
        total += p->tags[i]->n_tags;
      uint32_t *counts = malloc(n * sizeof *counts);
      char **flat = total > 0 ? malloc(total * sizeof *flat) : NULL;
      oom |= counts == NULL || (total > 0 && flat == NULL);
      size_t at = 0;
      for (size_t i = 0; counts != NULL && i < n; i++) {
        counts[i] = (uint32_t)p->tags[i]->n_tags;
        for (size_t t = 0; flat != NULL && t < p->tags[i]->n_tags; t++)
          flat[at++] = p->tags[i]->tags[t];
      }
      col->counts = counts;
      col->strs = flat ? dup_strings(flat, total, &oom) : NULL;
      free(flat);
    } else {
      col->type = QV_CLIENT_ATTR_INT64;
      col->ints = dup_array(p->ints, n, sizeof(int64_t), &oom);
    }
    if (oom)
      return qv_error_set(err, QV_ENOMEM, "get: out of memory for the attributes");
  }
  return QV_OK;
}

qv_status qv_client_get(qv_client *c, const char *collection, size_t n, const int64_t *ids,
                        unsigned fields, qv_client_items *out, qv_error *err) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  CHECK_CLIENT(c, collection);
  if (out == NULL || (n > 0 && ids == NULL))
    return qv_error_set(err, QV_EINVAL, "get: NULL argument");
  char *names[3];
  size_t nn = 0;
  if (fields & QV_CLIENT_GET_VECTOR)
    names[nn++] = "vector";
  if (fields & QV_CLIENT_GET_FEATURES)
    names[nn++] = "features";
  if (fields & QV_CLIENT_GET_ATTRIBUTES)
    names[nn++] = "attributes";
  Quiver__V1__GetRequest req = QUIVER__V1__GET_REQUEST__INIT;
  req.collection = (char *)collection;
  req.ids = (int64_t *)ids;
  req.n_ids = n;
  req.fields = names;
  req.n_fields = nn;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/Get", &req.base,
                       &quiver__v1__get_response__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__GetResponse *r = (Quiver__V1__GetResponse *)resp;
  if ((r->n_vectors != 0 && r->n_vectors != r->n_ids * r->dim) ||
      (r->n_features != 0 && r->n_features != r->n_ids * r->num_features)) {
    st = qv_error_set(err, QV_EINTERNAL, "INTERNAL: the answer's rows do not match its ids");
  } else {
    int oom = 0;
    out->n = r->n_ids;
    out->ids = dup_array(r->ids, r->n_ids, sizeof *r->ids, &oom);
    out->n_missing = r->n_missing_ids;
    out->missing_ids = dup_array(r->missing_ids, r->n_missing_ids, sizeof *r->missing_ids, &oom);
    out->dim = r->dim;
    out->vectors = dup_array(r->vectors, r->n_vectors, sizeof *r->vectors, &oom);
    out->n_features = r->num_features;
    out->features = dup_array(r->features, r->n_features, sizeof *r->features, &oom);
    if (oom)
      st = qv_error_set(err, QV_ENOMEM, "get: out of memory for the answer");
    else
      st = attrs_from_pb(r, r->n_ids, out, err);
    if (st != QV_OK)
      qv_client_items_free(out);
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return st;
}

qv_status qv_client_search(qv_client *c, const char *collection, const float *queries, size_t n,
                           size_t dim, size_t k, uint32_t nprobe, int exact, float *scores,
                           int64_t *ids, qv_error *err) {
  qv_client_search_opts o;
  qv_client_search_opts_init(&o);
  o.nprobe = nprobe;
  o.exact = exact;
  return qv_client_search_ex(c, collection, queries, n, dim, k, &o, scores, ids, NULL, 0, NULL,
                             err);
}

qv_status qv_client_search_rerank(qv_client *c, const char *collection, const float *queries,
                                  size_t n, size_t dim, size_t k, uint32_t nprobe,
                                  const qv_client_rerank *rr, float *scores, int64_t *ids,
                                  qv_error *err) {
  qv_client_search_opts o;
  qv_client_search_opts_init(&o);
  o.nprobe = nprobe;
  o.rerank = rr;
  return qv_client_search_ex(c, collection, queries, n, dim, k, &o, scores, ids, NULL, 0, NULL,
                             err);
}

qv_status qv_client_delete(qv_client *c, const char *collection, size_t n, const int64_t *ids,
                           uint64_t *deleted, uint64_t *count_after, qv_error *err) {
  CHECK_CLIENT(c, collection);
  if (n > 0 && ids == NULL)
    return qv_error_set(err, QV_EINVAL, "delete: ids are NULL");
  Quiver__V1__DeleteRequest req = QUIVER__V1__DELETE_REQUEST__INIT;
  req.collection = (char *)collection;
  req.ids = (int64_t *)ids;
  req.n_ids = n;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/Delete", &req.base,
                       &quiver__v1__delete_response__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__DeleteResponse *r = (Quiver__V1__DeleteResponse *)resp;
  if (deleted)
    *deleted = r->deleted;
  if (count_after)
    *count_after = r->count;
  protobuf_c_message_free_unpacked(resp, NULL);
  return QV_OK;
}

qv_status qv_client_upsert(qv_client *c, const char *collection, size_t n, size_t dim,
                           const int64_t *ids, const float *vectors, size_t chunk_bytes,
                           qv_client_progress_fn progress, void *user, uint64_t *count_after,
                           qv_error *err) {
  return qv_client_upsert_features(c, collection, n, dim, ids, vectors, NULL, 0, chunk_bytes,
                                   progress, user, count_after, err);
}

/* Ends a client-streaming call: closes our side, then reads the answer and the status. Whatever
 * happened before (a server error mid-stream makes our sends fail), the status says why. On
 * QV_OK *out holds the decoded answer (free with protobuf_c_message_free_unpacked). */
static qv_status stream_finish(call *k, const ProtobufCMessageDescriptor *desc, const char *what,
                               ProtobufCMessage **out, qv_error *err) {
  *out = NULL;
  grpc_byte_buffer *recv = NULL;
  grpc_op fin[4] = {qv__op_close(), qv__op_recv_initial(k), qv__op_recv(&recv),
                    qv__op_recv_status(k)};
  qv_status st;
  if (!qv__rpc_batch(k, fin, 4) &&
      !qv__rpc_batch(k, fin + 1, 3)) /* the close fails once the call has ended */
    st = qv_error_set(err, QV_EINTERNAL, "%s call failed to complete", what);
  else if ((st = qv__rpc_status(k, err)) == QV_OK &&
           (*out = recv ? qv__rpc_unpack(recv, desc) : NULL) == NULL)
    st = qv_error_set(err, QV_EINTERNAL, "INTERNAL: undecodable %s answer", what);
  if (recv)
    grpc_byte_buffer_destroy(recv);
  return st;
}

qv_status qv_client_upsert_features(qv_client *c, const char *collection, size_t n, size_t dim,
                                    const int64_t *ids, const float *vectors, const float *features,
                                    size_t n_features, size_t chunk_bytes,
                                    qv_client_progress_fn progress, void *user,
                                    uint64_t *count_after, qv_error *err) {
  qv_client_upsert_opts o;
  qv_client_upsert_opts_init(&o);
  o.features = features;
  o.n_features = n_features;
  o.chunk_bytes = chunk_bytes;
  o.progress = progress;
  o.user = user;
  return qv_client_upsert_ex(c, collection, n, dim, ids, vectors, &o, count_after, err);
}

void qv_client_upsert_opts_init(qv_client_upsert_opts *o) {
  memset(o, 0, sizeof *o);
}

/* An upsert's attribute column as the stream splits it: for TAGS, where each row's tags start in
 * strs (n + 1 offsets). */
typedef struct up_col {
  const qv_client_attr_column *col;
  uint64_t *tag_at;
} up_col;

/* Checks the columns of an upsert of n rows and fills uc (tag offsets allocated); *bytes gets
 * about what their values take on the wire. QV_OK, QV_EINVAL, QV_ENOMEM. */
static qv_status up_cols_init(const qv_client_attr_column *cols, size_t na, size_t n, up_col *uc,
                              uint64_t *bytes, qv_error *err) {
  *bytes = 0;
  for (size_t a = 0; a < na; a++) {
    const qv_client_attr_column *col = &cols[a];
    uc[a].col = col;
    if (col->name == NULL || col->name[0] == '\0')
      return qv_error_set(err, QV_EINVAL,
                          "INVALID_ARGUMENT: upsert: attribute column %zu has no "
                          "name",
                          a);
    const char *t = qv_client_attr_type_name(col->type);
    if (t == NULL)
      return qv_error_set(err, QV_EINVAL,
                          "INVALID_ARGUMENT: upsert: attribute column '%s' has type %d: use "
                          "QV_CLIENT_ATTR_INT64 .. QV_CLIENT_ATTR_TAGS",
                          col->name, (int)col->type);
    const int null =
        n > 0 && (((col->type == QV_CLIENT_ATTR_INT64 || col->type == QV_CLIENT_ATTR_BOOL) &&
                   col->ints == NULL) ||
                  (col->type == QV_CLIENT_ATTR_FLOAT && col->floats == NULL) ||
                  (col->type == QV_CLIENT_ATTR_KEYWORD && col->strs == NULL) ||
                  (col->type == QV_CLIENT_ATTR_TAGS && col->counts == NULL));
    if (null)
      return qv_error_set(err, QV_EINVAL,
                          "INVALID_ARGUMENT: upsert: attribute column '%s' (%s) has no values "
                          "(%s is NULL)",
                          col->name, t,
                          col->type == QV_CLIENT_ATTR_FLOAT     ? "floats"
                          : col->type == QV_CLIENT_ATTR_KEYWORD ? "strs"
                          : col->type == QV_CLIENT_ATTR_TAGS    ? "counts"
                                                                : "ints");
    switch (col->type) {
    case QV_CLIENT_ATTR_INT64:
      *bytes += 10 * (uint64_t)n;
      break;
    case QV_CLIENT_ATTR_FLOAT:
      *bytes += 8 * (uint64_t)n;
      break;
    case QV_CLIENT_ATTR_BOOL:
      *bytes += (uint64_t)n;
      break;
    case QV_CLIENT_ATTR_KEYWORD:
      for (size_t i = 0; i < n; i++)
        *bytes += 2 + strlen(col->strs[i] ? col->strs[i] : "");
      break;
    case QV_CLIENT_ATTR_TAGS:
      if ((uc[a].tag_at = malloc((n + 1) * sizeof *uc[a].tag_at)) == NULL)
        return qv_error_set(err, QV_ENOMEM, "upsert: out of memory");
      uc[a].tag_at[0] = 0;
      for (size_t i = 0; i < n; i++)
        uc[a].tag_at[i + 1] = uc[a].tag_at[i] + col->counts[i];
      if (uc[a].tag_at[n] > 0 && col->strs == NULL)
        return qv_error_set(err, QV_EINVAL,
                            "INVALID_ARGUMENT: upsert: attribute column '%s' (tags) counts %" PRIu64
                            " tags but strs is NULL",
                            col->name, uc[a].tag_at[n]);
      *bytes += 4 * (uint64_t)n;
      for (uint64_t i = 0; i < uc[a].tag_at[n]; i++)
        *bytes += 2 + strlen(col->strs[i] ? col->strs[i] : "");
      break;
    }
  }
  return QV_OK;
}

/* The wire column of rows [off, off + m) of u: *p set; *mem gets what it allocated (BOOL, KEYWORD,
 * TAGS: one block to free after the message is sent). QV_OK or QV_ENOMEM. */
static qv_status up_col_slice(const up_col *u, size_t off, size_t m, Quiver__V1__AttributeColumn *p,
                              void **mem, qv_error *err) {
  const qv_client_attr_column *col = u->col;
  Quiver__V1__AttributeColumn z = QUIVER__V1__ATTRIBUTE_COLUMN__INIT;
  *p = z;
  *mem = NULL;
  p->name = (char *)col->name;
  if (m == 0)
    return QV_OK;
  switch (col->type) {
  case QV_CLIENT_ATTR_INT64:
    p->ints = (int64_t *)(col->ints + off);
    p->n_ints = m;
    return QV_OK;
  case QV_CLIENT_ATTR_FLOAT:
    p->floats = (double *)(col->floats + off);
    p->n_floats = m;
    return QV_OK;
  case QV_CLIENT_ATTR_BOOL: {
    protobuf_c_boolean *v = malloc(m * sizeof *v);
    if ((*mem = v) == NULL)
      break;
    for (size_t i = 0; i < m; i++)
      v[i] = col->ints[off + i] != 0;
    p->bools = v;
    p->n_bools = m;
    return QV_OK;
  }
  case QV_CLIENT_ATTR_KEYWORD: {
    char **v = malloc(m * sizeof *v);
    if ((*mem = v) == NULL)
      break;
    for (size_t i = 0; i < m; i++)
      v[i] = (char *)(col->strs[off + i] ? col->strs[off + i] : "");
    p->keywords = v;
    p->n_keywords = m;
    return QV_OK;
  }
  case QV_CLIENT_ATTR_TAGS: {
    const uint64_t t0 = u->tag_at[off], nt = u->tag_at[off + m] - t0;
    Quiver__V1__TagList *lists = malloc(m * (sizeof *lists + sizeof(void *)) + nt * sizeof(char *));
    if ((*mem = lists) == NULL)
      break;
    Quiver__V1__TagList **lp = (Quiver__V1__TagList **)(lists + m);
    char **tags = (char **)(lp + m);
    for (uint64_t i = 0; i < nt; i++)
      tags[i] = (char *)(col->strs[t0 + i] ? col->strs[t0 + i] : "");
    for (size_t i = 0; i < m; i++) {
      Quiver__V1__TagList tl = QUIVER__V1__TAG_LIST__INIT;
      lists[i] = tl;
      lists[i].n_tags = col->counts[off + i];
      lists[i].tags = col->counts[off + i] ? tags + (u->tag_at[off + i] - t0) : NULL;
      lp[i] = &lists[i];
    }
    p->tags = lp;
    p->n_tags = m;
    return QV_OK;
  }
  }
  return qv_error_set(err, QV_ENOMEM, "upsert: out of memory");
}

qv_status qv_client_upsert_ex(qv_client *c, const char *collection, size_t n, size_t dim,
                              const int64_t *ids, const float *vectors,
                              const qv_client_upsert_opts *o, uint64_t *count_after,
                              qv_error *err) {
  CHECK_CLIENT(c, collection);
  qv_client_upsert_opts def;
  qv_client_upsert_opts_init(&def);
  if (o == NULL)
    o = &def;
  const float *features = o->features;
  const size_t n_features = features ? o->n_features : 0;
  const size_t na = o->attrs ? o->n_attrs : 0;
  if (n > 0 && (ids == NULL || vectors == NULL || dim == 0))
    return qv_error_set(err, QV_EINVAL, "upsert: NULL ids/vectors or zero dimension");
  if (na > QV_CLIENT_MAX_ATTRS)
    return qv_error_set(err, QV_EINVAL,
                        "INVALID_ARGUMENT: upsert: %zu attribute columns; a collection has at "
                        "most %d attributes",
                        na, QV_CLIENT_MAX_ATTRS);
  up_col uc[QV_CLIENT_MAX_ATTRS];
  memset(uc, 0, sizeof uc);
  uint64_t attr_bytes = 0;
  qv_status st = up_cols_init(o->attrs, na, n, uc, &attr_bytes, err);
  size_t chunk_bytes = o->chunk_bytes ? o->chunk_bytes : (size_t)4 << 20;
  size_t row_bytes =
      (dim + n_features) * sizeof(float) + sizeof(int64_t) + (n > 0 ? (size_t)(attr_bytes / n) : 0);
  size_t rows = chunk_bytes / (row_bytes ? row_bytes : 1);
  if (rows == 0)
    rows = 1;
  call k;
  int ok = 0, cancelled = 0;
  if (st == QV_OK &&
      qv__rpc_stream_open(&k, &c->peer, "/quiver.v1.Retrieval/Upsert", 0, &ok, err) != QV_OK)
    st = QV_EINTERNAL;
  if (st != QV_OK) {
    for (size_t a = 0; a < na; a++)
      free(uc[a].tag_at);
    return st;
  }
  size_t off = 0;
  do { /* at least one message, so that an empty upsert still names its collection */
    size_t m = n - off < rows ? n - off : rows;
    Quiver__V1__UpsertRequest req = QUIVER__V1__UPSERT_REQUEST__INIT;
    req.collection = (char *)(off == 0 ? collection : "");
    req.ids = (int64_t *)(ids + off);
    req.n_ids = m;
    req.vectors = (float *)(vectors + off * dim);
    req.n_vectors = m * dim;
    req.features = features ? (float *)(features + off * n_features) : NULL;
    req.n_features = m * n_features;
    Quiver__V1__AttributeColumn cols[QV_CLIENT_MAX_ATTRS], *cp[QV_CLIENT_MAX_ATTRS];
    void *mem[QV_CLIENT_MAX_ATTRS] = {0};
    for (size_t a = 0; a < na && st == QV_OK; a++) {
      st = up_col_slice(&uc[a], off, m, &cols[a], &mem[a], err);
      cp[a] = &cols[a];
    }
    req.attributes = na ? cp : NULL;
    req.n_attributes = na;
    ok = ok && st == QV_OK && qv__rpc_send(&k, &req.base);
    for (size_t a = 0; a < na; a++)
      free(mem[a]);
    off += m;
    if (ok && o->progress && o->progress(o->user, "upload", off, n) != 0) {
      grpc_call_cancel(k.call, NULL);
      cancelled = 1;
      break;
    }
  } while (ok && off < n);
  for (size_t a = 0; a < na; a++)
    free(uc[a].tag_at);
  if (st != QV_OK) { /* out of memory for a message: end the call with nothing applied */
    grpc_call_cancel(k.call, NULL);
    ProtobufCMessage *ans;
    stream_finish(&k, &quiver__v1__upsert_response__descriptor, "upsert", &ans, NULL);
    if (ans)
      protobuf_c_message_free_unpacked(ans, NULL);
    qv__rpc_end(&k);
    return st;
  }
  ProtobufCMessage *ans;
  st = stream_finish(&k, &quiver__v1__upsert_response__descriptor, "upsert", &ans, err);
  if (st == QV_OK) {
    if (count_after)
      *count_after = ((Quiver__V1__UpsertResponse *)ans)->count;
    protobuf_c_message_free_unpacked(ans, NULL);
  }
  if (cancelled && st == QV_ECANCELLED)
    qv_error_set(err, QV_ECANCELLED, "CANCELLED: upsert cancelled by the caller");
  qv__rpc_end(&k);
  return st;
}

qv_status qv_client_build(qv_client *c, const char *collection, int64_t timeout_ms,
                          qv_client_progress_fn progress, void *user, qv_collection_info *info,
                          qv_error *err) {
  return qv_client_build_ex(c, collection, NULL, timeout_ms, progress, user, info, NULL, err);
}

qv_status qv_client_build_ex(qv_client *c, const char *collection, const qv_client_build_opts *o,
                             int64_t timeout_ms, qv_client_progress_fn progress, void *user,
                             qv_collection_info *info, qv_client_build_result *res, qv_error *err) {
  CHECK_CLIENT(c, collection);
  if (res) {
    memset(res, 0, sizeof *res);
    res->recall = -1;
  }
  call k;
  if (!qv__rpc_start(&k, &c->peer, "/quiver.v1.Retrieval/BuildIndex", timeout_ms)) {
    qv__rpc_end(&k);
    return qv_error_set(err, QV_EINTERNAL, "cannot start the build call");
  }
  Quiver__V1__BuildIndexRequest req = QUIVER__V1__BUILD_INDEX_REQUEST__INIT;
  req.collection = (char *)collection;
  if (o) {
    req.recall_floor = o->recall_floor;
    req.target_recall = o->target_recall;
    req.eval_queries = o->eval_queries;
    req.eval_k = o->eval_k;
  }
  grpc_byte_buffer *send = qv__wire_pack(&req.base);
  grpc_op ops[4] = {qv__op_send_initial(&k), qv__op_send(send), qv__op_close(),
                    qv__op_recv_initial(&k)};
  int ok = qv__rpc_batch(&k, ops, 4);
  grpc_byte_buffer_destroy(send);
  int got_final = 0;
  while (ok) {
    grpc_byte_buffer *recv = NULL;
    grpc_op op = qv__op_recv(&recv);
    if (!qv__rpc_batch(&k, &op, 1) || recv == NULL)
      break;
    Quiver__V1__BuildIndexProgress *p = (Quiver__V1__BuildIndexProgress *)qv__rpc_unpack(
        recv, &quiver__v1__build_index_progress__descriptor);
    grpc_byte_buffer_destroy(recv);
    if (p == NULL)
      break;
    int stop = progress ? progress(user, p->phase ? p->phase : "", p->done, p->total) : 0;
    if (p->finished && p->info) {
      got_final = 1;
      if (info)
        info_from_pb(p->info, info);
      if (res) {
        res->recall = p->recall;
        res->recall_k = p->recall_k;
        res->recall_nprobe = p->recall_nprobe;
        res->tuned_nprobe = p->tuned_nprobe;
        res->caught_up = p->caught_up;
        res->elapsed_seconds = p->elapsed_seconds;
      }
    }
    protobuf_c_message_free_unpacked(&p->base, NULL);
    if (stop) {
      grpc_call_cancel(k.call, NULL);
      break;
    }
  }
  grpc_op st_op = qv__op_recv_status(&k);
  qv_status st;
  if (!qv__rpc_batch(&k, &st_op, 1))
    st = qv_error_set(err, QV_EINTERNAL, "build call failed to complete");
  else if ((st = qv__rpc_status(&k, err)) == QV_OK && !got_final)
    st = qv_error_set(err, QV_EINTERNAL, "INTERNAL: the build ended without its final report");
  qv__rpc_end(&k);
  return st;
}

qv_status qv_client_health(qv_client *c, const char *service, int *serving, qv_error *err) {
  if (c == NULL || serving == NULL)
    return qv_error_set(err, QV_EINVAL, "health: NULL argument");
  *serving = 0;
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(service ? service : "");
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/grpc.health.v1.Health/Check", &req.base,
                       &grpc__health__v1__health_check_response__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  *serving = ((Grpc__Health__V1__HealthCheckResponse *)resp)->status ==
             GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  protobuf_c_message_free_unpacked(resp, NULL);
  return QV_OK;
}

const char *qv_health_status_name(qv_health_status s) {
  switch (s) {
  case QV_HEALTH_SERVING:
    return "SERVING";
  case QV_HEALTH_NOT_SERVING:
    return "NOT_SERVING";
  case QV_HEALTH_SERVICE_UNKNOWN:
    return "SERVICE_UNKNOWN";
  case QV_HEALTH_UNKNOWN:
    break;
  }
  return "UNKNOWN";
}

/* As BuildIndex's stream: the request and the close in one batch, then one RECV_MESSAGE at a time
 * until the stream ends (NULL message) or fn stops it (a cancel), then the status. */
qv_status qv_client_health_watch(qv_client *c, const char *service, double timeout_s,
                                 qv_health_watch_fn fn, void *user, qv_error *err) {
  if (c == NULL || fn == NULL)
    return qv_error_set(err, QV_EINVAL, "health watch: client or callback is NULL");
  /* No deadline: INT64_MAX ms is gRPC's infinite future. */
  const int64_t ms = timeout_s > 0 && timeout_s < 9e15 ? (int64_t)(timeout_s * 1000) : INT64_MAX;
  call k;
  if (!qv__rpc_start(&k, &c->peer, "/grpc.health.v1.Health/Watch", ms > 0 ? ms : 1)) {
    qv__rpc_end(&k);
    return qv_error_set(err, QV_EINTERNAL, "cannot start the health watch call");
  }
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(service ? service : "");
  grpc_byte_buffer *send = qv__wire_pack(&req.base);
  grpc_op ops[4] = {qv__op_send_initial(&k), qv__op_send(send), qv__op_close(),
                    qv__op_recv_initial(&k)};
  int ok = qv__rpc_batch(&k, ops, 4), stopped = 0, bad = 0;
  grpc_byte_buffer_destroy(send);
  while (ok) {
    grpc_byte_buffer *recv = NULL;
    grpc_op op = qv__op_recv(&recv);
    if (!qv__rpc_batch(&k, &op, 1) || recv == NULL)
      break;
    Grpc__Health__V1__HealthCheckResponse *r =
        (Grpc__Health__V1__HealthCheckResponse *)qv__rpc_unpack(
            recv, &grpc__health__v1__health_check_response__descriptor);
    grpc_byte_buffer_destroy(recv);
    if (r == NULL) {
      bad = 1;
      grpc_call_cancel(k.call, NULL);
      break;
    }
    int v = (int)r->status;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    qv_health_status hs = v >= QV_HEALTH_SERVING && v <= QV_HEALTH_SERVICE_UNKNOWN
                              ? (qv_health_status)v
                              : QV_HEALTH_UNKNOWN;
    if (fn(user, hs) != 0) {
      stopped = 1;
      grpc_call_cancel(k.call, NULL);
      break;
    }
  }
  grpc_op st_op = qv__op_recv_status(&k);
  qv_status st;
  if (!qv__rpc_batch(&k, &st_op, 1))
    st = qv_error_set(err, QV_EINTERNAL, "health watch call failed to complete");
  else if (bad)
    st = qv_error_set(err, QV_EINTERNAL, "INTERNAL: undecodable health watch message");
  else if (stopped)
    st = QV_OK; /* our own cancel: the status says CANCELLED */
  else
    st = qv__rpc_status(&k, err);
  qv__rpc_end(&k);
  return st;
}

/* ---- import ----------------------------------------------------------------------------- */

qv_status qv_client_import(qv_client *c, const char *collection, const qv_client_import_opts *o,
                           qv_client_progress_fn progress, void *user, qv_collection_info *info,
                           qv_client_build_result *res, qv_error *err) {
  CHECK_CLIENT(c, collection);
  if (res) {
    memset(res, 0, sizeof *res);
    res->recall = -1;
  }
  if (o == NULL || ((o->index_dir == NULL) == (o->server_path == NULL)))
    return qv_error_set(err, QV_EINVAL, "import: give exactly one of index_dir and server_path");
  char files[QV_VERSION_NFILES + 2][QV_REL_MAX];
  int nfiles = 0;
  uint64_t total = 0;
  qv_status st = QV_OK;
  if (o->index_dir != NULL) {
    if ((st = qv_collection_push_files(o->index_dir, files, &nfiles, err)) != QV_OK)
      return st;
    for (int i = 0; i < nfiles; i++) {
      char path[QV_PATH_MAX];
      struct stat sb;
      if (qv_path_fmt(path, NULL, "%s/%s", o->index_dir, files[i]) == QV_OK && stat(path, &sb) == 0)
        total += (uint64_t)sb.st_size;
    }
  }
  size_t chunk = o->chunk_bytes ? o->chunk_bytes : (size_t)4 << 20;
  unsigned char *buf = malloc(chunk);
  if (buf == NULL)
    return qv_error_set(err, QV_ENOMEM, "import: out of memory for a %zu-byte chunk", chunk);
  call k;
  int ok = 0, cancelled = 0, first = 1;
  if (qv__rpc_stream_open(&k, &c->peer, "/quiver.v1.Retrieval/ImportIndex", o->timeout_ms, &ok,
                          err) != QV_OK) {
    free(buf);
    return QV_EINTERNAL;
  }
  uint64_t sent = 0;
  Quiver__V1__ImportIndexRequest req = QUIVER__V1__IMPORT_INDEX_REQUEST__INIT;
  req.collection = (char *)collection;
  req.server_path = (char *)(o->server_path ? o->server_path : "");
  req.create = o->create != 0;
  req.recall_floor = o->check.recall_floor;
  req.target_recall = o->check.target_recall;
  req.eval_queries = o->check.eval_queries;
  req.eval_k = o->check.eval_k;
  req.stage = o->stage != 0;
  req.version = o->stage ? o->version : 0;
  for (int i = 0; ok && !cancelled && st == QV_OK && (i < nfiles || first); i++) {
    FILE *f = NULL;
    if (i < nfiles) {
      char path[QV_PATH_MAX];
      if ((st = qv_path_fmt(path, err, "%s/%s", o->index_dir, files[i])) != QV_OK)
        break;
      if ((f = fopen(path, "rb")) == NULL) {
        st = qv_error_set(err, QV_EIO, "import: cannot read %s: %s", path, strerror(errno));
        break;
      }
    }
    uint64_t off = 0;
    for (;;) {
      size_t got = f ? fread(buf, 1, chunk, f) : 0;
      if (f && got == 0 && ferror(f)) {
        st = qv_error_set(err, QV_EIO, "import: reading %s/%s failed", o->index_dir, files[i]);
        break;
      }
      if (f && got == 0 && off > 0)
        break; /* end of a non-empty file */
      req.file = (char *)(f ? files[i] : "");
      req.offset = off;
      req.data.data = buf;
      req.data.len = got;
      req.crc32 = (uint32_t)crc32(0L, buf, (uInt)got);
      ok = ok && qv__rpc_send(&k, &req.base);
      if (first) { /* the header travels once */
        first = 0;
        req.collection = (char *)"";
        req.server_path = (char *)"";
        req.create = 0;
        req.recall_floor = req.target_recall = 0;
        req.eval_queries = req.eval_k = 0;
        req.stage = 0;
        req.version = 0;
      }
      off += got;
      sent += got;
      if (ok && progress && progress(user, "upload", sent, total) != 0) {
        grpc_call_cancel(k.call, NULL);
        cancelled = 1;
      }
      if (!ok || cancelled || f == NULL || got < chunk)
        break;
    }
    if (f)
      fclose(f);
  }
  free(buf);
  if (st != QV_OK) /* a local failure: tell the server to drop what it staged */
    grpc_call_cancel(k.call, NULL);
  ProtobufCMessage *ans;
  qv_status cst = stream_finish(&k, &quiver__v1__import_index_response__descriptor, "import", &ans,
                                st == QV_OK ? err : NULL);
  if (cst == QV_OK) {
    const Quiver__V1__ImportIndexResponse *r = (const Quiver__V1__ImportIndexResponse *)ans;
    if (info && r->info)
      info_from_pb(r->info, info);
    if (res) {
      res->recall = r->recall;
      res->recall_k = r->recall_k;
      res->recall_nprobe = r->recall_nprobe;
      res->bytes_sent = r->bytes_received;
      res->files = r->files;
      res->elapsed_seconds = r->elapsed_seconds;
      res->version = r->version;
    }
    protobuf_c_message_free_unpacked(ans, NULL);
  }
  if (st == QV_OK && cancelled && cst == QV_ECANCELLED)
    qv_error_set(err, QV_ECANCELLED, "CANCELLED: import cancelled by the caller");
  qv__rpc_end(&k);
  return st != QV_OK ? st : cst;
}

qv_status qv_client_rollout(qv_client *c, const char *collection, qv_rollout_action action,
                            uint64_t version, qv_rollout_status *out, qv_error *err) {
  CHECK_CLIENT(c, collection);
  Quiver__V1__RolloutRequest req = QUIVER__V1__ROLLOUT_REQUEST__INIT;
  req.collection = (char *)collection;
  req.action = (Quiver__V1__RolloutAction)action;
  req.version = version;
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/Rollout", &req.base,
                       &quiver__v1__rollout_status__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  const Quiver__V1__RolloutStatus *r = (const Quiver__V1__RolloutStatus *)resp;
  if (out) {
    memset(out, 0, sizeof *out);
    out->version = r->version;
    if (r->n_versions > 0)
      version_from_pb(r->versions[0], &out->beside);
    snprintf(out->message, sizeof out->message, "%s", r->message ? r->message : "");
    snprintf(out->state, sizeof out->state, "%s", r->state ? r->state : "");
    out->shards = r->shards;
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return QV_OK;
}

qv_status qv_client_fleet_rollout(qv_client *c, const char *collection, qv_rollout_action action,
                                  const qv_rollout_opts *o, qv_fleet_rollout **out, qv_error *err) {
  if (out)
    *out = NULL;
  CHECK_CLIENT(c, collection);
  Quiver__V1__RolloutRequest req = QUIVER__V1__ROLLOUT_REQUEST__INIT;
  req.collection = (char *)collection;
  req.action = (Quiver__V1__RolloutAction)action;
  if (o != NULL) {
    req.version = o->version;
    req.recall_floor = o->recall_floor;
    req.min_ready = o->min_ready;
    req.hold_s = o->hold_s;
  }
  ProtobufCMessage *resp;
  qv_status st = unary(c, "/quiver.v1.Retrieval/Rollout", &req.base,
                       &quiver__v1__rollout_status__descriptor, &resp, err);
  if (st != QV_OK)
    return st;
  const Quiver__V1__RolloutStatus *r = (const Quiver__V1__RolloutStatus *)resp;
  qv_fleet_rollout *f = calloc(1, sizeof *f);
  if (f != NULL && r->n_replicas > 0 &&
      (f->replicas = calloc(r->n_replicas, sizeof *f->replicas)) == NULL) {
    free(f);
    f = NULL;
  }
  if (f == NULL) {
    protobuf_c_message_free_unpacked(resp, NULL);
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  }
  f->version = r->version;
  snprintf(f->state, sizeof f->state, "%s", r->state ? r->state : "");
  f->rollout_version = r->rollout_version;
  f->previous_version = r->previous_version;
  f->shards = r->shards;
  f->routers = r->routers;
  f->routers_on_version = r->routers_on_version;
  snprintf(f->message, sizeof f->message, "%s", r->message ? r->message : "");
  for (size_t i = 0; i < r->n_replicas; i++) {
    const Quiver__V1__ReplicaInfo *p = r->replicas[i];
    qv_rollout_replica *x = &f->replicas[f->n_replicas++];
    x->shard = p->shard;
    snprintf(x->node, sizeof x->node, "%s", p->node ? p->node : "");
    snprintf(x->addr, sizeof x->addr, "%s", p->addr ? p->addr : "");
    snprintf(x->state, sizeof x->state, "%s", p->state ? p->state : "");
    x->version = p->version;
    x->beside_version = p->beside_version;
    snprintf(x->beside_state, sizeof x->beside_state, "%s", p->beside_state ? p->beside_state : "");
    x->beside_recall = p->beside_recall;
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  if (out)
    *out = f;
  else
    qv_fleet_rollout_free(f);
  return QV_OK;
}

void qv_fleet_rollout_free(qv_fleet_rollout *r) {
  if (r == NULL)
    return;
  free(r->replicas);
  free(r);
}
