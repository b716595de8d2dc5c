// Where a collection serves from (quiver/gpu.h) and deferred deletes (tombstones). The tombstone
// path is the one every GPU-resident collection takes (FAISS GPU indexes cannot remove ids); here
// it runs on the CPU through deferred_deletes, against the immediate-removal path and exact search.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/collection.h"
#include "quiver/gpu.h"

using qvtest::Col;
using qvtest::Matrix;
using qvtest::Result;
using qvtest::search;
using qvtest::stats;
using qvtest::TempDir;

namespace {

// The options of most tests here: deferred deletes and the asked device.
qv_collection_opts opts(size_t dim, const char *spec, int deferred, qv_device dev) {
  qv_collection_opts o = qvtest::opts(dim, spec);
  o.deferred_deletes = deferred;
  o.device = dev;
  return o;
}

// Restores the process-wide GPU options whatever a test does to them.
struct GpuOptsGuard {
  ~GpuOptsGuard() {
    qv_gpu_shutdown(); // also resets fallback_cpu to its default
  }
};

// Per query, the same ids (as sets) and the same scores within rounding.
void expect_same_answers(const Result &ra, const Result &rb, size_t nq, size_t k) {
  const std::vector<int64_t> &a = ra.ids, &b = rb.ids;
  const std::vector<float> &sa = ra.scores, &sb = rb.scores;
  for (size_t i = 0; i < nq; i++) {
    std::vector<int64_t> x(a.begin() + i * k, a.begin() + (i + 1) * k);
    std::vector<int64_t> y(b.begin() + i * k, b.begin() + (i + 1) * k);
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    // Ties at the k-th score may pick different ids; everything better must agree.
    float kth = sa[i * k + k - 1];
    for (size_t j = 0; j < k; j++) {
      EXPECT_NEAR(sa[i * k + j], sb[i * k + j], 1e-3f * std::max(1.0f, std::abs(sa[i * k + j])))
          << "query " << i << " rank " << j;
      if (sa[i * k + j] != kth) {
        EXPECT_TRUE(std::binary_search(y.begin(), y.end(), a[i * k + j]))
            << "query " << i << ": id " << a[i * k + j] << " missing";
      }
    }
  }
}

} // namespace

TEST(Device, NamesRoundTripAndBadOnesAreRefused) {
  for (qv_device d : {QV_DEVICE_AUTO, QV_DEVICE_CPU, QV_DEVICE_GPU}) {
    qv_device back;
    ASSERT_EQ(qv_device_parse(qv_device_name(d), &back, nullptr), QV_OK);
    EXPECT_EQ(back, d);
  }
  qv_device d;
  qv_error e{};
  EXPECT_EQ(qv_device_parse("tpu", &d, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "auto, cpu, gpu"), nullptr) << e.msg;
  EXPECT_EQ(qv_device_parse(nullptr, &d, &e), QV_EINVAL);
  qv_collection_opts o = opts(4, "Flat", 0, (qv_device)7);
  qv_collection *c = nullptr;
  EXPECT_EQ(qv_collection_create(&c, &o, &e), QV_EINVAL);
  EXPECT_EQ(c, nullptr);
}

