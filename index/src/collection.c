/* Collections: lifecycle, upsert, delete, build. Search lives in search.c, persistence in
 * persist.c. Locking model: see quiver/collection.h. */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writers must not starve under searches */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/clone_index_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_io_c.h>

#include "internal.h"
#include "quiver/kernels.h"

void qv_collection_opts_init(qv_collection_opts *o) {
  memset(o, 0, sizeof *o);
  o->metric = QV_METRIC_L2;
  o->spec = "Flat";
  o->default_nprobe = 16;
  o->train_sample = 0;
  o->seed = 1234;
}

qv_status qv__collection_alloc(qv_collection **out, qv_error *err) {
  qv_collection *c = calloc(1, sizeof *c);
  if (c == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory allocating a collection");
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&c->rw, &a);
  pthread_rwlockattr_destroy(&a);
  pthread_mutex_init(&c->wmu, NULL);
  pthread_mutex_init(&c->smu, NULL);
  qv__gate_init(&c->gate);
  qv__idmap_init(&c->map);
  qv__attrs_init(&c->attrs);
  qv__idmap_init(&c->tomb);
  qv__idmap_init(&c->touched);
  snprintf(c->placement, sizeof c->placement, "cpu: not built yet");
  c->keep_versions = 2;
  c->build_recall = -1.0;
  c->generation = 1;
  *out = c;
  return QV_OK;
}

qv_status qv_collection_create(qv_collection **out, const qv_collection_opts *o, qv_error *err) {
  if (out == NULL)
    return qv_error_set(err, QV_EINVAL, "collection_create: out is NULL");
  *out = NULL;
  if (o == NULL)
    return qv_error_set(err, QV_EINVAL, "collection_create: options are NULL");
  if (o->dim == 0 || o->dim > QV_MAX_DIM)
    return qv_error_set(err, QV_EINVAL, "dimension %zu is out of range 1..%d", o->dim, QV_MAX_DIM);
  if (o->n_features > QV_MAX_ITEM_FEATURES)
    return qv_error_set(err, QV_EINVAL, "n_features = %zu is out of range 0..%d", o->n_features,
                        QV_MAX_ITEM_FEATURES);
  if (o->metric != QV_METRIC_L2 && o->metric != QV_METRIC_IP && o->metric != QV_METRIC_COSINE)
    return qv_error_set(err, QV_EINVAL, "unknown metric %d (use l2, ip or cosine)", (int)o->metric);
  if (qv_device_name(o->device) == NULL)
    return qv_error_set(err, QV_EINVAL, "unknown device %d (use auto, cpu or gpu)", (int)o->device);
  if (o->device == QV_DEVICE_GPU && qv_gpu_devices() == 0 && !qv_gpu_fallback_cpu())
    return qv_error_set(err, QV_EPRECONDITION,
                        "device gpu asked but no GPU is available%s (and CPU fallback is off)",
                        qv_gpu_compiled() ? "" : " in this build");
  qv__spec spec;
  qv_status st = qv__spec_parse(o->spec, o->dim, &spec, err);
  if (st != QV_OK)
    return st;
  if (qv__spec_gated(&spec) && o->device == QV_DEVICE_GPU)
    return qv_error_set(err, QV_EINVAL,
                        "index spec '%s' is a %s, which FAISS 1.7.3 cannot serve from a GPU: "
                        "create it with device cpu (or auto, which keeps it on the CPU), or pick "
                        "an IVF Flat/SQ/PQ spec for the GPU",
                        spec.text, spec.graph ? "graph index" : "fast-scan index");
  qv_collection *c;
  if ((st = qv__collection_alloc(&c, err)) != QV_OK)
    return st;
  c->dim = o->dim;
  c->metric = o->metric;
  c->spec = spec;
  c->default_nprobe = o->default_nprobe ? o->default_nprobe : 16;
  c->train_sample = o->train_sample;
  c->seed = o->seed;
  c->n_features = o->n_features;
  c->device = o->device;
  c->deferred = o->deferred_deletes != 0;
  if ((st = qv__attrs_set_schema(&c->attrs, o->n_attrs, o->attrs, err)) != QV_OK) {
    qv_collection_close(c);
    return st;
  }
  if ((st = qv__index_new(&c->spec, c->dim, c->metric, &c->index, err)) != QV_OK) {
    qv_collection_close(c);
    return st;
  }
  c->trained = faiss_Index_is_trained(c->index) != 0;
  if (c->trained && /* Flat: searchable from the start */
      (st = qv__place(c, c->index, NULL, &c->gpu, c->placement, err)) != QV_OK) {
    qv_collection_close(c);
    return st;
  }
  *out = c;
  return QV_OK;
}

