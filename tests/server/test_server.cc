// Integration suite: the real quiverd over loopback gRPC, driven through libquiver_client (and
// raw gRPC core calls for what a well-behaved client never sends).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/server.h"
#include "quiver/collection.h"

using qvtest::Client;
using qvtest::Matrix;
using qvtest::Quiverd;
using qvtest::raw_call;
using qvtest::TempDir;

namespace {

// Creates `name` from sift5k (IVF64,Flat, l2) through the API and builds it.
void load_sift(qv_client *c, const char *name, const Matrix &base) {
  qv_collection_info info;
  ASSERT_NO_FATAL_FAILURE(qvtest::create(c, name, 128, QV_METRIC_L2, "IVF64,Flat", 16, &info));
  EXPECT_EQ(info.state, 1); // not built
  uint64_t count = 0;
  // Small chunks: the stream really is several messages.
  ASSERT_NO_FATAL_FAILURE(qvtest::upsert_all(c, name, base, 0, 256 * 1024, &count));
  EXPECT_EQ(count, base.rows);
  qv_error e{};
  std::vector<std::string> phases;
  auto cb = [](void *u, const char *phase, uint64_t, uint64_t) {
    static_cast<std::vector<std::string> *>(u)->push_back(phase);
    return 0;
  };
  ASSERT_EQ(qv_client_build(c, name, 0, cb, &phases, &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.state, 2);
  EXPECT_EQ(info.indexed, base.rows);
  EXPECT_EQ(info.index_version, 1u);
  ASSERT_FALSE(phases.empty());
  EXPECT_EQ(phases.back(), "done");
}

class Server : public qvtest::Sift5kServerTest {
protected:
  qvtest::GrpcScope grpc;
  Matrix gt;
  void SetUp() override {
    Sift5kServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    gt = qvtest::load_i64("sift5k/sift5k_groundtruth.ivecs");
    ASSERT_TRUE(srv.start(tmp.sub("data")));
  }
};

} // namespace

TEST_F(Server, AnswersEqualTheIndexLayerAndReachRecall) {
  Client cl(srv.target());
  load_sift(cl.c, "sift", base);
  const size_t k = 10;
  std::vector<float> sc(q.rows * k);
  std::vector<int64_t> ids(q.rows * k);
  qv_error e{};
  ASSERT_EQ(
      qv_client_search(cl.c, "sift", q.f.data(), q.rows, 128, k, 32, 0, sc.data(), ids.data(), &e),
      QV_OK)
      << e.msg;
  EXPECT_GE(qvtest::recall_at_k(ids, gt, q.rows, k), 0.95);
  // The same collection opened in-process from the server's data dir answers the same.
  qv_collection *col = nullptr;
  ASSERT_EQ(qv_collection_open(&col, (srv.data_dir + "/collections/sift").c_str(), &e), QV_OK)
      << e.msg;
  std::vector<float> sc2(q.rows * k);
  std::vector<int64_t> ids2(q.rows * k);
  qv_search_params p{};
  p.k = k;
  p.nprobe = 32;
  ASSERT_EQ(qv_collection_search(col, q.f.data(), q.rows, &p, sc2.data(), ids2.data(), &e), QV_OK);
  qv_collection_close(col);
  EXPECT_EQ(ids, ids2);
  EXPECT_EQ(sc, sc2);
  // Batch of one, and exact search, too.
  ASSERT_EQ(qv_client_search(cl.c, "sift", q.f.data(), 1, 128, k, 0, 1, sc.data(), ids.data(), &e),
            QV_OK);
  for (size_t j = 0; j < k; j++)
    EXPECT_EQ(ids[j], gt.i[j]);
}

TEST_F(Server, EveryErrorCodeIsReachable) {
  Client cl(srv.target());
  qv_error e{};
  float v[128] = {0};
  float sc[10];
  int64_t ids[10];
  // NOT_FOUND
  EXPECT_EQ(qv_client_search(cl.c, "nope", v, 1, 128, 10, 0, 0, sc, ids, &e), QV_ENOTFOUND);
  EXPECT_EQ(std::string(e.msg).rfind("NOT_FOUND: ", 0), 0u) << e.msg;
  qv_collection_info info;
  EXPECT_EQ(qv_client_describe(cl.c, "nope", &info, &e), QV_ENOTFOUND);
  EXPECT_EQ(qv_client_drop(cl.c, "nope", &e), QV_ENOTFOUND);
  // INVALID_ARGUMENT on create: name, dim, metric, spec
  qv_create_opts o{};
  o.name = "../evil";
  o.dim = 128;
  o.metric = QV_METRIC_L2;
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "name"), nullptr) << e.msg;
  o.name = "c";
  o.dim = 0;
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EINVAL);
  o.dim = 128;
  o.index_spec = "HNSW32,PQ8";
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "unsupported index spec"), nullptr) << e.msg;
  o.index_spec = "IVF4,Flat";
  ASSERT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_OK) << e.msg;
  // ALREADY_EXISTS
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EEXIST);
  EXPECT_EQ(std::string(e.msg).rfind("ALREADY_EXISTS: ", 0), 0u) << e.msg;
  // FAILED_PRECONDITION: IVF not built; building with too few vectors
  EXPECT_EQ(qv_client_search(cl.c, "c", v, 1, 128, 10, 0, 0, sc, ids, &e), QV_EPRECONDITION);
  EXPECT_NE(std::strstr(e.msg, "not built"), nullptr) << e.msg;
  EXPECT_EQ(qv_client_build(cl.c, "c", 0, nullptr, nullptr, nullptr, &e), QV_EPRECONDITION);
  // INVALID_ARGUMENT on search: wrong dimension, k, nprobe, NaN, empty
  load_sift(cl.c, "sift", base);
  EXPECT_EQ(qv_client_search(cl.c, "sift", v, 1, 96, 10, 0, 0, sc, ids, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "dimension 96"), nullptr) << e.msg;
  EXPECT_EQ(std::string(e.msg).rfind("INVALID_ARGUMENT: ", 0), 0u) << e.msg;
  EXPECT_EQ(qv_client_search(cl.c, "sift", v, 1, 128, 0, 0, 0, sc, ids, &e), QV_EINVAL);
  std::vector<float> big_sc(2000), many(128 * 2);
  std::vector<int64_t> big_ids(2000);
  EXPECT_EQ(
      qv_client_search(cl.c, "sift", v, 1, 128, 2000, 0, 0, big_sc.data(), big_ids.data(), &e),
      QV_EINVAL); // over --max-k 1024
  EXPECT_NE(std::strstr(e.msg, "max-k"), nullptr) << e.msg;
  EXPECT_EQ(qv_client_search(cl.c, "sift", v, 1, 128, 10, 65, 0, sc, ids, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "nprobe"), nullptr) << e.msg;
  v[5] = NAN;
  EXPECT_EQ(qv_client_search(cl.c, "sift", v, 1, 128, 10, 0, 0, sc, ids, &e), QV_EINVAL);
  v[5] = 0;
  EXPECT_EQ(qv_client_search(cl.c, "sift", v, 0, 128, 10, 0, 0, sc, ids, &e), QV_EINVAL);
  // Upsert: wrong vector count per id, negative id — refused, nothing changes
  int64_t bad_ids[2] = {1, -1};
  EXPECT_EQ(qv_client_upsert(cl.c, "sift", 2, 128, bad_ids, many.data(), 0, nullptr, nullptr,
                             nullptr, &e),
            QV_EINVAL);
  EXPECT_EQ(
      qv_client_upsert(cl.c, "sift", 2, 96, bad_ids, many.data(), 0, nullptr, nullptr, nullptr, &e),
      QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "dimension 128"), nullptr) << e.msg;
  ASSERT_EQ(qv_client_describe(cl.c, "sift", &info, &e), QV_OK);
  EXPECT_EQ(info.count, base.rows);
  // UNIMPLEMENTED for an unknown method; health of an unknown service is NOT_FOUND
  std::string det;
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Frobnicate", "", &det),
            GRPC_STATUS_UNIMPLEMENTED);
  int serving = 0;
  EXPECT_EQ(qv_client_health(cl.c, "", &serving, &e), QV_OK);
  EXPECT_EQ(serving, 1);
  EXPECT_EQ(qv_client_health(cl.c, "quiver.v1.Retrieval", &serving, &e), QV_OK);
  EXPECT_EQ(qv_client_health(cl.c, "other.Service", &serving, &e), QV_ENOTFOUND);
  // Delete reports what it removed and the count after
  int64_t del[3] = {1, 2, 999999};
  uint64_t deleted = 0, count = 0;
  ASSERT_EQ(qv_client_delete(cl.c, "sift", 3, del, &deleted, &count, &e), QV_OK) << e.msg;
  EXPECT_EQ(deleted, 2u);
  EXPECT_EQ(count, base.rows - 2);
  // Drop, then it is gone; list shows the rest sorted
  ASSERT_EQ(qv_client_drop(cl.c, "c", &e), QV_OK) << e.msg;
  qv_collection_info *all = nullptr;
  size_t n = 0;
  ASSERT_EQ(qv_client_list(cl.c, &all, &n, &e), QV_OK);
  ASSERT_EQ(n, 1u);
  EXPECT_STREQ(all[0].name, "sift");
  free(all);
}

