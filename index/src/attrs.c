/* Item attributes: schema, columns, dictionaries and their binary form (see attrs.h).
 *
 * Binary form (write-ahead log records and a snapshot's attrs.bin), little-endian:
 *   u32 magic "QVA1", u32 rows, u32 columns, then per column
 *     u8 type, u8 name length, the name, and rows values:
 *       INT64 i64; FLOAT f64; BOOL u8 (0/1);
 *       KEYWORD u16 length + bytes; TAGS u16 count, then count x (u16 length + bytes).
 * A log record holds the columns its write carried (any order); attrs.bin holds every column of
 * the schema. The decoder checks every length against the bytes left and every name and type
 * against the schema. */
#include "attrs.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ATTRS_MAGIC 0x31415651u /* "QVA1" */

static const char *const type_names[] = {NULL, "int64", "float", "bool", "keyword", "tags"};

const char *qv_attr_type_name(qv_attr_type t) {
  return t >= QV_ATTR_INT64 && t <= QV_ATTR_TAGS ? type_names[t] : NULL;
}

qv_status qv_attr_type_parse(const char *s, qv_attr_type *out, qv_error *err) {
  for (int t = QV_ATTR_INT64; t <= QV_ATTR_TAGS; t++)
    if (s != NULL && strcmp(s, type_names[t]) == 0) {
      *out = (qv_attr_type)t;
      return QV_OK;
    }
  return qv_error_set(err, QV_EINVAL,
                      "unknown attribute type '%.40s' (use int64, float, bool, keyword or tags)",
                      s ? s : "");
}

static int is_strings(qv_attr_type t) {
  return t == QV_ATTR_KEYWORD || t == QV_ATTR_TAGS;
}

/* The filter language's keywords (filter.c) cannot name an attribute. */
static const char *const reserved[] = {"and", "or",  "not",  "in",   "has",
                                       "any", "all", "true", "false"};

qv_status qv_attr_schema_check(size_t n, const qv_attr_field *f, qv_error *err) {
  if (n > QV_MAX_ATTRS)
    return qv_error_set(err, QV_EINVAL, "%zu attributes: at most %d", n, QV_MAX_ATTRS);
  if (n > 0 && f == NULL)
    return qv_error_set(err, QV_EINVAL, "attributes: NULL schema");
  for (size_t i = 0; i < n; i++) {
    const char *s = f[i].name;
    size_t len = strnlen(s, QV_MAX_ATTR_NAME);
    int ok = len > 0 && len < QV_MAX_ATTR_NAME && (isalpha((unsigned char)s[0]) || s[0] == '_');
    for (size_t j = 1; ok && j < len; j++)
      ok = isalnum((unsigned char)s[j]) || s[j] == '_';
    if (!ok)
      return qv_error_set(err, QV_EINVAL,
                          "attribute %zu: name '%.*s' is not [A-Za-z_][A-Za-z0-9_]{0,62}", i,
                          (int)(len < 64 ? len : 63), s);
    for (size_t r = 0; r < sizeof reserved / sizeof *reserved; r++)
      if (strcasecmp(s, reserved[r]) == 0)
        return qv_error_set(err, QV_EINVAL,
                            "attribute %zu: '%s' is a filter keyword; pick another name", i, s);
    if (qv_attr_type_name(f[i].type) == NULL)
      return qv_error_set(err, QV_EINVAL,
                          "attribute '%s': unknown type %d (use int64, float, bool, keyword or "
                          "tags)",
                          s, (int)f[i].type);
    for (size_t j = 0; j < i; j++)
      if (strcmp(f[j].name, s) == 0)
        return qv_error_set(err, QV_EINVAL, "attribute '%s' is declared twice", s);
  }
  return QV_OK;
}

/* ---- dictionaries ------------------------------------------------------------------------ */

