// Fetch by ids (Get) and item-to-item search (SearchRequest.query_ids) through the real quiverd:
// the C client, the CLI, the bad inputs a client can send, and what survives a kill -9.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/server.h"

using qvtest::Client;
using qvtest::Matrix;
using qvtest::raw_call;

namespace {

// Protobuf wire pieces for raw calls (what the C client never sends).
std::string varint(uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s += char((v & 0x7f) | 0x80);
    v >>= 7;
  }
  return s + char(v);
}
std::string field_str(int num, const std::string &v) {
  return varint(uint64_t(num) << 3 | 2) + varint(v.size()) + v;
}
std::string field_u32(int num, uint32_t v) {
  return varint(uint64_t(num) << 3) + varint(v);
}
std::string packed_i64(int num, const std::vector<int64_t> &v) {
  std::string body;
  for (int64_t x : v)
    body += varint(uint64_t(x));
  return field_str(num, body);
}

class Items : public qvtest::Sift5kServerTest {
protected:
  qvtest::GrpcScope grpc;
  static constexpr size_t kRows = 1000, kF = 2;
  std::vector<float> feats;
  void SetUp() override {
    Sift5kServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    ASSERT_TRUE(srv.start(tmp.sub("data")));
    feats.resize(kRows * kF);
    for (size_t i = 0; i < kRows * kF; i++)
      feats[i] = float(i % 13) * 0.5f;
  }
  // `name`: the first kRows sift5k rows with ids 0.. and kF features each, IVF16 built.
  void load(qv_client *c, const char *name) {
    qv_create_opts o{};
    o.name = name;
    o.dim = 128;
    o.metric = QV_METRIC_L2;
    o.index_spec = "IVF16,Flat";
    o.n_features = kF;
    qv_error e{};
    ASSERT_EQ(qv_client_create(c, &o, nullptr, &e), QV_OK) << e.msg;
    std::vector<int64_t> ids = qvtest::seq_ids(kRows, 0);
    ASSERT_EQ(qv_client_upsert_features(c, name, kRows, 128, ids.data(), base.f.data(),
                                        feats.data(), kF, 0, nullptr, nullptr, nullptr, &e),
              QV_OK)
        << e.msg;
    ASSERT_EQ(qv_client_build(c, name, 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  }
  void expect_row(const qv_client_items &it, size_t at, int64_t id) {
    ASSERT_LT(at, it.n);
    EXPECT_EQ(it.ids[at], id);
    if (it.vectors != nullptr) {
      EXPECT_EQ(0, std::memcmp(it.vectors + at * 128, base.f.data() + id * 128, 128 * 4)) << id;
    }
    if (it.features != nullptr) {
      EXPECT_EQ(0, std::memcmp(it.features + at * kF, feats.data() + id * kF, kF * 4)) << id;
    }
  }
};

} // namespace

TEST_F(Items, GetReturnsTheStoredRowsWithAFieldMaskAndListsTheMissingIds) {
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(load(cl.c, "items"));
  qv_error e{};
  qv_client_items it;
  const int64_t ask[] = {3, 999999, 7, 3, 999};
  ASSERT_EQ(qv_client_get(cl.c, "items", 5, ask, 0, &it, &e), QV_OK) << e.msg;
  ASSERT_EQ(it.n, 4u);
  EXPECT_EQ(it.dim, 128u);
  EXPECT_EQ(it.n_features, kF);
  ASSERT_NE(it.vectors, nullptr);
  ASSERT_NE(it.features, nullptr);
  expect_row(it, 0, 3);
  expect_row(it, 1, 7);
  expect_row(it, 2, 3); // a repeat is answered again
  expect_row(it, 3, 999);
  ASSERT_EQ(it.n_missing, 1u);
  EXPECT_EQ(it.missing_ids[0], 999999);
  qv_client_items_free(&it);
  // The mask: only what was asked for comes back.
  ASSERT_EQ(qv_client_get(cl.c, "items", 2, ask, QV_CLIENT_GET_VECTOR, &it, &e), QV_OK);
  EXPECT_NE(it.vectors, nullptr);
  EXPECT_EQ(it.features, nullptr);
  qv_client_items_free(&it);
  ASSERT_EQ(qv_client_get(cl.c, "items", 2, ask, QV_CLIENT_GET_FEATURES, &it, &e), QV_OK);
  EXPECT_EQ(it.vectors, nullptr);
  ASSERT_NE(it.features, nullptr);
  expect_row(it, 0, 3);
  qv_client_items_free(&it);
  // A delete and an upsert show at once.
  uint64_t deleted = 0;
  ASSERT_EQ(qv_client_delete(cl.c, "items", 1, &ask[2], &deleted, nullptr, &e), QV_OK);
  const int64_t moved = 3;
  std::vector<float> f2 = {42.0f, -1.0f};
  ASSERT_EQ(qv_client_upsert_features(cl.c, "items", 1, 128, &moved, base.f.data() + 4000 * 128,
                                      f2.data(), kF, 0, nullptr, nullptr, nullptr, &e),
            QV_OK);
  ASSERT_EQ(qv_client_get(cl.c, "items", 3, ask, 0, &it, &e), QV_OK);
  ASSERT_EQ(it.n, 1u);
  EXPECT_EQ(it.ids[0], 3);
  EXPECT_EQ(0, std::memcmp(it.vectors, base.f.data() + 4000 * 128, 128 * 4));
  EXPECT_EQ(it.features[0], 42.0f);
  EXPECT_EQ(it.n_missing, 2u); // 999999 and the deleted 7
  qv_client_items_free(&it);
}

TEST_F(Items, GetRefusesBadInputWithTheRightCode) {
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(load(cl.c, "items"));
  qv_error e{};
  qv_client_items it;
  const int64_t neg[] = {1, -5};
  EXPECT_EQ(qv_client_get(cl.c, "items", 2, neg, 0, &it, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "ids[1] = -5 is negative"), nullptr) << e.msg;
  EXPECT_EQ(qv_client_get(cl.c, "items", 0, neg, 0, &it, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "no ids"), nullptr) << e.msg;
  EXPECT_EQ(qv_client_get(cl.c, "nope", 1, neg, 0, &it, &e), QV_ENOTFOUND);
  // An unknown field name, and no collection: raw calls.
  std::string det;
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Get",
                     field_str(1, "items") + packed_i64(2, {1}) + field_str(3, "colour"), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("'colour' is not a field"), std::string::npos) << det;
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Get", packed_i64(2, {1}), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("collection is required"), std::string::npos) << det;
  // Ids of the wrong type (32-bit floats where int64s belong): the message does not parse.
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Get",
                     field_str(1, "items") + varint(2 << 3 | 5) + std::string("\0\0\x80?", 4),
                     &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("not a valid"), std::string::npos) << det;
  // More ids than --max-queries.
  std::vector<int64_t> many(20000, 1);
  EXPECT_EQ(qv_client_get(cl.c, "items", many.size(), many.data(), 0, &it, &e), QV_ENOMEM);
  EXPECT_NE(std::strstr(e.msg, "split"), nullptr) << e.msg;
}

