#define _GNU_SOURCE
#include "attrs_file.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quiver/attrs.h" /* QV_MAX_ATTR_STRING: the server's limit, checked here per line */

void cli_attrs_free(cli_attrs *a) {
  if (a == NULL)
    return;
  for (size_t c = 0; c < a->n_cols; c++) {
    cli_attr_col *col = &a->cols[c];
    for (size_t i = 0; i < col->n_strs; i++)
      free(col->strs[i]);
    free(col->strs);
    free(col->ints);
    free(col->floats);
    free(col->counts);
    free(col->tag_at);
  }
  memset(a, 0, sizeof *a);
}

/* Appends a copy of s to col->strs. */
static int push_str(cli_attr_col *col, const char *s) {
  if (col->n_strs == col->cap_strs) {
    size_t cap = col->cap_strs ? 2 * col->cap_strs : 64;
    char **v = realloc(col->strs, cap * sizeof *v);
    if (v == NULL)
      return -1;
    col->strs = v;
    col->cap_strs = cap;
  }
  if ((col->strs[col->n_strs] = strdup(s)) == NULL)
    return -1;
  col->n_strs++;
  return 0;
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    return "null";
  }
  return "a value";
}

/* The schema as "a (int64), b (float)" for messages. */
static void schema_text(const qv_collection_info *info, char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < info->n_attrs && at < cap; i++) {
    int w = snprintf(buf + at, cap - at, "%s%s (%s)", i ? ", " : "", info->attrs[i].name,
                     qv_client_attr_type_name(info->attrs[i].type)
                         ? qv_client_attr_type_name(info->attrs[i].type)
                         : "?");
    if (w < 0)
      break;
    at += (size_t)w;
  }
}

/* Stores value v of row `row` into col (v NULL or null: the default). 0, or -1 with e set
 * ("FILE line L: ..."), or -2 out of memory. */
static int put_value(cli_attr_col *col, size_t row, const json_t *v, const char *path, size_t line,
                     qv_error *e) {
  const char *name = col->field.name;
  const int dflt = v == NULL || json_is_null(v);
  const char *tn = qv_client_attr_type_name(col->field.type);
  switch (col->field.type) {
  case QV_CLIENT_ATTR_INT64:
    if (!dflt && !json_is_integer(v))
      break;
    col->ints[row] = dflt ? 0 : (int64_t)json_integer_value(v);
    return 0;
  case QV_CLIENT_ATTR_FLOAT:
    if (!dflt && !json_is_number(v))
      break;
    col->floats[row] = dflt ? 0.0 : json_number_value(v);
    return 0;
  case QV_CLIENT_ATTR_BOOL:
    if (!dflt && !json_is_boolean(v))
      break;
    col->ints[row] = dflt ? 0 : json_is_true(v);
    return 0;
  case QV_CLIENT_ATTR_KEYWORD: {
    if (!dflt && !json_is_string(v))
      break;
    const char *s = dflt ? "" : json_string_value(v);
    if (strlen(s) > QV_MAX_ATTR_STRING) {
      qv_error_set(e, QV_EINVAL, "%s line %zu: \"%s\" is %zu bytes long; a keyword is at most %d",
                   path, line, name, strlen(s), QV_MAX_ATTR_STRING);
      return -1;
    }
    return push_str(col, s) ? -2 : 0;
  }
  case QV_CLIENT_ATTR_TAGS: {
    if (!dflt && !json_is_array(v))
      break;
    const size_t nt = dflt ? 0 : json_array_size(v);
    for (size_t t = 0; t < nt; t++) {
      const json_t *x = json_array_get(v, t);
      if (!json_is_string(x)) {
        qv_error_set(e, QV_EINVAL,
                     "%s line %zu: \"%s\" is tags: an array of strings, but its item %zu is %s",
                     path, line, name, t, json_kind(x));
        return -1;
      }
      if (json_string_length(x) > QV_MAX_ATTR_STRING) {
        qv_error_set(e, QV_EINVAL,
                     "%s line %zu: \"%s\" item %zu is %zu bytes long; a tag is at most %d", path,
                     line, name, t, json_string_length(x), QV_MAX_ATTR_STRING);
        return -1;
      }
      if (push_str(col, json_string_value(x)))
        return -2;
    }
    col->counts[row] = (uint32_t)nt;
    col->tag_at[row + 1] = col->tag_at[row] + nt;
    return 0;
  }
  }
  static const char *const kWant[] = {"",         "an integer",         "a number", "true or false",
                                      "a string", "an array of strings"};
  qv_error_set(e, QV_EINVAL, "%s line %zu: \"%s\" is %s: it takes %s, not %s", path, line, name,
               tn ? tn : "?", kWant[col->field.type], json_kind(v));
  return -1;
}