static uint64_t hash_str(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

int64_t qv__dict_find(const qv__dict *d, const char *s) {
  if (d->nslots == 0)
    return -1;
  size_t len = strlen(s);
  for (uint32_t i = (uint32_t)hash_str(s, len) & (d->nslots - 1);; i = (i + 1) & (d->nslots - 1)) {
    uint32_t v = d->slots[i];
    if (v == 0)
      return -1;
    if (strcmp(d->strs[v - 1], s) == 0)
      return (int64_t)(v - 1);
  }
}

static int dict_rehash(qv__dict *d, uint32_t nslots) {
  uint32_t *sl = calloc(nslots, sizeof *sl);
  if (sl == NULL)
    return -1;
  for (uint32_t c = 0; c < d->n; c++) {
    uint32_t i = (uint32_t)hash_str(d->strs[c], strlen(d->strs[c])) & (nslots - 1);
    while (sl[i] != 0)
      i = (i + 1) & (nslots - 1);
    sl[i] = c + 1;
  }
  free(d->slots);
  d->slots = sl;
  d->nslots = nslots;
  return 0;
}

/* The code of s, adding it when new. -1: out of memory (or too many values). */
static int64_t dict_intern(qv__dict *d, const char *s) {
  int64_t c = qv__dict_find(d, s);
  if (c >= 0)
    return c;
  if (d->n >= UINT32_MAX / 4)
    return -1;
  if ((d->n + 1) * 2 > d->nslots && dict_rehash(d, d->nslots ? d->nslots * 2 : 64) != 0)
    return -1;
  if (d->n == d->cap) {
    uint32_t cap = d->cap ? d->cap * 2 : 32;
    char **p = realloc(d->strs, cap * sizeof *p);
    if (p == NULL)
      return -1;
    d->strs = p;
    d->cap = cap;
  }
  size_t len = strlen(s);
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return -1;
  memcpy(copy, s, len + 1);
  d->strs[d->n] = copy;
  uint32_t i = (uint32_t)hash_str(s, len) & (d->nslots - 1);
  while (d->slots[i] != 0)
    i = (i + 1) & (d->nslots - 1);
  d->slots[i] = d->n + 1;
  d->bytes += len + 1 + sizeof(char *) + 2 * sizeof(uint32_t);
  return d->n++;
}

static void dict_fini(qv__dict *d) {
  for (uint32_t c = 0; c < d->n; c++)
    free(d->strs[c]);
  free(d->strs);
  free(d->slots);
  memset(d, 0, sizeof *d);
}

/* ---- the store's columns ------------------------------------------------------------------- */

void qv__attrs_init(qv__attrs *a) {
  memset(a, 0, sizeof *a);
}

/* Every code of column j's dictionary gets its (empty) posting, so that put, move and copy_row
 * only add to bitmaps that exist. 0 or -1 (out of memory). */
static int post_reserve(qv__attrs *a, size_t j) {
  const uint32_t n = a->dict[j].n;
  if (n <= a->npost[j])
    return 0;
  roaring_bitmap_t **p = realloc(a->post[j], n * sizeof *p);
  if (p == NULL)
    return -1;
  a->post[j] = p;
  for (uint32_t c = a->npost[j]; c < n; c++) {
    if ((p[c] = roaring_bitmap_create()) == NULL)
      return -1;
    a->npost[j] = c + 1;
  }
  return 0;
}

/* Adds (add = 1) or removes row from the postings of the codes in slot v of column j. */
static void post_row(qv__attrs *a, size_t j, uint64_t v, size_t row, int add) {
  uint32_t one = (uint32_t)v, n = 1;
  const uint32_t *codes = &one;
  if (a->f[j].type == QV_ATTR_TAGS) {
    const uint32_t *set = (const uint32_t *)(uintptr_t)v;
    n = set ? set[0] : 0;
    codes = set ? set + 1 : NULL;
  }
  for (uint32_t u = 0; u < n; u++) {
    if (codes[u] >= a->npost[j])
      continue; /* cannot be: post_reserve ran for every code a slot holds */
    if (add)
      roaring_bitmap_add(a->post[j][codes[u]], (uint32_t)row);
    else
      roaring_bitmap_remove(a->post[j][codes[u]], (uint32_t)row);
  }
}

static int is_number(qv_attr_type t) {
  return t == QV_ATTR_INT64 || t == QV_ATTR_FLOAT;
}

static void mark_dirty(qv__attrs *a, size_t row) {
  if (a->sorted_n > 0)
    roaring_bitmap_add(a->dirty, (uint32_t)row);
}

typedef struct key_row {
  uint64_t key;
  uint32_t row;
} key_row;

static int cmp_key_row(const void *x, const void *y) {
  const key_row *a = x, *b = y;
  if (a->key != b->key)
    return a->key < b->key ? -1 : 1;
  return a->row < b->row ? -1 : a->row > b->row;
}

int qv__attrs_sort_build(const qv__attrs *a, size_t count, qv__sorted *out) {
  memset(out, 0, sizeof *out);
  out->n = count;
  key_row *kr = NULL;
  for (size_t j = 0; j < a->n; j++) {
    if (!is_number(a->f[j].type))
      continue;
    if (kr == NULL && (kr = malloc((count ? count : 1) * sizeof *kr)) == NULL)
      goto nomem;
    for (size_t r = 0; r < count; r++)
      kr[r] = (key_row){qv__attrs_key(a->f[j].type, a->col[j][r]), (uint32_t)r};
    qsort(kr, count, sizeof *kr, cmp_key_row);
    out->key[j] = malloc((count ? count : 1) * sizeof(uint64_t));
    out->row[j] = malloc((count ? count : 1) * sizeof(uint32_t));
    if (out->key[j] == NULL || out->row[j] == NULL)
      goto nomem;
    for (size_t r = 0; r < count; r++) {
      out->key[j][r] = kr[r].key;
      out->row[j][r] = kr[r].row;
    }
  }
  free(kr);
  return 0;
nomem:
  free(kr);
  for (size_t j = 0; j < QV_MAX_ATTRS; j++) {
    free(out->key[j]);
    free(out->row[j]);
  }
  memset(out, 0, sizeof *out);
  return -1;
}

void qv__attrs_sort_swap(qv__attrs *a, qv__sorted *s) {
  for (size_t j = 0; j < QV_MAX_ATTRS; j++) {
    uint64_t *k = a->skey[j];
    uint32_t *r = a->srow[j];
    a->skey[j] = s->key[j];
    a->srow[j] = s->row[j];
    s->key[j] = k;
    s->row[j] = r;
  }
  size_t n = a->sorted_n;
  a->sorted_n = s->n;
  s->n = n;
  if (a->dirty == NULL)
    a->dirty = roaring_bitmap_create();
  else
    roaring_bitmap_clear(a->dirty);
  if (a->dirty == NULL)
    a->sorted_n = 0;                          /* no bitmap to track writes: the tests scan */
  for (size_t j = 0; j < QV_MAX_ATTRS; j++) { /* the old ones */
    free(s->key[j]);
    free(s->row[j]);
    s->key[j] = NULL;
    s->row[j] = NULL;
  }
}

void qv__attrs_fini(qv__attrs *a, size_t count) {
  for (size_t j = 0; j < QV_MAX_ATTRS; j++) {
    free(a->skey[j]);
    free(a->srow[j]);
  }
  if (a->dirty != NULL) /* CRoaring 0.2.66 does not take NULL */
    roaring_bitmap_free(a->dirty);
  for (size_t j = 0; j < a->n; j++) {
    for (uint32_t c = 0; c < a->npost[j]; c++)
      roaring_bitmap_free(a->post[j][c]);
    free(a->post[j]);
    if (a->f[j].type == QV_ATTR_TAGS && a->col[j] != NULL)
      for (size_t r = 0; r < count; r++)
        free((void *)(uintptr_t)a->col[j][r]);
    free(a->col[j]);
    dict_fini(&a->dict[j]);
  }
  memset(a, 0, sizeof *a);
}

qv_status qv__attrs_set_schema(qv__attrs *a, size_t n, const qv_attr_field *f, qv_error *err) {
  qv_status st = qv_attr_schema_check(n, f, err);
  if (st != QV_OK)
    return st;
  a->n = n;
  uint64_t h = 1469598103934665603ull;
  for (size_t j = 0; j < n; j++) {
    a->f[j] = f[j];
    a->f[j].name[QV_MAX_ATTR_NAME - 1] = '\0';
    h = (h ^ hash_str(a->f[j].name, strlen(a->f[j].name))) * 1099511628211ull;
    h = (h ^ (uint64_t)f[j].type) * 1099511628211ull;
    if (is_strings(f[j].type) && (dict_intern(&a->dict[j], "") != 0 || post_reserve(a, j) != 0))
      return qv_error_set(err, QV_ENOMEM, "out of memory for attribute dictionaries");
  }
  a->hash = n ? h : 0;
  return QV_OK;
}

int qv__attrs_same_schema(const qv__attrs *a, const qv__attrs *b) {
  if (a->n != b->n)
    return 0;
  for (size_t j = 0; j < a->n; j++)
    if (a->f[j].type != b->f[j].type || strcmp(a->f[j].name, b->f[j].name) != 0)
      return 0;
  return 1;
}

int qv__attrs_reserve(qv__attrs *a, size_t cap) {
  for (size_t j = 0; j < a->n; j++) {
    uint64_t *p = realloc(a->col[j], (cap ? cap : 1) * sizeof *p);
    if (p == NULL)
      return -1;
    a->col[j] = p;
  }
  return 0;
}

uint64_t qv__attrs_bytes(const qv__attrs *a, size_t cap) {
  uint64_t b = a->tag_bytes;
  for (size_t j = 0; j < a->n; j++) {
    b += (uint64_t)cap * sizeof(uint64_t) + a->dict[j].bytes;
    if (a->skey[j] != NULL)
      b += (uint64_t)a->sorted_n * (sizeof(uint64_t) + sizeof(uint32_t));
    for (uint32_t c = 0; c < a->npost[j]; c++)
      b += roaring_bitmap_size_in_bytes(a->post[j][c]) + sizeof(void *);
  }
  return b;
}

static int find_field(const qv__attrs *a, const char *name) {
  for (size_t j = 0; j < a->n; j++)
    if (strcmp(a->f[j].name, name) == 0)
      return (int)j;
  return -1;
}

static size_t tags_of(uint64_t slot) {
  return slot ? ((const uint32_t *)(uintptr_t)slot)[0] : 0;
}

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return a < b ? -1 : a > b;
}

