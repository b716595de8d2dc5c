// A router (--role router: the same method table, Health served by the node's code) answers
// grpc.health.v1 Check and Watch: one etcd member is all it needs to start (no shard server, no
// NATS: health never reaches the fleet). At its stop the watch gets NOT_SERVING and ends, and the
// stop is not held by it.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/engines.h"
#include "common/server.h"

TEST(RouterHealth, ARouterServesCheckAndWatchAndEndsTheWatchAtItsStop) {
  qvtest::TempDir tmp;
  qvtest::EtcdCluster etcd;
  ASSERT_TRUE(etcd.start(tmp.sub("etcd"), 1));
  // Nothing listens on the NATS address: a router connects to a log only to write.
  const std::string cluster =
      "etcd=" + etcd.endpoints() + ",nats=nats://127.0.0.1:" + std::to_string(qvtest::free_port());
  qvtest::Quiverd router;
  ASSERT_TRUE(router.start(tmp.sub("r0"), {"--role", "router", "--cluster", cluster, "--node-id",
                                           "r0", "--lease-s", "2", "--map-poll-ms", "100",
                                           "--shutdown-grace-ms", "30000"}));
  ASSERT_NE(router.log().find(", fleet router"), std::string::npos) << router.log();
  const std::string quiver = std::string(QUIVER_BIN_DIR) + "/quiver";
  qvtest::CmdResult r = qvtest::run_command(quiver + " --server " + router.target() + " health");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "SERVING\n");
  const std::string wlog = tmp.sub("watch.out");
  const pid_t w = qvtest::spawn({quiver, "--server", router.target(), "health", "--watch"}, wlog);
  std::string out;
  for (int i = 0; i < 300 && out.find(" SERVING\n") == std::string::npos; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    out = qvtest::slurp_file(wlog);
  }
  ASSERT_NE(out.find(" SERVING\n"), std::string::npos) << out << router.log();
  double secs = 0;
  EXPECT_EQ(router.stop(SIGTERM, &secs), 0) << router.log();
  EXPECT_LT(secs, 10.0) << "the router's stop waited for the open watch; log:\n" << router.log();
  int st = 0;
  ASSERT_EQ(waitpid(w, &st, 0), w);
  out = qvtest::slurp_file(wlog);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << "\n" << out;
  EXPECT_NE(out.find(" SERVING\n"), std::string::npos) << out;
  EXPECT_NE(out.find(" NOT_SERVING\n"), std::string::npos) << out;
  EXPECT_NE(out.find("the server is shutting down"), std::string::npos) << out;
}
