// The quiver CLI against the real quiverd: the workflow of the serving issue's acceptance check,
// and mistakes that must end non-zero with the gRPC status name in the message.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "server/quiverd_fixture.h"

namespace {

struct Out {
  int code;
  std::string text;
};

Out quiver(const std::string &server, const std::string &args) {
  std::string cmd =
      std::string(QUIVER_BIN_DIR) + "/quiver --server " + server + " " + args + " 2>&1";
  Out r{-1, ""};
  FILE *p = popen(cmd.c_str(), "r");
  if (p == nullptr)
    return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    r.text.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
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
  ASSERT_EQ(r.code, 0) << r.text;
  r = quiver(s, "upsert sift --input " + d + "_base.fvecs --chunk-mb 1");
  ASSERT_EQ(r.code, 0) << r.text;
  EXPECT_NE(r.text.find("count now 5000"), std::string::npos) << r.text;
  r = quiver(s, "build sift");
  ASSERT_EQ(r.code, 0) << r.text;
  EXPECT_NE(r.text.find("ready"), std::string::npos) << r.text;
  std::string search = "search sift --queries " + d + "_query.fvecs --k 10 --nprobe 32 " +
                       "--groundtruth " + d + "_groundtruth.ivecs --json";
  r = quiver(s, search);
  ASSERT_EQ(r.code, 0) << r.text;
  double recall = json_number(r.text, "recall_at_k");
  EXPECT_GE(recall, 0.95) << r.text;
  EXPECT_EQ(json_number(r.text, "n_queries"), 100);
  // Wrong dimension: non-zero exit, INVALID_ARGUMENT in the message.
  r = quiver(s, "search sift --queries " + qvtest::data_path("deep10k/deep10k_query.fvecs"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.text.find("INVALID_ARGUMENT"), std::string::npos) << r.text;
  r = quiver(s, "describe nope");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.text.find("NOT_FOUND"), std::string::npos) << r.text;
  r = quiver(s, "create sift --dim 128");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.text.find("ALREADY_EXISTS"), std::string::npos) << r.text;
  r = quiver(s, "search sift --queries " + d + "_query.fvecs --k 0");
  EXPECT_EQ(r.code, 2) << r.text;
  r = quiver(s, "delete sift --ids 1,x");
  EXPECT_EQ(r.code, 2) << r.text;
  // SIGTERM: exit 0 well within 10 s; a restart answers the same.
  double secs = 0;
  ASSERT_EQ(srv.stop(SIGTERM, &secs), 0) << srv.log();
  EXPECT_LT(secs, 10.0);
  ASSERT_TRUE(srv.start(srv.data_dir));
  r = quiver(srv.target(), search);
  ASSERT_EQ(r.code, 0) << r.text;
  EXPECT_EQ(json_number(r.text, "recall_at_k"), recall);
  r = quiver(srv.target(), "health");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.text.find("SERVING"), std::string::npos);
}

TEST(CliServer, UnreachableServerIsUnavailable) {
  Out r = quiver("127.0.0.1:1", "list");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.text.find("UNAVAILABLE"), std::string::npos) << r.text;
}