qv_status qv_attr_batch_check(size_t nf, const qv_attr_field *fields, size_t n,
                              const qv_attr_batch *b, qv_error *err) {
  if (b == NULL || b->n_columns == 0)
    return QV_OK;
  if (nf == 0)
    return qv_error_set(err, QV_EINVAL,
                        "the collection has no attributes: declare them at create (or send none)");
  if (b->columns == NULL)
    return qv_error_set(err, QV_EINVAL, "attributes: NULL columns");
  unsigned seen[QV_MAX_ATTRS] = {0};
  for (size_t c = 0; c < b->n_columns; c++) {
    const qv_attr_column *col = &b->columns[c];
    const char *name = col->name ? col->name : "";
    size_t j = 0;
    while (j < nf && strcmp(fields[j].name, name) != 0)
      j++;
    if (j == nf)
      return qv_error_set(err, QV_EINVAL, "attribute '%.64s' is not in the collection's schema",
                          name);
    if (seen[j]++)
      return qv_error_set(err, QV_EINVAL, "attribute '%s' is sent twice", name);
    const qv_attr_type t = fields[j].type;
    if (col->type != t)
      return qv_error_set(err, QV_EINVAL, "attribute '%s' is %s, not %s", name,
                          qv_attr_type_name(t),
                          qv_attr_type_name(col->type) ? qv_attr_type_name(col->type) : "?");
    if (n == 0)
      continue;
    if (((t == QV_ATTR_INT64 || t == QV_ATTR_BOOL) && col->ints == NULL) ||
        (t == QV_ATTR_FLOAT && col->floats == NULL) || (is_strings(t) && col->strs == NULL) ||
        (t == QV_ATTR_TAGS && col->counts == NULL))
      return qv_error_set(err, QV_EINVAL, "attribute '%s': NULL values", name);
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
      if (t == QV_ATTR_BOOL && col->ints[i] != 0 && col->ints[i] != 1)
        return qv_error_set(err, QV_EINVAL, "attribute '%s', row %zu: a bool is 0 or 1, not %lld",
                            name, i, (long long)col->ints[i]);
      if (t == QV_ATTR_FLOAT && !isfinite(col->floats[i]))
        return qv_error_set(err, QV_EINVAL, "attribute '%s', row %zu: NaN or infinite", name, i);
      size_t ns = t == QV_ATTR_KEYWORD ? 1 : t == QV_ATTR_TAGS ? col->counts[i] : 0;
      if (t == QV_ATTR_TAGS && ns > QV_MAX_TAGS)
        return qv_error_set(err, QV_EINVAL, "attribute '%s', row %zu: %zu tags (at most %d)", name,
                            i, ns, QV_MAX_TAGS);
      for (size_t u = 0; u < ns; u++, s++) {
        const char *v = col->strs[s];
        if (v == NULL)
          return qv_error_set(err, QV_EINVAL, "attribute '%s', row %zu: NULL string", name, i);
        if (strnlen(v, QV_MAX_ATTR_STRING + 1) > QV_MAX_ATTR_STRING)
          return qv_error_set(err, QV_EINVAL,
                              "attribute '%s', row %zu: a string of more than %d bytes", name, i,
                              QV_MAX_ATTR_STRING);
      }
    }
  }
  return QV_OK;
}

