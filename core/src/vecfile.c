/* Embedding files: .fvecs/.ivecs/.bvecs/.npy readers (memory-mapped) and writers (see
 * quiver/vecfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quiver/vecfile.h"

/* Every format here is little endian and is read and written with memcpy. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) &&                                 \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "quiver/vecfile.c assumes a little-endian host"
#endif

/* Defined in fsutil.c (core-internal). */
typedef qv_status (*qv__emit_fn)(int fd, const char *tmp_path, void *ctx, qv_error *err);
qv_status qv__write_all(int fd, const void *data, size_t len, const char *path, qv_error *err);
qv_status qv__write_atomic_with(const char *path, qv__emit_fn emit, void *ctx, qv_error *err);

struct qv_vecfile {
  char *path;
  void *map; /* NULL for an empty file */
  size_t map_len;
  const unsigned char *data; /* first byte of row 0's values */
  size_t rows, cols;
  size_t row_stride; /* bytes from one row's values to the next */
  size_t itemsize;
  qv_dtype dtype;
  qv_vecfile_format format;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static int mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a)
    return 0;
  *out = a * b;
  return 1;
}

static int add_ok(size_t a, size_t b, size_t *out) {
  if (b > SIZE_MAX - a)
    return 0;
  *out = a + b;
  return 1;
}

static int32_t load_i32(const unsigned char *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static const char *dtype_name(qv_dtype d) {
  switch (d) {
  case QV_DTYPE_F32:
    return "f32";
  case QV_DTYPE_F16:
    return "f16";
  case QV_DTYPE_I32:
    return "i32";
  case QV_DTYPE_I64:
    return "i64";
  case QV_DTYPE_U8:
    return "u8";
  }
  return "unknown";
}

static size_t dtype_size(qv_dtype d) {
  switch (d) {
  case QV_DTYPE_F32:
  case QV_DTYPE_I32:
    return 4;
  case QV_DTYPE_F16:
    return 2;
  case QV_DTYPE_I64:
    return 8;
  case QV_DTYPE_U8:
    return 1;
  }
  return 0;
}

static int ascii_lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int ext_equals(const char *ext, const char *want) {
  for (; *ext && *want; ext++, want++)
    if (ascii_lower((unsigned char)*ext) != *want)
      return 0;
  return *ext == '\0' && *want == '\0';
}

/* IEEE 754 binary16 -> binary32, exact for every input (normals, subnormals, +-0, +-inf, NaN). */
static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign; /* signed zero */
    } else {
      /* Subnormal: value = mant * 2^-24. Shift the leading 1 up to the implicit-bit position. */
      uint32_t e = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        e--;
      }
      mant &= 0x3ffu;
      bits = sign | (e << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN with its payload kept */
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* ---- open ---------------------------------------------------------------------------------- */

static const char *format_ext(qv_vecfile_format f) {
  switch (f) {
  case QV_VECFILE_FVECS:
    return ".fvecs";
  case QV_VECFILE_IVECS:
    return ".ivecs";
  case QV_VECFILE_BVECS:
    return ".bvecs";
  case QV_VECFILE_NPY:
    return ".npy";
  }
  return "?";
}

/* Validates a *vecs file: every row is int32 dim (> 0, the same for all rows) then dim values. */
static qv_status parse_vecs(qv_vecfile *f, const unsigned char *base, size_t size, qv_error *err) {
  const char *ext = format_ext(f->format);
  f->rows = 0;
  f->cols = 0;
  f->row_stride = 0;
  f->data = base;
  if (size == 0)
    return QV_OK; /* a valid 0 x 0 matrix */
  if (size < 4)
    return qv_error_set(err, QV_ECORRUPT,
                        "file %s: truncated: size %zu is smaller than the 4-byte row header of a "
                        "%s file",
                        f->path, size, ext);
  int32_t dim = load_i32(base);
  if (dim <= 0)
    return qv_error_set(err, QV_ECORRUPT,
                        "file %s: row 0 has dimension %d; it must be > 0 (not a %s file?)", f->path,
                        (int)dim, ext);
  size_t vals, row_bytes;
  if (!mul_ok((size_t)dim, f->itemsize, &vals) || !add_ok(vals, 4, &row_bytes))
    return qv_error_set(err, QV_ECORRUPT, "file %s: row 0 has dimension %d, too large", f->path,
                        (int)dim);
  size_t off = 0, r = 0;
  while (off < size) {
    size_t left = size - off;
    if (left >= 4) {
      int32_t d = load_i32(base + off);
      if (d != dim)
        return qv_error_set(err, QV_ECORRUPT,
                            "file %s: row %zu has dimension %d but row 0 has %d; every row of a "
                            "%s file must have the same dimension",
                            f->path, r, (int)d, (int)dim, ext);
    }
    if (left < row_bytes)
      return qv_error_set(err, QV_ECORRUPT,
                          "file %s: truncated: size %zu is not a multiple of the row size %zu "
                          "(dim %d); row %zu is incomplete",
                          f->path, size, row_bytes, (int)dim, r);
    off += row_bytes;
    r++;
  }
  f->rows = r;
  f->cols = (size_t)dim;
  f->row_stride = row_bytes;
  f->data = base + 4;
  return QV_OK;
}

/* A cursor over the .npy header dict text. */
typedef struct {
  const char *p, *end;
} npy_cur;

static void npy_ws(npy_cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static int npy_eat(npy_cur *c, char ch) {
  npy_ws(c);
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return 1;
  }
  return 0;
}

/* A quoted Python string ('x' or "x", no escapes) into buf. 0 when malformed or too long. */
static int npy_string(npy_cur *c, char *buf, size_t cap) {
  npy_ws(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return 0;
  char q = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || n + 1 >= cap)
      return 0;
    buf[n++] = *c->p++;
  }
  if (c->p >= c->end)
    return 0;
  c->p++;
  buf[n] = '\0';
  return 1;
}

