// The life of a collection: builds that measure recall (floor, nprobe tuning), writes that go on
// during a build and reach the new index, the memory budget, whole-state replacement (import),
// versioned snapshots with a fallback to the previous one, and log segments replayed on top.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/collection.h"

using qvtest::Col;
using qvtest::stats;
using qvtest::TempDir;

namespace {

// n random vectors (seeded) of dim d with ids first..first+n-1.
void lc_random_data(size_t n, size_t d, int64_t first, uint32_t seed, std::vector<float> &v,
                    std::vector<int64_t> &ids) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  v.resize(n * d);
  ids.resize(n);
  for (auto &x : v)
    x = g(rng);
  for (size_t i = 0; i < n; i++)
    ids[i] = first + int64_t(i);
}

void make(Col &col, size_t d, const char *spec, size_t n, uint32_t seed = 1) {
  qv_collection_opts o = qvtest::opts(d, spec);
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
  std::vector<float> v;
  std::vector<int64_t> ids;
  lc_random_data(n, d, 0, seed, v, ids);
  ASSERT_EQ(qv_collection_add(col.c, n, ids.data(), v.data(), &e), QV_OK) << e.msg;
}

// recall@k of the index at nprobe against exact search, with the given queries.
double measured_recall(qv_collection *c, const std::vector<float> &q, size_t nq, size_t k,
                       uint32_t nprobe) {
  std::vector<float> s1(nq * k), s2(nq * k);
  std::vector<int64_t> a(nq * k), b(nq * k);
  qv_search_params p{k, nprobe, 0, nullptr, QV_FILTER_AUTO};
  qv_error e{};
  EXPECT_EQ(qv_collection_search(c, q.data(), nq, &p, s1.data(), a.data(), &e), QV_OK) << e.msg;
  EXPECT_EQ(qv_collection_search_exact(c, q.data(), nq, &p, s2.data(), b.data(), &e), QV_OK);
  size_t hit = 0;
  for (size_t i = 0; i < nq; i++) {
    std::set<int64_t> gt(b.begin() + long(i * k), b.begin() + long((i + 1) * k));
    for (size_t j = 0; j < k; j++)
      hit += gt.count(a[i * k + j]);
  }
  return double(hit) / double(nq * k);
}

} // namespace

TEST(Build, TargetRecallTunesTheDefaultNprobeToTheSmallestThatReachesIt) {
  if (!qvtest::have_data("deep10k/deep10k_base.fvecs"))
    GTEST_SKIP() << "../shared/data/deep10k is missing";
  qvtest::Matrix base = qvtest::load_f32("deep10k/deep10k_base.fvecs");
  qvtest::Matrix q = qvtest::load_f32("deep10k/deep10k_query.fvecs");
  Col col;
  qv_collection_opts o = qvtest::opts(base.cols, "IVF100,Flat");
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
  ASSERT_NO_FATAL_FAILURE(qvtest::add_all(col, base));
  qv_build_opts bo;
  qv_build_opts_init(&bo);
  bo.target_recall = 0.95;
  bo.eval_queries = 500;
  qv_build_report rep;
  ASSERT_EQ(qv_collection_build_ex(col.c, &bo, nullptr, nullptr, &rep, &e), QV_OK) << e.msg;
  ASSERT_TRUE(rep.target_reached);
  ASSERT_GT(rep.tuned_nprobe, 1u);
  ASSERT_LT(rep.tuned_nprobe, 100u);
  EXPECT_GE(rep.recall, 0.95);
  EXPECT_EQ(rep.recall_nprobe, rep.tuned_nprobe);
  EXPECT_EQ(rep.recall_k, 10u);
  EXPECT_EQ(rep.eval_queries, 500u);
  qv_collection_stats s = stats(col.c);
  EXPECT_EQ(s.default_nprobe, rep.tuned_nprobe);
  EXPECT_DOUBLE_EQ(s.build_recall, rep.recall);
  EXPECT_EQ(s.build_nprobe, rep.tuned_nprobe);
  // Held-out queries (the real query set) agree: near the target at the tuned nprobe, clearly
  // under it a few probes lower, and the default (nprobe 0) is the tuned one.
  const size_t nq = q.rows;
  double at = measured_recall(col.c, q.f, nq, 10, 0);
  double below = measured_recall(col.c, q.f, nq, 10, rep.tuned_nprobe / 2);
  EXPECT_GT(at, 0.93) << "tuned nprobe " << rep.tuned_nprobe;
  EXPECT_LT(below, at);
  EXPECT_LT(below, 0.95);
  // Minimal: a floor just above what the tuned nprobe reaches is refused at that nprobe.
  qv_build_opts strict;
  qv_build_opts_init(&strict);
  strict.eval_queries = 500;
  strict.recall_floor = std::min(1.0, rep.recall + 0.02);
  EXPECT_EQ(qv_collection_build_ex(col.c, &strict, nullptr, nullptr, nullptr, &e),
            QV_EPRECONDITION);
}