qv_status qv__attrs_prepare(qv__attrs *a, const qv_attr_batch *b, size_t m, const size_t *src,
                            uint64_t **vals, qv_error *err) {
  *vals = NULL;
  if (a->n == 0)
    return QV_OK;
  const size_t A = a->n;
  uint64_t *v = calloc(m ? m * A : 1, sizeof *v);
  if (v == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory for the attributes of %zu items", m);
  size_t nc = b ? b->n_columns : 0;
  for (size_t c = 0; c < nc; c++) {
    const qv_attr_column *col = &b->columns[c];
    const int j = find_field(a, col->name); /* checked by qv_attr_batch_check */
    const qv_attr_type t = a->f[j].type;
    /* TAGS: where each input row's tags start. */
    size_t *start = NULL;
    if (t == QV_ATTR_TAGS) {
      size_t nin = 0;
      for (size_t r = 0; r < m; r++)
        if (src[r] + 1 > nin)
          nin = src[r] + 1;
      start = malloc((nin + 1) * sizeof *start);
      if (start == NULL)
        goto nomem;
      start[0] = 0;
      for (size_t i = 0; i < nin; i++)
        start[i + 1] = start[i] + col->counts[i];
    }
    for (size_t r = 0; r < m; r++) {
      const size_t i = src[r];
      uint64_t *slot = &v[r * A + (size_t)j];
      if (t == QV_ATTR_INT64 || t == QV_ATTR_BOOL) {
        *slot = (uint64_t)col->ints[i];
      } else if (t == QV_ATTR_FLOAT) {
        double d = col->floats[i] == 0.0 ? 0.0 : col->floats[i]; /* -0.0 sorts as 0.0 */
        memcpy(slot, &d, sizeof d);
      } else if (t == QV_ATTR_KEYWORD) {
        int64_t code = dict_intern(&a->dict[j], col->strs[i]);
        if (code < 0)
          goto nomem;
        *slot = (uint64_t)code;
      } else if (col->counts[i] > 0) {
        uint32_t cnt = col->counts[i];
        uint32_t *set = malloc((1 + (size_t)cnt) * sizeof *set);
        if (set == NULL) {
          free(start);
          goto nomem;
        }
        for (uint32_t u = 0; u < cnt; u++) {
          int64_t code = dict_intern(&a->dict[j], col->strs[start[i] + u]);
          if (code < 0) {
            free(set);
            free(start);
            goto nomem;
          }
          set[1 + u] = (uint32_t)code;
        }
        qsort(set + 1, cnt, sizeof *set, cmp_u32);
        uint32_t w = 0;
        for (uint32_t u = 0; u < cnt; u++)
          if (w == 0 || set[1 + u] != set[w])
            set[1 + w++] = set[1 + u];
        set[0] = w;
        *slot = (uint64_t)(uintptr_t)set;
      }
    }
    free(start);
    if (is_strings(t) && post_reserve(a, (size_t)j) != 0)
      goto nomem;
  }
  *vals = v;
  return QV_OK;
nomem:
  qv__attrs_vals_free(a, v, m);
  return qv_error_set(err, QV_ENOMEM, "out of memory for the attributes of %zu items", m);
}

void qv__attrs_vals_free(qv__attrs *a, uint64_t *vals, size_t m) {
  if (vals == NULL)
    return;
  for (size_t j = 0; j < a->n; j++)
    if (a->f[j].type == QV_ATTR_TAGS)
      for (size_t r = 0; r < m; r++)
        free((void *)(uintptr_t)vals[r * a->n + j]);
  free(vals);
}

void qv__attrs_put(qv__attrs *a, size_t row, const uint64_t *v, int replace) {
  mark_dirty(a, row);
  for (size_t j = 0; j < a->n; j++) {
    if (is_strings(a->f[j].type)) {
      if (replace)
        post_row(a, j, a->col[j][row], row, 0);
      post_row(a, j, v[j], row, 1);
    }
    if (a->f[j].type == QV_ATTR_TAGS) {
      if (replace) {
        a->tag_bytes -= tags_of(a->col[j][row]) * sizeof(uint32_t);
        free((void *)(uintptr_t)a->col[j][row]);
      }
      a->tag_bytes += tags_of(v[j]) * sizeof(uint32_t);
    }
    a->col[j][row] = v[j];
  }
}

void qv__attrs_drop(qv__attrs *a, size_t row) {
  mark_dirty(a, row);
  for (size_t j = 0; j < a->n; j++) {
    if (is_strings(a->f[j].type))
      post_row(a, j, a->col[j][row], row, 0);
    if (a->f[j].type == QV_ATTR_TAGS) {
      a->tag_bytes -= tags_of(a->col[j][row]) * sizeof(uint32_t);
      free((void *)(uintptr_t)a->col[j][row]);
      a->col[j][row] = 0;
    }
  }
}

void qv__attrs_move(qv__attrs *a, size_t dst, size_t src) {
  mark_dirty(a, dst);
  mark_dirty(a, src);
  for (size_t j = 0; j < a->n; j++) {
    if (is_strings(a->f[j].type)) {
      post_row(a, j, a->col[j][src], src, 0);
      post_row(a, j, a->col[j][src], dst, 1);
    }
    a->col[j][dst] = a->col[j][src];
  }
}

int qv__attrs_copy_row(qv__attrs *dst, size_t dr, const qv__attrs *src, size_t sr) {
  mark_dirty(dst, dr);
  for (size_t j = 0; j < dst->n; j++) {
    uint64_t s = src->col[j][sr];
    if (dst->f[j].type == QV_ATTR_KEYWORD) {
      int64_t code = dict_intern(&dst->dict[j], src->dict[j].strs[s]);
      if (code < 0)
        return -1;
      s = (uint64_t)code;
    } else if (dst->f[j].type == QV_ATTR_TAGS && s != 0) {
      const uint32_t *from = (const uint32_t *)(uintptr_t)s;
      uint32_t *set = malloc((1 + (size_t)from[0]) * sizeof *set);
      if (set == NULL)
        return -1;
      set[0] = from[0];
      for (uint32_t u = 0; u < from[0]; u++) {
        int64_t code = dict_intern(&dst->dict[j], src->dict[j].strs[from[1 + u]]);
        if (code < 0) {
          free(set);
          return -1;
        }
        set[1 + u] = (uint32_t)code;
      }
      qsort(set + 1, set[0], sizeof *set, cmp_u32);
      dst->tag_bytes += set[0] * sizeof(uint32_t);
      s = (uint64_t)(uintptr_t)set;
    }
    dst->col[j][dr] = s;
    if (is_strings(dst->f[j].type)) {
      if (post_reserve(dst, j) != 0)
        return -1;
      post_row(dst, j, s, dr, 1);
    }
  }
  return 0;
}

/* ---- owned batches ----------------------------------------------------------------------- */

typedef struct arena {
  void **blocks;
  size_t n, cap;
} arena;

static void *arena_alloc(arena *ar, size_t bytes) {
  if (ar->n == ar->cap) {
    size_t cap = ar->cap ? ar->cap * 2 : 16;
    void **p = realloc(ar->blocks, cap * sizeof *p);
    if (p == NULL)
      return NULL;
    ar->blocks = p;
    ar->cap = cap;
  }
  void *b = calloc(1, bytes ? bytes : 1);
  if (b != NULL)
    ar->blocks[ar->n++] = b;
  return b;
}

static void arena_free(arena *ar) {
  if (ar == NULL)
    return;
  for (size_t i = 0; i < ar->n; i++)
    free(ar->blocks[i]);
  free(ar->blocks);
  free(ar);
}

void qv_attr_batch_free(qv_attr_batch *b) {
  if (b == NULL)
    return;
  arena_free(b->arena);
  memset(b, 0, sizeof *b);
}

qv_status qv__attrs_get(const qv__attrs *a, size_t n, const int64_t *rows, qv_attr_batch *out,
                        qv_error *err) {
  memset(out, 0, sizeof *out);
  arena *ar = calloc(1, sizeof *ar);
  qv_attr_column *cols = ar ? arena_alloc(ar, (a->n ? a->n : 1) * sizeof *cols) : NULL;
  if (cols == NULL)
    goto nomem;
  for (size_t j = 0; j < a->n; j++) {
    qv_attr_column *c = &cols[j];
    const qv_attr_type t = a->f[j].type;
    c->name = a->f[j].name;
    c->type = t;
    if (t == QV_ATTR_INT64 || t == QV_ATTR_BOOL) {
      int64_t *v = arena_alloc(ar, n * sizeof *v);
      if (v == NULL)
        goto nomem;
      for (size_t i = 0; i < n; i++)
        v[i] = rows[i] >= 0 ? (int64_t)a->col[j][rows[i]] : 0;
      c->ints = v;
    } else if (t == QV_ATTR_FLOAT) {
      double *v = arena_alloc(ar, n * sizeof *v);
      if (v == NULL)
        goto nomem;
      for (size_t i = 0; i < n; i++)
        if (rows[i] >= 0)
          memcpy(&v[i], &a->col[j][rows[i]], sizeof(double));
      c->floats = v;
    } else {
      uint32_t *cnt = t == QV_ATTR_TAGS ? arena_alloc(ar, n * sizeof *cnt) : NULL;
      size_t total = 0;
      for (size_t i = 0; i < n; i++) {
        size_t k = t == QV_ATTR_KEYWORD ? 1 : rows[i] >= 0 ? tags_of(a->col[j][rows[i]]) : 0;
        if (cnt != NULL)
          cnt[i] = (uint32_t)k;
        total += k;
      }
      const char **s = arena_alloc(ar, total * sizeof *s);
      if (s == NULL || (t == QV_ATTR_TAGS && cnt == NULL))
        goto nomem;
      /* The strings point into the dictionary: copy them, since the batch outlives the lock. */
      size_t w = 0;
      for (size_t i = 0; i < n; i++) {
        uint32_t one, *codes = &one, k = 1;
        one = rows[i] >= 0 ? (uint32_t)a->col[j][rows[i]] : 0;
        if (t == QV_ATTR_TAGS) {
          const uint32_t *set =
              rows[i] >= 0 ? (const uint32_t *)(uintptr_t)a->col[j][rows[i]] : NULL;
          k = set ? set[0] : 0;
          codes = set ? (uint32_t *)set + 1 : NULL;
        }
        const size_t w0 = w;
        for (uint32_t u = 0; u < k; u++) {
          const char *str = a->dict[j].strs[codes[u]];
          size_t len = strlen(str);
          char *copy = arena_alloc(ar, len + 1);
          if (copy == NULL)
            goto nomem;
          memcpy(copy, str, len);
          s[w++] = copy;
        }
        if (t == QV_ATTR_TAGS && k > 1) /* a set: sorted, the same on every node and shard */
          qsort(s + w0, k, sizeof *s, cmp_str);
      }
      c->strs = s;
      c->counts = cnt;
    }
  }
  out->n_columns = a->n;
  out->columns = cols;
  out->arena = ar;
  return QV_OK;
nomem:
  arena_free(ar);
  return qv_error_set(err, QV_ENOMEM, "out of memory for the attributes of %zu items", n);
}

/* ---- binary form ------------------------------------------------------------------------- */

typedef struct wbuf {
  char *p;
  size_t len, cap;
  int failed;
} wbuf;

static void put(wbuf *w, const void *x, size_t n) {
  if (w->failed)
    return;
  if (w->len + n > w->cap) {
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n)
      cap *= 2;
    char *p = realloc(w->p, cap);
    if (p == NULL) {
      w->failed = 1;
      return;
    }
    w->p = p;
    w->cap = cap;
  }
  memcpy(w->p + w->len, x, n);
  w->len += n;
}

