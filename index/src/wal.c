/* The write-ahead log of a collection: DIR/wal.log (see quiver/collection.h, docs/index-format.md).
 *
 * Record = header { u32 magic "QWAL", u32 body length, u32 CRC-32 of the body } + body
 * { u64 seq, u32 type (1 upsert, 2 delete), u32 n, u32 dim, u32 n_features, then n int64 ids,
 * for upserts n * dim float32 vectors and n * n_features float32 features (n_features 0 = none) },
 * and for type 3 (an upsert with attributes) the same as an upsert followed by u32 length and
 * that many bytes of attribute columns (attrs.c's binary form),
 * little-endian as the machine writes it (the log never leaves the machine that wrote it).
 * A record is appended with one write() and, by policy, fdatasync()ed before the write it
 * carries is acknowledged. At open the records newer than a given seq (a snapshot's wal_seq) are
 * handed in order to the caller's function (recover.c applies them to the collection: this file
 * knows no collection); the first record that is short or fails its CRC ends the log.
 * When no whole record follows it, it is a torn tail (the crash came mid-append; never
 * acknowledged) and the file is cut there; when whole records follow, it is damage in the middle
 * and opening fails with QV_ECORRUPT, leaving the file as it is. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "quiver/clock.h"
#include "quiver/dirformat.h"
#include "quiver/fsutil.h"
#include "wal.h"

#define WAL_MAGIC 0x4C415751u /* "QWAL" */
#define WAL_NAME "wal.log"
#define REC_UPSERT 1u
#define REC_DELETE 2u
#define REC_UPSERT_ATTRS 3u

typedef struct rec_head {
  uint32_t magic, len, crc;
} rec_head;

typedef struct rec_body {
  uint64_t seq;
  uint32_t type, n, dim, nfeat;
} rec_body;

struct qv__wal {
  int fd;
  char dir[QV_PATH_MAX], path[QV_PATH_MAX];
  qv_wal_opts opts;
  uint64_t bytes, records; /* since the last reset */
  double last_sync;
  /* Set when the log can no longer be trusted to hold exactly the acknowledged writes (a sync or
   * a cut-back failed): every later append is refused until the collection is reopened. */
  char failed[300];
};

void qv_wal_opts_init(qv_wal_opts *o) {
  memset(o, 0, sizeof *o);
  o->sync_always = 1;
  o->interval_ms = 100;
}

static qv_status wal_sync(qv__wal *w, qv_error *err) {
  if (fdatasync(w->fd) != 0)
    return qv_error_set(err, QV_EIO, "write-ahead log %s: fdatasync: %s", w->path, strerror(errno));
  w->last_sync = qv_monotonic_s();
  return QV_OK;
}

/* After a failed append: cut the file back to before the record (so that a replay cannot apply
 * a write that was refused), and when even that is not sure, refuse every later append. When the
 * cut fails, the record's header is overwritten with zeros instead: replay stops there and,
 * since the log takes no more records, cuts what follows as a torn tail at the next start. */
static qv_status wal_fail(qv__wal *w, uint64_t keep, int sticky, qv_error *err) {
  int voided = 1;
  if (ftruncate(w->fd, (off_t)keep) != 0 || lseek(w->fd, 0, SEEK_END) < 0) {
    static const rec_head zero;
    sticky = 1;
    voided = pwrite(w->fd, &zero, sizeof zero, (off_t)keep) == (ssize_t)sizeof zero;
  }
  if (sticky && w->failed[0] == '\0')
    snprintf(w->failed, sizeof w->failed, "%.250s", err ? err->msg : "write-ahead log failed");
  return qv_error_prefix(err, QV_EIO,
                         !voided  ? "the refused write could not be removed from the log and "
                                    "may be applied at the next start; writes are refused "
                                    "until the server restarts (check the disk)"
                         : sticky ? "writes are refused until the server restarts (check "
                                    "the disk)"
                                  : "the write was not applied");
}