TEST_F(Server, DeadlineExceeded) {
  Client cl(srv.target());
  load_sift(cl.c, "sift", base);
  Client hurried(srv.target(), 1); // 1 ms per call: an exact search of 16k queries cannot make it
  std::vector<float> qs(16384 * 128);
  for (size_t i = 0; i < qs.size(); i++)
    qs[i] = q.f[i % q.f.size()];
  std::vector<float> sc(16384 * 10);
  std::vector<int64_t> ids(16384 * 10);
  qv_error e{};
  EXPECT_EQ(qv_client_search(hurried.c, "sift", qs.data(), 16384, 128, 10, 0, 1, sc.data(),
                             ids.data(), &e),
            QV_EDEADLINE)
      << e.msg;
  // The server is fine afterwards.
  EXPECT_EQ(qv_client_search(cl.c, "sift", q.f.data(), 1, 128, 10, 0, 0, sc.data(), ids.data(), &e),
            QV_OK);
}

TEST_F(Server, MalformedBytesGetAnErrorAndTheServerKeepsServing) {
  Client cl(srv.target());
  load_sift(cl.c, "sift", base);
  std::string det;
  std::string garbage = "\xff\xff\xff\xff\x0f\x12\x34garbage that is not protobuf";
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Search", garbage, &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("not a valid"), std::string::npos) << det;
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/CreateCollection", garbage, &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  // A truncated, well-started message.
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Search", "\x0a\x10sift", &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  std::vector<float> sc(10);
  std::vector<int64_t> ids(10);
  qv_error e{};
  EXPECT_EQ(qv_client_search(cl.c, "sift", q.f.data(), 1, 128, 10, 0, 0, sc.data(), ids.data(), &e),
            QV_OK)
      << e.msg;
}