static int npy_word(npy_cur *c, const char *w) {
  npy_ws(c);
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
    return 0;
  /* the word must end here */
  if ((size_t)(c->end - c->p) > n) {
    char nx = c->p[n];
    if ((nx >= 'a' && nx <= 'z') || (nx >= 'A' && nx <= 'Z') || (nx >= '0' && nx <= '9') ||
        nx == '_')
      return 0;
  }
  c->p += n;
  return 1;
}

/* A non-negative decimal integer (optionally with Python 2's 'L' suffix). */
static int npy_uint(npy_cur *c, uint64_t *out) {
  npy_ws(c);
  if (c->p >= c->end || *c->p < '0' || *c->p > '9')
    return 0;
  uint64_t v = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    unsigned dgt = (unsigned)(*c->p - '0');
    if (v > (UINT64_MAX - dgt) / 10)
      return 0;
    v = v * 10 + dgt;
    c->p++;
  }
  if (c->p < c->end && *c->p == 'L')
    c->p++;
  *out = v;
  return 1;
}

/* A shape tuple: (), (n,), (n), (n, d), (n, d,), ... Fills up to 2 dims, counts all of them. */
static int npy_shape(npy_cur *c, uint64_t dims[2], int *rank) {
  *rank = 0;
  if (!npy_eat(c, '('))
    return 0;
  if (npy_eat(c, ')'))
    return 1;
  for (;;) {
    uint64_t v;
    if (!npy_uint(c, &v))
      return 0;
    if (*rank < 2)
      dims[*rank] = v;
    if (*rank < INT_MAX)
      (*rank)++;
    if (npy_eat(c, ')'))
      return 1;
    if (!npy_eat(c, ','))
      return 0;
    if (npy_eat(c, ')'))
      return 1;
  }
}

