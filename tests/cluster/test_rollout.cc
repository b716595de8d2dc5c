// Fleet-wide rollouts on the loopback fleet (docs/rollout.md): a new version of a 2 x 2 sift5k
// collection, built from other embeddings of the same ids (sift's dimensions permuted, so each
// version's answers are recognisable), is staged on every replica and flipped once; no query is
// ever answered from two versions, writes made during the rollout reach the new version, a
// replica killed during staging holds the flip back until its shard is whole again, and a
// recall floor missed on one shard aborts the whole rollout.
#include "cluster/fleet.h"

#include <cmath>

#include "quiver/collection.h"
#include "quiver/shard.h"

using namespace qvfleet;

namespace {

constexpr uint32_t kShards = 2;
constexpr size_t kQ = 10, kK = 10;

// sift's base with its dimensions permuted: the same ids, other embeddings.
qvtest::Matrix permuted(const qvtest::Matrix &m) {
  qvtest::Matrix out = m;
  std::vector<size_t> perm(m.cols);
  for (size_t j = 0; j < m.cols; j++)
    perm[j] = (j * 37 + 11) % m.cols; // 37 is prime to 128: a permutation
  for (size_t r = 0; r < m.rows; r++)
    for (size_t j = 0; j < m.cols; j++)
      out.f[r * m.cols + j] = m.f[r * m.cols + perm[j]];
  return out;
}

// What `quiver index build --shards 2` writes: DIR/shard<k> holds the rows the fleet's hash puts
// on shard k, built with `spec` (nprobe: the default nprobe it keeps).
void build_shard_dirs(const qvtest::Matrix &m, const std::string &dir, const char *spec0,
                      const char *spec1, uint32_t nprobe) {
  for (uint32_t k = 0; k < kShards; k++) {
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = m.cols;
    o.metric = QV_METRIC_L2;
    o.spec = k == 0 ? spec0 : spec1;
    o.default_nprobe = nprobe;
    qv_collection *c = nullptr;
    qv_error e{};
    ASSERT_EQ(qv_collection_create(&c, &o, &e), QV_OK) << e.msg;
    std::vector<int64_t> ids;
    std::vector<float> v;
    for (size_t r = 0; r < m.rows; r++)
      if (qv_shard_of(int64_t(r), kShards) == k) {
        ids.push_back(int64_t(r));
        v.insert(v.end(), m.f.begin() + long(r * m.cols), m.f.begin() + long((r + 1) * m.cols));
      }
    ASSERT_EQ(qv_collection_add(c, ids.size(), ids.data(), v.data(), &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_build(c, nullptr, nullptr, &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_save(c, (dir + "/shard" + std::to_string(k)).c_str(), &e), QV_OK)
        << e.msg;
    qv_collection_close(c);
  }
}

// Exact top-k (squared L2, ties by the smaller id) of the first kQ queries over a version's rows.
struct Answer {
  std::vector<int64_t> ids;
  std::vector<float> scores;
};
Answer exact(const qvtest::Matrix &base, const qvtest::Matrix &q) {
  Answer a;
  for (size_t i = 0; i < kQ; i++) {
    std::vector<std::pair<float, int64_t>> d(base.rows);
    for (size_t r = 0; r < base.rows; r++) {
      float s = 0;
      for (size_t j = 0; j < base.cols; j++) {
        const float x = q.f[i * q.cols + j] - base.f[r * base.cols + j];
        s += x * x;
      }
      d[r] = {s, int64_t(r)};
    }
    std::partial_sort(d.begin(), d.begin() + kK, d.end());
    for (size_t j = 0; j < kK; j++) {
      a.ids.push_back(d[j].second);
      a.scores.push_back(d[j].first);
    }
  }
  return a;
}

// 1 when got is version `a`'s answer: its ids, and its scores within float rounding.
bool same(const Answer &a, const std::vector<int64_t> &ids, const std::vector<float> &sc) {
  if (ids != a.ids)
    return false;
  for (size_t i = 0; i < sc.size(); i++)
    if (std::abs(sc[i] - a.scores[i]) > 1e-3f * std::max(1.0f, a.scores[i]))
      return false;
  return true;
}

// A search of the first kQ queries through c: its version, ids and scores; QV_OK or the error.
struct Got {
  qv_status st;
  uint64_t version = 0;
  std::vector<int64_t> ids;
  std::vector<float> sc;
  std::string msg;
};
Got search_v(qv_client *c, const char *name, const qvtest::Matrix &q) {
  Got g;
  g.ids.resize(kQ * kK);
  g.sc.resize(kQ * kK);
  qv_client_search_opts so;
  qv_client_search_opts_init(&so);
  so.answered_version = &g.version;
  qv_error e{};
  g.st = qv_client_search_ex(c, name, q.f.data(), kQ, q.cols, kK, &so, g.sc.data(), g.ids.data(),
                             nullptr, 0, nullptr, &e);
  g.msg = e.msg;
  return g;
}

// Pushes DIR/shard<k> to every in-sync replica in st that does not hold `version` yet (skipping
// the nodes in `skip`); returns how many it pushed.
int push_missing(const qv_fleet_rollout *st, const std::string &name, const std::string &dir,
                 uint64_t version, const std::vector<std::string> &skip) {
  int pushed = 0;
  for (size_t i = 0; i < st->n_replicas; i++) {
    const qv_rollout_replica &x = st->replicas[i];
    if (std::string(x.state) != "in-sync" || x.version == version || x.beside_version == version ||
        std::find(skip.begin(), skip.end(), std::string(x.node)) != skip.end())
      continue;
    Client nc(x.addr, 60000);
    qv_client_import_opts io{};
    const std::string d = dir + "/shard" + std::to_string(x.shard);
    io.index_dir = d.c_str();
    io.stage = 1;
    io.version = version;
    qv_client_build_result res;
    qv_error e{};
    const std::string local = name + ".shard" + std::to_string(x.shard);
    EXPECT_EQ(qv_client_import(nc.c, local.c_str(), &io, nullptr, nullptr, nullptr, &res, &e),
              QV_OK)
        << x.node << ": " << e.msg;
    pushed++;
  }
  return pushed;
}

// The rollout's status through router 0 (null on failure, with a test failure).
std::unique_ptr<qv_fleet_rollout, void (*)(qv_fleet_rollout *)> status(Fleet *f,
                                                                       const std::string &name) {
  Client c(f->router(0));
  qv_fleet_rollout *st = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_client_fleet_rollout(c.c, name.c_str(), QV_ROLLOUT_STATUS, nullptr, &st, &e), QV_OK)
      << e.msg;
  return {st, qv_fleet_rollout_free};
}

// Waits until the rollout's state is `want` (up to timeout_s); the last status seen. "flipped"
// also waits for every live router to pin its queries to the new version (what a caller is told
// before `quiver rollout` returns): until its next map reading a router still answers from the
// previous one, which it holds until the release.
std::string wait_state(Fleet *f, const std::string &name, const std::string &want,
                       double timeout_s) {
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s * 1000));
  std::string last;
  while (std::chrono::steady_clock::now() < until) {
    auto st = status(f, name);
    if (!st)
      return "no status";
    last = std::string(st->state) + ": " + st->message;
    /* "flipped" is also met by "done" (the previous version released since). */
    const bool routed = want != "flipped" || st->routers_on_version >= st->routers;
    if (routed && (want == st->state || (want == "flipped" && std::string(st->state) == "done")))
      return want;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

double p99_ms(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, size_t(double(v.size()) * 0.99))] * 1e3;
}

} // namespace