// protobuf-c hands strings to C NUL-terminated: "ref\0junk" was served as "ref", "a\0b" created
// "a", and spec "Flat\0junk" was accepted. Each is refused with the field named; the collection
// the truncated name would have reached is neither served nor created.
TEST_F(Server, StringsWithANulByteOrBadUtf8AreRefused) {
  Client cl(srv.target());
  load_sift(cl.c, "ref", base);
  // Length-delimited string field `num` holding `s` (one-byte lengths suffice here).
  auto str = [](int num, const std::string &s) {
    return std::string(1, char(num << 3 | 2)) + char(s.size()) + s;
  };
  auto vint = [](int num, unsigned v) { return std::string(1, char(num << 3)) + char(v); };
  std::string q1; // one query of 128 floats, packed (field 2)
  q1 += char(2 << 3 | 2);
  q1 += "\x80\x04"; // 512 bytes
  q1.append(reinterpret_cast<const char *>(q.f.data()), 512);
  std::string det;
  const std::string search = str(1, std::string("ref\0junk", 8)) + q1 + vint(4, 10);
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/Search", search, &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("NUL"), std::string::npos) << det;
  EXPECT_NE(det.find("collection"), std::string::npos) << det;
  // The same request with the plain name is served: the refusal is about the byte, nothing else.
  EXPECT_EQ(
      raw_call(srv.target(), "/quiver.v1.Retrieval/Search", str(1, "ref") + q1 + vint(4, 10), &det),
      GRPC_STATUS_OK)
      << det;
  // CreateCollection "a\0b" (dim 4) must not create "a"; spec "Flat\0junk" must not be "Flat".
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/CreateCollection",
                     str(1, std::string("a\0b", 3)) + vint(2, 4), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("'name'"), std::string::npos) << det;
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/CreateCollection",
                     str(1, "b") + vint(2, 4) + str(4, std::string("Flat\0junk", 9)), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("index_spec"), std::string::npos) << det;
  // Not UTF-8 (an overlong '/', a lone continuation byte): refused too.
  EXPECT_EQ(
      raw_call(srv.target(), "/quiver.v1.Retrieval/DescribeCollection", str(1, "r\xc0\xaf"), &det),
      GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(det.find("UTF-8"), std::string::npos) << det;
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/DescribeCollection", str(1, "\x80"), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  // A spec with blanks around it is refused rather than trimmed.
  EXPECT_EQ(raw_call(srv.target(), "/quiver.v1.Retrieval/CreateCollection",
                     str(1, "c") + vint(2, 4) + str(4, " Flat"), &det),
            GRPC_STATUS_INVALID_ARGUMENT);
  qv_collection_info *all = nullptr;
  size_t n = 0;
  qv_error e{};
  ASSERT_EQ(qv_client_list(cl.c, &all, &n, &e), QV_OK) << e.msg;
  ASSERT_EQ(n, 1u) << "only 'ref' exists";
  EXPECT_STREQ(all[0].name, "ref");
  free(all);
}

