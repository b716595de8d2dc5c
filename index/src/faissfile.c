/* A walk over an index.faiss file before FAISS reads it.
 *
 * FAISS's reader trusts every count in the file: a list size, a vector length or an nlist is
 * allocated as read (a crafted nlist of 2^36 asked for 512 GiB before anything failed), and a
 * fourcc of a legacy format takes other paths again. This walks the few layouts our specs write
 * (faiss/impl/index_write.cpp of FAISS 1.7.3: IxMp over IxF2/IxFI for Flat; IwFl, IwSq, IwPQ
 * over an IxF2/IxFI quantizer with "ilar" lists for IVF; IxMp over IHNf / IHNs, a graph over
 * IxF2/IxFI or IxSQ storage, for HNSW: every link within the graph) and checks that every count
 * fits in the bytes that follow, that the parts agree with each other and with the manifest's
 * dimension, and that nothing is left over. Anything else is refused, so that what FAISS then
 * allocates is bounded by the file's size. The structure FAISS builds is checked again after the
 * read (validate.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

typedef struct rd {
  const unsigned char *p;
  size_t n, off;
  char why[160];
} rd;

static int bad(rd *r, const char *why) {
  if (r->why[0] == '\0')
    snprintf(r->why, sizeof r->why, "%s at byte %zu", why, r->off);
  return 0;
}

static int take(rd *r, void *out, size_t len) {
  if (len > r->n - r->off)
    return bad(r, "the file ends early");
  memcpy(out, r->p + r->off, len);
  r->off += len;
  return 1;
}

/* Skips count elements of elem bytes, when they are all there. */
static int skip(rd *r, uint64_t count, size_t elem) {
  if (elem != 0 && count > (r->n - r->off) / elem)
    return bad(r, "a length runs past the end of the file");
  r->off += (size_t)(count * elem);
  return 1;
}

static int u64(rd *r, uint64_t *v) {
  return take(r, v, sizeof *v);
}

/* A std::vector: its length (a size_t), then its elements. */
static int vec(rd *r, size_t elem, uint64_t *len) {
  return u64(r, len) && skip(r, *len, elem);
}

static uint32_t fourcc(const char *s) {
  return (uint32_t)(unsigned char)s[0] | (uint32_t)(unsigned char)s[1] << 8 |
         (uint32_t)(unsigned char)s[2] << 16 | (uint32_t)(unsigned char)s[3] << 24;
}

typedef struct head {
  int32_t d;
  int64_t ntotal;
  int32_t metric;
} head;

/* write_index_header: d, ntotal, two dummies, is_trained, metric_type [, metric_arg]. */
static int header(rd *r, head *h, size_t dim) {
  int64_t dummy;
  unsigned char trained;
  if (!take(r, &h->d, 4) || !take(r, &h->ntotal, 8) || !take(r, &dummy, 8) || !take(r, &dummy, 8) ||
      !take(r, &trained, 1) || !take(r, &h->metric, 4))
    return 0;
  if (h->d <= 0 || (size_t)h->d != dim)
    return bad(r, "an index dimension does not match the manifest");
  if (h->ntotal < 0)
    return bad(r, "a negative vector count");
  if (trained > 1)
    return bad(r, "is_trained is not a boolean");
  if (h->metric != 0 && h->metric != 1) /* METRIC_INNER_PRODUCT, METRIC_L2: all we write */
    return bad(r, "an unsupported metric");
  return 1;
}

/* IxF2 / IxFI: the header, then ntotal * d floats (stored as a count of 4-byte words). */
static int flat(rd *r, size_t dim, head *h) {
  uint32_t cc;
  if (!take(r, &cc, 4))
    return 0;
  if (cc != fourcc("IxF2") && cc != fourcc("IxFI"))
    return bad(r, "a flat index of an unsupported type");
  uint64_t words;
  if (!header(r, h, dim) || !u64(r, &words))
    return 0;
  if (words != (uint64_t)h->ntotal * dim)
    return bad(r, "flat codes do not hold ntotal x d floats");
  return skip(r, words, 4);
}

/* Reads a std::vector's elements in place: *at points at them (count of elem bytes each). */
static int vec_at(rd *r, size_t elem, uint64_t *len, const unsigned char **at) {
  if (!u64(r, len))
    return 0;
  *at = r->p + r->off;
  return skip(r, *len, elem);
}