// Without a usable GPU: "auto" and "gpu" serve from the CPU and say why; with fallback off,
// "gpu" is refused with FAILED_PRECONDITION's status and "auto"/"cpu" still work.
TEST(Device, WithoutAGpuCollectionsServeFromTheCpu) {
  GpuOptsGuard restore;
  qv_gpu_opts go;
  qv_gpu_opts_init(&go);
  qv_error e{};
  ASSERT_EQ(qv_gpu_init(&go, &e), QV_OK) << e.msg;
  if (qv_gpu_devices() > 0) {
    GTEST_SKIP() << "a GPU is present: the GPU suite (label gpu) covers placement there";
  }
  for (qv_device d : {QV_DEVICE_AUTO, QV_DEVICE_GPU, QV_DEVICE_CPU}) {
    Col col;
    qv_collection_opts o = opts(4, "Flat", 0, d);
    ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
    qv_collection_stats s = stats(col.c);
    EXPECT_EQ(s.device, d);
    EXPECT_EQ(s.gpu, -1);
    EXPECT_EQ(s.device_bytes, 0u);
    EXPECT_EQ(std::string(s.placement).rfind("cpu: ", 0), 0u) << s.placement;
  }
  go.fallback_cpu = 0;
  ASSERT_EQ(qv_gpu_init(&go, &e), QV_OK);
  Col strict;
  qv_collection_opts o = opts(4, "Flat", 0, QV_DEVICE_GPU);
  EXPECT_EQ(qv_collection_create(&strict.c, &o, &e), QV_EPRECONDITION);
  EXPECT_NE(std::strstr(e.msg, "no GPU"), nullptr) << e.msg;
  o.device = QV_DEVICE_AUTO;
  ASSERT_EQ(qv_collection_create(&strict.c, &o, &e), QV_OK) << e.msg;
  EXPECT_EQ(qv_collection_set_device(strict.c, QV_DEVICE_GPU, &e), QV_EPRECONDITION);
  EXPECT_EQ(stats(strict.c).device, QV_DEVICE_AUTO); // unchanged by the refused move
  EXPECT_EQ(qv_collection_set_device(strict.c, QV_DEVICE_CPU, &e), QV_OK) << e.msg;
  EXPECT_STREQ(stats(strict.c).placement, "cpu: device cpu asked");
}

TEST(Device, TheAskedDeviceAndDeferredDeletesPersist) {
  TempDir tmp;
  std::string dir = tmp.sub("c");
  {
    Col col;
    qv_collection_opts o = opts(4, "Flat", 1, QV_DEVICE_GPU);
    qv_error e{};
    ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
  }
  Col back;
  qv_error e{};
  ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(stats(back.c).device, QV_DEVICE_GPU);
  EXPECT_EQ(stats(back.c).deferred_deletes, 1);
}