void qv_collection_close(qv_collection *c) {
  if (c == NULL)
    return;
  qv__wal_close(c->wal);
  qv__gpu_free(c->gpu);
  if (c->index != NULL)
    faiss_Index_free(c->index);
  free(c->vecs);
  free(c->feats);
  free(c->ids);
  qv__attrs_fini(&c->attrs, c->count);
  qv__idmap_fini(&c->map);
  qv__idmap_fini(&c->tomb);
  qv__idmap_fini(&c->touched);
  pthread_rwlock_destroy(&c->rw);
  qv__gate_fini(&c->gate);
  pthread_mutex_destroy(&c->wmu);
  pthread_mutex_destroy(&c->smu);
  free(c);
}

void qv__attrs_resort(qv_collection *c) {
  int numbers = 0;
  for (size_t j = 0; j < c->attrs.n; j++)
    numbers |= c->attrs.f[j].type == QV_ATTR_INT64 || c->attrs.f[j].type == QV_ATTR_FLOAT;
  if (!numbers)
    return;
  qv__sorted so;
  if (qv__attrs_sort_build(&c->attrs, c->count, &so) != 0)
    return;
  pthread_rwlock_wrlock(&c->rw);
  qv__attrs_sort_swap(&c->attrs, &so);
  pthread_rwlock_unlock(&c->rw);
}

