// Index lifecycle through the real quiverd: rebuilds and imports swap in under continuous search
// load with no failed query, recall-gated builds, ImportIndex's checks, the memory budget, and a
// damaged newest snapshot served from the previous one.
#include <gtest/gtest.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <zlib.h>

#include "common/collection.h"
#include "common/server.h"
#include "quiver/collection.h"

using qvtest::Client;
using qvtest::Matrix;
using qvtest::offline_index;
using qvtest::Quiverd;
using qvtest::raw_call;
using qvtest::TempDir;

namespace {

using Clock = std::chrono::steady_clock;

void create_and_fill(qv_client *c, const char *name, const char *spec, const Matrix &base,
                     int64_t id0) {
  qvtest::create(c, name, uint32_t(base.cols), QV_METRIC_L2, spec);
  if (!::testing::Test::HasFatalFailure())
    qvtest::upsert_all(c, name, base, id0);
}

// One ImportIndexRequest encoded by hand (protobuf wire format): collection (1), file (8),
// offset (9), data (10), crc32 (11).
struct RawImport {
  std::string collection, file, data;
  uint64_t offset = 0;
  uint32_t crc32 = 0;
};

void put_varint(std::string &out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}

void put_bytes(std::string &out, int field, const std::string &b) {
  put_varint(out, uint64_t(field) << 3 | 2);
  put_varint(out, b.size());
  out += b;
}

std::string encode(const RawImport &r) {
  std::string out;
  put_bytes(out, 1, r.collection);
  put_bytes(out, 8, r.file);
  put_varint(out, 9 << 3);
  put_varint(out, r.offset);
  put_bytes(out, 10, r.data);
  put_varint(out, 11 << 3);
  put_varint(out, r.crc32);
  return out;
}

// ImportIndex with one hand-made message.
grpc_status_code raw_import(const std::string &target, const RawImport &req, std::string *details) {
  return raw_call(target, "/quiver.v1.Retrieval/ImportIndex", encode(req), details);
}

size_t staging_dirs(const std::string &data_dir) {
  size_t n = 0;
  for (auto &ent : std::filesystem::directory_iterator(data_dir + "/collections"))
    if (ent.path().filename().string().rfind(".import-", 0) == 0)
      n++;
  return n;
}

class Lifecycle : public qvtest::Sift5kServerTest {
protected:
  qvtest::GrpcScope grpc;
};

} // namespace

