#include "idmap.h"

#include <stdlib.h>

static inline uint64_t mix(uint64_t x) { /* splitmix64 finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

void qv__idmap_init(qv__idmap *m) {
  m->keys = NULL;
  m->vals = NULL;
  m->cap = 0;
  m->count = 0;
}

void qv__idmap_fini(qv__idmap *m) {
  free(m->keys);
  free(m->vals);
  qv__idmap_init(m);
}

static void insert_raw(int64_t *keys, uint64_t *vals, size_t cap, int64_t key, uint64_t row) {
  size_t mask = cap - 1, i = (size_t)mix((uint64_t)key) & mask;
  while (keys[i] != -1 && keys[i] != key)
    i = (i + 1) & mask;
  keys[i] = key;
  vals[i] = row;
}

int qv__idmap_reserve(qv__idmap *m, size_t n) {
  if (n > SIZE_MAX / 4)
    return -1;
  size_t want = 16;
  while (want < 2 * n)
    want <<= 1;
  if (want <= m->cap)
    return 0;
  int64_t *keys = malloc(want * sizeof *keys);
  uint64_t *vals = malloc(want * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return -1;
  }
  for (size_t i = 0; i < want; i++)
    keys[i] = -1;
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i] != -1)
      insert_raw(keys, vals, want, m->keys[i], m->vals[i]);
  free(m->keys);
  free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->cap = want;
  return 0;
}

int qv__idmap_get(const qv__idmap *m, int64_t key, uint64_t *row) {
  if (m->cap == 0)
    return 0;
  size_t mask = m->cap - 1, i = (size_t)mix((uint64_t)key) & mask;
  while (m->keys[i] != -1) {
    if (m->keys[i] == key) {
      if (row)
        *row = m->vals[i];
      return 1;
    }
    i = (i + 1) & mask;
  }
  return 0;
}

int qv__idmap_put(qv__idmap *m, int64_t key, uint64_t row) {
  if (qv__idmap_reserve(m, m->count + 1) != 0)
    return -1;
  size_t mask = m->cap - 1, i = (size_t)mix((uint64_t)key) & mask;
  while (m->keys[i] != -1 && m->keys[i] != key)
    i = (i + 1) & mask;
  if (m->keys[i] == -1)
    m->count++;
  m->keys[i] = key;
  m->vals[i] = row;
  return 0;
}

int qv__idmap_del(qv__idmap *m, int64_t key) {
  if (m->cap == 0)
    return 0;
  size_t mask = m->cap - 1, i = (size_t)mix((uint64_t)key) & mask;
  while (m->keys[i] != key) {
    if (m->keys[i] == -1)
      return 0;
    i = (i + 1) & mask;
  }
  /* Backward-shift: pull later members of the probe run into the hole. */
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (m->keys[j] == -1)
      break;
    size_t home = (size_t)mix((uint64_t)m->keys[j]) & mask;
    /* Move keys[j] into the hole i when its home is not cyclically within (i, j]. */
    int in_between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
    if (!in_between) {
      m->keys[i] = m->keys[j];
      m->vals[i] = m->vals[j];
      i = j;
    }
  }
  m->keys[i] = -1;
  m->count--;
  return 0 + 1;
}

void qv__idmap_clear(qv__idmap *m) {
  qv__idmap_fini(m);
  qv__idmap_init(m);
}

size_t qv__idmap_keys(const qv__idmap *m, int64_t *out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < m->cap && n < max; i++)
    if (m->keys[i] != -1)
      out[n++] = m->keys[i];
  return n;
}
