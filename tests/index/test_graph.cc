// Graph indexes (HNSW<M>, HNSW<M>,SQ8) and IVF-PQ fast-scan (IVF<n>,PQ<m>x4fs) in the index
// layer: recall on sift5k against its ground
// truth, efSearch per search (also concurrently, with different values), deletes and
// replacements through tombstones, persistence, tuning by target recall, and what is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/collection.h"

using qvtest::add_all;
using qvtest::Col;
using qvtest::make;
using qvtest::Matrix;
using qvtest::Result;
using qvtest::search;
using qvtest::TempDir;

namespace {

double recall(const Result &r, const Matrix &gt, size_t nq, size_t k) {
  return qvtest::recall_at_k(r.ids, gt, nq, k);
}

} // namespace

TEST(GraphSpec, HnswSpecsAreParsedAndBadOnesRefused) {
  for (const char *ok : {"HNSW4", "HNSW32", "HNSW128", "HNSW16,SQ8"}) {
    Col col;
    make(col, 16, QV_METRIC_L2, ok);
    EXPECT_EQ(qvtest::stats(col.c).nlist, 0u) << ok;
  }
  for (const char *bad : {"HNSW", "HNSW2", "HNSW129", "HNSW32,PQ8", "HNSW32,SQ4", "HNSW32,",
                          "HNSWx", "IDMap,HNSW32"}) {
    qv_collection_opts o = qvtest::opts(16, bad);
    qv_collection *c = nullptr;
    qv_error e{};
    EXPECT_EQ(qv_collection_create(&c, &o, &e), QV_EINVAL) << bad;
    EXPECT_NE(std::strstr(e.msg, bad), nullptr) << e.msg;
    EXPECT_EQ(c, nullptr);
  }
  // FAISS 1.7.3 has no GPU graph index: a GPU collection of one is refused, saying so.
  qv_collection_opts o = qvtest::opts(16, "HNSW32");
  o.device = QV_DEVICE_GPU;
  qv_collection *c = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_collection_create(&c, &o, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "GPU"), nullptr) << e.msg;
  EXPECT_NE(std::strstr(e.msg, "graph"), nullptr) << e.msg;
  // ... and so is moving one there.
  Col col;
  make(col, 16, QV_METRIC_L2, "HNSW8");
  EXPECT_EQ(qv_collection_set_device(col.c, QV_DEVICE_GPU, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "graph"), nullptr) << e.msg;
  EXPECT_NE(std::strstr(qvtest::stats(col.c).placement, "graph"), nullptr);
}

