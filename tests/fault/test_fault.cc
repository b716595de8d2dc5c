// Fault injection through the real quiverd: the file layer made to fail on purpose (faultfs, an
// LD_PRELOAD library, tests/fault/faultfs.c) and, once, a genuinely full tmpfs. Each test checks
// the durability claims of docs/lifecycle.md and docs/server.md: a write refused for the disk is
// refused with INTERNAL and never comes back after a restart, an acknowledged one always does,
// reads go on during the fault, and no half-written snapshot is ever served.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/collection.h"
#include "common/server.h"
#include "quiver/collection.h"

using qvtest::Client;
using qvtest::Quiverd;
using qvtest::TempDir;

namespace {

constexpr size_t kDim = 8;

// A distinct pseudo-random vector per id (splitmix64), so that an exact search with an id's own
// vector finds that id first, and finds another one when the id is absent.
float component(int64_t id, size_t j) {
  uint64_t x = uint64_t(id) * kDim + j + 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return float(x >> 40) / float(1 << 24);
}

std::vector<float> vectors_of(int64_t id0, size_t n) {
  std::vector<float> v(n * kDim);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < kDim; j++)
      v[i * kDim + j] = component(id0 + int64_t(i), j);
  return v;
}

// Upserts ids id0 .. id0+n-1 in one message (far below the client's 4 MiB chunks).
qv_status upsert(qv_client *c, const char *name, int64_t id0, size_t n, qv_error *e) {
  std::vector<int64_t> ids = qvtest::seq_ids(n, id0);
  std::vector<float> v = vectors_of(id0, n);
  return qv_client_upsert(c, name, n, kDim, ids.data(), v.data(), 0, nullptr, nullptr, nullptr, e);
}

// How many of ids id0, id0+stride, ... (below id0+n) a search with their own vectors finds first.
// The index search is exact here (Flat, or IVF with nprobe = nlist) and uses BLAS; before an IVF
// collection's first build the brute-force search (exact = 1) answers instead.
size_t found(qv_client *c, const char *name, int64_t id0, size_t n, size_t stride = 1) {
  std::vector<int64_t> want;
  for (size_t i = 0; i < n; i += stride)
    want.push_back(id0 + int64_t(i));
  size_t hits = 0;
  int exact = 0;
  for (size_t at = 0; at < want.size(); at += 4096) {
    const size_t m = std::min<size_t>(4096, want.size() - at);
    std::vector<float> q(m * kDim), sc(m);
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < kDim; j++)
        q[i * kDim + j] = component(want[at + i], j);
    std::vector<int64_t> got(m);
    qv_error e{};
    qv_status st;
    while ((st = qv_client_search(c, name, q.data(), m, kDim, 1, 0, exact, sc.data(), got.data(),
                                  &e)) == QV_EPRECONDITION &&
           !exact)
      exact = 1;
    EXPECT_EQ(st, QV_OK) << e.msg;
    if (st != QV_OK)
      return 0;
    for (size_t i = 0; i < m; i++)
      hits += got[i] == want[at + i];
  }
  return hits;
}

// How many ids found() looks for.
size_t sampled(size_t n, size_t stride) {
  return (n + stride - 1) / stride;
}

qv_collection_info describe(qv_client *c, const char *name) {
  qv_collection_info info{};
  qv_error e{};
  EXPECT_EQ(qv_client_describe(c, name, &info, &e), QV_OK) << e.msg;
  return info;
}

void create(qv_client *c, const char *name, const char *spec) {
  qvtest::create(c, name, kDim, QV_METRIC_L2, spec, 4);
}

// create, then upsert ids 0 .. n-1.
void create_with(qv_client *c, const char *name, const char *spec, size_t n) {
  create(c, name, spec);
  if (::testing::Test::HasFatalFailure())
    return;
  qv_error e{};
  ASSERT_EQ(upsert(c, name, 0, n, &e), QV_OK) << e.msg;
}

// Waits (up to 120 s) until quiverd's log contains `what`; whether it did.
bool log_shows(const Quiverd &srv, const std::string &what) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (srv.log().find(what) == std::string::npos && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return srv.log().find(what) != std::string::npos;
}

size_t count_of(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    n++;
  return n;
}

bool contains(const std::string &text, const std::string &what) {
  return text.find(what) != std::string::npos;
}

off_t file_size(const std::string &path) {
  struct stat sb;
  return stat(path.c_str(), &sb) == 0 ? sb.st_size : -1;
}

// Names under dir (one level) that start with prefix and end with suffix.
size_t entries(const std::string &dir, const std::string &prefix, const std::string &suffix) {
  size_t n = 0;
  std::error_code ec;
  for (auto &ent : std::filesystem::directory_iterator(dir, ec)) {
    const std::string f = ent.path().filename().string();
    if (f.rfind(prefix, 0) == 0 && f.size() >= suffix.size() &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      n++;
  }
  return n;
}

// The "version" the collection's MANIFEST.json names (0: none or unreadable).
long manifest_version(const std::string &coldir) {
  std::ifstream f(coldir + "/MANIFEST.json");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string t = ss.str();
  const size_t at = t.find("\"version\":");
  return at == std::string::npos ? 0 : std::atol(t.c_str() + at + 10);
}

// The control file faultfs reads: replaced whole (a new inode), so the next intercepted call in
// quiverd sees exactly these rules, counted from then on.
struct Faults {
  std::string path;
  void set(const std::string &rules) const {
    const std::string tmp = path + ".new";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << rules << "\n";
    }
    ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0) << std::strerror(errno);
  }
  void clear() const {
    set("");
  }
};