qv_status cli_attrs_load(const char *path, const qv_collection_info *info, const char *input,
                         size_t n_rows, cli_attrs *out, qv_error *e) {
  memset(out, 0, sizeof *out);
  if (info->n_attrs == 0)
    return qv_error_set(e, QV_EINVAL,
                        "--attrs %s: collection '%s' has no attributes (declare them at create: "
                        "quiver create NAME ... --attr name:type)",
                        path, info->name);
  out->n_rows = n_rows;
  const size_t rows1 = n_rows ? n_rows : 1;
  for (size_t c = 0; c < info->n_attrs; c++) {
    cli_attr_col *col = &out->cols[out->n_cols++];
    col->field = info->attrs[c];
    int bad = 0;
    switch (col->field.type) {
    case QV_CLIENT_ATTR_INT64:
    case QV_CLIENT_ATTR_BOOL:
      bad = (col->ints = calloc(rows1, sizeof *col->ints)) == NULL;
      break;
    case QV_CLIENT_ATTR_FLOAT:
      bad = (col->floats = calloc(rows1, sizeof *col->floats)) == NULL;
      break;
    case QV_CLIENT_ATTR_KEYWORD:
      break;
    case QV_CLIENT_ATTR_TAGS:
      bad = (col->counts = calloc(rows1, sizeof *col->counts)) == NULL ||
            (col->tag_at = calloc(rows1 + 1, sizeof *col->tag_at)) == NULL;
      break;
    default:
      cli_attrs_free(out);
      return qv_error_set(e, QV_EINVAL,
                          "collection '%s' has attribute '%s' of a type this quiver does not know "
                          "(%d)",
                          info->name, col->field.name, (int)col->field.type);
    }
    if (bad) {
      cli_attrs_free(out);
      return qv_error_set(e, QV_ENOMEM, "out of memory for %zu rows of attributes", n_rows);
    }
  }
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return qv_error_set(e, QV_EIO, "--attrs %s: %s", path, strerror(errno));
  char *line = NULL;
  size_t cap = 0, row = 0;
  ssize_t len;
  qv_status st = QV_OK;
  while (st == QV_OK && (len = getline(&line, &cap, f)) >= 0) {
    const size_t ln = row + 1;
    if (row == n_rows) {
      st = qv_error_set(e, QV_EINVAL,
                        "%s line %zu: more lines than the %zu vectors of %s (one line per vector)",
                        path, ln, n_rows, input);
      break;
    }
    json_error_t je;
    json_t *obj = json_loadb(line, (size_t)len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (obj == NULL) {
      st = qv_error_set(e, QV_EINVAL, "%s line %zu: not JSON: %s (column %d)", path, ln, je.text,
                        je.column);
      break;
    }
    if (!json_is_object(obj)) {
      st = qv_error_set(e, QV_EINVAL,
                        "%s line %zu: a row is a JSON object {\"name\": value, ...}, "
                        "not %s",
                        path, ln, json_kind(obj));
      json_decref(obj);
      break;
    }
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
      size_t c = 0;
      while (c < out->n_cols && strcmp(out->cols[c].field.name, key) != 0)
        c++;
      if (c == out->n_cols) {
        char schema[QV_CLIENT_MAX_ATTRS * 80];
        schema_text(info, schema, sizeof schema);
        st = qv_error_set(e, QV_EINVAL, "%s line %zu: unknown attribute \"%s\" (%s has: %s)", path,
                          ln, key, info->name, schema);
        break;
      }
    }
    for (size_t c = 0; st == QV_OK && c < out->n_cols; c++) {
      int r =
          put_value(&out->cols[c], row, json_object_get(obj, out->cols[c].field.name), path, ln, e);
      if (r == -2)
        st = qv_error_set(e, QV_ENOMEM, "out of memory reading %s", path);
      else if (r != 0)
        st = QV_EINVAL;
    }
    json_decref(obj);
    row++;
  }
  if (st == QV_OK && ferror(f))
    st = qv_error_set(e, QV_EIO, "reading %s: %s", path, strerror(errno));
  if (st == QV_OK && row < n_rows)
    st = qv_error_set(e, QV_EINVAL,
                      "%s has %zu line(s); %s has %zu vectors: one line per vector, in order", path,
                      row, input, n_rows);
  free(line);
  fclose(f);
  if (st != QV_OK)
    cli_attrs_free(out);
  return st;
}

