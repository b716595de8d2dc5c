// Where a collection serves from (quiver/gpu.h) and deferred deletes (tombstones). The tombstone
// path is the one every GPU-resident collection takes (FAISS GPU indexes cannot remove ids); here
// it runs on the CPU through deferred_deletes, against the immediate-removal path and exact search.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/testdata.h"
#include "quiver/collection.h"
#include "quiver/gpu.h"

using qvtest::Matrix;
using qvtest::TempDir;

namespace {

struct Col {
  qv_collection *c = nullptr;
  ~Col() {
    qv_collection_close(c);
  }
};

qv_collection_opts opts(size_t dim, const char *spec, int deferred, qv_device dev) {
  qv_collection_opts o;
  qv_collection_opts_init(&o);
  o.dim = dim;
  o.spec = spec;
  o.deferred_deletes = deferred;
  o.device = dev;
  return o;
}

std::vector<int64_t> top(qv_collection *c, const float *q, size_t nq, size_t k, uint32_t nprobe,
                         std::vector<float> *scores = nullptr, bool exact = false) {
  std::vector<float> sc(nq * k);
  std::vector<int64_t> ids(nq * k);
  qv_search_params p{k, nprobe};
  qv_error e{};
  qv_status st = exact ? qv_collection_search_exact(c, q, nq, &p, sc.data(), ids.data(), &e)
                       : qv_collection_search(c, q, nq, &p, sc.data(), ids.data(), &e);
  EXPECT_EQ(st, QV_OK) << e.msg;
  if (scores)
    *scores = sc;
  return ids;
}

qv_collection_stats stats(qv_collection *c) {
  qv_collection_stats s;
  qv_collection_stats_get(c, &s, nullptr);
  return s;
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
  qv_gpu_opts go;
  qv_gpu_opts_init(&go);
  qv_error e{};
  ASSERT_EQ(qv_gpu_init(&go, &e), QV_OK) << e.msg;
  if (qv_gpu_devices() > 0) {
    qv_gpu_shutdown();
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
  go.fallback_cpu = 1;
  qv_gpu_init(&go, nullptr);
  qv_gpu_shutdown();
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
    std::vector<int64_t> ids(base.rows);
    for (size_t i = 0; i < base.rows; i++)
      ids[i] = int64_t(i);
    ASSERT_EQ(qv_collection_add(c->c, base.rows, ids.data(), base.f.data(), &e), QV_OK);
    ASSERT_EQ(qv_collection_build(c->c, nullptr, nullptr, &e), QV_OK) << e.msg;
  }
  // Delete every query's current best, then move 50 ids onto other queries' neighbourhoods
  // (replacements: the stale entry stays in the deferred index).
  std::vector<int64_t> best = top(now.c, q.f.data(), nq, 1, all);
  std::sort(best.begin(), best.end());
  best.erase(std::unique(best.begin(), best.end()), best.end());
  std::mt19937 rng(7);
  std::vector<int64_t> moved;
  std::vector<float> moved_vecs;
  for (int i = 0; i < 50; i++) {
    int64_t id = int64_t(rng() % base.rows);
    size_t qi = rng() % nq;
    moved.push_back(id);
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
  EXPECT_GE(sl.tombstones, best.size()); // one per deleted id, one per replaced live id
  EXPECT_EQ(sl.count, sn.count);

  std::vector<float> s_now, s_later, s_exact;
  std::vector<int64_t> r_now = top(now.c, q.f.data(), nq, k, all, &s_now);
  std::vector<int64_t> r_later = top(later.c, q.f.data(), nq, k, all, &s_later);
  std::vector<int64_t> r_exact = top(later.c, q.f.data(), nq, k, all, &s_exact, true);
  EXPECT_EQ(r_later, r_now);
  for (size_t i = 0; i < nq * k; i++)
    EXPECT_NEAR(s_later[i], s_exact[i], 1e-3f * std::max(1.0f, s_exact[i])) << i;
  for (int64_t id : r_later)
    EXPECT_FALSE(std::binary_search(best.begin(), best.end(), id)) << id << " was deleted";

  // Save folds the tombstones; the saved index holds exactly the live vectors.
  TempDir tmp;
  std::string dir = tmp.sub("later");
  ASSERT_EQ(qv_collection_save(later.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(stats(later.c).tombstones, 0u);
  EXPECT_EQ(stats(later.c).indexed, sl.count);
  EXPECT_EQ(top(later.c, q.f.data(), nq, k, all), r_now);
  Col back;
  ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(top(back.c, q.f.data(), nq, k, all), r_now);
  // A re-added deleted id comes back with its new vector.
  int64_t again = best[0];
  ASSERT_EQ(qv_collection_add(back.c, 1, &again, q.f.data(), &e), QV_OK);
  std::vector<int64_t> r1 = top(back.c, q.f.data(), 1, 1, all);
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
  std::vector<int64_t> r = top(col.c, x.data(), 10, 5, 4);
  for (int64_t id : r)
    EXPECT_GE(id, 10) << "a deleted id came back";
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK);
  EXPECT_EQ(stats(col.c).tombstones, 0u);
  EXPECT_EQ(stats(col.c).indexed, 390u);
}
