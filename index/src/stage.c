/* A collection directory received file by file: see quiver/stage.h. */
#define _GNU_SOURCE
#include "quiver/stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"
#include "quiver/fsutil.h"

#define STAGE_PREFIX ".import-"

struct qv_stage {
  qv_stage_limits lim;
  char dir[QV_PATH_MAX];
  uint64_t bytes;
  uint32_t files;
};

qv_status qv_stage_create(qv_stage **out, const char *parent, const char *name,
                          const qv_stage_limits *lim, qv_error *err) {
  *out = NULL;
  qv_stage *st = calloc(1, sizeof *st);
  if (st == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  if (lim != NULL)
    st->lim = *lim;
  if (st->lim.max_bytes_name == NULL)
    st->lim.max_bytes_name = "its limit (MiB)";
  if (st->lim.min_free_name == NULL)
    st->lim.min_free_name = "its reserve of";
  if (qv_path_fmt(st->dir, NULL, "%s/" STAGE_PREFIX "%.64s-XXXXXX", parent, name) != QV_OK) {
    free(st);
    return qv_error_set(err, QV_EINVAL, "import: the staging path under %.80s is too long", parent);
  }
  if (mkdtemp(st->dir) == NULL) {
    const int e = errno;
    free(st);
    return qv_error_set(err, QV_EIO, "import: cannot make a staging directory in %s: %s", parent,
                        strerror(e));
  }
  *out = st;
  return QV_OK;
}

const char *qv_stage_dir(const qv_stage *st) {
  return st->dir;
}

uint64_t qv_stage_bytes(const qv_stage *st) {
  return st->bytes;
}

uint32_t qv_stage_files(const qv_stage *st) {
  return st->files;
}

void qv_stage_free(qv_stage *st) {
  if (st == NULL)
    return;
  qv_remove_tree(st->dir, NULL);
  free(st);
}

size_t qv_stage_clean(const char *parent) {
  DIR *d = opendir(parent);
  if (d == NULL)
    return 0;
  size_t removed = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, STAGE_PREFIX, strlen(STAGE_PREFIX)) != 0)
      continue;
    char stale[QV_PATH_MAX];
    if (qv_path_fmt(stale, NULL, "%s/%s", parent, de->d_name) != QV_OK)
      continue;
    if (qv_remove_tree(stale, NULL) == QV_OK)
      removed++;
  }
  closedir(d);
  return removed;
}

/* The limits, before a byte of the chunk is written. */
static qv_status check_room(qv_stage *st, size_t len, qv_error *err) {
  const qv_stage_limits *l = &st->lim;
  if (l->max_bytes > 0 && st->bytes + len > l->max_bytes) /* it could never be loaded: stop early */
    return qv_error_set(err, QV_ENOMEM,
                        "the import passes %s %llu after %llu MiB received: raise the limit or "
                        "import a smaller index",
                        l->max_bytes_name, (unsigned long long)(l->max_bytes >> 20),
                        (unsigned long long)(st->bytes >> 20));
  struct statvfs fs;
  if (l->min_free_bytes > 0 && statvfs(st->dir, &fs) == 0) {
    const uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize;
    if (avail < l->min_free_bytes + len)
      return qv_error_set(err, QV_ENOMEM,
                          "the import would leave less than %s %llu MiB free on the disk (%llu MiB "
                          "free, %llu MiB received): free space or import a smaller index",
                          l->min_free_name, (unsigned long long)(l->min_free_bytes >> 20),
                          (unsigned long long)(avail >> 20), (unsigned long long)(st->bytes >> 20));
  }
  return QV_OK;
}

static qv_status write_all(int fd, const char *path, const void *data, size_t len, size_t *done,
                           qv_error *err) {
  *done = 0;
  while (*done < len) {
    ssize_t k = write(fd, (const char *)data + *done, len - *done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return qv_error_set(err, QV_EIO, "import: write %s: %s", path,
                          k < 0 ? strerror(errno) : "short write");
    *done += (size_t)k;
  }
  return QV_OK;
}

qv_status qv_stage_write(qv_stage *st, const char *rel, uint64_t offset, const void *data,
                         size_t len, uint32_t crc32_want, qv_error *err) {
  if (!qv_collection_file_ok(rel))
    return qv_error_set(err, QV_EINVAL,
                        "import file '%.80s' is not part of a collection directory "
                        "(MANIFEST.json or vNNNNNN/{index.faiss,vectors.npy,ids.npy,"
                        "features.npy,MANIFEST.json})",
                        rel);
  const uint32_t crc = (uint32_t)crc32(0L, data, (uInt)len);
  if (crc != crc32_want)
    return qv_error_set(err, QV_ECORRUPT,
                        "import file '%s' at offset %llu: chunk CRC-32 %08x, expected %08x "
                        "(damaged in transit: push again)",
                        rel, (unsigned long long)offset, crc, crc32_want);
  qv_status s = check_room(st, len, err);
  if (s != QV_OK)
    return s;
  char path[QV_PATH_MAX];
  if (rel[7] == '/') { /* vNNNNNN/FILE (qv_collection_file_ok) */
    if ((s = qv_path_fmt(path, err, "%s/%.7s", st->dir, rel)) != QV_OK)
      return s;
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      return qv_error_set(err, QV_EIO, "import: mkdir %s: %s", path, strerror(errno));
  }
  if ((s = qv_path_fmt(path, err, "%s/%s", st->dir, rel)) != QV_OK)
    return s;
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return qv_error_set(err, QV_EIO, "import: open %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    s = qv_error_set(err, QV_EIO, "import: stat %s: %s", path, strerror(errno));
  } else if ((uint64_t)sb.st_size != offset) {
    s = qv_error_set(err, QV_EINVAL,
                     "import file '%s': chunk at offset %llu, but %llu bytes were sent before "
                     "(send each file's chunks in order)",
                     rel, (unsigned long long)offset, (unsigned long long)sb.st_size);
  } else {
    if (sb.st_size == 0)
      st->files++;
    size_t done;
    s = write_all(fd, path, data, len, &done, err);
    st->bytes += done;
  }
  close(fd);
  return s;
}