static void put_u8(wbuf *w, uint8_t v) {
  put(w, &v, 1);
}
static void put_u16(wbuf *w, uint16_t v) {
  put(w, &v, 2);
}
static void put_u32(wbuf *w, uint32_t v) {
  put(w, &v, 4);
}
static void put_str(wbuf *w, const char *s) {
  size_t len = strlen(s);
  put_u16(w, (uint16_t)len);
  put(w, s, len);
}

static void put_head(wbuf *w, size_t rows, size_t cols) {
  put_u32(w, ATTRS_MAGIC);
  put_u32(w, (uint32_t)rows);
  put_u32(w, (uint32_t)cols);
}

static void put_field(wbuf *w, const qv_attr_field *f) {
  put_u8(w, (uint8_t)f->type);
  size_t len = strlen(f->name);
  put_u8(w, (uint8_t)len);
  put(w, f->name, len);
}

static qv_status finish(wbuf *w, char **out, size_t *len, qv_error *err) {
  if (w->failed || w->len > UINT32_MAX) {
    free(w->p);
    return qv_error_set(err, QV_ENOMEM, "out of memory encoding attributes");
  }
  *out = w->p;
  *len = w->len;
  return QV_OK;
}

qv_status qv__attrs_encode_batch(const qv__attrs *a, size_t n, const qv_attr_batch *b, char **out,
                                 size_t *len, qv_error *err) {
  wbuf w = {0};
  const size_t nc = b ? b->n_columns : 0;
  put_head(&w, n, nc);
  for (size_t c = 0; c < nc; c++) {
    const qv_attr_column *col = &b->columns[c];
    const int j = find_field(a, col->name);
    put_field(&w, &a->f[j]);
    const qv_attr_type t = a->f[j].type;
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
      if (t == QV_ATTR_INT64)
        put(&w, &col->ints[i], 8);
      else if (t == QV_ATTR_BOOL)
        put_u8(&w, (uint8_t)(col->ints[i] != 0));
      else if (t == QV_ATTR_FLOAT)
        put(&w, &col->floats[i], 8);
      else if (t == QV_ATTR_KEYWORD)
        put_str(&w, col->strs[i]);
      else {
        put_u16(&w, (uint16_t)col->counts[i]);
        for (uint32_t u = 0; u < col->counts[i]; u++)
          put_str(&w, col->strs[s++]);
      }
    }
  }
  return finish(&w, out, len, err);
}

