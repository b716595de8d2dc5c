/* Persistence: a collection is a directory
 *
 *   DIR/MANIFEST.json        the current version and everything needed to verify it
 *   DIR/v000007/index.faiss  FAISS's own serialisation of the index
 *   DIR/v000007/vectors.npy  count x dim float32, the full-precision store (row order = ids.npy)
 *   DIR/v000007/ids.npy      count int64
 *
 * Save writes a new version directory as vNNNNNN.tmp, fsyncs every file and the directory, renames
 * it to vNNNNNN, fsyncs DIR, then replaces MANIFEST.json atomically (temp + fsync + rename + fsync
 * DIR). A crash at any point leaves the old manifest pointing at the old, complete version. Each
 * version directory also holds its own copy of the manifest, so that when the newest version fails
 * its checks at open the previous one is served (and the write-ahead log segments kept since then
 * are replayed on top of it). The last keep_versions versions are kept (default 2); older ones are
 * removed. See docs/index-format.md. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/index_io_c.h>
#include <jansson.h>

#include "internal.h"
#include "quiver/dirformat.h"
#include "quiver/fsutil.h"
#include "quiver/vecfile.h"

#define FORMAT_NAME "quiver-collection"
/* 1: vectors + ids + index; 2: also features.npy (written only when items carry features, so a
 * collection without features stays readable by version-1 builds); 3: also attrs.bin and the
 * manifest's "attributes" (only when the collection has a schema). */
#define FORMAT_VERSION 3
#define MANIFEST_MAX (1 << 20)
#define ATTRS_MAX ((size_t)1 << 40) /* a bound for reading attrs.bin */

/* Whether version file i (qv_version_files) is part of a snapshot: features.npy only when items
 * carry features, attrs.bin only with attributes. */
static int file_in(int i, size_t n_features, size_t n_attrs) {
  if (i == 3)
    return n_features > 0;
  if (i == 4)
    return n_attrs > 0;
  return 1;
}

/* How many saves ago version x was made, counting from v (the counter wraps after 999999). */
static uint64_t version_age(uint64_t v, uint64_t x) {
  return (v + 999999 - x) % 999999;
}

/* Removes stale *.tmp versions and every DIR/vNNNNNN except v, `from` (the version the collection
 * was opened from or last saved, 0 = none) and the versions just older than `from`, keep in all;
 * then the write-ahead log segments no kept version needs: a fallback to kept version y replays
 * y's own segment (the writes made while y was being written are there, after y's wal_seq) and
 * every newer one, so only segments older than the oldest kept version go. */
static void prune_versions(const char *dir, uint64_t v, uint64_t from, uint32_t keep) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  char path[QV_PATH_MAX];
  uint64_t *have = NULL, *segs = NULL;
  size_t nhave = 0, cap = 0, nsegs = 0, scap = 0;
  while ((e = readdir(d)) != NULL) {
    unsigned long long x;
    char tail[16] = "";
    if (strncmp(e->d_name, "wal-v", 5) == 0 && sscanf(e->d_name, "wal-v%6llu%15s", &x, tail) == 2 &&
        strcmp(tail, ".log") == 0) {
      if (nsegs == scap) {
        scap = scap ? 2 * scap : 16;
        uint64_t *t = realloc(segs, scap * sizeof *t);
        if (t == NULL)
          break;
        segs = t;
      }
      segs[nsegs++] = x;
      continue;
    }
    if (e->d_name[0] != 'v' || sscanf(e->d_name, "v%6llu%15s", &x, tail) < 1 ||
        strlen(e->d_name) < 7)
      continue;
    if (strcmp(tail, ".tmp") == 0) {
      qv_path_fmt(path, NULL, "%s/%s", dir, e->d_name);
      qv_remove_tree(path, NULL);
    } else if (tail[0] == '\0' && x != v) {
      if (nhave == cap) {
        cap = cap ? 2 * cap : 16;
        uint64_t *t = realloc(have, cap * sizeof *t);
        if (t == NULL)
          break;
        have = t;
      }
      have[nhave++] = x;
    }
  }
  closedir(d);
  /* Kept besides v: `from`, then the others by age relative to it. */
  uint64_t anchor = from ? from : v, oldest_age = 0;
  uint32_t kept = 1;
  for (;;) {
    size_t best = nhave;
    for (size_t i = 0; i < nhave; i++)
      if (have[i] != 0 &&
          (best == nhave || version_age(anchor, have[i]) < version_age(anchor, have[best])))
        best = i;
    if (best == nhave)
      break;
    if (kept < keep) {
      kept++;
      if (version_age(v, have[best]) > oldest_age)
        oldest_age = version_age(v, have[best]);
    } else {
      qv_path_fmt(path, NULL, "%s/v%06" PRIu64, dir, have[best]);
      qv_remove_tree(path, NULL);
    }
    have[best] = 0;
  }
  for (size_t i = 0; i < nsegs; i++)
    if (version_age(v, segs[i]) > oldest_age)
      qv__wal_drop_segment(dir, segs[i]);
  free(have);
  free(segs);
}