TEST(Build, AnImpossibleRecallFloorIsRefusedAndTheOldIndexKeepsServing) {
  Col col;
  make(col, 32, "IVF16,PQ4", 3000);
  qv_error e{};
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  std::vector<float> q(5 * 32, 0.25f);
  std::vector<float> s_before(50), s_after(50);
  std::vector<int64_t> before(50), after(50);
  qv_search_params p{10, 4, 0, nullptr, QV_FILTER_AUTO};
  ASSERT_EQ(qv_collection_search(col.c, q.data(), 5, &p, s_before.data(), before.data(), &e),
            QV_OK);
  qv_collection_stats s0 = stats(col.c);
  qv_build_opts bo;
  qv_build_opts_init(&bo);
  bo.recall_floor = 0.999; // PQ4 on 32 dims cannot
  qv_build_report rep;
  ASSERT_EQ(qv_collection_build_ex(col.c, &bo, nullptr, nullptr, &rep, &e), QV_EPRECONDITION);
  EXPECT_NE(std::string(e.msg).find("below the floor"), std::string::npos) << e.msg;
  EXPECT_GE(rep.recall, 0.0);
  EXPECT_LT(rep.recall, 0.999);
  qv_collection_stats s1 = stats(col.c);
  EXPECT_EQ(s1.version, s0.version);
  ASSERT_EQ(qv_collection_search(col.c, q.data(), 5, &p, s_after.data(), after.data(), &e), QV_OK);
  EXPECT_EQ(after, before);
  EXPECT_EQ(s_after, s_before);
  // Options out of range are refused before any work.
  bo.recall_floor = 1.5;
  EXPECT_EQ(qv_collection_build_ex(col.c, &bo, nullptr, nullptr, nullptr, &e), QV_EINVAL);
  qv_build_opts_init(&bo);
  bo.eval_k = 0;
  EXPECT_EQ(qv_collection_build_ex(col.c, &bo, nullptr, nullptr, nullptr, &e), QV_EINVAL);
}