qv_status qv__wal_append(qv__wal *w, uint64_t seq, int is_delete, size_t n, size_t dim,
                         size_t nfeat, const int64_t *ids, const float *vectors,
                         const float *features, const void *attrs, size_t attrs_len,
                         qv_error *err) {
  if (w->failed[0] != '\0')
    return qv_error_set(err, QV_EIO,
                        "write-ahead log %s failed earlier (%s): writes are refused "
                        "until the server restarts",
                        w->path, w->failed);
  if (is_delete)
    dim = nfeat = 0;
  if (features == NULL)
    nfeat = 0;
  if (is_delete || attrs == NULL)
    attrs_len = 0;
  const size_t body = sizeof(rec_body) + n * sizeof(int64_t) + n * (dim + nfeat) * sizeof(float) +
                      (attrs_len ? sizeof(uint32_t) + attrs_len : 0);
  if (body > UINT32_MAX)
    return qv_error_set(err, QV_EINVAL,
                        "write-ahead log: one write of %zu bytes is too large "
                        "(send it in smaller chunks)",
                        body);
  char *buf = malloc(sizeof(rec_head) + body);
  if (buf == NULL)
    return qv_error_set(err, QV_ENOMEM, "write-ahead log: out of memory for a %zu-byte record",
                        body);
  rec_body b = {seq,
                is_delete   ? REC_DELETE
                : attrs_len ? REC_UPSERT_ATTRS
                            : REC_UPSERT,
                (uint32_t)n, (uint32_t)dim, (uint32_t)nfeat};
  char *p = buf + sizeof(rec_head);
  memcpy(p, &b, sizeof b);
  p += sizeof b;
  memcpy(p, ids, n * sizeof(int64_t));
  p += n * sizeof(int64_t);
  if (dim > 0) {
    memcpy(p, vectors, n * dim * sizeof(float));
    p += n * dim * sizeof(float);
  }
  if (nfeat > 0) {
    memcpy(p, features, n * nfeat * sizeof(float));
    p += n * nfeat * sizeof(float);
  }
  if (attrs_len > 0) {
    const uint32_t al = (uint32_t)attrs_len;
    memcpy(p, &al, sizeof al);
    memcpy(p + sizeof al, attrs, attrs_len);
  }
  rec_head h = {WAL_MAGIC, (uint32_t)body,
                (uint32_t)crc32(0L, (const Bytef *)buf + sizeof(rec_head), (uInt)body)};
  memcpy(buf, &h, sizeof h);
  size_t total = sizeof h + body, done = 0;
  qv_status st = QV_OK;
  while (done < total) {
    ssize_t k = write(w->fd, buf + done, total - done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      st = qv_error_set(err, QV_EIO, "write-ahead log %s: write: %s", w->path,
                        k < 0 ? strerror(errno) : "short write");
      break;
    }
    done += (size_t)k;
  }
  free(buf);
  if (st != QV_OK) /* cut the partial record so that later appends do not follow garbage */
    return wal_fail(w, w->bytes, 0, err);
  if (w->opts.sync_always || (qv_monotonic_s() - w->last_sync) * 1000.0 >= w->opts.interval_ms) {
    /* A failed fdatasync leaves the file's state on disk unknown (the kernel may have dropped the
     * dirty pages): the record is cut and the log refuses further writes, so that no later write
     * is acknowledged under this record's sequence number or beside a hole. */
    if ((st = wal_sync(w, err)) != QV_OK)
      return wal_fail(w, w->bytes, 1, err);
  }
  __atomic_store_n(&w->bytes, w->bytes + total, __ATOMIC_RELAXED);
  __atomic_store_n(&w->records, w->records + 1, __ATOMIC_RELAXED);
  return QV_OK;
}

static void segment_path(char out[QV_PATH_MAX], const char *dir, uint64_t version) {
  qv_path_fmt(out, NULL, "%s/wal-v%06llu.log", dir, (unsigned long long)version);
}