// Sets (or, with nullopt, removes) an environment variable for the life of the object.
struct EnvVar {
  std::string name;
  std::optional<std::string> old;
  EnvVar(const char *n, const std::optional<std::string> &value) : name(n) {
    if (const char *v = std::getenv(n))
      old = v;
    if (value)
      setenv(n, value->c_str(), 1);
    else
      unsetenv(n);
  }
  ~EnvVar() {
    if (old)
      setenv(name.c_str(), old->c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

// Starts quiverd with faultfs preloaded, reading `ctl`, affecting only files under `dir`. The
// environment is the child's only: it is restored as soon as quiverd is up.
bool start_faulty(Quiverd &srv, const std::string &dir, const Faults &ctl,
                  const std::vector<std::string> &extra = {}) {
  const char *pre = std::getenv("LD_PRELOAD");
  const char *asan = std::getenv("ASAN_OPTIONS");
  // An ASan quiverd checks that its runtime comes first among the loaded libraries; faultfs is
  // not instrumented and must come before libc, so that check is turned off.
  EnvVar a("LD_PRELOAD", std::string(QV_FAULTFS) + (pre && *pre ? std::string(":") + pre : ""));
  EnvVar b("QV_FAULT_CTL", ctl.path);
  EnvVar c("QV_FAULT_ROOT", dir);
  EnvVar d("ASAN_OPTIONS", std::string(asan && *asan ? asan : "") + (asan && *asan ? ":" : "") +
                               "verify_asan_link_order=0");
  return srv.start(dir, extra);
}

class Fault : public ::testing::Test {
protected:
  TempDir tmp;
  Faults ctl{tmp.sub("ctl")};
  Quiverd srv;
  std::string data;
  void SetUp() override {
    data = tmp.sub("data");
    ctl.clear();
  }
  std::string coldir(const char *name) const {
    return data + "/collections/" + name;
  }
  size_t injected() const {
    return count_of(srv.log(), "faultfs: injected");
  }
  // Stops quiverd (expecting exit code rc) and starts it again on the same data dir, faultfs
  // still loaded with no rules.
  void restart(int rc = 0, const std::vector<std::string> &extra = {}) {
    ctl.clear();
    ASSERT_EQ(srv.stop(), rc) << srv.log();
    ASSERT_TRUE(start_faulty(srv, data, ctl, extra));
  }
};

} // namespace

// The write-ahead log's fdatasync fails once: the upsert is refused, and because the kernel may
// have dropped the record's pages, the log refuses every later write until a restart (fsyncgate:
// a retried fdatasync would say OK over a hole). The record is cut, so it never comes back.
TEST_F(Fault, AnUpsertWhoseLogSyncFailsIsRefusedAndNeverReplayed) {
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "c", "Flat", 200));
  qv_error e{};
  const std::string wal = coldir("c") + "/wal.log";
  const off_t before = file_size(wal);
  ASSERT_GT(before, 0);

  ctl.set("op=fdatasync path=wal.log err=EIO count=1");
  EXPECT_EQ(upsert(cl.c, "c", 1000, 100, &e), QV_EINTERNAL);
  EXPECT_TRUE(contains(e.msg, "INTERNAL")) << e.msg;
  EXPECT_TRUE(contains(e.msg, "fdatasync: Input/output error")) << e.msg;
  EXPECT_TRUE(contains(e.msg, "until the server restarts")) << e.msg;
  EXPECT_EQ(count_of(srv.log(), "faultfs: injected EIO into fdatasync(" + wal + ")"), 1u);
  EXPECT_EQ(file_size(wal), before) << "the refused record was not cut from the log";
  // Reads go on; nothing of the refused write is visible.
  EXPECT_EQ(describe(cl.c, "c").count, 200u);
  EXPECT_EQ(found(cl.c, "c", 0, 200), 200u);
  EXPECT_EQ(found(cl.c, "c", 1000, 100), 0u);

  // The fault is gone, but the log stays closed to writes (upserts and deletes) until a restart.
  ctl.clear();
  EXPECT_EQ(upsert(cl.c, "c", 2000, 50, &e), QV_EINTERNAL);
  EXPECT_TRUE(contains(e.msg, "failed earlier")) << e.msg;
  int64_t gone[1] = {0};
  EXPECT_EQ(qv_client_delete(cl.c, "c", 1, gone, nullptr, nullptr, &e), QV_EINTERNAL);
  EXPECT_EQ(found(cl.c, "c", 0, 200), 200u);

  restart();
  Client again(srv.target());
  EXPECT_EQ(describe(again.c, "c").count, 200u);
  EXPECT_EQ(found(again.c, "c", 0, 200), 200u);
  EXPECT_EQ(found(again.c, "c", 1000, 100), 0u) << "a refused upsert came back";
  EXPECT_EQ(found(again.c, "c", 2000, 50), 0u) << "a refused upsert came back";
  ASSERT_EQ(upsert(again.c, "c", 2000, 50, &e), QV_OK) << e.msg;
  restart();
  Client third(srv.target());
  EXPECT_EQ(describe(third.c, "c").count, 250u);
  EXPECT_EQ(found(third.c, "c", 2000, 50), 50u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// ENOSPC on the log's write: refused, cut, and accepted again as soon as there is room (a
// failed write, unlike a failed sync, leaves the file's state known).
TEST_F(Fault, AnUpsertIntoAFullLogIsRefusedAndAcceptedOnceThereIsRoom) {
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "c", "Flat", 300));
  qv_error e{};
  const std::string wal = coldir("c") + "/wal.log";
  const off_t before = file_size(wal);

