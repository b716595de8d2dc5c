// quiverd in cluster mode against a real etcd: it registers under /quiver/nodes/<id> with the
// address routers reach it at, leaves at once on SIGTERM (the lease revoked before it stops) and
// one lease after a kill -9; a bad --cluster value or an unreachable etcd fails the start.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/engines.h"
#include "common/server.h"
#include "common/testdata.h"
#include "quiver/etcd.h"

using qvtest::EtcdCluster;
using qvtest::Quiverd;
using qvtest::TempDir;

namespace {

class Member : public ::testing::Test {
protected:
  TempDir tmp;
  EtcdCluster etcd;
  qv_etcd *c = nullptr;
  void SetUp() override {
    ASSERT_TRUE(etcd.start(tmp.sub("etcd"), 1));
    qv_error e{};
    ASSERT_EQ(qv_etcd_open(&c, etcd.endpoints().c_str(), 5000, &e), QV_OK) << e.msg;
  }
  void TearDown() override {
    qv_etcd_close(c);
  }
  std::string node(const std::string &id) {
    char *v = nullptr;
    qv_error e{};
    std::string out;
    if (qv_etcd_get(c, ("/quiver/nodes/" + id).c_str(), &v, nullptr, nullptr, &e) == QV_OK)
      out = v;
    free(v);
    return out;
  }
  std::vector<std::string> flags(const std::string &id) {
    return {"--cluster", "etcd=" + etcd.endpoints(), "--node-id", id, "--lease-s", "2"};
  }
};

} // namespace

TEST_F(Member, ANodeRegistersAndLeavesAtOnceOnSigterm) {
  Quiverd srv;
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags("shard-a")));
  std::string v;
  for (int i = 0; i < 50 && v.empty(); i++) { // registered right after the port is written
    v = node("shard-a");
    if (v.empty())
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(v.empty()) << srv.log();
  EXPECT_NE(v.find("\"addr\":\"127.0.0.1:" + std::to_string(srv.port) + "\""), std::string::npos)
      << v;
  std::this_thread::sleep_for(std::chrono::seconds(3)); // past one 2 s lease: refreshed
  EXPECT_FALSE(node("shard-a").empty()) << "the lease is kept alive while quiverd runs";
  ASSERT_EQ(kill(srv.pid, SIGTERM), 0);
  int st = 0;
  ASSERT_EQ(waitpid(srv.pid, &st, 0), srv.pid);
  srv.pid = -1;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << srv.log();
  EXPECT_TRUE(node("shard-a").empty()) << "a clean stop revokes the lease";
  const std::string log = srv.log();
  const size_t left = log.find("cluster: left"), stopped = log.find("stopped in");
  ASSERT_NE(left, std::string::npos) << log;
  EXPECT_LT(left, stopped) << "it leaves before it stops answering";
}

TEST_F(Member, AKilledNodeIsGoneOneLeaseLater) {
  Quiverd srv;
  ASSERT_TRUE(srv.start(tmp.sub("data"), flags("shard-b")));
  for (int i = 0; i < 50 && node("shard-b").empty(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_FALSE(node("shard-b").empty()) << srv.log();
  kill(srv.pid, SIGKILL);
  waitpid(srv.pid, nullptr, 0);
  srv.pid = -1;
  bool gone = false;
  for (int i = 0; i < 150 && !gone; i++) { // a 2 s lease: gone well within 15 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gone = node("shard-b").empty();
  }
  EXPECT_TRUE(gone);
}

TEST_F(Member, ABadClusterValueOrIdFailsTheStart) {
  const std::string eps = etcd.endpoints();
  for (const std::string &bad :
       {std::string("--cluster nats=nats://127.0.0.1:4222"),
        std::string("--cluster zookeeper=127.0.0.1:2181"),
        "--cluster etcd=" + eps + " --node-id 'a b'", "--cluster etcd=" + eps + " --advertise x"}) {
    const std::string cmd = std::string(QUIVER_BIN_DIR) + "/quiverd --listen 127.0.0.1:0 " +
                            "--data-dir " + tmp.sub("bad") + " " + bad;
    qvtest::CmdResult r = qvtest::run_command("timeout 30 " + cmd);
    EXPECT_EQ(r.code, 1) << bad << "\n" << r.out;
    EXPECT_NE(r.out.find("ERROR"), std::string::npos) << r.out;
  }
}
