/* Item attributes in the quiver CLI: the JSON Lines file of `quiver upsert --attrs FILE`, the
 * `--attr name:type` of `quiver create`, and how `get` and `describe` print them.
 *
 * The file has one JSON object per line, row i for vector i of --input, e.g.
 *   {"category": 3, "price": 9.5, "sold_out": false, "brand": "acme", "tags": ["summer","sale"]}
 * Keys are the collection's attributes (any subset, any order; an absent key or null is the
 * attribute's default: 0, 0.0, false, "", no tags). Types come from the collection's schema:
 * int64 takes an integer, float a number, bool true/false, keyword a string, tags an array of
 * strings. Anything else is refused naming the file, the line and the key. */
#ifndef QUIVER_CLI_ATTRS_FILE_H
#define QUIVER_CLI_ATTRS_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/client.h"
#include "quiver/status.h"

/* One attribute's values for every row of the file (the arrays of its type only). */
typedef struct cli_attr_col {
  qv_client_attr_field field;
  int64_t *ints;    /* INT64, BOOL: n_rows */
  double *floats;   /* FLOAT: n_rows */
  char **strs;      /* KEYWORD: n_rows; TAGS: every row's tags in row order (n_strs) */
  uint32_t *counts; /* TAGS: n_rows */
  uint64_t *tag_at; /* TAGS: n_rows + 1, where row i's tags start in strs */
  size_t n_strs, cap_strs;
} cli_attr_col;

/* What cli_attrs_load read: one column per schema attribute, in schema order. */
typedef struct cli_attrs {
  size_t n_rows, n_cols;
  cli_attr_col cols[QV_CLIENT_MAX_ATTRS];
} cli_attrs;

/* Reads `path` for the schema of `info` (a describe's answer), expecting exactly n_rows lines
 * (`input` names the vectors' file in messages). Returns QV_OK; QV_EINVAL ("FILE line L: ..."
 * naming the key for a wrong type, an unknown key, a line that is not a JSON object, too few or
 * too many lines; a collection without attributes); QV_EIO; QV_ENOMEM. *out is always safe to
 * pass to cli_attrs_free. */
qv_status cli_attrs_load(const char *path, const qv_collection_info *info, const char *input,
                         size_t n_rows, cli_attrs *out, qv_error *e);

/* Views of rows [off, off + m) of a as n_cols columns for qv_client_upsert_opts.attrs (valid
 * while a lives). */
void cli_attrs_view(const cli_attrs *a, size_t off, qv_client_attr_column *cols);

/* NULL-safe. */
void cli_attrs_free(cli_attrs *a);

/* Parses --attr NAME:TYPE into f. Returns 0, or -1 with a message in e. */
int cli_attr_field_parse(const char *s, qv_client_attr_field *f, qv_error *e);

/* Row `row` of the n columns as a JSON object {"name": value, ...} on stdout. */
void cli_attrs_print_json(const qv_client_attr_column *cols, size_t n, size_t row);

/* The schema as text: "category int64, price float" ("none" when n is 0). */
void cli_attrs_print_schema(const qv_client_attr_field *f, size_t n);

#endif
