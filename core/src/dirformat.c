/* The collection directory format's names: see quiver/dirformat.h. */
#include "quiver/dirformat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "quiver/fsutil.h"

const char *const qv_version_files[QV_VERSION_NFILES] = {"index.faiss", "vectors.npy", "ids.npy",
                                                         "features.npy", "attrs.bin"};

/* "vNNNNNN" */
static int is_version_dir(const char *s, size_t n) {
  if (n != 7 || s[0] != 'v')
    return 0;
  for (size_t i = 1; i < 7; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

int qv_collection_file_ok(const char *rel) {
  if (strcmp(rel, QV_MANIFEST) == 0)
    return 1;
  const char *slash = strchr(rel, '/');
  if (slash == NULL || !is_version_dir(rel, (size_t)(slash - rel)))
    return 0;
  if (strcmp(slash + 1, QV_MANIFEST) == 0)
    return 1;
  for (int i = 0; i < QV_VERSION_NFILES; i++)
    if (strcmp(slash + 1, qv_version_files[i]) == 0)
      return 1;
  return 0;
}

qv_status qv_collection_push_files(const char *dir, char files[][QV_REL_MAX], int *n,
                                   qv_error *err) {
  *n = 0;
  char path[QV_PATH_MAX];
  qv_status st = qv_path_fmt(path, err, "%s/" QV_MANIFEST, dir);
  if (st != QV_OK)
    return st;
  char *text = NULL;
  size_t len = 0;
  st = qv_file_read_all(path, 1 << 20, &text, &len, err);
  if (st == QV_ENOTFOUND)
    return qv_error_set(err, QV_ENOTFOUND,
                        "%s has no " QV_MANIFEST " (build one with 'quiver index build --out DIR')",
                        dir);
  if (st != QV_OK)
    return st;
  json_t *root = json_loadb(text, len, 0, NULL);
  free(text);
  const char *vdir = json_string_value(json_object_get(root, "dir"));
  char v[8] = "";
  if (vdir != NULL && is_version_dir(vdir, strlen(vdir)))
    memcpy(v, vdir, 8);
  json_decref(root);
  if (v[0] == '\0')
    return qv_error_set(err, QV_ECORRUPT, "%s: " QV_MANIFEST " names no version directory", dir);
  for (int i = 0; i <= QV_VERSION_NFILES; i++) { /* the version's own manifest last */
    const char *f = i < QV_VERSION_NFILES ? qv_version_files[i] : QV_MANIFEST;
    if (qv_path_fmt(path, NULL, "%s/%s/%s", dir, v, f) == QV_OK && access(path, R_OK) == 0)
      snprintf(files[(*n)++], QV_REL_MAX, "%s/%s", v, f);
  }
  snprintf(files[(*n)++], QV_REL_MAX, QV_MANIFEST);
  return QV_OK;
}