static qv_status parse_npy(qv_vecfile *f, const unsigned char *base, size_t size, qv_error *err) {
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || memcmp(base, magic, sizeof magic) != 0)
    return qv_error_set(err, QV_ECORRUPT,
                        "file %s: not a .npy file: it does not start with the \\x93NUMPY magic "
                        "(size %zu); write it with numpy.save",
                        f->path, size);
  unsigned major = base[6], minor = base[7];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = (size_t)base[8] | ((size_t)base[9] << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      return qv_error_set(err, QV_ECORRUPT, "file %s: truncated .npy %u.%u preamble (size %zu)",
                          f->path, major, minor, size);
    hlen = (size_t)base[8] | ((size_t)base[9] << 8) | ((size_t)base[10] << 16) |
           ((size_t)base[11] << 24);
    hstart = 12;
  } else {
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "file %s: .npy format version %u.%u is not supported (1.0, 2.0, 3.0 are)",
                        f->path, major, minor);
  }
  if (minor != 0)
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "file %s: .npy format version %u.%u is not supported (1.0, 2.0, 3.0 are)",
                        f->path, major, minor);
  if (hlen > size - hstart)
    return qv_error_set(err, QV_ECORRUPT,
                        "file %s: .npy header length %zu runs past the end of the file (size %zu)",
                        f->path, hlen, size);

  npy_cur c = {(const char *)base + hstart, (const char *)base + hstart + hlen};
  char descr[32] = "";
  int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0, rank = 0;
  uint64_t dims[2] = {0, 0};
  if (!npy_eat(&c, '{'))
    goto bad_header;
  for (;;) {
    char key[32];
    if (npy_eat(&c, '}'))
      break;
    if (!npy_string(&c, key, sizeof key) || !npy_eat(&c, ':'))
      goto bad_header;
    if (strcmp(key, "descr") == 0 && !have_descr) {
      npy_ws(&c);
      if (c.p < c.end && *c.p == '[')
        return qv_error_set(err, QV_EUNSUPPORTED,
                            "file %s: structured .npy dtypes are not supported; save a plain "
                            "2-D array of float32, float16, int32, int64 or uint8",
                            f->path);
      if (!npy_string(&c, descr, sizeof descr))
        goto bad_header;
      have_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0 && !have_fortran) {
      if (npy_word(&c, "True"))
        fortran = 1;
      else if (npy_word(&c, "False"))
        fortran = 0;
      else
        goto bad_header;
      have_fortran = 1;
    } else if (strcmp(key, "shape") == 0 && !have_shape) {
      if (!npy_shape(&c, dims, &rank))
        goto bad_header;
      have_shape = 1;
    } else {
      goto bad_header; /* unknown or repeated key */
    }
    if (npy_eat(&c, '}'))
      break;
    if (!npy_eat(&c, ','))
      goto bad_header;
  }
  npy_ws(&c);
  while (c.p < c.end && *c.p == '\0') /* some writers pad with NULs */
    c.p++;
  if (c.p != c.end || !have_descr || !have_fortran || !have_shape)
    goto bad_header;

  if (descr[0] == '>')
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "file %s: big-endian dtype '%s' is not supported; convert with "
                        "arr.astype(arr.dtype.newbyteorder('<'))",
                        f->path, descr);
  if (strcmp(descr, "<f4") == 0)
    f->dtype = QV_DTYPE_F32;
  else if (strcmp(descr, "<f2") == 0)
    f->dtype = QV_DTYPE_F16;
  else if (strcmp(descr, "<i4") == 0)
    f->dtype = QV_DTYPE_I32;
  else if (strcmp(descr, "<i8") == 0)
    f->dtype = QV_DTYPE_I64;
  else if (strcmp(descr, "|u1") == 0)
    f->dtype = QV_DTYPE_U8;
  else
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "file %s: dtype '%s' is not supported; use <f4, <f2, <i4, <i8 or |u1 "
                        "(e.g. arr.astype('float32'))",
                        f->path, descr);
  f->itemsize = dtype_size(f->dtype);
  if (fortran)
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "file %s: Fortran-order .npy is not supported; save "
                        "numpy.ascontiguousarray(arr)",
                        f->path);
  if (rank == 0 || rank > 2)
    return qv_error_set(err, QV_EUNSUPPORTED,
                        "file %s: .npy array has %d dimensions; only 1-D and 2-D arrays are "
                        "supported",
                        f->path, rank);
  uint64_t rows64 = dims[0], cols64 = rank == 2 ? dims[1] : 1;
  size_t n_elem, n_bytes;
  if (rows64 > SIZE_MAX || cols64 > SIZE_MAX || !mul_ok((size_t)rows64, (size_t)cols64, &n_elem) ||
      !mul_ok(n_elem, f->itemsize, &n_bytes))
    return qv_error_set(err, QV_ECORRUPT, "file %s: .npy shape is too large to address", f->path);
  size_t data_off = hstart + hlen, have = size - data_off;
  if (have != n_bytes)
    return qv_error_set(err, QV_ECORRUPT,
                        "file %s: %s: the shape (%zu x %zu) of %s needs %zu data bytes but the "
                        "file has %zu",
                        f->path, have < n_bytes ? "truncated" : "trailing bytes", (size_t)rows64,
                        (size_t)cols64, descr, n_bytes, have);
  f->rows = (size_t)rows64;
  f->cols = (size_t)cols64;
  f->row_stride = f->cols * f->itemsize;
  f->data = base + data_off;
  return QV_OK;