/* IxSQ: the header, the scalar quantizer, ntotal codes. */
static int sq_storage(rd *r, size_t dim, head *h) {
  int32_t qtype, rangestat;
  float arg;
  uint64_t sd, cs, len;
  if (!header(r, h, dim) || !take(r, &qtype, 4) || !take(r, &rangestat, 4) || !take(r, &arg, 4) ||
      !u64(r, &sd) || !u64(r, &cs) || !vec(r, 4, &len))
    return 0;
  if (qtype < 0 || qtype > 6 || sd != dim || cs == 0 || cs > 4 * (uint64_t)dim ||
      len > 2 * (uint64_t)dim)
    return bad(r, "the scalar quantizer does not fit the index");
  if (!u64(r, &len))
    return 0;
  if (len != (uint64_t)h->ntotal * cs)
    return bad(r, "scalar-quantised codes do not hold ntotal codes");
  return skip(r, len, 1);
}

/* IHNf / IHNs (write_HNSW, then the storage index): levels' link counts as HNSW<M> sets them,
 * a level per node within them, offsets that add up, every link a node or -1, the entry point
 * a node at the top level. */
static int hnsw(rd *r, size_t dim, uint32_t m, head *h) {
  uint32_t cc;
  if (!take(r, &cc, 4))
    return 0;
  if (cc != fourcc("IHNf") && cc != fourcc("IHNs"))
    return bad(r, "a graph index of an unsupported type");
  uint64_t nprob, ncum, nlev, noff, nnb;
  const unsigned char *cum_at, *lev_at, *off_at, *nb_at;
  if (!header(r, h, dim) || !vec(r, 8, &nprob) || !vec_at(r, 4, &ncum, &cum_at))
    return 0;
  enum { MAX_LEVELS = 64 };
  int32_t cum[MAX_LEVELS + 1];
  if (nprob == 0 || nprob > MAX_LEVELS || ncum != nprob + 1)
    return bad(r, "the graph's levels are malformed");
  memcpy(cum, cum_at, ncum * 4);
  for (uint64_t l = 0; l < nprob; l++)
    if (cum[0] != 0 || cum[l + 1] - cum[l] != (int32_t)(l == 0 ? 2 * m : m))
      return bad(r, "the graph's links per level are not those of its spec's M");
  const uint64_t n = (uint64_t)h->ntotal;
  if (!vec_at(r, 4, &nlev, &lev_at) || nlev != n)
    return bad(r, "the graph does not give every node a level");
  if (!vec_at(r, 8, &noff, &off_at) || noff != n + 1)
    return bad(r, "the graph does not give every node its links' offset");
  int32_t top = 0;
  uint64_t prev = 0;
  for (uint64_t i = 0; i <= n; i++) {
    uint64_t off;
    memcpy(&off, off_at + i * 8, 8);
    if (i == 0 ? off != 0 : off < prev)
      return bad(r, "the graph's link offsets are out of order");
    if (i > 0) {
      int32_t lv;
      memcpy(&lv, lev_at + (i - 1) * 4, 4);
      if (lv < 1 || (uint64_t)lv > nprob || off - prev != (uint64_t)cum[lv])
        return bad(r, "a graph node's level or link count is out of range");
      if (lv > top)
        top = lv;
    }
    prev = off;
  }
  if (!vec_at(r, 4, &nnb, &nb_at) || nnb != prev)
    return bad(r, "the graph's links do not fill its offsets");
  for (uint64_t i = 0; i < nnb; i++) {
    int32_t v;
    memcpy(&v, nb_at + i * 4, 4);
    if (v < -1 || (int64_t)v >= (int64_t)n)
      return bad(r, "a graph link points outside the graph");
  }
  int32_t entry, max_level, efc, efs, beam;
  if (!take(r, &entry, 4) || !take(r, &max_level, 4) || !take(r, &efc, 4) || !take(r, &efs, 4) ||
      !take(r, &beam, 4))
    return 0;
  if (n == 0 ? entry != -1 || max_level != -1
             : entry < 0 || (uint64_t)entry >= n || max_level != top - 1)
    return bad(r, "the graph's entry point or top level is wrong");
  {
    int32_t lv = 0;
    if (n > 0)
      memcpy(&lv, lev_at + (uint64_t)entry * 4, 4);
    if (n > 0 && lv != top)
      return bad(r, "the graph's entry point is not on its top level");
  }
  if (efc < 1 || efs < 1 || beam < 1)
    return bad(r, "the graph's search parameters are out of range");
  /* The storage: the vectors (or their codes) of the nodes. */
  head s;
  const size_t at = r->off;
  uint32_t scc;
  if (!take(r, &scc, 4))
    return 0;
  if (cc == fourcc("IHNf")) {
    r->off = at;
    if (!flat(r, dim, &s))
      return 0;
  } else if (scc != fourcc("IxSQ") || !sq_storage(r, dim, &s)) {
    return bad(r, "the graph's storage is not scalar-quantised codes");
  }
  if (s.ntotal != h->ntotal)
    return bad(r, "the graph and its storage disagree on the node count");
  return 1;
}