qv_status qv__attrs_encode_store(const qv__attrs *a, size_t count, char **out, size_t *len,
                                 qv_error *err) {
  wbuf w = {0};
  put_head(&w, count, a->n);
  for (size_t j = 0; j < a->n; j++) {
    put_field(&w, &a->f[j]);
    const qv_attr_type t = a->f[j].type;
    const uint64_t *col = a->col[j];
    for (size_t r = 0; r < count; r++) {
      if (t == QV_ATTR_INT64 || t == QV_ATTR_FLOAT)
        put(&w, &col[r], 8);
      else if (t == QV_ATTR_BOOL)
        put_u8(&w, (uint8_t)(col[r] != 0));
      else if (t == QV_ATTR_KEYWORD)
        put_str(&w, a->dict[j].strs[col[r]]);
      else {
        const uint32_t *set = (const uint32_t *)(uintptr_t)col[r];
        uint32_t k = set ? set[0] : 0;
        put_u16(&w, (uint16_t)k);
        for (uint32_t u = 0; u < k; u++)
          put_str(&w, a->dict[j].strs[set[1 + u]]);
      }
    }
  }
  return finish(&w, out, len, err);
}

typedef struct rbuf {
  const char *p;
  size_t len, off;
} rbuf;

static int get(rbuf *r, void *x, size_t n) {
  if (n > r->len - r->off)
    return -1;
  memcpy(x, r->p + r->off, n);
  r->off += n;
  return 0;
}