void cli_attrs_view(const cli_attrs *a, size_t off, qv_client_attr_column *cols) {
  for (size_t c = 0; c < a->n_cols; c++) {
    const cli_attr_col *col = &a->cols[c];
    qv_client_attr_column *v = &cols[c];
    memset(v, 0, sizeof *v);
    v->name = col->field.name;
    v->type = col->field.type;
    switch (col->field.type) {
    case QV_CLIENT_ATTR_INT64:
    case QV_CLIENT_ATTR_BOOL:
      v->ints = col->ints + off;
      break;
    case QV_CLIENT_ATTR_FLOAT:
      v->floats = col->floats + off;
      break;
    case QV_CLIENT_ATTR_KEYWORD:
      v->strs = (const char *const *)col->strs + off;
      break;
    case QV_CLIENT_ATTR_TAGS:
      v->counts = col->counts + off;
      v->strs = col->strs ? (const char *const *)col->strs + col->tag_at[off] : NULL;
      break;
    }
  }
}

int cli_attr_field_parse(const char *s, qv_client_attr_field *f, qv_error *e) {
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s) {
    qv_error_set(e, QV_EINVAL,
                 "--attr takes NAME:TYPE (TYPE int64, float, bool, keyword or tags), "
                 "not '%s'",
                 s);
    return -1;
  }
  const size_t nl = (size_t)(colon - s);
  if (nl >= sizeof f->name) {
    qv_error_set(e, QV_EINVAL, "--attr %s: the name is %zu bytes long; at most %zu", s, nl,
                 sizeof f->name - 1);
    return -1;
  }
  memset(f, 0, sizeof *f);
  memcpy(f->name, s, nl);
  qv_error te = {0};
  if (qv_client_attr_type_parse(colon + 1, &f->type, &te) != QV_OK) {
    qv_error_set(e, QV_EINVAL, "--attr %s: %s", s, te.msg);
    return -1;
  }
  return 0;
}

/* A double as JSON: the shortest of %.15g/%.17g that reads back the same. */
static void print_double(double x) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.15g", x);
  if (strtod(buf, NULL) != x)
    snprintf(buf, sizeof buf, "%.17g", x);
  fputs(buf, stdout);
}

void cli_attrs_print_json(const qv_client_attr_column *cols, size_t n, size_t row) {
  putchar('{');
  for (size_t c = 0; c < n; c++) {
    const qv_client_attr_column *col = &cols[c];
    printf("%s\"", c ? ", " : "");
    cli_print_json_str(col->name);
    printf("\": ");
    switch (col->type) {
    case QV_CLIENT_ATTR_INT64:
      printf("%" PRId64, col->ints ? col->ints[row] : 0);
      break;
    case QV_CLIENT_ATTR_FLOAT:
      print_double(col->floats ? col->floats[row] : 0.0);
      break;
    case QV_CLIENT_ATTR_BOOL:
      printf("%s", col->ints && col->ints[row] ? "true" : "false");
      break;
    case QV_CLIENT_ATTR_KEYWORD:
      putchar('"');
      cli_print_json_str(col->strs ? col->strs[row] : "");
      putchar('"');
      break;
    case QV_CLIENT_ATTR_TAGS: {
      size_t at = 0;
      for (size_t i = 0; col->counts && i < row; i++)
        at += col->counts[i];
      putchar('[');
      for (uint32_t t = 0; col->counts && t < col->counts[row]; t++) {
        printf("%s\"", t ? ", " : "");
        cli_print_json_str(col->strs[at + t]);
        putchar('"');
      }
      putchar(']');
      break;
    }
    default:
      printf("null");
    }
  }
  putchar('}');
}

void cli_attrs_print_schema(const qv_client_attr_field *f, size_t n) {
  if (n == 0)
    printf("none");
  for (size_t i = 0; i < n; i++) {
    const char *t = qv_client_attr_type_name(f[i].type);
    printf("%s%s %s", i ? ", " : "", f[i].name, t ? t : "?");
  }
}
