/* Writes the seed corpora of the fuzz targets into OUT/{rpc,vecfile,dir,manifest,wal}: valid
 * examples of every input, made with the same template collections the targets open. Run by
 * `scripts/fuzz.sh --make-seeds`; the output is committed as tests/fuzz/corpus. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "quiver/fsutil.h"
#include "quiver/v1/retrieval.pb-c.h"
#include "quiver/vecfile.h"
#include "server.h"

static const char *g_out;

typedef struct buf {
  uint8_t *p;
  size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL)
      abort();
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
}

static void save(const char *dir, const char *name, const buf *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", g_out, dir, name);
  fz_write_file(path, b->p, b->n);
}

static int method(const char *suffix) {
  for (int i = 0; i < qv__server_methods(); i++) {
    const char *p = qv__server_method_path(i);
    if (strcmp(strrchr(p, '/') + 1, suffix) == 0)
      return i;
  }
  abort();
}

/* One rpc record: [method | flags][u16 le length][message]. */
static void rec(buf *b, int m, const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *p = malloc(len ? len : 1);
  protobuf_c_message_pack(msg, p);
  const uint8_t h[3] = {(uint8_t)m, (uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
  put(b, h, 3);
  put(b, p, len);
  free(p);
}

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    *n = 0;
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
  *n = fread(p, 1, (size_t)len, f);
  fclose(f);
  return p;
}

/* Item attributes and filters: the template's "flat" collection has them (cat, price, on, brand,
 * tags: fuzz_common.c), "ivf" none. */
static void attr_seeds(const float *q) {
  buf b = {0};
  /* Filtered searches on every path of the flat one, and an item-to-item one. */
  static const char *const good[] = {
      "cat in (1, 2) and price < 50 and not on and tags has \"red\"",
      "brand = 'blue' or (price >= 10.5 and tags has any (\"green\", \"red\"))",
      "on and brand not in ('', \"red\") and tags has all ('red', 'green')",
      "NOT cat != -3 OR cat = 2.5"};
  Quiver__V1__SearchRequest s = QUIVER__V1__SEARCH_REQUEST__INIT;
  s.collection = "flat";
  s.queries = (float *)q;
  s.n_queries = 2 * FZ_DIM;
  s.k = 4;
  for (int i = 0; i < 4; i++) {
    s.filter = (char *)good[i];
    s.filter_path = (Quiver__V1__FilterPath)(i % 3);
    s.exact = i == 3;
    rec(&b, method("Search"), &s.base);
  }
  s.exact = 0;
  Quiver__V1__RerankOptions r = QUIVER__V1__RERANK_OPTIONS__INIT;
  r.candidates = 8;
  r.refine = 1;
  s.rerank = &r;
  s.filter = (char *)good[1];
  rec(&b, method("Search"), &s.base);
  s.rerank = NULL;
  int64_t qids[3] = {1, 4, 7};
  s.queries = NULL;
  s.n_queries = 0;
  s.query_ids = qids;
  s.n_query_ids = 3;
  s.filter = (char *)good[0];
  rec(&b, method("Search"), &s.base);
  save("rpc", "search-filter-flat", &b);
  /* Refused ones: an unknown attribute, a type mismatch, malformed, a filter path out of range,
   * a filter on a collection without attributes. */
  b.n = 0;
  s.query_ids = NULL;
  s.n_query_ids = 0;
  s.queries = (float *)q;
  s.n_queries = FZ_DIM;
  static const char *const bad[] = {"colour = 1", "brand < 2", "cat in (1,", "tags has", "on on"};
  for (int i = 0; i < 5; i++) {
    s.filter = (char *)bad[i];
    rec(&b, method("Search"), &s.base);
  }
  s.filter = (char *)good[0];
  s.filter_path = (Quiver__V1__FilterPath)9;
  rec(&b, method("Search"), &s.base);
  s.filter_path = QUIVER__V1__FILTER_PATH__FILTER_PATH_AUTO;
  s.collection = "ivf";
  rec(&b, method("Search"), &s.base);
  save("rpc", "search-filter-bad", &b);
  /* An upsert with every column type, then a Get of the attributes. */
  b.n = 0;
  int64_t ids[3] = {2000, 2001, 4}, ints[3] = {5, -1, 0};
  double prices[3] = {1.5, 2.25, 1e9};
  protobuf_c_boolean on[3] = {1, 0, 1};
  char *kw[3] = {"red", "", "violet"}, *t0[2] = {"red", "blue"}, *t2[1] = {"green"};
  float vec[3 * FZ_DIM];
  for (int i = 0; i < 3 * FZ_DIM; i++)
    vec[i] = (float)(i % 5) - 2;
  Quiver__V1__TagList tl[3] = {QUIVER__V1__TAG_LIST__INIT, QUIVER__V1__TAG_LIST__INIT,
                               QUIVER__V1__TAG_LIST__INIT};
  tl[0].tags = t0;
  tl[0].n_tags = 2;
  tl[2].tags = t2;
  tl[2].n_tags = 1;
  Quiver__V1__TagList *tp[3] = {&tl[0], &tl[1], &tl[2]};
  Quiver__V1__AttributeColumn c[5];
  Quiver__V1__AttributeColumn *cp[5];
  static const char *const names[5] = {"tags", "cat", "price", "on", "brand"}; /* any order */
  for (int i = 0; i < 5; i++) {
    quiver__v1__attribute_column__init(&c[i]);
    c[i].name = (char *)names[i];
    cp[i] = &c[i];
  }
  c[0].tags = tp;
  c[0].n_tags = 3;
  c[1].ints = ints;
  c[1].n_ints = 3;
  c[2].floats = prices;
  c[2].n_floats = 3;
  c[3].bools = on;
  c[3].n_bools = 3;
  c[4].keywords = kw;
  c[4].n_keywords = 3;
  Quiver__V1__UpsertRequest up = QUIVER__V1__UPSERT_REQUEST__INIT;
  up.collection = "flat";
  up.ids = ids;
  up.n_ids = 3;
  up.vectors = vec;
  up.n_vectors = 3 * FZ_DIM;
  up.attributes = cp;
  up.n_attributes = 5;
  rec(&b, method("Upsert"), &up.base);
  Quiver__V1__GetRequest g = QUIVER__V1__GET_REQUEST__INIT;
  char *fields[2] = {"attributes", "vector"};
  g.collection = "flat";
  g.ids = ids;
  g.n_ids = 3;
  g.fields = fields;
  g.n_fields = 2;
  rec(&b, method("Get"), &g.base);
  save("rpc", "upsert-get-attrs-flat", &b);
  /* Refused upserts: the wrong list, the wrong count, no such attribute, to "ivf" (each its own
   * call: a ListCollections between them ends the stream). */
  b.n = 0;
  Quiver__V1__ListCollectionsRequest l = QUIVER__V1__LIST_COLLECTIONS_REQUEST__INIT;
  up.n_attributes = 1;
  Quiver__V1__AttributeColumn w = c[2];
  w.floats = NULL;
  w.n_floats = 0;
  w.ints = ints;
  w.n_ints = 3;
  Quiver__V1__AttributeColumn *wp = &w;
  up.attributes = &wp;
  rec(&b, method("Upsert"), &up.base);
  rec(&b, method("ListCollections"), &l.base);
  w = c[1];
  w.n_ints = 2;
  rec(&b, method("Upsert"), &up.base);
  rec(&b, method("ListCollections"), &l.base);
  w.name = "colour";
  w.n_ints = 3;
  rec(&b, method("Upsert"), &up.base);
  rec(&b, method("ListCollections"), &l.base);
  up.collection = "ivf";
  w.name = "cat";
  rec(&b, method("Upsert"), &up.base);
  save("rpc", "upsert-attrs-bad", &b);
  /* A collection created with a schema, filled, described and searched with a filter. */
  b.n = 0;
  Quiver__V1__AttributeField f[5];
  Quiver__V1__AttributeField *fp[5];
  for (int i = 0; i < 5; i++) {
    quiver__v1__attribute_field__init(&f[i]);
    f[i].name = (char *)names[i];
    fp[i] = &f[i];
  }
  f[0].type = QUIVER__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TAGS;
  f[1].type = QUIVER__V1__ATTRIBUTE_TYPE__ATTRIBUTE_INT64;
  f[2].type = QUIVER__V1__ATTRIBUTE_TYPE__ATTRIBUTE_FLOAT;
  f[3].type = QUIVER__V1__ATTRIBUTE_TYPE__ATTRIBUTE_BOOL;
  f[4].type = QUIVER__V1__ATTRIBUTE_TYPE__ATTRIBUTE_KEYWORD;
  Quiver__V1__CreateCollectionRequest cr = QUIVER__V1__CREATE_COLLECTION_REQUEST__INIT;
  cr.name = "shop";
  cr.dim = FZ_DIM;
  cr.metric = QUIVER__V1__METRIC__METRIC_L2;
  cr.index_spec = "Flat";
  cr.attributes = fp;
  cr.n_attributes = 5;
  rec(&b, method("CreateCollection"), &cr.base);
  up.collection = "shop";
  up.attributes = cp;
  up.n_attributes = 5;
  rec(&b, method("Upsert"), &up.base);
  Quiver__V1__DescribeCollectionRequest d = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
  d.name = "shop";
  rec(&b, method("DescribeCollection"), &d.base);
  s.collection = "shop";
  s.filter = (char *)good[0];
  rec(&b, method("Search"), &s.base);
  save("rpc", "create-attrs", &b);
  free(b.p);
}

static void rpc_seeds(const char *tmpl) {
  float q[2 * FZ_DIM] = {0.1f, 0.2f, 0.3f, 1, 2, 3, 0, 1, 1, 1, 1, 1, 0, 0, 0, 2};
  buf b = {0};
  const char *cols[] = {"flat", "ivf", "sq"};
  for (int c = 0; c < 3; c++) { /* plain, exact, reranked */
    Quiver__V1__SearchRequest s = QUIVER__V1__SEARCH_REQUEST__INIT;
    s.collection = (char *)cols[c];
    s.queries = q;
    s.n_queries = 2 * FZ_DIM;
    s.k = 4;
    s.nprobe = 2;
    b.n = 0;
    rec(&b, method("Search"), &s.base);
    char name[64];
    snprintf(name, sizeof name, "search-%s", cols[c]);
    save("rpc", name, &b);
    s.exact = 1;
    b.n = 0;
    rec(&b, method("Search"), &s.base);
    snprintf(name, sizeof name, "search-exact-%s", cols[c]);
    save("rpc", name, &b);
    s.exact = 0;
    Quiver__V1__RerankOptions r = QUIVER__V1__RERANK_OPTIONS__INIT;
    float w[3] = {1, 0.5f, -0.25f};
    int64_t deny[2] = {4, 10};
    r.candidates = 16;
    r.refine = 1;
    r.mmr_lambda = 0.5f;
    r.weights = w;
    r.n_weights = c == 0 ? 3 : 0;
    r.deny_ids = deny;
    r.n_deny_ids = 2;
    s.rerank = &r;
    b.n = 0;
    rec(&b, method("Search"), &s.base);
    snprintf(name, sizeof name, "search-rerank-%s", cols[c]);
    save("rpc", name, &b);
  }
  Quiver__V1__CreateCollectionRequest cr = QUIVER__V1__CREATE_COLLECTION_REQUEST__INIT;
  cr.name = "new";
  cr.dim = FZ_DIM;
  cr.metric = QUIVER__V1__METRIC__METRIC_L2;
  cr.index_spec = "IVF2,PQ4x4";
  cr.n_features = 1;
  b.n = 0;
  rec(&b, method("CreateCollection"), &cr.base);
  /* ... then fill it and build it, in one input. */
  Quiver__V1__UpsertRequest up = QUIVER__V1__UPSERT_REQUEST__INIT;
  int64_t ids[64];
  float vec[64 * FZ_DIM], ft[64];
  for (int i = 0; i < 64; i++) {
    ids[i] = 1000 + i;
    ft[i] = (float)i;
    for (int d = 0; d < FZ_DIM; d++)
      vec[i * FZ_DIM + d] = (float)((i * 7 + d * 3) % 11) - 5;
  }
  up.collection = "new";
  up.ids = ids;
  up.n_ids = 64;
  up.vectors = vec;
  up.n_vectors = 64 * FZ_DIM;
  up.features = ft;
  up.n_features = 64;
  rec(&b, method("Upsert"), &up.base);
  Quiver__V1__BuildIndexRequest br = QUIVER__V1__BUILD_INDEX_REQUEST__INIT;
  br.collection = "new";
  br.eval_queries = 8;
  rec(&b, method("BuildIndex"), &br.base);
  save("rpc", "create-upsert-build", &b);

  b.n = 0; /* an upsert stream of two messages, the second naming no collection */
  up.collection = "ivf";
  up.n_ids = 4;
  up.n_vectors = 4 * FZ_DIM;
  up.n_features = 0;
  rec(&b, method("Upsert"), &up.base);
  up.collection = "";
  up.ids = ids + 4;
  up.vectors = vec + 4 * FZ_DIM;
  rec(&b, method("Upsert"), &up.base);
  save("rpc", "upsert-stream", &b);

  b.n = 0;
  Quiver__V1__DeleteRequest del = QUIVER__V1__DELETE_REQUEST__INIT;
  int64_t dids[3] = {1, 4, 99999};
  del.collection = "flat";
  del.ids = dids;
  del.n_ids = 3;
  rec(&b, method("Delete"), &del.base);
  save("rpc", "delete", &b);

  struct {
    const char *m, *name;
  } names[] = {{"DropCollection", "sq"}, {"DescribeCollection", "flat"}};
  for (int i = 0; i < 2; i++) {
    Quiver__V1__DescribeCollectionRequest d = QUIVER__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
    d.name = (char *)names[i].name; /* DropCollectionRequest has the same shape */
    b.n = 0;
    rec(&b, method(names[i].m), &d.base);
    save("rpc", names[i].m, &b);
  }
  Quiver__V1__ListCollectionsRequest l = QUIVER__V1__LIST_COLLECTIONS_REQUEST__INIT;
  b.n = 0;
  rec(&b, method("ListCollections"), &l.base);
  save("rpc", "list", &b);
  b.n = 0;
  const uint8_t health[3] = {(uint8_t)method("Check"), 0, 0};
  put(&b, health, 3);
  save("rpc", "health", &b);

  b.n = 0;
  br.collection = "ivf";
  br.target_recall = 0.9;
  rec(&b, method("BuildIndex"), &br.base);
  save("rpc", "build-ivf", &b);

  /* ImportIndex: the template's ivf directory streamed into a new collection, file by file. */
  b.n = 0;
  Quiver__V1__ImportIndexRequest ir = QUIVER__V1__IMPORT_INDEX_REQUEST__INIT;
  ir.collection = "imported";
  ir.create = 1;
  ir.eval_queries = 8;
  static const char *const files[] = {"v000001/index.faiss", "v000001/vectors.npy",
                                      "v000001/ids.npy", "v000001/MANIFEST.json", "MANIFEST.json"};
  for (int i = 0; i < 5; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/collections/ivf/%s", tmpl, files[i]);
    size_t n;
    uint8_t *d = slurp(path, &n);
    ir.file = (char *)files[i];
    ir.data.data = d;
    ir.data.len = n;
    ir.offset = 0;
    ir.crc32 = (uint32_t)crc32(0L, d, (uInt)n);
    rec(&b, method("ImportIndex") | 0x80, &ir.base);
    ir.collection = "";
    ir.create = 0;
    free(d);
  }
  save("rpc", "import-stream", &b);
  b.n = 0;
  Quiver__V1__ImportIndexRequest sp = QUIVER__V1__IMPORT_INDEX_REQUEST__INIT;
  sp.collection = "ivf";
  sp.server_path = "/nonexistent/ivf";
  rec(&b, method("ImportIndex"), &sp.base);
  save("rpc", "import-server-path", &b);
  free(b.p);
  attr_seeds(q);
}

static void vecfile_seeds(void) {
  char dir[4096], path[4096];
  snprintf(dir, sizeof dir, "%s/vecfile", g_out);
  qv_mkdirs(dir, NULL);
  float x[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  int32_t iv[3 * 2] = {1, 2, 3, 4, 5, 6};
  int64_t ids[3] = {7, 8, 9};
  struct {
    const char *name;
    uint8_t ext;
  } out[] = {{"f32.npy", 0}, {"i64.npy", 0}, {"x.fvecs", 1}, {"x.ivecs", 2}, {"x.bvecs", 3}};
  snprintf(path, sizeof path, "%s/tmp-%s", dir, out[0].name);
  qv_npy_write(path, QV_DTYPE_F32, 3, 4, x, NULL);
  char p1[4096];
  snprintf(p1, sizeof p1, "%s/tmp-%s", dir, out[1].name);
  qv_npy_write(p1, QV_DTYPE_I64, 3, 0, ids, NULL);
  char p2[4096];
  snprintf(p2, sizeof p2, "%s/tmp-%s", dir, out[2].name);
  qv_fvecs_write(p2, 3, 4, x, NULL);
  char p3[4096];
  snprintf(p3, sizeof p3, "%s/tmp-%s", dir, out[3].name);
  qv_ivecs_write(p3, 3, 2, iv, NULL);
  char p4[4096]; /* bvecs: int32 dim, then dim bytes, per row */
  snprintf(p4, sizeof p4, "%s/tmp-%s", dir, out[4].name);
  const uint8_t bv[] = {3, 0, 0, 0, 1, 2, 3, 3, 0, 0, 0, 4, 5, 6};
  fz_write_file(p4, bv, sizeof bv);
  const char *paths[] = {path, p1, p2, p3, p4};
  for (int i = 0; i < 5; i++) {
    size_t n;
    uint8_t *d = slurp(paths[i], &n);
    buf b = {0};
    put(&b, &out[i].ext, 1);
    put(&b, d, n);
    save("vecfile", out[i].name, &b);
    free(d);
    free(b.p);
    unlink(paths[i]);
  }
}

static void dir_seeds(const char *tmpl) {
  const char *cols[] = {"flat", "ivf", "sq"};
  for (int c = 0; c < 3; c++) {
    char base[4096], path[4096], name[64];
    snprintf(base, sizeof base, "%s/collections/%s", tmpl, cols[c]);
    for (int fix = 0; fix < 2; fix++) {
      buf b = {0};
      const uint8_t flags = (uint8_t)(c << 1 | fix);
      put(&b, &flags, 1);
      for (size_t f = 0; f < fz_ncol_files; f++) {
        snprintf(path, sizeof path, "%s/%s", base, fz_col_files[f]);
        size_t n;
        uint8_t *d = slurp(path, &n);
        if (d == NULL)
          continue;
        const uint8_t h[3] = {(uint8_t)f, (uint8_t)(n & 0xff), (uint8_t)(n >> 8)};
        put(&b, h, 3);
        put(&b, d, n);
        free(d);
      }
      snprintf(name, sizeof name, "%s%s", cols[c], fix ? "-fix" : "");
      save("dir", name, &b);
      free(b.p);
    }
    const char *const kinds[][2] = {{"manifest", "MANIFEST.json"}, {"wal", "wal.log"}};
    for (int k = 0; k < 2; k++) {
      snprintf(path, sizeof path, "%s/%s", base, kinds[k][1]);
      size_t n;
      uint8_t *d = slurp(path, &n);
      buf b = {0};
      const uint8_t which = (uint8_t)c;
      put(&b, &which, 1);
      put(&b, d, n);
      save(kinds[k][0], cols[c], &b);
      free(d);
      free(b.p);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_make_seeds OUT_DIR\n");
    return 2;
  }
  g_out = argv[1];
  fz_quiet_logs();
  char *tmpl = fz_mkdtemp("seeds");
  fz_make_template(tmpl);
  rpc_seeds(tmpl);
  vecfile_seeds();
  dir_seeds(tmpl);
  fz_rm_tree(tmpl);
  free(tmpl);
  return 0;
}