/* Version referenced by DIR/MANIFEST.json, or 0. */
static uint64_t manifest_version(const char *dir) {
  char path[QV_PATH_MAX];
  qv_path_fmt(path, NULL, "%s/" QV_MANIFEST, dir);
  char *text = NULL;
  size_t len = 0;
  json_t *root = NULL; /* read with the same size cap as an open: a huge file is damage */
  if (qv_file_read_all(path, MANIFEST_MAX, &text, &len, NULL) == QV_OK)
    root = json_loadb(text, len, 0, NULL);
  free(text);
  uint64_t v = 0;
  if (root != NULL) {
    json_t *jv = json_object_get(root, "version");
    if (json_is_integer(jv) && json_integer_value(jv) > 0)
      v = (uint64_t)json_integer_value(jv);
    json_decref(root);
  }
  return v;
}

/* What a save writes, taken under c->wmu: the index as FAISS serialises it and copies of the
 * store, so that the files are written and synced while writers go on. When the copies do not
 * fit in memory, `held` is set: the fields point at the live collection and the writers' mutex
 * stays held until the files are written (the old way: writers wait, nothing is duplicated). */
typedef struct {
  int held;
  char *index; /* FAISS's bytes of c->index (NULL when held) */
  size_t index_len;
  const float *vecs, *feats;
  const int64_t *ids;
  size_t count;
  float *own_vecs, *own_feats;
  int64_t *own_ids;
  char *attrs; /* attrs.bin's bytes (always a copy; NULL without attributes) */
  size_t attrs_len;
  json_t *root; /* the manifest, less "version", "dir" and "files" */
} snapshot;

static void snapshot_free(snapshot *sn) {
  free(sn->index);
  free(sn->own_vecs);
  free(sn->own_feats);
  free(sn->own_ids);
  free(sn->attrs);
  json_decref(sn->root);
}

static void *dup_or_null(const void *p, size_t bytes) {
  void *q = malloc(bytes ? bytes : 1);
  if (q != NULL && bytes > 0)
    memcpy(q, p, bytes);
  return q;
}

/* Takes the snapshot; the caller holds c->wmu. */
static qv_status snapshot_take(qv_collection *c, snapshot *sn, qv_error *err) {
  memset(sn, 0, sizeof *sn);
  const size_t n = c->count, d = c->dim, F = c->n_features;
  sn->count = n;
  FILE *mem = open_memstream(&sn->index, &sn->index_len);
  int copied = mem != NULL;
  if (copied && faiss_write_index(c->index, mem) != 0) {
    fclose(mem);
    return qv__faiss_fail(err, QV_EINTERNAL, "save: serialising the index");
  }
  if (copied && fclose(mem) != 0)
    copied = 0; /* out of memory growing the stream */
  if (copied) {
    sn->own_vecs = dup_or_null(c->vecs, n * d * sizeof(float));
    sn->own_ids = dup_or_null(c->ids, n * sizeof(int64_t));
    sn->own_feats = F > 0 ? dup_or_null(c->feats, n * F * sizeof(float)) : NULL;
    copied = sn->own_vecs != NULL && sn->own_ids != NULL && (F == 0 || sn->own_feats != NULL);
  }
  if (copied) {
    sn->vecs = sn->own_vecs;
    sn->ids = sn->own_ids;
    sn->feats = sn->own_feats;
  } else {
    free(sn->index);
    free(sn->own_vecs);
    free(sn->own_ids);
    free(sn->own_feats);
    sn->index = NULL;
    sn->own_vecs = sn->own_feats = NULL;
    sn->own_ids = NULL;
    sn->held = 1;
    sn->vecs = c->vecs;
    sn->ids = c->ids;
    sn->feats = c->feats;
  }
  sn->root =
      json_pack("{s:s, s:i, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:s, s:b, s:I}",
                "format", FORMAT_NAME, "format_version",
                c->attrs.n > 0 ? 3
                : F > 0        ? 2
                               : 1,
                "metric", qv_metric_name(c->metric), "dim", (json_int_t)d, "spec", c->spec.text,
                "default_nprobe", (json_int_t)c->default_nprobe, "train_sample",
                (json_int_t)c->train_sample, "seed", (json_int_t)(c->seed & INT64_MAX), "count",
                (json_int_t)n, "trained", c->trained, "build_version", (json_int_t)c->version,
                "n_features", (json_int_t)F, "device", qv_device_name(c->device),
                "deferred_deletes", c->deferred, "wal_seq", (json_int_t)(c->wal_seq & INT64_MAX));
  if (sn->root != NULL)
    json_object_set_new(sn->root, "generation",
                        json_integer((json_int_t)(c->generation & INT64_MAX)));
  if (sn->root != NULL && c->build_recall >= 0) {
    json_object_set_new(sn->root, "build_recall", json_real(c->build_recall));
    json_object_set_new(sn->root, "build_recall_k", json_integer(c->build_recall_k));
    json_object_set_new(sn->root, "build_nprobe", json_integer(c->build_nprobe));
  }
  if (sn->root == NULL)
    return qv_error_set(err, QV_ENOMEM, "save: out of memory encoding the manifest");
  if (c->attrs.n > 0) {
    json_t *schema = json_array();
    for (size_t j = 0; schema != NULL && j < c->attrs.n; j++)
      json_array_append_new(schema, json_pack("{s:s, s:s}", "name", c->attrs.f[j].name, "type",
                                              qv_attr_type_name(c->attrs.f[j].type)));
    if (schema == NULL)
      return qv_error_set(err, QV_ENOMEM, "save: out of memory encoding the manifest");
    json_object_set_new(sn->root, "attributes", schema);
    qv_status st = qv__attrs_encode_store(&c->attrs, n, &sn->attrs, &sn->attrs_len, err);
    if (st != QV_OK)
      return qv_error_prefix(err, st, "save");
  }
  return QV_OK;
}

