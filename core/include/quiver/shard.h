/* The shard an item lives on in a fleet (docs/cluster.md): MurmurHash3's 64-bit finalizer of its
 * id, modulo the shard count. One definition for the router that splits writes and the offline
 * build that splits an index per shard (`quiver index build --shards S`): both must agree. */
#ifndef QUIVER_SHARD_H
#define QUIVER_SHARD_H

#include <stdint.h>

static inline uint32_t qv_shard_of(int64_t id, uint32_t shards) {
  uint64_t h = (uint64_t)id;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return shards > 1 ? (uint32_t)(h % shards) : 0;
}

#endif
