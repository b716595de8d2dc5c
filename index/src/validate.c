/* Structural checks of a FAISS index read from a file (qv__index_validate, internal.h).
 *
 * FAISS trusts its files: an IndexIDMap whose id map is shorter than ntotal is read back and then
 * indexes past it in search; a coarse quantizer with more centroids than the IVF has lists
 * assigns vectors to a list that does not exist (a crash in InvertedLists::add_entry, at every
 * log replay); ids that are negative, repeated or not in the store are searched and returned.
 * The manifest's checksums only prove that the bytes are the ones written, not that they were
 * written by Quiver. So before anything searches or adds to an index that came from disk (open,
 * import), its structure is checked against what Quiver writes and against the store. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>

#include "internal.h"

/* ids[0 .. n) are >= 0, unique (seen collects them) and, when store is given, in it. */
static qv_status check_ids(const idx_t *ids, size_t n, qv__idmap *seen, const qv__idmap *store,
                           const char *where, qv_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0)
      return qv_error_set(err, QV_ECORRUPT, "index.faiss: %s holds a negative id (%" PRId64 ")",
                          where, (int64_t)ids[i]);
    if (qv__idmap_get(seen, ids[i], NULL))
      return qv_error_set(err, QV_ECORRUPT, "index.faiss: id %" PRId64 " appears twice (%s)",
                          (int64_t)ids[i], where);
    if (store != NULL && !qv__idmap_get(store, ids[i], NULL))
      return qv_error_set(err, QV_ECORRUPT,
                          "index.faiss: id %" PRId64 " (%s) is not among the stored vectors",
                          (int64_t)ids[i], where);
    qv__idmap_put(seen, ids[i], 0);
  }
  return QV_OK;
}

qv_status qv__index_validate(FaissIndex *idx, const qv__spec *spec, size_t dim, uint64_t count,
                             const qv__idmap *store, qv_error *err) {
  const int64_t ntotal = (int64_t)faiss_Index_ntotal(idx);
  if (ntotal < 0 || (size_t)faiss_Index_d(idx) != dim)
    return qv_error_set(err, QV_ECORRUPT, "index.faiss: dimension or size out of range");
  if (!faiss_Index_is_trained(idx) && ntotal != 0)
    return qv_error_set(err, QV_ECORRUPT,
                        "index.faiss: an untrained index holds %" PRId64 " entries", ntotal);
  if (faiss_Index_is_trained(idx) && (uint64_t)ntotal != count)
    return qv_error_set(err, QV_ECORRUPT,
                        "index.faiss holds %" PRId64 " entries but the store %" PRIu64, ntotal,
                        count);
  qv__idmap seen;
  qv__idmap_init(&seen);
  if (qv__idmap_reserve(&seen, (size_t)ntotal) != 0)
    return qv_error_set(err, QV_ENOMEM, "index.faiss: out of memory checking %" PRId64 " ids",
                        ntotal);
  qv_status st = QV_OK;
  idx_t *buf = NULL;
  if (spec->nlist == 0) { /* Flat: IDMap over a flat index */
    FaissIndexIDMap *m = faiss_IndexIDMap_cast(idx);
    FaissIndex *sub = m ? faiss_IndexIDMap_sub_index(m) : NULL;
    idx_t *map = NULL;
    size_t n = 0;
    if (m != NULL)
      faiss_IndexIDMap_id_map(m, &map, &n);
    if (sub == NULL || (size_t)faiss_Index_d(sub) != dim)
      st = qv_error_set(err, QV_ECORRUPT,
                        "index.faiss: not an id-mapped flat index of dimension "
                        "%zu",
                        dim);
    else if ((int64_t)faiss_Index_ntotal(sub) != ntotal || n != (size_t)ntotal)
      st = qv_error_set(err, QV_ECORRUPT,
                        "index.faiss: %" PRId64 " entries, but its flat index holds %" PRId64
                        " and its id map %zu",
                        ntotal, (int64_t)faiss_Index_ntotal(sub), n);
    else
      st = check_ids(map, n, &seen, store, "the id map", err);
    goto out;
  }
  FaissIndexIVF *ivf = faiss_IndexIVF_cast(idx);
  if (ivf == NULL || faiss_IndexIVF_nlist(ivf) != spec->nlist) {
    st = qv_error_set(err, QV_ECORRUPT, "index.faiss: not an IVF index of %u lists", spec->nlist);
    goto out;
  }
  FaissIndex *coarse = faiss_IndexIVF_quantizer(ivf);
  if (coarse == NULL || (size_t)faiss_Index_d(coarse) != dim ||
      (faiss_Index_is_trained(idx) &&
       (faiss_Index_ntotal(coarse) != (idx_t)spec->nlist || !faiss_Index_is_trained(coarse)))) {
    st = qv_error_set(err, QV_ECORRUPT,
                      "index.faiss: its coarse quantizer (%lld centroids) does not match its %u "
                      "lists",
                      coarse ? (long long)faiss_Index_ntotal(coarse) : -1LL, spec->nlist);
    goto out;
  }
  uint64_t sum = 0;
  size_t cap = 0;
  for (size_t l = 0; l < spec->nlist && st == QV_OK; l++) {
    const size_t n = faiss_IndexIVF_get_list_size(ivf, l);
    sum += n;
    if (sum > (uint64_t)ntotal) {
      st = qv_error_set(err, QV_ECORRUPT,
                        "index.faiss: its lists hold more than its %" PRId64 " entries", ntotal);
      break;
    }
    if (n == 0)
      continue;
    if (n > cap) {
      idx_t *nb = realloc(buf, n * sizeof *nb);
      if (nb == NULL) {
        st = qv_error_set(err, QV_ENOMEM, "index.faiss: out of memory checking list %zu", l);
        break;
      }
      buf = nb;
      cap = n;
    }
    faiss_IndexIVF_invlists_get_ids(ivf, l, buf);
    char where[32];
    snprintf(where, sizeof where, "list %zu", l);
    st = check_ids(buf, n, &seen, store, where, err);
  }
  if (st == QV_OK && sum != (uint64_t)ntotal)
    st = qv_error_set(err, QV_ECORRUPT,
                      "index.faiss: its lists hold %" PRIu64 " entries but it says %" PRId64, sum,
                      ntotal);
out:
  free(buf);
  qv__idmap_fini(&seen);
  return st;
}