  ctl.set("op=write,pwrite,writev path=wal.log err=ENOSPC");
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(upsert(cl.c, "c", 1000, 100, &e), QV_EINTERNAL);
    EXPECT_TRUE(contains(e.msg, "No space left on device")) << e.msg;
    EXPECT_TRUE(contains(e.msg, "the write was not applied")) << e.msg;
  }
  int64_t del[2] = {10, 11};
  EXPECT_EQ(qv_client_delete(cl.c, "c", 2, del, nullptr, nullptr, &e), QV_EINTERNAL);
  EXPECT_TRUE(contains(e.msg, "No space left on device")) << e.msg;
  EXPECT_EQ(count_of(srv.log(), "faultfs: injected ENOSPC into write(" + wal + ")"), 4u);
  EXPECT_EQ(file_size(wal), before);
  EXPECT_EQ(describe(cl.c, "c").count, 300u);
  EXPECT_EQ(found(cl.c, "c", 0, 300), 300u);
  EXPECT_EQ(found(cl.c, "c", 1000, 100), 0u);

  ctl.clear(); // room again
  ASSERT_EQ(upsert(cl.c, "c", 2000, 100, &e), QV_OK) << e.msg;
  uint64_t deleted = 0;
  ASSERT_EQ(qv_client_delete(cl.c, "c", 2, del, &deleted, nullptr, &e), QV_OK) << e.msg;
  EXPECT_EQ(deleted, 2u);

  restart();
  Client again(srv.target());
  EXPECT_EQ(describe(again.c, "c").count, 398u);
  EXPECT_EQ(found(again.c, "c", 0, 10), 10u);
  EXPECT_EQ(found(again.c, "c", 10, 2), 0u) << "an acknowledged delete came back";
  EXPECT_EQ(found(again.c, "c", 12, 288), 288u);
  EXPECT_EQ(found(again.c, "c", 1000, 100), 0u) << "a refused upsert came back";
  EXPECT_EQ(found(again.c, "c", 2000, 100), 100u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// A torn append: half the record reaches the file, then the disk is full. The record is cut;
// when even the cut fails, the log refuses further writes and the torn tail is cut at the next
// start (a crash mid-append looks the same), so the refused write never comes back.
TEST_F(Fault, ATornLogAppendIsCutAndNeverReplayed) {
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "c", "Flat", 200));
  qv_error e{};
  const std::string wal = coldir("c") + "/wal.log";
  const off_t before = file_size(wal);

  ctl.set("op=write path=wal.log nth=1 count=1 short=1\n"
          "op=write path=wal.log nth=2 count=1 err=ENOSPC");
  EXPECT_EQ(upsert(cl.c, "c", 1000, 100, &e), QV_EINTERNAL);
  EXPECT_TRUE(contains(e.msg, "No space left on device")) << e.msg;
  EXPECT_EQ(count_of(srv.log(), "faultfs: injected short write"), 1u);
  EXPECT_EQ(file_size(wal), before) << "the torn record was not cut";
  ctl.clear();
  ASSERT_EQ(upsert(cl.c, "c", 2000, 100, &e), QV_OK) << e.msg;
  const off_t good = file_size(wal);

  // Now the cut fails too: the torn half stays in the file.
  ctl.set("op=write path=wal.log nth=1 count=1 short=1\n"
          "op=write path=wal.log nth=2 count=1 err=ENOSPC\n"
          "op=ftruncate path=wal.log err=EIO");
  EXPECT_EQ(upsert(cl.c, "c", 3000, 100, &e), QV_EINTERNAL);
  EXPECT_TRUE(contains(e.msg, "until the server restarts")) << e.msg;
  EXPECT_GT(file_size(wal), good) << "the fault did not leave a torn tail";
  ctl.clear();
  EXPECT_EQ(upsert(cl.c, "c", 4000, 100, &e), QV_EINTERNAL);
  EXPECT_EQ(found(cl.c, "c", 2000, 100), 100u);

  // A crash now: the torn tail is in the live log, cut at start.
  ASSERT_EQ(srv.stop(SIGKILL), -1);
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  EXPECT_TRUE(contains(srv.log(), "a torn tail cut")) << srv.log();
  {
    Client again(srv.target());
    EXPECT_EQ(describe(again.c, "c").count, 300u);
    EXPECT_EQ(found(again.c, "c", 0, 200), 200u);
    EXPECT_EQ(found(again.c, "c", 2000, 100), 100u);
    EXPECT_EQ(found(again.c, "c", 1000, 100), 0u) << "a refused upsert came back";
    EXPECT_EQ(found(again.c, "c", 3000, 100), 0u) << "a refused upsert came back";

    // The same, then a clean stop: its snapshot rotates the log into a segment, which must not
    // carry the torn tail (a damaged segment refuses the whole collection at the next start).
    ctl.set("op=write path=wal.log nth=1 count=1 short=1\n"
            "op=write path=wal.log nth=2 count=1 err=ENOSPC\n"
            "op=ftruncate path=wal.log nth=1 count=1 err=EIO");
    EXPECT_EQ(upsert(again.c, "c", 5000, 100, &e), QV_EINTERNAL);
  }
  restart();
  Client third(srv.target());
  qv_collection_info info{};
  ASSERT_EQ(qv_client_describe(third.c, "c", &info, &e), QV_OK) << e.msg << "\n" << srv.log();
  EXPECT_EQ(info.count, 300u);
  EXPECT_EQ(found(third.c, "c", 5000, 100), 0u) << "a refused upsert came back";
  EXPECT_EQ(found(third.c, "c", 2000, 100), 100u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// fdatasync fails and the cut fails too: the whole refused record is still in the file. It must
// not be replayed at the next start, nor carried into a segment by the snapshot of a clean stop.
TEST_F(Fault, AWholeRefusedRecordThatCannotBeCutIsNeverReplayed) {
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  {
    Client cl(srv.target());
    ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "c", "Flat", 200));
    qv_error e{};
    ctl.set("op=fdatasync path=wal.log count=1 err=EIO\n"
            "op=ftruncate path=wal.log count=1 err=EIO");
    EXPECT_EQ(upsert(cl.c, "c", 1000, 100, &e), QV_EINTERNAL);
    EXPECT_TRUE(contains(e.msg, "until the server restarts")) << e.msg;
    EXPECT_EQ(found(cl.c, "c", 1000, 100), 0u);
  }
  // After a crash: the live log holds the record.
  ctl.clear();
  ASSERT_EQ(srv.stop(SIGKILL), -1);
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  {
    Client cl(srv.target());
    EXPECT_EQ(describe(cl.c, "c").count, 200u);
    EXPECT_EQ(found(cl.c, "c", 1000, 100), 0u) << "a refused upsert came back after a crash";
    // Again, then a clean stop: the snapshot's segment holds the record.
    qv_error e{};
    ctl.set("op=fdatasync path=wal.log count=1 err=EIO\n"
            "op=ftruncate path=wal.log count=1 err=EIO");
    EXPECT_EQ(upsert(cl.c, "c", 3000, 100, &e), QV_EINTERNAL);
  }
  restart();
  Client cl(srv.target());
  EXPECT_EQ(describe(cl.c, "c").count, 200u);
  EXPECT_EQ(found(cl.c, "c", 0, 200), 200u);
  EXPECT_EQ(found(cl.c, "c", 1000, 100), 0u) << "a refused upsert came back";
  EXPECT_EQ(found(cl.c, "c", 3000, 100), 0u) << "a refused upsert came back after a clean stop";
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// Deletes go through the same log: a failed fdatasync refuses the delete, the ids stay.
TEST_F(Fault, ADeleteWhoseLogSyncFailsIsRefusedAndTheIdsStay) {
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "c", "IVF4,Flat", 400));
  qv_error e{};
  ASSERT_EQ(qv_client_build(cl.c, "c", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  const std::vector<int64_t> del = qvtest::seq_ids(20);
  ctl.set("op=fsync,fdatasync path=wal.log err=EIO count=1");
  uint64_t deleted = 99, count = 0;
  EXPECT_EQ(qv_client_delete(cl.c, "c", del.size(), del.data(), &deleted, &count, &e),
            QV_EINTERNAL);
  EXPECT_TRUE(contains(e.msg, "fdatasync: Input/output error")) << e.msg;
  EXPECT_EQ(injected(), 1u);
  EXPECT_EQ(describe(cl.c, "c").count, 400u);
  EXPECT_EQ(found(cl.c, "c", 0, 400), 400u) << "a refused delete removed ids";
  // The index search (not only the exact one) still finds them.
  std::vector<float> q = vectors_of(0, 20), sc(20);
  std::vector<int64_t> got(20);
  ASSERT_EQ(qv_client_search(cl.c, "c", q.data(), 20, kDim, 1, 4, 0, sc.data(), got.data(), &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(got, del);

  restart();
  Client again(srv.target());
  EXPECT_EQ(found(again.c, "c", 0, 400), 400u) << "a refused delete was replayed";
  ASSERT_EQ(qv_client_delete(again.c, "c", del.size(), del.data(), &deleted, &count, &e), QV_OK)
      << e.msg;
  EXPECT_EQ(deleted, 20u);
  restart();
  Client third(srv.target());
  EXPECT_EQ(describe(third.c, "c").count, 380u);
  EXPECT_EQ(found(third.c, "c", 0, 20), 0u) << "an acknowledged delete came back";
  EXPECT_EQ(found(third.c, "c", 20, 380), 380u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// A build whose snapshot cannot be saved (a full disk under FAISS's stdio writes, a failing
// fsync, rename or create): the build is refused, nothing half-written is left or served, and
// every acknowledged write survives a restart. (The refused build's index has been swapped in
// already and keeps serving — index_version moves on — and the next save that succeeds stores
// it; an import in the same case puts the previous state back. Both keep every write.)
TEST_F(Fault, ABuildWhoseSnapshotSaveFailsLeavesNoHalfSnapshotAndLosesNothing) {
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "b", "IVF4,Flat", 400));
  qv_error e{};
  qv_collection_info info{};
  ASSERT_EQ(qv_client_build(cl.c, "b", 0, nullptr, nullptr, &info, &e), QV_OK) << e.msg;
  const uint64_t built = info.index_version;
  const long saved = manifest_version(coldir("b"));
  ASSERT_GT(saved, 0);
  struct Case {
    const char *rule, *says;
  };
  const Case cases[] = {
      {"op=fwrite path=index.faiss err=ENOSPC", "index.faiss"},
      {"op=fsync path=vectors.npy err=EIO", "fsync"},
      {"op=open path=ids.npy err=EIO", "ids.npy"},
      {"op=rename path=.tmp err=EIO", "rename"},
      {"op=fsync path=MANIFEST.json.tmp err=EIO", "fsync"},
      {"op=rename path=collections/b/MANIFEST.json.tmp err=EIO", "rename"},
  };
  int64_t next = 1000;
  for (const Case &k : cases) {
    SCOPED_TRACE(k.rule);
    ASSERT_EQ(upsert(cl.c, "b", next, 50, &e), QV_OK) << e.msg; // acknowledged before the build
    next += 50;
    const size_t n0 = injected();
    ctl.set(k.rule);
    EXPECT_EQ(qv_client_build(cl.c, "b", 0, nullptr, nullptr, nullptr, &e), QV_EINTERNAL);
    EXPECT_TRUE(contains(e.msg, k.says)) << e.msg;
    EXPECT_GT(injected(), n0) << "the rule never fired";
    ctl.clear();
    // Nothing half-written is left, and the manifest still names the last good snapshot.
    EXPECT_EQ(entries(coldir("b"), "v", ".tmp"), 0u);
    EXPECT_EQ(manifest_version(coldir("b")), saved);
    // Reads and writes go on.
    const qv_collection_info now = describe(cl.c, "b");
    EXPECT_EQ(now.count, uint64_t(400 + next - 1000));
    EXPECT_EQ(now.state, 2);
    EXPECT_EQ(found(cl.c, "b", 0, 400), 400u);
    EXPECT_EQ(found(cl.c, "b", 1000, size_t(next - 1000)), size_t(next - 1000));
  }
  ASSERT_EQ(upsert(cl.c, "b", next, 50, &e), QV_OK) << e.msg;
  next += 50;
  restart();
  Client again(srv.target());
  info = describe(again.c, "b");
  EXPECT_EQ(info.count, uint64_t(400 + next - 1000));
  EXPECT_EQ(info.state, 2);
  EXPECT_GE(info.index_version, built);
  EXPECT_STREQ(info.storage_note, "") << "an older snapshot is served";
  EXPECT_FALSE(contains(srv.log(), "serving the previous version")) << srv.log();
  EXPECT_EQ(found(again.c, "b", 0, 400), 400u);
  EXPECT_EQ(found(again.c, "b", 1000, size_t(next - 1000)), size_t(next - 1000));
  // And a build without faults saves again.
  ASSERT_EQ(qv_client_build(again.c, "b", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  EXPECT_GT(manifest_version(coldir("b")), saved);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// A save writes and syncs its files while writes go on: it holds the writers' mutex only while
// it copies the collection. Before, an Upsert waited for the whole save (its fsyncs on a slow
// disk: seconds) on a gRPC polling thread, and every search queued behind that thread waited too
// (bench/soak_stall.py). Here the save's fsync of vectors.npy sleeps 4 s: an upsert and a search
// made meanwhile are answered while it still sleeps, and with --keep-versions 1 the upsert (in
// the log after the snapshot, so in the segment the save rotates out) survives two restarts.
TEST_F(Fault, WritesAndSearchesGoOnWhileASnapshotIsWrittenToASlowDisk) {
  ASSERT_TRUE(start_faulty(srv, data, ctl, {"--keep-versions", "1"}));
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "w", "IVF4,Flat", 400));
  qv_error e{};
  ctl.set("op=fsync path=vectors.npy delay_ms=4000 count=1");
  std::atomic<int> built{-1};
  std::thread builder([&] {
    Client b(srv.target());
    qv_error be{};
    built = qv_client_build(b.c, "w", 0, nullptr, nullptr, nullptr, &be);
  });
  ASSERT_TRUE(log_shows(srv, "faultfs: delaying fsync(")) << srv.log();
  EXPECT_EQ(upsert(cl.c, "w", 1000, 50, &e), QV_OK) << e.msg;
  EXPECT_EQ(found(cl.c, "w", 1000, 50), 50u);
  EXPECT_EQ(found(cl.c, "w", 0, 400), 400u);
  EXPECT_FALSE(contains(srv.log(), "faultfs: delayed fsync(")) << "the upsert or the searches "
                                                                  "waited for the save's fsync";
  EXPECT_EQ(built.load(), -1) << "the build returned before the delayed fsync ended";
  builder.join();
  EXPECT_EQ(built.load(), int(QV_OK));
  EXPECT_TRUE(contains(srv.log(), "faultfs: delayed fsync(")) << srv.log();
  for (int round = 0; round < 2; round++) {
    SCOPED_TRACE(round);
    restart(0, {"--keep-versions", "1"});
    Client again(srv.target());
    const qv_collection_info info = describe(again.c, "w");
    EXPECT_EQ(info.count, 450u);
    EXPECT_STREQ(info.storage_note, "");
    EXPECT_EQ(found(again.c, "w", 0, 400), 400u);
    EXPECT_EQ(found(again.c, "w", 1000, 50), 50u);
  }
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// FAISS writes index.faiss through stdio and ignores what fclose says: a full disk that takes
// the buffered tail at close leaves a short file. The save must not succeed over it (the
// manifest would record the short file's size and CRC-32, and the next start could not read the
// index: it falls back to an older version, or refuses the collection when none is kept).
// It failed before qv_collection_save wrote the index through its own stream: FAISS's
// faiss_write_index_fname only prints "close error" when fclose fails, the build was
// acknowledged, and with --keep-versions 1 the restart refused the collection ("index.faiss is
// malformed: a length runs past the end of the file").
TEST_F(Fault, AnIndexFileWhoseTailIsLostAtCloseFailsTheSave) {
  ASSERT_TRUE(start_faulty(srv, data, ctl, {"--keep-versions", "1"}));
  {
    Client cl(srv.target());
    ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "b", "IVF4,Flat", 400));
    qv_error e{};
    ctl.set("op=fclose path=index.faiss err=ENOSPC count=1");
    const qv_status st = qv_client_build(cl.c, "b", 0, nullptr, nullptr, nullptr, &e);
    EXPECT_EQ(count_of(srv.log(), "faultfs: injected ENOSPC into fclose("), 1u);
    EXPECT_EQ(st, QV_EINTERNAL) << "the save succeeded over a short index.faiss";
    ctl.clear();
  }
  restart(0, {"--keep-versions", "1"});
  Client cl(srv.target());
  qv_collection_info info{};
  qv_error e{};
  ASSERT_EQ(qv_client_describe(cl.c, "b", &info, &e), QV_OK) << e.msg << "\n" << srv.log();
  EXPECT_STREQ(info.storage_note, "");
  EXPECT_EQ(info.count, 400u);
  EXPECT_EQ(found(cl.c, "b", 0, 400), 400u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// Server.AStopWhoseFinalSaveFailsSaysSoAndLosesNothing, with the save's renames failing: exit 1
// with an ERROR line, nothing half-written left, and the restart replays the log.
TEST_F(Fault, AStopWhoseFinalSaveCannotRenameExitsOneAndLosesNothing) {
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  {
    Client cl(srv.target());
    create(cl.c, "s", "Flat");
    create(cl.c, "t", "Flat");
    qv_error e{};
    ASSERT_EQ(upsert(cl.c, "s", 0, 300, &e), QV_OK) << e.msg;
    ASSERT_EQ(upsert(cl.c, "t", 0, 100, &e), QV_OK) << e.msg;
    int64_t del[1] = {7};
    ASSERT_EQ(qv_client_delete(cl.c, "s", 1, del, nullptr, nullptr, &e), QV_OK) << e.msg;
  }
  ctl.set("op=rename path=collections/s/ err=EIO");
  ASSERT_EQ(srv.stop(), 1) << srv.log();
  const std::string log = srv.log();
  EXPECT_TRUE(contains(log, "collection 's': save at shutdown failed")) << log;
  EXPECT_TRUE(contains(log, "1 collection(s) could not be saved")) << log;
  EXPECT_TRUE(contains(log, "collection 't' saved")) << log;
  EXPECT_GE(count_of(log, "faultfs: injected EIO into rename("), 1u);
  EXPECT_EQ(entries(coldir("s"), "v", ".tmp"), 0u);
  ctl.clear();
  ASSERT_TRUE(start_faulty(srv, data, ctl));
  EXPECT_TRUE(contains(srv.log(), "collection 's': write-ahead log replayed")) << srv.log();
  Client cl(srv.target());
  EXPECT_EQ(describe(cl.c, "s").count, 299u);
  EXPECT_EQ(found(cl.c, "s", 0, 7), 7u);
  EXPECT_EQ(found(cl.c, "s", 7, 1), 0u);
  EXPECT_EQ(found(cl.c, "s", 8, 292), 292u);
  EXPECT_EQ(found(cl.c, "t", 0, 100), 100u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// The log rotates when a snapshot is saved (--wal-snapshot-mb): wal.log becomes wal-vN.log and a
// new wal.log starts. A rotation that fails (the rename, the new file's create, and the move back)
// loses no acknowledged write; when the log cannot be put back, writes are refused until a restart.
TEST_F(Fault, ALogRotationThatFailsLosesNoWrite) {
  ASSERT_TRUE(start_faulty(srv, data, ctl, {"--wal-snapshot-mb", "1"}));
  Client cl(srv.target());
  create(cl.c, "r", "Flat");
  qv_error e{};
  const size_t batch = 8000; // 8000 x (8 floats + id) = 320 KB a record: 4 pass 1 MiB
  int64_t next = 0;
  auto fill = [&](int batches) {
    for (int i = 0; i < batches; i++, next += int64_t(batch))
      ASSERT_EQ(upsert(cl.c, "r", next, batch, &e), QV_OK) << e.msg;
  };
  const std::string dir = coldir("r");
  fill(4); // one rotation, without faults
  ASSERT_EQ(entries(dir, "wal-v", ".log"), 1u);
  const size_t segs = entries(dir, "wal-v", ".log");

  // (a) The rename fails: the snapshot is saved, the log keeps its (already saved) records.
  ctl.set("op=rename path=wal.log err=EIO");
  fill(4);
  EXPECT_GE(count_of(srv.log(), "faultfs: injected EIO into rename(" + dir + "/wal.log"), 1u);
  EXPECT_GE(describe(cl.c, "r").wal_bytes, 1u << 20);
  // The log stays over the threshold: every write now saves a snapshot (and rotates in vain).
  const uint64_t snap = describe(cl.c, "r").snapshot_version;
  fill(1);
  EXPECT_EQ(describe(cl.c, "r").snapshot_version, snap + 1);
  // (b) The new log cannot be created: the old one is moved back and keeps taking writes.
  ctl.set("op=open path=wal.log err=EIO");
  fill(2);
  EXPECT_GE(count_of(srv.log(), "faultfs: injected EIO into open(" + dir + "/wal.log)"), 1u);
  EXPECT_TRUE(std::filesystem::exists(dir + "/wal.log"));
  EXPECT_EQ(describe(cl.c, "r").count, uint64_t(next));
  ctl.clear();
  fill(1); // the next save rotates
  EXPECT_LT(describe(cl.c, "r").wal_bytes, 1u << 20);
  EXPECT_GT(entries(dir, "wal-v", ".log"), segs - 1);

  // (c) The new log cannot be created, nor the old one moved back: writes refused until restart.
  fill(3);
  ctl.set("op=open path=wal.log err=EIO\n"
          "op=rename path=/wal-v nth=2 count=1 err=EIO");
  ASSERT_EQ(upsert(cl.c, "r", next, batch, &e), QV_OK) << e.msg; // its snapshot holds it
  next += int64_t(batch);
  EXPECT_EQ(upsert(cl.c, "r", next, batch, &e), QV_EINTERNAL);
  EXPECT_TRUE(contains(e.msg, "until the server restarts")) << e.msg;
  EXPECT_EQ(found(cl.c, "r", next, 100), 0u);
  // Big ranges are checked on a sample (every 61st id) beside the exact count.
  EXPECT_EQ(found(cl.c, "r", 0, size_t(next), 61), sampled(size_t(next), 61));

  restart(0, {"--wal-snapshot-mb", "1"});
  Client again(srv.target());
  EXPECT_EQ(describe(again.c, "r").count, uint64_t(next));
  EXPECT_EQ(found(again.c, "r", 0, size_t(next), 61), sampled(size_t(next), 61));
  EXPECT_EQ(found(again.c, "r", next, batch), 0u) << "a refused upsert came back";
  ASSERT_EQ(upsert(again.c, "r", next, batch, &e), QV_OK) << e.msg;
  next += int64_t(batch);
  restart(0, {"--wal-snapshot-mb", "1"});
  Client third(srv.target());
  EXPECT_EQ(describe(third.c, "r").count, uint64_t(next));
  EXPECT_EQ(found(third.c, "r", 0, size_t(next), 61), sampled(size_t(next), 61));
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// An upsert whose write passes --wal-snapshot-mb saves a snapshot before it is answered. The
// write itself is in the log (and applied): if that snapshot fails, the upsert must not be
// refused, or a client told "no" finds its write served now and after a restart.
// It failed while qv__entry_wrote (server/src/registry.c) returned the failed save's status:
// Upsert (and Delete) answered INTERNAL for a write that was logged, applied and replayed.
TEST_F(Fault, AnUpsertWhoseThresholdSnapshotFailsIsNotRefusedForIt) {
  ASSERT_TRUE(start_faulty(srv, data, ctl, {"--wal-snapshot-mb", "1"}));
  Client cl(srv.target());
  create(cl.c, "r", "Flat");
  qv_error e{};
  for (int64_t i = 0; i < 3; i++)
    ASSERT_EQ(upsert(cl.c, "r", i * 8000, 8000, &e), QV_OK) << e.msg;
  ctl.set("op=rename path=collections/r/ err=EIO");
  const qv_status st = upsert(cl.c, "r", 24000, 8000, &e); // passes 1 MiB: a snapshot
  EXPECT_GE(injected(), 1u);
  const size_t there = found(cl.c, "r", 24000, 8000);
  ctl.clear();
  restart(0, {"--wal-snapshot-mb", "1"});
  Client again(srv.target());
  const size_t after = found(again.c, "r", 24000, 8000);
  if (st == QV_OK) {
    EXPECT_EQ(there, 8000u);
    EXPECT_EQ(after, 8000u);
  } else {
    ADD_FAILURE() << "the upsert was refused (" << e.msg << ") but is served now (" << there
                  << " of 8000) and after a restart (" << after << " of 8000)";
  }
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// An upsert whose write passes --wal-snapshot-mb saves that snapshot before it is answered. It
// runs on a writer thread, not on a polling thread: with one polling thread (--threads 1) and the
// snapshot's fsync of vectors.npy sleeping 4 s, a search, a describe and a delete of another
// collection are answered while it sleeps (before, the upsert held the only polling thread and
// every call waited for the save).
TEST_F(Fault, CallsAreAnsweredWhileAnUpsertWaitsForItsSnapshotOnASlowDisk) {
  ASSERT_TRUE(start_faulty(srv, data, ctl, {"--wal-snapshot-mb", "1", "--threads", "1"}));
  Client cl(srv.target());
  create(cl.c, "r", "Flat");
  create(cl.c, "o", "Flat");
  qv_error e{};
  for (int64_t i = 0; i < 3; i++)
    ASSERT_EQ(upsert(cl.c, "r", i * 8000, 8000, &e), QV_OK) << e.msg;
  ASSERT_EQ(upsert(cl.c, "o", 0, 100, &e), QV_OK) << e.msg;
  ctl.set("op=fsync path=collections/r/ delay_ms=4000 count=1");
  std::atomic<int> wrote{-1};
  std::thread writer([&] {
    Client w(srv.target());
    qv_error we{};
    wrote = upsert(w.c, "r", 24000, 8000, &we); // passes 1 MiB: a snapshot
  });
  ASSERT_TRUE(log_shows(srv, "faultfs: delaying fsync(")) << srv.log();
  EXPECT_EQ(found(cl.c, "r", 0, 24000, 97), sampled(24000, 97));
  EXPECT_EQ(describe(cl.c, "o").count, 100u);
  int64_t del[1] = {5};
  EXPECT_EQ(qv_client_delete(cl.c, "o", 1, del, nullptr, nullptr, &e), QV_OK) << e.msg;
  EXPECT_FALSE(contains(srv.log(), "faultfs: delayed fsync("))
      << "a call waited for the upsert's snapshot";
  EXPECT_EQ(wrote.load(), -1) << "the upsert returned before its snapshot's fsync ended";
  writer.join();
  EXPECT_EQ(wrote.load(), int(QV_OK));
  EXPECT_EQ(found(cl.c, "r", 24000, 8000), 8000u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// ImportIndex stages the streamed files on the data directory's disk, then swaps and saves. A
// write that fails in the staging directory, or a save that fails after the swap, refuses the
// import, removes the staging directory and leaves the collection as it was.
TEST_F(Fault, AnImportThatCannotBeStagedOrSavedLeavesTheCollectionAsItWas) {
  ASSERT_TRUE(start_faulty(srv, data, ctl, {"--import-min-free-mb", "0"}));
  Client cl(srv.target());
  ASSERT_NO_FATAL_FAILURE(create_with(cl.c, "c", "Flat", 300));
  qv_error e{};
  const std::string idx = tmp.sub("idx");
  qvtest::offline_index(idx, qvtest::Matrix{500, kDim, vectors_of(10000, 500), {}}, "IVF4,Flat",
                        10000);
  const std::string root = data + "/collections";
  auto unchanged = [&](qv_client *c) {
    const qv_collection_info info = describe(c, "c");
    EXPECT_EQ(info.count, 300u);
    EXPECT_STREQ(info.index_spec, "Flat");
    EXPECT_EQ(found(c, "c", 0, 300), 300u);
    EXPECT_EQ(found(c, "c", 10000, 500), 0u);
    EXPECT_EQ(entries(root, ".import-", ""), 0u) << "a staging directory was left";
  };
  qv_client_import_opts io{};
  io.index_dir = idx.c_str();
  io.chunk_bytes = 4096; // many chunks: the fault hits one in the middle
  const struct {
    const char *rule, *says;
  } cases[] = {
      {"op=write path=/.import-c- nth=3 err=ENOSPC", "No space left on device"},
      {"op=open path=/v000001/index.faiss err=EIO", "import: open"},
      {"op=rename path=collections/c/ err=EIO", "import not applied"},
      {"op=fwrite path=collections/c/ err=ENOSPC", "import not applied"},
  };
  for (const auto &k : cases) {
    SCOPED_TRACE(k.rule);
    const size_t n0 = injected();
    ctl.set(k.rule);
    EXPECT_EQ(qv_client_import(cl.c, "c", &io, nullptr, nullptr, nullptr, nullptr, &e),
              QV_EINTERNAL);
    EXPECT_TRUE(contains(e.msg, k.says)) << e.msg;
    EXPECT_GT(injected(), n0) << "the rule never fired";
    ctl.clear();
    unchanged(cl.c);
  }
  restart(0, {"--import-min-free-mb", "0"});
  {
    Client again(srv.target());
    unchanged(again.c);
    qv_collection_info info{};
    ASSERT_EQ(qv_client_import(again.c, "c", &io, nullptr, nullptr, &info, nullptr, &e), QV_OK)
        << e.msg;
    EXPECT_EQ(info.count, 500u);
  }
  restart(0, {"--import-min-free-mb", "0"});
  Client third(srv.target());
  EXPECT_EQ(describe(third.c, "c").count, 500u);
  EXPECT_EQ(found(third.c, "c", 10000, 500), 500u);
  EXPECT_EQ(found(third.c, "c", 0, 300), 0u);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

namespace {

// A tmpfs mounted for the life of the object (needs CAP_SYS_ADMIN); unmounted, lazily if busy.
struct Tmpfs {
  std::string dir;
  bool mounted = false;
  std::string error;
  Tmpfs(const std::string &d, const char *opts) : dir(d) {
    std::filesystem::create_directories(dir);
    if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts) == 0)
      mounted = true;
    else
      error = std::strerror(errno);
  }
  bool resize(const char *opts) {
    return mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, opts) == 0;
  }
  ~Tmpfs() {
    if (mounted && umount2(dir.c_str(), 0) != 0)
      umount2(dir.c_str(), MNT_DETACH);
  }
};

} // namespace

// The data directory on a genuinely full disk (a 1 MiB tmpfs): upserts are refused once the log
// cannot grow, reads go on, the stop cannot save its snapshot (exit 1) and loses nothing, and
// once the disk has room (remounted larger) writes are accepted again.
TEST(FaultDisk, ADataDirOnAFullDiskRefusesWritesAndKeepsWhatWasAcknowledged) {
  TempDir tmp;
  // The tmpfs is the data directory itself: the fixture's log and port files lie beside it.
  Tmpfs disk(tmp.sub("data"), "size=1m,mode=0755");
  if (!disk.mounted)
    GTEST_SKIP() << "needs root to mount a tmpfs: mount(" << disk.dir << "): " << disk.error;
  Quiverd srv; // destroyed (killed) before the tmpfs is unmounted
  const std::string data = disk.dir;
  ASSERT_TRUE(srv.start(data));
  qv_error e{};
  int64_t acked = 0, refused_at = -1;
  const size_t batch = 1000; // 40 KB a record
  {
    Client cl(srv.target());
    create(cl.c, "full", "Flat");
    for (int i = 0; i < 100 && refused_at < 0; i++) {
      if (upsert(cl.c, "full", acked, batch, &e) == QV_OK)
        acked += int64_t(batch);
      else
        refused_at = acked;
    }
    ASSERT_GE(refused_at, 0) << "the disk never filled";
    ASSERT_GT(acked, 0);
    EXPECT_TRUE(contains(e.msg, "INTERNAL")) << e.msg;
    EXPECT_TRUE(contains(e.msg, "No space left on device")) << e.msg;
    EXPECT_EQ(upsert(cl.c, "full", refused_at, batch, &e), QV_EINTERNAL) << e.msg;
    EXPECT_EQ(describe(cl.c, "full").count, uint64_t(acked));
    EXPECT_EQ(found(cl.c, "full", 0, size_t(acked)), size_t(acked));
    EXPECT_EQ(found(cl.c, "full", refused_at, batch), 0u);
  }
  // The snapshot at stop needs about twice the data: it fails, and says so.
  EXPECT_EQ(srv.stop(), 1) << srv.log();
  EXPECT_TRUE(contains(srv.log(), "save at shutdown failed")) << srv.log();
  // Restarted on the still-full disk: everything acknowledged is replayed from the log.
  ASSERT_TRUE(srv.start(data));
  {
    Client cl(srv.target());
    EXPECT_EQ(describe(cl.c, "full").count, uint64_t(acked));
    EXPECT_EQ(found(cl.c, "full", 0, size_t(acked)), size_t(acked));
    EXPECT_EQ(found(cl.c, "full", refused_at, batch), 0u) << "a refused upsert came back";
    EXPECT_EQ(upsert(cl.c, "full", refused_at, batch, &e), QV_EINTERNAL);
    // Room again.
    ASSERT_TRUE(disk.resize("size=32m,mode=0755")) << std::strerror(errno);
    ASSERT_EQ(upsert(cl.c, "full", refused_at, batch, &e), QV_OK) << e.msg;
  }
  EXPECT_EQ(srv.stop(), 0) << srv.log();
  ASSERT_TRUE(srv.start(data));
  {
    Client cl(srv.target());
    EXPECT_EQ(describe(cl.c, "full").count, uint64_t(acked) + batch);
    EXPECT_EQ(found(cl.c, "full", 0, size_t(acked) + batch), size_t(acked) + batch);
  }
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}