qv_status qv__store_reserve(qv_collection *c, size_t n, qv_error *err) {
  if (n <= c->cap)
    return QV_OK;
  size_t cap = c->cap ? c->cap : 1024;
  while (cap < n)
    cap = cap < SIZE_MAX / 2 ? cap * 2 : n;
  if (cap > SIZE_MAX / sizeof(float) / c->dim)
    return qv_error_set(err, QV_ENOMEM, "store of %zu vectors of dim %zu is too large", cap,
                        c->dim);
  float *v = realloc(c->vecs, cap * c->dim * sizeof(float));
  if (v == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory growing the store to %zu vectors", cap);
  c->vecs = v;
  int64_t *ids = realloc(c->ids, cap * sizeof(int64_t));
  if (ids == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory growing the store to %zu vectors", cap);
  c->ids = ids;
  if (c->n_features > 0) {
    float *f = realloc(c->feats, cap * c->n_features * sizeof(float));
    if (f == NULL)
      return qv_error_set(err, QV_ENOMEM, "out of memory growing the store to %zu vectors", cap);
    c->feats = f;
  }
  if (qv__attrs_reserve(&c->attrs, cap) != 0)
    return qv_error_set(err, QV_ENOMEM, "out of memory growing the attributes to %zu items", cap);
  c->cap = cap;
  return QV_OK;
}

/* Removes `n` ids from the FAISS index (no-op when n == 0). */
qv_status qv__index_remove(FaissIndex *index, size_t n, const int64_t *ids, qv_error *err) {
  if (n == 0)
    return QV_OK;
  FaissIDSelectorBatch *sel = NULL;
  if (faiss_IDSelectorBatch_new(&sel, n, ids) != 0)
    return qv__faiss_fail(err, QV_EINTERNAL, "removing ids");
  size_t removed = 0;
  int rc = faiss_Index_remove_ids(index, (const FaissIDSelector *)sel, &removed);
  faiss_IDSelector_free((FaissIDSelector *)sel);
  if (rc != 0)
    return qv__faiss_fail(err, QV_EINTERNAL, "removing ids");
  return QV_OK;
}

/* While a build runs, records ids whose stored vector changed so that the new index catches up on
 * them before it is swapped in (build.c). Caller holds c->wmu. */
static void touch(qv_collection *c, size_t n, const int64_t *ids) {
  if (!c->building || n == 0)
    return;
  if (qv__idmap_reserve(&c->touched, c->touched.count + n) != 0) {
    c->touched_lost = 1;
    return;
  }
  for (size_t i = 0; i < n; i++)
    qv__idmap_put(&c->touched, ids[i], 0);
}

qv_status qv_collection_add(qv_collection *c, size_t n, const int64_t *ids, const float *vectors,
                            qv_error *err) {
  return qv_collection_add_features(c, n, ids, vectors, NULL, err);
}

qv_status qv_rows_check(size_t dim, qv_metric metric, size_t n_features, size_t n,
                        const int64_t *ids, const float *vectors, const float *features,
                        qv_error *err) {
  if (n == 0)
    return QV_OK;
  if (ids == NULL || vectors == NULL)
    return qv_error_set(err, QV_EINVAL, "add: ids or vectors are NULL");
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0)
      return qv_error_set(err, QV_EINVAL, "row %zu: id %lld is negative (ids must be >= 0)", i,
                          (long long)ids[i]);
  qv_status vst = qv_check_vectors(vectors, n, dim, metric == QV_METRIC_COSINE, "row", err);
  if (vst != QV_OK)
    return vst;
  int64_t bad;
  if (features != NULL && n_features > 0 &&
      (bad = qv_find_nonfinite(features, n * n_features)) >= 0)
    return qv_error_set(err, QV_EINVAL, "row %zu: feature %zu is NaN or infinite",
                        (size_t)bad / n_features, (size_t)bad % n_features);
  return QV_OK;
}

qv_status qv_collection_add_features(qv_collection *c, size_t n, const int64_t *ids,
                                     const float *vectors, const float *features, qv_error *err) {
  return qv_collection_upsert(c, n, ids, vectors, features, NULL, err);
}

qv_status qv_collection_upsert(qv_collection *c, size_t n, const int64_t *ids, const float *vectors,
                               const float *features, const qv_attr_batch *attrs, qv_error *err) {
  if (c == NULL)
    return qv_error_set(err, QV_EINVAL, "add: collection is NULL");
  if (n == 0)
    return QV_OK;
  if (ids == NULL || vectors == NULL)
    return qv_error_set(err, QV_EINVAL, "add: ids or vectors are NULL");
  const size_t d = c->dim;
  qv_status vst = qv_rows_check(d, c->metric, c->n_features, n, ids, vectors, features, err);
  if (vst != QV_OK)
    return vst;
  if ((vst = qv_attr_batch_check(c->attrs.n, c->attrs.f, n, attrs, err)) != QV_OK)
    return vst;
  const size_t F = c->n_features;

  /* Dedupe within the batch (last wins) and, for cosine, normalise a copy. */
  qv_status st = QV_OK;
  size_t *pick = malloc(n * sizeof *pick);
  float *packed = NULL;
  int64_t *packed_ids = NULL, *replaced = NULL;
  size_t *src = NULL;
  uint64_t *avals = NULL; /* prepared attribute slots (m rows) */
  char *ablob = NULL;     /* the attributes as the log records them */
  size_t ablob_len = 0;
  size_t m = 0;
  qv__idmap seen;
  qv__idmap_init(&seen);
  if (pick == NULL || qv__idmap_reserve(&seen, n) != 0) {
    st = qv_error_set(err, QV_ENOMEM, "add: out of memory for a batch of %zu", n);
    goto out;
  }
  for (size_t i = n; i-- > 0;) { /* from the end, so the last occurrence wins */
    if (qv__idmap_get(&seen, ids[i], NULL))
      continue;
    qv__idmap_put(&seen, ids[i], i);
    pick[m++] = i;
  }
  packed = malloc(m * d * sizeof(float));
  packed_ids = malloc(m * sizeof(int64_t));
  replaced = malloc(m * sizeof(int64_t));
  src = malloc(m * sizeof *src);
  if (packed == NULL || packed_ids == NULL || replaced == NULL || src == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "add: out of memory for a batch of %zu", n);
    goto out;
  }
  for (size_t j = 0; j < m; j++) { /* restore input order */
    size_t i = pick[m - 1 - j];
    memcpy(packed + j * d, vectors + i * d, d * sizeof(float));
    packed_ids[j] = ids[i];
    src[j] = i;
  }
  if (c->wal != NULL && c->attrs.n > 0 && attrs != NULL && attrs->n_columns > 0 &&
      (st = qv__attrs_encode_batch(&c->attrs, n, attrs, &ablob, &ablob_len, err)) != QV_OK)
    goto out;
  if (c->metric == QV_METRIC_COSINE && (st = qv_normalize_cpu(packed, m, d, err)) != QV_OK) {
    qv_error_prefix(err, st, "add");
    goto out;
  }

  pthread_mutex_lock(&c->wmu); /* the only writer from here on: the id map holds still */
  size_t nrep = 0, nnew = 0;
  for (size_t j = 0; j < m; j++) {
    if (qv__idmap_get(&c->map, packed_ids[j], NULL))
      replaced[nrep++] = packed_ids[j];
    else
      nnew++;
  }
  const int deferred = c->trained && qv__deferred(c);
  /* Memory first, so that a write refused for want of it is never in the log (a replay would
   * apply what the client was told failed). Growing moves the store: readers wait. */
  pthread_rwlock_wrlock(&c->rw);
  if ((st = qv__store_reserve(c, c->count + nnew, err)) != QV_OK ||
      qv__idmap_reserve(&c->map, c->count + nnew) != 0 ||
      (deferred && qv__idmap_reserve(&c->tomb, c->tomb.count + m) != 0)) {
    if (st == QV_OK)
      st = qv_error_set(err, QV_ENOMEM, "add: out of memory growing the id map");
    goto unlock;
  }
  /* Attribute strings are interned here (the dictionaries are read under the read lock). */
  if ((st = qv__attrs_prepare(&c->attrs, attrs, m, src, &avals, err)) != QV_OK)
    goto unlock;
  pthread_rwlock_unlock(&c->rw);
  /* Logged before anything changes; searches go on while the record is synced. */
  if (c->wal != NULL) {
    if ((st = qv__wal_append(c->wal, c->wal_seq + 1, 0, n, d, F, ids, vectors, features, ablob,
                             ablob_len, err)) != QV_OK) {
      pthread_mutex_unlock(&c->wmu);
      goto out;
    }
    c->wal_seq++;
  }
  pthread_rwlock_wrlock(&c->rw);
  if (deferred) {
    /* The old entries stay in the index(es); searches re-score these ids from the store. */
    for (size_t j = 0; j < m; j++) {
      uint64_t was;
      int known = qv__idmap_get(&c->tomb, packed_ids[j], &was);
      if (known || qv__idmap_get(&c->map, packed_ids[j], NULL))
        qv__idmap_put(&c->tomb, packed_ids[j], QV__TOMB_REPLACED);
    }
    c->n_dead += nrep;
  } else if (c->trained && (st = qv__index_remove(c->index, nrep, replaced, err)) != QV_OK) {
    goto unlock;
  }
  for (size_t j = 0; j < m; j++) {
    uint64_t row;
    int had = 1;
    if (!qv__idmap_get(&c->map, packed_ids[j], &row)) {
      row = c->count++;
      c->ids[row] = packed_ids[j];
      qv__idmap_put(&c->map, packed_ids[j], row); /* reserved above: cannot fail */
      had = 0;
    }
    if (avals != NULL)
      qv__attrs_put(&c->attrs, row, avals + j * c->attrs.n, had);
    memcpy(c->vecs + row * d, packed + j * d, d * sizeof(float));
    if (F > 0) {
      if (features != NULL)
        memcpy(c->feats + row * F, features + pick[m - 1 - j] * F, F * sizeof(float));
      else
        memset(c->feats + row * F, 0, F * sizeof(float));
    }
  }
  free(avals); /* its tag sets belong to the store now */
  avals = NULL;
  touch(c, m, packed_ids);
  if (c->trained && faiss_Index_add_with_ids(c->index, (idx_t)m, packed, packed_ids) != 0)
    st = qv__faiss_fail(err, QV_EINTERNAL, "adding vectors to the index");
  if (st == QV_OK && c->trained && c->gpu != NULL) {
    qv_error ge = {0};
    if (qv__gpu_add(c->gpu, m, packed, packed_ids, &ge) != QV_OK) {
      /* The CPU index has everything: serve from it rather than fail the write. */
      qv__gpu_free(c->gpu);
      c->gpu = NULL;
      snprintf(c->placement, sizeof c->placement, "cpu: adding to the GPU copy failed (%.150s)",
               ge.msg);
    }
  }
unlock:
  pthread_rwlock_unlock(&c->rw);
  pthread_mutex_unlock(&c->wmu);
out:
  qv__attrs_vals_free(&c->attrs, avals, m);
  free(ablob);
  free(src);
  qv__idmap_fini(&seen);
  free(pick);
  free(packed);
  free(packed_ids);
  free(replaced);
  return st;
}

