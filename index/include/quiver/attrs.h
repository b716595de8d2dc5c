/* Item attributes and filters.
 *
 * A collection may declare a small schema at create (qv_collection_opts.attrs): up to
 * QV_MAX_ATTRS named, typed scalar attributes per item, stored beside its vector (row-aligned with
 * the store), written by qv_collection_upsert, persisted with the collection (snapshot and
 * write-ahead log), returned by qv_collection_get_items_attrs, and used by filters.
 *
 * Types: INT64; FLOAT (a double); BOOL; KEYWORD (one string); TAGS (a set of strings). An upsert
 * carries columns by name (any order, each at most once); an attribute whose column is absent gets
 * its default for those rows (0, 0.0, false, "", no tags): an upsert replaces the whole item.
 * Strings are at most QV_MAX_ATTR_STRING bytes; a row has at most QV_MAX_TAGS tags (repeats
 * count once; a get answers them sorted, by strcmp).
 *
 * Filters: an expression over the attributes, parsed once per request (qv_filter_parse):
 *
 *   expr    := or
 *   or      := and { "or" and }
 *   and     := unary { "and" unary }
 *   unary   := "not" unary | "(" expr ")" | test
 *   test    := NAME                                   a BOOL attribute is true
 *            | NAME op literal                        op: = == != < <= > >=
 *            | NAME ["not"] "in" "(" literal { "," literal } ")"
 *            | NAME "has" STRING                      TAGS holds the string
 *            | NAME "has" ("any" | "all") "(" STRING { "," STRING } ")"
 *   literal := INTEGER | NUMBER | STRING | "true" | "false"
 *
 * Keywords are case-insensitive; names are [A-Za-z_][A-Za-z0-9_]* (at most 63 bytes, not a
 * keyword); strings are "..." or '...' with \" \' \\ escapes. Numbers compare with INT64 and
 * FLOAT attributes (an INT64 against 2.5 compares exactly as reals); < <= > >= only on numbers;
 * = != on every type but TAGS; in on INT64 and KEYWORD; has on TAGS. Example:
 *   category in (3, 7) and price < 20 and not sold_out and tags has "summer"
 * Errors are QV_EINVAL with the 1-based column of the mistake: "filter: column 14: ...".
 */
#ifndef QUIVER_ATTRS_H
#define QUIVER_ATTRS_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/export.h"
#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QV_MAX_ATTRS 32
#define QV_MAX_ATTR_NAME 64     /* bytes with the NUL */
#define QV_MAX_ATTR_STRING 256  /* bytes of one keyword or tag */
#define QV_MAX_TAGS 256         /* tags of one item */
#define QV_MAX_FILTER 4096      /* bytes of a filter expression */
#define QV_MAX_FILTER_TERMS 256 /* tests and operators in one filter */
#define QV_MAX_FILTER_LIST 1024 /* values of one in / has any / has all list */

typedef enum qv_attr_type {
  QV_ATTR_INT64 = 1,
  QV_ATTR_FLOAT = 2,
  QV_ATTR_BOOL = 3,
  QV_ATTR_KEYWORD = 4,
  QV_ATTR_TAGS = 5,
} qv_attr_type;

/* "int64", "float", "bool", "keyword", "tags"; NULL for an unknown type. */
QV_API const char *qv_attr_type_name(qv_attr_type t);
/* Parses one of those names. Returns QV_OK or QV_EINVAL. */
QV_API qv_status qv_attr_type_parse(const char *s, qv_attr_type *out, qv_error *err);

typedef struct qv_attr_field {
  char name[QV_MAX_ATTR_NAME];
  qv_attr_type type;
} qv_attr_field;

/* Checks a schema as create does: 0 .. QV_MAX_ATTRS fields, names as above and unique, known
 * types. Returns QV_OK or QV_EINVAL naming the field. */
QV_API qv_status qv_attr_schema_check(size_t n, const qv_attr_field *fields, qv_error *err);

/* One attribute's values for the n rows of a write (or of a get's answer). Exactly the array
 * of its type is used:
 *   INT64: ints[n]; BOOL: ints[n] (0 or 1); FLOAT: floats[n] (finite);
 *   KEYWORD: strs[n];
 *   TAGS: counts[n], and strs holding every row's tags in row order (sum of counts strings). */
typedef struct qv_attr_column {
  const char *name;
  qv_attr_type type;
  const int64_t *ints;
  const double *floats;
  const char *const *strs;
  const uint32_t *counts;
} qv_attr_column;

/* The columns of one write. `arena` is internal: set in batches this library allocates (free
 * them with qv_attr_batch_free); NULL in a caller's own. */
typedef struct qv_attr_batch {
  size_t n_columns;
  const qv_attr_column *columns;
  void *arena;
} qv_attr_batch;

/* Frees a batch this library allocated (qv_collection_get_items_attrs); NULL-safe. */
QV_API void qv_attr_batch_free(qv_attr_batch *b);

/* A parsed filter, bound to the schema of the collection it was parsed for: searches of another
 * schema refuse it. Immutable: any number of searches may use one at once. */
typedef struct qv_filter qv_filter;

/* Parses text for c's schema. Returns QV_OK; QV_EINVAL with the column of the mistake (an unknown
 * attribute, a type mismatch, a malformed expression, too long); QV_EPRECONDITION when c has no
 * attributes ("declare them at create"); QV_ENOMEM. */
struct qv_collection;
QV_API qv_status qv_filter_parse(struct qv_collection *c, const char *text, qv_filter **out,
                                 qv_error *err);
QV_API void qv_filter_free(qv_filter *f);
/* The filter as parsed, normalised (for logs and tests). */
QV_API const char *qv_filter_text(const qv_filter *f);

/* How a filtered search finds its candidates (qv_search_params.filter_path). */
typedef enum qv_filter_path {
  QV_FILTER_AUTO = 0,  /* by the estimated selectivity: exact over few rows, else the index */
  QV_FILTER_EXACT = 1, /* exact scan of the rows that match (recall 1) */
  QV_FILTER_INDEX = 2, /* the index restricted to the rows that match: an IVF's own list scan
                          (exact scores from the store), or, for a graph, fast-scan or GPU
                          index, an over-fetch with a growing k' until k survive */
} qv_filter_path;

/* How many of c's items match f (a diagnostic; searches evaluate it themselves).
 * Returns QV_OK; QV_EINVAL (NULL, or a filter of another schema). */
QV_API qv_status qv_collection_filter_count(struct qv_collection *c, const qv_filter *f,
                                            uint64_t *n, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_ATTRS_H */
