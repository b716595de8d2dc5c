/* qv__idmap: an open-addressing hash map from id (int64 >= 0) to row (uint64), private to index/.
 *
 * Linear probing with backward-shift deletion (no tombstones), load factor <= 1/2. Written here
 * rather than taken from a library because the candidates in Debian (GLib's GHashTable) box 64-bit
 * keys behind pointers: twice the memory and a pointer chase per lookup on the upsert path.
 * Not thread-safe: the collection's locks protect it. */
#ifndef QUIVER_INDEX_IDMAP_H
#define QUIVER_INDEX_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct qv__idmap {
  int64_t *keys; /* -1 = empty */
  uint64_t *vals;
  size_t cap; /* power of two, or 0 */
  size_t count;
} qv__idmap;

void qv__idmap_init(qv__idmap *m);
void qv__idmap_fini(qv__idmap *m);
/* Makes room for `n` entries in total; 0 on success, -1 on out of memory. */
int qv__idmap_reserve(qv__idmap *m, size_t n);
/* Returns 1 and sets *row when present, else 0. */
int qv__idmap_get(const qv__idmap *m, int64_t key, uint64_t *row);
/* Inserts or overwrites; 0 on success, -1 on out of memory. */
int qv__idmap_put(qv__idmap *m, int64_t key, uint64_t row);
/* Removes; returns 1 if it was present. */
int qv__idmap_del(qv__idmap *m, int64_t key);
/* Empties and frees the table. */
void qv__idmap_clear(qv__idmap *m);
/* Writes up to max keys (in table order) to out; returns how many. */
size_t qv__idmap_keys(const qv__idmap *m, int64_t *out, size_t max);

#endif