/* Writes index.faiss durably, through a stream of ours so that every step is checked
 * (faiss_write_index_fname only prints a failed fclose: the tail a full disk refused went
 * unnoticed and the manifest recorded the short file). From the snapshot's bytes, or from the
 * live index when the snapshot is held. */
static qv_status write_index_file(const qv_collection *c, const snapshot *sn, const char *path,
                                  qv_error *err) {
  FILE *f = fopen(path, "wbe");
  if (f == NULL)
    return qv_error_set(err, QV_EIO, "save: open %s: %s", path, strerror(errno));
  qv_status st = QV_OK;
  if (sn->held ? faiss_write_index(c->index, f) != 0
               : fwrite(sn->index, 1, sn->index_len, f) != sn->index_len)
    st = sn->held ? qv__faiss_fail(err, QV_EIO, "save: writing index.faiss")
                  : qv_error_set(err, QV_EIO, "save: writing index.faiss: %s; the disk may be full",
                                 strerror(errno));
  else if (fflush(f) != 0 || ferror(f))
    st = qv_error_set(err, QV_EIO, "save: write %s: %s; the disk may be full", path,
                      strerror(errno));
  else if (fsync(fileno(f)) != 0)
    st = qv_error_set(err, QV_EIO, "save: fsync %s: %s; the disk may be full or failing", path,
                      strerror(errno));
  if (fclose(f) != 0 && st == QV_OK)
    st = qv_error_set(err, QV_EIO, "save: close %s: %s; the disk may be full", path,
                      strerror(errno));
  return st;
}

/* Writes the snapshot as version directory `final` (through `tmp`) and makes MANIFEST.json name
 * it. Nothing here reads the live collection unless the snapshot is held. */
