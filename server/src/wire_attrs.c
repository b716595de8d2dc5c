/* Item attributes on the wire: quiver.v1's AttributeField and AttributeColumn messages to and from
 * the index layer's schema and batches (quiver/attrs.h). See server_internal.h. */
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

/* The name of each value list of an AttributeColumn, by the type that uses it. */
static const char *list_name(qv_attr_type t) {
  switch (t) {
  case QV_ATTR_INT64:
    return "ints";
  case QV_ATTR_FLOAT:
    return "floats";
  case QV_ATTR_BOOL:
    return "bools";
  case QV_ATTR_KEYWORD:
    return "keywords";
  case QV_ATTR_TAGS:
    return "tags";
  }
  return "?";
}

/* How many values column c holds in the list of type t. */
static size_t list_len(const Quiver__V1__AttributeColumn *c, qv_attr_type t) {
  switch (t) {
  case QV_ATTR_INT64:
    return c->n_ints;
  case QV_ATTR_FLOAT:
    return c->n_floats;
  case QV_ATTR_BOOL:
    return c->n_bools;
  case QV_ATTR_KEYWORD:
    return c->n_keywords;
  case QV_ATTR_TAGS:
    return c->n_tags;
  }
  return 0;
}

static const qv_attr_type kTypes[] = {QV_ATTR_INT64, QV_ATTR_FLOAT, QV_ATTR_BOOL, QV_ATTR_KEYWORD,
                                      QV_ATTR_TAGS};
enum { N_TYPES = sizeof kTypes / sizeof kTypes[0] };

int qv__attr_type_from_pb(int pb, qv_attr_type *out) {
  /* The wire's numbers are the index layer's (ATTRIBUTE_INT64 = 1 = QV_ATTR_INT64, ...). */
  for (size_t i = 0; i < N_TYPES; i++)
    if ((int)kTypes[i] == pb) {
      *out = kTypes[i];
      return 0;
    }
  return -1;
}

Quiver__V1__AttributeType qv__attr_type_to_pb(qv_attr_type t) {
  return (Quiver__V1__AttributeType)t;
}

static int field_of(size_t n_fields, const qv_attr_field *fields, const char *name) {
  for (size_t j = 0; j < n_fields; j++)
    if (strcmp(fields[j].name, name) == 0)
      return (int)j;
  return -1;
}

qv_status qv__schema_from_pb(size_t n, Quiver__V1__AttributeField *const *in, qv_attr_field *out,
                             qv_error *err) {
  if (n > QV_MAX_ATTRS)
    return qv_error_set(err, QV_EINVAL, "%zu attributes: a collection has at most %d", n,
                        QV_MAX_ATTRS);
  for (size_t i = 0; i < n; i++) {
    const char *name = in[i]->name ? in[i]->name : "";
    if (strlen(name) >= QV_MAX_ATTR_NAME)
      return qv_error_set(err, QV_EINVAL,
                          "attributes[%zu]: the name '%.40s...' is %zu bytes; at most %d", i, name,
                          strlen(name), QV_MAX_ATTR_NAME - 1);
    memset(&out[i], 0, sizeof out[i]);
    memcpy(out[i].name, name, strlen(name) + 1);
    if (qv__attr_type_from_pb((int)in[i]->type, &out[i].type) != 0)
      return qv_error_set(err, QV_EINVAL,
                          "attributes[%zu] '%s': type %d is not one of ATTRIBUTE_INT64, "
                          "ATTRIBUTE_FLOAT, ATTRIBUTE_BOOL, ATTRIBUTE_KEYWORD, ATTRIBUTE_TAGS",
                          i, out[i].name, (int)in[i]->type);
  }
  return qv_attr_schema_check(n, out, err);
}

