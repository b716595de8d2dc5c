// The quiver CLI against the real quiverd: the workflow of the serving issue's acceptance check,
// and mistakes that must end non-zero with the gRPC status name in the message.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "common/server.h"

namespace {

using Out = qvtest::CmdResult;

Out quiver(const std::string &server, const std::string &args) {
  return qvtest::run_command(std::string(QUIVER_BIN_DIR) + "/quiver --server " + server + " " +
                             args);
}

double json_number(const std::string &s, const std::string &key) {
  auto pos = s.find("\"" + key + "\":");
  return pos == std::string::npos ? -1 : std::strtod(s.c_str() + pos + key.size() + 3, nullptr);
}

} // namespace

TEST(CliServer, CreateUpsertBuildSearchThenRestart) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  qvtest::TempDir tmp;
  qvtest::Quiverd srv;
  ASSERT_TRUE(srv.start(tmp.sub("data")));
  std::string s = srv.target(), d = qvtest::data_path("sift5k/sift5k");
  Out r = quiver(s, "create sift --dim 128 --metric l2 --spec IVF64,Flat");
  ASSERT_EQ(r.code, 0) << r.out;
  r = quiver(s, "upsert sift --input " + d + "_base.fvecs --chunk-mb 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("count now 5000"), std::string::npos) << r.out;
  r = quiver(s, "build sift");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ready"), std::string::npos) << r.out;
  std::string search = "search sift --queries " + d + "_query.fvecs --k 10 --nprobe 32 " +
                       "--groundtruth " + d + "_groundtruth.ivecs --json";
  r = quiver(s, search);
  ASSERT_EQ(r.code, 0) << r.out;
  double recall = json_number(r.out, "recall_at_k");
  EXPECT_GE(recall, 0.95) << r.out;
  EXPECT_EQ(json_number(r.out, "n_queries"), 100);
  // Wrong dimension: non-zero exit, INVALID_ARGUMENT in the message.
  r = quiver(s, "search sift --queries " + qvtest::data_path("deep10k/deep10k_query.fvecs"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
  r = quiver(s, "describe nope");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("NOT_FOUND"), std::string::npos) << r.out;
  r = quiver(s, "create sift --dim 128");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("ALREADY_EXISTS"), std::string::npos) << r.out;
  r = quiver(s, "search sift --queries " + d + "_query.fvecs --k 0");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "delete sift --ids 1,x");
  EXPECT_EQ(r.code, 2) << r.out;
  // Usage mistakes are caught before any call: stray arguments, --exact with rerank flags.
  r = quiver(s, "describe sift extra");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("unexpected argument 'extra'"), std::string::npos) << r.out;
  r = quiver(s, "list extra");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "search sift --queries " + d + "_query.fvecs --exact --candidates 50");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--exact and the rerank flags"), std::string::npos) << r.out;
  // The --timeout=S spelling is accepted among the global options.
  r = quiver(s, "--timeout=1 describe sift");
  EXPECT_EQ(r.code, 0) << r.out;
  // SIGTERM: exit 0 well within 10 s; a restart answers the same.
  double secs = 0;
  ASSERT_EQ(srv.stop(SIGTERM, &secs), 0) << srv.log();
  EXPECT_LT(secs, 10.0);
  ASSERT_TRUE(srv.start(srv.data_dir));
  r = quiver(srv.target(), search);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "recall_at_k"), recall);
  r = quiver(srv.target(), "health");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("SERVING"), std::string::npos);
}

TEST(CliServer, DevicePlacementIsReported) {
  qvtest::TempDir tmp;
  qvtest::Quiverd srv;
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--device", "cpu"}));
  std::string s = srv.target();
  Out r = quiver(s, "create g --dim 4 --device gpu --deferred-deletes");
  ASSERT_EQ(r.code, 0) << r.out;
  r = quiver(s, "describe g");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("device gpu, serving from cpu: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(deferred deletes)"), std::string::npos) << r.out;
  r = quiver(s, "create c --dim 4"); // the server's --device default
  ASSERT_EQ(r.code, 0) << r.out;
  r = quiver(s, "describe c --json");
  EXPECT_NE(r.out.find("\"device\": \"cpu\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"placement\": \"cpu: device cpu asked\""), std::string::npos) << r.out;
  r = quiver(s, "create t --dim 4 --device tpu");
  EXPECT_EQ(r.code, 2) << r.out;
  r = qvtest::run_command(std::string(QUIVER_BIN_DIR) + "/quiverd --device tpu");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("auto, cpu, gpu"), std::string::npos) << r.out;
}

