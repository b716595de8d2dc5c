// The fleet on loopback: 3 etcd members, 3 NATS JetStream servers, 4 shard servers and 2 routers,
// all started and stopped by the suite. Collections of sift5k in 2 shards x 2 replicas answer
// through the routers as one collection on a single node answers; a shard server killed -9 under
// search load costs no search and its replicas come back elsewhere; bad input at a router is
// refused as a node refuses it; filtered searches and the items' attributes answer through a
// router as on a single node.
#include "cluster/fleet.h"
#include "server/attr_model.h"

using namespace qvfleet;

TEST_F(FleetTest, ExactAnswersThroughARouterEqualASingleNodes) {
  ASSERT_NO_FATAL_FAILURE(load("exact22", "Flat", 2, 2));
  TempDir tmp;
  Quiverd one;
  ASSERT_TRUE(one.start(tmp.sub("one")));
  Client single(one.target());
  qvtest::create(single.c, "exact", 128, QV_METRIC_L2, "Flat");
  qvtest::upsert_all(single.c, "exact", sift->base);
  const size_t nq = sift->q.rows, k = 10;
  qv_error e{};
  std::vector<float> s1, s2;
  std::vector<int64_t> want = search(single.c, "exact", sift->q, nq, k, 0, 1, &s1, &e);
  ASSERT_EQ(want.size(), nq * k) << e.msg;
  for (int r = 0; r < kRouters; r++) {
    Client c(fleet->router(r));
    std::vector<int64_t> got = search(c.c, "exact22", sift->q, nq, k, 0, 1, &s2, &e);
    ASSERT_EQ(got.size(), nq * k) << e.msg;
    EXPECT_EQ(got, want) << "router " << r;
    EXPECT_EQ(s2, s1) << "router " << r;
  }
  EXPECT_GE(qvtest::recall_at_k(want, sift->gt, nq, k), 0.99);
  // Get and item-to-item search: each id's row comes from its own shard, answered as one node
  // answers (the ids span both shards; one is unknown).
  std::vector<int64_t> qids;
  for (int64_t i = 0; i < 40; i++)
    qids.push_back(i * 97 % 5000);
  qids.push_back(987654);
  const size_t n = qids.size();
  qv_client_items one_items, fleet_items;
  ASSERT_EQ(qv_client_get(single.c, "exact", n, qids.data(), 0, &one_items, &e), QV_OK) << e.msg;
  Client c(fleet->router(1));
  ASSERT_EQ(qv_client_get(c.c, "exact22", n, qids.data(), 0, &fleet_items, &e), QV_OK) << e.msg;
  ASSERT_EQ(fleet_items.n, n - 1);
  EXPECT_EQ(std::vector<int64_t>(fleet_items.ids, fleet_items.ids + fleet_items.n),
            std::vector<int64_t>(one_items.ids, one_items.ids + one_items.n));
  EXPECT_EQ(0, memcmp(fleet_items.vectors, one_items.vectors, (n - 1) * 128 * sizeof(float)));
  ASSERT_EQ(fleet_items.n_missing, 1u);
  EXPECT_EQ(fleet_items.missing_ids[0], 987654);
  qv_client_items_free(&one_items);
  qv_client_items_free(&fleet_items);
  qv_client_search_opts o;
  qv_client_search_opts_init(&o);
  o.exact = 1;
  o.query_ids = qids.data();
  o.n_query_ids = n;
  std::vector<uint8_t> unknown(n, 9);
  o.unknown = unknown.data();
  std::vector<float> ss1(n * k), ss2(n * k);
  std::vector<int64_t> ii1(n * k), ii2(n * k);
  ASSERT_EQ(qv_client_search_ex(single.c, "exact", nullptr, n, 0, k, &o, ss1.data(), ii1.data(),
                                nullptr, 0, nullptr, &e),
            QV_OK)
      << e.msg;
  ASSERT_EQ(qv_client_search_ex(c.c, "exact22", nullptr, n, 0, k, &o, ss2.data(), ii2.data(),
                                nullptr, 0, nullptr, &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(ii2, ii1);
  EXPECT_EQ(ss2, ss1);
  EXPECT_EQ(unknown[n - 1], 1);
  EXPECT_EQ(unknown[0], 0);
  for (size_t i = 0; i + 1 < n; i++)
    EXPECT_EQ(std::count(ii2.begin() + i * k, ii2.begin() + (i + 1) * k, qids[i]), 0) << i;
}

// A collection with attributes in 2 shards x 2 replicas: created through a router with its
// schema (the record in etcd carries it to every replica), written through the other one (each
// message's columns cut by shard), then filtered searches (exact, the index path, item-to-item)
// and Get of the attributes through both routers equal a single node's answer and the exact
// answer over the matching items.
TEST_F(FleetTest, FilteredSearchesAndAttributesThroughARouterEqualASingleNodes) {
  std::string d;
  ASSERT_EQ(qvattr::create(fleet->router(0), "shop22", "Flat", true, &d, 2, 2), GRPC_STATUS_OK)
      << d;
  TempDir tmp;
  Quiverd one;
  ASSERT_TRUE(one.start(tmp.sub("one")));
  ASSERT_EQ(qvattr::create(one.target(), "shop", "Flat", true, &d), GRPC_STATUS_OK) << d;
  qvattr::Model fm, sm; // the fleet's and the single node's
  fm.base = sm.base = &sift->base;
  for (int64_t from = 0; from < 2000; from += 500) {
    ASSERT_NO_FATAL_FAILURE(fm.upsert_range(fleet->router(1), "shop22", from, from + 500));
    ASSERT_NO_FATAL_FAILURE(sm.upsert_range(one.target(), "shop", from, from + 500));
  }
  // Re-written with other attributes (the last write of an id wins on its shard).
  std::vector<int64_t> again = {3, 1001, 1999};
  std::vector<qvattr::Item> items;
  for (int64_t id : again)
    items.push_back(qvattr::item_of(id, 1));
  ASSERT_EQ(fm.upsert(fleet->router(0), "shop22", again, items, true, &d), GRPC_STATUS_OK) << d;
  ASSERT_EQ(sm.upsert(one.target(), "shop", again, items, true, &d), GRPC_STATUS_OK) << d;
  std::string seen;
  ASSERT_TRUE(fleet->wait_in_sync("shop22", 2, 2, 2000, 60, &seen)) << seen;
  for (int r = 0; r < kRouters; r++) {
    qvattr::Info info = qvattr::describe(fleet->router(r), "shop22");
    ASSERT_EQ(info.code, GRPC_STATUS_OK) << info.det;
    EXPECT_EQ(info.attrs, qvattr::kSchemaText) << "router " << r;
  }
  const size_t nq = 20, k = 10;
  std::vector<int64_t> qids = {1, 42, 777, 1500, 3};
  std::vector<float> qv;
  for (int64_t id : qids) {
    const float *row = sift->base.f.data() + fm.held[id].row * 128;
    qv.insert(qv.end(), row, row + 128);
  }
  for (const qvattr::Filter &f : qvattr::filters()) {
    SCOPED_TRACE(f.text);
    std::vector<int64_t> want;
    std::vector<float> wsc;
    fm.brute(sift->q.f.data(), nq, k, f.match, &want, &wsc);
    for (int exact : {1, 0}) {
      am_search_req q{};
      q.coll = "shop";
      q.q = sift->q.f.data();
      q.floats = nq * 128;
      q.k = uint32_t(k);
      q.exact = exact;
      q.filter = f.text;
      qvattr::Answer a1 = qvattr::search(one.target(), q);
      ASSERT_EQ(a1.code, GRPC_STATUS_OK) << a1.det;
      qvattr::expect_same(a1, want, wsc);
      q.coll = "shop22";
      for (int r = 0; r < kRouters; r++) {
        qvattr::Answer a2 = qvattr::search(fleet->router(r), q);
        ASSERT_EQ(a2.code, GRPC_STATUS_OK) << a2.det;
        EXPECT_TRUE(qvattr::same_ids(a2.ids, a1.ids)) << "router " << r << " exact " << exact;
        EXPECT_EQ(a2.scores, a1.scores) << "router " << r << " exact " << exact;
      }
    }
    // Item-to-item with the filter: each item's vector fetched from its shard.
    std::vector<int64_t> w2;
    std::vector<float> s2;
    fm.brute(qv.data(), qids.size(), k, f.match, &w2, &s2, qids);
    am_search_req q{};
    q.coll = "shop22";
    q.k = uint32_t(k);
    q.exact = 1;
    q.filter = f.text;
    q.qids = qids.data();
    q.nqids = qids.size();
    qvattr::Answer a = qvattr::search(fleet->router(0), q);
    ASSERT_EQ(a.code, GRPC_STATUS_OK) << a.det;
    qvattr::expect_same(a, w2, s2);
  }
  // Get of the attributes: ids of both shards, a repeat and an unknown one, in request order.
  std::vector<int64_t> ask = {3, 5000000, 1001, 17, 3};
  for (int64_t id = 100; id < 2000; id += 111)
    ask.push_back(id);
  const std::string want = fm.get_text(ask);
  EXPECT_EQ(qvattr::get(one.target(), "shop", ask, {"attributes"}), want);
  for (int r = 0; r < kRouters; r++) {
    EXPECT_EQ(qvattr::get(fleet->router(r), "shop22", ask, {"attributes"}), want) << r;
    EXPECT_EQ(qvattr::get(fleet->router(r), "shop22", ask, {}), want) << r;
    EXPECT_EQ(qvattr::get(fleet->router(r), "shop22", ask, {"attributes", "features"}), want) << r;
  }
  // A bad filter through a router: the shard's refusal, as a node gives it.
  am_search_req q{};
  q.coll = "shop22";
  q.q = sift->q.f.data();
  q.floats = 128;
  q.k = 5;
  q.filter = "colour = 3";
  qvattr::Answer a = qvattr::search(fleet->router(0), q);
  EXPECT_EQ(a.code, GRPC_STATUS_INVALID_ARGUMENT) << a.det;
  EXPECT_NE(a.det.find("column"), std::string::npos) << a.det;
}

TEST_F(FleetTest, IvfThroughARouterKeepsASingleNodesRecall) {
  ASSERT_NO_FATAL_FAILURE(load("ivf22", "IVF32,Flat", 2, 2));
  Client c(fleet->router(0));
  qv_error e{};
  qv_collection_info info{};
  ASSERT_EQ(qv_client_build(c.c, "ivf22", 0, nullptr, nullptr, &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.count, sift->base.rows);
  TempDir tmp;
  Quiverd one;
  ASSERT_TRUE(one.start(tmp.sub("one")));
  Client single(one.target());
  qvtest::load_built(single.c, "ivf", sift->base, "IVF32,Flat");
  const size_t nq = sift->q.rows, k = 10;
  for (uint32_t nprobe : {2u, 8u}) {
    std::vector<int64_t> a = search(single.c, "ivf", sift->q, nq, k, nprobe, 0, nullptr, &e);
    ASSERT_EQ(a.size(), nq * k) << e.msg;
    std::vector<int64_t> b = search(c.c, "ivf22", sift->q, nq, k, nprobe, 0, nullptr, &e);
    ASSERT_EQ(b.size(), nq * k) << e.msg;
    const double ra = qvtest::recall_at_k(a, sift->gt, nq, k),
                 rb = qvtest::recall_at_k(b, sift->gt, nq, k);
    // Each shard probes nprobe of its own lists over half the items: at least as much as one
    // collection probes, so the fleet's recall is no lower.
    EXPECT_GE(rb, ra - 0.01) << "nprobe " << nprobe << ": single " << ra << ", fleet " << rb;
    printf("[ recall@10 ] IVF32,Flat nprobe %u: single node %.4f, 2 shards x 2 replicas %.4f\n",
           nprobe, ra, rb);
    fflush(stdout); /* before a fork copies the buffer */
  }
}

TEST_F(FleetTest, AShardServerKilledUnderSearchLoadCostsNoSearch) {
  // IVF: a replica re-created elsewhere must build before it is searched; built from the same
  // log, it answers as its peer does.
  ASSERT_NO_FATAL_FAILURE(load("kill22", "IVF16,Flat", 2, 2));
  const size_t nq = 20, k = 10;
  qv_error e{};
  std::vector<int64_t> want;
  {
    Client c(fleet->router(0));
    ASSERT_EQ(qv_client_build(c.c, "kill22", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
    want = search(c.c, "kill22", sift->q, nq, k, 4, 0, nullptr, &e);
    ASSERT_EQ(want.size(), nq * k) << e.msg;
  }
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, wrong{0};
  std::string first_error;
  std::mutex mu;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; t++)
    clients.emplace_back([&, t] {
      Client c(fleet->router(t), 10000);
      while (!stop) {
        qv_error err{};
        std::vector<int64_t> got = search(c.c, "kill22", sift->q, nq, k, 4, 0, nullptr, &err);
        if (got.empty()) {
          failed++;
          std::lock_guard<std::mutex> g(mu);
          if (first_error.empty())
            first_error = err.msg;
        } else {
          ok++;
          wrong += got != want;
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  // The node holding the most replicas of this collection.
  auto reps = fleet->replicas("kill22");
  std::map<std::string, int> held;
  for (auto &[shard, v] : reps)
    for (auto &r : v)
      held[r.node]++;
  std::string victim = held.begin()->first;
  const int vi = std::stoi(victim.substr(1));
  fleet->nodes[size_t(vi)]->stop(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  // Its replicas are re-created on the other nodes and catch up.
  std::string seen;
  bool back = false;
  while (!back && std::chrono::steady_clock::now() - killed < std::chrono::seconds(90)) {
    back = fleet->wait_in_sync("kill22", 2, 2, sift->base.rows, 0.1, &seen) &&
           seen.find("@" + victim + ":") == std::string::npos;
    if (!back)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double repair_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  for (auto &t : clients)
    t.join();
  EXPECT_TRUE(back) << "replicas after the kill:" << seen;
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_EQ(wrong.load(), 0) << "every replica of a shard answers alike";
  EXPECT_GT(ok.load(), 20);
  {
    Client c(fleet->router(1));
    EXPECT_EQ(search(c.c, "kill22", sift->q, nq, k, 4, 0, nullptr, &e), want)
        << "after the repair" << e.msg;
  }
  printf("[ failover ] %d searches, %d failed; replicas of %s back in-sync elsewhere %.1f s after "
         "the kill\n",
         ok.load() + failed.load(), failed.load(), victim.c_str(), repair_s);
  fflush(stdout); /* before the restart's fork copies the buffer */
  // The node comes back empty-handed: its old assignments went to others.
  ASSERT_TRUE(fleet->nodes[size_t(vi)]->start(fleet->tmp.sub("n" + std::to_string(vi)),
                                              fleet->node_flags(vi)));
}

TEST_F(FleetTest, WritesSurviveAReplicaKilledTwiceDuringItsRepair) {
  ASSERT_NO_FATAL_FAILURE(load("w22", "Flat", 2, 2));
  Writer w(fleet, &sift->base, "w22", 100000);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  // Kill a node; then the node that takes over one of its replicas, as soon as it has one.
  auto before = fleet->replicas("w22");
  const std::string first = before[0][0].node;
  ASSERT_EQ(fleet->nodes[size_t(std::stoi(first.substr(1)))]->stop(SIGKILL), -1);
  std::string second;
  const auto t0 = std::chrono::steady_clock::now();
  while (second.empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
    for (auto &[k, v] : fleet->replicas("w22"))
      for (auto &r : v) {
        bool was = false;
        for (auto &b : before[k])
          was |= b.node == r.node;
        if (!was && r.node != first)
          second = r.node;
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(second.empty()) << "no replica was re-created after the kill of " << first;
  ASSERT_EQ(fleet->nodes[size_t(std::stoi(second.substr(1)))]->stop(SIGKILL), -1);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  w.finish();
  // Both come back (empty-handed: their replicas went elsewhere meanwhile, or stay theirs).
  for (const std::string &n : {first, second}) {
    const int i = std::stoi(n.substr(1));
    ASSERT_TRUE(fleet->nodes[size_t(i)]->start(fleet->tmp.sub(n), fleet->node_flags(i)));
  }
  EXPECT_TRUE(eventually_every_replica_holds(fleet, "w22", sift->base.rows, w, 2, 90))
      << fleet->fleet_logs();
  EXPECT_EQ(w.failed.load(), 0) << w.first_error;
  EXPECT_GT(w.acked.size(), 100u);
  // A node back after its replicas moved drops what it held before (no orphan copies): at its
  // first reading (held before this start), or right after it (when it came back before the
  // controller moved its replica, and the move came next).
  for (const std::string &n : {first, second}) {
    Quiverd &q = *fleet->nodes[size_t(std::stoi(n.substr(1)))];
    auto settled = [&] { // it holds a replica of w22 again, or it dropped what it held
      for (auto &[k, v] : fleet->replicas("w22"))
        for (auto &r : v)
          if (r.node == n)
            return true;
      const std::string log = q.log();
      return log.find("dropped (held before this start") != std::string::npos ||
             log.find("dropped (no longer assigned here)") != std::string::npos;
    };
    for (int i = 0; i < 100 && !settled(); i++) // its first readings come within moments
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(settled()) << n << ":\n" << q.log();
  }
  // And the last acknowledged items are found by their own vectors.
  Client c(fleet->router(0));
  const int64_t last = w.acked.back();
  const float *row = sift->base.f.data() + size_t(last % int64_t(sift->base.rows)) * 128;
  int64_t ids[4];
  float sc[4];
  qv_error e{};
  ASSERT_EQ(qv_client_search(c.c, "w22", row, 1, 128, 4, 0, 1, sc, ids, &e), QV_OK) << e.msg;
  EXPECT_EQ(sc[0], 0.f);
  printf("[ repair ] %zu upserts acknowledged during two kills (%s, then %s), none lost\n",
         w.acked.size(), first.c_str(), second.c_str());
  fflush(stdout);
}

TEST_F(FleetTest, TheEtcdLeaderAndANatsServerKilledUnderLoad) {
  ASSERT_NO_FATAL_FAILURE(load("e22", "Flat", 2, 2));
  const size_t nq = 10, k = 10;
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_error;
  std::mutex mu;
  std::vector<std::thread> searchers;
  for (int t = 0; t < 2; t++)
    searchers.emplace_back([&, t] {
      Client c(fleet->router(t), 10000);
      while (!stop) {
        qv_error err{};
        if (search(c.c, "e22", sift->q, nq, k, 0, 1, nullptr, &err).empty()) {
          failed++;
          std::lock_guard<std::mutex> g(mu);
          if (first_error.empty())
            first_error = err.msg;
        } else {
          ok++;
        }
      }
    });
  Writer w(fleet, &sift->base, "e22", 200000);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int leader = fleet->etcd.leader();
  ASSERT_GE(leader, 0);
  fleet->etcd.kill_member(size_t(leader));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  fleet->nats.kill_server(0);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  w.finish();
  stop = true;
  for (auto &t : searchers)
    t.join();
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_GT(ok.load(), 10);
  EXPECT_TRUE(eventually_every_replica_holds(fleet, "e22", sift->base.rows, w, 2, 60))
      << fleet->fleet_logs();
  if (getenv("QV_FLEET_LOGS"))
    printf("%s", fleet->fleet_logs().c_str());
  printf("[ engines ] etcd leader and a NATS server killed: %d searches, %d failed; %zu upserts "
         "acknowledged, %d refused (%s)\n",
         ok.load() + failed.load(), failed.load(), w.acked.size(), w.failed.load(),
         w.first_error.c_str());
  fflush(stdout);
}

TEST_F(FleetTest, HedgingCoversAReplicaStoppedForFiveSeconds) {
  ASSERT_NO_FATAL_FAILURE(load("h22", "Flat", 2, 2));
  const size_t nq = 5, k = 10;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<double> ms;
  std::atomic<int> failed{0};
  std::vector<std::thread> searchers;
  for (int t = 0; t < 4; t++)
    searchers.emplace_back([&, t] {
      Client c(fleet->router(t), 20000);
      while (!stop) {
        qv_error err{};
        const auto a = std::chrono::steady_clock::now();
        const bool good = !search(c.c, "h22", sift->q, nq, k, 0, 1, nullptr, &err).empty();
        const double d =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
        std::lock_guard<std::mutex> g(mu);
        ms.push_back(d);
        failed += !good;
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::string victim = fleet->replicas("h22")[0][0].node;
  Quiverd &v = *fleet->nodes[size_t(std::stoi(victim.substr(1)))];
  kill(v.pid, SIGSTOP);
  std::this_thread::sleep_for(std::chrono::seconds(5));
  kill(v.pid, SIGCONT);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  for (auto &t : searchers)
    t.join();
  std::sort(ms.begin(), ms.end());
  ASSERT_GT(ms.size(), 20u);
  const double p50 = ms[ms.size() / 2], p99 = ms[ms.size() * 99 / 100], mx = ms.back();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LT(p99, 2500.0) << "p50 " << p50 << " ms, max " << mx << " ms";
  // Both routers hedged; the first one's metrics say so, with its fan-outs and the fleet's map.
  const int mport = qvtest::metrics_port(*fleet->routers[0]);
  ASSERT_GT(mport, 0) << fleet->routers[0]->log();
  auto m = qvtest::scrape(mport);
  EXPECT_GT(m["quiver_router_hedges_total"], 0);
  EXPECT_GT(m["quiver_router_fanouts_total"], 10);
  EXPECT_EQ(m["quiver_router_fanout_seconds_count"], m["quiver_router_fanouts_total"]);
  EXPECT_EQ(m["quiver_fleet_nodes"], kNodes);
  EXPECT_EQ(m.count("quiver_fleet_shard_in_sync{collection=\"h22\",shard=\"1\"}"), 1u);
  printf("[ hedging ] %s stopped for 5 s: %zu searches, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
         victim.c_str(), ms.size(), p50, p99, mx);
  fflush(stdout);
}

TEST_F(FleetTest, BadInputIsRefusedAsASingleNodeRefusesIt) {
  ASSERT_NO_FATAL_FAILURE(load("bad21", "Flat", 2, 1));
  TempDir tmp;
  Quiverd one;
  ASSERT_TRUE(one.start(tmp.sub("one")));
  {
    Client single(one.target());
    qvtest::create(single.c, "bad21", 128, QV_METRIC_L2, "Flat");
    qvtest::upsert_all(single.c, "bad21", sift->base);
  }
  std::vector<float> q(128 * 2, 0.5f);
  struct Case {
    const char *what, *method;
    std::string body;
  };
  std::vector<Case> cases;
  uint8_t *p = nullptr;
  size_t n = 0;
  const char *kSearch = "/quiver.v1.Retrieval/Search", *kUpsert = "/quiver.v1.Retrieval/Upsert",
             *kCreate = "/quiver.v1.Retrieval/CreateCollection";
  n = fm_search(&p, "nope", q.data(), 128, 0, 10, 0, 0, 0);
  cases.push_back({"unknown collection", kSearch, bytes(p, n)});
  n = fm_search(&p, "bad21", q.data(), 128, 0, 0, 0, 0, 0);
  cases.push_back({"k = 0", kSearch, bytes(p, n)});
  n = fm_search(&p, "bad21", q.data(), 128, 0, 100000, 0, 0, 0);
  cases.push_back({"k above max k", kSearch, bytes(p, n)});
  n = fm_search(&p, "bad21", q.data(), 100, 0, 10, 0, 0, 0);
  cases.push_back({"floats not a multiple of dim", kSearch, bytes(p, n)});
  n = fm_search(&p, "bad21", q.data(), 128, 64, 10, 0, 0, 0);
  cases.push_back({"wrong dim", kSearch, bytes(p, n)});
  n = fm_search(&p, "bad21", q.data(), 0, 0, 10, 0, 0, 0);
  cases.push_back({"no queries", kSearch, bytes(p, n)});
  n = fm_search(&p, "bad21", q.data(), 128, 0, 10, 0, 1, 0);
  cases.push_back(
      {"nprobe on an exact search of a Flat collection is fine: a control", kSearch, bytes(p, n)});
  cases.push_back({"a message that does not decode", kSearch, "\xff\xff\xff"});
  int64_t ids[2] = {1, -5};
  n = fm_upsert(&p, "bad21", 2, ids, q.data(), 256);
  cases.push_back({"a negative id", kUpsert, bytes(p, n)});
  n = fm_upsert(&p, "bad21", 2, ids, q.data(), 200);
  cases.push_back({"floats not ids x dim", kUpsert, bytes(p, n)});
  std::vector<float> nan(q);
  nan[3] = std::nanf("");
  ids[1] = 7;
  n = fm_upsert(&p, "bad21", 2, ids, nan.data(), 256);
  cases.push_back({"a NaN", kUpsert, bytes(p, n)});
  n = fm_upsert(&p, "nope", 2, ids, q.data(), 256);
  cases.push_back({"upsert to an unknown collection", kUpsert, bytes(p, n)});
  n = fm_create(&p, "bad21", 128, 1, "Flat", 0, 0);
  cases.push_back({"a name taken", kCreate, bytes(p, n)});
  n = fm_create(&p, "has space", 128, 1, "Flat", 0, 0);
  cases.push_back({"a bad name", kCreate, bytes(p, n)});
  n = fm_create(&p, "fresh", 0, 1, "Flat", 0, 0);
  cases.push_back({"dim 0", kCreate, bytes(p, n)});
  n = fm_create(&p, "fresh", 8, 1, "IVF0,Flat", 0, 0);
  cases.push_back({"a bad spec", kCreate, bytes(p, n)});
  n = fm_create(&p, "fresh", 8, 0, "Flat", 0, 0);
  cases.push_back({"no metric", kCreate, bytes(p, n)});
  n = fm_name(&p, 0, "nope");
  cases.push_back(
      {"describe an unknown collection", "/quiver.v1.Retrieval/DescribeCollection", bytes(p, n)});
  n = fm_name(&p, 1, "nope");
  cases.push_back(
      {"drop an unknown collection", "/quiver.v1.Retrieval/DropCollection", bytes(p, n)});
  n = fm_build(&p, "bad21", 2.0);
  cases.push_back({"a recall floor above 1", "/quiver.v1.Retrieval/BuildIndex", bytes(p, n)});
  const char *kGet = "/quiver.v1.Retrieval/Get";
  const int64_t some[3] = {1, 2, -3}, unknown[2] = {99999, 88888};
  n = fm_get(&p, "bad21", some, 3, nullptr);
  cases.push_back({"get a negative id", kGet, bytes(p, n)});
  n = fm_get(&p, "bad21", some, 0, nullptr);
  cases.push_back({"get no ids", kGet, bytes(p, n)});
  n = fm_get(&p, "bad21", some, 2, "colour");
  cases.push_back({"get an unknown field", kGet, bytes(p, n)});
  n = fm_get(&p, "nope", some, 2, nullptr);
  cases.push_back({"get from an unknown collection", kGet, bytes(p, n)});
  n = fm_get(&p, "bad21", unknown, 2, "vector");
  cases.push_back({"get unknown ids is fine: a control", kGet, bytes(p, n)});
  n = fm_search_ids(&p, "bad21", some, 3, 10, nullptr, 0);
  cases.push_back({"query_ids with a negative id", kSearch, bytes(p, n)});
  n = fm_search_ids(&p, "bad21", unknown, 2, 10, nullptr, 0);
  cases.push_back({"query_ids all unknown", kSearch, bytes(p, n)});
  n = fm_search_ids(&p, "bad21", some, 2, 10, q.data(), 128);
  cases.push_back({"queries and query_ids", kSearch, bytes(p, n)});
  n = fm_search_ids(&p, "bad21", some, 2, 1024, nullptr, 0);
  cases.push_back({"query_ids with k = max k", kSearch, bytes(p, n)});
  // Attributes and filters: on a collection without attributes, and on one with them.
  std::string det;
  ASSERT_EQ(qvattr::create(fleet->router(0), "attrs21", "Flat", true, &det, 2, 1), GRPC_STATUS_OK)
      << det;
  ASSERT_EQ(qvattr::create(one.target(), "attrs21", "Flat", true, &det), GRPC_STATUS_OK) << det;
  {
    qvattr::Model m1, m2;
    m1.base = m2.base = &sift->base;
    ASSERT_NO_FATAL_FAILURE(m1.upsert_range(fleet->router(0), "attrs21", 0, 50));
    ASSERT_NO_FATAL_FAILURE(m2.upsert_range(one.target(), "attrs21", 0, 50));
    std::string seen;
    ASSERT_TRUE(fleet->wait_in_sync("attrs21", 2, 1, 50, 60, &seen)) << seen;
  }
  auto filtered = [&](const char *coll, const char *filter, int path, int exact) {
    am_search_req r{};
    r.coll = coll;
    r.q = q.data();
    r.floats = 128;
    r.k = 10;
    r.filter = filter;
    r.filter_path = path;
    r.exact = exact;
    uint8_t *b = nullptr;
    const size_t len = am_search(&b, &r);
    return bytes(b, len);
  };
  cases.push_back({"a filter on a collection without attributes", kSearch,
                   filtered("bad21", "category = 1", 0, 0)});
  cases.push_back(
      {"a filter path out of range", kSearch, filtered("attrs21", "category = 1", 7, 0)});
  cases.push_back(
      {"a filter of an unknown attribute", kSearch, filtered("attrs21", "colour = 1", 0, 1)});
  cases.push_back({"a filter of the wrong type", kSearch, filtered("attrs21", "brand < 3", 0, 0)});
  cases.push_back({"a malformed filter", kSearch, filtered("attrs21", "category in (1,", 1, 0)});
  cases.push_back({"a good filter is fine: a control", kSearch,
                   filtered("attrs21", "category in (1, 2) and not sold_out", 0, 0)});
  {
    const int64_t aids[3] = {900, 901, 902};
    const int64_t ints[3] = {1, 2, 3};
    const double prices[3] = {1.5, NAN, 2.5};
    const am_col wrong_list = {"price", AM_INTS, 3, ints, nullptr, nullptr, nullptr};
    const am_col wrong_count = {"category", AM_INTS, 2, ints, nullptr, nullptr, nullptr};
    const am_col unknown_col = {"colour", AM_INTS, 3, ints, nullptr, nullptr, nullptr};
    const am_col nan_col = {"price", AM_FLOATS, 3, nullptr, prices, nullptr, nullptr};
    const am_col good = {"category", AM_INTS, 3, ints, nullptr, nullptr, nullptr};
    auto up = [&](const char *coll, const am_col &c) {
      uint8_t *b = nullptr;
      const size_t len = am_upsert(&b, coll, 3, aids, sift->base.f.data(), 3 * 128, 1, &c);
      return bytes(b, len);
    };
    cases.push_back({"an attribute column in the wrong list", kUpsert, up("attrs21", wrong_list)});
    cases.push_back(
        {"an attribute column of the wrong count", kUpsert, up("attrs21", wrong_count)});
    cases.push_back({"an attribute column of no attribute", kUpsert, up("attrs21", unknown_col)});
    cases.push_back({"a NaN attribute", kUpsert, up("attrs21", nan_col)});
    cases.push_back({"a column to a collection without attributes", kUpsert, up("bad21", good)});
    const char *names[2] = {"a", "a"};
    const int unset[1] = {0}, twice[2] = {1, 2};
    n = am_create(&p, "fresh", 8, 1, "Flat", 1, names, unset, 0, 0);
    cases.push_back({"an attribute of no type", kCreate, bytes(p, n)});
    n = am_create(&p, "fresh", 8, 1, "Flat", 2, names, twice, 0, 0);
    cases.push_back({"an attribute named twice", kCreate, bytes(p, n)});
  }
  for (const Case &c : cases) {
    std::string d1, d2;
    const grpc_status_code a = qvtest::raw_call(one.target(), c.method, c.body, &d1);
    const grpc_status_code b = qvtest::raw_call(fleet->router(0), c.method, c.body, &d2);
    if (strstr(c.what, "a control") == nullptr) {
      EXPECT_NE(a, GRPC_STATUS_OK) << c.what;
    }
    EXPECT_EQ(b, a) << c.what << ":\n  node:   " << d1 << "\n  router: " << d2;
    if (b != GRPC_STATUS_OK) {
      EXPECT_FALSE(d2.empty()) << c.what;
    }
  }
}
