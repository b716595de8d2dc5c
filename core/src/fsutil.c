/* Small file-system helpers for crash-safe writes (see quiver/fsutil.h).
 *
 * Besides the public API this file defines two helpers for other core/ sources (declared where
 * they are used, e.g. vecfile.c, until core grows an internal header):
 *   qv__write_all         write() the whole buffer, retrying on EINTR and short writes
 *   qv__write_atomic_with the temp-file/fsync/rename/fsync-dir pattern around a callback that
 *                         streams the contents, so that big files need not sit in one buffer
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "quiver/fsutil.h"

/* Writes the contents of the temp file `fd` (named `tmp_path`, for messages). */
typedef qv_status (*qv__emit_fn)(int fd, const char *tmp_path, void *ctx, qv_error *err);

qv_status qv__write_all(int fd, const void *data, size_t len, const char *path, qv_error *err);
qv_status qv__write_atomic_with(const char *path, qv__emit_fn emit, void *ctx, qv_error *err);

#define QV__CRC_CHUNK ((size_t)1 << 20)

qv_status qv__write_all(int fd, const void *data, size_t len, const char *path, qv_error *err) {
  const unsigned char *p = data;
  while (len > 0) {
    /* Linux writes at most ~2 GiB per call; asking for less keeps every platform happy. */
    size_t chunk = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
    ssize_t w = write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return qv_error_set(err, QV_EIO, "write %s: %s; check free space and permissions", path,
                          strerror(errno));
    }
    if (w == 0)
      return qv_error_set(err, QV_EIO, "write %s: wrote 0 bytes; check free space", path);
    p += (size_t)w;
    len -= (size_t)w;
  }
  return QV_OK;
}

/* The directory that holds `path` ("." for a bare name, "/" for "/x"), malloc'd. */
static char *parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *src = path;
  size_t n;
  if (slash == NULL) {
    src = ".";
    n = 1;
  } else {
    n = (size_t)(slash - path);
    if (n == 0)
      n = 1; /* "/x" -> "/" */
  }
  char *d = malloc(n + 1);
  if (d == NULL)
    return NULL;
  memcpy(d, src, n);
  d[n] = '\0';
  return d;
}

qv_status qv__write_atomic_with(const char *path, qv__emit_fn emit, void *ctx, qv_error *err) {
  if (path == NULL || path[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "atomic write: path is NULL or empty; pass a file path");
  size_t plen = strlen(path);
  size_t tlen = plen + 32;
  char *tmp = malloc(tlen);
  if (tmp == NULL)
    return qv_error_set(err, QV_ENOMEM, "write %s: out of memory for the temp file name", path);
  snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

  qv_status st = QV_OK;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    st = qv_error_set(err, QV_EIO, "create %s: %s; check that the directory exists and is writable",
                      tmp, strerror(errno));
    free(tmp);
    return st;
  }
  st = emit(fd, tmp, ctx, err);
  if (st == QV_OK && fsync(fd) != 0)
    st = qv_error_set(err, QV_EIO, "fsync %s: %s; the disk may be full or failing", tmp,
                      strerror(errno));
  if (close(fd) != 0 && errno != EINTR && st == QV_OK) /* EINTR: fd is closed (Linux) */
    st = qv_error_set(err, QV_EIO, "close %s: %s; the data may not be on disk", tmp,
                      strerror(errno));
  if (st == QV_OK && rename(tmp, path) != 0)
    st = qv_error_set(err, QV_EIO, "rename %s to %s: %s; check permissions on the directory", tmp,
                      path, strerror(errno));
  if (st != QV_OK) {
    unlink(tmp);
    free(tmp);
    return st;
  }
  free(tmp);

  char *dir = parent_dir(path);
  if (dir == NULL)
    return qv_error_set(err, QV_ENOMEM, "write %s: out of memory for the directory name", path);
  st = qv_dir_fsync(dir, err);
  free(dir);
  return st;
}

