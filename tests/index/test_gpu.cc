// GPU residency (label gpu): a collection copied to a GPU answers like its CPU index, keeps doing
// so through upserts and deletes (tombstones), and respects the memory budget. Skips without a
// GPU build or device; tests/index/test_placement.cc is its CPU twin.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/collection.h"
#include "quiver/gpu.h"

using qvtest::Col;
using qvtest::Matrix;
using qvtest::search;
using qvtest::stats;

namespace {

class Gpu : public ::testing::Test {
protected:
  void SetUp() override {
    if (!qv_gpu_compiled())
      GTEST_SKIP() << "this build links the CPU-only FAISS: configure with "
                      "-DQUIVER_FAISS_PREFIX=$(scripts/bootstrap.sh --print-prefix --with-gpu)";
    qv_gpu_opts o;
    qv_gpu_opts_init(&o);
    qv_error e{};
    ASSERT_EQ(qv_gpu_init(&o, &e), QV_OK) << e.msg;
    if (qv_gpu_devices() == 0)
      GTEST_SKIP() << "no CUDA device is present";
  }
  void TearDown() override {
    qv_gpu_shutdown();
  }
};

// GPU-resident creation options.
qv_collection_opts gpu_opts(size_t dim, const char *spec) {
  qv_collection_opts o = qvtest::opts(dim, spec);
  o.device = QV_DEVICE_GPU;
  return o;
}

double overlap(const std::vector<int64_t> &a, const std::vector<int64_t> &b, size_t nq, size_t k) {
  size_t hit = 0;
  for (size_t i = 0; i < nq; i++)
    for (size_t j = 0; j < k; j++)
      hit += std::find(b.begin() + i * k, b.begin() + (i + 1) * k, a[i * k + j]) !=
             b.begin() + (i + 1) * k;
  return double(hit) / double(nq * k);
}

} // namespace

TEST_F(Gpu, SearchAgreesWithTheCpuIndexForEverySpec) {
  QV_REQUIRE_DATA("deep10k/deep10k_base.fvecs");
  Matrix base = qvtest::load_f32("deep10k/deep10k_base.fvecs");
  Matrix q = qvtest::load_f32("deep10k/deep10k_query.fvecs");
  for (const char *spec : {"Flat", "IVF100,Flat", "IVF100,SQ8", "IVF100,PQ16"}) {
    SCOPED_TRACE(spec);
    Col col;
    qv_collection_opts o = gpu_opts(96, spec);
    qv_error e{};
    ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
    ASSERT_NO_FATAL_FAILURE(qvtest::add_all(col, base));
    ASSERT_NO_FATAL_FAILURE(qvtest::build(col));
    qv_collection_stats s = stats(col.c);
    ASSERT_GE(s.gpu, 0) << "not on the GPU: " << s.placement;
    EXPECT_GT(s.device_bytes, 0u);
    for (uint32_t nprobe : {1u, 16u, 100u}) {
      std::vector<int64_t> g = search(col.c, q, 10, nprobe).ids;
      ASSERT_EQ(qv_collection_set_device(col.c, QV_DEVICE_CPU, &e), QV_OK) << e.msg;
      std::vector<int64_t> c = search(col.c, q, 10, nprobe).ids;
      ASSERT_EQ(qv_collection_set_device(col.c, QV_DEVICE_GPU, &e), QV_OK) << e.msg;
      double ov = overlap(g, c, q.rows, 10);
      std::printf("[ gpu ] deep10k %s nprobe=%u top-10 overlap GPU vs CPU %.4f\n", spec, nprobe,
                  ov);
      EXPECT_GE(ov, 0.99);
    }
    EXPECT_EQ(stats(col.c).gpu_fallbacks, 0u);
  }
}