TEST(Graph, Hnsw32ReachesRecallAndEfSearchIsPerSearch) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  auto [base, q, gt] = qvtest::load_set("sift5k");
  Col col;
  make(col, 128, QV_METRIC_L2, "HNSW32");
  add_all(col, base);
  // A graph over full vectors needs no training: searchable as vectors arrive.
  const size_t k = 10;
  Result lo = search(col.c, q, k, 8), hi = search(col.c, q, k, 256);
  const double rlo = recall(lo, gt, q.rows, k), rhi = recall(hi, gt, q.rows, k);
  std::printf("[ recall ] sift5k HNSW32 efSearch 8: %.4f, 256: %.4f\n", rlo, rhi);
  EXPECT_GE(rhi, 0.99);
  EXPECT_LT(rlo, rhi); // the parameter really reaches the search
  EXPECT_NE(lo.ids, hi.ids);
  // Out of range.
  std::vector<float> s(k);
  std::vector<int64_t> ids(k);
  qv_search_params p{k, QV_MAX_EF_SEARCH + 1, 0, nullptr, QV_FILTER_AUTO};
  qv_error e{};
  EXPECT_EQ(qv_collection_search(col.c, q.f.data(), 1, &p, s.data(), ids.data(), &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "efSearch"), nullptr) << e.msg;
  // Searches with different efSearch at once each get their own value's answer.
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&, t] {
      const uint32_t ef = t % 2 ? 8 : 256;
      const Result &want = t % 2 ? lo : hi;
      for (int i = 0; i < 20; i++)
        if (search(col.c, q, k, ef).ids != want.ids)
          wrong++;
    });
  for (auto &t : ts)
    t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Graph, DeletesAndReplacementsHoldThroughTombstonesAndASave) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  auto [base, q, gt] = qvtest::load_set("sift5k");
  TempDir tmp;
  Col col;
  make(col, 128, QV_METRIC_L2, "HNSW16");
  add_all(col, base);
  const size_t k = 10;
  Result before = search(col.c, q, k, 512);
  // Delete every query's best answer, and move item 7 onto query 0.
  std::vector<int64_t> gone;
  for (size_t i = 0; i < q.rows; i++)
    if (before.ids[i * k] != 7)
      gone.push_back(before.ids[i * k]);
  std::sort(gone.begin(), gone.end());
  gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
  qv_error e{};
  size_t deleted = 0;
  ASSERT_EQ(qv_collection_delete(col.c, gone.size(), gone.data(), &deleted, &e), QV_OK) << e.msg;
  EXPECT_EQ(deleted, gone.size());
  const int64_t seven = 7;
  ASSERT_EQ(qv_collection_add(col.c, 1, &seven, q.f.data(), &e), QV_OK) << e.msg;
  EXPECT_GT(qvtest::stats(col.c).tombstones, 0u);
  auto check = [&](const char *when) {
    SCOPED_TRACE(when);
    Result r = search(col.c, q, k, 512);
    for (size_t i = 0; i < q.rows * k; i++)
      EXPECT_FALSE(std::binary_search(gone.begin(), gone.end(), r.ids[i])) << r.ids[i];
    EXPECT_EQ(r.ids[0], 7);
    EXPECT_EQ(r.scores[0], 0.0f);
    EXPECT_EQ(std::count(r.ids.begin(), r.ids.begin() + k, 7), 1); // once, though stale too
    // Against exact search over what is stored now.
    Result x = search(col.c, q, k, 0, true);
    const double rx = qvtest::recall_at_k(r.ids, Matrix{q.rows, k, {}, x.ids}, q.rows, k);
    std::printf("[ recall ] HNSW16 efSearch 512 against exact search, %s: %.4f\n", when, rx);
    EXPECT_GE(rx, 0.9); // (a graph built by several threads differs run to run)
  };
  check("with tombstones");
  ASSERT_EQ(qv_collection_save(col.c, tmp.sub("g").c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(qvtest::stats(col.c).tombstones, 0u); // folded: the graph re-made from the store
  check("after the save's fold");
  Col again;
  ASSERT_EQ(qv_collection_open(&again.c, tmp.sub("g").c_str(), &e), QV_OK) << e.msg;
  qv_collection *keep = col.c;
  col.c = again.c;
  check("opened from disk");
  col.c = keep;
  EXPECT_EQ(qvtest::stats(again.c).count, base.rows - gone.size());
}

TEST(Graph, SqCodesNeedABuildAndTargetRecallTunesEfSearch) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  auto [base, q, gt] = qvtest::load_set("sift5k");
  Col col;
  make(col, 128, QV_METRIC_L2, "HNSW16,SQ8");
  add_all(col, base);
  std::vector<float> s(10);
  std::vector<int64_t> ids(10);
  qv_search_params p{10, 0, 0, nullptr, QV_FILTER_AUTO};
  qv_error e{};
  EXPECT_EQ(qv_collection_search(col.c, q.f.data(), 1, &p, s.data(), ids.data(), &e),
            QV_EPRECONDITION);
  qv_build_opts bo;
  qv_build_opts_init(&bo);
  bo.target_recall = 0.9;
  qv_build_report rep;
  ASSERT_EQ(qv_collection_build_ex(col.c, &bo, nullptr, nullptr, &rep, &e), QV_OK) << e.msg;
  std::printf("[ tune ] HNSW16,SQ8 target 0.9: efSearch %u, recall %.4f (reached %d)\n",
              rep.tuned_nprobe, rep.recall, rep.target_reached);
  EXPECT_TRUE(rep.target_reached);
  EXPECT_GE(rep.recall, 0.9);
  EXPECT_GT(rep.tuned_nprobe, 0u);
  EXPECT_EQ(qvtest::stats(col.c).default_nprobe, rep.tuned_nprobe);
  EXPECT_EQ(rep.recall_nprobe, rep.tuned_nprobe);
  // (The sample's queries are stored vectors, easier than sift5k's own queries, which need more.)
  Result r = search(col.c, q, 10, 512);
  EXPECT_GE(recall(r, gt, q.rows, 10), 0.9);
  // A recall floor the graph misses at its efSearch says which parameter to raise.
  bo.target_recall = 0;
  bo.recall_floor = 1.0;
  Col low;
  make(low, 128, QV_METRIC_L2, "HNSW4,SQ8", 8);
  add_all(low, base);
  EXPECT_EQ(qv_collection_build_ex(low.c, &bo, nullptr, nullptr, &rep, &e), QV_EPRECONDITION);
  EXPECT_NE(std::strstr(e.msg, "efSearch"), nullptr) << e.msg;
}

