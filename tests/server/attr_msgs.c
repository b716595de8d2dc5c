/* quiver.v1 messages with attributes for the tests' raw calls: see attr_msgs.h. */
#include "attr_msgs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quiver/v1/retrieval.pb-c.h"

static size_t pack(uint8_t **out, const ProtobufCMessage *m) {
  const size_t n = protobuf_c_message_get_packed_size(m);
  *out = malloc(n ? n : 1);
  return *out ? protobuf_c_message_pack(m, *out) : 0;
}

size_t am_create(uint8_t **out, const char *name, uint32_t dim, int metric, const char *spec,
                 size_t n, const char *const *names, const int *types, uint32_t shards,
                 uint32_t replicas) {
  Quiver__V1__CreateCollectionRequest r = QUIVER__V1__CREATE_COLLECTION_REQUEST__INIT;
  r.name = (char *)name;
  r.dim = dim;
  r.metric = (Quiver__V1__Metric)metric;
  r.index_spec = (char *)(spec ? spec : "");
  r.shards = shards;
  r.replicas = replicas;
  Quiver__V1__AttributeField *f = calloc(n ? n : 1, sizeof *f);
  Quiver__V1__AttributeField **p = calloc(n ? n : 1, sizeof *p);
  for (size_t i = 0; f && p && i < n; i++) {
    quiver__v1__attribute_field__init(&f[i]);
    f[i].name = (char *)names[i];
    f[i].type = (Quiver__V1__AttributeType)types[i];
    p[i] = &f[i];
  }
  r.n_attributes = n;
  r.attributes = p;
  const size_t len = f && p ? pack(out, &r.base) : 0;
  free(f);
  free(p);
  return len;
}

/* Column c as a message in m (arrays malloc'd: col_free). */
static void col_fill(Quiver__V1__AttributeColumn *m, const am_col *c) {
  quiver__v1__attribute_column__init(m);
  m->name = (char *)c->name;
  const size_t n = c->n;
  switch (c->list) {
  case AM_INTS:
    m->n_ints = n;
    m->ints = (int64_t *)c->ints;
    break;
  case AM_FLOATS:
    m->n_floats = n;
    m->floats = (double *)c->floats;
    break;
  case AM_BOOLS:
    m->n_bools = n;
    m->bools = malloc((n ? n : 1) * sizeof *m->bools);
    for (size_t i = 0; i < n; i++)
      m->bools[i] = c->ints[i] != 0;
    break;
  case AM_KEYWORDS:
    m->n_keywords = n;
    m->keywords = (char **)c->strs;
    break;
  case AM_TAGS: {
    m->n_tags = n;
    m->tags = malloc((n ? n : 1) * sizeof *m->tags);
    Quiver__V1__TagList *l = n ? malloc(n * sizeof *l) : NULL; /* freed through tags[0] */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
      quiver__v1__tag_list__init(&l[i]);
      l[i].n_tags = c->counts[i];
      l[i].tags = (char **)c->strs + at;
      at += c->counts[i];
      m->tags[i] = &l[i];
    }
    break;
  }
  }
}

static void col_free(Quiver__V1__AttributeColumn *m, const am_col *c) {
  if (c->list == AM_BOOLS)
    free(m->bools);
  if (c->list == AM_TAGS) {
    if (m->n_tags > 0)
      free(m->tags[0]);
    free(m->tags);
  }
}

size_t am_upsert(uint8_t **out, const char *coll, size_t n, const int64_t *ids, const float *v,
                 size_t floats, size_t ncols, const am_col *cols) {
  Quiver__V1__UpsertRequest r = QUIVER__V1__UPSERT_REQUEST__INIT;
  r.collection = (char *)coll;
  r.n_ids = n;
  r.ids = (int64_t *)ids;
  r.n_vectors = floats;
  r.vectors = (float *)v;
  Quiver__V1__AttributeColumn *m = calloc(ncols ? ncols : 1, sizeof *m);
  Quiver__V1__AttributeColumn **p = calloc(ncols ? ncols : 1, sizeof *p);
  for (size_t i = 0; i < ncols; i++) {
    col_fill(&m[i], &cols[i]);
    p[i] = &m[i];
  }
  r.n_attributes = ncols;
  r.attributes = p;
  const size_t len = pack(out, &r.base);
  for (size_t i = 0; i < ncols; i++)
    col_free(&m[i], &cols[i]);
  free(m);
  free(p);
  return len;
}