TEST_F(Gpu, UpsertsAndDeletesReachTheGpuCopy) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  Matrix base = qvtest::load_f32("sift5k/sift5k_base.fvecs");
  Matrix q = qvtest::load_f32("sift5k/sift5k_query.fvecs");
  Col col;
  qv_collection_opts o = gpu_opts(128, "IVF32,Flat");
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK);
  std::vector<int64_t> ids = qvtest::seq_ids(base.rows);
  ASSERT_EQ(qv_collection_add(col.c, base.rows - 100, ids.data(), base.f.data(), &e), QV_OK);
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  // After the build: 100 more (added to the GPU copy), delete each query's best (tombstones),
  // and move 20 ids next to the first queries (replacements: stale entries on the GPU).
  ASSERT_EQ(qv_collection_add(col.c, 100, ids.data() + base.rows - 100,
                              base.f.data() + (base.rows - 100) * 128, &e),
            QV_OK);
  std::vector<int64_t> best = search(col.c, q, 1, 32).ids;
  std::sort(best.begin(), best.end());
  best.erase(std::unique(best.begin(), best.end()), best.end());
  ASSERT_EQ(qv_collection_delete(col.c, best.size(), best.data(), nullptr, &e), QV_OK);
  std::vector<int64_t> moved;
  std::vector<float> moved_vecs;
  for (int64_t id = 3000; id < 3020; id++) {
    moved.push_back(id);
    for (size_t t = 0; t < 128; t++)
      moved_vecs.push_back(q.f[size_t(id - 3000) * 128 + t] + 1.0f);
  }
  ASSERT_EQ(qv_collection_add(col.c, moved.size(), moved.data(), moved_vecs.data(), &e), QV_OK);
  auto check = [&](const char *when) {
    SCOPED_TRACE(when);
    std::vector<int64_t> g = search(col.c, q, 10, 32).ids;
    for (int64_t id : g) {
      if (std::find(moved.begin(), moved.end(), id) == moved.end()) {
        EXPECT_EQ(std::find(best.begin(), best.end(), id), best.end()) << id << " was deleted";
      }
    }
    for (size_t i = 0; i < moved.size(); i++) // each moved id is its query's nearest now
      EXPECT_EQ(g[i * 10], moved[i]) << "query " << i;
    std::vector<float> sc(q.rows * 10);
    std::vector<int64_t> ex(q.rows * 10);
    qv_search_params p{10, 0, 0, nullptr, QV_FILTER_AUTO};
    ASSERT_EQ(qv_collection_search_exact(col.c, q.f.data(), q.rows, &p, sc.data(), ex.data(), &e),
              QV_OK);
    EXPECT_GE(overlap(g, ex, q.rows, 10), 0.99); // nprobe = nlist: exact up to ties
  };
  qv_collection_stats s = stats(col.c);
  size_t moved_live = 0; // a moved id that was deleted just before adds no stale entry
  for (int64_t id : moved)
    moved_live += !std::binary_search(best.begin(), best.end(), id);
  EXPECT_EQ(s.tombstones, best.size() + moved_live);
  check("with tombstones");
  // A save folds them and replaces the GPU copy by a clean one.
  qvtest::TempDir tmp;
  ASSERT_EQ(qv_collection_save(col.c, tmp.sub("c").c_str(), &e), QV_OK) << e.msg;
  s = stats(col.c);
  EXPECT_EQ(s.tombstones, 0u);
  EXPECT_GE(s.gpu, 0) << s.placement;
  check("after the fold");
  EXPECT_EQ(stats(col.c).gpu_fallbacks, 0u) << "the GPU copy did not answer every search";
}

