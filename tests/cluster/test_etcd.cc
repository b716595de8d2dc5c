// The cluster's etcd client (quiver/etcd.h) against a real 3-member etcd cluster on loopback,
// started and stopped here: keys, prefixes, exclusive creation, leases (refresh, revoke, expiry)
// and a killed leader costing time, not errors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/engines.h"
#include "common/testdata.h"
#include "quiver/etcd.h"

using qvtest::EtcdCluster;
using qvtest::TempDir;

namespace {

struct Etcd {
  qv_etcd *e = nullptr;
  ~Etcd() {
    qv_etcd_close(e);
  }
};

class EtcdTest : public ::testing::Test {
protected:
  TempDir tmp;
  EtcdCluster cluster;
  Etcd c;
  void SetUp() override {
    ASSERT_TRUE(cluster.start(tmp.path, 3));
    qv_error e{};
    ASSERT_EQ(qv_etcd_open(&c.e, cluster.endpoints().c_str(), 10000, &e), QV_OK) << e.msg;
  }
  std::string get(const std::string &key, qv_status *st = nullptr) {
    char *v = nullptr;
    size_t len = 0;
    qv_error e{};
    qv_status s = qv_etcd_get(c.e, key.c_str(), &v, &len, nullptr, &e);
    if (st)
      *st = s;
    std::string out = v ? std::string(v, len) : std::string();
    free(v);
    return out;
  }
  std::map<std::string, std::string> range(const std::string &prefix) {
    std::map<std::string, std::string> out;
    qv_error e{};
    EXPECT_EQ(qv_etcd_range_prefix(
                  c.e, prefix.c_str(),
                  [](void *u, const char *k, const char *v, size_t n) {
                    (*static_cast<std::map<std::string, std::string> *>(u))[k] = std::string(v, n);
                    return 0;
                  },
                  &out, nullptr, &e),
              QV_OK)
        << e.msg;
    return out;
  }
};

} // namespace

TEST_F(EtcdTest, KeysAndPrefixesRoundTrip) {
  qv_error e{};
  int64_t r1 = 0, r2 = 0;
  ASSERT_EQ(qv_etcd_put(c.e, "/quiver/nodes/a", "10.0.0.1:7070", 13, 0, &r1, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_etcd_put(c.e, "/quiver/nodes/b", "10.0.0.2:7070", 13, 0, &r2, &e), QV_OK) << e.msg;
  EXPECT_GT(r2, r1) << "each put is a new revision";
  ASSERT_EQ(qv_etcd_put(c.e, "/quiver/nodesX", "not a node", 10, 0, nullptr, &e), QV_OK);
  const char bin[] = {'x', '\0', 'y'}; // values are bytes, NULs included
  ASSERT_EQ(qv_etcd_put(c.e, "/quiver/bin", bin, 3, 0, nullptr, &e), QV_OK);
  EXPECT_EQ(get("/quiver/nodes/a"), "10.0.0.1:7070");
  EXPECT_EQ(get("/quiver/bin"), std::string(bin, 3));
  qv_status st;
  get("/quiver/nodes/none", &st);
  EXPECT_EQ(st, QV_ENOTFOUND);
  auto nodes = range("/quiver/nodes/");
  EXPECT_EQ(nodes, (std::map<std::string, std::string>{{"/quiver/nodes/a", "10.0.0.1:7070"},
                                                       {"/quiver/nodes/b", "10.0.0.2:7070"}}));
  int64_t deleted = 0;
  ASSERT_EQ(qv_etcd_delete(c.e, "/quiver/nodes/", 1, &deleted, &e), QV_OK) << e.msg;
  EXPECT_EQ(deleted, 2);
  EXPECT_TRUE(range("/quiver/nodes/").empty());
  EXPECT_EQ(get("/quiver/nodesX"), "not a node") << "a prefix delete stops at the prefix";
}

TEST_F(EtcdTest, OfRacingCreatorsExactlyOneWins) {
  std::atomic<int> wins{0}, failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; t++)
    ts.emplace_back([&, t] {
      const std::string v = "controller-" + std::to_string(t);
      int created = 0;
      qv_error e{};
      if (qv_etcd_create(c.e, "/quiver/controller", v.data(), v.size(), 0, &created, &e) != QV_OK)
        failures++;
      wins += created;
    });
  for (auto &t : ts)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(wins.load(), 1);
  EXPECT_EQ(get("/quiver/controller").rfind("controller-", 0), 0u);
}