qv_status qv__attrs_decode(const qv__attrs *a, const char *data, size_t len, size_t n,
                           qv_attr_batch *out, qv_error *err) {
  memset(out, 0, sizeof *out);
  rbuf r = {data, len, 0};
  uint32_t magic, rows, nc;
  if (get(&r, &magic, 4) || get(&r, &rows, 4) || get(&r, &nc, 4) || magic != ATTRS_MAGIC)
    return qv_error_set(err, QV_ECORRUPT, "attributes: not an attribute block");
  if (rows != n || nc > a->n)
    return qv_error_set(err, QV_ECORRUPT,
                        "attributes: %u rows of %u columns where %zu rows of at most %zu belong",
                        rows, nc, n, a->n);
  arena *ar = calloc(1, sizeof *ar);
  qv_attr_column *cols = ar ? arena_alloc(ar, (nc ? nc : 1) * sizeof *cols) : NULL;
  if (cols == NULL)
    goto nomem;
  unsigned seen[QV_MAX_ATTRS] = {0};
  for (uint32_t c = 0; c < nc; c++) {
    uint8_t type, nlen;
    char name[QV_MAX_ATTR_NAME];
    if (get(&r, &type, 1) || get(&r, &nlen, 1) || nlen >= QV_MAX_ATTR_NAME || get(&r, name, nlen))
      goto corrupt;
    name[nlen] = '\0';
    const int j = find_field(a, name);
    if (j < 0 || a->f[j].type != type || seen[j]++)
      goto corrupt;
    qv_attr_column *col = &cols[c];
    col->name = a->f[j].name;
    col->type = a->f[j].type;
    if (type == QV_ATTR_INT64 || type == QV_ATTR_BOOL) {
      int64_t *v = arena_alloc(ar, n * sizeof *v);
      if (v == NULL)
        goto nomem;
      for (size_t i = 0; i < n; i++) {
        if (type == QV_ATTR_INT64) {
          if (get(&r, &v[i], 8))
            goto corrupt;
        } else {
          uint8_t b;
          if (get(&r, &b, 1) || b > 1)
            goto corrupt;
          v[i] = b;
        }
      }
      col->ints = v;
    } else if (type == QV_ATTR_FLOAT) {
      double *v = arena_alloc(ar, n * sizeof *v);
      if (v == NULL)
        goto nomem;
      for (size_t i = 0; i < n; i++)
        if (get(&r, &v[i], 8) || !isfinite(v[i]))
          goto corrupt;
      col->floats = v;
    } else {
      /* Two passes: count the strings, then copy them with their NULs. */
      const size_t at = r.off;
      size_t total = 0;
      uint32_t *cnt = type == QV_ATTR_TAGS ? arena_alloc(ar, n * sizeof *cnt) : NULL;
      if (type == QV_ATTR_TAGS && cnt == NULL)
        goto nomem;
      for (size_t i = 0; i < n; i++) {
        uint16_t k = 1, sl;
        if (type == QV_ATTR_TAGS && (get(&r, &k, 2) || k > QV_MAX_TAGS))
          goto corrupt;
        if (cnt)
          cnt[i] = k;
        for (uint16_t u = 0; u < k; u++) {
          if (get(&r, &sl, 2) || sl > QV_MAX_ATTR_STRING || sl > r.len - r.off)
            goto corrupt;
          if (memchr(r.p + r.off, '\0', sl) != NULL)
            goto corrupt;
          r.off += sl;
        }
        total += k;
      }
      const char **s = arena_alloc(ar, total * sizeof *s);
      if (s == NULL)
        goto nomem;
      r.off = at;
      size_t w = 0;
      for (size_t i = 0; i < n; i++) {
        uint16_t k = 1, sl = 0;
        if (type == QV_ATTR_TAGS)
          get(&r, &k, 2);
        for (uint16_t u = 0; u < k; u++) {
          get(&r, &sl, 2);
          char *copy = arena_alloc(ar, (size_t)sl + 1);
          if (copy == NULL)
            goto nomem;
          get(&r, copy, sl);
          s[w++] = copy;
        }
      }
      col->strs = s;
      col->counts = cnt;
    }
  }
  if (r.off != r.len)
    goto corrupt;
  out->n_columns = nc;
  out->columns = cols;
  out->arena = ar;
  return QV_OK;
corrupt:
  arena_free(ar);
  return qv_error_set(err, QV_ECORRUPT, "attributes: a damaged attribute block (at byte %zu)",
                      r.off);
nomem:
  arena_free(ar);
  return qv_error_set(err, QV_ENOMEM, "out of memory decoding attributes");
}
