// Crash safety of the real quiverd: kill -9 at random points (20 rounds) while clients upsert,
// delete, build and the server saves snapshots (a 1 MiB write-ahead-log threshold makes it save
// often); after each restart the acknowledged writes are there, exactly, and the server answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "common/server.h"

namespace {

const size_t kDim = 16;

std::vector<float> vec_for(int64_t id) {
  std::vector<float> v(kDim);
  v[0] = float(id); // unique (exact below 2^24)
  for (size_t t = 1; t < kDim; t++)
    v[t] = float((id * 7919 + int64_t(t) * 104729) % 100003) * 0.01f;
  return v;
}

// The vectors of ids, one row each.
std::vector<float> vecs_for(const std::vector<int64_t> &ids) {
  std::vector<float> x(ids.size() * kDim);
  for (size_t i = 0; i < ids.size(); i++) {
    std::vector<float> v = vec_for(ids[i]);
    std::copy(v.begin(), v.end(), x.begin() + i * kDim);
  }
  return x;
}

} // namespace

TEST(CrashSafety, KillNineKeepsEveryAcknowledgedWrite) {
  qvtest::TempDir tmp;
  qvtest::Quiverd srv;
  const std::string dir = tmp.sub("data");
  const std::vector<std::string> flags = {"--wal-snapshot-mb", "1"};
  ASSERT_TRUE(srv.start(dir, flags));
  {
    qvtest::Client cl(srv.target());
    ASSERT_NO_FATAL_FAILURE(qvtest::create(cl.c, "crash", kDim, QV_METRIC_L2, "IVF8,Flat"));
  }
  std::map<int64_t, bool> acked; // id -> present (true) or deleted (false), acknowledged only
  std::set<int64_t> uncertain;   // a delete was sent but never acknowledged
  int64_t next_id = 0;
  std::mt19937 rng(2026);
  const int rounds = 20;
  size_t acked_writes = 0, checked = 0;
  for (int round = 0; round < rounds; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::atomic<bool> stop{false};
    std::mutex mu;
    const int64_t round_first = next_id;
    // Writer: upsert streams of 1..400 new ids (several messages each), now and then a delete of
    // ids acknowledged earlier; records what the server acknowledged.
    std::thread writer([&, seed = rng()] {
      std::mt19937 r(seed);
      qvtest::Client cl(srv.target(), 5000);
      while (!stop.load()) {
        size_t n = 1 + r() % 100;
        int64_t first;
        {
          std::lock_guard<std::mutex> g(mu);
          first = next_id;
          next_id += int64_t(n);
        }
        const std::vector<int64_t> ids = qvtest::seq_ids(n, first);
        const std::vector<float> x = vecs_for(ids);
        qv_error e{};
        if (qv_client_upsert(cl.c, "crash", n, kDim, ids.data(), x.data(), 4096, nullptr, nullptr,
                             nullptr, &e) != QV_OK)
          break; // the server died under us: this stream was not acknowledged
        {
          std::lock_guard<std::mutex> g(mu);
          for (int64_t id : ids)
            acked[id] = true;
          acked_writes++;
        }
        if (r() % 4 == 0 && first > 10) {
          int64_t victim = int64_t(r() % uint64_t(first));
          uint64_t deleted = 0, count = 0;
          {
            std::lock_guard<std::mutex> g(mu);
            uncertain.insert(victim); // applied or not: unknown until acknowledged
          }
          if (qv_client_delete(cl.c, "crash", 1, &victim, &deleted, &count, &e) != QV_OK)
            break;
          std::lock_guard<std::mutex> g(mu);
          uncertain.erase(victim);
          acked[victim] = false;
        }
      }
    });
    // A build now and then: the kill may land in training, the swap or the save after it.
    std::thread builder([&, seed = rng()] {
      std::mt19937 r(seed);
      qvtest::Client cl(srv.target(), 5000);
      while (!stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + r() % 80));
        qv_error e{};
        if (qv_client_build(cl.c, "crash", 5000, nullptr, nullptr, nullptr, &e) == QV_EUNAVAILABLE)
          break;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 250));
    srv.stop(SIGKILL);
    stop = true;
    writer.join();
    builder.join();
    ASSERT_TRUE(srv.start(dir, flags)) << "restart after kill -9";
    // Every acknowledged write is there: present ids found exactly (distance 0 as their own
    // nearest), deleted ones gone.
    qvtest::Client cl(srv.target());
    // Checked: the last 2000 ids acknowledged before the kill (the writes it most likely hit),
    // 500 earlier ones at random, and every acknowledged delete.
    std::vector<int64_t> present, gone, older;
    for (auto &[id, live] : acked) {
      if (uncertain.count(id))
        continue;
      if (!live)
        gone.push_back(id);
      else if (id >= round_first)
        present.push_back(id);
      else
        older.push_back(id);
    }
    if (present.size() > 2000)
      present.erase(present.begin(), present.end() - 2000);
    std::shuffle(older.begin(), older.end(), rng);
    present.insert(present.end(), older.begin(),
                   older.begin() + std::min<size_t>(500, older.size()));
    checked += present.size() + gone.size();
    if (!present.empty()) {
      std::vector<float> q = vecs_for(present), sc(present.size());
      std::vector<int64_t> got(present.size());
      qv_error e{};
      for (size_t off = 0; off < present.size(); off += 4000) {
        size_t m = std::min<size_t>(4000, present.size() - off);
        ASSERT_EQ(qv_client_search(cl.c, "crash", q.data() + off * kDim, m, kDim, 1, 0, 1,
                                   sc.data() + off, got.data() + off, &e),
                  QV_OK)
            << e.msg << "\n"
            << srv.log();
      }
      size_t missing = 0;
      for (size_t i = 0; i < present.size(); i++)
        missing += got[i] != present[i] || sc[i] != 0.0f;
      EXPECT_EQ(missing, 0u) << "acknowledged upserts missing or changed after kill -9";
    }
    qv_collection_info info{};
    qv_error e{};
    ASSERT_EQ(qv_client_describe(cl.c, "crash", &info, &e), QV_OK) << e.msg;
    EXPECT_GE(info.count, present.size());
    if (!gone.empty()) {
      // A deleted id never answers a query for its own vector with distance 0.
      std::vector<float> q = vecs_for(gone), sc(gone.size());
      std::vector<int64_t> got(gone.size());
      ASSERT_EQ(qv_client_search(cl.c, "crash", q.data(), gone.size(), kDim, 1, 0, 1, sc.data(),
                                 got.data(), &e),
                QV_OK);
      for (size_t i = 0; i < gone.size(); i++)
        EXPECT_NE(got[i], gone[i]) << "acknowledged delete of " << gone[i] << " undone";
    }
  }
  std::printf("[ crash ] %d kill -9 rounds, %zu acknowledged upsert streams, %zu ids written, "
              "%zu checks\n",
              rounds, acked_writes, acked.size(), checked);
  EXPECT_GT(acked_writes, size_t(rounds)); // the kills landed among real traffic
}
