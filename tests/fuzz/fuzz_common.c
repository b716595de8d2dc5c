#define _GNU_SOURCE
#include "fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "quiver/collection.h"
#include "quiver/fsutil.h"
#include "registry.h"

const char *const fz_col_files[] = {"MANIFEST.json",
                                    "v000001/MANIFEST.json",
                                    "v000001/index.faiss",
                                    "v000001/vectors.npy",
                                    "v000001/ids.npy",
                                    "v000001/features.npy",
                                    "wal.log",
                                    "wal-v000001.log",
                                    "v000001/attrs.bin"};
const size_t fz_ncol_files = sizeof fz_col_files / sizeof fz_col_files[0];

static void die(const char *what) {
  fprintf(stderr, "fuzz setup: %s: %s\n", what, strerror(errno));
  abort();
}

char *fz_mkdtemp(const char *tag) {
  const char *t = getenv("TMPDIR");
  char buf[512];
  snprintf(buf, sizeof buf, "%s/qvfuzz-%s-XXXXXX", t && t[0] ? t : "/tmp", tag);
  char *d = mkdtemp(buf);
  if (d == NULL)
    die("mkdtemp");
  return strdup(d);
}

static const char *g_src, *g_dst;

static int copy_one(const char *path, const struct stat *sb, int type, struct FTW *f) {
  (void)f;
  char to[4096];
  snprintf(to, sizeof to, "%s%s", g_dst, path + strlen(g_src));
  if (type == FTW_D)
    return mkdir(to, 0755) == 0 || errno == EEXIST ? 0 : -1;
  if (type != FTW_F)
    return 0;
  int in = open(path, O_RDONLY | O_CLOEXEC), out = -1;
  if (in < 0 || (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
    return -1;
  char b[65536];
  ssize_t k;
  while ((k = read(in, b, sizeof b)) > 0)
    if (write(out, b, (size_t)k) != k)
      k = -1;
  close(in);
  close(out);
  (void)sb;
  return k < 0 ? -1 : 0;
}

void fz_copy_tree(const char *src, const char *dst) {
  g_src = src;
  g_dst = dst;
  if (nftw(src, copy_one, 16, FTW_PHYS) != 0)
    die("copy tree");
}

void fz_rm_tree(const char *path) {
  qv_remove_tree(path, NULL);
}

void fz_write_file(const char *path, const uint8_t *data, size_t len) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = '\0';
    qv_mkdirs(dir, NULL);
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    die(path);
  size_t done = 0;
  while (done < len) {
    ssize_t k = write(fd, data + done, len - done);
    if (k <= 0)
      die("write");
    done += (size_t)k;
  }
  close(fd);
}

static void check(qv_status st, const qv_error *e, const char *what) {
  if (st != QV_OK) {
    fprintf(stderr, "fuzz setup: %s: %s\n", what, e->msg);
    abort();
  }
}

static void fill(float *x, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n * FZ_DIM; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f + (float)(i / FZ_DIM % 4);
  }
}

/* The "flat" template's attributes: one of each type, for rows [0, n) of ids. */
static const qv_attr_field kAttrs[] = {{"cat", QV_ATTR_INT64},
                                       {"price", QV_ATTR_FLOAT},
                                       {"on", QV_ATTR_BOOL},
                                       {"brand", QV_ATTR_KEYWORD},
                                       {"tags", QV_ATTR_TAGS}};
enum { FZ_MAX_ROWS = 300 };
static int64_t a_int[FZ_MAX_ROWS], a_bool[FZ_MAX_ROWS];
static double a_float[FZ_MAX_ROWS];
static const char *a_kw[FZ_MAX_ROWS], *a_tags[2 * FZ_MAX_ROWS];
static uint32_t a_cnt[FZ_MAX_ROWS];
static qv_attr_column a_cols[5];

static qv_attr_batch attr_rows(const int64_t *ids, size_t n) {
  static const char *const words[] = {"red", "green", "blue", "", "a long-ish keyword value"};
  size_t t = 0;
  for (size_t i = 0; i < n; i++) {
    a_int[i] = ids[i] % 7 - 3;
    a_bool[i] = ids[i] % 2;
    a_float[i] = (double)ids[i] * 0.5;
    a_kw[i] = words[ids[i] % 5];
    a_cnt[i] = (uint32_t)(ids[i] % 3);
    for (uint32_t u = 0; u < a_cnt[i]; u++)
      a_tags[t++] = words[(ids[i] + u) % 4];
  }
  qv_attr_column c[5] = {{"cat", QV_ATTR_INT64, a_int, NULL, NULL, NULL},
                         {"price", QV_ATTR_FLOAT, NULL, a_float, NULL, NULL},
                         {"on", QV_ATTR_BOOL, a_bool, NULL, NULL, NULL},
                         {"brand", QV_ATTR_KEYWORD, NULL, NULL, a_kw, NULL},
                         {"tags", QV_ATTR_TAGS, NULL, NULL, a_tags, a_cnt}};
  memcpy(a_cols, c, sizeof c);
  return (qv_attr_batch){5, a_cols, NULL};
}