TEST(FastScan, IvfPqFastScanTakesNprobePerSearchAndTombstones) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  auto [base, q, gt] = qvtest::load_set("sift5k");
  // Spec checks: 4-bit codes only, m divides dim.
  for (const char *bad : {"IVF64,PQ16x8fs", "IVF64,PQ16fs", "IVF64,PQ7x4fs", "IVF64,PQ16x4fsr"}) {
    qv_collection_opts o = qvtest::opts(128, bad);
    qv_collection *c = nullptr;
    qv_error e{};
    EXPECT_EQ(qv_collection_create(&c, &o, &e), QV_EINVAL) << bad;
  }
  qv_collection_opts g = qvtest::opts(128, "IVF64,PQ32x4fs");
  g.device = QV_DEVICE_GPU;
  qv_collection *c = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_collection_create(&c, &g, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "fast-scan"), nullptr) << e.msg;
  TempDir tmp;
  Col col;
  qvtest::make_built(col, base, QV_METRIC_L2, "IVF64,PQ32x4fs");
  const size_t k = 10;
  Result lo = search(col.c, q, k, 1), hi = search(col.c, q, k, 64);
  const double rlo = recall(lo, gt, q.rows, k), rhi = recall(hi, gt, q.rows, k);
  std::printf("[ recall ] sift5k IVF64,PQ32x4fs nprobe 1: %.4f, 64: %.4f\n", rlo, rhi);
  EXPECT_LT(rlo, rhi);
  EXPECT_GE(rhi, 0.3); // 16 bytes of 4-bit codes per vector: lossy; the rerank's refine lifts it
  // Concurrent searches at two nprobes each get their own answer.
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 10; i++)
        if (search(col.c, q, k, t % 2 ? 1 : 64).ids != (t % 2 ? lo : hi).ids)
          wrong++;
    });
  for (auto &t : ts)
    t.join();
  EXPECT_EQ(wrong.load(), 0);
  // Deletes are tombstones (no removal from block lists), folded by a save; reopened the same.
  std::vector<int64_t> gone(hi.ids.begin(), hi.ids.begin() + 50);
  std::sort(gone.begin(), gone.end());
  gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
  ASSERT_EQ(qv_collection_delete(col.c, gone.size(), gone.data(), nullptr, &e), QV_OK) << e.msg;
  EXPECT_EQ(qvtest::stats(col.c).tombstones, gone.size());
  auto none_gone = [&](const Result &r) {
    for (int64_t id : r.ids)
      if (std::binary_search(gone.begin(), gone.end(), id))
        return false;
    return true;
  };
  Result t1 = search(col.c, q, k, 64);
  EXPECT_TRUE(none_gone(t1));
  ASSERT_EQ(qv_collection_save(col.c, tmp.sub("fs").c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(qvtest::stats(col.c).tombstones, 0u);
  Result t2 = search(col.c, q, k, 64);
  EXPECT_TRUE(none_gone(t2));
  EXPECT_EQ(t2.ids, t1.ids); // the fold kept the codebooks: the same codes, the same answers
  Col again;
  ASSERT_EQ(qv_collection_open(&again.c, tmp.sub("fs").c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(search(again.c, q, k, 64).ids, t1.ids);
  // A target recall tunes the default nprobe.
  qv_build_opts bo;
  qv_build_opts_init(&bo);
  bo.target_recall = 0.5;
  qv_build_report rep;
  ASSERT_EQ(qv_collection_build_ex(again.c, &bo, nullptr, nullptr, &rep, &e), QV_OK) << e.msg;
  EXPECT_TRUE(rep.target_reached);
  EXPECT_GE(rep.recall, 0.5);
  EXPECT_EQ(qvtest::stats(again.c).default_nprobe, rep.tuned_nprobe);
}

TEST(Graph, InnerProductAndCosineGraphsReachTheirGroundTruth) {
  QV_REQUIRE_DATA("deep10k/deep10k_groundtruth_ip.ivecs");
  auto [base, q, gt] = qvtest::load_set("deep10k", "groundtruth_ip");
  for (qv_metric m : {QV_METRIC_IP, QV_METRIC_COSINE}) {
    SCOPED_TRACE(qv_metric_name(m));
    Col col;
    make(col, base.cols, m, "HNSW32");
    add_all(col, base);
    Result r = search(col.c, q, 10, 128);
    Result x = search(col.c, q, 10, 0, true);
    const double rx = qvtest::recall_at_k(r.ids, Matrix{q.rows, 10, {}, x.ids}, q.rows, 10);
    std::printf("[ recall ] deep10k HNSW32 %s efSearch 128 against exact search: %.4f\n",
                qv_metric_name(m), rx);
    EXPECT_GE(rx, 0.95);
    // Similarities, best first (descending), as exact search scores them.
    for (size_t i = 0; i < q.rows; i++)
      for (size_t j = 1; j < 10; j++)
        ASSERT_GE(r.scores[i * 10 + j - 1], r.scores[i * 10 + j]) << i;
    if (m == QV_METRIC_IP) {
      EXPECT_GE(recall(r, gt, q.rows, 10), 0.95);
    }
  }
}