size_t am_search(uint8_t **out, const am_search_req *q) {
  Quiver__V1__SearchRequest r = QUIVER__V1__SEARCH_REQUEST__INIT;
  Quiver__V1__RerankOptions rr = QUIVER__V1__RERANK_OPTIONS__INIT;
  r.collection = (char *)q->coll;
  r.n_queries = q->floats;
  r.queries = (float *)q->q;
  r.k = q->k;
  r.nprobe = q->nprobe;
  r.exact = q->exact;
  r.filter = (char *)(q->filter ? q->filter : "");
  r.filter_path = (Quiver__V1__FilterPath)q->filter_path;
  if (q->rerank) {
    rr.candidates = q->candidates;
    rr.refine = q->refine;
    r.rerank = &rr;
  }
  r.n_query_ids = q->nqids;
  r.query_ids = (int64_t *)q->qids;
  r.version = q->version;
  return pack(out, &r.base);
}

long am_search_answer(const uint8_t *buf, size_t len, int64_t *ids, float *scores, size_t cap,
                      uint32_t *nq, uint32_t *k) {
  Quiver__V1__SearchResponse *r = quiver__v1__search_response__unpack(NULL, len, buf);
  if (r == NULL)
    return -1;
  size_t n = 0;
  for (; n < r->n_ids && n < cap; n++) {
    ids[n] = r->ids[n];
    scores[n] = n < r->n_scores ? r->scores[n] : 0;
  }
  *nq = r->num_queries;
  *k = r->k;
  quiver__v1__search_response__free_unpacked(r, NULL);
  return (long)n;
}

size_t am_get(uint8_t **out, const char *coll, const int64_t *ids, size_t n,
              const char *const *fields, size_t nfields) {
  Quiver__V1__GetRequest r = QUIVER__V1__GET_REQUEST__INIT;
  r.collection = (char *)coll;
  r.n_ids = n;
  r.ids = (int64_t *)ids;
  r.n_fields = nfields;
  r.fields = (char **)fields;
  return pack(out, &r.base);
}

/* ---- text ------------------------------------------------------------------------------ */

typedef struct sbuf {
  char *s;
  size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[512];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof tmp)
    n = sizeof tmp - 1;
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + (size_t)n + 1)
      cap *= 2;
    char *s = realloc(b->s, cap);
    if (s == NULL)
      return;
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->len, tmp, (size_t)n + 1);
  b->len += (size_t)n;
}