/* "ilar" inverted lists: nlist and code size as the IVF has them; list sizes (all, or sparse
 * pairs), then each list's codes and ids. */
static int invlists(rd *r, uint64_t nlist, uint64_t code_size, int64_t ntotal) {
  uint32_t cc, type;
  uint64_t n, cs, len;
  if (!take(r, &cc, 4))
    return 0;
  if (cc != fourcc("ilar"))
    return bad(r, "inverted lists of an unsupported type");
  if (!u64(r, &n) || !u64(r, &cs) || !take(r, &type, 4))
    return 0;
  if (n != nlist || cs != code_size)
    return bad(r, "inverted lists disagree with the index (nlist or code size)");
  const size_t at = r->off + 8;
  if (!vec(r, 8, &len))
    return 0;
  const unsigned char *sz = r->p + at;
  uint64_t total = 0, prev = 0;
  if (type == fourcc("full")) {
    if (len != nlist)
      return bad(r, "inverted lists: the list sizes are not one per list");
  } else if (type == fourcc("sprs")) {
    if (len % 2 != 0 || len / 2 > nlist)
      return bad(r, "inverted lists: malformed sparse list sizes");
  } else {
    return bad(r, "inverted lists: unknown storage");
  }
  for (uint64_t i = 0; i < len; i++) {
    uint64_t v;
    memcpy(&v, sz + i * 8, 8);
    const int is_size = type == fourcc("full") || i % 2 == 1;
    if (!is_size) { /* a sparse entry's list number: increasing, below nlist */
      if (v >= nlist || (i > 0 && v <= prev))
        return bad(r, "inverted lists: a sparse list number is out of order or range");
      prev = v;
      continue;
    }
    if (v > (uint64_t)ntotal || total + v > (uint64_t)ntotal)
      return bad(r, "inverted lists hold more entries than the index counts");
    total += v;
  }
  if (total != (uint64_t)ntotal)
    return bad(r, "inverted lists do not hold ntotal entries");
  /* codes then ids of every list: total * (code_size + 8) bytes in all (code_size is the
   * index's own, at most 4 x QV_MAX_DIM: no overflow) */
  return skip(r, total, (size_t)code_size + 8);
}

/* "ilbl" block lists of a fast-scan IVF: nlist and code size as the IVF has them, n_per_block as
 * its bbs and block_size bbs x M2 / 2; per list its ids and ceil(ids / n_per_block) blocks. */
static int block_lists(rd *r, uint64_t nlist, uint64_t code_size, int64_t ntotal, int32_t bbs,
                       uint64_t m2) {
  uint32_t cc;
  uint64_t n, cs, per, bs;
  if (!take(r, &cc, 4))
    return 0;
  if (cc != fourcc("ilbl"))
    return bad(r, "fast-scan lists of an unsupported type");
  if (!u64(r, &n) || !u64(r, &cs) || !u64(r, &per) || !u64(r, &bs))
    return 0;
  /* (FAISS 1.7.3 makes them with code_size "invalid", SIZE_MAX: blocks have no per-entry code) */
  if (n != nlist || (cs != code_size && cs != UINT64_MAX) || per != (uint64_t)bbs ||
      bs != (uint64_t)bbs * m2 / 2)
    return bad(r, "fast-scan lists disagree with the index (nlist, code size or block shape)");
  uint64_t total = 0;
  for (uint64_t l = 0; l < nlist; l++) {
    uint64_t ni, nc;
    if (!vec(r, 8, &ni))
      return 0;
    if (ni > (uint64_t)ntotal || total + ni > (uint64_t)ntotal)
      return bad(r, "fast-scan lists hold more entries than the index counts");
    total += ni;
    if (!vec(r, 1, &nc))
      return 0;
    if (nc != (ni + per - 1) / per * bs)
      return bad(r, "a fast-scan list's codes do not fill its blocks");
  }
  if (total != (uint64_t)ntotal)
    return bad(r, "fast-scan lists do not hold ntotal entries");
  return 1;
}

