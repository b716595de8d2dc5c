// The loopback fleet the cluster tests run (test_fleet.cc, test_rollout.cc): 3 etcd members, 3
// NATS JetStream servers, 4 shard servers and 2 routers, started per test and stopped with it;
// the fixture that loads sift5k into a sharded collection, a background writer, and the checks
// that every replica holds what it must. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster/fleet_msgs.h"
#include "common/engines.h"
#include "common/metrics.h"
#include "common/server.h"
#include "common/testdata.h"
#include "quiver/client.h"
#include "quiver/etcd.h"

namespace qvfleet {

using qvtest::Client;
using qvtest::EtcdCluster;
using qvtest::NatsCluster;
using qvtest::Quiverd;
using qvtest::TempDir;

inline constexpr int kNodes = 4, kRouters = 2;

// The bytes a fleet_msgs.h packer made.
inline std::string bytes(uint8_t *p, size_t n) {
  std::string s(reinterpret_cast<const char *>(p), n);
  free(p);
  return s;
}

// A replica as its node reports it in etcd.
struct Rep {
  std::string node, state;
  uint64_t applied = 0, log = 0, count = 0;
};

struct Fleet {
  TempDir tmp;
  EtcdCluster etcd;
  NatsCluster nats;
  std::vector<std::unique_ptr<Quiverd>> nodes, routers;
  qv_etcd *kv = nullptr;
  qvtest::GrpcScope grpc;

  std::string cluster() const {
    return "etcd=" + etcd.endpoints() + ",nats=" + nats.urls();
  }
  std::vector<std::string> node_flags(int i) const {
    return {"--cluster", cluster(), "--node-id",     "n" + std::to_string(i),
            "--lease-s", "2",       "--map-poll-ms", "100",
            "--threads", "2"};
  }
  bool start() {
    if (!etcd.start(tmp.sub("etcd"), 3) || !nats.start(tmp.sub("nats"), 3))
      return false;
    qv_error e{};
    if (qv_etcd_open(&kv, etcd.endpoints().c_str(), 5000, &e) != QV_OK) {
      ADD_FAILURE() << e.msg;
      return false;
    }
    for (int i = 0; i < kNodes; i++) {
      nodes.push_back(std::make_unique<Quiverd>());
      if (!nodes.back()->start(tmp.sub("n" + std::to_string(i)), node_flags(i)))
        return false;
    }
    for (int i = 0; i < kRouters; i++) {
      routers.push_back(std::make_unique<Quiverd>());
      if (!routers.back()->start(tmp.sub("r" + std::to_string(i)),
                                 {"--role", "router", "--cluster", cluster(), "--node-id",
                                  "r" + std::to_string(i), "--lease-s", "2", "--map-poll-ms", "100",
                                  "--hedge-ms", "50", "--threads", "4", "--metrics-listen",
                                  "127.0.0.1:0"}))
        return false;
    }
    return true;
  }
  ~Fleet() {
    qv_etcd_close(kv);
  }
  // What the shard servers logged about their replicas (for a failure's message).
  std::string fleet_logs() const {
    std::string out;
    for (size_t i = 0; i < nodes.size(); i++) {
      std::istringstream in(nodes[i]->log());
      std::string line;
      while (std::getline(in, line))
        if (line.find("fleet:") != std::string::npos || line.find(" W ") != std::string::npos ||
            line.find(" E ") != std::string::npos)
          out += "n" + std::to_string(i) + ": " + line + "\n";
    }
    return out;
  }
  std::string router(int i) const {
    return routers[size_t(i) % routers.size()]->target();
  }

  // The replicas of collection `name` per shard, as etcd has them now.
  std::map<uint32_t, std::vector<Rep>> replicas(const std::string &name) {
    std::map<uint32_t, std::vector<Rep>> out;
    struct Ctx {
      std::map<uint32_t, std::vector<Rep>> *out;
      size_t skip;
    } ctx{&out, std::string("/quiver/replicas/" + name + "/").size()};
    qv_error e{};
    qv_etcd_range_prefix(
        kv, ("/quiver/replicas/" + name + "/").c_str(),
        [](void *u, const char *key, const char *val, size_t len) -> int {
          Ctx *c = static_cast<Ctx *>(u);
          std::string k = std::string(key).substr(c->skip), v(val, len);
          Rep r;
          const uint32_t shard = uint32_t(std::stoul(k.substr(0, k.find('/'))));
          r.node = k.substr(k.find('/') + 1);
          auto num = [&](const std::string &f) -> uint64_t {
            size_t at = v.find("\"" + f + "\":");
            return at == std::string::npos ? 0 : std::stoull(v.substr(at + f.size() + 3));
          };
          size_t st = v.find("\"state\":\"");
          r.state = st == std::string::npos ? "" : v.substr(st + 9, v.find('"', st + 9) - st - 9);
          r.applied = num("applied");
          r.log = num("log");
          r.count = num("count");
          (*c->out)[shard].push_back(r);
          return 0;
        },
        &ctx, nullptr, &e);
    return out;
  }