TEST(CliServer, UnreachableServerIsUnavailable) {
  Out r = quiver("127.0.0.1:1", "list");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("UNAVAILABLE"), std::string::npos) << r.out;
}

// quiver push (streamed and server-side) and quiver bench (closed and open loop), with the
// mistakes each must refuse clearly.
TEST(CliServer, PushAndBench) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  QV_REQUIRE_DATA("deep10k/deep10k_base.fvecs");
  qvtest::TempDir tmp;
  const std::string root = tmp.sub("exports"), d = qvtest::data_path("sift5k/sift5k");
  qvtest::Quiverd srv;
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--import-root", root}));
  const std::string s = srv.target(), bin = std::string(QUIVER_BIN_DIR) + "/quiver ";
  Out r = qvtest::run_command(bin + "index build --input " + d + "_base.fvecs --spec IVF32,Flat " +
                              "--metric l2 --out " + root + "/sift");
  ASSERT_EQ(r.code, 0) << r.out;
  r = qvtest::run_command(bin + "index build --input " +
                          qvtest::data_path("deep10k/deep10k_base.fvecs") +
                          " --spec IVF16,Flat --metric l2 --out " + root + "/deep");
  ASSERT_EQ(r.code, 0) << r.out;
  // Streamed from this machine, then loaded by the server from under --import-root.
  r = quiver(s, "push streamed --index " + root + "/sift --create");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("in 5 file(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5000 vectors"), std::string::npos) << r.out;
  r = quiver(s, "push local --server-path " + root + "/sift --create");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("5000 vectors"), std::string::npos) << r.out;
  // Both answer like the offline index.
  const std::string search = " --queries " + d + "_query.fvecs --k 10 --nprobe 32 --groundtruth " +
                             d + "_groundtruth.ivecs --json";
  r = quiver(s, "search streamed" + search);
  ASSERT_EQ(r.code, 0) << r.out;
  const double recall = json_number(r.out, "recall_at_k");
  EXPECT_GE(recall, 0.95) << r.out;
  r = quiver(s, "search local" + search);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "recall_at_k"), recall) << r.out;
  // Refused: a path outside --import-root, a missing directory, a wrong-dimension index (the
  // collection keeps its own), a directory that is no index, an unknown collection.
  r = quiver(s, "push x --server-path /etc --create");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("FAILED_PRECONDITION"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outside --import-root"), std::string::npos) << r.out;
  r = quiver(s, "push streamed --server-path " + root + "/missing");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("NOT_FOUND"), std::string::npos) << r.out;
  r = quiver(s, "push streamed --index " + root + "/deep");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the index has dim 96"), std::string::npos) << r.out;
  r = quiver(s, "push streamed --index " + tmp.sub("empty"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("MANIFEST.json"), std::string::npos) << r.out;
  r = quiver(s, "push nope --index " + root + "/sift");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("NOT_FOUND"), std::string::npos) << r.out;
  r = quiver(s, "push streamed --index " + root + "/sift --server-path " + root + "/sift");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "describe streamed --json");
  EXPECT_NE(r.out.find("\"dim\": 128"), std::string::npos) << r.out;

  // Closed loop: every call answered, recall as measured by search.
  const std::string q = " --queries " + d + "_query.fvecs --warmup 0 --duration 1 --json";
  r = quiver(s, "bench streamed" + q + " --k 10 --nprobe 32 --concurrency 4 --groundtruth " + d +
                    "_groundtruth.ivecs");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"mode\": \"closed\""), std::string::npos) << r.out;
  EXPECT_GT(json_number(r.out, "calls"), 0) << r.out;
  EXPECT_EQ(json_number(r.out, "errors"), 0) << r.out;
  EXPECT_EQ(json_number(r.out, "recall_at_k"), recall) << r.out;
  // Open loop: the schedule, not the server, sets the pace (a closed loop would run far more
  // than 100 calls in a second against this collection).
  r = quiver(s, "bench streamed" + q + " --rate 100 --concurrency 8 --batch 4");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"mode\": \"open\""), std::string::npos) << r.out;
  const double calls = json_number(r.out, "calls");
  EXPECT_GE(calls, 50) << r.out;
  EXPECT_LE(calls, 101) << r.out;
  EXPECT_EQ(json_number(r.out, "queries"), 4 * calls) << r.out;
  // Mistakes end at once with the server's own message, not a table of identical errors.
  r = quiver(s, "bench nope" + q);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("NOT_FOUND: collection 'nope' does not exist"), std::string::npos) << r.out;
  r = quiver(s, "bench streamed --queries " + qvtest::data_path("deep10k/deep10k_query.fvecs"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
  r = quiver(s, "bench streamed" + q + " --batch 20000"); // over the server's per-request limit
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("RESOURCE_EXHAUSTED"), std::string::npos) << r.out;
  r = quiver(s, "bench streamed" + q + " --k 0");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "bench streamed" + q + " --rate -1");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "bench streamed" + q + " --groundtruth " + d + "_groundtruth.ivecs --k 101");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("need"), std::string::npos) << r.out;
}