// Deletes and replacements under tombstones give the answers of immediate removal, at full
// probe equal to exact search; a save folds them away and a reopen answers the same.
TEST(Tombstones, DeferredDeletesAnswerLikeImmediateOnes) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  Matrix base = qvtest::load_f32("sift5k/sift5k_base.fvecs");
  Matrix q = qvtest::load_f32("sift5k/sift5k_query.fvecs");
  const size_t k = 10, nq = q.rows;
  const uint32_t all = 32;
  Col now, later;
  qv_error e{};
  for (Col *c : {&now, &later}) {
    qv_collection_opts o = opts(128, "IVF32,Flat", c == &later, QV_DEVICE_CPU);
    ASSERT_EQ(qv_collection_create(&c->c, &o, &e), QV_OK) << e.msg;
    ASSERT_NO_FATAL_FAILURE(qvtest::add_all(*c, base));
    ASSERT_NO_FATAL_FAILURE(qvtest::build(*c));
  }
  // Delete every query's current best, then move 50 ids onto other queries' neighbourhoods
  // (replacements: the stale entry stays in the deferred index).
  std::vector<int64_t> best = search(now.c, q, 1, all).ids;
  std::sort(best.begin(), best.end());
  best.erase(std::unique(best.begin(), best.end()), best.end());
  std::mt19937 rng(7);
  std::vector<int64_t> moved;
  std::vector<float> moved_vecs;
  size_t moved_live = 0; // moved ids that were not deleted: each leaves one stale entry
  for (int i = 0; i < 50; i++) {
    int64_t id = i < 5 ? best[size_t(i)] : int64_t(rng() % base.rows); // 5 re-add deleted ids
    if (std::find(moved.begin(), moved.end(), id) != moved.end())
      continue;
    size_t qi = rng() % nq;
    moved.push_back(id);
    moved_live += !std::binary_search(best.begin(), best.end(), id);
    for (size_t t = 0; t < 128; t++) // near query qi
      moved_vecs.push_back(q.f[qi * 128 + t] + float(rng() % 5));
  }
  for (Col *c : {&now, &later}) {
    size_t gone = 0;
    ASSERT_EQ(qv_collection_delete(c->c, best.size(), best.data(), &gone, &e), QV_OK) << e.msg;
    EXPECT_EQ(gone, best.size());
    ASSERT_EQ(qv_collection_add(c->c, moved.size(), moved.data(), moved_vecs.data(), &e), QV_OK);
  }
  qv_collection_stats sl = stats(later.c), sn = stats(now.c);
  EXPECT_EQ(sn.tombstones, 0u);
  EXPECT_EQ(sl.tombstones, best.size() + moved_live); // one per deleted id, per replaced live id
  EXPECT_EQ(sl.count, sn.count);

  Result r_now = search(now.c, q, k, all);
  Result r_later = search(later.c, q, k, all);
  Result r_exact = search(later.c, q, k, all, true);
  expect_same_answers(r_now, r_later, nq, k);
  expect_same_answers(r_exact, r_later, nq, k);
  std::vector<int64_t> still_deleted; // deleted and not re-added
  for (int64_t id : best)
    if (std::find(moved.begin(), moved.end(), id) == moved.end())
      still_deleted.push_back(id);
  for (int64_t id : r_later.ids)
    EXPECT_FALSE(std::binary_search(still_deleted.begin(), still_deleted.end(), id))
        << id << " was deleted";

  // Save folds the tombstones; the saved index holds exactly the live vectors.
  TempDir tmp;
  std::string dir = tmp.sub("later");
  ASSERT_EQ(qv_collection_save(later.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(stats(later.c).tombstones, 0u);
  EXPECT_EQ(stats(later.c).indexed, sl.count);
  Result r_folded = search(later.c, q, k, all);
  expect_same_answers(r_now, r_folded, nq, k);
  Col back;
  ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
  Result r_back = search(back.c, q, k, all);
  expect_same_answers(r_now, r_back, nq, k);
  // A re-added deleted id comes back with its new vector.
  int64_t again = best[0];
  ASSERT_EQ(qv_collection_add(back.c, 1, &again, q.f.data(), &e), QV_OK);
  std::vector<int64_t> r1 = search(back.c, q.f.data(), 1, 1, all).ids;
  EXPECT_EQ(r1[0], again);
}

// A build clears the tombstones too.
TEST(Tombstones, BuildFoldsThemAway) {
  Col col;
  qv_collection_opts o = opts(8, "IVF4,Flat", 1, QV_DEVICE_CPU);
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK);
  std::vector<float> x(400 * 8);
  std::vector<int64_t> ids(400);
  for (size_t i = 0; i < 400; i++) {
    ids[i] = int64_t(i);
    for (int t = 0; t < 8; t++)
      x[i * 8 + t] = float((i * 13 + t * 5) % 31);
  }
  ASSERT_EQ(qv_collection_add(col.c, 400, ids.data(), x.data(), &e), QV_OK);
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_delete(col.c, 10, ids.data(), nullptr, &e), QV_OK);
  EXPECT_EQ(stats(col.c).tombstones, 10u);
  EXPECT_EQ(stats(col.c).indexed, 400u); // still in the lists, hidden
  std::vector<int64_t> r = search(col.c, x.data(), 10, 5, 4).ids;
  for (int64_t id : r)
    EXPECT_GE(id, 10) << "a deleted id came back";
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK);
  EXPECT_EQ(stats(col.c).tombstones, 0u);
  EXPECT_EQ(stats(col.c).indexed, 390u);
}

// More stale entries than one search may over-fetch: the answer comes from the store, exactly.
TEST(Tombstones, PastTheOverFetchLimitSearchIsExact) {
  Col col;
  qv_collection_opts o = opts(4, "Flat", 1, QV_DEVICE_CPU);
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK);
  const size_t n = QV_MAX_K + 1000;
  std::vector<float> x(n * 4);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; i++) {
    ids[i] = int64_t(i);
    for (int t = 0; t < 4; t++)
      x[i * 4 + t] = float(i) + 0.25f * float(t);
  }
  ASSERT_EQ(qv_collection_add(col.c, n, ids.data(), x.data(), &e), QV_OK);
  // Delete all but the last 1000: every one of them stays in the index as a stale entry.
  ASSERT_EQ(qv_collection_delete(col.c, QV_MAX_K, ids.data(), nullptr, &e), QV_OK);
  EXPECT_EQ(stats(col.c).tombstones, size_t(QV_MAX_K));
  std::vector<int64_t> r = search(col.c, x.data(), 1, 10, 0).ids; // query = vector of id 0
  for (size_t j = 0; j < 10; j++)
    EXPECT_EQ(r[j], int64_t(QV_MAX_K + j)) << j; // the nearest survivors, in order
}