TEST_F(Items, ItemToItemSearchLeavesTheItemOutAndAnswersUnknownIdsPerQuery) {
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(load(cl.c, "items"));
  qv_error e{};
  const size_t k = 10;
  const int64_t qids[] = {0, 5, 123456, 42};
  const size_t n = 4;
  std::vector<float> sc(n * k);
  std::vector<int64_t> ids(n * k);
  uint8_t unknown[4] = {9, 9, 9, 9};
  qv_client_search_opts o;
  qv_client_search_opts_init(&o);
  o.exact = 1;
  o.query_ids = qids;
  o.n_query_ids = n;
  o.unknown = unknown;
  ASSERT_EQ(qv_client_search_ex(cl.c, "items", nullptr, n, 0, k, &o, sc.data(), ids.data(), nullptr,
                                0, nullptr, &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(unknown[0], 0);
  EXPECT_EQ(unknown[1], 0);
  EXPECT_EQ(unknown[2], 1);
  EXPECT_EQ(unknown[3], 0);
  for (size_t j = 0; j < k; j++) {
    EXPECT_EQ(ids[2 * k + j], -1);
    EXPECT_TRUE(std::isinf(sc[2 * k + j]));
  }
  // Each known row is the exact search of the item's stored vector, its own id left out.
  for (size_t i : {0u, 1u, 3u}) {
    std::vector<float> s2(k + 1);
    std::vector<int64_t> i2(k + 1);
    ASSERT_EQ(qv_client_search(cl.c, "items", base.f.data() + qids[i] * 128, 1, 128, k + 1, 0, 1,
                               s2.data(), i2.data(), &e),
              QV_OK);
    std::vector<int64_t> want;
    for (int64_t x : i2)
      if (x != qids[i])
        want.push_back(x);
    want.resize(k);
    EXPECT_EQ(std::vector<int64_t>(ids.begin() + i * k, ids.begin() + (i + 1) * k), want) << i;
    EXPECT_EQ(std::count(ids.begin() + i * k, ids.begin() + (i + 1) * k, qids[i]), 0);
  }
  // include_self: the item is its own nearest neighbour (distance 0).
  o.include_self = 1;
  ASSERT_EQ(qv_client_search_ex(cl.c, "items", nullptr, n, 0, k, &o, sc.data(), ids.data(), nullptr,
                                0, nullptr, &e),
            QV_OK);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(sc[0], 0.0f);
  EXPECT_EQ(ids[3 * k], 42);
  // Through the index (IVF, default nprobe) and the rerank stage with candidates == k: the
  // stage keeps room for the item itself.
  o.include_self = 0;
  o.exact = 0;
  qv_client_rerank rr{};
  rr.candidates = k;
  rr.refine = 1;
  o.rerank = &rr;
  ASSERT_EQ(qv_client_search_ex(cl.c, "items", nullptr, n, 0, k, &o, sc.data(), ids.data(), nullptr,
                                0, nullptr, &e),
            QV_OK)
      << e.msg;
  for (size_t i : {0u, 1u, 3u}) {
    EXPECT_EQ(std::count(ids.begin() + i * k, ids.begin() + (i + 1) * k, qids[i]), 0) << i;
    EXPECT_NE(ids[i * k + k - 1], -1) << i;
  }
  o.rerank = nullptr;
  // Every id unknown: NOT_FOUND; a negative id: INVALID_ARGUMENT.
  const int64_t none[] = {77777, 88888};
  o.query_ids = none;
  o.n_query_ids = 2;
  o.unknown = nullptr;
  EXPECT_EQ(qv_client_search_ex(cl.c, "items", nullptr, 2, 0, k, &o, sc.data(), ids.data(), nullptr,
                                0, nullptr, &e),
            QV_ENOTFOUND);
  EXPECT_NE(std::strstr(e.msg, "none of the 2 query_ids"), nullptr) << e.msg;
  const int64_t neg[] = {1, -2};
  o.query_ids = neg;
  EXPECT_EQ(qv_client_search_ex(cl.c, "items", nullptr, 2, 0, k, &o, sc.data(), ids.data(), nullptr,
                                0, nullptr, &e),
            QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "query_ids[1] = -2 is negative"), nullptr) << e.msg;
  // Queries and query_ids at once; k at the server's limit leaves no room for the item.
  std::string det,
      q1 = field_str(2, std::string(reinterpret_cast<const char *>(base.f.data()), 512));
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Search",
                     field_str(1, "items") + q1 + field_u32(4, 10) + packed_i64(7, {1}), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("both queries and query_ids"), std::string::npos) << det;
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Search",
                     field_str(1, "items") + field_u32(4, 1024) + packed_i64(7, {1}), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("own id"), std::string::npos) << det;
  EXPECT_EQ(
      raw_call(srv.target(), "/quiver.v1.Retrieval/Search",
               field_str(1, "items") + field_u32(4, 1024) + packed_i64(7, {1}) + field_u32(8, 1),
               &det),
      GRPC_STATUS_OK)
      << det;
}