qv_status qv_collection_delete(qv_collection *c, size_t n, const int64_t *ids, size_t *n_deleted,
                               qv_error *err) {
  if (n_deleted)
    *n_deleted = 0;
  if (c == NULL || (n > 0 && ids == NULL))
    return qv_error_set(err, QV_EINVAL, "delete: collection or ids are NULL");
  if (n == 0)
    return QV_OK;
  int64_t *gone = malloc(n * sizeof *gone);
  if (gone == NULL)
    return qv_error_set(err, QV_ENOMEM, "delete: out of memory for %zu ids", n);
  const size_t d = c->dim;
  size_t ng = 0;
  qv_status st = QV_OK;
  pthread_mutex_lock(&c->wmu);
  /* Tombstone memory before the log (see add): a refused delete is never replayed. */
  const int deferred = c->trained && qv__deferred(c);
  if (deferred) {
    pthread_rwlock_wrlock(&c->rw);
    const int nomem = qv__idmap_reserve(&c->tomb, c->tomb.count + n) != 0;
    pthread_rwlock_unlock(&c->rw);
    if (nomem) {
      pthread_mutex_unlock(&c->wmu);
      free(gone);
      return qv_error_set(err, QV_ENOMEM, "delete: out of memory for %zu tombstones", n);
    }
  }
  if (c->wal != NULL) { /* logged only when it changes something */
    size_t present = 0;
    for (size_t i = 0; i < n && present == 0; i++)
      present += qv__idmap_get(&c->map, ids[i], NULL);
    if (present > 0) {
      if ((st = qv__wal_append(c->wal, c->wal_seq + 1, 1, n, 0, 0, ids, NULL, NULL, NULL, 0,
                               err)) != QV_OK) {
        pthread_mutex_unlock(&c->wmu);
        free(gone);
        return st;
      }
      c->wal_seq++;
    }
  }
  pthread_rwlock_wrlock(&c->rw);
  for (size_t i = 0; i < n; i++) {
    uint64_t row;
    if (!qv__idmap_get(&c->map, ids[i], &row))
      continue;
    qv__idmap_del(&c->map, ids[i]);
    if (deferred) { /* hidden from searches until the next save or build */
      qv__idmap_put(&c->tomb, ids[i], QV__TOMB_DELETED);
      c->n_dead++;
    }
    gone[ng++] = ids[i];
    size_t last = c->count - 1;
    qv__attrs_drop(&c->attrs, row);
    if (row != last) { /* move the last row into the hole */
      qv__attrs_move(&c->attrs, row, last);
      memcpy(c->vecs + row * d, c->vecs + last * d, d * sizeof(float));
      if (c->n_features > 0)
        memcpy(c->feats + row * c->n_features, c->feats + last * c->n_features,
               c->n_features * sizeof(float));
      c->ids[row] = c->ids[last];
      qv__idmap_put(&c->map, c->ids[row], row); /* overwrites: cannot fail */
    }
    c->count--;
  }
  touch(c, ng, gone);
  if (c->trained && !deferred && st == QV_OK)
    st = qv__index_remove(c->index, ng, gone, err);
  pthread_rwlock_unlock(&c->rw);
  pthread_mutex_unlock(&c->wmu);
  free(gone);
  if (n_deleted)
    *n_deleted = ng;
  return st;
}