// A graceful stop whose final save fails exited 0. Nothing is lost (the writes are in the log),
// but the exit status and the log say so; the next start replays the writes.
TEST_F(Server, AStopWhoseFinalSaveFailsSaysSoAndLosesNothing) {
  Client cl(srv.target());
  qv_collection_info info;
  ASSERT_NO_FATAL_FAILURE(qvtest::create(cl.c, "f", 4, QV_METRIC_L2, "Flat", 0, &info));
  qv_error e{};
  int64_t ids[3] = {7, 8, 9};
  float v[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  ASSERT_EQ(qv_client_upsert(cl.c, "f", 3, 4, ids, v, 0, nullptr, nullptr, nullptr, &e), QV_OK)
      << e.msg;
  // The collection's directory made immutable: no new version can be written into it (even by
  // root). Where the file system has no such flag (tmpfs) the test cannot make a save fail.
  std::string dir;
  for (auto &p : std::filesystem::recursive_directory_iterator(tmp.sub("data")))
    if (p.is_directory() && p.path().filename() == "f")
      dir = p.path();
  ASSERT_FALSE(dir.empty());
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  int flags = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0 ||
      (flags |= FS_IMMUTABLE_FL, ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)) {
    close(fd);
    srv.stop();
    GTEST_SKIP() << "cannot set the immutable flag on " << dir << " (" << std::strerror(errno)
                 << "): needs root on a file system that has it";
  }
  const int rc = srv.stop();
  flags &= ~FS_IMMUTABLE_FL;
  EXPECT_EQ(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
  close(fd);
  EXPECT_EQ(rc, 1) << srv.log();
  EXPECT_NE(srv.log().find("could not be saved"), std::string::npos) << srv.log();
  // Restarted, the writes are there (replayed from the log).
  ASSERT_TRUE(srv.start(tmp.sub("data")));
  Client again(srv.target());
  float sc[3];
  int64_t got[3];
  float qv[4] = {0, 1, 0, 0};
  ASSERT_EQ(qv_client_search(again.c, "f", qv, 1, 4, 3, 0, 0, sc, got, &e), QV_OK) << e.msg;
  EXPECT_EQ(got[0], 8);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

TEST_F(Server, ConcurrentClientsGetTheirOwnAnswers) {
  Client cl(srv.target());
  load_sift(cl.c, "sift", base);
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; t++)
    ts.emplace_back([&, t] {
      Client mine(srv.target());
      std::vector<float> sc(10);
      std::vector<int64_t> ids(10);
      for (int i = 0; i < 40; i++) {
        size_t qi = size_t(t * 40 + i) % q.rows;
        qv_error e{};
        if (qv_client_search(mine.c, "sift", &q.f[qi * 128], 1, 128, 10, 64, 0, sc.data(),
                             ids.data(), &e) != QV_OK) {
          failed++;
          continue;
        }
        if (ids[0] != gt.i[qi * gt.cols]) // nprobe 64 == nlist: exact
          wrong++;
      }
    });
  for (auto &t : ts)
    t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(Server, OversizedMessageIsRefused) {
  Quiverd small;
  ASSERT_TRUE(small.start(tmp.sub("small"), {"--max-message-mb", "1", "--demo"}));
  Client cl(small.target());
  std::vector<float> qs(4096 * 128, 1.0f); // 2 MiB
  std::vector<float> sc(4096);
  std::vector<int64_t> ids(4096);
  qv_error e{};
  EXPECT_EQ(
      qv_client_search(cl.c, "demo", qs.data(), 4096, 128, 1, 0, 0, sc.data(), ids.data(), &e),
      QV_ENOMEM)
      << e.msg;
  EXPECT_EQ(std::string(e.msg).rfind("RESOURCE_EXHAUSTED", 0), 0u) << e.msg;
  EXPECT_EQ(qv_client_search(cl.c, "demo", qs.data(), 1, 128, 1, 0, 0, sc.data(), ids.data(), &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(small.stop(), 0);
  EXPECT_EQ(small.log().find("did not finish"), std::string::npos) << small.log();
}

// An Upsert stream whose collection is dropped midway is not acknowledged: its writes went with
// the collection, and the client is told so.
TEST_F(Server, AnUpsertIntoACollectionDroppedMidStreamIsNotAcknowledged) {
  Client cl(srv.target()), other(srv.target());
  ASSERT_NO_FATAL_FAILURE(qvtest::create(cl.c, "gone", 128, QV_METRIC_L2, nullptr));
  qv_error e{};
  std::vector<int64_t> ids = qvtest::seq_ids(base.rows);
  struct Ctx {
    qv_client *other;
    bool dropped = false;
  } ctx{other.c};
  auto drop_after_first_chunk = [](void *user, const char *, uint64_t, uint64_t) -> int {
    auto *c = static_cast<Ctx *>(user);
    if (!c->dropped) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the chunk is applied
      qv_error de{};
      EXPECT_EQ(qv_client_drop(c->other, "gone", &de), QV_OK) << de.msg;
      c->dropped = true;
    }
    return 0;
  };
  uint64_t count = 0;
  EXPECT_EQ(qv_client_upsert(cl.c, "gone", base.rows, 128, ids.data(), base.f.data(), 256 * 1024,
                             drop_after_first_chunk, &ctx, &count, &e),
            QV_ENOTFOUND)
      << e.msg;
  EXPECT_TRUE(ctx.dropped);
  qv_collection_info info;
  EXPECT_EQ(qv_client_describe(cl.c, "gone", &info, &e), QV_ENOTFOUND);
}

// A stop signal the kernel hands to any thread of quiverd (threads that libraries start before
// main, like OpenBLAS's pool, do not block it) must still mean a graceful stop, not death by the
// default action. Sent thread-directed here to the threads other than main that accept it.
TEST_F(Server, AStopSignalOnAnyThreadStopsGracefully) {
  Quiverd one;
  ASSERT_TRUE(one.start(tmp.sub("anythread"), {"--demo"}));
  pid_t target = -1;
  const std::string tasks = "/proc/" + std::to_string(one.pid) + "/task";
  for (const auto &t : std::filesystem::directory_iterator(tasks)) {
    const pid_t tid = std::stoi(t.path().filename().string());
    if (tid == one.pid)
      continue;
    std::ifstream st(t.path() / "status");
    std::string line;
    while (std::getline(st, line))
      if (line.rfind("SigBlk:", 0) == 0 &&
          (std::stoull(line.substr(7), nullptr, 16) & (1ull << (SIGTERM - 1))) == 0)
        target = tid;
  }
  if (target < 0)
    GTEST_SKIP() << "every thread but main blocks SIGTERM here (no library thread pool)";
  ASSERT_EQ(syscall(SYS_tgkill, one.pid, target, SIGTERM), 0);
  EXPECT_EQ(one.stop(0), 0) << one.log(); // signal 0: only wait for the exit
  EXPECT_NE(one.log().find("received SIGTERM"), std::string::npos) << one.log();
}

TEST_F(Server, SigtermThenRestartKeepsEveryCollection) {
  std::vector<float> sc(q.rows * 10), sc2(q.rows * 10);
  std::vector<int64_t> ids(q.rows * 10), ids2(q.rows * 10);
  qv_error e{};
  {
    Client cl(srv.target());
    load_sift(cl.c, "sift", base);
    ASSERT_NO_FATAL_FAILURE(qvtest::create(cl.c, "empty", 8, QV_METRIC_COSINE, nullptr));
    ASSERT_EQ(qv_client_search(cl.c, "sift", q.f.data(), q.rows, 128, 10, 0, 0, sc.data(),
                               ids.data(), &e),
              QV_OK);
  }
  double secs = 0;
  EXPECT_EQ(srv.stop(SIGTERM, &secs), 0) << srv.log();
  EXPECT_LT(secs, 10.0);
  ASSERT_TRUE(srv.start(srv.data_dir));
  Client cl(srv.target());
  qv_collection_info *all = nullptr;
  size_t n = 0;
  ASSERT_EQ(qv_client_list(cl.c, &all, &n, &e), QV_OK);
  ASSERT_EQ(n, 2u);
  EXPECT_STREQ(all[0].name, "empty");
  EXPECT_EQ(all[0].metric, QV_METRIC_COSINE);
  EXPECT_STREQ(all[1].name, "sift");
  EXPECT_EQ(all[1].count, base.rows);
  EXPECT_EQ(all[1].state, 2);
  free(all);
  ASSERT_EQ(qv_client_search(cl.c, "sift", q.f.data(), q.rows, 128, 10, 0, 0, sc2.data(),
                             ids2.data(), &e),
            QV_OK);
  EXPECT_EQ(ids, ids2);
  EXPECT_EQ(sc, sc2);
}

TEST_F(Server, RerankRefinesFiltersAndRefusesWhatItCannotDo) {
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(qvtest::load_built(cl.c, "pq", base, "IVF32,PQ8"));
  qv_error e{};
  const size_t k = 10;
  std::vector<float> sc(q.rows * k);
  std::vector<int64_t> raw(q.rows * k), ref(q.rows * k);
  ASSERT_EQ(
      qv_client_search(cl.c, "pq", q.f.data(), q.rows, 128, k, 16, 0, sc.data(), raw.data(), &e),
      QV_OK);
  qv_client_rerank rr{};
  rr.candidates = 200;
  rr.refine = 1;
  ASSERT_EQ(qv_client_search_rerank(cl.c, "pq", q.f.data(), q.rows, 128, k, 16, &rr, sc.data(),
                                    ref.data(), &e),
            QV_OK)
      << e.msg;
  double r_raw = qvtest::recall_at_k(raw, gt, q.rows, k),
         r_ref = qvtest::recall_at_k(ref, gt, q.rows, k);
  std::printf("[ rerank ] sift5k IVF32,PQ8 nprobe=16: recall@10 raw %.3f, refined (k'=200) %.3f\n",
              r_raw, r_ref);
  EXPECT_GE(r_ref, 0.95);
  EXPECT_GT(r_ref, r_raw + 0.2);
  // Deny the first query's best: it never comes back.
  int64_t deny = ref[0];
  rr.deny_ids = &deny;
  rr.n_deny = 1;
  ASSERT_EQ(qv_client_search_rerank(cl.c, "pq", q.f.data(), 1, 128, k, 16, &rr, sc.data(),
                                    ref.data(), &e),
            QV_OK);
  for (size_t j = 0; j < k; j++)
    EXPECT_NE(ref[j], deny);
  // More candidates than --max-candidates (default 4096) are refused, naming the flag.
  rr.deny_ids = nullptr;
  rr.n_deny = 0;
  rr.candidates = 4097;
  EXPECT_EQ(qv_client_search_rerank(cl.c, "pq", q.f.data(), 1, 128, k, 16, &rr, sc.data(),
                                    ref.data(), &e),
            QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("--max-candidates"), std::string::npos) << e.msg;
  // Allow-list of three ids (ranks 9, 4, 6 of the raw search): at most those three, padded after.
  int64_t allow[3] = {raw[8], raw[3], raw[5]};
  std::vector<int64_t> want(allow, allow + 3);
  std::sort(want.begin(), want.end());
  rr.allow_ids = allow;
  rr.n_allow = 3;
  rr.candidates = 4096;
  ASSERT_EQ(qv_client_search_rerank(cl.c, "pq", q.f.data(), 1, 128, k, 32 /* nlist: all */, &rr,
                                    sc.data(), ref.data(), &e),
            QV_OK)
      << e.msg;
  std::vector<int64_t> got(ref.begin(), ref.begin() + 3);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(ref[3], -1);
  // What does not fit is refused clearly.
  float w[2] = {1, 1};
  rr.allow_ids = nullptr;
  rr.n_allow = 0;
  rr.candidates = 50;
  rr.weights = w;
  rr.n_weights = 2;
  EXPECT_EQ(qv_client_search_rerank(cl.c, "pq", q.f.data(), 1, 128, k, 16, &rr, sc.data(),
                                    ref.data(), &e),
            QV_EINVAL); // this collection's items carry no features
  EXPECT_NE(std::strstr(e.msg, "carry 0 features"), nullptr) << e.msg;
  rr.n_weights = 0;
  rr.weights = nullptr;
  rr.candidates = 5;
  EXPECT_EQ(qv_client_search_rerank(cl.c, "pq", q.f.data(), 1, 128, k, 16, &rr, sc.data(),
                                    ref.data(), &e),
            QV_EINVAL);
  rr.candidates = 0;
  rr.mmr_lambda = 3;
  EXPECT_EQ(qv_client_search_rerank(cl.c, "pq", q.f.data(), 1, 128, k, 16, &rr, sc.data(),
                                    ref.data(), &e),
            QV_EINVAL);
}

TEST_F(Server, ItemFeaturesFeedTheBlend) {
  Client cl(srv.target());
  qv_create_opts o{};
  o.name = "items";
  o.dim = 128;
  o.metric = QV_METRIC_L2;
  o.index_spec = "IVF16,Flat";
  o.n_features = 1;
  qv_error e{};
  qv_collection_info info;
  ASSERT_EQ(qv_client_create(cl.c, &o, &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.n_features, 1u);
  const size_t n = 2000;
  std::vector<int64_t> rows(n);
  std::vector<float> feat(n);
  for (size_t i = 0; i < n; i++) {
    rows[i] = int64_t(i);
    feat[i] = float(i % 97); // "popularity"
  }
  ASSERT_EQ(qv_client_upsert_features(cl.c, "items", n, 128, rows.data(), base.f.data(),
                                      feat.data(), 1, 64 * 1024, nullptr, nullptr, nullptr, &e),
            QV_OK)
      << e.msg;
  ASSERT_EQ(qv_client_build(cl.c, "items", 0, nullptr, nullptr, &info, &e), QV_OK) << e.msg;
  // Similarity weight 0, feature weight 1: the candidates come back by popularity.
  float w[2] = {0.0f, 1.0f};
  qv_client_rerank rr{};
  rr.candidates = 300;
  rr.refine = 1;
  rr.weights = w;
  rr.n_weights = 2;
  std::vector<float> sc(10);
  std::vector<int64_t> ids(10);
  ASSERT_EQ(qv_client_search_rerank(cl.c, "items", q.f.data(), 1, 128, 10, 16, &rr, sc.data(),
                                    ids.data(), &e),
            QV_OK)
      << e.msg;
  for (size_t j = 0; j < 10; j++) {
    EXPECT_FLOAT_EQ(sc[j], float(ids[j] % 97)) << j;
    if (j > 0) {
      EXPECT_GE(sc[j - 1], sc[j]);
    }
  }
  // Wrong weight count and wrong feature count are refused clearly.
  float w3[3] = {1, 1, 1};
  rr.weights = w3;
  rr.n_weights = 3;
  EXPECT_EQ(qv_client_search_rerank(cl.c, "items", q.f.data(), 1, 128, 10, 16, &rr, sc.data(),
                                    ids.data(), &e),
            QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "carry 1"), nullptr) << e.msg;
  std::vector<float> two(4, 1.0f);
  EXPECT_EQ(qv_client_upsert_features(cl.c, "items", 2, 128, rows.data(), base.f.data(), two.data(),
                                      2, 0, nullptr, nullptr, nullptr, &e),
            QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "features"), nullptr) << e.msg;
}

TEST_F(Server, AnUnreadableCollectionIsKeptAndItsNameRefused) {
  qv_error e{};
  {
    Client cl(srv.target());
    qv_create_opts o{};
    o.name = "broken";
    o.dim = 4;
    o.metric = QV_METRIC_L2;
    ASSERT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_OK) << e.msg;
    o.name = "lost";
    ASSERT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_OK) << e.msg;
  }
  ASSERT_EQ(srv.stop(SIGTERM), 0) << srv.log();
  // "lost": its main manifest gone and its only version damaged; the version directory alone
  // still marks the directory as a collection's.
  const std::string lost = srv.data_dir + "/collections/lost";
  std::filesystem::remove(lost + "/MANIFEST.json");
  {
    std::ofstream f(lost + "/v000001/MANIFEST.json", std::ios::trunc);
    f << "{ not json";
  }
  // Corrupt its manifest and the version's own copy (the fallback): at restart it is not served,
  // and its files are left alone.
  const std::string manifest = srv.data_dir + "/collections/broken/MANIFEST.json";
  for (const std::string &m :
       {manifest, srv.data_dir + "/collections/broken/v000001/MANIFEST.json"}) {
    std::ofstream f(m, std::ios::trunc);
    f << "{ not json";
  }
  ASSERT_TRUE(srv.start(srv.data_dir));
  Client cl(srv.target());
  qv_collection_info info{};
  EXPECT_EQ(qv_client_describe(cl.c, "broken", &info, &e), QV_ENOTFOUND);
  EXPECT_NE(srv.log().find("collection 'broken' not served"), std::string::npos) << srv.log();
  qv_create_opts o{};
  o.name = "broken";
  o.dim = 4;
  o.metric = QV_METRIC_L2;
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EPRECONDITION);
  EXPECT_NE(std::string(e.msg).find("move it aside"), std::string::npos) << e.msg;
  std::ifstream still(manifest);
  std::string text((std::istreambuf_iterator<char>(still)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "{ not json");
  o.name = "lost";
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EPRECONDITION) << e.msg;
  EXPECT_TRUE(std::filesystem::exists(lost + "/v000001/MANIFEST.json"));
  // Drop then create of one name, repeated, always ends with exactly one live collection.
  o.name = "cycle";
  for (int i = 0; i < 5; i++) {
    ASSERT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_OK) << i << ": " << e.msg;
    ASSERT_EQ(qv_client_drop(cl.c, "cycle", &e), QV_OK) << i << ": " << e.msg;
  }
  ASSERT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_OK) << e.msg;
  ASSERT_EQ(srv.stop(SIGTERM), 0) << srv.log();
  ASSERT_TRUE(srv.start(srv.data_dir));
  Client cl2(srv.target());
  EXPECT_EQ(qv_client_describe(cl2.c, "cycle", &info, &e), QV_OK) << e.msg;
}