TEST_F(Items, RowsAndFeaturesSurviveAKill9) {
  {
    Client cl(srv.target());
    ASSERT_NO_FATAL_FAILURE(load(cl.c, "items"));
    // Written after the build's save: only in the write-ahead log at the kill.
    const int64_t id = 5000;
    std::vector<float> f2 = {7.0f, 8.0f};
    qv_error e{};
    ASSERT_EQ(qv_client_upsert_features(cl.c, "items", 1, 128, &id, base.f.data() + 4321 * 128,
                                        f2.data(), kF, 0, nullptr, nullptr, nullptr, &e),
              QV_OK);
  }
  srv.stop(SIGKILL);
  ASSERT_TRUE(srv.start(srv.data_dir));
  Client cl(srv.target());
  qv_error e{};
  qv_client_items it;
  const int64_t ask[] = {5000, 17};
  ASSERT_EQ(qv_client_get(cl.c, "items", 2, ask, 0, &it, &e), QV_OK) << e.msg;
  ASSERT_EQ(it.n, 2u);
  EXPECT_EQ(0, std::memcmp(it.vectors, base.f.data() + 4321 * 128, 128 * 4));
  EXPECT_EQ(it.features[0], 7.0f);
  EXPECT_EQ(it.features[1], 8.0f);
  expect_row(it, 1, 17);
  qv_client_items_free(&it);
}