qv_status qv_collection_stats_get(qv_collection *c, qv_collection_stats *s, qv_error *err) {
  if (c == NULL || s == NULL)
    return qv_error_set(err, QV_EINVAL, "stats: NULL argument");
  memset(s, 0, sizeof *s);
  pthread_rwlock_rdlock(&c->rw);
  s->dim = c->dim;
  s->metric = c->metric;
  memcpy(s->spec, c->spec.text, sizeof s->spec);
  s->count = c->count;
  s->trained = c->trained;
  s->indexed = c->trained ? (uint64_t)faiss_Index_ntotal(c->index) : 0;
  s->nlist = c->spec.nlist;
  s->default_nprobe = c->default_nprobe;
  s->vector_bytes = (uint64_t)c->count * (c->dim * sizeof(float) + sizeof(int64_t));
  s->index_bytes = s->indexed * (c->spec.code_bytes + sizeof(int64_t)) +
                   (uint64_t)c->spec.nlist * c->dim * sizeof(float);
  s->version = c->version;
  s->generation = c->generation;
  s->n_features = c->n_features;
  s->vector_bytes += (uint64_t)c->count * c->n_features * sizeof(float);
  s->device = c->device;
  s->gpu = qv__gpu_device_of(c->gpu);
  s->device_bytes = qv__gpu_bytes_of(c->gpu);
  memcpy(s->placement, c->placement, sizeof s->placement);
  s->tombstones = c->n_dead;
  s->graph = c->spec.graph;
  s->n_attrs = c->attrs.n;
  memcpy(s->attrs, c->attrs.f, sizeof s->attrs);
  s->attr_bytes = qv__attrs_bytes(&c->attrs, c->cap);
  s->filtered_exact = __atomic_load_n(&c->filtered_exact, __ATOMIC_RELAXED);
  s->filtered_index = __atomic_load_n(&c->filtered_index, __ATOMIC_RELAXED);
  s->filtered_overfetch_retries = __atomic_load_n(&c->filtered_retries, __ATOMIC_RELAXED);
  s->gpu_fallbacks = __atomic_load_n(&c->gpu_fallbacks, __ATOMIC_RELAXED);
  s->deferred_deletes = c->deferred;
  s->build_recall = c->build_recall;
  s->build_recall_k = c->build_recall_k;
  s->build_nprobe = c->build_nprobe;
  /* Without the writers' lock (held across saves and log syncs): the log figures are atomics, the
   * on-disk version a relaxed read, the open note fixed after open. */
  s->disk_version = __atomic_load_n(&c->disk_version, __ATOMIC_RELAXED);
  memcpy(s->open_note, c->open_note, sizeof s->open_note);
  qv__wal *w = __atomic_load_n(&c->wal, __ATOMIC_ACQUIRE);
  pthread_rwlock_unlock(&c->rw);
  qv__wal_figures(w, &s->wal_bytes, &s->wal_records);
  return QV_OK;
}

qv_status qv_collection_get(qv_collection *c, int64_t id, float *out, qv_error *err) {
  if (c == NULL || out == NULL)
    return qv_error_set(err, QV_EINVAL, "get: NULL argument");
  qv_status st = QV_OK;
  uint64_t row;
  pthread_rwlock_rdlock(&c->rw);
  if (qv__idmap_get(&c->map, id, &row))
    memcpy(out, c->vecs + row * c->dim, c->dim * sizeof(float));
  else
    st = qv_error_set(err, QV_ENOTFOUND, "id %lld is not in the collection", (long long)id);
  pthread_rwlock_unlock(&c->rw);
  return st;
}