qv_status qv__wal_rotate(qv__wal *w, uint64_t version, qv_error *err) {
  char seg[QV_PATH_MAX];
  segment_path(seg, w->dir, version);
  /* A segment is a closed log, read to its end: bytes past the last whole record there are
   * damage that refuses the collection at start. After a failed append that could not be cut
   * (w->failed), the file holds such bytes: cut them now, or keep the log live (its tail is cut
   * as a torn one at the next start). */
  struct stat sb;
  if (fstat(w->fd, &sb) != 0 ||
      ((uint64_t)sb.st_size > w->bytes && ftruncate(w->fd, (off_t)w->bytes) != 0))
    return qv_error_set(err, QV_EIO, "write-ahead log %s: cutting it to %llu bytes to rotate: %s",
                        w->path, (unsigned long long)w->bytes, strerror(errno));
  if (fdatasync(w->fd) != 0 || rename(w->path, seg) != 0)
    return qv_error_set(err, QV_EIO, "write-ahead log %s: rotating to %s: %s", w->path, seg,
                        strerror(errno));
  int fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    /* Put the log back under its own name (the fd still appends to it): a segment may be pruned
     * later, the live log never. Its records up to the snapshot are skipped by replay. */
    int e = errno;
    if (rename(seg, w->path) != 0) {
      qv_error_set(err, QV_EIO, "write-ahead log %s: open: %s, and moving %s back failed: %s",
                   w->path, strerror(e), seg, strerror(errno));
      /* The fd now appends to a segment that may be pruned: no more writes. */
      snprintf(w->failed, sizeof w->failed, "%.250s", err ? err->msg : "rotation failed");
      return QV_EIO;
    }
    return qv_error_set(err, QV_EIO, "write-ahead log %s: open: %s (kept the old log)", w->path,
                        strerror(e));
  }
  close(w->fd);
  w->fd = fd;
  __atomic_store_n(&w->bytes, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&w->records, 0, __ATOMIC_RELAXED);
  return qv_dir_fsync(w->dir, err);
}

void qv__wal_drop_segment(const char *dir, uint64_t version) {
  char seg[QV_PATH_MAX];
  segment_path(seg, dir, version);
  unlink(seg);
}

void qv__wal_close(qv__wal *w) {
  if (w == NULL)
    return;
  if (!w->opts.sync_always)
    fdatasync(w->fd);
  close(w->fd);
  free(w);
}

void qv__wal_figures(const qv__wal *w, uint64_t *bytes, uint64_t *records) {
  *bytes = w ? __atomic_load_n(&w->bytes, __ATOMIC_RELAXED) : 0;
  *records = w ? __atomic_load_n(&w->records, __ATOMIC_RELAXED) : 0;
}

/* Reads all of fd into memory. */
static qv_status slurp(int fd, const char *path, char **out, size_t *len, qv_error *err) {
  struct stat sb;
  if (fstat(fd, &sb) != 0)
    return qv_error_set(err, QV_EIO, "write-ahead log %s: stat: %s", path, strerror(errno));
  *len = (size_t)sb.st_size;
  *out = malloc(*len ? *len : 1);
  if (*out == NULL)
    return qv_error_set(err, QV_ENOMEM, "write-ahead log %s: out of memory for %zu bytes", path,
                        *len);
  size_t done = 0;
  while (done < *len) {
    ssize_t k = pread(fd, *out + done, *len - done, (off_t)done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      free(*out);
      return qv_error_set(err, QV_EIO, "write-ahead log %s: read: %s", path,
                          k < 0 ? strerror(errno) : "unexpected end");
    }
    done += (size_t)k;
  }
  return QV_OK;
}

/* What a scan needs: the records' expected shape, the caller's function and the last seq it has
 * (records up to it are skipped; each record applied moves it on). */
