// quiver.v1 messages with item attributes and filters, packed and read by C (protobuf-c's
// generated header does not compile as C++), for the raw calls of the attribute tests
// (tests/server/test_attrs.cc, tests/cluster/test_fleet.cc).
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Which list of an AttributeColumn values go in (the AttributeType numbers).
enum { AM_INTS = 1, AM_FLOATS = 2, AM_BOOLS = 3, AM_KEYWORDS = 4, AM_TAGS = 5 };

// One column: n values in list `list` (ints: ints, and bools as 0/1; floats; keywords: strs;
// tags: counts[n] per row and their strings flat in strs).
typedef struct am_col {
  const char *name;
  int list;
  size_t n;
  const int64_t *ints;
  const double *floats;
  const char *const *strs;
  const uint32_t *counts;
} am_col;

// Each packer writes one request into *out (malloc'd; free() it) and returns its length.

// CreateCollection with n attributes (names[i], types[i]: the AttributeType numbers).
size_t am_create(uint8_t **out, const char *name, uint32_t dim, int metric, const char *spec,
                 size_t n, const char *const *names, const int *types, uint32_t shards,
                 uint32_t replicas);
// Upsert of n rows (floats = n x dim) with ncols attribute columns.
size_t am_upsert(uint8_t **out, const char *coll, size_t n, const int64_t *ids, const float *v,
                 size_t floats, size_t ncols, const am_col *cols);

typedef struct am_search_req {
  const char *coll;
  const float *q;
  size_t floats;
  uint32_t k, nprobe;
  int exact;
  const char *filter;
  int filter_path;
  int rerank, refine; // rerank: send RerankOptions (with refine, candidates)
  uint32_t candidates;
  const int64_t *qids; // query_ids (q NULL)
  size_t nqids;
  uint64_t version;
} am_search_req;
size_t am_search(uint8_t **out, const am_search_req *r);
// A SearchResponse: up to cap ids and scores; *nq and *k its shape. -1 when it does not decode,
// else the number of ids.
long am_search_answer(const uint8_t *buf, size_t len, int64_t *ids, float *scores, size_t cap,
                      uint32_t *nq, uint32_t *k);

// Get of n ids with nfields field names.
size_t am_get(uint8_t **out, const char *coll, const int64_t *ids, size_t n,
              const char *const *fields, size_t nfields);
// A GetResponse as text (malloc'd; free() it; NULL when it does not decode):
//   "ids=3,7 missing=9\n" then one line per attribute column (am_cols_text's).
char *am_get_text(const uint8_t *buf, size_t len);
// Columns as text, one line each: "NAME LIST v1|v2|..." (floats %.17g, bools 0/1, tags {a,b}
// sorted;
// a column of no values "NAME (empty)").
char *am_cols_text(size_t ncols, const am_col *cols);

// A CollectionInfo: "NAME:TYPE,..." of its attributes (malloc'd) and its byte counts; NULL when it
// does not decode.
char *am_info(const uint8_t *buf, size_t len, uint64_t *attribute_bytes, uint64_t *memory_bytes,
              uint64_t *vector_bytes, uint64_t *index_bytes);

#ifdef __cplusplus
}
#endif