qv_status qv_collection_get_items_attrs(qv_collection *c, size_t n, const int64_t *ids,
                                        float *vectors, float *features, uint8_t *found,
                                        size_t *n_found, qv_attr_batch *attrs, qv_error *err) {
  if (attrs != NULL)
    memset(attrs, 0, sizeof *attrs);
  if (n_found != NULL)
    *n_found = 0;
  if (c == NULL || (n > 0 && (ids == NULL || found == NULL)))
    return qv_error_set(err, QV_EINVAL, "get_items: NULL argument");
  size_t hits = 0;
  pthread_rwlock_rdlock(&c->rw);
  const size_t d = c->dim, nf = c->n_features;
  for (size_t i = 0; i < n; i++) {
    uint64_t row;
    found[i] = (uint8_t)qv__idmap_get(&c->map, ids[i], &row);
    hits += found[i];
    if (vectors != NULL) {
      if (found[i])
        memcpy(vectors + i * d, c->vecs + row * d, d * sizeof(float));
      else
        memset(vectors + i * d, 0, d * sizeof(float));
    }
    if (features != NULL && nf > 0) {
      if (found[i] && c->feats != NULL)
        memcpy(features + i * nf, c->feats + row * nf, nf * sizeof(float));
      else
        memset(features + i * nf, 0, nf * sizeof(float));
    }
  }
  qv_status st = QV_OK;
  if (attrs != NULL && c->attrs.n > 0) {
    int64_t *rows = malloc((n ? n : 1) * sizeof *rows);
    if (rows == NULL) {
      st = qv_error_set(err, QV_ENOMEM, "get_items: out of memory for %zu rows", n);
    } else {
      for (size_t i = 0; i < n; i++) {
        uint64_t row;
        rows[i] = qv__idmap_get(&c->map, ids[i], &row) ? (int64_t)row : -1;
      }
      st = qv__attrs_get(&c->attrs, n, rows, attrs, err);
      free(rows);
    }
  }
  pthread_rwlock_unlock(&c->rw);
  if (n_found != NULL)
    *n_found = hits;
  return st;
}

qv_status qv_collection_get_items(qv_collection *c, size_t n, const int64_t *ids, float *vectors,
                                  float *features, uint8_t *found, size_t *n_found, qv_error *err) {
  return qv_collection_get_items_attrs(c, n, ids, vectors, features, found, n_found, NULL, err);
}

/* ---- placement (quiver/gpu.h) -------------------------------------------------------------- */

size_t qv__gpu_need_bytes(const qv_collection *c, FaissIndex *idx) {
  const size_t n = (size_t)faiss_Index_ntotal(idx);
  size_t b = n * (c->spec.code_bytes + sizeof(int64_t)) + (size_t)c->spec.nlist * c->dim * 4;
  return b + b / 4 + ((size_t)16 << 20); /* list growth slack + FAISS's per-index structures */
}

/* An IVF copy for the GPU with nprobe within FAISS GPU's limit: FAISS copies nprobe along and
 * refuses more than 2048, while our CPU indexes keep nprobe == nlist (search.c). */
static qv_status gpu_source(const qv_collection *c, FaissIndex *idx, FaissIndex **src,
                            qv_error *err) {
  *src = idx;
  if (c->spec.nlist <= QV__GPU_MAX_K)
    return QV_OK;
  FaissIndex *clone = NULL;
  if (faiss_clone_index(idx, &clone) != 0)
    return qv__faiss_fail(err, QV_EINTERNAL, "copying the index for the GPU");
  FaissIndexIVF *ivf = faiss_IndexIVF_cast(clone);
  if (ivf != NULL)
    faiss_IndexIVF_set_nprobe(ivf, QV__GPU_MAX_K);
  *src = clone;
  return QV_OK;
}