TEST_F(Lifecycle, RebuildsAndAnImportSwapInUnderSearchLoadWithNoFailedQuery) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--import-root", tmp.path}));
  {
    Client cl(srv.target());
    create_and_fill(cl.c, "live", "IVF64,Flat", base, 0);
    qv_error e{};
    ASSERT_EQ(qv_client_build(cl.c, "live", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  }
  // The index to push: the same vectors under ids 100000.., so answers show which one served.
  const std::string off = tmp.sub("offline");
  offline_index(off, base, "IVF32,Flat", 100000);
  struct Sample {
    double start, end; // seconds since t0
    int version;       // 0 old ids, 1 new ids, -1 mixed or malformed
    bool ok;
  };
  std::mutex mu;
  std::vector<Sample> samples;
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  auto since = [&](Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); };
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; t++)
    clients.emplace_back([&, t] {
      Client cl(srv.target());
      std::mt19937 rng{uint32_t(t)};
      std::vector<float> sc(10);
      std::vector<int64_t> ids(10);
      std::vector<Sample> mine;
      while (!stop.load()) {
        size_t qi = rng() % q.rows;
        qv_error e{};
        auto a = Clock::now();
        qv_status st = qv_client_search(cl.c, "live", &q.f[qi * 128], 1, 128, 10, 8, 0, sc.data(),
                                        ids.data(), &e);
        auto b = Clock::now();
        int old_n = 0, new_n = 0;
        for (int64_t id : ids) {
          old_n += id >= 0 && id < 5000;
          new_n += id >= 100000 && id < 105000;
        }
        int version = old_n == 10 ? 0 : new_n == 10 ? 1 : -1;
        bool sorted = std::is_sorted(sc.begin(), sc.end());
        mine.push_back({since(a), since(b), version, st == QV_OK && sorted});
      }
      std::lock_guard<std::mutex> lk(mu);
      samples.insert(samples.end(), mine.begin(), mine.end());
    });
  std::vector<std::pair<double, double>> swaps; // windows of builds and the import
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  double import_done = 0;
  {
    Client cl(srv.target());
    qv_error e{};
    for (int b = 0; b < 3; b++) {
      double a = since(Clock::now());
      ASSERT_EQ(qv_client_build(cl.c, "live", 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
      swaps.push_back({a, since(Clock::now())});
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
    qv_client_import_opts io{};
    io.index_dir = off.c_str();
    io.chunk_bytes = 512 * 1024;
    qv_collection_info info;
    qv_client_build_result res;
    double a = since(Clock::now());
    ASSERT_EQ(qv_client_import(cl.c, "live", &io, nullptr, nullptr, &info, &res, &e), QV_OK)
        << e.msg;
    import_done = since(Clock::now());
    swaps.push_back({a, import_done});
    EXPECT_EQ(info.count, 5000u);
    EXPECT_STREQ(info.index_spec, "IVF32,Flat");
    EXPECT_EQ(info.index_version, 5u); // 1 + 3 builds + the import
    EXPECT_GT(res.recall, 0.5);
    EXPECT_EQ(res.files, 5u); // index, vectors, ids, the version's manifest, MANIFEST.json
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop.store(true);
  for (auto &t : clients)
    t.join();
  size_t failed = 0, mixed = 0, old_after = 0, new_before = 0, during = 0;
  double max_during = 0, max_other = 0;
  const double import_start = swaps.back().first;
  for (const Sample &s : samples) {
    failed += !s.ok;
    mixed += s.version < 0;
    old_after += s.start > import_done && s.version == 0;
    new_before += s.end < import_start && s.version == 1;
    bool in_swap = false;
    for (auto &w : swaps)
      in_swap |= s.end >= w.first && s.start <= w.second;
    double lat = (s.end - s.start) * 1e3;
    if (in_swap) {
      during++;
      max_during = std::max(max_during, lat);
    } else {
      max_other = std::max(max_other, lat);
    }
  }
  EXPECT_EQ(failed, 0u);
  EXPECT_EQ(mixed, 0u);
  EXPECT_EQ(old_after, 0u) << "answers from the old index after the import returned";
  EXPECT_EQ(new_before, 0u);
  EXPECT_GT(during, 100u);
  std::printf("[ swap ] 4 clients, %zu searches (%zu during 3 rebuilds + 1 import), 0 failed; "
              "longest search %.1f ms during a build/swap, %.1f ms otherwise\n",
              samples.size(), during, max_during, max_other);
  EXPECT_NE(srv.log().find("ImportIndex collection=live streamed"), std::string::npos);
  EXPECT_EQ(staging_dirs(srv.data_dir), 0u);
}

TEST_F(Lifecycle, RecallGatedBuildsAndNprobeTuning) {
  ASSERT_TRUE(srv.start(tmp.sub("data")));
  Client cl(srv.target());
  create_and_fill(cl.c, "pq", "IVF64,PQ8", base, 0);
  qv_error e{};
  qv_collection_info info;
  ASSERT_EQ(qv_client_build(cl.c, "pq", 0, nullptr, nullptr, &info, &e), QV_OK) << e.msg;
  EXPECT_GE(info.build_recall, 0.0);
  qv_client_build_opts bo{};
  bo.recall_floor = 0.999; // PQ8 on 128 dims cannot
  qv_client_build_result res;
  EXPECT_EQ(qv_client_build_ex(cl.c, "pq", &bo, 0, nullptr, nullptr, nullptr, &res, &e),
            QV_EPRECONDITION);
  EXPECT_NE(std::string(e.msg).find("FAILED_PRECONDITION"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("below the floor"), std::string::npos) << e.msg;
  ASSERT_EQ(qv_client_describe(cl.c, "pq", &info, &e), QV_OK);
  EXPECT_EQ(info.index_version, 1u); // the old index keeps serving
  std::vector<float> sc(10);
  std::vector<int64_t> ids(10);
  EXPECT_EQ(qv_client_search(cl.c, "pq", q.f.data(), 1, 128, 10, 0, 0, sc.data(), ids.data(), &e),
            QV_OK);
  // Tuning on an exact-ish index: a default nprobe that reaches 0.9 is picked and shown.
  create_and_fill(cl.c, "flat", "IVF64,Flat", base, 0);
  bo = {};
  bo.target_recall = 0.9;
  ASSERT_EQ(qv_client_build_ex(cl.c, "flat", &bo, 0, nullptr, nullptr, &info, &res, &e), QV_OK)
      << e.msg;
  EXPECT_GT(res.tuned_nprobe, 0u);
  EXPECT_GE(res.recall, 0.9);
  EXPECT_EQ(info.default_nprobe, res.tuned_nprobe);
  EXPECT_EQ(info.build_recall_nprobe, res.tuned_nprobe);
  // Out-of-range options are refused before anything runs.
  bo.target_recall = 2;
  EXPECT_EQ(qv_client_build_ex(cl.c, "flat", &bo, 0, nullptr, nullptr, nullptr, nullptr, &e),
            QV_EINVAL);
}

TEST_F(Lifecycle, ImportRefusesWhatItCannotVerify) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--max-k", "50"}));
  Client cl(srv.target());
  create_and_fill(cl.c, "c", "IVF16,Flat", base, 0);
  qv_error e{};
  ASSERT_EQ(qv_client_build(cl.c, "c", 0, nullptr, nullptr, nullptr, &e), QV_OK);
  qv_client_import_opts io{};
  // Wrong dimension.
  Matrix half;
  half.rows = 500;
  half.cols = 64;
  half.f.assign(base.f.begin(), base.f.begin() + 500 * 64);
  const std::string d64 = tmp.sub("d64");
  offline_index(d64, half, "Flat", 0);
  io.index_dir = d64.c_str();
  EXPECT_EQ(qv_client_import(cl.c, "c", &io, nullptr, nullptr, nullptr, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("dim 64"), std::string::npos) << e.msg;
  // A damaged file: the manifest's CRC-32 catches it.
  const std::string good = tmp.sub("good");
  offline_index(good, base, "IVF8,Flat", 0);
  const std::string bad = tmp.sub("bad");
  std::filesystem::copy(good, bad, std::filesystem::copy_options::recursive);
  {
    std::fstream f(bad + "/v000001/vectors.npy", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x55');
  }
  io.index_dir = bad.c_str();
  EXPECT_EQ(qv_client_import(cl.c, "c", &io, nullptr, nullptr, nullptr, nullptr, &e), QV_ECORRUPT);
  EXPECT_NE(std::string(e.msg).find("DATA_LOSS"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("CRC"), std::string::npos) << e.msg;
  // Unknown collection, unless asked to create it.
  io.index_dir = good.c_str();
  EXPECT_EQ(qv_client_import(cl.c, "nope", &io, nullptr, nullptr, nullptr, nullptr, &e),
            QV_ENOTFOUND);
  io.create = 1;
  qv_collection_info info;
  ASSERT_EQ(qv_client_import(cl.c, "fresh", &io, nullptr, nullptr, &info, nullptr, &e), QV_OK)
      << e.msg;
  EXPECT_EQ(info.count, 5000u);
  EXPECT_STREQ(info.index_spec, "IVF8,Flat");
  io.create = 0;
  // Recall options out of range, or asking for more than the server's max k, before any upload.
  io.check.target_recall = std::nan("");
  EXPECT_EQ(qv_client_import(cl.c, "c", &io, nullptr, nullptr, nullptr, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("target recall"), std::string::npos) << e.msg;
  io.check.target_recall = 0;
  io.check.eval_k = 51;
  EXPECT_EQ(qv_client_import(cl.c, "c", &io, nullptr, nullptr, nullptr, nullptr, &e), QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("max k 50"), std::string::npos) << e.msg;
  io.check.eval_k = 0;
  // An import that creates its collection and then fails its recall floor leaves none behind.
  const std::string pq = tmp.sub("pq");
  offline_index(pq, base, "IVF8,PQ8", 0);
  io.index_dir = pq.c_str();
  io.create = 1;
  io.check.recall_floor = 0.99;
  EXPECT_EQ(qv_client_import(cl.c, "lowrecall", &io, nullptr, nullptr, nullptr, nullptr, &e),
            QV_EPRECONDITION);
  EXPECT_EQ(qv_client_describe(cl.c, "lowrecall", &info, &e), QV_ENOTFOUND);
  io.index_dir = good.c_str();
  io.create = 0;
  io.check.recall_floor = 0;
  // Server-side paths are off without --import-root.
  io.index_dir = nullptr;
  io.server_path = good.c_str();
  EXPECT_EQ(qv_client_import(cl.c, "c", &io, nullptr, nullptr, nullptr, nullptr, &e),
            QV_EPRECONDITION);
  EXPECT_NE(std::string(e.msg).find("--import-root"), std::string::npos) << e.msg;
  // Hand-made messages: a chunk whose CRC does not match, a path outside the directory, a chunk
  // out of order.
  std::string det;
  RawImport r;
  r.collection = "c";
  r.file = "v000001/index.faiss";
  r.data = std::string("\x01\x02\x03\x04", 4);
  const uint32_t good_crc =
      uint32_t(crc32(0L, reinterpret_cast<const Bytef *>(r.data.data()), uInt(r.data.size())));
  r.crc32 = good_crc ^ 1u;
  EXPECT_EQ(raw_import(srv.target(), r, &det), GRPC_STATUS_DATA_LOSS) << det;
  EXPECT_NE(det.find("CRC-32"), std::string::npos) << det;
  r.crc32 = good_crc;
  r.file = "../../etc/passwd";
  EXPECT_EQ(raw_import(srv.target(), r, &det), GRPC_STATUS_INVALID_ARGUMENT) << det;
  r.file = "v000001/index.faiss";
  r.offset = 4096;
  EXPECT_EQ(raw_import(srv.target(), r, &det), GRPC_STATUS_INVALID_ARGUMENT) << det;
  EXPECT_NE(det.find("in order"), std::string::npos) << det;
  r.offset = 0; // a lone chunk: the directory has no manifest
  EXPECT_EQ(raw_import(srv.target(), r, &det), GRPC_STATUS_NOT_FOUND) << det;
  // Through all of that the collection kept serving its own index, and no staging is left.
  ASSERT_EQ(qv_client_describe(cl.c, "c", &info, &e), QV_OK);
  EXPECT_STREQ(info.index_spec, "IVF16,Flat");
  EXPECT_EQ(info.index_version, 1u);
  EXPECT_EQ(staging_dirs(srv.data_dir), 0u);
}

TEST_F(Lifecycle, ABuildOverTheMemoryBudgetIsRefused) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--memory-budget-mb", "4"}));
  Client cl(srv.target());
  create_and_fill(cl.c, "big", "IVF16,Flat", base, 0); // 2.5 MiB stored; a build needs ~7.5
  qv_error e{};
  EXPECT_EQ(qv_client_build(cl.c, "big", 0, nullptr, nullptr, nullptr, &e), QV_ENOMEM);
  EXPECT_NE(std::string(e.msg).find("RESOURCE_EXHAUSTED"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("memory budget"), std::string::npos) << e.msg;
  qv_collection_info info;
  ASSERT_EQ(qv_client_describe(cl.c, "big", &info, &e), QV_OK);
  EXPECT_EQ(info.state, 1); // still not built, nothing half done
  // An import larger than the budget is refused while it streams, before it fills the disk or
  // is loaded, and a collection it would have created is not left behind.
  const std::string off = tmp.sub("offline");
  offline_index(off, base, "IVF16,Flat", 0); // 5 MiB of files
  qv_client_import_opts io{};
  io.index_dir = off.c_str();
  io.create = 1;
  io.chunk_bytes = 512 * 1024;
  EXPECT_EQ(qv_client_import(cl.c, "imported", &io, nullptr, nullptr, nullptr, nullptr, &e),
            QV_ENOMEM);
  EXPECT_NE(std::string(e.msg).find("--memory-budget-mb 4 after"), std::string::npos) << e.msg;
  EXPECT_EQ(qv_client_describe(cl.c, "imported", &info, &e), QV_ENOTFOUND);
  EXPECT_EQ(staging_dirs(srv.data_dir), 0u);
}

// A streamed import stops before it would leave less than --import-min-free-mb free on the data
// disk (here more than any disk has), and cleans up after itself.
TEST_F(Lifecycle, AnImportThatWouldFillTheDiskIsRefused) {
  ASSERT_TRUE(srv.start(tmp.sub("data"), {"--import-min-free-mb", "1073741824"}));
  Client cl(srv.target());
  const std::string off = tmp.sub("offline");
  offline_index(off, base, "IVF16,Flat", 0);
  qv_client_import_opts io{};
  io.index_dir = off.c_str();
  io.create = 1;
  qv_error e{};
  EXPECT_EQ(qv_client_import(cl.c, "big", &io, nullptr, nullptr, nullptr, nullptr, &e), QV_ENOMEM);
  EXPECT_NE(std::string(e.msg).find("RESOURCE_EXHAUSTED"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("--import-min-free-mb"), std::string::npos) << e.msg;
  qv_collection_info info;
  EXPECT_EQ(qv_client_describe(cl.c, "big", &info, &e), QV_ENOTFOUND);
  EXPECT_EQ(staging_dirs(srv.data_dir), 0u);
}

TEST_F(Lifecycle, ADamagedNewestSnapshotIsServedFromThePreviousOne) {
  const std::string dir = tmp.sub("data");
  ASSERT_TRUE(srv.start(dir, {"--wal-snapshot-mb", "1"}));
  {
    Client cl(srv.target());
    create_and_fill(cl.c, "snap", "Flat", base, 0); // 2.5 MiB of log: snapshots along the way
    qv_error e{};
    ASSERT_EQ(qv_client_build(cl.c, "snap", 0, nullptr, nullptr, nullptr, &e), QV_OK);
  }
  ASSERT_EQ(srv.stop(SIGTERM), 0) << srv.log();
  const std::string cdir = dir + "/collections/snap";
  std::vector<std::string> versions;
  for (auto &ent : std::filesystem::directory_iterator(cdir))
    if (ent.path().filename().string()[0] == 'v')
      versions.push_back(ent.path().filename().string());
  std::sort(versions.begin(), versions.end());
  ASSERT_EQ(versions.size(), 2u);
  std::filesystem::resize_file(cdir + "/" + versions.back() + "/index.faiss", 100);
  ASSERT_TRUE(srv.start(dir, {"--wal-snapshot-mb", "1"}));
  Client cl(srv.target());
  qv_collection_info info;
  qv_error e{};
  ASSERT_EQ(qv_client_describe(cl.c, "snap", &info, &e), QV_OK) << e.msg;
  EXPECT_EQ(info.count, 5000u); // the older snapshot plus the log segments kept since it
  EXPECT_EQ(info.state, 2);
  EXPECT_NE(std::string(info.storage_note).find(versions.front()), std::string::npos)
      << info.storage_note;
  EXPECT_NE(srv.log().find("serving the previous version"), std::string::npos) << srv.log();
  std::vector<float> sc(1);
  std::vector<int64_t> ids(1);
  ASSERT_EQ(
      qv_client_search(cl.c, "snap", &base.f[77 * 128], 1, 128, 1, 0, 0, sc.data(), ids.data(), &e),
      QV_OK);
  EXPECT_EQ(ids[0], 77);
}

// A collection whose fallback needs a lost log segment is not served (the others are), until the
// operator creates ACCEPT_WAL_LOSS in its directory: then it is served with what is left, saved
// at once, and the file is removed, so it accepts no later loss.
TEST(WalLoss, TheOperatorAcceptsALossWithAFileAndOnlyOnce) {
  TempDir tmp;
  const std::string data = tmp.sub("data"), dir = data + "/collections/w";
  std::filesystem::create_directories(data + "/collections");
  {
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = 4;
    o.spec = "Flat";
    qv_collection *c = nullptr;
    qv_error e{};
    ASSERT_EQ(qv_collection_create(&c, &o, &e), QV_OK) << e.msg;
    std::vector<int64_t> ids(300);
    std::vector<float> v(300 * 4);
    for (size_t i = 0; i < 300; i++) {
      ids[i] = int64_t(i);
      for (int t = 0; t < 4; t++)
        v[i * 4 + t] = float(i) + 0.25f * float(t);
    }
    ASSERT_EQ(qv_collection_add(c, 100, ids.data(), v.data(), &e), QV_OK);
    ASSERT_EQ(qv_collection_save(c, dir.c_str(), &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_wal_attach(c, dir.c_str(), nullptr, nullptr, &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_add(c, 100, &ids[100], &v[400], &e), QV_OK);
    ASSERT_EQ(qv_collection_save(c, dir.c_str(), &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_add(c, 100, &ids[200], &v[800], &e), QV_OK);
    qv_collection_close(c);
  }
  { // the newest version damaged, the segment its fallback needs lost
    std::fstream f(dir + "/v000002/vectors.npy", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x7f');
  }
  ASSERT_TRUE(std::filesystem::remove(dir + "/wal-v000002.log"));
  {
    qvtest::GrpcScope grpc;
    Quiverd srv;
    ASSERT_TRUE(srv.start(data));
    Client cl(srv.target());
    qv_collection_info info;
    qv_error e{};
    EXPECT_NE(qv_client_describe(cl.c, "w", &info, &e), QV_OK) << "served with a lost segment";
    EXPECT_NE(srv.log().find("ACCEPT_WAL_LOSS"), std::string::npos) << srv.log();
    EXPECT_EQ(srv.stop(), 0);
    { std::ofstream(dir + "/" QV_ACCEPT_WAL_LOSS) << "accepted\n"; }
    ASSERT_TRUE(srv.start(data));
    Client again(srv.target());
    ASSERT_EQ(qv_client_describe(again.c, "w", &info, &e), QV_OK) << e.msg << srv.log();
    EXPECT_EQ(info.count, 200u); // v1's 100 and the log's 100
    EXPECT_FALSE(std::filesystem::exists(dir + "/" QV_ACCEPT_WAL_LOSS));
    EXPECT_NE(srv.log().find("WITHOUT acknowledged writes"), std::string::npos) << srv.log();
    EXPECT_EQ(srv.stop(), 0) << srv.log();
    ASSERT_TRUE(srv.start(data)); // the accepted state was saved: served with no complaint
    Client third(srv.target());
    ASSERT_EQ(qv_client_describe(third.c, "w", &info, &e), QV_OK) << e.msg;
    EXPECT_EQ(info.count, 200u);
    EXPECT_EQ(srv.stop(), 0);
  }
}