typedef struct scan {
  const qv__wal_shape *shape;
  qv__wal_apply_fn apply;
  void *user;
  uint64_t last;
  qv_wal_replay *r;
} scan;

/* Hands the records of one log file's contents that are newer than sc->last, in order, to
 * sc->apply. *end gets the offset where the valid records end (a short or damaged record ends
 * the log); *nrec how many valid records there are. */
static qv_status replay(scan *sc, const char *path, const char *data, size_t len, size_t *end,
                        uint64_t *nrec, qv_error *err) {
  qv_wal_replay *r = sc->r;
  size_t off = 0;
  qv_status st = QV_OK;
  *nrec = 0;
  while (st == QV_OK && off + sizeof(rec_head) <= len) {
    rec_head h;
    memcpy(&h, data + off, sizeof h);
    if (h.magic != WAL_MAGIC || h.len < sizeof(rec_body) || h.len > len - off - sizeof h ||
        crc32(0L, (const Bytef *)data + off + sizeof h, h.len) != h.crc)
      break; /* torn or damaged: the log ends here */
    rec_body b;
    const char *p = data + off + sizeof h;
    memcpy(&b, p, sizeof b);
    size_t want = sizeof b + (size_t)b.n * sizeof(int64_t) +
                  (size_t)b.n * ((size_t)b.dim + b.nfeat) * sizeof(float);
    uint32_t alen = 0;
    if (b.type == REC_UPSERT_ATTRS && want + sizeof alen <= h.len) {
      memcpy(&alen, p + want, sizeof alen);
      want += sizeof alen + alen;
    }
    if (want != h.len ||
        (b.type != REC_UPSERT && b.type != REC_DELETE && b.type != REC_UPSERT_ATTRS) ||
        (b.type != REC_DELETE && b.dim != sc->shape->dim) ||
        (b.nfeat != 0 && b.nfeat != sc->shape->nfeat))
      break;
    if (b.seq > sc->last) {
      if (b.seq != sc->last + 1) { /* records between the snapshot and this one are missing */
        if (r->gaps++ == 0) {
          r->missing_first = sc->last + 1;
          r->missing_last = b.seq - 1;
        }
      }
      /* Copies: the record's payload is not aligned for int64/float access. */
      size_t nid = (size_t)b.n * sizeof(int64_t), nv = (size_t)b.n * b.dim * sizeof(float),
             nf = (size_t)b.n * b.nfeat * sizeof(float);
      int64_t *ids = malloc(nid ? nid : 1);
      float *vec = malloc(nv ? nv : 1), *ft = malloc(nf ? nf : 1);
      if (!ids || !vec || !ft) {
        st = qv_error_set(err, QV_ENOMEM, "write-ahead log %s: out of memory replaying", path);
      } else {
        memcpy(ids, p + sizeof b, nid);
        memcpy(vec, p + sizeof b + nid, nv);
        memcpy(ft, p + sizeof b + nid + nv, nf);
        const qv__wal_record rec = {b.seq,
                                    b.type == REC_DELETE,
                                    b.n,
                                    b.dim,
                                    b.nfeat,
                                    ids,
                                    b.type == REC_DELETE ? NULL : vec,
                                    b.nfeat ? ft : NULL,
                                    alen ? p + h.len - alen : NULL,
                                    alen};
        st = sc->apply(sc->user, &rec, err);
        if (st != QV_OK)
          qv_error_prefix(err, st, "write-ahead log %s: replaying record %llu", path,
                          (unsigned long long)b.seq);
      }
      free(ids);
      free(vec);
      free(ft);
      if (st == QV_OK) {
        r->records++;
        if (b.type != REC_DELETE)
          r->upserted += b.n;
        else
          r->deleted += b.n;
        sc->last = b.seq;
      }
    }
    (*nrec)++;
    off += sizeof h + h.len;
  }
  *end = off;
  return st;
}