namespace {
qvtest::CmdResult quiver(const std::string &server, const std::string &args) {
  return qvtest::run_command(std::string(QUIVER_BIN_DIR) + "/quiver --server " + server + " " +
                             args);
}
} // namespace

TEST_F(Items, TheCliGetsItemsAndSearchesByIds) {
  {
    Client cl(srv.target());
    ASSERT_NO_FATAL_FAILURE(load(cl.c, "items"));
  }
  const std::string s = srv.target();
  auto r = quiver(s, "get items --ids 2,424242 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"id\": 2, \"vector\": ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"features\": [2, 2.5]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"missing_ids\": [424242]"), std::string::npos) << r.out;
  r = quiver(s, "get items --ids 2 --fields features");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("1 of 1 ids found"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("vector"), std::string::npos) << r.out;
  r = quiver(s, "get items --ids 2 --fields colour");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "get items --ids 1,-3"); // refused before any call
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "get nope --ids 1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("NOT_FOUND"), std::string::npos) << r.out;
  r = quiver(s, "search items --ids 0,5,31337 --k 5 --exact");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("1 of 3 ids are not in items"), std::string::npos) << r.out;
  r = quiver(s, "search items --ids 31337");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("NOT_FOUND"), std::string::npos) << r.out;
  r = quiver(s, "search items --include-self --queries x.fvecs");
  EXPECT_EQ(r.code, 2) << r.out;
}