bad_header:
  return qv_error_set(err, QV_ECORRUPT,
                      "file %s: malformed .npy header dict (expected 'descr', 'fortran_order' and "
                      "'shape' keys); rewrite the file with numpy.save",
                      f->path);
}

qv_status qv_vecfile_open(qv_vecfile **out, const char *path, qv_error *err) {
  if (out != NULL)
    *out = NULL;
  if (out == NULL || path == NULL)
    return qv_error_set(err, QV_EINVAL, "open vector file: out or path is NULL");

  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash + 1 : path, '.');
  qv_vecfile_format fmt;
  qv_dtype dtype = QV_DTYPE_F32;
  if (dot != NULL && ext_equals(dot + 1, "fvecs")) {
    fmt = QV_VECFILE_FVECS;
  } else if (dot != NULL && ext_equals(dot + 1, "ivecs")) {
    fmt = QV_VECFILE_IVECS;
    dtype = QV_DTYPE_I32;
  } else if (dot != NULL && ext_equals(dot + 1, "bvecs")) {
    fmt = QV_VECFILE_BVECS;
    dtype = QV_DTYPE_U8;
  } else if (dot != NULL && ext_equals(dot + 1, "npy")) {
    fmt = QV_VECFILE_NPY;
  } else {
    return qv_error_set(err, QV_EINVAL,
                        "file %s: unknown extension '%s'; supported: .fvecs, .ivecs, .bvecs, .npy",
                        path, dot ? dot : "");
  }

  qv_vecfile *f = calloc(1, sizeof *f);
  size_t plen = strlen(path);
  if (f == NULL || (f->path = malloc(plen + 1)) == NULL) {
    free(f);
    return qv_error_set(err, QV_ENOMEM, "file %s: out of memory", path);
  }
  memcpy(f->path, path, plen + 1);
  f->format = fmt;
  f->dtype = dtype;
  f->itemsize = dtype_size(dtype);

  qv_status st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    st = qv_error_set(err, QV_EIO, "file %s: cannot open: %s", path, strerror(errno));
    goto fail;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    st = qv_error_set(err, QV_EIO, "file %s: cannot stat: %s", path, strerror(errno));
    close(fd);
    goto fail;
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    st = qv_error_set(err, QV_EIO, "file %s: not a regular file", path);
    goto fail;
  }
  if (sb.st_size < 0 || (uintmax_t)sb.st_size > (uintmax_t)SIZE_MAX) {
    close(fd);
    st = qv_error_set(err, QV_EIO, "file %s: size %jd cannot be mapped on this platform", path,
                      (intmax_t)sb.st_size);
    goto fail;
  }
  size_t size = (size_t)sb.st_size;
  if (size > 0) {
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      st = qv_error_set(err, QV_EIO, "file %s: cannot mmap %zu bytes: %s", path, size,
                        strerror(errno));
      close(fd);
      goto fail;
    }
    f->map = m;
    f->map_len = size;
  }
  close(fd); /* the mapping keeps the file */

  if (fmt == QV_VECFILE_NPY)
    st = parse_npy(f, f->map, size, err);
  else
    st = parse_vecs(f, f->map, size, err);
  if (st != QV_OK)
    goto fail;
  *out = f;
  return QV_OK;