void qv__schema_to_pb(size_t n, const qv_attr_field *fields, Quiver__V1__AttributeField *f,
                      Quiver__V1__AttributeField **p) {
  for (size_t i = 0; i < n; i++) {
    quiver__v1__attribute_field__init(&f[i]);
    f[i].name = (char *)fields[i].name; /* only read: packed into the message */
    f[i].type = qv__attr_type_to_pb(fields[i].type);
    p[i] = &f[i];
  }
}

/* ---- an upsert's columns -> a batch -------------------------------------------------------- */

/* Column c (of attribute f) checked against n_rows: its type's list holds one value per row and
 * the others none. */
static qv_status column_check(const Quiver__V1__AttributeColumn *c, const qv_attr_field *f,
                              size_t n_rows, qv_error *err) {
  for (size_t t = 0; t < N_TYPES; t++) {
    const size_t got = list_len(c, kTypes[t]);
    if (kTypes[t] != f->type && got > 0)
      return qv_error_set(
          err, QV_EINVAL, "attribute '%s' is %s: send its values in %s (got %zu %s)", f->name,
          qv_attr_type_name(f->type), list_name(f->type), got, list_name(kTypes[t]));
  }
  const size_t got = list_len(c, f->type);
  if (got != n_rows)
    return qv_error_set(err, QV_EINVAL,
                        "attribute '%s' has %zu %s for %zu ids: send one value per item (or no "
                        "column for the defaults)",
                        f->name, got, list_name(f->type), n_rows);
  return QV_OK;
}

qv_status qv__attrs_from_pb(size_t n_fields, const qv_attr_field *fields, const char *collection,
                            size_t n_rows, size_t n_cols, Quiver__V1__AttributeColumn *const *cols,
                            qv__attrs_in *out, qv_error *err) {
  memset(out, 0, sizeof *out);
  out->b.columns = out->cols;
  int at[QV_MAX_ATTRS];
  size_t n_bools = 0, n_tagcols = 0, n_tags = 0;
  for (size_t i = 0; i < n_cols; i++) {
    const char *name = cols[i]->name ? cols[i]->name : "";
    const int j = field_of(n_fields, fields, name);
    if (j < 0 && n_fields == 0)
      return qv_error_set(err, QV_EINVAL,
                          "attributes[%zu] '%.64s': collection '%.64s' has no attributes (declare "
                          "them at create)",
                          i, name, collection);
    if (j < 0)
      return qv_error_set(err, QV_EINVAL,
                          "attributes[%zu] '%.64s' is not an attribute of collection '%.64s'", i,
                          name, collection);
    for (size_t p = 0; p < i; p++)
      if (at[p] == j)
        return qv_error_set(err, QV_EINVAL,
                            "attribute '%s' has two columns (attributes[%zu] and [%zu]): send "
                            "each at most once",
                            fields[j].name, p, i);
    /* Unique and known: i < n_fields <= QV_MAX_ATTRS. */
    at[i] = j;
    qv_status st = column_check(cols[i], &fields[j], n_rows, err);
    if (st != QV_OK)
      return st;
    if (fields[j].type == QV_ATTR_BOOL)
      n_bools += n_rows;
    if (fields[j].type == QV_ATTR_TAGS) {
      n_tagcols++;
      for (size_t r = 0; r < n_rows; r++)
        n_tags += cols[i]->tags[r]->n_tags;
    }
  }
  if ((n_bools > 0 && (out->ints = malloc(n_bools * sizeof *out->ints)) == NULL) ||
      (n_tagcols > 0 && (out->counts = malloc(n_tagcols * n_rows * sizeof *out->counts)) == NULL) ||
      (n_tags > 0 && (out->strs = malloc(n_tags * sizeof *out->strs)) == NULL)) {
    qv__attrs_in_free(out);
    return qv_error_set(err, QV_ENOMEM, "out of memory for the attributes of %zu items", n_rows);
  }
  int64_t *ints = out->ints;
  uint32_t *counts = out->counts;
  const char **strs = out->strs;
  for (size_t i = 0; i < n_cols; i++) {
    const Quiver__V1__AttributeColumn *c = cols[i];
    qv_attr_column *o = &out->cols[i];
    memset(o, 0, sizeof *o);
    o->name = fields[at[i]].name;
    o->type = fields[at[i]].type;
    switch (o->type) {
    case QV_ATTR_INT64:
      o->ints = c->ints;
      break;
    case QV_ATTR_FLOAT:
      o->floats = c->floats;
      break;
    case QV_ATTR_BOOL:
      for (size_t r = 0; r < n_rows; r++)
        ints[r] = c->bools[r] ? 1 : 0;
      o->ints = ints;
      ints += n_rows;
      break;
    case QV_ATTR_KEYWORD:
      o->strs = (const char *const *)c->keywords;
      break;
    case QV_ATTR_TAGS:
      o->counts = counts;
      o->strs = strs;
      for (size_t r = 0; r < n_rows; r++) {
        const Quiver__V1__TagList *l = c->tags[r];
        /* More than QV_MAX_TAGS is the index layer's refusal (it names the row). */
        counts[r] = l->n_tags > UINT32_MAX ? UINT32_MAX : (uint32_t)l->n_tags;
        for (size_t t = 0; t < l->n_tags; t++)
          *strs++ = l->tags[t];
      }
      counts += n_rows;
      break;
    }
  }
  out->b.n_columns = n_cols;
  return QV_OK;
}

