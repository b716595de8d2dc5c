// quiver.v1 messages packed by C (protobuf-c's generated header does not compile as C++: the
// service has a member named `delete`), for the fleet tests' raw calls.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Each packs one request into *out (malloc'd; free() it) and returns its length.
size_t fm_create(uint8_t **out, const char *name, uint32_t dim, int metric, const char *spec,
                 uint32_t shards, uint32_t replicas);
size_t fm_search(uint8_t **out, const char *coll, const float *q, size_t floats, uint32_t dim,
                 uint32_t k, uint32_t nprobe, int exact, int allow_partial);
size_t fm_upsert(uint8_t **out, const char *coll, size_t n, const int64_t *ids, const float *v,
                 size_t floats);
size_t fm_name(uint8_t **out, int which, const char *name); // 0 describe, 1 drop
size_t fm_build(uint8_t **out, const char *coll, double recall_floor);
// Get of n ids (field: NULL = all), and an item-to-item search (q: floats too when not NULL).
size_t fm_get(uint8_t **out, const char *coll, const int64_t *ids, size_t n, const char *field);
size_t fm_search_ids(uint8_t **out, const char *coll, const int64_t *ids, size_t n, uint32_t k,
                     const float *q, size_t floats);
// A SearchResponse's ids (up to cap) and missing shards (up to mcap): -1 when it does not decode,
// else the number of ids; *nmissing gets the number of missing shards.
long fm_search_answer(const uint8_t *buf, size_t len, int64_t *ids, size_t cap, uint32_t *missing,
                      size_t mcap, size_t *nmissing);

#ifdef __cplusplus
}
#endif