  // Waits until every shard has `want` in-sync replicas that applied their whole log, holding
  // `total` items between the shards (0: any); false (with what it saw) after timeout_s.
  bool wait_in_sync(const std::string &name, uint32_t shards, size_t want, uint64_t total,
                    double timeout_s, std::string *seen) {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s * 1000));
    for (;;) {
      auto reps = replicas(name);
      bool ok = reps.size() == shards;
      uint64_t sum = 0;
      std::string s;
      for (auto &[k, v] : reps) {
        size_t n = 0;
        uint64_t cnt = 0;
        for (auto &r : v) {
          s += " s" + std::to_string(k) + "@" + r.node + ":" + r.state + "(" +
               std::to_string(r.applied) + "/" + std::to_string(r.log) + "," +
               std::to_string(r.count) + ")";
          if (r.state == "in-sync" && r.applied == r.log) {
            n++;
            cnt = r.count;
          }
        }
        ok &= n >= want;
        sum += cnt;
      }
      ok &= total == 0 || sum == total;
      *seen = s;
      if (ok)
        return true;
      if (std::chrono::steady_clock::now() > until)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
};

// CreateCollection with shards and replicas, as raw bytes (the C client's options predate them).
inline grpc_status_code create_sharded(const std::string &target, const char *name, uint32_t dim,
                                       const char *spec, uint32_t shards, uint32_t replicas,
                                       std::string *details) {
  uint8_t *p = nullptr;
  const size_t n = fm_create(&p, name, dim, 1 /* METRIC_L2 */, spec, shards, replicas);
  return qvtest::raw_call(target, "/quiver.v1.Retrieval/CreateCollection", bytes(p, n), details);
}

inline std::vector<int64_t> search(qv_client *c, const char *name, const qvtest::Matrix &q,
                                   size_t nq, size_t k, uint32_t nprobe, int exact,
                                   std::vector<float> *scores, qv_error *e) {
  std::vector<int64_t> ids(nq * k);
  std::vector<float> sc(nq * k);
  qv_status st =
      qv_client_search(c, name, q.f.data(), nq, q.cols, k, nprobe, exact, sc.data(), ids.data(), e);
  if (st != QV_OK)
    ids.clear();
  if (scores)
    *scores = sc;
  return ids;
}

class FleetTest : public ::testing::Test {
protected:
  // Per test (ctest runs each test in a process of its own): a failure to start is the test's.
  std::unique_ptr<qvtest::DataSet> sift_;
  std::unique_ptr<Fleet> fleet_;
  qvtest::DataSet *sift = nullptr;
  Fleet *fleet = nullptr;
  void SetUp() override {
    if (!qvtest::have_data("sift5k/sift5k_base.fvecs"))
      GTEST_SKIP() << "sift5k is not in ../shared/data";
    sift_ = std::make_unique<qvtest::DataSet>(qvtest::load_set("sift5k"));
    sift = sift_.get();
    fleet_ = std::make_unique<Fleet>();
    fleet = fleet_.get();
    ASSERT_TRUE(fleet->start()) << "the fleet did not start";
  }
  // `name` through a router: sharded, every row of sift5k, every replica in-sync.
  void load(const char *name, const char *spec, uint32_t shards, uint32_t replicas) {
    std::string d;
    ASSERT_EQ(create_sharded(fleet->router(0), name, 128, spec, shards, replicas, &d),
              GRPC_STATUS_OK)
        << d;
    Client c(fleet->router(1));
    qvtest::upsert_all(c.c, name, sift->base);
    std::string seen;
    ASSERT_TRUE(fleet->wait_in_sync(name, shards, replicas, sift->base.rows, 60, &seen)) << seen;
  }
};

// Upserts batches of fresh ids (from id0, 50 a batch, vectors of sift5k's base) through the
// routers until stopped; keeps the ids acknowledged and counts the failures.
// (Or, with `far`, vectors far from every sift query: each coordinate 1000 + a small offset, so
// that they never enter a test query's top-k and each version's exact answer stays fixed.)
struct Writer {
  Fleet *fleet;
  const qvtest::Matrix *base;
  std::string name;
  int64_t next;
  bool far;
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::vector<int64_t> acked, refused; // refused: may be in some shards' logs, or in none
  std::string first_error;
  std::thread t;
  // The vector `far` writes for id (the tests look it up by it).
  static void far_row(int64_t id, size_t dim, std::vector<float> *v) {
    for (size_t x = 0; x < dim; x++)
      v->push_back(1000.0f + float((id * 7 + int64_t(x)) % 13));
  }
  Writer(Fleet *f, const qvtest::Matrix *b, const std::string &n, int64_t id0,
         bool far_rows = false)
      : fleet(f), base(b), name(n), next(id0), far(far_rows) {
    t = std::thread([this] {
      Client c0(fleet->router(0), 10000), c1(fleet->router(1), 10000);
      for (int i = 0; !stop; i++) {
        std::vector<int64_t> ids;
        std::vector<float> v;
        for (int j = 0; j < 50; j++, next++) {
          ids.push_back(next);
          const float *row = base->f.data() + size_t(next % int64_t(base->rows)) * base->cols;
          if (far)
            far_row(next, base->cols, &v);
          else
            v.insert(v.end(), row, row + base->cols);
        }
        qv_error e{};
        if (qv_client_upsert((i & 1 ? c1 : c0).c, name.c_str(), ids.size(), base->cols, ids.data(),
                             v.data(), 0, nullptr, nullptr, nullptr, &e) == QV_OK) {
          acked.insert(acked.end(), ids.begin(), ids.end());
        } else {
          failed++;
          refused.insert(refused.end(), ids.begin(), ids.end());
          if (first_error.empty())
            first_error = e.msg;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  void finish() {
    stop = true;
    if (t.joinable())
      t.join();
  }
  ~Writer() {
    finish();
  }
};

// The items each shard must hold: the base's and every acknowledged one, by the router's hash
// (fleet.h: MurmurHash3's finalizer of the id, modulo the shards).
inline uint32_t shard_of(int64_t id, uint32_t shards) {
  uint64_t h = uint64_t(id);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return uint32_t(h % shards);
}

// Every replica of every shard is in-sync and holds every item it must (the base's and each
// acknowledged upsert's) and none twice: its count lies between that and that plus the items of
// refused upserts (a refused upsert may have reached some shards' logs before it failed).
// W: a writer with the ids it got acknowledged and refused (Writer, or a test's own).
template <class W>
::testing::AssertionResult every_replica_holds(Fleet *fleet, const std::string &name,
                                               size_t base_rows, const W &w, uint32_t shards) {
  std::vector<uint64_t> lo(shards, 0), hi;
  for (size_t i = 0; i < base_rows; i++)
    lo[shard_of(int64_t(i), shards)]++;
  for (int64_t id : w.acked)
    lo[shard_of(id, shards)]++;
  hi = lo;
  for (int64_t id : w.refused)
    hi[shard_of(id, shards)]++;
  auto reps = fleet->replicas(name);
  std::string s;
  bool ok = reps.size() == shards;
  for (auto &[k, v] : reps)
    for (auto &r : v) {
      s += " s" + std::to_string(k) + "@" + r.node + "=" + std::to_string(r.count) + " in [" +
           std::to_string(lo[k]) + ", " + std::to_string(hi[k]) + "] (" + r.state + ")";
      ok &= r.count >= lo[k] && r.count <= hi[k] && r.state == "in-sync";
    }
  return ok ? ::testing::AssertionSuccess() : ::testing::AssertionFailure() << s;
}

// Waits until every replica holds what every_replica_holds asks (up to timeout_s).
template <class W>
::testing::AssertionResult eventually_every_replica_holds(Fleet *fleet, const std::string &name,
                                                          size_t base_rows, const W &w,
                                                          uint32_t shards, double timeout_s) {
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s * 1000));
  for (;;) {
    ::testing::AssertionResult r = every_replica_holds(fleet, name, base_rows, w, shards);
    if (r || std::chrono::steady_clock::now() > until)
      return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

} // namespace qvfleet