static qv_status write_version(const qv_collection *c, const snapshot *sn, const char *dir,
                               uint64_t v, const char *tmp, const char *final, qv_error *err) {
  char path[QV_PATH_MAX];
  qv_status st;
  if ((st = qv_remove_tree(tmp, err)) != QV_OK || (st = qv_remove_tree(final, err)) != QV_OK ||
      (st = qv_mkdirs(tmp, err)) != QV_OK)
    return st;
  const size_t F = c->n_features;
  qv_path_fmt(path, NULL, "%s/index.faiss", tmp);
  if ((st = write_index_file(c, sn, path, err)) != QV_OK)
    return st;
  qv_path_fmt(path, NULL, "%s/vectors.npy", tmp);
  if ((st = qv_npy_write(path, QV_DTYPE_F32, sn->count, c->dim, sn->vecs, err)) != QV_OK)
    return st;
  qv_path_fmt(path, NULL, "%s/ids.npy", tmp);
  if ((st = qv_npy_write(path, QV_DTYPE_I64, sn->count, 0, sn->ids, err)) != QV_OK)
    return st;
  if (F > 0) {
    qv_path_fmt(path, NULL, "%s/features.npy", tmp);
    if ((st = qv_npy_write(path, QV_DTYPE_F32, sn->count, F, sn->feats, err)) != QV_OK)
      return st;
  }
  if (c->attrs.n > 0) {
    qv_path_fmt(path, NULL, "%s/attrs.bin", tmp);
    if ((st = qv_file_write_atomic(path, sn->attrs, sn->attrs_len, err)) != QV_OK)
      return st;
  }
  json_t *files = json_object();
  if (files == NULL)
    return qv_error_set(err, QV_ENOMEM, "save: out of memory encoding the manifest");
  for (int i = 0; i < QV_VERSION_NFILES; i++) {
    if (!file_in(i, F, c->attrs.n))
      continue;
    uint32_t crc;
    uint64_t size;
    qv_path_fmt(path, NULL, "%s/%s", tmp, qv_version_files[i]);
    if ((st = qv_file_crc32(path, &crc, &size, err)) != QV_OK) {
      json_decref(files);
      return st;
    }
    json_object_set_new(
        files, qv_version_files[i],
        json_pack("{s:I, s:I}", "size", (json_int_t)size, "crc32", (json_int_t)crc));
  }
  char vdir[16];
  snprintf(vdir, sizeof vdir, "v%06" PRIu64, v);
  json_object_set_new(sn->root, "version", json_integer((json_int_t)v));
  json_object_set_new(sn->root, "dir", json_string(vdir));
  json_object_set_new(sn->root, "files", files);
  char *text = json_dumps(sn->root, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (text == NULL)
    return qv_error_set(err, QV_ENOMEM, "save: out of memory encoding the manifest");
  /* The version's own copy: what open falls back to when a newer version is damaged. */
  qv_path_fmt(path, NULL, "%s/" QV_MANIFEST, tmp);
  if ((st = qv_file_write_atomic(path, text, strlen(text), err)) != QV_OK ||
      (st = qv_dir_fsync(tmp, err)) != QV_OK)
    goto out;
  if (rename(tmp, final) != 0) {
    st = qv_error_set(err, QV_EIO, "save: rename %s -> %s: %s", tmp, final, strerror(errno));
    goto out;
  }
  if ((st = qv_dir_fsync(dir, err)) != QV_OK)
    goto out;
  qv_path_fmt(path, NULL, "%s/" QV_MANIFEST, dir);
  st = qv_file_write_atomic(path, text, strlen(text), err);
out:
  free(text);
  return st;
}

qv_status qv_collection_save(qv_collection *c, const char *dir, qv_error *err) {
  if (c == NULL || dir == NULL)
    return qv_error_set(err, QV_EINVAL, "save: collection or directory is NULL");
  if (strlen(dir) > QV_COLLECTION_DIR_MAX)
    return qv_error_set(err, QV_EINVAL, "save: directory path is too long");
  qv_status st = qv_mkdirs(dir, err);
  if (st != QV_OK)
    return st;
  char tmp[QV_PATH_MAX] = "", final[QV_PATH_MAX];
  snapshot sn;
  memset(&sn, 0, sizeof sn);
  pthread_mutex_lock(&c->smu); /* one save at a time */
  pthread_mutex_lock(&c->wmu); /* writers wait while the snapshot is taken; searches go on */
  /* Tombstoned entries never reach the disk: the saved index holds exactly the stored vectors. */
  if ((st = qv__fold_tombstones(c, err)) == QV_OK)
    st = snapshot_take(c, &sn, err);
  if (st == QV_OK)
    qv__attrs_resort(c); /* the writes since the last sort are folded too */
  int locked = 1;
  if (st == QV_OK && !sn.held) {
    pthread_mutex_unlock(&c->wmu);
    locked = 0;
  }
  if (st != QV_OK)
    goto out;
  uint64_t prev = manifest_version(dir);
  if (prev == 0 && strcmp(dir, c->disk_dir) == 0)
    prev = c->disk_version; /* the manifest is unreadable: count on from what we opened */
  /* The counter follows the manifest and wraps after 999999; a directory already holding the
   * next number is an orphan of an interrupted save (the manifest never named it). */
  const uint64_t v = prev % 999999 + 1;
  qv_path_fmt(tmp, NULL, "%s/v%06" PRIu64 ".tmp", dir, v);
  qv_path_fmt(final, NULL, "%s/v%06" PRIu64, dir, v);
  if ((st = write_version(c, &sn, dir, v, tmp, final, err)) != QV_OK)
    goto out;
  if (!locked) {
    pthread_mutex_lock(&c->wmu);
    locked = 1;
  }
  /* The snapshot holds every logged write up to its wal_seq: the log moves aside as version v's
   * segment and a new one starts. Records appended while the files were written are in that
   * segment too, after the snapshot's seq: replay applies them (it reads every segment, skipping
   * what the opened snapshot holds), and pruning keeps the segment of every kept version. A
   * failure here loses nothing: the records stay in the live log. */
  if (c->wal != NULL && strcmp(dir, c->wal_dir) == 0)
    qv__wal_rotate(c->wal, v, NULL);
  prune_versions(dir, v, strcmp(dir, c->disk_dir) == 0 ? c->disk_version : 0, c->keep_versions);
  __atomic_store_n(&c->disk_version, v, __ATOMIC_RELAXED);
  qv_path_fmt(c->disk_dir, NULL, "%s", dir);
out:
  if (locked)
    pthread_mutex_unlock(&c->wmu);
  pthread_mutex_unlock(&c->smu);
  if (st != QV_OK && tmp[0] != '\0')
    qv_remove_tree(tmp, NULL);
  snapshot_free(&sn);
  return st;
}

/* ---- open -------------------------------------------------------------------------------- */

static qv_status corrupt(qv_error *err, const char *dir, const char *what) {
  return qv_error_set(err, QV_ECORRUPT, "collection %s: %s", dir, what);
}

static int get_uint(json_t *root, const char *key, uint64_t max, uint64_t *out) {
  json_t *j = json_object_get(root, key);
  if (!json_is_integer(j) || json_integer_value(j) < 0 || (uint64_t)json_integer_value(j) > max)
    return -1;
  *out = (uint64_t)json_integer_value(j);
  return 0;
}

/* Opens the version that manifest file `mpath` describes. */
static qv_status open_version(qv_collection **out, const char *dir, const char *mpath,
                              qv_error *err) {
  *out = NULL;
  struct stat sb;
  char path[QV_PATH_MAX], msg[512];
  char *text = NULL;
  size_t len = 0;
  qv_status st = qv_file_read_all(mpath, MANIFEST_MAX, &text, &len, err);
  if (st == QV_ENOTFOUND)
    return qv_error_set(err, QV_ENOTFOUND,
                        "collection %s: no " QV_MANIFEST " (not a Quiver collection directory, or "
                        "it was never saved)",
                        dir);
  if (st != QV_OK)
    return st;
  json_error_t jerr;
  json_t *root = json_loadb(text, len, 0, &jerr);
  free(text);
  qv_collection *c = NULL;
  qv_vecfile *vf = NULL, *idf = NULL;
  if (root == NULL) {
    snprintf(msg, sizeof msg, QV_MANIFEST " is not valid JSON (line %d: %s)", jerr.line, jerr.text);
    return corrupt(err, dir, msg);
  }
  const char *format = json_string_value(json_object_get(root, "format"));
  uint64_t fv = 0, version, dim, nprobe, tsample, seed, count, bversion, nfeat = 0;
  const char *vdir = json_string_value(json_object_get(root, "dir"));
  const char *metric_s = json_string_value(json_object_get(root, "metric"));
  const char *spec_s = json_string_value(json_object_get(root, "spec"));
  json_t *jtrained = json_object_get(root, "trained");
  json_t *files = json_object_get(root, "files");
  if (format == NULL || strcmp(format, FORMAT_NAME) != 0 ||
      get_uint(root, "format_version", 1000000, &fv) != 0) {
    st = corrupt(err, dir, QV_MANIFEST " is not a Quiver collection manifest");
    goto fail;
  }
  if (fv > FORMAT_VERSION) {
    st = qv_error_set(err, QV_EUNSUPPORTED,
                      "collection %s: format version %" PRIu64
                      " is newer than this build reads (%d): upgrade Quiver",
                      dir, fv, FORMAT_VERSION);
    goto fail;
  }
  if (get_uint(root, "version", 999999, &version) || get_uint(root, "dim", QV_MAX_DIM, &dim) ||
      get_uint(root, "default_nprobe", UINT32_MAX, &nprobe) ||
      get_uint(root, "train_sample", SIZE_MAX, &tsample) ||
      get_uint(root, "seed", INT64_MAX, &seed) || get_uint(root, "count", INT64_MAX, &count) ||
      get_uint(root, "build_version", INT64_MAX, &bversion) || dim == 0 || vdir == NULL ||
      metric_s == NULL || spec_s == NULL || !json_is_boolean(jtrained) || !json_is_object(files)) {
    st = corrupt(err, dir, QV_MANIFEST " has a missing or out-of-range field");
    goto fail;
  }
  if (json_object_get(root, "n_features") != NULL &&
      (get_uint(root, "n_features", QV_MAX_ITEM_FEATURES, &nfeat) != 0 || (nfeat > 0 && fv < 2))) {
    st = corrupt(err, dir, QV_MANIFEST " has an invalid n_features");
    goto fail;
  }
  /* Optional keys (absent in older manifests): the device asked, deferred deletes, and the last
   * write-ahead-log record the snapshot holds. */
  uint64_t wal_seq = 0;
  if (json_object_get(root, "wal_seq") != NULL && get_uint(root, "wal_seq", INT64_MAX, &wal_seq)) {
    st = corrupt(err, dir, QV_MANIFEST " has an invalid wal_seq");
    goto fail;
  }
  qv_device device = QV_DEVICE_AUTO;
  json_t *jdev = json_object_get(root, "device"), *jdef = json_object_get(root, "deferred_deletes");
  if ((jdev != NULL && (!json_is_string(jdev) ||
                        qv_device_parse(json_string_value(jdev), &device, NULL) != QV_OK)) ||
      (jdef != NULL && !json_is_boolean(jdef))) {
    st = corrupt(err, dir, QV_MANIFEST " has an invalid device or deferred_deletes");
    goto fail;
  }
  char want_vdir[16];
  snprintf(want_vdir, sizeof want_vdir, "v%06" PRIu64, version);
  if (strcmp(vdir, want_vdir) != 0) {
    st = corrupt(err, dir, QV_MANIFEST ": 'dir' does not match 'version'");
    goto fail;
  }
  qv_metric metric;
  qv__spec spec;
  if (qv_metric_parse(metric_s, &metric, NULL) != QV_OK ||
      qv__spec_parse(spec_s, dim, &spec, NULL) != QV_OK) {
    st = corrupt(err, dir, QV_MANIFEST " has an invalid metric or index spec");
    goto fail;
  }
  /* Every file: present, of the recorded size, with the recorded CRC-32. */
  qv_attr_field schema[QV_MAX_ATTRS];
  size_t n_attrs = 0;
  json_t *jattrs = json_object_get(root, "attributes");
  if (jattrs != NULL) {
    int ok = json_is_array(jattrs) && json_array_size(jattrs) <= QV_MAX_ATTRS && fv >= 3;
    for (size_t j = 0; ok && j < json_array_size(jattrs); j++) {
      json_t *e = json_array_get(jattrs, j);
      const char *an = json_string_value(json_object_get(e, "name"));
      const char *at = json_string_value(json_object_get(e, "type"));
      ok = an != NULL && at != NULL && strlen(an) < QV_MAX_ATTR_NAME &&
           qv_attr_type_parse(at, &schema[j].type, NULL) == QV_OK;
      if (ok)
        snprintf(schema[j].name, sizeof schema[j].name, "%s", an);
    }
    if (ok)
      n_attrs = json_array_size(jattrs);
    if (!ok || qv_attr_schema_check(n_attrs, schema, NULL) != QV_OK) {
      st = corrupt(err, dir, QV_MANIFEST " has an invalid attributes schema");
      goto fail;
    }
  }
  for (int i = 0; i < QV_VERSION_NFILES; i++) {
    if (!file_in(i, nfeat, n_attrs))
      continue;
    json_t *f = json_object_get(files, qv_version_files[i]);
    uint64_t size, crc_want, size_got;
    uint32_t crc_got;
    if (!json_is_object(f) || get_uint(f, "size", INT64_MAX, &size) ||
        get_uint(f, "crc32", UINT32_MAX, &crc_want)) {
      snprintf(msg, sizeof msg, QV_MANIFEST " lacks size/crc32 of %s", qv_version_files[i]);
      st = corrupt(err, dir, msg);
      goto fail;
    }
    qv_path_fmt(path, NULL, "%s/%s/%s", dir, vdir, qv_version_files[i]);
    if (stat(path, &sb) != 0) {
      snprintf(msg, sizeof msg, "%s/%s is missing", vdir, qv_version_files[i]);
      st = corrupt(err, dir, msg);
      goto fail;
    }
    if ((uint64_t)sb.st_size != size) {
      snprintf(msg, sizeof msg,
               "%s/%s is %lld bytes but the manifest says %" PRIu64 " (truncated or replaced)",
               vdir, qv_version_files[i], (long long)sb.st_size, size);
      st = corrupt(err, dir, msg);
      goto fail;
    }
    if ((st = qv_file_crc32(path, &crc_got, &size_got, err)) != QV_OK)
      goto fail;
    if (crc_got != crc_want) {
      snprintf(msg, sizeof msg, "%s/%s fails its CRC-32 check (corrupt)", vdir,
               qv_version_files[i]);
      st = corrupt(err, dir, msg);
      goto fail;
    }
  }

  if ((st = qv__collection_alloc(&c, err)) != QV_OK)
    goto fail;
  c->dim = dim;
  c->metric = metric;
  c->spec = spec;
  c->default_nprobe = (uint32_t)(nprobe ? nprobe : 16);
  c->train_sample = tsample;
  c->seed = seed;
  c->version = bversion;
  c->n_features = nfeat;
  if ((st = qv__attrs_set_schema(&c->attrs, n_attrs, schema, err)) != QV_OK)
    goto fail;
  c->device = device;
  c->deferred = json_is_true(jdef);
  c->wal_seq = wal_seq;
  json_t *jrec = json_object_get(root, "build_recall");
  c->build_recall = json_is_number(jrec) ? json_number_value(jrec) : -1.0;
  uint64_t rk = 0, rp = 0;
  get_uint(root, "build_recall_k", QV_MAX_K, &rk);
  get_uint(root, "build_nprobe", QV_MAX_NLIST, &rp);
  c->build_recall_k = (uint32_t)rk;
  c->build_nprobe = (uint32_t)rp;
  uint64_t gen = 1; /* absent: a collection saved before data versions (they all were 1) */
  get_uint(root, "generation", INT64_MAX, &gen);
  c->generation = gen ? gen : 1;

  qv_path_fmt(path, NULL, "%s/%s/vectors.npy", dir, vdir);
  if ((st = qv_vecfile_open(&vf, path, err)) != QV_OK) {
    if (st == QV_EIO)
      goto fail;
    st = corrupt(err, dir, "vectors.npy is unreadable");
    goto fail;
  }
  qv_path_fmt(path, NULL, "%s/%s/ids.npy", dir, vdir);
  if ((st = qv_vecfile_open(&idf, path, err)) != QV_OK) {
    if (st == QV_EIO)
      goto fail;
    st = corrupt(err, dir, "ids.npy is unreadable");
    goto fail;
  }
  if (qv_vecfile_dtype(vf) != QV_DTYPE_F32 || qv_vecfile_rows(vf) != count ||
      (count > 0 && qv_vecfile_cols(vf) != dim) || qv_vecfile_dtype(idf) != QV_DTYPE_I64 ||
      qv_vecfile_rows(idf) != count || (count > 0 && qv_vecfile_cols(idf) != 1)) {
    st = corrupt(err, dir, "vectors.npy or ids.npy does not match the manifest's count and dim");
    goto fail;
  }
  if ((st = qv__store_reserve(c, count, err)) != QV_OK)
    goto fail;
  if (qv__idmap_reserve(&c->map, count) != 0) {
    st = qv_error_set(err, QV_ENOMEM, "open: out of memory for %" PRIu64 " ids", count);
    goto fail;
  }
  if (count > 0 && ((st = qv_vecfile_read_f32(vf, 0, count, c->vecs, err)) != QV_OK ||
                    (st = qv_vecfile_read_i64(idf, 0, count, c->ids, err)) != QV_OK))
    goto fail;
  if (nfeat > 0 && count > 0) {
    qv_vecfile *ff = NULL;
    qv_path_fmt(path, NULL, "%s/%s/features.npy", dir, vdir);
    if ((st = qv_vecfile_open(&ff, path, err)) != QV_OK) {
      st = corrupt(err, dir, "features.npy is unreadable");
      goto fail;
    }
    if (qv_vecfile_dtype(ff) != QV_DTYPE_F32 || qv_vecfile_rows(ff) != count ||
        qv_vecfile_cols(ff) != nfeat) {
      qv_vecfile_close(ff);
      st = corrupt(err, dir, "features.npy does not match the manifest's count and n_features");
      goto fail;
    }
    st = qv_vecfile_read_f32(ff, 0, count, c->feats, err);
    qv_vecfile_close(ff);
    if (st != QV_OK)
      goto fail;
  }
  if (n_attrs > 0) {
    char *blob = NULL;
    size_t blen = 0;
    qv_attr_batch ab = {0};
    qv_path_fmt(path, NULL, "%s/%s/attrs.bin", dir, vdir);
    if ((st = qv_file_read_all(path, ATTRS_MAX, &blob, &blen, err)) != QV_OK) {
      if (st != QV_EIO && st != QV_ENOMEM)
        st = corrupt(err, dir, "attrs.bin is unreadable");
      goto fail;
    }
    st = qv__attrs_decode(&c->attrs, blob, blen, count, &ab, err);
    free(blob);
    if (st == QV_OK && ab.n_columns != n_attrs)
      st = qv_error_set(err, QV_ECORRUPT, "attrs.bin lacks attributes of the schema");
    if (st == QV_OK && (st = qv_attr_batch_check(n_attrs, c->attrs.f, count, &ab, err)) != QV_OK)
      st = QV_ECORRUPT;
    uint64_t *vals = NULL;
    size_t *src = st == QV_OK ? malloc((count ? count : 1) * sizeof *src) : NULL;
    if (st == QV_OK && src == NULL)
      st = qv_error_set(err, QV_ENOMEM, "open: out of memory for attributes");
    for (size_t r = 0; src != NULL && r < count; r++)
      src[r] = r;
    if (st == QV_OK && (st = qv__attrs_prepare(&c->attrs, &ab, count, src, &vals, err)) == QV_OK) {
      for (size_t r = 0; r < count; r++)
        qv__attrs_put(&c->attrs, r, vals + r * n_attrs, 0);
      free(vals);
    }
    free(src);
    qv_attr_batch_free(&ab);
    if (st != QV_OK) {
      if (st == QV_ECORRUPT)
        qv_error_prefix(err, st, "collection %s", dir);
      goto fail;
    }
    qv__sorted so;
    if (qv__attrs_sort_build(&c->attrs, count, &so) == 0) /* else: tests scan the columns */
      qv__attrs_sort_swap(&c->attrs, &so);
  }
  c->count = count;
  for (size_t r = 0; r < count; r++) {
    if (c->ids[r] < 0 || qv__idmap_get(&c->map, c->ids[r], NULL)) {
      st = corrupt(err, dir, "ids.npy has a negative or repeated id");
      goto fail;
    }
    qv__idmap_put(&c->map, c->ids[r], r);
  }

  qv_path_fmt(path, NULL, "%s/%s/index.faiss", dir, vdir);
  if ((st = qv__faiss_file_check(path, dim, &spec, err)) != QV_OK) {
    qv_error_prefix(err, st, "collection %s", dir);
    goto fail;
  }
  if (faiss_read_index_fname(path, 0, &c->index) != 0) {
    c->index = NULL;
    st = qv__faiss_fail(err, QV_ECORRUPT, "index.faiss is unreadable");
    qv_error_prefix(err, st, "collection %s", dir);
    goto fail;
  }
  FaissMetricType fm = metric == QV_METRIC_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT;
  int trained = json_is_true(jtrained);
  FaissIndexIVF *ivf = faiss_IndexIVF_cast(c->index);
  if ((size_t)faiss_Index_d(c->index) != dim || faiss_Index_metric_type(c->index) != fm ||
      (faiss_Index_is_trained(c->index) != 0) != trained ||
      (trained && (uint64_t)faiss_Index_ntotal(c->index) != count) ||
      (spec.nlist > 0) != (ivf != NULL) ||
      (ivf != NULL && faiss_IndexIVF_nlist(ivf) != spec.nlist)) {
    st = corrupt(err, dir, "index.faiss does not match the manifest (dim, metric, spec or count)");
    goto fail;
  }
  if ((st = qv__index_validate(c->index, &spec, dim, count, &c->map, err)) != QV_OK) {
    qv_error_prefix(err, st, "collection %s", dir);
    goto fail;
  }
  qv__index_prepare(c->index, &c->spec);
  c->trained = trained;
  if (trained) {
    /* Where it serves: never a reason to refuse opening stored data, so a strict "gpu" that
     * cannot be met serves from the CPU and says why. */
    qv_error pe = {0};
    if (qv__place(c, c->index, NULL, &c->gpu, c->placement, &pe) != QV_OK)
      snprintf(c->placement, sizeof c->placement, "cpu: %.180s", pe.msg);
  }
  c->disk_version = version;
  qv_path_fmt(c->disk_dir, NULL, "%s", dir);
  qv_vecfile_close(vf);
  qv_vecfile_close(idf);
  json_decref(root);
  *out = c;
  return QV_OK;
fail:
  qv_vecfile_close(vf);
  qv_vecfile_close(idf);
  qv_collection_close(c);
  json_decref(root);
  return st;
}

/* Version directories of dir holding their own manifest, newest first counting back from `top`
 * (the version the main manifest names, or 0: by number). */
static size_t list_versions(const char *dir, uint64_t top, uint64_t *out, size_t max) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  struct dirent *e;
  size_t n = 0;
  char path[QV_PATH_MAX];
  struct stat sb;
  while ((e = readdir(d)) != NULL && n < max) {
    unsigned long long x;
    if (e->d_name[0] != 'v' || strlen(e->d_name) != 7 || sscanf(e->d_name, "v%6llu", &x) != 1 ||
        x == 0 || x == top)
      continue;
    qv_path_fmt(path, NULL, "%s/%s/" QV_MANIFEST, dir, e->d_name);
    if (stat(path, &sb) == 0)
      out[n++] = x;
  }
  closedir(d);
  uint64_t anchor = top;
  if (anchor == 0) /* the main manifest is unreadable: the highest number is the newest */
    for (size_t i = 0; i < n; i++)
      if (out[i] > anchor)
        anchor = out[i];
  for (size_t i = 1; i < n; i++) /* insertion sort by age, youngest first */
    for (size_t j = i; j > 0 && version_age(anchor, out[j]) < version_age(anchor, out[j - 1]);
         j--) {
      uint64_t t = out[j];
      out[j] = out[j - 1];
      out[j - 1] = t;
    }
  return n;
}