/* Whether a whole record with a good CRC starts at or after off. Where replay stopped is a torn
 * tail (a crash mid-append, never acknowledged) only when none does; otherwise it is damage in
 * the middle, and the records after it may hold acknowledged writes. */
static int whole_record_from(const char *data, size_t len, size_t off) {
  for (size_t i = off; i + sizeof(rec_head) <= len; i++) {
    rec_head h;
    memcpy(&h, data + i, sizeof h);
    if (h.magic == WAL_MAGIC && h.len >= sizeof(rec_body) && h.len <= len - i - sizeof h &&
        crc32(0L, (const Bytef *)data + i + sizeof h, h.len) == h.crc)
      return 1;
  }
  return 0;
}

/* Reads a whole file; QV_ENOTFOUND when it does not exist. */
static qv_status read_file(const char *path, char **data, size_t *len, qv_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT
               ? QV_ENOTFOUND
               : qv_error_set(err, QV_EIO, "write-ahead log %s: open: %s", path, strerror(errno));
  qv_status st = slurp(fd, path, data, len, err);
  close(fd);
  return st;
}

typedef struct segment {
  char path[QV_PATH_MAX];
  uint64_t first; /* seq of its first record (UINT64_MAX: none) */
} segment;

static int by_first(const void *a, const void *b) {
  uint64_t x = ((const segment *)a)->first, y = ((const segment *)b)->first;
  return x < y ? -1 : x > y;
}

/* Replays DIR/wal-v*.log (segments of earlier snapshots, kept for a fallback open) in seq order:
 * only records newer than the opened snapshot change anything. */
static qv_status replay_segments(scan *sc, const char *dir, qv_error *err) {
  qv_wal_replay *r = sc->r;
  DIR *d = opendir(dir);
  if (d == NULL)
    return QV_OK;
  segment *segs = NULL;
  size_t n = 0, cap = 0;
  qv_status st = QV_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    unsigned long long v;
    char tail[8] = "";
    if (strncmp(e->d_name, "wal-v", 5) != 0 || sscanf(e->d_name, "wal-v%6llu%7s", &v, tail) != 2 ||
        strcmp(tail, ".log") != 0)
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 8;
      segment *t = realloc(segs, cap * sizeof *t);
      if (t == NULL) {
        st = qv_error_set(err, QV_ENOMEM, "write-ahead log: out of memory listing segments");
        break;
      }
      segs = t;
    }
    qv_path_fmt(segs[n].path, NULL, "%s/%s", dir, e->d_name);
    segs[n].first = UINT64_MAX;
    n++;
  }
  closedir(d);
  for (size_t i = 0; st == QV_OK && i < n; i++) {
    int fd = open(segs[i].path, O_RDONLY | O_CLOEXEC);
    rec_head h;
    rec_body b;
    if (fd >= 0 && pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && h.magic == WAL_MAGIC &&
        pread(fd, &b, sizeof b, sizeof h) == (ssize_t)sizeof b)
      segs[i].first = b.seq;
    if (fd >= 0)
      close(fd);
  }
  if (n > 1)
    qsort(segs, n, sizeof *segs, by_first);
  for (size_t i = 0; st == QV_OK && i < n && segs[i].first != UINT64_MAX; i++) {
    char *data = NULL;
    size_t len = 0, end;
    uint64_t nrec;
    if ((st = read_file(segs[i].path, &data, &len, err)) == QV_ENOTFOUND) {
      st = QV_OK;
      continue;
    }
    if (st == QV_OK)
      st = replay(sc, segs[i].path, data, len, &end, &nrec, err);
    /* A segment is a closed log: records stopping short of its end are damage, never a torn
     * write (a torn tail is cut at the start before the log takes more, and rotated later). */
    if (st == QV_OK && end < len)
      r->damaged_segments++;
    free(data);
  }
  free(segs);
  return st;
}