static const char *list_name(int l) {
  static const char *const names[] = {"?", "ints", "floats", "bools", "keywords", "tags"};
  return l >= 1 && l <= 5 ? names[l] : "?";
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void col_text(sbuf *b, const am_col *c) {
  if (c->n == 0) { /* no values: no list to tell */
    sb_printf(b, "%s (empty)\n", c->name);
    return;
  }
  sb_printf(b, "%s %s ", c->name, list_name(c->list));
  size_t at = 0;
  for (size_t i = 0; i < c->n; i++) {
    if (i > 0)
      sb_printf(b, "|");
    switch (c->list) {
    case AM_INTS:
      sb_printf(b, "%lld", (long long)c->ints[i]);
      break;
    case AM_BOOLS:
      sb_printf(b, "%d", c->ints[i] != 0);
      break;
    case AM_FLOATS:
      sb_printf(b, "%.17g", c->floats[i]);
      break;
    case AM_KEYWORDS:
      sb_printf(b, "\"%s\"", c->strs[i]);
      break;
    case AM_TAGS: {
      /* A set: sorted (a collection answers its own order). */
      const char **row = malloc((c->counts[i] ? c->counts[i] : 1) * sizeof *row);
      if (row == NULL)
        break;
      memcpy(row, c->strs + at, c->counts[i] * sizeof *row);
      qsort(row, c->counts[i], sizeof *row, cmp_str);
      sb_printf(b, "{");
      for (uint32_t t = 0; t < c->counts[i]; t++)
        sb_printf(b, "%s%s", t ? "," : "", row[t]);
      sb_printf(b, "}");
      free(row);
      at += c->counts[i];
      break;
    }
    }
  }
  sb_printf(b, "\n");
}

char *am_cols_text(size_t ncols, const am_col *cols) {
  sbuf b = {0};
  sb_printf(&b, "%s", "");
  for (size_t i = 0; i < ncols; i++)
    col_text(&b, &cols[i]);
  return b.s;
}

char *am_get_text(const uint8_t *buf, size_t len) {
  Quiver__V1__GetResponse *r = quiver__v1__get_response__unpack(NULL, len, buf);
  if (r == NULL)
    return NULL;
  sbuf b = {0};
  sb_printf(&b, "ids=");
  for (size_t i = 0; i < r->n_ids; i++)
    sb_printf(&b, "%s%lld", i ? "," : "", (long long)r->ids[i]);
  sb_printf(&b, " missing=");
  for (size_t i = 0; i < r->n_missing_ids; i++)
    sb_printf(&b, "%s%lld", i ? "," : "", (long long)r->missing_ids[i]);
  sb_printf(&b, "\n");
  for (size_t i = 0; i < r->n_attributes; i++) {
    const Quiver__V1__AttributeColumn *m = r->attributes[i];
    am_col c = {m->name, 0, 0, NULL, NULL, NULL, NULL};
    int64_t *tmp = NULL;
    char **flat = NULL;
    uint32_t *counts = NULL;
    /* The list that holds values (an empty column: ints). */
    if (m->n_floats) {
      c.list = AM_FLOATS;
      c.n = m->n_floats;
      c.floats = m->floats;
    } else if (m->n_bools) {
      c.list = AM_BOOLS;
      c.n = m->n_bools;
      tmp = malloc(c.n * sizeof *tmp);
      for (size_t j = 0; j < c.n; j++)
        tmp[j] = m->bools[j] != 0;
      c.ints = tmp;
    } else if (m->n_keywords) {
      c.list = AM_KEYWORDS;
      c.n = m->n_keywords;
      c.strs = (const char *const *)m->keywords;
    } else if (m->n_tags) {
      c.list = AM_TAGS;
      c.n = m->n_tags;
      size_t total = 0;
      for (size_t j = 0; j < c.n; j++)
        total += m->tags[j]->n_tags;
      flat = malloc((total ? total : 1) * sizeof *flat);
      counts = malloc(c.n * sizeof *counts);
      size_t at = 0;
      for (size_t j = 0; j < c.n; j++) {
        counts[j] = (uint32_t)m->tags[j]->n_tags;
        for (size_t t = 0; t < m->tags[j]->n_tags; t++)
          flat[at++] = m->tags[j]->tags[t];
      }
      c.strs = (const char *const *)flat;
      c.counts = counts;
    } else {
      c.list = AM_INTS;
      c.n = m->n_ints;
      c.ints = m->ints;
    }
    /* Two lists with values: a wrong answer, shown as such. */
    const int lists = (m->n_ints > 0) + (m->n_floats > 0) + (m->n_bools > 0) + (m->n_keywords > 0) +
                      (m->n_tags > 0);
    if (lists > 1)
      sb_printf(&b, "[column %s has values in %d lists] ", m->name, lists);
    col_text(&b, &c);
    free(tmp);
    free(flat);
    free(counts);
  }
  quiver__v1__get_response__free_unpacked(r, NULL);
  return b.s;
}

char *am_info(const uint8_t *buf, size_t len, uint64_t *attribute_bytes, uint64_t *memory_bytes,
              uint64_t *vector_bytes, uint64_t *index_bytes) {
  Quiver__V1__CollectionInfo *r = quiver__v1__collection_info__unpack(NULL, len, buf);
  if (r == NULL)
    return NULL;
  sbuf b = {0};
  sb_printf(&b, "%s", "");
  for (size_t i = 0; i < r->n_attributes; i++)
    sb_printf(&b, "%s%s:%d", i ? "," : "", r->attributes[i]->name, (int)r->attributes[i]->type);
  *attribute_bytes = r->attribute_bytes;
  *memory_bytes = r->memory_bytes;
  *vector_bytes = r->vector_bytes;
  *index_bytes = r->index_bytes;
  quiver__v1__collection_info__free_unpacked(r, NULL);
  return b.s;
}