qv_status qv_collection_open(qv_collection **out, const char *dir, qv_error *err) {
  if (out == NULL || dir == NULL)
    return qv_error_set(err, QV_EINVAL, "open: NULL argument");
  *out = NULL;
  if (strlen(dir) > QV_COLLECTION_DIR_MAX)
    return qv_error_set(err, QV_EINVAL, "open: directory path is too long");
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return qv_error_set(err, QV_ENOTFOUND, "collection %s: no such directory", dir);
  char mpath[QV_PATH_MAX];
  qv_path_fmt(mpath, NULL, "%s/" QV_MANIFEST, dir);
  qv_error e1 = {0};
  qv_status st = open_version(out, dir, mpath, &e1);
  /* Damaged, missing or unreadable: fall back when an older version is there. */
  if (st != QV_ECORRUPT && st != QV_ENOTFOUND && st != QV_EIO) {
    if (st != QV_OK && err != NULL)
      *err = e1;
    return st;
  }
  /* The newest version cannot be served: serve the newest older one that passes every check. */
  uint64_t vs[256]; /* more than --keep-versions allows (100) */
  size_t n = list_versions(dir, manifest_version(dir), vs, 256);
  for (size_t i = 0; i < n; i++) {
    qv_path_fmt(mpath, NULL, "%s/v%06" PRIu64 "/" QV_MANIFEST, dir, vs[i]);
    qv_error e2 = {0};
    if (open_version(out, dir, mpath, &e2) == QV_OK) {
      snprintf((*out)->open_note, sizeof(*out)->open_note,
               "serving the previous version v%06" PRIu64 ": the newest failed its checks: %s",
               vs[i], e1.msg);
      return QV_OK;
    }
  }
  if (err != NULL)
    *err = e1;
  return st;
}

qv_status qv_collection_set_keep_versions(qv_collection *c, uint32_t n, qv_error *err) {
  if (c == NULL || n < 1 || n > 100)
    return qv_error_set(err, QV_EINVAL, "keep_versions must be 1..100 (got %u)", n);
  pthread_mutex_lock(&c->wmu);
  c->keep_versions = n;
  pthread_mutex_unlock(&c->wmu);
  return QV_OK;
}