struct buffer_ctx {
  const void *data;
  size_t len;
};

static qv_status emit_buffer(int fd, const char *tmp_path, void *ctx, qv_error *err) {
  const struct buffer_ctx *b = ctx;
  return qv__write_all(fd, b->data, b->len, tmp_path, err);
}

qv_status qv_file_write_atomic(const char *path, const void *data, size_t len, qv_error *err) {
  if (data == NULL && len > 0)
    return qv_error_set(err, QV_EINVAL, "write %s: data is NULL but len is %zu",
                        path ? path : "(null)", len);
  struct buffer_ctx b = {data, len};
  return qv__write_atomic_with(path, emit_buffer, &b, err);
}

qv_status qv_dir_fsync(const char *dir, qv_error *err) {
  if (dir == NULL)
    return qv_error_set(err, QV_EINVAL, "fsync directory: path is NULL");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return qv_error_set(err, QV_EIO, "open directory %s for fsync: %s", dir, strerror(errno));
  qv_status st = QV_OK;
  /* Some file systems cannot fsync a directory and say EINVAL; there is nothing more to do. */
  if (fsync(fd) != 0 && errno != EINVAL)
    st = qv_error_set(err, QV_EIO, "fsync directory %s: %s; the disk may be failing", dir,
                      strerror(errno));
  close(fd);
  return st;
}

qv_status qv_file_fsync(const char *path, qv_error *err) {
  if (path == NULL)
    return qv_error_set(err, QV_EINVAL, "fsync: path is NULL");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return qv_error_set(err, QV_EIO, "open %s for fsync: %s", path, strerror(errno));
  qv_status st = QV_OK;
  if (fsync(fd) != 0)
    st = qv_error_set(err, QV_EIO, "fsync %s: %s; the disk may be full or failing", path,
                      strerror(errno));
  close(fd);
  return st;
}

/* read() that retries on EINTR. */
static ssize_t read_retry(int fd, void *buf, size_t len) {
  for (;;) {
    ssize_t r = read(fd, buf, len);
    if (r >= 0 || errno != EINTR)
      return r;
  }
}

static qv_status open_for_read(const char *path, int *fd, qv_error *err) {
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd >= 0)
    return QV_OK;
  if (errno == ENOENT)
    return qv_error_set(err, QV_ENOTFOUND, "open %s: no such file; check the path", path);
  return qv_error_set(err, QV_EIO, "open %s: %s", path, strerror(errno));
}

