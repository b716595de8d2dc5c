// A shard's write log on a real 3-server NATS JetStream cluster (quiver/jslog.h), started and
// stopped here: appends acknowledged by a quorum, read back in order from any sequence, a retried
// append de-duplicated by its id, and a killed server costing no acknowledged record.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/engines.h"
#include "common/testdata.h"
#include "quiver/jslog.h"

using qvtest::NatsCluster;
using qvtest::TempDir;

namespace {

struct Log {
  qv_jslog *l = nullptr;
  ~Log() {
    qv_jslog_close(l);
  }
};

struct Rec {
  uint64_t seq;
  std::string data;
};

std::vector<Rec> read_all(qv_jslog *l, uint64_t from) {
  std::vector<Rec> out;
  qv_error e{};
  EXPECT_EQ(qv_jslog_read(
                l, from, 1000,
                [](void *u, uint64_t seq, const void *rec, size_t len) {
                  static_cast<std::vector<Rec> *>(u)->push_back(
                      {seq, std::string(static_cast<const char *>(rec), len)});
                  return 0;
                },
                &out, nullptr, &e),
            QV_OK)
      << e.msg;
  return out;
}

class JsLogTest : public ::testing::Test {
protected:
  TempDir tmp;
  NatsCluster nats;
  Log log;
  void SetUp() override {
    ASSERT_TRUE(nats.start(tmp.path, 3));
    qv_error e{};
    ASSERT_EQ(qv_jslog_open(&log.l, nats.urls().c_str(), "demo-shard0", 3, 20000, &e), QV_OK)
        << e.msg;
  }
};

} // namespace

TEST_F(JsLogTest, AppendsComeBackInOrderFromAnySequence) {
  qv_error e{};
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 200; i++) {
    const std::string r = "upsert " + std::to_string(i);
    uint64_t seq = 0;
    ASSERT_EQ(qv_jslog_append(log.l, r.data(), r.size(), nullptr, &seq, nullptr, &e), QV_OK)
        << e.msg;
    seqs.push_back(seq);
  }
  for (size_t i = 1; i < seqs.size(); i++)
    EXPECT_EQ(seqs[i], seqs[i - 1] + 1);
  uint64_t last = 0;
  ASSERT_EQ(qv_jslog_last_seq(log.l, &last, &e), QV_OK) << e.msg;
  EXPECT_EQ(last, seqs.back());
  auto all = read_all(log.l, 1);
  ASSERT_EQ(all.size(), 200u);
  for (size_t i = 0; i < all.size(); i++) {
    EXPECT_EQ(all[i].seq, seqs[i]);
    EXPECT_EQ(all[i].data, "upsert " + std::to_string(i));
  }
  auto tail = read_all(log.l, seqs[150]); // a replica whose snapshot holds up to seqs[149]
  ASSERT_EQ(tail.size(), 50u);
  EXPECT_EQ(tail.front().data, "upsert 150");
}

TEST_F(JsLogTest, ARetriedAppendWithTheSameIdIsStoredOnce) {
  qv_error e{};
  uint64_t a = 0, b = 0;
  int dup_a = -1, dup_b = -1;
  ASSERT_EQ(qv_jslog_append(log.l, "x", 1, "router1-42", &a, &dup_a, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_jslog_append(log.l, "x", 1, "router1-42", &b, &dup_b, &e), QV_OK) << e.msg;
  EXPECT_EQ(dup_a, 0);
  EXPECT_EQ(dup_b, 1);
  EXPECT_EQ(a, b);
  EXPECT_EQ(read_all(log.l, 1).size(), 1u);
}

TEST_F(JsLogTest, AKilledServerLosesNoAcknowledgedRecord) {
  qv_error e{};
  std::vector<std::string> acked;
  for (int i = 0; i < 300; i++) {
    if (i == 100)
      nats.kill_server(0); // a quorum of 2 of 3 is left
    const std::string r = "rec " + std::to_string(i);
    const std::string id = "w-" + std::to_string(i);
    ASSERT_EQ(qv_jslog_append(log.l, r.data(), r.size(), id.c_str(), nullptr, nullptr, &e), QV_OK)
        << "append " << i << ": " << e.msg;
    acked.push_back(r);
  }
  auto all = read_all(log.l, 1);
  ASSERT_EQ(all.size(), acked.size());
  for (size_t i = 0; i < all.size(); i++)
    EXPECT_EQ(all[i].data, acked[i]);
}

TEST(JsLogOpen, BadArgumentsAndNoServerAreErrors) {
  qv_jslog *l = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_jslog_open(&l, "nats://127.0.0.1:1", "bad name", 3, 500, &e), QV_EINVAL);
  EXPECT_EQ(qv_jslog_open(&l, "", "s", 3, 500, &e), QV_EINVAL);
  EXPECT_EQ(qv_jslog_open(&l, "nats://127.0.0.1:1", "s", 9, 500, &e), QV_EINVAL);
  const std::string nobody = "nats://127.0.0.1:" + std::to_string(qvtest::free_port());
  EXPECT_EQ(qv_jslog_open(&l, nobody.c_str(), "s", 1, 500, &e), QV_EUNAVAILABLE) << e.msg;
  EXPECT_EQ(l, nullptr);
}