static int ivf(rd *r, uint32_t cc, size_t dim, uint32_t want_nlist) {
  head h, q;
  uint64_t nlist, nprobe, len;
  unsigned char dm;
  if (!header(r, &h, dim) || !u64(r, &nlist) || !u64(r, &nprobe))
    return 0;
  if (nlist == 0 || nlist > QV_MAX_NLIST || (want_nlist && nlist != want_nlist))
    return bad(r, "nlist does not match the spec");
  if (!flat(r, dim, &q))
    return 0;
  if (q.ntotal != 0 && (uint64_t)q.ntotal != nlist)
    return bad(r, "the coarse quantizer does not hold nlist centroids");
  if (!take(r, &dm, 1))
    return 0;
  if (dm > 2)
    return bad(r, "an unknown direct map type");
  if (!vec(r, 8, &len) || (dm == 2 && !vec(r, 16, &len)))
    return 0;
  uint64_t code_size = 4 * (uint64_t)dim;
  if (cc == fourcc("IwPf")) {
    unsigned char by_residual;
    uint64_t cs, m2, qbs2, pd, m, nbits;
    int32_t bbs, implem;
    if (!take(r, &by_residual, 1) || !u64(r, &cs) || !take(r, &bbs, 4) || !u64(r, &m2) ||
        !take(r, &implem, 4) || !u64(r, &qbs2) || !u64(r, &pd) || !u64(r, &m) || !u64(r, &nbits) ||
        !vec(r, 4, &len))
      return 0;
    if (by_residual > 1 || pd != dim || m == 0 || dim % m != 0 || nbits != 4 ||
        len != pd << nbits || cs != (m * nbits + 7) / 8 || m2 != (m + 1) / 2 * 2 || bbs != 32 ||
        implem < 0 || implem > 15 || qbs2 > 4096)
      return bad(r, "the fast-scan product quantizer does not fit the index");
    return block_lists(r, nlist, cs, h.ntotal, bbs, m2);
  }
  if (cc == fourcc("IwSq")) {
    int32_t qtype, rangestat;
    float arg;
    uint64_t sd, scs, cs2;
    unsigned char by_residual;
    if (!take(r, &qtype, 4) || !take(r, &rangestat, 4) || !take(r, &arg, 4) || !u64(r, &sd) ||
        !u64(r, &scs) || !vec(r, 4, &len) || !u64(r, &cs2) || !take(r, &by_residual, 1))
      return 0;
    if (qtype < 0 || qtype > 6 || sd != dim || scs != cs2 || scs == 0 || scs > 4 * (uint64_t)dim ||
        len > 2 * (uint64_t)dim || by_residual > 1)
      return bad(r, "the scalar quantizer does not fit the index");
    code_size = scs;
  } else if (cc == fourcc("IwPQ")) {
    unsigned char by_residual;
    uint64_t cs, pd, m, nbits;
    if (!take(r, &by_residual, 1) || !u64(r, &cs) || !u64(r, &pd) || !u64(r, &m) ||
        !u64(r, &nbits) || !vec(r, 4, &len))
      return 0;
    if (by_residual > 1 || pd != dim || m == 0 || dim % m != 0 || nbits == 0 || nbits > 16 ||
        len != pd << nbits || cs != (m * nbits + 7) / 8)
      return bad(r, "the product quantizer does not fit the index");
    code_size = cs;
  }
  return invlists(r, nlist, code_size, h.ntotal);
}

qv_status qv__faiss_file_check(const char *path, size_t dim, const qv__spec *spec, qv_error *err) {
  const uint32_t nlist = spec->nlist;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return qv_error_set(err, QV_ECORRUPT, "index.faiss: open: %s", strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size < 4) {
    close(fd);
    return qv_error_set(err, QV_ECORRUPT, "index.faiss is empty or unreadable");
  }
  void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED)
    return qv_error_set(err, QV_EIO, "index.faiss: mmap: %s", strerror(errno));
  rd r = {.p = m, .n = (size_t)sb.st_size};
  uint32_t cc = 0;
  int ok = take(&r, &cc, 4);
  if (ok && nlist == 0) { /* Flat or HNSW: IDMap over a flat or graph index, then the id map */
    head h, sub;
    uint64_t len;
    ok = cc == fourcc("IxMp")
             ? header(&r, &h, dim) &&
                   (spec->graph ? hnsw(&r, dim, spec->hnsw_m, &sub) : flat(&r, dim, &sub)) &&
                   vec(&r, 8, &len)
             : bad(&r, spec->graph ? "not the IDMap,HNSW layout an HNSW collection writes"
                                   : "not the IDMap,Flat layout a Flat collection writes");
    if (ok && (sub.ntotal != h.ntotal || len != (uint64_t)h.ntotal))
      ok = bad(&r, "the id map and the flat index disagree on the vector count");
  } else if (ok) {
    ok = cc == fourcc(spec->fastscan ? "IwPf" : "IwFl") ||
                 (!spec->fastscan && (cc == fourcc("IwSq") || cc == fourcc("IwPQ")))
             ? ivf(&r, cc, dim, nlist)
             : bad(&r, "not an IVF layout an IVF collection writes");
  }
  if (ok && r.off != r.n)
    ok = bad(&r, "bytes are left over after the index");
  munmap(m, (size_t)sb.st_size);
  return ok ? QV_OK : qv_error_set(err, QV_ECORRUPT, "index.faiss is malformed: %s", r.why);
}