void qv__attrs_in_free(qv__attrs_in *a) {
  free(a->ints);
  free(a->counts);
  free(a->strs);
  memset(a, 0, sizeof *a);
}

/* ---- a batch -> a Get answer's columns ------------------------------------------------------ */

qv_status qv__attrs_to_pb(const qv_attr_batch *b, size_t n_rows, const uint8_t *keep,
                          qv__attrs_out *out, qv_error *err) {
  memset(out, 0, sizeof *out);
  if (b == NULL || b->n_columns == 0)
    return QV_OK;
  const size_t nc = b->n_columns < QV_MAX_ATTRS ? b->n_columns : QV_MAX_ATTRS;
  size_t m = 0;
  for (size_t r = 0; r < n_rows; r++)
    m += keep == NULL || keep[r];
  for (size_t i = 0; i < nc; i++) {
    const qv_attr_column *c = &b->columns[i];
    Quiver__V1__AttributeColumn *o = &out->cols[i];
    quiver__v1__attribute_column__init(o);
    o->name = (char *)c->name; /* only read: packed into the answer */
    out->ptrs[i] = o;
    out->n = i + 1;
    const size_t one = c->type == QV_ATTR_INT64   ? sizeof(int64_t)
                       : c->type == QV_ATTR_FLOAT ? sizeof(double)
                       : c->type == QV_ATTR_BOOL  ? sizeof(protobuf_c_boolean)
                       : c->type == QV_ATTR_TAGS
                           ? sizeof(Quiver__V1__TagList) + sizeof(Quiver__V1__TagList *)
                           : sizeof(char *);
    if ((out->mem[i] = malloc((m ? m : 1) * one)) == NULL) {
      qv__attrs_out_free(out);
      return qv_error_set(err, QV_ENOMEM, "out of memory for the attributes of %zu items", m);
    }
    size_t o_row = 0, tag_at = 0;
    Quiver__V1__TagList *lists = out->mem[i];
    Quiver__V1__TagList **lptrs = (Quiver__V1__TagList **)(lists + m);
    for (size_t r = 0; r < n_rows; r++) {
      const size_t nt = c->type == QV_ATTR_TAGS ? c->counts[r] : 0;
      if (keep != NULL && !keep[r]) {
        tag_at += nt;
        continue;
      }
      switch (c->type) {
      case QV_ATTR_INT64:
        ((int64_t *)out->mem[i])[o_row] = c->ints[r];
        break;
      case QV_ATTR_FLOAT:
        ((double *)out->mem[i])[o_row] = c->floats[r];
        break;
      case QV_ATTR_BOOL:
        ((protobuf_c_boolean *)out->mem[i])[o_row] = c->ints[r] != 0;
        break;
      case QV_ATTR_KEYWORD:
        ((char **)out->mem[i])[o_row] = (char *)c->strs[r];
        break;
      case QV_ATTR_TAGS:
        quiver__v1__tag_list__init(&lists[o_row]);
        lists[o_row].n_tags = nt;
        lists[o_row].tags = nt ? (char **)(c->strs + tag_at) : NULL;
        lptrs[o_row] = &lists[o_row];
        tag_at += nt;
        break;
      }
      o_row++;
    }
    switch (c->type) {
    case QV_ATTR_INT64:
      o->n_ints = m;
      o->ints = out->mem[i];
      break;
    case QV_ATTR_FLOAT:
      o->n_floats = m;
      o->floats = out->mem[i];
      break;
    case QV_ATTR_BOOL:
      o->n_bools = m;
      o->bools = out->mem[i];
      break;
    case QV_ATTR_KEYWORD:
      o->n_keywords = m;
      o->keywords = out->mem[i];
      break;
    case QV_ATTR_TAGS:
      o->n_tags = m;
      o->tags = lptrs;
      break;
    }
  }
  return QV_OK;
}