qv_status qv_file_read_all(const char *path, size_t max_len, char **out, size_t *len,
                           qv_error *err) {
  if (out != NULL)
    *out = NULL;
  if (len != NULL)
    *len = 0;
  if (path == NULL || out == NULL)
    return qv_error_set(err, QV_EINVAL, "read file: path or out is NULL");

  int fd;
  qv_status st = open_for_read(path, &fd, err);
  if (st != QV_OK)
    return st;
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    st = qv_error_set(err, QV_EIO, "stat %s: %s", path, strerror(errno));
    close(fd);
    return st;
  }
  if (S_ISDIR(sb.st_mode)) {
    close(fd);
    return qv_error_set(err, QV_EIO, "read %s: is a directory; pass a file", path);
  }
  if (sb.st_size > 0 && (uintmax_t)sb.st_size > (uintmax_t)max_len) {
    close(fd);
    return qv_error_set(err, QV_ECORRUPT,
                        "read %s: size %jd exceeds the limit of %zu bytes; the file is not what "
                        "was expected or the limit is too small",
                        path, (intmax_t)sb.st_size, max_len);
  }

  /* st_size is only a hint (pipes and /proc files say 0): read until EOF, growing as needed. */
  size_t cap = sb.st_size > 0 ? (size_t)sb.st_size + 1 : 4096;
  size_t total = 0;
  char *buf = malloc(cap);
  if (buf == NULL) {
    close(fd);
    return qv_error_set(err, QV_ENOMEM, "read %s: out of memory for %zu bytes", path, cap);
  }
  for (;;) {
    if (total == cap - 1) {
      if (total >= max_len) {
        /* At the limit: the file is fine only if nothing follows. */
        char probe;
        ssize_t r = read_retry(fd, &probe, 1);
        if (r == 0)
          break;
        if (r > 0)
          st = qv_error_set(err, QV_ECORRUPT,
                            "read %s: the file is larger than the limit of %zu bytes", path,
                            max_len);
        else
          st = qv_error_set(err, QV_EIO, "read %s: %s", path, strerror(errno));
        goto fail;
      }
      size_t ncap = cap <= SIZE_MAX / 2 ? cap * 2 : SIZE_MAX;
      if (max_len < SIZE_MAX && ncap > max_len + 1)
        ncap = max_len + 1;
      char *nb = realloc(buf, ncap);
      if (nb == NULL) {
        st = qv_error_set(err, QV_ENOMEM, "read %s: out of memory for %zu bytes", path, ncap);
        goto fail;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t r = read_retry(fd, buf + total, cap - 1 - total);
    if (r < 0) {
      st = qv_error_set(err, QV_EIO, "read %s: %s", path, strerror(errno));
      goto fail;
    }
    if (r == 0)
      break;
    total += (size_t)r;
  }
  close(fd);
  buf[total] = '\0';
  *out = buf;
  if (len != NULL)
    *len = total;
  return QV_OK;

fail:
  close(fd);
  free(buf);
  return st;
}

qv_status qv_file_crc32(const char *path, uint32_t *crc, uint64_t *size, qv_error *err) {
  if (path == NULL || crc == NULL)
    return qv_error_set(err, QV_EINVAL, "crc32: path or crc is NULL");
  int fd;
  qv_status st = open_for_read(path, &fd, err);
  if (st != QV_OK)
    return st;
  unsigned char *buf = malloc(QV__CRC_CHUNK);
  if (buf == NULL) {
    close(fd);
    return qv_error_set(err, QV_ENOMEM, "crc32 %s: out of memory for the read buffer", path);
  }
  uLong c = crc32(0L, Z_NULL, 0);
  uint64_t total = 0;
  for (;;) {
    ssize_t r = read_retry(fd, buf, QV__CRC_CHUNK);
    if (r < 0) {
      st = qv_error_set(err, QV_EIO, "read %s: %s", path, strerror(errno));
      break;
    }
    if (r == 0)
      break;
    c = crc32(c, buf, (uInt)r);
    total += (uint64_t)r;
  }
  free(buf);
  close(fd);
  if (st != QV_OK)
    return st;
  *crc = (uint32_t)c;
  if (size != NULL)
    *size = total;
  return QV_OK;
}

/* mkdir(p) that accepts an existing directory; a new one is made durable by fsyncing its parent. */
static qv_status mkdir_one(char *p, const char *full, qv_error *err) {
  if (mkdir(p, 0755) == 0) {
    char *slash = strrchr(p, '/');
    if (slash == NULL)
      return qv_dir_fsync(".", err);
    if (slash == p)
      return qv_dir_fsync("/", err);
    *slash = '\0';
    qv_status st = qv_dir_fsync(p, err);
    *slash = '/';
    return st;
  }
  int e = errno;
  struct stat sb;
  if (stat(p, &sb) == 0) {
    if (S_ISDIR(sb.st_mode))
      return QV_OK;
    return qv_error_set(err, QV_EIO, "mkdir %s: %s exists and is not a directory", full, p);
  }
  return qv_error_set(err, QV_EIO, "mkdir %s: creating %s: %s", full, p, strerror(e));
}

qv_status qv_mkdirs(const char *path, qv_error *err) {
  if (path == NULL || path[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "mkdir: path is NULL or empty");
  size_t n = strlen(path);
  char *p = malloc(n + 1);
  if (p == NULL)
    return qv_error_set(err, QV_ENOMEM, "mkdir %s: out of memory", path);
  memcpy(p, path, n + 1);
  qv_status st = QV_OK;
  for (size_t i = 1; i < n && st == QV_OK; i++) {
    if (p[i] != '/' || p[i - 1] == '/')
      continue; /* not a separator, or the second of "//" */
    p[i] = '\0';
    st = mkdir_one(p, path, err);
    p[i] = '/';
  }
  if (st == QV_OK)
    st = mkdir_one(p, path, err);
  free(p);
  return st;
}

/* "a" + "/" + "b", malloc'd; NULL when out of memory. */
static char *join_path(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *s = malloc(na + nb + 2);
  if (s == NULL)
    return NULL;
  memcpy(s, a, na);
  s[na] = '/';
  memcpy(s + na + 1, b, nb + 1);
  return s;
}

/* Removes the directory `name` inside `parentfd` and everything under it, never following
 * symlinks. `display` is its full path, for messages. */
static qv_status remove_dir_at(int parentfd, const char *name, const char *display, qv_error *err) {
  int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return QV_OK;
    return qv_error_set(err, QV_EIO, "remove %s: open: %s", display, strerror(errno));
  }
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    qv_status st = qv_error_set(err, QV_EIO, "remove %s: opendir: %s", display, strerror(errno));
    close(fd);
    return st;
  }
  qv_status st = QV_OK;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (e == NULL) {
      if (errno != 0)
        st = qv_error_set(err, QV_EIO, "remove %s: readdir: %s", display, strerror(errno));
      break;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    struct stat sb;
    if (fstatat(fd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        continue;
      st = qv_error_set(err, QV_EIO, "remove %s/%s: stat: %s", display, e->d_name, strerror(errno));
      break;
    }
    if (S_ISDIR(sb.st_mode)) {
      char *child = join_path(display, e->d_name);
      if (child == NULL) {
        st = qv_error_set(err, QV_ENOMEM, "remove %s: out of memory", display);
        break;
      }
      st = remove_dir_at(fd, e->d_name, child, err);
      free(child);
      if (st != QV_OK)
        break;
    } else if (unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT) {
      st = qv_error_set(err, QV_EIO, "remove %s/%s: %s", display, e->d_name, strerror(errno));
      break;
    }
  }
  closedir(d); /* also closes fd */
  if (st != QV_OK)
    return st;
  if (unlinkat(parentfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    return qv_error_set(err, QV_EIO, "remove directory %s: %s", display, strerror(errno));
  return QV_OK;
}

qv_status qv_remove_tree(const char *path, qv_error *err) {
  if (path == NULL || path[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "remove tree: path is NULL or empty");
  struct stat sb;
  if (lstat(path, &sb) != 0) {
    if (errno == ENOENT)
      return QV_OK;
    return qv_error_set(err, QV_EIO, "remove %s: stat: %s", path, strerror(errno));
  }
  if (!S_ISDIR(sb.st_mode)) {
    /* A file or a symlink (even one to a directory): remove just the entry, like rm -rf. */
    if (unlink(path) != 0 && errno != ENOENT)
      return qv_error_set(err, QV_EIO, "remove %s: %s", path, strerror(errno));
    return QV_OK;
  }
  return remove_dir_at(AT_FDCWD, path, path, err);
}

_Static_assert(QV_PATH_MAX >= PATH_MAX,
               "realpath() writes up to PATH_MAX bytes into QV_PATH_MAX buffers");

qv_status qv_path_fmt(char out[QV_PATH_MAX], qv_error *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(out, QV_PATH_MAX, fmt, ap);
  va_end(ap);
  if (n >= 0 && n < QV_PATH_MAX)
    return QV_OK;
  out[0] = '\0';
  return qv_error_set(err, QV_EINVAL, "a path is longer than %d bytes (a shorter directory?)",
                      QV_PATH_MAX - 1);
}
