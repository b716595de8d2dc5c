/* Index specs: the subset of FAISS's index-factory grammar that Quiver supports and tests. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "internal.h"

#define SPEC_HELP                                                                                  \
  "supported: Flat, IVF<n>,Flat, IVF<n>,SQ8|SQ4|SQ6|SQfp16, IVF<n>,PQ<m>[x<bits>], "               \
  "IVF<n>,PQ<m>x4fs, HNSW<M>, HNSW<M>,SQ8"

/* Reads a decimal number at *p (no sign); 0 on success. */
static int read_num(const char **p, unsigned long *v) {
  if (!isdigit((unsigned char)**p))
    return -1;
  errno = 0;
  char *end;
  *v = strtoul(*p, &end, 10);
  if (errno != 0)
    return -1;
  *p = end;
  return 0;
}

qv_status qv__spec_parse(const char *text, size_t dim, qv__spec *out, qv_error *err) {
  if (text == NULL)
    return qv_error_set(err, QV_EINVAL, "index spec missing (" SPEC_HELP ")");
  size_t len = strlen(text);
  for (size_t i = 0; i < len; i++)
    if (isspace((unsigned char)text[i]))
      return qv_error_set(err, QV_EINVAL,
                          "index spec '%.64s' contains blanks: write it without (" SPEC_HELP ")",
                          text);
  if (len == 0 || len >= QV_MAX_SPEC)
    return qv_error_set(err, QV_EINVAL, "index spec '%.*s' is empty or too long (" SPEC_HELP ")",
                        (int)(len > 64 ? 64 : len), text);
  memset(out, 0, sizeof *out);
  memcpy(out->text, text, len);
  out->text[len] = '\0';

  const char *p = out->text;
  if (strcmp(p, "Flat") == 0) {
    snprintf(out->factory, sizeof out->factory, "IDMap,Flat");
    out->train_min = 0;
    out->code_bytes = dim * sizeof(float);
    return QV_OK;
  }
  unsigned long nlist = 0;
  if (strncmp(p, "HNSW", 4) == 0) {
    unsigned long m = 0;
    p += 4;
    if (read_num(&p, &m) != 0 || (*p != '\0' && strcmp(p, ",SQ8") != 0))
      goto bad;
    if (m < 4 || m > 128)
      return qv_error_set(err, QV_EINVAL,
                          "index spec '%s': HNSW M (links per node) %lu is out of range 4..128",
                          out->text, m);
    out->graph = 1;
    out->hnsw_m = (uint32_t)m;
    /* Level 0 holds 2M links of 4 bytes per node, the upper levels about 1/M as many. */
    out->code_bytes = (*p ? dim : dim * sizeof(float)) + 2 * m * 4 + 2 * 4;
    out->train_min = *p ? 1 : 0; /* SQ8 learns each component's range */
    /* HNSW cannot add with ids: an IDMap holds them. */
    snprintf(out->factory, sizeof out->factory, "IDMap,%s", out->text);
    return QV_OK;
  }
  if (strncmp(p, "IVF", 3) != 0)
    goto bad;
  p += 3;
  if (read_num(&p, &nlist) != 0 || *p != ',')
    goto bad;
  p++;
  if (nlist < 1 || nlist > QV_MAX_NLIST)
    return qv_error_set(err, QV_EINVAL, "index spec '%s': nlist %lu is out of range 1..%d",
                        out->text, nlist, QV_MAX_NLIST);
  out->nlist = (uint32_t)nlist;
  out->train_min = nlist;
  if (strcmp(p, "Flat") == 0) {
    out->code_bytes = dim * sizeof(float);
  } else if (strcmp(p, "SQ8") == 0) {
    out->code_bytes = dim;
  } else if (strcmp(p, "SQ4") == 0) {
    out->code_bytes = (dim + 1) / 2;
  } else if (strcmp(p, "SQ6") == 0) {
    out->code_bytes = (dim * 6 + 7) / 8;
  } else if (strcmp(p, "SQfp16") == 0) {
    out->code_bytes = dim * 2;
  } else if (strncmp(p, "PQ", 2) == 0) {
    unsigned long m = 0, bits = 8;
    p += 2;
    if (read_num(&p, &m) != 0)
      goto bad;
    if (*p == 'x') {
      p++;
      if (read_num(&p, &bits) != 0)
        goto bad;
    }
    if (strcmp(p, "fs") == 0) {
      if (bits != 4)
        return qv_error_set(err, QV_EINVAL,
                            "index spec '%s': fast-scan PQ codes have 4 bits (PQ<m>x4fs)",
                            out->text);
      out->fastscan = 1;
      p += 2;
    }
    if (*p != '\0')
      goto bad;
    if (m == 0 || dim % m != 0)
      return qv_error_set(err, QV_EINVAL,
                          "index spec '%s': PQ%lu needs m dividing the dimension %zu", out->text, m,
                          dim);
    if (bits < 4 || bits > 8)
      return qv_error_set(err, QV_EINVAL, "index spec '%s': PQ bits must be 4..8, not %lu",
                          out->text, bits);
    out->code_bytes = (m * bits + 7) / 8;
    size_t pq_min = (size_t)1 << bits;
    if (pq_min > out->train_min)
      out->train_min = pq_min;
  } else {
    goto bad;
  }
  /* "np": no polysemous training. FAISS otherwise spends seconds (20 s on deep10k here) reordering
   * PQ centroids for Hamming filtering, which our search path never uses. */
  snprintf(out->factory, sizeof out->factory, "%s%s", out->text,
           strstr(out->text, ",PQ") != NULL && !out->fastscan ? "np" : "");
  return QV_OK;
bad:
  return qv_error_set(err, QV_EINVAL, "unsupported index spec '%s' (" SPEC_HELP ")", out->text);
}

int qv_spec_is_graph(const char *spec) {
  return spec != NULL && strncmp(spec, "HNSW", 4) == 0;
}

qv_status qv__faiss_fail(qv_error *err, qv_status code, const char *what) {
  const char *m = faiss_get_last_error();
  if (m == NULL)
    m = "unknown error";
  /* FAISS prefixes its messages with the throwing function and source location; keep the part a
   * user can act on. */
  const char *tail = strstr(m, "Error: ");
  if (tail != NULL)
    m = tail + 7;
  return qv_error_set(err, code, "%s: FAISS: %s", what, m);
}

qv_status qv__index_new(const qv__spec *s, size_t dim, qv_metric metric, FaissIndex **out,
                        qv_error *err) {
  *out = NULL;
  FaissMetricType fm = metric == QV_METRIC_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT;
  if (faiss_index_factory(out, (int)dim, s->factory, fm) != 0) {
    *out = NULL;
    return qv__faiss_fail(err, QV_EINTERNAL, "creating the index");
  }
  qv__index_prepare(*out, s);
  return QV_OK;
}

void qv__index_prepare(FaissIndex *idx, const qv__spec *s) {
  FaissIndexIVF *ivf = s->nlist ? faiss_IndexIVF_cast(idx) : NULL;
  if (ivf != NULL)
    faiss_IndexIVF_set_nprobe(ivf, s->nlist);
}