TEST_F(FleetTest, ARolloutUnderSearchAndUpsertLoadNeverMixesVersions) {
  ASSERT_NO_FATAL_FAILURE(load("ro22", "Flat", kShards, 2));
  const qvtest::Matrix v2 = permuted(sift->base);
  const std::string dir = fleet->tmp.sub("v2");
  ASSERT_NO_FATAL_FAILURE(build_shard_dirs(v2, dir, "Flat", "Flat", 16));
  const Answer a1 = exact(sift->base, sift->q), a2 = exact(v2, sift->q);
  ASSERT_NE(a1.ids, a2.ids) << "the versions must answer differently";

  // Searchers through both routers; each answer is kept with its version and latency.
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0}, mixed{0}, from1{0}, from2{0}, bad_version{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::pair<double, uint64_t>> lat; // (seconds, version), in completion order
  std::atomic<int> went_back{0};                // a searcher's answer from 1 after one from 2
  std::vector<std::thread> searchers;
  for (int t = 0; t < 4; t++)
    searchers.emplace_back([&, t] {
      Client c(fleet->router(t), 10000);
      std::vector<int64_t> ids(kQ * kK);
      std::vector<float> sc(kQ * kK);
      bool seen2 = false;
      while (!stop) {
        uint64_t v = 0;
        qv_client_search_opts so;
        qv_client_search_opts_init(&so);
        so.answered_version = &v;
        qv_error e{};
        const auto t0 = std::chrono::steady_clock::now();
        const qv_status st =
            qv_client_search_ex(c.c, "ro22", sift->q.f.data(), kQ, sift->q.cols, kK, &so, sc.data(),
                                ids.data(), nullptr, 0, nullptr, &e);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::lock_guard<std::mutex> g(mu);
        if (st != QV_OK) {
          failed++;
          if (first_error.empty())
            first_error = e.msg;
          continue;
        }
        lat.emplace_back(s, v);
        went_back += seen2 && v == 1;
        seen2 |= v == 2;
        if (v == 1)
          from1++, mixed += !same(a1, ids, sc);
        else if (v == 2)
          from2++, mixed += !same(a2, ids, sc);
        else
          bad_version++;
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(1));

  // BEGIN, then writes, then the push: every write acknowledged from here on is after the
  // rollout's start and must reach version 2.
  Client admin(fleet->router(0), 30000);
  qv_fleet_rollout *b = nullptr;
  qv_error e{};
  qv_rollout_opts ro{};
  ASSERT_EQ(qv_client_fleet_rollout(admin.c, "ro22", QV_ROLLOUT_BEGIN, &ro, &b, &e), QV_OK)
      << e.msg;
  std::unique_ptr<qv_fleet_rollout, void (*)(qv_fleet_rollout *)> begun(b, qv_fleet_rollout_free);
  ASSERT_EQ(begun->rollout_version, 2u);
  ASSERT_EQ(std::string(begun->state), "staging");
  const auto t_begin = std::chrono::steady_clock::now();
  Writer w(fleet, &sift->base, "ro22", 1000000, /*far=*/true);
  std::this_thread::sleep_for(std::chrono::milliseconds(500)); // writes before the push too
  EXPECT_EQ(push_missing(begun.get(), "ro22", dir, 2, {}), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(500)); // and after it
  EXPECT_EQ(wait_state(fleet, "ro22", "flipped", 60), "flipped") << fleet->fleet_logs();
  const double flip_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_begin).count();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  w.finish();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  for (auto &t : searchers)
    t.join();

  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_EQ(bad_version.load(), 0) << "every answer names version 1 or 2";
  EXPECT_EQ(mixed.load(), 0) << "an answer that is neither version's exact answer";
  EXPECT_GT(from1.load(), 10);
  EXPECT_GT(from2.load(), 10);
  // A searcher's queries go one after another through one router: once one was answered from
  // version 2 (its router's map shows the new pointer), none is answered from version 1 again.
  // (The two routers see the pointer up to a map poll apart: both versions answer meanwhile,
  // each query from one.)
  EXPECT_EQ(went_back.load(), 0) << "answers from version 1 after one from version 2";
  size_t first2 = lat.size();
  for (size_t i = 0; i < lat.size() && first2 == lat.size(); i++)
    if (lat[i].second == 2)
      first2 = i;

  // Every write acknowledged during the rollout is in version 2 on every replica: each
  // replica's count is the base's plus those (plus at most the refused ones).
  EXPECT_TRUE(eventually_every_replica_holds(fleet, "ro22", sift->base.rows, w, kShards, 30))
      << fleet->fleet_logs();
  EXPECT_GT(w.acked.size(), 0u);
  EXPECT_LE(w.failed.load(), 1) << w.first_error;
  // And a written item is found in version 2: its own vector's nearest neighbour is itself.
  if (!w.acked.empty()) {
    const int64_t id = w.acked.back();
    std::vector<float> q;
    Writer::far_row(id, sift->base.cols, &q);
    std::vector<int64_t> ids(1);
    std::vector<float> sc(1);
    uint64_t v = 0;
    qv_client_search_opts so;
    qv_client_search_opts_init(&so);
    so.answered_version = &v;
    ASSERT_EQ(qv_client_search_ex(admin.c, "ro22", q.data(), 1, q.size(), 1, &so, sc.data(),
                                  ids.data(), nullptr, 0, nullptr, &e),
              QV_OK)
        << e.msg;
    EXPECT_EQ(v, 2u);
    EXPECT_EQ(sc[0], 0.0f) << "an acknowledged write's vector is in version 2";
  }

  // Warming: the first 100 answers from version 2 against the 100 from version 1 before them.
  // Reported, with a bound only a cold version would cross on a busy machine.
  std::vector<double> before, after;
  for (size_t i = first2; i-- > 0 && before.size() < 100;)
    if (lat[i].second == 1)
      before.push_back(lat[i].first);
  for (size_t i = first2; i < lat.size() && after.size() < 100; i++)
    if (lat[i].second == 2)
      after.push_back(lat[i].first);
  printf("[ rollout ] push to flip %.2f s; %d answers from version 1, %d from version 2, 0 "
         "mixed; p99 of the 100 before the flip %.2f ms, of the first 100 after %.2f ms; %zu "
         "writes during the rollout, all in version 2\n",
         flip_s, from1.load(), from2.load(), p99_ms(before), p99_ms(after), w.acked.size());
  EXPECT_LE(p99_ms(after), 3 * p99_ms(before) + 50) << "the first queries on version 2 were cold";

  // Rollback is refused once the previous version is released (no hold was asked for).
  EXPECT_EQ(wait_state(fleet, "ro22", "done", 30), "done");
  qv_fleet_rollout *rb = nullptr;
  EXPECT_EQ(qv_client_fleet_rollout(admin.c, "ro22", QV_ROLLOUT_ROLLBACK, nullptr, &rb, &e),
            QV_EPRECONDITION);
  qv_fleet_rollout_free(rb);
}

TEST_F(FleetTest, AReplicaKilledDuringStagingHoldsTheFlipUntilItsShardIsWhole) {
  ASSERT_NO_FATAL_FAILURE(load("rk22", "Flat", kShards, 2));
  const qvtest::Matrix v2 = permuted(sift->base);
  const std::string dir = fleet->tmp.sub("v2");
  ASSERT_NO_FATAL_FAILURE(build_shard_dirs(v2, dir, "Flat", "Flat", 16));
  const Answer a1 = exact(sift->base, sift->q), a2 = exact(v2, sift->q);
  Client admin(fleet->router(0), 30000);
  qv_fleet_rollout *b = nullptr;
  qv_error e{};
  ASSERT_EQ(qv_client_fleet_rollout(admin.c, "rk22", QV_ROLLOUT_BEGIN, nullptr, &b, &e), QV_OK)
      << e.msg;
  std::unique_ptr<qv_fleet_rollout, void (*)(qv_fleet_rollout *)> begun(b, qv_fleet_rollout_free);
  // Push to every replica but one of shard 1, then kill -9 a node holding shard 0.
  std::string held_back, victim;
  for (size_t i = 0; i < begun->n_replicas; i++) {
    if (begun->replicas[i].shard == 1 && held_back.empty())
      held_back = begun->replicas[i].node;
    if (begun->replicas[i].shard == 0 && victim.empty())
      victim = begun->replicas[i].node;
  }
  ASSERT_FALSE(held_back.empty());
  ASSERT_FALSE(victim.empty());
  EXPECT_EQ(push_missing(begun.get(), "rk22", dir, 2, {held_back}), 3);
  fleet->nodes[size_t(std::stoi(victim.substr(1)))]->stop(SIGKILL);
  // Shard 0's replica comes back on another node (without version 2); shard 1 is short one.
  std::string seen;
  bool repaired = false;
  for (int i = 0; i < 300 && !repaired; i++) {
    repaired = fleet->wait_in_sync("rk22", kShards, 2, 0, 0.1, &seen) &&
               seen.find("@" + victim + ":") == std::string::npos;
    if (!repaired)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(repaired) << seen;
  std::this_thread::sleep_for(std::chrono::seconds(2)); // several controller turns
  {
    auto st = status(fleet, "rk22");
    ASSERT_TRUE(st);
    EXPECT_EQ(std::string(st->state), "staging") << "flipped with a shard short: " << st->message;
    EXPECT_EQ(st->version, 1u);
    Got g = search_v(admin.c, "rk22", sift->q);
    ASSERT_EQ(g.st, QV_OK) << g.msg;
    EXPECT_EQ(g.version, 1u);
    EXPECT_TRUE(same(a1, g.ids, g.sc));
    // The rest of the pushes (the held-back replica, the one re-created after the kill).
    EXPECT_EQ(push_missing(st.get(), "rk22", dir, 2, {}), 2);
  }
  EXPECT_EQ(wait_state(fleet, "rk22", "flipped", 60), "flipped") << fleet->fleet_logs();
  // Under ASan on a loaded machine the router that answers may read its map one poll after the
  // controller recorded it on the version: the search converges to version 2 within seconds.
  Got g = search_v(admin.c, "rk22", sift->q);
  for (int i = 0; i < 50 && g.st == QV_OK && g.version != 2u; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    g = search_v(admin.c, "rk22", sift->q);
  }
  ASSERT_EQ(g.st, QV_OK) << g.msg;
  EXPECT_EQ(g.version, 2u);
  EXPECT_TRUE(same(a2, g.ids, g.sc));
}

TEST_F(FleetTest, ARecallFloorMissedOnOneShardAbortsTheWholeRollout) {
  ASSERT_NO_FATAL_FAILURE(load("rf22", "Flat", kShards, 2));
  const qvtest::Matrix v2 = permuted(sift->base);
  const std::string dir = fleet->tmp.sub("v2");
  // Shard 1's new index probes 1 of 64 lists by default: far below the floor.
  ASSERT_NO_FATAL_FAILURE(build_shard_dirs(v2, dir, "Flat", "IVF64,Flat", 1));
  Client admin(fleet->router(1), 30000);
  qv_fleet_rollout *b = nullptr;
  qv_error e{};
  qv_rollout_opts ro{};
  // Bad options are refused before anything is written.
  ro.recall_floor = std::nan("");
  EXPECT_EQ(qv_client_fleet_rollout(admin.c, "rf22", QV_ROLLOUT_BEGIN, &ro, nullptr, &e),
            QV_EINVAL);
  ro.recall_floor = 0;
  ro.version = uint64_t(1) << 63;
  EXPECT_EQ(qv_client_fleet_rollout(admin.c, "rf22", QV_ROLLOUT_BEGIN, &ro, nullptr, &e),
            QV_EINVAL);
  ro.version = 0;
  ro.hold_s = -1;
  EXPECT_EQ(qv_client_fleet_rollout(admin.c, "rf22", QV_ROLLOUT_BEGIN, &ro, nullptr, &e),
            QV_EINVAL);
  ro.hold_s = 0;
  ro.recall_floor = 0.9;
  ASSERT_EQ(qv_client_fleet_rollout(admin.c, "rf22", QV_ROLLOUT_BEGIN, &ro, &b, &e), QV_OK)
      << e.msg;
  std::unique_ptr<qv_fleet_rollout, void (*)(qv_fleet_rollout *)> begun(b, qv_fleet_rollout_free);
  EXPECT_EQ(push_missing(begun.get(), "rf22", dir, 2, {}), 4);
  EXPECT_EQ(wait_state(fleet, "rf22", "aborted", 30), "aborted") << fleet->fleet_logs();
  auto st = status(fleet, "rf22");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->version, 1u) << "no shard flipped";
  EXPECT_NE(std::string(st->message).find("shard 1"), std::string::npos) << st->message;
  EXPECT_NE(std::string(st->message).find("below the floor 0.9000"), std::string::npos)
      << st->message;
  // Every replica drops what it staged.
  bool dropped = false;
  for (int i = 0; i < 100 && !dropped; i++) {
    auto s2 = status(fleet, "rf22");
    dropped = s2 && s2->n_replicas == 4;
    for (size_t j = 0; dropped && j < s2->n_replicas; j++)
      dropped = s2->replicas[j].beside_version == 0 && s2->replicas[j].version == 1;
    if (!dropped)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(dropped) << "a replica still holds the aborted version";
  // A new rollout may begin (with a newer number).
  qv_fleet_rollout *again = nullptr;
  EXPECT_EQ(qv_client_fleet_rollout(admin.c, "rf22", QV_ROLLOUT_BEGIN, nullptr, &again, &e), QV_OK)
      << e.msg;
  if (again) {
    EXPECT_EQ(again->rollout_version, 3u);
  }
  qv_fleet_rollout_free(again);
}

TEST_F(FleetTest, TheRolloutCliStagesFlipsAndRollsBackThroughARouter) {
  ASSERT_NO_FATAL_FAILURE(load("rc22", "Flat", kShards, 2));
  const std::string bin = std::string(QUIVER_BIN_DIR) + "/quiver --server " + fleet->router(0);
  const std::string dir = fleet->tmp.sub("v2");
  ASSERT_NO_FATAL_FAILURE(build_shard_dirs(permuted(sift->base), dir, "Flat", "Flat", 16));
  auto r = qvtest::run_command(bin + " rollout rc22 --index " + dir + " --hold 60 --wait 60");
  ASSERT_EQ(r.code, 0) << r.out << fleet->fleet_logs();
  EXPECT_NE(r.out.find("flipped to version 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 of 2 router(s) on it"), std::string::npos) << r.out;
  {
    // Once the CLI says so, both routers answer from version 2.
    const Answer a2 = exact(permuted(sift->base), sift->q);
    for (int i = 0; i < 2; i++) {
      Client c(fleet->router(i));
      Got g = search_v(c.c, "rc22", sift->q);
      ASSERT_EQ(g.st, QV_OK) << g.msg;
      EXPECT_EQ(g.version, 2u) << "router " << i;
      EXPECT_TRUE(same(a2, g.ids, g.sc)) << "router " << i;
    }
  }
  r = qvtest::run_command(bin + " rollout rc22 --status");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("fleet rollout: flipped (version 2, previous 1)"), std::string::npos)
      << r.out;
  r = qvtest::run_command(bin + " rollback rc22");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("rolled back to version 1"), std::string::npos) << r.out;
  // The router answers from version 1 again.
  Client c(fleet->router(1));
  const Answer a1 = exact(sift->base, sift->q);
  bool back = false;
  for (int i = 0; i < 50 && !back; i++) {
    Got g = search_v(c.c, "rc22", sift->q);
    ASSERT_EQ(g.st, QV_OK) << g.msg;
    back = g.version == 1 && same(a1, g.ids, g.sc);
    if (!back)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(back);
  // Refusals: no rollout to abort; a version number not above the last rollout's.
  r = qvtest::run_command(bin + " rollout rc22 --abort");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("FAILED_PRECONDITION"), std::string::npos) << r.out;
  r = qvtest::run_command(bin + " rollout rc22 --index " + dir + " --version 2 --wait 5");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
  // A directory without the shard's files: the push fails, the rollout is aborted.
  r = qvtest::run_command(bin + " rollout rc22 --index " + fleet->tmp.sub("nothing") + " --wait 5");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("aborted"), std::string::npos) << r.out;
}