void qv__attrs_out_free(qv__attrs_out *o) {
  for (size_t i = 0; i < QV_MAX_ATTRS; i++)
    free(o->mem[i]);
  memset(o, 0, sizeof *o);
}

/* ---- shards' Get answers -> one batch (a router) -------------------------------------------- */

/* The column of `name` in answer a, or NULL. */
static const Quiver__V1__AttributeColumn *column_in(const Quiver__V1__GetResponse *a,
                                                    const char *name) {
  for (size_t i = 0; i < a->n_attributes; i++)
    if (a->attributes[i]->name != NULL && strcmp(a->attributes[i]->name, name) == 0)
      return a->attributes[i];
  return NULL;
}

qv_status qv__attrs_gather(size_t n_fields, const qv_attr_field *fields, size_t n,
                           const Quiver__V1__GetResponse *const *src, const size_t *rows,
                           qv__attrs_merged *out, qv_error *err) {
  memset(out, 0, sizeof *out);
  out->b.columns = out->cols;
  const size_t nc = n_fields < QV_MAX_ATTRS ? n_fields : QV_MAX_ATTRS;
  for (size_t i = 0; i < nc; i++) {
    const qv_attr_field *f = &fields[i];
    qv_attr_column *o = &out->cols[i];
    memset(o, 0, sizeof *o);
    memcpy(out->names[i], f->name, sizeof out->names[i]);
    out->names[i][QV_MAX_ATTR_NAME - 1] = '\0';
    o->name = out->names[i];
    o->type = f->type;
    out->b.n_columns = i + 1;
    /* Each answer's column of this attribute, checked; the bytes its strings take. */
    size_t strings = 0, bytes = 0;
    for (size_t r = 0; r < n; r++) {
      if (src[r] == NULL)
        continue;
      const Quiver__V1__AttributeColumn *c = column_in(src[r], f->name);
      if (c == NULL || column_check(c, f, src[r]->n_ids, NULL) != QV_OK || rows[r] >= src[r]->n_ids)
        return qv_error_set(err, QV_EINTERNAL,
                            "a shard answered a Get without a whole column of attribute '%s'",
                            f->name);
      if (f->type == QV_ATTR_KEYWORD) {
        strings++;
        bytes += strlen(c->keywords[rows[r]]) + 1;
      } else if (f->type == QV_ATTR_TAGS) {
        const Quiver__V1__TagList *l = c->tags[rows[r]];
        strings += l->n_tags;
        for (size_t t = 0; t < l->n_tags; t++)
          bytes += strlen(l->tags[t]) + 1;
      }
    }
    const size_t one = f->type == QV_ATTR_FLOAT     ? sizeof(double)
                       : f->type == QV_ATTR_KEYWORD ? sizeof(char *)
                       : f->type == QV_ATTR_TAGS    ? sizeof(uint32_t)
                                                    : sizeof(int64_t);
    if ((out->mem[i] = malloc((n ? n : 1) * one)) == NULL ||
        (f->type == QV_ATTR_TAGS &&
         (out->strs[i] = malloc((strings ? strings : 1) * sizeof(char *))) == NULL) ||
        (bytes > 0 && (out->chars[i] = malloc(bytes)) == NULL)) {
      qv__attrs_merged_free(out);
      return qv_error_set(err, QV_ENOMEM, "out of memory for the attributes of %zu items", n);
    }
    char *chars = out->chars[i];
    const char **strs = (const char **)out->strs[i];
    for (size_t r = 0; r < n; r++) {
      const Quiver__V1__AttributeColumn *c = src[r] ? column_in(src[r], f->name) : NULL;
      const size_t h = rows[r];
      switch (f->type) {
      case QV_ATTR_INT64:
        ((int64_t *)out->mem[i])[r] = c ? c->ints[h] : 0;
        break;
      case QV_ATTR_BOOL:
        ((int64_t *)out->mem[i])[r] = c ? c->bools[h] != 0 : 0;
        break;
      case QV_ATTR_FLOAT:
        ((double *)out->mem[i])[r] = c ? c->floats[h] : 0.0;
        break;
      case QV_ATTR_KEYWORD: {
        const char *s = c ? c->keywords[h] : "";
        const size_t len = strlen(s);
        if (c != NULL) {
          memcpy(chars, s, len + 1);
          s = chars;
          chars += len + 1;
        }
        ((const char **)out->mem[i])[r] = s;
        break;
      }
      case QV_ATTR_TAGS: {
        const Quiver__V1__TagList *l = c ? c->tags[h] : NULL;
        const size_t nt = l ? l->n_tags : 0;
        ((uint32_t *)out->mem[i])[r] = (uint32_t)nt;
        for (size_t t = 0; t < nt; t++) {
          const size_t len = strlen(l->tags[t]);
          memcpy(chars, l->tags[t], len + 1);
          *strs++ = chars;
          chars += len + 1;
        }
        break;
      }
      }
    }
    switch (f->type) {
    case QV_ATTR_INT64:
    case QV_ATTR_BOOL:
      o->ints = out->mem[i];
      break;
    case QV_ATTR_FLOAT:
      o->floats = out->mem[i];
      break;
    case QV_ATTR_KEYWORD:
      o->strs = out->mem[i];
      break;
    case QV_ATTR_TAGS:
      o->counts = out->mem[i];
      o->strs = (const char *const *)out->strs[i];
      break;
    }
  }
  return QV_OK;
}