TEST(Build, OverTheMemoryBudgetIsRefusedUpFront) {
  Col col;
  make(col, 16, "IVF8,Flat", 1000);
  const uint64_t need = qv_collection_build_memory(col.c);
  // The store (16 floats + id + nothing else) twice, and the new index.
  EXPECT_GE(need, 2 * 1000 * (16 * 4 + 8));
  qv_build_opts bo;
  qv_build_opts_init(&bo);
  bo.memory_budget = need - 1;
  qv_error e{};
  EXPECT_EQ(qv_collection_build_ex(col.c, &bo, nullptr, nullptr, nullptr, &e), QV_ENOMEM);
  EXPECT_NE(std::string(e.msg).find("memory budget"), std::string::npos) << e.msg;
  EXPECT_EQ(stats(col.c).trained, 0);
  bo.memory_budget = need;
  EXPECT_EQ(qv_collection_build_ex(col.c, &bo, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
}

namespace {

struct Gate {
  std::atomic<int> phase_add{0};
  std::atomic<bool> release{false};
};

// Holds the build after it has built the new index (before the swap) until the test has written.
int hold_before_swap(void *user, const char *phase, uint64_t, uint64_t) {
  Gate *g = static_cast<Gate *>(user);
  if (std::strcmp(phase, "evaluate") == 0) {
    g->phase_add.store(1);
    while (!g->release.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return 0;
}

} // namespace

TEST(Build, WritesDuringABuildAreAcceptedAndReachTheNewIndex) {
  const size_t d = 16;
  Col col;
  make(col, d, "IVF8,Flat", 2000);
  qv_error e{};
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  Gate g;
  qv_status bst = QV_EINTERNAL;
  qv_build_report rep;
  std::thread builder([&] {
    qv_error be{};
    bst = qv_collection_build_ex(col.c, nullptr, hold_before_swap, &g, &rep, &be);
  });
  while (!g.phase_add.load())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The build is past its copy and waiting: these writes must not wait for it.
  std::vector<float> v;
  std::vector<int64_t> ids;
  lc_random_data(100, d, 5000, 7, v, ids); // new ids
  ASSERT_EQ(qv_collection_add(col.c, 100, ids.data(), v.data(), &e), QV_OK) << e.msg;
  std::vector<float> moved;
  std::vector<int64_t> moved_ids;
  lc_random_data(50, d, 0, 8, moved, moved_ids); // ids 0..49 get new vectors
  for (auto &x : moved)
    x += 40.0f; // far from everything else
  ASSERT_EQ(qv_collection_add(col.c, 50, moved_ids.data(), moved.data(), &e), QV_OK);
  std::vector<int64_t> gone = {100, 101, 102, 5000};
  size_t nd = 0;
  ASSERT_EQ(qv_collection_delete(col.c, gone.size(), gone.data(), &nd, &e), QV_OK);
  EXPECT_EQ(nd, 4u);
  g.release.store(true);
  builder.join();
  ASSERT_EQ(bst, QV_OK);
  EXPECT_EQ(rep.caught_up, 153u); // 100 new + 50 moved + 100..102 (5000 is among the new)
  qv_collection_stats s = stats(col.c);
  EXPECT_EQ(s.count, 2000u + 100u - 4u);
  EXPECT_EQ(s.indexed, s.count);
  EXPECT_EQ(s.version, 2u);
  // Every written vector is found by the new index at its own place; deleted ids never.
  qv_search_params p{1, 8, 0, nullptr, QV_FILTER_AUTO};
  for (size_t i = 1; i < 100; i++) { // 5000 was deleted
    float sc;
    int64_t id;
    ASSERT_EQ(qv_collection_search(col.c, &v[i * d], 1, &p, &sc, &id, &e), QV_OK);
    EXPECT_EQ(id, ids[i]);
  }
  for (size_t i = 0; i < 50; i++) {
    float sc;
    int64_t id;
    ASSERT_EQ(qv_collection_search(col.c, &moved[i * d], 1, &p, &sc, &id, &e), QV_OK);
    EXPECT_EQ(id, moved_ids[i]);
    EXPECT_LT(sc, 1e-3f);
  }
  std::vector<float> all(2000 * d);
  std::vector<int64_t> base_ids;
  lc_random_data(2000, d, 0, 1, all, base_ids);
  qv_search_params p10{10, 8, 0, nullptr, QV_FILTER_AUTO};
  std::vector<float> sc(10);
  std::vector<int64_t> got(10);
  for (int64_t dead : {100, 101, 102}) {
    ASSERT_EQ(
        qv_collection_search(col.c, &all[size_t(dead) * d], 1, &p10, sc.data(), got.data(), &e),
        QV_OK);
    for (int64_t x : got)
      EXPECT_NE(x, dead);
  }
}

TEST(Build, SearchesNeverFailWhileBuildsSwap) {
  const size_t d = 16;
  Col col;
  make(col, d, "IVF16,Flat", 4000);
  qv_error e{};
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK);
  std::atomic<bool> stop{false};
  std::atomic<size_t> done{0}, bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; t++)
    readers.emplace_back([&, t] {
      std::vector<float> q(d, float(t));
      std::vector<float> sc(10);
      std::vector<int64_t> id(10);
      qv_search_params p{10, 4, 0, nullptr, QV_FILTER_AUTO};
      while (!stop.load()) {
        qv_error se{};
        if (qv_collection_search(col.c, q.data(), 1, &p, sc.data(), id.data(), &se) != QV_OK ||
            id[9] < 0)
          bad++;
        done++;
      }
    });
  for (int b = 0; b < 5; b++)
    ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  stop.store(true);
  for (auto &t : readers)
    t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(done.load(), 0u);
  EXPECT_EQ(stats(col.c).version, 6u);
}

TEST(Replace, SwapsInAnotherIndexAndRefusesAMismatch) {
  const size_t d = 16;
  Col col, src, wrong;
  make(col, d, "IVF8,Flat", 1000, 1);
  make(src, d, "IVF4,SQ8", 800, 2);
  qv_error e{};
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK);
  // Not built yet: refused.
  EXPECT_EQ(qv_collection_replace(col.c, src.c, nullptr, nullptr, &e), QV_EPRECONDITION);
  ASSERT_EQ(qv_collection_build(src.c, nullptr, nullptr, &e), QV_OK);
  make(wrong, d + 1, "Flat", 10);
  EXPECT_EQ(qv_collection_replace(col.c, wrong.c, nullptr, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("dim 17"), std::string::npos) << e.msg;
  qv_build_report rep;
  ASSERT_EQ(qv_collection_replace(col.c, src.c, nullptr, &rep, &e), QV_OK) << e.msg;
  EXPECT_GT(rep.recall, 0.5);
  qv_collection_stats s = stats(col.c);
  EXPECT_EQ(s.count, 800u);
  EXPECT_STREQ(s.spec, "IVF4,SQ8");
  EXPECT_EQ(s.version, 2u);
  qv_collection_stats old = stats(src.c); // src now holds the old state
  EXPECT_EQ(old.count, 1000u);
  // Searches answer from the imported data: its vector 5 is found as id 5.
  std::vector<float> v;
  std::vector<int64_t> ids;
  lc_random_data(800, d, 0, 2, v, ids);
  float sc;
  int64_t id;
  qv_search_params p{1, 4, 0, nullptr, QV_FILTER_AUTO};
  ASSERT_EQ(qv_collection_search(col.c, &v[5 * d], 1, &p, &sc, &id, &e), QV_OK);
  EXPECT_EQ(id, 5);
}

namespace {

// A Flat collection of 300 vectors in dir: v000001 holds ids 0..99, v000002 ids 0..199, and the
// log ids 200..299.
void two_versions_and_a_log(const std::string &dir, size_t d, const std::vector<float> &v,
                            const std::vector<int64_t> &ids) {
  Col col;
  make(col, d, "Flat", 0);
  qv_error e{};
  ASSERT_EQ(qv_collection_add(col.c, 100, ids.data(), v.data(), &e), QV_OK);
  ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_wal_attach(col.c, dir.c_str(), nullptr, nullptr, &e), QV_OK);
  ASSERT_EQ(qv_collection_add(col.c, 100, &ids[100], &v[100 * d], &e), QV_OK);
  ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_add(col.c, 100, &ids[200], &v[200 * d], &e), QV_OK);
}

} // namespace