fail:
  qv_vecfile_close(f);
  return st;
}

void qv_vecfile_close(qv_vecfile *f) {
  if (f == NULL)
    return;
  if (f->map != NULL)
    munmap(f->map, f->map_len);
  free(f->path);
  free(f);
}

size_t qv_vecfile_rows(const qv_vecfile *f) {
  return f ? f->rows : 0;
}

size_t qv_vecfile_cols(const qv_vecfile *f) {
  return f ? f->cols : 0;
}

qv_dtype qv_vecfile_dtype(const qv_vecfile *f) {
  return f ? f->dtype : QV_DTYPE_F32;
}

qv_vecfile_format qv_vecfile_format_of(const qv_vecfile *f) {
  return f ? f->format : QV_VECFILE_FVECS;
}

const char *qv_vecfile_path(const qv_vecfile *f) {
  return f ? f->path : NULL;
}

/* ---- reads --------------------------------------------------------------------------------- */

static qv_status check_range(const qv_vecfile *f, size_t row0, size_t n, const void *out,
                             const char *what, qv_error *err) {
  if (f == NULL)
    return qv_error_set(err, QV_EINVAL, "%s: file handle is NULL", what);
  if (row0 > f->rows || n > f->rows - row0)
    return qv_error_set(err, QV_EINVAL,
                        "file %s: %s of rows [%zu, %zu + %zu) is outside the matrix of %zu rows",
                        f->path, what, row0, row0, n, f->rows);
  if (out == NULL && n > 0)
    return qv_error_set(err, QV_EINVAL, "file %s: %s: out is NULL", f->path, what);
  return QV_OK;
}

static void convert_f32(qv_dtype dt, const unsigned char *src, size_t count, float *dst) {
  size_t i;
  switch (dt) {
  case QV_DTYPE_F32:
    memcpy(dst, src, count * sizeof(float));
    break;
  case QV_DTYPE_F16:
    for (i = 0; i < count; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      dst[i] = f16_to_f32(h);
    }
    break;
  case QV_DTYPE_I32:
    for (i = 0; i < count; i++) {
      int32_t v;
      memcpy(&v, src + 4 * i, 4);
      dst[i] = (float)v;
    }
    break;
  case QV_DTYPE_I64:
    for (i = 0; i < count; i++) {
      int64_t v;
      memcpy(&v, src + 8 * i, 8);
      dst[i] = (float)v;
    }
    break;
  case QV_DTYPE_U8:
    for (i = 0; i < count; i++)
      dst[i] = (float)src[i];
    break;
  }
}

static void convert_i64(qv_dtype dt, const unsigned char *src, size_t count, int64_t *dst) {
  size_t i;
  switch (dt) {
  case QV_DTYPE_I64:
    memcpy(dst, src, count * sizeof(int64_t));
    break;
  case QV_DTYPE_I32:
    for (i = 0; i < count; i++) {
      int32_t v;
      memcpy(&v, src + 4 * i, 4);
      dst[i] = v;
    }
    break;
  case QV_DTYPE_U8:
    for (i = 0; i < count; i++)
      dst[i] = src[i];
    break;
  case QV_DTYPE_F32:
  case QV_DTYPE_F16:
    break; /* refused by the caller */
  }
}

