/* Item attributes of a collection's store (attrs.c), private to index/.
 *
 * Columns are row-aligned with the store (row r of every column belongs to ids[r]) and move with
 * its rows. Each column holds one 8-byte slot per row:
 *   INT64: the value; FLOAT: the double's bits; BOOL: 0 or 1;
 *   KEYWORD: the value's code in the column's dictionary (code 0 = "");
 *   TAGS: a pointer to a uint32 array {count, codes...} (codes sorted, unique), or 0 for none.
 * Dictionaries map strings to codes (never shrinking) and are read by filters and gets under the
 * collection's read lock; writers intern under its write lock.
 *
 * Postings: for KEYWORD and TAGS columns, a CRoaring bitmap per dictionary code of the rows that
 * hold it (kept by put, drop, move and copy_row), so that a filter's keyword or tag test costs
 * its matches rather than a pass over the column.
 *
 * Sorted columns: for INT64 and FLOAT columns, the rows in the order of their values, built at a
 * save, an open and a build (qv__attrs_sort), and a bitmap of the rows written, moved or dropped
 * since (`dirty`): a range or equality test binary-searches the sorted rows, drops the dirty ones
 * and re-tests those from the column, so it costs log n + matches + writes since the last save.
 * Past count / 8 dirty rows a test scans the column instead (correct either way). */
#ifndef QUIVER_INDEX_ATTRS_H
#define QUIVER_INDEX_ATTRS_H

#include <stddef.h>
#include <stdint.h>

#include <roaring/roaring.h>

#include "quiver/attrs.h"
#include "quiver/status.h"

typedef struct qv__dict {
  char **strs; /* code -> string */
  uint32_t n, cap;
  uint32_t *slots; /* open addressing over hashes: code + 1, 0 = empty */
  uint32_t nslots; /* a power of 2 */
  size_t bytes;
} qv__dict;

typedef struct qv__attrs {
  size_t n; /* attributes; 0 = no schema */
  qv_attr_field f[QV_MAX_ATTRS];
  uint64_t *col[QV_MAX_ATTRS];
  qv__dict dict[QV_MAX_ATTRS];
  roaring_bitmap_t **post[QV_MAX_ATTRS]; /* KEYWORD/TAGS: code -> rows holding it */
  uint32_t npost[QV_MAX_ATTRS];
  uint64_t *skey[QV_MAX_ATTRS]; /* INT64/FLOAT: order-preserving keys, ascending */
  uint32_t *srow[QV_MAX_ATTRS]; /* ... and their rows */
  size_t sorted_n;              /* rows the sorted columns hold (0: none built) */
  roaring_bitmap_t *dirty;      /* rows changed since they were built */
  uint64_t hash;                /* of the schema: a filter parsed for another one is refused */
  size_t tag_bytes;             /* held by TAGS rows */
} qv__attrs;

void qv__attrs_init(qv__attrs *a);
/* Frees everything; count = rows in use (their tag sets are freed). */
void qv__attrs_fini(qv__attrs *a, size_t count);
qv_status qv__attrs_set_schema(qv__attrs *a, size_t n, const qv_attr_field *f, qv_error *err);
int qv__attrs_same_schema(const qv__attrs *a, const qv__attrs *b);
/* Grows every column to cap rows. 0 or -1 (out of memory). */
int qv__attrs_reserve(qv__attrs *a, size_t cap);
/* Turns m rows of b (row j is b's row src[j]; b NULL = defaults) into slots (m * a->n, *vals),
 * interning strings. The caller holds the write lock. */
qv_status qv__attrs_prepare(qv__attrs *a, const qv_attr_batch *b, size_t m, const size_t *src,
                            uint64_t **vals, qv_error *err);
/* Frees prepared slots that were not put (their tag sets). */
void qv__attrs_vals_free(qv__attrs *a, uint64_t *vals, size_t m);
/* Stores one prepared row at row (replace: the row held an item whose tag set is freed). */
void qv__attrs_put(qv__attrs *a, size_t row, const uint64_t *v, int replace);
/* A row's item is deleted (its tag sets are freed). */
void qv__attrs_drop(qv__attrs *a, size_t row);
void qv__attrs_move(qv__attrs *a, size_t dst, size_t src);
/* Copies src's row sr into dst's row dr (dst has the same schema; strings re-interned in dst's
 * dictionaries; dst's row holds nothing yet). 0 or -1 (out of memory). */
int qv__attrs_copy_row(qv__attrs *dst, size_t dr, const qv__attrs *src, size_t sr);
uint64_t qv__attrs_bytes(const qv__attrs *a, size_t cap);

/* The binary form of attribute columns (write-ahead log records and attrs.bin): see attrs.c. */
qv_status qv__attrs_encode_batch(const qv__attrs *a, size_t n, const qv_attr_batch *b, char **out,
                                 size_t *len, qv_error *err);
/* Every column of rows 0 .. count-1 of the store. */
qv_status qv__attrs_encode_store(const qv__attrs *a, size_t count, char **out, size_t *len,
                                 qv_error *err);
/* Decodes what the encoders wrote for a's schema and n rows into an owned batch. QV_ECORRUPT
 * (what is wrong), QV_ENOMEM. */
qv_status qv__attrs_decode(const qv__attrs *a, const char *data, size_t len, size_t n,
                           qv_attr_batch *out, qv_error *err);
/* Every attribute of n rows (rows[i] < 0: defaults) as an owned batch. */
qv_status qv__attrs_get(const qv__attrs *a, size_t n, const int64_t *rows, qv_attr_batch *out,
                        qv_error *err);

/* The rows whose column j holds code (KEYWORD/TAGS), or NULL (no row ever did). */
static inline const roaring_bitmap_t *qv__attrs_posting(const qv__attrs *a, size_t j,
                                                        int64_t code) {
  return code >= 0 && (uint64_t)code < a->npost[j] ? a->post[j][code] : NULL;
}

/* Builds the sorted columns over rows 0 .. count-1 and clears dirty. The caller keeps the rows
 * still (holds the writers' lock) and, when the collection is shared, publishes under the write
 * lock: qv__attrs_sort_build makes them, qv__attrs_sort_swap puts them in (and frees the old). */
typedef struct qv__sorted {
  uint64_t *key[QV_MAX_ATTRS];
  uint32_t *row[QV_MAX_ATTRS];
  size_t n;
} qv__sorted;
int qv__attrs_sort_build(const qv__attrs *a, size_t count, qv__sorted *out);
void qv__attrs_sort_swap(qv__attrs *a, qv__sorted *s);
/* The order-preserving key of an INT64 or FLOAT slot. */
static inline uint64_t qv__attrs_key(qv_attr_type t, uint64_t slot) {
  if (t == QV_ATTR_INT64)
    return slot ^ ((uint64_t)1 << 63);
  return (slot >> 63) ? ~slot : slot | ((uint64_t)1 << 63);
}

/* Dictionary lookup: the code of s, or -1 when no row ever held it. */
int64_t qv__dict_find(const qv__dict *d, const char *s);

/* filter.c: evaluates f over rows 0 .. count-1 of a into words ((count + 63) / 64 words, bits
 * past count 0). *n_match gets the popcount. The caller holds the read lock. */
struct qv_filter;
qv_status qv__filter_eval(const struct qv_filter *f, const qv__attrs *a, size_t count,
                          uint64_t *words, uint64_t *n_match, qv_error *err);
uint64_t qv__filter_hash(const struct qv_filter *f);

#endif