// The fleet's CLI options against a single node: --shards/--replicas above 1 are refused by the
// server (INVALID_ARGUMENT naming the fleet), 0 by the CLI; `quiver cluster status` answers with
// the node's collections and no fleet; search --allow-partial changes nothing.
TEST(CliServer, FleetOptionsAndClusterStatusOnASingleNode) {
  qvtest::TempDir tmp;
  qvtest::Quiverd srv;
  ASSERT_TRUE(srv.start(tmp.sub("data")));
  std::string s = srv.target();
  Out r = quiver(s, "cluster status");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("not a fleet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no collections"), std::string::npos) << r.out;
  r = quiver(s, "create split --dim 4 --shards 2 --replicas 2");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("INVALID_ARGUMENT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("needs a fleet"), std::string::npos) << r.out;
  r = quiver(s, "create split --dim 4 --shards 0");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--shards must be"), std::string::npos) << r.out;
  r = quiver(s, "create split --dim 4 --replicas x");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "create demo --dim 4 --shards 1 --replicas 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("fleet:"), std::string::npos) << r.out; // only shown for > 1
  r = quiver(s, "describe demo --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"shards\": 1, \"replicas\": 1"), std::string::npos) << r.out;
  r = quiver(s, "cluster status");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("not a fleet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("demo: 1 shard(s) x 1 replica(s), ready, 0 vectors"), std::string::npos)
      << r.out;
  r = quiver(s, "cluster status --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out,
            "{\"fleet\": false, \"nodes\": [], \"collections\": [{\"name\": \"demo\", \"state\": "
            "\"ready\", \"count\": 0, \"shards\": 1, \"replicas\": 1, \"shard_status\": []}]}\n");
  r = quiver(s, "cluster");
  EXPECT_EQ(r.code, 2) << r.out;
  r = quiver(s, "cluster stat");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("unknown cluster command 'stat'"), std::string::npos) << r.out;
  r = quiver(s, "cluster status extra");
  EXPECT_EQ(r.code, 2) << r.out;
  // search --allow-partial: a whole answer, an empty missing_shards and no note.
  std::string syn = tmp.sub("syn");
  r = qvtest::run_command(std::string(QUIVER_BIN_DIR) + "/quiver data synth --out " + syn +
                          " --n 50 --queries 3 --dim 4 --clusters 2");
  ASSERT_EQ(r.code, 0) << r.out;
  r = quiver(s, "upsert demo --input " + syn + "_base.fvecs");
  ASSERT_EQ(r.code, 0) << r.out;
  r = quiver(s, "search demo --queries " + syn + "_query.fvecs --k 5 --allow-partial --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"missing_shards\": []"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("partial answer"), std::string::npos) << r.out;
  r = quiver(s, "search demo --queries " + syn + "_query.fvecs --k 5 --allow-partial");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("partial answer"), std::string::npos) << r.out;
  r = quiver(s, "cluster status");
  EXPECT_NE(r.out.find("demo: 1 shard(s) x 1 replica(s), ready, 50 vectors"), std::string::npos)
      << r.out;
}