qv_status qv_vecfile_read_f32(const qv_vecfile *f, size_t row0, size_t n, float *out,
                              qv_error *err) {
  qv_status st = check_range(f, row0, n, out, "read_f32", err);
  if (st != QV_OK || n == 0 || f->cols == 0)
    return st;
  if (f->format == QV_VECFILE_NPY) {
    /* contiguous: one pass; n * cols * itemsize fits because it is within the mapped file */
    convert_f32(f->dtype, f->data + row0 * f->row_stride, n * f->cols, out);
    return QV_OK;
  }
  for (size_t r = 0; r < n; r++)
    convert_f32(f->dtype, f->data + (row0 + r) * f->row_stride, f->cols, out + r * f->cols);
  return QV_OK;
}

qv_status qv_vecfile_read_i64(const qv_vecfile *f, size_t row0, size_t n, int64_t *out,
                              qv_error *err) {
  if (f != NULL && (f->dtype == QV_DTYPE_F32 || f->dtype == QV_DTYPE_F16))
    return qv_error_set(err, QV_EINVAL,
                        "file %s: read_i64 needs an integer dtype (i32, i64, u8) but the file "
                        "holds %s; use qv_vecfile_read_f32",
                        f->path, dtype_name(f->dtype));
  qv_status st = check_range(f, row0, n, out, "read_i64", err);
  if (st != QV_OK || n == 0 || f->cols == 0)
    return st;
  if (f->format == QV_VECFILE_NPY) {
    convert_i64(f->dtype, f->data + row0 * f->row_stride, n * f->cols, out);
    return QV_OK;
  }
  for (size_t r = 0; r < n; r++)
    convert_i64(f->dtype, f->data + (row0 + r) * f->row_stride, f->cols, out + r * f->cols);
  return QV_OK;
}

/* ---- writes -------------------------------------------------------------------------------- */

struct npy_ctx {
  const char *header;
  size_t header_len;
  const void *data;
  size_t data_len;
};

static qv_status emit_npy(int fd, const char *tmp_path, void *ctx, qv_error *err) {
  const struct npy_ctx *c = ctx;
  qv_status st = qv__write_all(fd, c->header, c->header_len, tmp_path, err);
  if (st == QV_OK && c->data_len > 0)
    st = qv__write_all(fd, c->data, c->data_len, tmp_path, err);
  return st;
}

qv_status qv_npy_write(const char *path, qv_dtype dtype, size_t rows, size_t cols, const void *data,
                       qv_error *err) {
  if (path == NULL)
    return qv_error_set(err, QV_EINVAL, "write .npy: path is NULL");
  const char *descr;
  switch (dtype) {
  case QV_DTYPE_F32:
    descr = "<f4";
    break;
  case QV_DTYPE_I32:
    descr = "<i4";
    break;
  case QV_DTYPE_I64:
    descr = "<i8";
    break;
  default:
    return qv_error_set(err, QV_EINVAL,
                        "write %s: dtype %s is not supported for writing; use f32, i32 or i64",
                        path, dtype_name(dtype));
  }
  size_t n_elem, n_bytes;
  if (!mul_ok(rows, cols == 0 ? 1 : cols, &n_elem) || !mul_ok(n_elem, dtype_size(dtype), &n_bytes))
    return qv_error_set(err, QV_EINVAL, "write %s: shape %zu x %zu is too large", path, rows, cols);
  if (data == NULL && n_elem > 0)
    return qv_error_set(err, QV_EINVAL, "write %s: data is NULL for %zu x %zu values", path, rows,
                        cols);

  /* Format 1.0: magic, version, uint16 header length, then the dict padded with spaces and a
   * final '\n' so that the data starts on a 64-byte boundary. */
  char header[256];
  char dict[160];
  int dn;
  if (cols == 0)
    dn = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }",
                  descr, rows);
  else
    dn = snprintf(dict, sizeof dict,
                  "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }", descr, rows,
                  cols);
  if (dn < 0 || (size_t)dn >= sizeof dict)
    return qv_error_set(err, QV_EINTERNAL, "write %s: .npy header does not fit", path);
  size_t total = 10 + (size_t)dn + 1; /* + '\n' */
  total = (total + 63) / 64 * 64;
  if (total > sizeof header)
    return qv_error_set(err, QV_EINTERNAL, "write %s: .npy header does not fit", path);
  size_t hlen = total - 10;
  memcpy(header, "\x93NUMPY\x01\x00", 8);
  header[8] = (char)(hlen & 0xff);
  header[9] = (char)(hlen >> 8);
  memcpy(header + 10, dict, (size_t)dn);
  memset(header + 10 + dn, ' ', total - 10 - (size_t)dn - 1);
  header[total - 1] = '\n';

  struct npy_ctx c = {header, total, data, n_bytes};
  return qv__write_atomic_with(path, emit_npy, &c, err);
}