// An HNSW collection through quiverd: efSearch per request and as the collection's default (tuned
// by a build's target recall), the wrong parameter or a GPU refused, and a restart.
TEST_F(Items, AnHnswCollectionServesWithEfSearchAndRefusesWhatDoesNotApply) {
  Client cl(srv.target());
  qv_error e{};
  qv_create_opts o{};
  o.name = "graph";
  o.dim = 128;
  o.metric = QV_METRIC_L2;
  o.index_spec = "HNSW32";
  o.default_ef_search = 24;
  qv_collection_info info;
  ASSERT_EQ(qv_client_create(cl.c, &o, &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.default_ef_search, 24u);
  EXPECT_EQ(info.default_nprobe, 0u);
  EXPECT_NE(std::strstr(info.placement, "graph"), nullptr) << info.placement;
  ASSERT_NO_FATAL_FAILURE(qvtest::upsert_all(cl.c, "graph", base));
  // Searchable at once (no training); efSearch 256 reaches what 8 does not.
  Matrix gt = qvtest::load_i64("sift5k/sift5k_groundtruth.ivecs");
  const size_t k = 10, nq = q.rows;
  std::vector<float> sc(nq * k);
  std::vector<int64_t> lo(nq * k), hi(nq * k);
  qv_client_search_opts so;
  qv_client_search_opts_init(&so);
  so.ef_search = 8;
  ASSERT_EQ(qv_client_search_ex(cl.c, "graph", q.f.data(), nq, 128, k, &so, sc.data(), lo.data(),
                                nullptr, 0, nullptr, &e),
            QV_OK)
      << e.msg;
  so.ef_search = 256;
  ASSERT_EQ(qv_client_search_ex(cl.c, "graph", q.f.data(), nq, 128, k, &so, sc.data(), hi.data(),
                                nullptr, 0, nullptr, &e),
            QV_OK)
      << e.msg;
  EXPECT_GE(qvtest::recall_at_k(hi, gt, nq, k), 0.99);
  EXPECT_LT(qvtest::recall_at_k(lo, gt, nq, k), qvtest::recall_at_k(hi, gt, nq, k));
  // nprobe on a graph, ef_search on IVF, default_nprobe for a graph, a GPU graph: refused.
  so.ef_search = 0;
  so.nprobe = 8;
  EXPECT_EQ(qv_client_search_ex(cl.c, "graph", q.f.data(), 1, 128, k, &so, sc.data(), lo.data(),
                                nullptr, 0, nullptr, &e),
            QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "send ef_search"), nullptr) << e.msg;
  ASSERT_NO_FATAL_FAILURE(load(cl.c, "items"));
  so.nprobe = 0;
  so.ef_search = 8;
  EXPECT_EQ(qv_client_search_ex(cl.c, "items", q.f.data(), 1, 128, k, &so, sc.data(), lo.data(),
                                nullptr, 0, nullptr, &e),
            QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "send nprobe"), nullptr) << e.msg;
  qv_create_opts bad = o;
  bad.name = "graph2";
  bad.default_ef_search = 0;
  bad.default_nprobe = 8;
  EXPECT_EQ(qv_client_create(cl.c, &bad, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "default_ef_search"), nullptr) << e.msg;
  bad.default_nprobe = 0;
  bad.device = "gpu";
  EXPECT_EQ(qv_client_create(cl.c, &bad, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "GPU"), nullptr) << e.msg;
  // A build with a target recall tunes the default efSearch; a delete holds through a restart.
  qv_client_build_opts bo{};
  bo.target_recall = 0.95;
  ASSERT_EQ(qv_client_build_ex(cl.c, "graph", &bo, 0, nullptr, nullptr, &info, nullptr, &e), QV_OK)
      << e.msg;
  EXPECT_GT(info.default_ef_search, 0u);
  EXPECT_EQ(info.build_recall_nprobe, info.default_ef_search);
  EXPECT_GE(info.build_recall, 0.95);
  const int64_t gone = hi[0];
  ASSERT_EQ(qv_client_delete(cl.c, "graph", 1, &gone, nullptr, nullptr, &e), QV_OK);
  srv.stop(SIGKILL);
  ASSERT_TRUE(srv.start(srv.data_dir));
  Client again(srv.target());
  qv_collection_info after;
  ASSERT_EQ(qv_client_describe(again.c, "graph", &after, &e), QV_OK) << e.msg;
  EXPECT_EQ(after.default_ef_search, info.default_ef_search);
  EXPECT_EQ(after.count, base.rows - 1);
  so.ef_search = 256;
  ASSERT_EQ(qv_client_search_ex(again.c, "graph", q.f.data(), 1, 128, k, &so, sc.data(), lo.data(),
                                nullptr, 0, nullptr, &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(std::count(lo.begin(), lo.begin() + k, gone), 0);
}