void qv__attrs_merged_free(qv__attrs_merged *g) {
  for (size_t i = 0; i < QV_MAX_ATTRS; i++) {
    free(g->mem[i]);
    free(g->strs[i]);
    free(g->chars[i]);
  }
  memset(g, 0, sizeof *g);
}

/* ---- an upsert's columns split by rows (a router's per-shard records) ------------------------ */

static size_t elem_size(qv_attr_type t) {
  switch (t) {
  case QV_ATTR_INT64:
    return sizeof(int64_t);
  case QV_ATTR_FLOAT:
    return sizeof(double);
  case QV_ATTR_BOOL:
    return sizeof(protobuf_c_boolean);
  case QV_ATTR_KEYWORD:
    return sizeof(char *);
  case QV_ATTR_TAGS:
    return sizeof(Quiver__V1__TagList *);
  }
  return sizeof(void *);
}

qv_status qv__attrs_split_init(qv__attrs_split *s, size_t n_fields, const qv_attr_field *fields,
                               size_t n_rows, size_t n_cols,
                               Quiver__V1__AttributeColumn *const *cols, qv_error *err) {
  memset(s, 0, sizeof *s);
  if (n_cols > QV_MAX_ATTRS)
    return qv_error_set(err, QV_EINVAL, "%zu attribute columns: at most %d", n_cols, QV_MAX_ATTRS);
  for (size_t i = 0; i < n_cols; i++) {
    const int j = field_of(n_fields, fields, cols[i]->name ? cols[i]->name : "");
    if (j < 0)
      return qv_error_set(err, QV_EINVAL, "attributes[%zu] is not an attribute", i);
    s->src[i] = cols[i];
    s->type[i] = fields[j].type;
    quiver__v1__attribute_column__init(&s->cols[i]);
    s->cols[i].name = cols[i]->name;
    s->ptrs[i] = &s->cols[i];
    s->n = i + 1;
    if ((s->bufs[i] = malloc((n_rows ? n_rows : 1) * elem_size(s->type[i]))) == NULL) {
      qv__attrs_split_free(s);
      return qv_error_set(err, QV_ENOMEM, "out of memory");
    }
  }
  return QV_OK;
}

