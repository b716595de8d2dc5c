/* A collection's stats as a CollectionInfo message. */
#include <stdatomic.h>
#include <string.h>

#include "quiver_wire.h"
#include "server_internal.h"

/* Fills info from an entry; strings point into spec_buf (INFO_BUF bytes of caller storage). */
void qv__fill_info(qv__entry *e, Quiver__V1__CollectionInfo *info, char *spec_buf) {
  quiver__v1__collection_info__init(info);
  info->shards = info->replicas = 1; /* a single node's collection is one shard, one copy */
  qv_collection_stats s;
  qv_collection_stats_get(qv__entry_col(e), &s, NULL);
  memcpy(spec_buf, s.spec, QV_MAX_SPEC);
  memcpy(spec_buf + QV_MAX_SPEC, s.placement, sizeof s.placement);
  info->placement = spec_buf + QV_MAX_SPEC;
  char *note = spec_buf + QV_MAX_SPEC + sizeof s.placement;
  memcpy(note, s.open_note, sizeof s.open_note);
  info->storage_note = note;
  info->build_recall = s.build_recall;
  info->build_recall_k = s.build_recall_k;
  info->build_recall_nprobe = s.build_nprobe;
  info->snapshot_version = s.disk_version;
  info->wal_bytes = s.wal_bytes;
  info->wal_records = s.wal_records;
  qv__batcher_stats bs;
  qv__batcher_stats_get(qv__entry_batcher(e), &bs);
  info->batched_requests = bs.requests;
  info->batches = bs.batches;
  info->batched_queries = bs.queries;
  info->batch_expired = bs.expired;
  info->device = qv__device_to_pb(s.device);
  info->gpu = s.gpu;
  info->device_bytes = s.device_bytes;
  info->tombstones = s.tombstones;
  info->gpu_fallbacks = s.gpu_fallbacks;
  info->deferred_deletes = s.deferred_deletes != 0;
  info->name = (char *)qv__entry_name(e); /* only read: packed into the answer */
  info->dim = (uint32_t)s.dim;
  info->metric = qv__metric_to_pb(s.metric);
  info->index_spec = spec_buf;
  info->state = qv__entry_building(e) ? QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_BUILDING
                : s.trained           ? QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_READY
                                      : QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_NOT_BUILT;
  info->default_nprobe = s.graph ? 0 : s.default_nprobe;
  info->default_ef_search = s.graph ? s.default_nprobe : 0;
  info->count = s.count;
  info->indexed = s.indexed;
  info->nlist = s.nlist;
  info->vector_bytes = s.vector_bytes;
  info->index_bytes = s.index_bytes;
  info->memory_bytes = s.vector_bytes + s.index_bytes + s.attr_bytes;
  info->attribute_bytes = s.attr_bytes;
  info->index_version = s.version;
  info->n_features = (uint32_t)s.n_features;
  info->version = s.generation;
  /* The VersionInfo, the schema and their pointers, aligned, after the strings of spec_buf. */
  uintptr_t at = (uintptr_t)(spec_buf + INFO_STRINGS);
  at = (at + _Alignof(qv__info_tail) - 1) & ~(uintptr_t)(_Alignof(qv__info_tail) - 1);
  qv__info_tail *t = (qv__info_tail *)at;
  if (qv__fill_version(e, &t->v)) {
    t->vp = &t->v;
    info->n_versions = 1;
    info->versions = &t->vp;
  }
  const size_t na = s.n_attrs < QV_MAX_ATTRS ? s.n_attrs : QV_MAX_ATTRS;
  memcpy(t->fields, s.attrs, na * sizeof *t->fields);
  qv__schema_to_pb(na, t->fields, t->f, t->fp);
  info->n_attributes = na;
  info->attributes = na ? t->fp : NULL;
}

int qv__fill_version(qv__entry *e, Quiver__V1__VersionInfo *v) {
  quiver__v1__version_info__init(v);
  int kind = QV__SLOT_NONE;
  qv_collection *c = qv__entry_slot_get(e, 0, &kind);
  if (c == NULL)
    return 0;
  qv_collection_stats s;
  qv_collection_stats_get(c, &s, NULL);
  qv__entry_slot_put(e);
  v->version = s.generation;
  v->state = kind == QV__SLOT_STAGED ? "staged" : "previous";
  v->count = s.count;
  v->memory_bytes = s.vector_bytes + s.index_bytes + s.attr_bytes;
  v->recall = s.build_recall;
  v->recall_k = s.build_recall_k;
  v->recall_nprobe = s.build_nprobe;
  return 1;
}