TEST(Versions, ACorruptNewestVersionFallsBackToThePreviousAndTheLogFillsTheGap) {
  TempDir tmp;
  const std::string dir = tmp.sub("c");
  const size_t d = 8;
  std::vector<float> v;
  std::vector<int64_t> ids;
  lc_random_data(300, d, 0, 3, v, ids);
  two_versions_and_a_log(dir, d, v, ids);
  ASSERT_TRUE(std::filesystem::exists(dir + "/v000001/MANIFEST.json"));
  ASSERT_TRUE(std::filesystem::exists(dir + "/v000002/MANIFEST.json"));
  ASSERT_TRUE(std::filesystem::exists(dir + "/wal-v000002.log"));
  // Damage the newest version's vectors (same size, one flipped byte).
  {
    std::fstream f(dir + "/v000002/vectors.npy", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x7f');
  }
  Col back;
  qv_error e{};
  ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
  qv_collection_stats s = stats(back.c);
  EXPECT_EQ(s.disk_version, 1u);
  EXPECT_NE(std::string(s.open_note).find("v000001"), std::string::npos) << s.open_note;
  EXPECT_NE(std::string(s.open_note).find("CRC"), std::string::npos) << s.open_note;
  EXPECT_EQ(s.count, 100u);
  qv_wal_replay r{};
  ASSERT_EQ(qv_collection_wal_attach(back.c, dir.c_str(), nullptr, &r, &e), QV_OK) << e.msg;
  EXPECT_EQ(r.gaps, 0u);
  EXPECT_EQ(r.upserted, 200u); // the segment kept for v1 (ids 100..199) and the log (200..299)
  EXPECT_EQ(stats(back.c).count, 300u);
  for (int64_t id : {0, 150, 299}) {
    std::vector<float> got(d);
    ASSERT_EQ(qv_collection_get(back.c, id, got.data(), &e), QV_OK) << id;
    EXPECT_EQ(0, std::memcmp(got.data(), &v[size_t(id) * d], d * sizeof(float))) << id;
  }
  // The next save numbers past the damaged version, keeps the one it came from and drops the
  // damaged one.
  ASSERT_EQ(qv_collection_save(back.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_TRUE(std::filesystem::exists(dir + "/v000003"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/v000001"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/v000002"));
  // The log segments newer than the kept v1 stay: a fallback to v1 would need them.
  EXPECT_TRUE(std::filesystem::exists(dir + "/wal-v000002.log"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/wal-v000003.log"));
  Col again;
  ASSERT_EQ(qv_collection_open(&again.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(stats(again.c).count, 300u);
  EXPECT_STREQ(stats(again.c).open_note, "");
}

// The newest version damaged and the log segment the fallback needs lost or damaged: the
// collection was served with the segment's acknowledged writes missing (and the next save made
// that permanent). Now the attach is refused, nothing on disk changes, and only an explicit
// accept_loss (the operator's ACCEPT_WAL_LOSS file in quiverd) serves what is left.
TEST(Versions, AFallbackWhoseLogSegmentIsLostOrDamagedIsRefused) {
  const size_t d = 8;
  std::vector<float> v;
  std::vector<int64_t> ids;
  lc_random_data(300, d, 0, 3, v, ids);
  for (const char *how : {"lost", "damaged"}) {
    SCOPED_TRACE(how);
    TempDir tmp;
    const std::string dir = tmp.sub("c");
    two_versions_and_a_log(dir, d, v, ids);
    {
      std::fstream f(dir + "/v000002/vectors.npy", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(200);
      f.put('\x7f');
    }
    const std::string seg = dir + "/wal-v000002.log";
    if (std::string(how) == "lost") {
      std::filesystem::remove(seg);
    } else { // one flipped byte in the first record: every record of the segment is lost
      std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(40);
      f.put('\x55');
    }
    const auto log_size = std::filesystem::file_size(dir + "/wal.log");
    qv_error e{};
    {
      Col back;
      ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
      EXPECT_EQ(stats(back.c).disk_version, 1u);
      qv_wal_replay r{};
      EXPECT_EQ(qv_collection_wal_attach(back.c, dir.c_str(), nullptr, &r, &e), QV_ECORRUPT);
      EXPECT_NE(std::strstr(e.msg, QV_ACCEPT_WAL_LOSS), nullptr) << e.msg;
      EXPECT_NE(std::strstr(e.msg, "acknowledged"), nullptr) << e.msg;
    }
    EXPECT_EQ(std::filesystem::file_size(dir + "/wal.log"), log_size) << "the log was changed";
    if (std::string(how) == "damaged") {
      EXPECT_TRUE(std::filesystem::exists(seg));
    }
    // Accepted: what is there is served, and the loss is reported.
    Col back;
    ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
    qv_wal_opts wo;
    qv_wal_opts_init(&wo);
    wo.accept_loss = 1;
    qv_wal_replay r{};
    ASSERT_EQ(qv_collection_wal_attach(back.c, dir.c_str(), &wo, &r, &e), QV_OK) << e.msg;
    EXPECT_GE(r.gaps + r.damaged_segments, 1u);
    EXPECT_EQ(r.gaps, 1u);
    EXPECT_EQ(stats(back.c).count, 200u); // v1's 100 and the log's 100; the segment's 100 lost
    std::vector<float> got(d);
    EXPECT_EQ(qv_collection_get(back.c, 150, got.data(), &e), QV_ENOTFOUND);
    EXPECT_EQ(qv_collection_get(back.c, 250, got.data(), &e), QV_OK);
  }
}

// A lost MANIFEST.json (the pointer to the newest version) is not a lost collection: the newest
// version directory that passes its checks is served, and the log fills in the rest.
TEST(Versions, AMissingMainManifestFallsBackToTheNewestVersion) {
  TempDir tmp;
  const std::string dir = tmp.sub("c");
  const size_t d = 8;
  std::vector<float> v;
  std::vector<int64_t> ids;
  lc_random_data(300, d, 0, 3, v, ids);
  two_versions_and_a_log(dir, d, v, ids);
  std::filesystem::remove(dir + "/MANIFEST.json");
  Col back;
  qv_error e{};
  ASSERT_EQ(qv_collection_open(&back.c, dir.c_str(), &e), QV_OK) << e.msg;
  EXPECT_EQ(stats(back.c).disk_version, 2u);
  EXPECT_NE(std::string(stats(back.c).open_note).find("v000002"), std::string::npos);
  ASSERT_EQ(qv_collection_wal_attach(back.c, dir.c_str(), nullptr, nullptr, &e), QV_OK) << e.msg;
  EXPECT_EQ(stats(back.c).count, 300u);
}

TEST(Versions, KeepsTheLastNVersions) {
  TempDir tmp;
  const std::string dir = tmp.sub("c");
  Col col;
  make(col, 4, "Flat", 10);
  qv_error e{};
  EXPECT_EQ(qv_collection_set_keep_versions(col.c, 0, &e), QV_EINVAL);
  ASSERT_EQ(qv_collection_set_keep_versions(col.c, 3, &e), QV_OK);
  for (int i = 0; i < 6; i++)
    ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
  std::set<std::string> have;
  for (auto &ent : std::filesystem::directory_iterator(dir))
    if (ent.path().filename().string()[0] == 'v')
      have.insert(ent.path().filename().string());
  EXPECT_EQ(have, (std::set<std::string>{"v000004", "v000005", "v000006"}));
  // Every version fails: the newest one's error, nothing served.
  for (const char *v : {"v000004", "v000005", "v000006"})
    std::filesystem::resize_file(dir + "/" + v + "/ids.npy", 3);
  Col none;
  EXPECT_EQ(qv_collection_open(&none.c, dir.c_str(), &e), QV_ECORRUPT);
  EXPECT_NE(std::string(e.msg).find("v000006"), std::string::npos) << e.msg;
  EXPECT_EQ(none.c, nullptr);
}