#define QV__VECS_BUF ((size_t)1 << 20)

struct vecs_ctx {
  size_t rows, cols;
  const unsigned char *data;
  size_t row_bytes; /* cols * 4 */
};

/* Streams rows as int32 dim + values through a 1 MiB staging buffer. */
static qv_status emit_vecs(int fd, const char *tmp_path, void *ctx, qv_error *err) {
  const struct vecs_ctx *c = ctx;
  if (c->rows == 0)
    return QV_OK;
  unsigned char *buf = malloc(QV__VECS_BUF);
  if (buf == NULL)
    return qv_error_set(err, QV_ENOMEM, "write %s: out of memory for the write buffer", tmp_path);
  int32_t dim = (int32_t)c->cols;
  size_t len = 0;
  qv_status st = QV_OK;
  for (size_t r = 0; r < c->rows && st == QV_OK; r++) {
    const unsigned char *row = c->data + r * c->row_bytes;
    if (4 + c->row_bytes > QV__VECS_BUF) {
      /* a huge row: flush, then write it directly */
      st = qv__write_all(fd, buf, len, tmp_path, err);
      len = 0;
      if (st == QV_OK)
        st = qv__write_all(fd, &dim, 4, tmp_path, err);
      if (st == QV_OK)
        st = qv__write_all(fd, row, c->row_bytes, tmp_path, err);
      continue;
    }
    if (len + 4 + c->row_bytes > QV__VECS_BUF) {
      st = qv__write_all(fd, buf, len, tmp_path, err);
      len = 0;
      if (st != QV_OK)
        break;
    }
    memcpy(buf + len, &dim, 4);
    memcpy(buf + len + 4, row, c->row_bytes);
    len += 4 + c->row_bytes;
  }
  if (st == QV_OK && len > 0)
    st = qv__write_all(fd, buf, len, tmp_path, err);
  free(buf);
  return st;
}

static qv_status vecs_write(const char *path, const char *what, size_t rows, size_t cols,
                            const void *data, qv_error *err) {
  if (path == NULL)
    return qv_error_set(err, QV_EINVAL, "write %s: path is NULL", what);
  if (rows > 0 && (cols == 0 || cols > INT32_MAX))
    return qv_error_set(err, QV_EINVAL, "write %s: cols is %zu; a %s row needs 1..%d values", path,
                        cols, what, (int)INT32_MAX);
  size_t row_bytes, rec_bytes, total;
  if (!mul_ok(cols, 4, &row_bytes) || !add_ok(row_bytes, 4, &rec_bytes) ||
      !mul_ok(rows, rec_bytes, &total))
    return qv_error_set(err, QV_EINVAL, "write %s: shape %zu x %zu is too large", path, rows, cols);
  if (data == NULL && rows > 0)
    return qv_error_set(err, QV_EINVAL, "write %s: data is NULL for %zu x %zu values", path, rows,
                        cols);
  struct vecs_ctx c = {rows, cols, data, row_bytes};
  return qv__write_atomic_with(path, emit_vecs, &c, err);
}

qv_status qv_ivecs_write(const char *path, size_t rows, size_t cols, const int32_t *data,
                         qv_error *err) {
  return vecs_write(path, ".ivecs", rows, cols, data, err);
}

qv_status qv_fvecs_write(const char *path, size_t rows, size_t cols, const float *data,
                         qv_error *err) {
  return vecs_write(path, ".fvecs", rows, cols, data, err);
}