qv_status qv__place(qv_collection *c, FaissIndex *idx, qv__gpu_index *replacing,
                    qv__gpu_index **gpu, char *note, qv_error *err) {
  *gpu = NULL;
  const int strict = c->device == QV_DEVICE_GPU && !qv_gpu_fallback_cpu();
  if (c->device == QV_DEVICE_CPU) {
    snprintf(note, QV__NOTE, "cpu: device cpu asked");
    return QV_OK;
  }
  if (qv__spec_gated(&c->spec)) {
    const char *kind = c->spec.graph ? "graph index" : "fast-scan index";
    if (c->device == QV_DEVICE_GPU)
      return qv_error_set(err, QV_EINVAL,
                          "index '%s' is a %s: FAISS 1.7.3 has no GPU version of it, so it "
                          "serves from the CPU only (device cpu or auto)",
                          c->spec.text, kind);
    snprintf(note, QV__NOTE, "cpu: %s is a %s (FAISS 1.7.3 has none on the GPU)", c->spec.text,
             kind);
    return QV_OK;
  }
  if (qv_gpu_devices() == 0) {
    const char *why = qv_gpu_compiled() ? "no GPU is present"
                                        : "this build links the CPU-only FAISS (docs/gpu.md)";
    if (strict)
      return qv_error_set(err, QV_EPRECONDITION, "device gpu asked but %s", why);
    snprintf(note, QV__NOTE, "cpu: %s", why);
    return QV_OK;
  }
  qv_error ge = {0};
  FaissIndex *src = NULL;
  qv_status st = gpu_source(c, idx, &src, &ge);
  if (st == QV_OK)
    st = qv__gpu_copy(src, qv__gpu_need_bytes(c, idx), replacing, gpu, &ge);
  if (src != NULL && src != idx)
    faiss_Index_free(src);
  if (st == QV_OK) {
    snprintf(note, QV__NOTE, "gpu %d", qv__gpu_device_of(*gpu));
    return QV_OK;
  }
  if (strict) {
    *err = ge;
    return st;
  }
  snprintf(note, QV__NOTE, "cpu: %.180s", ge.msg);
  return QV_OK;
}

qv_status qv_collection_set_device(qv_collection *c, qv_device device, qv_error *err) {
  if (c == NULL || qv_device_name(device) == NULL)
    return qv_error_set(err, QV_EINVAL, "set_device: NULL collection or unknown device");
  pthread_mutex_lock(&c->wmu);
  if (device == c->device && (device == QV_DEVICE_CPU || c->gpu != NULL)) {
    pthread_mutex_unlock(&c->wmu); /* already there */
    return QV_OK;
  }
  if (qv__spec_gated(&c->spec) && device == QV_DEVICE_GPU) {
    pthread_mutex_unlock(&c->wmu);
    return qv_error_set(err, QV_EINVAL,
                        "index '%s' is a %s: FAISS 1.7.3 has no GPU version of it, so it serves "
                        "from the CPU only (device cpu or auto)",
                        c->spec.text, c->spec.graph ? "graph index" : "fast-scan index");
  }
  const qv_device was = c->device;
  c->device = device;
  qv__gpu_index *gpu = NULL;
  char note[QV__NOTE];
  snprintf(note, sizeof note, "cpu: not built yet");
  qv_status st = QV_OK;
  if (c->trained)
    st = qv__place(c, c->index, c->gpu, &gpu, note, err);
  else if (device == QV_DEVICE_GPU && qv_gpu_devices() == 0 && !qv_gpu_fallback_cpu())
    st = qv_error_set(err, QV_EPRECONDITION, "device gpu asked but no GPU is available");
  if (st != QV_OK) {
    c->device = was;
    pthread_mutex_unlock(&c->wmu);
    return st;
  }
  pthread_rwlock_wrlock(&c->rw);
  qv__gpu_index *old = c->gpu;
  c->gpu = gpu; /* the tombstones stay: the copy came from the CPU index, which has the same
                   stale entries */
  memcpy(c->placement, note, sizeof note);
  pthread_rwlock_unlock(&c->rw);
  qv__gpu_free(old);
  pthread_mutex_unlock(&c->wmu);
  return QV_OK;
}

/* A graph or fast-scan index has no removal: its fold is a deep copy of it (written to memory and
 * read back: FAISS 1.7.3 clones an IndexHNSW as one sharing its storage), emptied with its
 * trained parts kept (coarse centroids, PQ or SQ codebooks), and filled again from the store.
 * Writers wait (the caller holds wmu); searches go on against the old one. */
static qv_status fold_rebuild(qv_collection *c, qv_error *err) {
  FaissIndex *idx = NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *w = open_memstream(&buf, &len);
  if (w == NULL)
    return qv_error_set(err, QV_ENOMEM, "folding tombstones: out of memory");
  const int wrc = faiss_write_index(c->index, w);
  if (fclose(w) != 0 || wrc != 0) {
    free(buf);
    return wrc != 0 ? qv__faiss_fail(err, QV_EINTERNAL, "folding tombstones: copying the index")
                    : qv_error_set(err, QV_ENOMEM, "folding tombstones: out of memory");
  }
  FILE *r = fmemopen(buf, len, "rb");
  const int rrc = r != NULL ? faiss_read_index(r, 0, &idx) : -1;
  if (r != NULL)
    fclose(r);
  free(buf);
  if (rrc != 0)
    return r == NULL ? qv_error_set(err, QV_ENOMEM, "folding tombstones: out of memory")
                     : qv__faiss_fail(err, QV_EINTERNAL, "folding tombstones: copying the index");
  faiss_Index_reset(idx);
  const size_t chunk = 65536;
  for (size_t off = 0; off < c->count; off += chunk) {
    const size_t m = c->count - off < chunk ? c->count - off : chunk;
    if (faiss_Index_add_with_ids(idx, (idx_t)m, c->vecs + off * c->dim, c->ids + off) != 0) {
      faiss_Index_free(idx);
      return qv__faiss_fail(err, QV_EINTERNAL, "folding tombstones: re-adding the store");
    }
  }
  pthread_rwlock_wrlock(&c->rw);
  FaissIndex *old = c->index;
  c->index = idx;
  qv__gate_reset(&c->gate);
  qv__idmap_fini(&c->tomb);
  qv__idmap_init(&c->tomb);
  c->n_dead = 0;
  pthread_rwlock_unlock(&c->rw);
  faiss_Index_free(old);
  return QV_OK;
}