size_t qv__attrs_row_bytes(const qv__attrs_split *s, size_t i) {
  size_t b = 0;
  for (size_t c = 0; c < s->n; c++) {
    const Quiver__V1__AttributeColumn *x = s->src[c];
    switch (s->type[c]) {
    case QV_ATTR_INT64:
      b += 10;
      break;
    case QV_ATTR_FLOAT:
      b += 8;
      break;
    case QV_ATTR_BOOL:
      b += 1;
      break;
    case QV_ATTR_KEYWORD:
      b += strlen(x->keywords[i]) + 3;
      break;
    case QV_ATTR_TAGS:
      b += 3;
      for (size_t t = 0; t < x->tags[i]->n_tags; t++)
        b += strlen(x->tags[i]->tags[t]) + 3;
      break;
    }
  }
  return b;
}

void qv__attrs_split_set(qv__attrs_split *s, size_t m, size_t i) {
  for (size_t c = 0; c < s->n; c++) {
    const Quiver__V1__AttributeColumn *x = s->src[c];
    switch (s->type[c]) {
    case QV_ATTR_INT64:
      ((int64_t *)s->bufs[c])[m] = x->ints[i];
      break;
    case QV_ATTR_FLOAT:
      ((double *)s->bufs[c])[m] = x->floats[i];
      break;
    case QV_ATTR_BOOL:
      ((protobuf_c_boolean *)s->bufs[c])[m] = x->bools[i];
      break;
    case QV_ATTR_KEYWORD:
      ((char **)s->bufs[c])[m] = x->keywords[i];
      break;
    case QV_ATTR_TAGS:
      ((Quiver__V1__TagList **)s->bufs[c])[m] = x->tags[i];
      break;
    }
  }
}

void qv__attrs_split_rows(qv__attrs_split *s, size_t m) {
  for (size_t c = 0; c < s->n; c++) {
    Quiver__V1__AttributeColumn *o = &s->cols[c];
    switch (s->type[c]) {
    case QV_ATTR_INT64:
      o->n_ints = m;
      o->ints = s->bufs[c];
      break;
    case QV_ATTR_FLOAT:
      o->n_floats = m;
      o->floats = s->bufs[c];
      break;
    case QV_ATTR_BOOL:
      o->n_bools = m;
      o->bools = s->bufs[c];
      break;
    case QV_ATTR_KEYWORD:
      o->n_keywords = m;
      o->keywords = s->bufs[c];
      break;
    case QV_ATTR_TAGS:
      o->n_tags = m;
      o->tags = s->bufs[c];
      break;
    }
  }
}

void qv__attrs_split_free(qv__attrs_split *s) {
  for (size_t i = 0; i < QV_MAX_ATTRS; i++)
    free(s->bufs[i]);
  memset(s, 0, sizeof *s);
}