TEST_F(Gpu, OverBudgetFallsBackOrIsRefused) {
  qv_gpu_shutdown();
  qv_gpu_opts o;
  qv_gpu_opts_init(&o);
  o.budget_bytes = 1 << 20; // 1 MiB: nothing fits
  qv_error e{};
  ASSERT_EQ(qv_gpu_init(&o, &e), QV_OK) << e.msg;
  std::vector<float> x(20000 * 32);
  std::vector<int64_t> ids(20000);
  for (size_t i = 0; i < ids.size(); i++) {
    ids[i] = int64_t(i);
    for (int t = 0; t < 32; t++)
      x[i * 32 + t] = float((i * 7 + t * 3) % 101);
  }
  qv_collection_opts co = gpu_opts(32, "IVF16,Flat");
  {
    Col col;
    ASSERT_EQ(qv_collection_create(&col.c, &co, &e), QV_OK);
    ASSERT_EQ(qv_collection_add(col.c, ids.size(), ids.data(), x.data(), &e), QV_OK);
    ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
    qv_collection_stats s = stats(col.c);
    EXPECT_EQ(s.gpu, -1);
    EXPECT_NE(std::string(s.placement).find("budget"), std::string::npos) << s.placement;
  }
  qv_gpu_shutdown();
  o.fallback_cpu = 0;
  ASSERT_EQ(qv_gpu_init(&o, &e), QV_OK);
  Col col;
  ASSERT_EQ(qv_collection_create(&col.c, &co, &e), QV_OK);
  ASSERT_EQ(qv_collection_add(col.c, ids.size(), ids.data(), x.data(), &e), QV_OK);
  EXPECT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_ENOMEM);
  EXPECT_NE(std::string(e.msg).find("--gpu-memory-mb"), std::string::npos) << e.msg;
}

// A filtered search on a GPU copy over-fetches through it: every result matches, the answer is
// close to the exact filtered one, and at 10 % selectivity the GPU answered (no fallback).
TEST_F(Gpu, FilteredSearchOverFetchesThroughTheGpuCopy) {
  QV_REQUIRE_DATA("deep10k/deep10k_base.fvecs");
  Matrix base = qvtest::load_f32("deep10k/deep10k_base.fvecs");
  Matrix q = qvtest::load_f32("deep10k/deep10k_query.fvecs");
  const qv_attr_field schema[] = {{"cat", QV_ATTR_INT64}};
  qv_collection_opts o = gpu_opts(96, "IVF100,Flat");
  o.n_attrs = 1;
  o.attrs = schema;
  Col col;
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
  std::vector<int64_t> ids = qvtest::seq_ids(base.rows), cat(base.rows);
  for (size_t i = 0; i < base.rows; i++)
    cat[i] = int64_t((i * 2654435761u) % 10);
  qv_attr_column col0 = {"cat", QV_ATTR_INT64, cat.data(), nullptr, nullptr, nullptr};
  qv_attr_batch b = {1, &col0, nullptr};
  ASSERT_EQ(qv_collection_upsert(col.c, base.rows, ids.data(), base.f.data(), nullptr, &b, &e),
            QV_OK)
      << e.msg;
  ASSERT_NO_FATAL_FAILURE(qvtest::build(col));
  ASSERT_GE(stats(col.c).gpu, 0) << stats(col.c).placement;
  qv_filter *f = nullptr;
  ASSERT_EQ(qv_filter_parse(col.c, "cat = 3", &f, &e), QV_OK) << e.msg;
  const size_t k = 10, nq = q.rows;
  std::vector<float> s1(nq * k), s2(nq * k);
  std::vector<int64_t> got(nq * k), want(nq * k);
  qv_search_params p{k, 32, 0, f, QV_FILTER_INDEX};
  ASSERT_EQ(qv_collection_search(col.c, q.f.data(), nq, &p, s1.data(), got.data(), &e), QV_OK);
  ASSERT_EQ(qv_collection_search_exact(col.c, q.f.data(), nq, &p, s2.data(), want.data(), &e),
            QV_OK);
  for (int64_t id : got) {
    ASSERT_GE(id, 0);
    EXPECT_EQ(cat[size_t(id)], 3) << id;
  }
  double ov = overlap(got, want, nq, k);
  std::printf("[ gpu ] deep10k IVF100 nprobe 32 filter cat = 3: recall %.4f\n", ov);
  EXPECT_GE(ov, 0.9);
  qv_collection_stats s = stats(col.c);
  EXPECT_EQ(s.gpu_fallbacks, 0u);
  EXPECT_EQ(s.filtered_index + s.filtered_exact, nq);
  EXPECT_GT(s.filtered_index, nq / 2); // most answered through the GPU copy
  qv_filter_free(f);
}