TEST_F(EtcdTest, ALeaseKeepsItsKeysWhileRefreshedAndDropsThemWhenRevokedOrExpired) {
  qv_error e{};
  int64_t lease = 0, granted = 0, left = 0;
  ASSERT_EQ(qv_etcd_lease_grant(c.e, 3, &lease, &granted, &e), QV_OK) << e.msg;
  EXPECT_EQ(granted, 3);
  ASSERT_EQ(qv_etcd_put(c.e, "/quiver/members/n1", "up", 2, lease, nullptr, &e), QV_OK) << e.msg;
  for (int i = 0; i < 5; i++) { // 5 s of refreshes past a 3 s ttl
    std::this_thread::sleep_for(std::chrono::seconds(1));
    ASSERT_EQ(qv_etcd_lease_keepalive(c.e, lease, &left, &e), QV_OK) << e.msg;
    EXPECT_GE(left, 1);
  }
  EXPECT_EQ(get("/quiver/members/n1"), "up") << "a refreshed lease keeps its key";
  ASSERT_EQ(qv_etcd_lease_revoke(c.e, lease, &e), QV_OK) << e.msg;
  qv_status st;
  get("/quiver/members/n1", &st);
  EXPECT_EQ(st, QV_ENOTFOUND) << "a revoked lease's key goes at once (a clean leave)";
  EXPECT_EQ(qv_etcd_lease_keepalive(c.e, lease, &left, &e), QV_ENOTFOUND);
  EXPECT_EQ(qv_etcd_lease_revoke(c.e, lease, &e), QV_ENOTFOUND) << e.msg;

  int64_t short_lease = 0;
  ASSERT_EQ(qv_etcd_lease_grant(c.e, 1, &short_lease, nullptr, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_etcd_put(c.e, "/quiver/members/n2", "up", 2, short_lease, nullptr, &e), QV_OK);
  bool gone = false;
  for (int i = 0; i < 150 && !gone; i++) { // etcd expires within ttl + an election tick or so
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    get("/quiver/members/n2", &st);
    gone = st == QV_ENOTFOUND;
  }
  EXPECT_TRUE(gone) << "an unrefreshed lease's key is gone within 15 s (a node that died)";
  EXPECT_EQ(qv_etcd_lease_grant(c.e, 0, &short_lease, nullptr, &e), QV_EINVAL);
}

TEST_F(EtcdTest, AKilledLeaderCostsTimeNotErrors) {
  qv_error e{};
  ASSERT_EQ(qv_etcd_put(c.e, "/quiver/map", "v1", 2, 0, nullptr, &e), QV_OK) << e.msg;
  int lead = cluster.leader();
  ASSERT_GE(lead, 0) << cluster.etcdctl("endpoint status").out;
  cluster.kill_member(size_t(lead));
  // The same client, the same endpoint list (the dead member still in it): writes and reads go
  // on once the two left elect a leader.
  for (int i = 0; i < 20; i++) {
    const std::string v = "v" + std::to_string(i + 2);
    ASSERT_EQ(qv_etcd_put(c.e, "/quiver/map", v.data(), v.size(), 0, nullptr, &e), QV_OK)
        << "put " << i << " after the leader's kill: " << e.msg;
    EXPECT_EQ(get("/quiver/map"), v);
  }
}

TEST(EtcdOpen, BadEndpointsAreRefusedAndAnUnreachableClusterTimesOut) {
  qv_etcd *c = nullptr;
  qv_error e{};
  for (const char *bad :
       {"", ",", "127.0.0.1:1,,127.0.0.1:2", "http://127.0.0.1:2379", "127.0.0.1:1, 127.0.0.1:2"}) {
    EXPECT_EQ(qv_etcd_open(&c, bad, 1000, &e), QV_EINVAL) << bad;
    EXPECT_EQ(c, nullptr);
  }
  const std::string nobody = "127.0.0.1:" + std::to_string(qvtest::free_port());
  ASSERT_EQ(qv_etcd_open(&c, nobody.c_str(), 500, &e), QV_OK) << e.msg;
  const auto t0 = std::chrono::steady_clock::now();
  qv_status st = qv_etcd_put(c, "/k", "v", 1, 0, nullptr, &e);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(st == QV_EDEADLINE || st == QV_EUNAVAILABLE) << qv_status_name(st) << ": " << e.msg;
  EXPECT_LT(s, 5.0) << "bounded by the call's deadline";
  qv_etcd_close(c);
}
