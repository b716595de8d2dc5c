/* quiver.v1 messages packed by C for the fleet tests: see fleet_msgs.h. */
#include "fleet_msgs.h"

#include <stdlib.h>
#include <string.h>

#include "quiver/v1/retrieval.pb-c.h"

static size_t pack(uint8_t **out, const ProtobufCMessage *m) {
  const size_t n = protobuf_c_message_get_packed_size(m);
  *out = malloc(n ? n : 1);
  return *out ? protobuf_c_message_pack(m, *out) : 0;
}

size_t fm_create(uint8_t **out, const char *name, uint32_t dim, int metric, const char *spec,
                 uint32_t shards, uint32_t replicas) {
  Quiver__V1__CreateCollectionRequest r = QUIVER__V1__CREATE_COLLECTION_REQUEST__INIT;
  r.name = (char *)name;
  r.dim = dim;
  r.metric = (Quiver__V1__Metric)metric;
  r.index_spec = (char *)(spec ? spec : "");
  r.shards = shards;
  r.replicas = replicas;
  return pack(out, &r.base);
}

size_t fm_search(uint8_t **out, const char *coll, const float *q, size_t floats, uint32_t dim,
                 uint32_t k, uint32_t nprobe, int exact, int allow_partial) {
  Quiver__V1__SearchRequest r = QUIVER__V1__SEARCH_REQUEST__INIT;
  r.collection = (char *)coll;
  r.n_queries = floats;
  r.queries = (float *)q;
  r.dim = dim;
  r.k = k;
  r.nprobe = nprobe;
  r.exact = exact;
  r.allow_partial = allow_partial;
  return pack(out, &r.base);
}

size_t fm_upsert(uint8_t **out, const char *coll, size_t n, const int64_t *ids, const float *v,
                 size_t floats) {
  Quiver__V1__UpsertRequest r = QUIVER__V1__UPSERT_REQUEST__INIT;
  r.collection = (char *)coll;
  r.n_ids = n;
  r.ids = (int64_t *)ids;
  r.n_vectors = floats;
  r.vectors = (float *)v;
  return pack(out, &r.base);
}

size_t fm_name(uint8_t **out, int which, const char *name) {
  if (which == 0) {
    Quiver__V1__DescribeCollectionRequest r = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    r.name = (char *)name;
    return pack(out, &r.base);
  }
  Quiver__V1__DropCollectionRequest r = QUIVER__V1__DROP_COLLECTION_REQUEST__INIT;
  r.name = (char *)name;
  return pack(out, &r.base);
}

size_t fm_build(uint8_t **out, const char *coll, double recall_floor) {
  Quiver__V1__BuildIndexRequest r = QUIVER__V1__BUILD_INDEX_REQUEST__INIT;
  r.collection = (char *)coll;
  r.recall_floor = recall_floor;
  return pack(out, &r.base);
}

long fm_search_answer(const uint8_t *buf, size_t len, int64_t *ids, size_t cap, uint32_t *missing,
                      size_t mcap, size_t *nmissing) {
  Quiver__V1__SearchResponse *r = quiver__v1__search_response__unpack(NULL, len, buf);
  if (r == NULL)
    return -1;
  for (size_t i = 0; i < r->n_ids && i < cap; i++)
    ids[i] = r->ids[i];
  for (size_t i = 0; i < r->n_missing_shards && i < mcap; i++)
    missing[i] = r->missing_shards[i];
  *nmissing = r->n_missing_shards;
  const long n = (long)r->n_ids;
  quiver__v1__search_response__free_unpacked(r, NULL);
  return n;
}

size_t fm_get(uint8_t **out, const char *coll, const int64_t *ids, size_t n, const char *field) {
  Quiver__V1__GetRequest r = QUIVER__V1__GET_REQUEST__INIT;
  char *f = (char *)field;
  r.collection = (char *)coll;
  r.ids = (int64_t *)ids;
  r.n_ids = n;
  r.fields = field ? &f : NULL;
  r.n_fields = field ? 1 : 0;
  return pack(out, &r.base);
}

size_t fm_search_ids(uint8_t **out, const char *coll, const int64_t *ids, size_t n, uint32_t k,
                     const float *q, size_t floats) {
  Quiver__V1__SearchRequest r = QUIVER__V1__SEARCH_REQUEST__INIT;
  r.collection = (char *)coll;
  r.query_ids = (int64_t *)ids;
  r.n_query_ids = n;
  r.k = k;
  r.queries = (float *)q;
  r.n_queries = q ? floats : 0;
  return pack(out, &r.base);
}