// A failure the client finds itself (a device name it cannot parse) is returned when the caller
// passed no error object: qv_error_prefix(NULL, ...) returned QV_OK, so qv_client_create said
// OK having sent nothing.
TEST(ClientErrors, AFailureIsReturnedWithoutAnErrorObject) {
  qv_client_opts o;
  qv_client_opts_init(&o);
  o.target = "127.0.0.1:1"; // never reached: the request is refused before any call
  qv_client *c = nullptr;
  ASSERT_EQ(qv_client_connect(&c, &o, nullptr), QV_OK);
  qv_create_opts co{};
  co.name = "x";
  co.dim = 4;
  co.metric = QV_METRIC_L2;
  co.device = "warp-drive";
  EXPECT_EQ(qv_client_create(c, &co, nullptr, nullptr), QV_EINVAL);
  qv_error e{};
  EXPECT_EQ(qv_client_create(c, &co, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "create: "), nullptr) << e.msg;
  qv_client_close(c);
}

// A single node and the fleet's fields: shards/replicas above 1 are refused with a message that
// sends the caller to a router; its collections read as 1 shard of 1 replica (the server leaves
// the fields 0, the client maps 0 to 1); its cluster status has no nodes and no replicas; and
// allow_partial is ignored (nothing is ever missing).
TEST(SingleNodeFleetFields, RefusedShardsOneShardAnswersAndAnEmptyClusterStatus) {
  TempDir tmp;
  Quiverd srv;
  ASSERT_TRUE(srv.start(tmp.sub("data")));
  Client cl(srv.target());
  qv_error e{};
  qv_create_opts o{};
  o.name = "split";
  o.dim = 4;
  o.metric = QV_METRIC_L2;
  o.shards = 2;
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EINVAL);
  EXPECT_EQ(std::string(e.msg).rfind("INVALID_ARGUMENT: ", 0), 0u) << e.msg;
  EXPECT_NE(std::strstr(e.msg, "needs a fleet"), nullptr) << e.msg;
  EXPECT_NE(std::strstr(e.msg, "router"), nullptr) << e.msg;
  o.shards = 0;
  o.replicas = 3;
  e = {};
  EXPECT_EQ(qv_client_create(cl.c, &o, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::strstr(e.msg, "replicas = 3"), nullptr) << e.msg;
  qv_collection_info d{};
  EXPECT_EQ(qv_client_describe(cl.c, "split", &d, &e), QV_ENOTFOUND); // nothing was created
  // 1 and 1 are what a single node is: accepted.
  o.name = "one";
  o.shards = 1;
  o.replicas = 1;
  qv_collection_info info{};
  ASSERT_EQ(qv_client_create(cl.c, &o, &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.shards, 1u);
  EXPECT_EQ(info.replicas, 1u);
  ASSERT_EQ(qv_client_describe(cl.c, "one", &d, &e), QV_OK) << e.msg;
  EXPECT_EQ(d.shards, 1u);
  EXPECT_EQ(d.replicas, 1u);

  // Cluster status: the collection, no nodes, no replicas.
  qv_cluster_status *s = nullptr;
  ASSERT_EQ(qv_client_cluster_status(cl.c, &s, &e), QV_OK) << e.msg;
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->n_nodes, 0u);
  EXPECT_EQ(s->n_replicas, 0u);
  ASSERT_EQ(s->n_collections, 1u);
  EXPECT_STREQ(s->collections[0].name, "one");
  EXPECT_EQ(s->collections[0].shards, 1u);
  EXPECT_EQ(s->collections[0].replicas, 1u);
  qv_cluster_status_free(s);
  qv_cluster_status_free(nullptr);
  s = reinterpret_cast<qv_cluster_status *>(&o); // a stale pointer: cleared on failure
  EXPECT_EQ(qv_client_cluster_status(nullptr, &s, &e), QV_EINVAL);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(qv_client_cluster_status(cl.c, nullptr, &e), QV_EINVAL);

  // qv_client_search_ex with allow_partial: the answer qv_client_search gives, nothing missing.
  const float v[4 * 4] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0};
  const int64_t ids[4] = {10, 11, 12, 13};
  ASSERT_EQ(qv_client_upsert(cl.c, "one", 4, 4, ids, v, 0, nullptr, nullptr, nullptr, &e), QV_OK)
      << e.msg;
  float sc[3], sc2[3];
  int64_t got[3], got2[3];
  ASSERT_EQ(qv_client_search(cl.c, "one", v + 4, 1, 4, 3, 0, 0, sc, got, &e), QV_OK) << e.msg;
  qv_client_search_opts so;
  qv_client_search_opts_init(&so);
  so.allow_partial = 1;
  uint32_t missing[4] = {7, 7, 7, 7};
  size_t n_missing = 99;
  ASSERT_EQ(
      qv_client_search_ex(cl.c, "one", v + 4, 1, 4, 3, &so, sc2, got2, missing, 4, &n_missing, &e),
      QV_OK)
      << e.msg;
  EXPECT_EQ(n_missing, 0u);
  EXPECT_EQ(missing[0], 7u); // untouched
  for (int j = 0; j < 3; j++) {
    EXPECT_EQ(got2[j], got[j]);
    EXPECT_EQ(sc2[j], sc[j]);
  }
  EXPECT_EQ(got[0], 11);
  // NULL options and NULL outputs: a plain search.
  ASSERT_EQ(
      qv_client_search_ex(cl.c, "one", v + 4, 1, 4, 3, nullptr, sc2, got2, nullptr, 0, nullptr, &e),
      QV_OK)
      << e.msg;
  EXPECT_EQ(got2[0], 11);
  // Its errors are qv_client_search's: exact with a rerank stage is refused by the server.
  qv_client_rerank rr{};
  rr.refine = 1;
  so.exact = 1;
  so.rerank = &rr;
  n_missing = 99;
  EXPECT_EQ(
      qv_client_search_ex(cl.c, "one", v + 4, 1, 4, 3, &so, sc2, got2, missing, 4, &n_missing, &e),
      QV_EINVAL);
  EXPECT_EQ(n_missing, 0u);
  so = {};
  EXPECT_EQ(qv_client_search_ex(cl.c, "nope", v, 1, 4, 3, &so, sc2, got2, nullptr, 0, nullptr, &e),
            QV_ENOTFOUND);
}