void fz_make_template(const char *data_dir) {
  static const struct {
    const char *name, *spec;
    qv_metric metric;
    size_t features;
  } kCols[] = {{"flat", "Flat", QV_METRIC_L2, 2},
               {"ivf", "IVF4,Flat", QV_METRIC_COSINE, 0},
               {"sq", "IVF4,SQ8", QV_METRIC_IP, 0}};
  qv_error err = {0};
  for (size_t c = 0; c < sizeof kCols / sizeof kCols[0]; c++) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/collections/%s", data_dir, kCols[c].name);
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = FZ_DIM;
    o.metric = kCols[c].metric;
    o.spec = kCols[c].spec;
    o.n_features = kCols[c].features;
    o.device = QV_DEVICE_CPU;
    const int with_attrs = kCols[c].features > 0; /* the "flat" one */
    if (with_attrs) {
      o.n_attrs = sizeof kAttrs / sizeof kAttrs[0];
      o.attrs = kAttrs;
    }
    qv_collection *col;
    check(qv_collection_create(&col, &o, &err), &err, "create");
    enum { N = 300, M = 20 };
    float x[N * FZ_DIM], feats[N * 2];
    int64_t ids[N];
    fill(x, N, (uint32_t)c + 1);
    for (size_t i = 0; i < N; i++) {
      ids[i] = (int64_t)(i * 3 + 1);
      feats[2 * i] = (float)i;
      feats[2 * i + 1] = 1.0f;
    }
    qv_attr_batch ab = attr_rows(ids, N - M);
    check(qv_collection_upsert(col, N - M, ids, x, o.n_features ? feats : NULL,
                               with_attrs ? &ab : NULL, &err),
          &err, "add");
    qv_build_opts bo;
    qv_build_opts_init(&bo);
    bo.recall_floor = 0;
    bo.eval_queries = 8;
    check(qv_collection_build_ex(col, &bo, NULL, NULL, NULL, &err), &err, "build");
    check(qv_collection_save(col, dir, &err), &err, "save");
    qv_wal_opts wo;
    qv_wal_opts_init(&wo);
    wo.sync_always = 0;
    check(qv_collection_wal_attach(col, dir, &wo, NULL, &err), &err, "wal attach");
    /* In the log only: the last M vectors, one replaced, and two deletes. */
    ab = attr_rows(ids + N - M, M);
    check(qv_collection_upsert(col, M, ids + N - M, x + (N - M) * FZ_DIM,
                               o.n_features ? feats + (N - M) * 2 : NULL, with_attrs ? &ab : NULL,
                               &err),
          &err, "add to the log");
    check(qv_collection_add_features(col, 1, ids, x + FZ_DIM, o.n_features ? feats : NULL, &err),
          &err, "replace");
    size_t deleted;
    check(qv_collection_delete(col, 2, ids + 5, &deleted, &err), &err, "delete");
    qv_collection_close(col);
  }
}

void fz_fix_manifests(const char *col_dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/MANIFEST.json", col_dir);
  json_t *top = json_load_file(path, 0, NULL);
  const char *vdir = top ? json_string_value(json_object_get(top, "dir")) : NULL;
  if (vdir == NULL || strchr(vdir, '/') != NULL || strstr(vdir, "..") != NULL) {
    json_decref(top);
    return;
  }
  char vman[4096];
  snprintf(vman, sizeof vman, "%s/%s/MANIFEST.json", col_dir, vdir);
  json_t *ver = json_load_file(vman, 0, NULL);
  json_t *docs[2] = {top, ver};
  const char *paths[2] = {path, vman};
  for (int d = 0; d < 2; d++) {
    json_t *files = docs[d] ? json_object_get(docs[d], "files") : NULL;
    const char *key;
    json_t *val;
    json_object_foreach(files, key, val) {
      if (!json_is_object(val) || strchr(key, '/') != NULL)
        continue;
      char f[4096];
      snprintf(f, sizeof f, "%s/%s/%s", col_dir, vdir, key);
      uint32_t crc;
      uint64_t size;
      if (qv_file_crc32(f, &crc, &size, NULL) != QV_OK)
        continue;
      json_object_set_new(val, "size", json_integer((json_int_t)size));
      json_object_set_new(val, "crc32", json_integer((json_int_t)crc));
    }
    if (docs[d])
      json_dump_file(docs[d], paths[d], JSON_SORT_KEYS);
  }
  json_decref(top);
  json_decref(ver);
}

void fz_quiet_logs(void) {
  const char *l = getenv("QV_FUZZ_LOG");
  int lvl = l ? qv__log_parse_level(l) : -1;
  qv__log_min_level = lvl >= 0 ? lvl : QV_LOG_ERROR + 1;
}