qv_status qv__wal_open(qv__wal **out, const char *dir, const qv_wal_opts *o,
                       const qv__wal_shape *shape, uint64_t after_seq, qv__wal_apply_fn apply,
                       void *user, qv_wal_replay *r_out, qv_error *err) {
  *out = NULL;
  qv_wal_replay mine, *r = r_out ? r_out : &mine; /* gaps are found even when nobody asks */
  memset(r, 0, sizeof *r);
  if (strlen(dir) > QV_COLLECTION_DIR_MAX)
    return qv_error_set(err, QV_EINVAL, "write-ahead log: directory path is too long");
  scan sc = {shape, apply, user, after_seq, r};
  qv__wal *w = calloc(1, sizeof *w);
  if (w == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  if (o)
    w->opts = *o;
  else
    qv_wal_opts_init(&w->opts);
  qv_path_fmt(w->dir, NULL, "%s", dir);
  qv_path_fmt(w->path, NULL, "%s/" WAL_NAME, dir);
  w->fd = open(w->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (w->fd < 0) {
    qv_status st =
        qv_error_set(err, QV_EIO, "write-ahead log %s: open: %s", w->path, strerror(errno));
    free(w);
    return st;
  }
  char *data = NULL;
  size_t len = 0, off = 0;
  qv_status st = slurp(w->fd, w->path, &data, &len, err);
  if (st == QV_OK)
    st = qv_dir_fsync(dir, err); /* the log file itself is durable */
  /* Replay (the log is not attached yet, so nothing is logged twice): the segments of earlier
   * snapshots first (they matter only when an older version was opened), then the log. */
  if (st == QV_OK)
    st = replay_segments(&sc, dir, err);
  if (st == QV_OK)
    st = replay(&sc, w->path, data, len, &off, &w->records, err);
  if (st == QV_OK && off < len && whole_record_from(data, len, off))
    st = qv_error_set(err, QV_ECORRUPT,
                      "write-ahead log %s is damaged at byte %zu of %zu and whole records follow "
                      "the damage (they may hold acknowledged writes): the log was left as it "
                      "is. Restore it from a copy, or move it aside to serve the collection "
                      "without the writes after the damage",
                      w->path, off, len);
  if (st == QV_OK && !w->opts.accept_loss && (r->gaps > 0 || r->damaged_segments > 0)) {
    char what[96];
    if (r->gaps > 0)
      snprintf(what, sizeof what, "misses acknowledged records %llu..%llu",
               (unsigned long long)r->missing_first, (unsigned long long)r->missing_last);
    else
      snprintf(what, sizeof what, "has %llu damaged segment(s) (acknowledged records lost)",
               (unsigned long long)r->damaged_segments);
    /* Short enough for qv_error's 256 bytes: the remedy comes first, the path last. */
    st = qv_error_set(err, QV_ECORRUPT,
                      "write-ahead log %s (a lost or damaged segment); not served, left as it is: "
                      "restore it, or accept the loss with a file " QV_ACCEPT_WAL_LOSS " in %s",
                      what, dir);
    /* Nothing replayed may stay applied: the caller throws away what it applied. */
  }
  free(data);
  if (st == QV_OK && off < len) {
    /* A torn tail (a crash mid-append): what it held was never acknowledged. */
    r->dropped_bytes = len - off;
    if (ftruncate(w->fd, (off_t)off) != 0)
      st = qv_error_set(err, QV_EIO, "write-ahead log %s: cutting a torn tail: %s", w->path,
                        strerror(errno));
  }
  if (st == QV_OK && lseek(w->fd, 0, SEEK_END) < 0)
    st = qv_error_set(err, QV_EIO, "write-ahead log %s: seek: %s", w->path, strerror(errno));
  if (st == QV_OK)
    st = wal_sync(w, err);
  if (st != QV_OK) {
    close(w->fd);
    free(w);
    return st;
  }
  w->bytes = off;
  *out = w;
  return QV_OK;
}