qv_status qv__fold_tombstones(qv_collection *c, qv_error *err) {
  if (c->n_dead == 0 || !c->trained)
    return QV_OK;
  if (qv__spec_gated(&c->spec))
    return fold_rebuild(c, err);
  /* The fold works on a clone, swapped in only when it all worked: searches go on meanwhile
   * against the current index(es), and a failure changes nothing. Writers wait (wmu). */
  int64_t *dead = malloc(c->tomb.count * sizeof *dead);
  int64_t *again = malloc(c->tomb.count * sizeof *again);
  float *vecs = NULL;
  FaissIndex *idx = NULL;
  qv__gpu_index *gpu = NULL;
  size_t nd = 0, na = 0;
  qv_status st = QV_OK;
  if (dead == NULL || again == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory folding %zu tombstones", c->tomb.count);
    goto out;
  }
  for (size_t i = 0; i < c->tomb.cap; i++) {
    int64_t id = c->tomb.keys[i];
    if (id < 0)
      continue;
    dead[nd++] = id;
    if (qv__idmap_get(&c->map, id, NULL))
      again[na++] = id;
  }
  if (na > 0 && (vecs = malloc(na * c->dim * sizeof *vecs)) == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory folding %zu tombstones", nd);
    goto out;
  }
  for (size_t i = 0; i < na; i++) {
    uint64_t row;
    qv__idmap_get(&c->map, again[i], &row);
    memcpy(vecs + i * c->dim, c->vecs + row * c->dim, c->dim * sizeof(float));
  }
  if (faiss_clone_index(c->index, &idx) != 0) {
    st = qv__faiss_fail(err, QV_EINTERNAL, "folding tombstones: cloning the index");
    goto out;
  }
  FaissIDSelectorBatch *sel = NULL;
  size_t removed = 0;
  if (nd > 0 && faiss_IDSelectorBatch_new(&sel, nd, dead) != 0) {
    st = qv__faiss_fail(err, QV_EINTERNAL, "folding tombstones");
    goto out;
  }
  int rc = nd > 0 ? faiss_Index_remove_ids(idx, (const FaissIDSelector *)sel, &removed) : 0;
  faiss_IDSelector_free((FaissIDSelector *)sel);
  if (rc != 0 || (na > 0 && faiss_Index_add_with_ids(idx, (idx_t)na, vecs, again) != 0)) {
    st = qv__faiss_fail(err, QV_EINTERNAL, "folding tombstones");
    goto out;
  }
  qv__index_prepare(idx, &c->spec);
  /* A GPU copy cannot drop its stale entries (no remove_ids): replace it by a fresh one. */
  char note[QV__NOTE];
  memcpy(note, c->placement, sizeof note);
  if (c->gpu != NULL && (st = qv__place(c, idx, c->gpu, &gpu, note, err)) != QV_OK)
    goto out;
  pthread_rwlock_wrlock(&c->rw);
  FaissIndex *old = c->index;
  qv__gpu_index *old_gpu = c->gpu;
  c->index = idx;
  if (old_gpu != NULL) {
    c->gpu = gpu;
    memcpy(c->placement, note, sizeof note);
  }
  qv__idmap_fini(&c->tomb);
  qv__idmap_init(&c->tomb);
  c->n_dead = 0;
  pthread_rwlock_unlock(&c->rw);
  idx = old; /* freed below */
  qv__gpu_free(old_gpu);
out:
  if (idx != NULL)
    faiss_Index_free(idx);
  free(dead);
  free(again);
  free(vecs);
  return st;
}

uint64_t qv_collection_generation(qv_collection *c) {
  if (c == NULL)
    return 0;
  pthread_rwlock_rdlock(&c->rw);
  const uint64_t g = c->generation;
  pthread_rwlock_unlock(&c->rw);
  return g;
}

qv_status qv_collection_set_generation(qv_collection *c, uint64_t g, qv_error *err) {
  if (c == NULL || g < 1 || g > INT64_MAX)
    return qv_error_set(err, QV_EINVAL, "a data version is 1 .. 2^63-1 (got %llu)",
                        (unsigned long long)g);
  pthread_rwlock_wrlock(&c->rw);
  c->generation = g;
  pthread_rwlock_unlock(&c->rw);
  return QV_OK;
}
