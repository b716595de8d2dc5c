// Drives the real `quiver` binary the way an ML engineer does: build, search with ground truth,
// info; and checks that mistakes end with a clear message and a non-zero exit code.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/testdata.h"
#include "quiver/vecfile.h"

namespace {

using qvtest::CmdResult;

CmdResult run(const std::string &args) {
  return qvtest::run_command(std::string(QUIVER_BIN_DIR) + "/quiver " + args);
}

double json_number(const std::string &s, const std::string &key) {
  auto pos = s.find("\"" + key + "\":");
  if (pos == std::string::npos)
    return -1;
  return std::strtod(s.c_str() + pos + key.size() + 3, nullptr);
}

class Cli : public ::testing::Test {
protected:
  qvtest::TempDir tmp;
  std::string sift = qvtest::data_path("sift5k/sift5k");
  void SetUp() override {
    QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  }
};

} // namespace

TEST_F(Cli, BuildSearchInfoReachRecallTarget) {
  std::string dir = tmp.sub("sift");
  CmdResult b =
      run("index build --input " + sift + "_base.fvecs --spec IVF64,Flat --metric l2 --out " + dir);
  ASSERT_EQ(b.code, 0) << b.out;
  EXPECT_NE(b.out.find("5000 vectors of dim 128"), std::string::npos) << b.out;
  CmdResult s =
      run("index search --index " + dir + " --queries " + sift +
          "_query.fvecs --k 10 --nprobe 32 --groundtruth " + sift + "_groundtruth.ivecs --json");
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_GE(json_number(s.out, "recall_at_k"), 0.95) << s.out;
  EXPECT_EQ(json_number(s.out, "k"), 10);
  EXPECT_EQ(json_number(s.out, "nprobe"), 32);
  EXPECT_EQ(json_number(s.out, "n_queries"), 100);
  EXPECT_GT(json_number(s.out, "qps"), 0);
  // Fewer probes, lower recall: the flag reaches the index.
  CmdResult s1 =
      run("index search --index " + dir + " --queries " + sift +
          "_query.fvecs --k 10 --nprobe 1 --groundtruth " + sift + "_groundtruth.ivecs --json");
  ASSERT_EQ(s1.code, 0) << s1.out;
  EXPECT_LT(json_number(s1.out, "recall_at_k"), json_number(s.out, "recall_at_k"));
  CmdResult i = run("index info --index " + dir + " --json");
  ASSERT_EQ(i.code, 0) << i.out;
  EXPECT_EQ(json_number(i.out, "count"), 5000);
  EXPECT_EQ(json_number(i.out, "nlist"), 64);
  EXPECT_EQ(json_number(i.out, "dim"), 128);
}

TEST_F(Cli, CustomIdsAndResultFilesRoundTrip) {
  // ids = 10 * row, written as .npy; search results written as .npy must carry them.
  std::vector<int64_t> ids(5000);
  for (size_t r = 0; r < ids.size(); r++)
    ids[r] = int64_t(r) * 10;
  qv_error e{};
  std::string idp = tmp.sub("ids.npy"), dir = tmp.sub("c"), outp = tmp.sub("res.npy");
  ASSERT_EQ(qv_npy_write(idp.c_str(), QV_DTYPE_I64, ids.size(), 0, ids.data(), &e), QV_OK);
  CmdResult b =
      run("index build --input " + sift + "_base.fvecs --spec Flat --ids " + idp + " --out " + dir);
  ASSERT_EQ(b.code, 0) << b.out;
  CmdResult s = run("index search --index " + dir + " --queries " + sift +
                    "_query.fvecs --k 5 --output " + outp);
  ASSERT_EQ(s.code, 0) << s.out;
  qv_vecfile *vf = nullptr;
  ASSERT_EQ(qv_vecfile_open(&vf, outp.c_str(), &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_vecfile_rows(vf), 100u);
  ASSERT_EQ(qv_vecfile_cols(vf), 5u);
  std::vector<int64_t> got(500);
  ASSERT_EQ(qv_vecfile_read_i64(vf, 0, 100, got.data(), &e), QV_OK);
  qv_vecfile_close(vf);
  qvtest::Matrix gt = qvtest::load_i64("sift5k/sift5k_groundtruth.ivecs");
  for (size_t q = 0; q < 100; q++)
    EXPECT_EQ(got[q * 5], gt.i[q * gt.cols] * 10) << "query " << q; // Flat is exact
}

TEST_F(Cli, TruncatedIndexDirectoryIsRefused) {
  std::string dir = tmp.sub("t");
  ASSERT_EQ(run("index build --input " + sift + "_base.fvecs --spec IVF16,Flat --out " + dir).code,
            0);
  auto f = dir + "/v000001/index.faiss";
  std::filesystem::resize_file(f, std::filesystem::file_size(f) - 1000);
  CmdResult s = run("index search --index " + dir + " --queries " + sift + "_query.fvecs --k 10");
  EXPECT_EQ(s.code, 1) << s.out;
  EXPECT_NE(s.out.find("corrupt data"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("index.faiss"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("truncated"), std::string::npos) << s.out;
  CmdResult i = run("index info --index " + dir);
  EXPECT_EQ(i.code, 1) << i.out;
}

TEST_F(Cli, MistakesExitNonZeroWithAClearMessage) {
  std::string dir = tmp.sub("m");
  ASSERT_EQ(run("index build --input " + sift + "_base.fvecs --spec Flat --out " + dir).code, 0);
  struct Case {
    std::string args;
    int code;
    std::string needle;
  } cases[] = {
      {"index search --index " + dir + " --queries " +
           qvtest::data_path("deep10k/deep10k_query.fvecs") + " --k 10",
       1, "dimension 96"},
      {"index search --index " + dir + " --queries " + sift + "_query.fvecs --k 0", 2, "--k"},
      {"index search --index " + dir + " --queries " + sift + "_query.fvecs --k -3", 2, "--k"},
      {"index search --index " + dir + " --queries " + sift + "_query.fvecs --nprobe x", 2,
       "--nprobe"},
      {"index search --index " + tmp.sub("absent") + " --queries " + sift + "_query.fvecs", 1,
       "no such directory"},
      {"index search --index " + dir + " --queries " + sift + "_query.fvecs --groundtruth " + sift +
           "_query.fvecs",
       1, "holds floats"},
      {"index build --input " + sift + "_base.fvecs --spec HNSW32,PQ8 --out " + tmp.sub("x"), 1,
       "unsupported index spec"},
      {"--server 127.0.0.1:1 index info --index " + dir, 2, "work offline"},
      {"index build --input " + sift + "_base.fvecs --metric hamming --out " + tmp.sub("x"), 1,
       "unknown metric"},
      {"index build --input " + tmp.sub("nothing.fvecs") + " --out " + tmp.sub("x"), 1,
       "nothing.fvecs"},
      {"index build --input " + sift + "_base.fvecs --spec IVF8000,Flat --out " + tmp.sub("x"), 1,
       "at least 8000"},
      {"index build --out " + tmp.sub("x"), 2, "--input"},
      {"index frobnicate", 2, "unknown index command"},
  };
  for (const auto &c : cases) {
    CmdResult r = run(c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
}

TEST(CliSynth, WritesDataWithExactGroundTruth) {
  qvtest::TempDir tmp;
  std::string prefix = tmp.sub("s");
  CmdResult r = run("data synth --out " + prefix + " --n 3000 --queries 20 --dim 16 --clusters 8");
  ASSERT_EQ(r.code, 0) << r.out;
  qv_error e{};
  auto load = [&](const std::string &p, bool ints, size_t &rows, size_t &cols) {
    qv_vecfile *vf = nullptr;
    EXPECT_EQ(qv_vecfile_open(&vf, p.c_str(), &e), QV_OK) << e.msg;
    rows = qv_vecfile_rows(vf);
    cols = qv_vecfile_cols(vf);
    std::vector<float> f;
    std::vector<int64_t> i;
    if (ints) {
      i.resize(rows * cols);
      EXPECT_EQ(qv_vecfile_read_i64(vf, 0, rows, i.data(), &e), QV_OK);
    } else {
      f.resize(rows * cols);
      EXPECT_EQ(qv_vecfile_read_f32(vf, 0, rows, f.data(), &e), QV_OK);
    }
    qv_vecfile_close(vf);
    return std::make_pair(f, i);
  };
  size_t br, bc, qr, qc, gr, gc;
  auto base = load(prefix + "_base.fvecs", false, br, bc).first;
  auto q = load(prefix + "_query.fvecs", false, qr, qc).first;
  auto gt = load(prefix + "_groundtruth.ivecs", true, gr, gc).second;
  ASSERT_EQ(br, 3000u);
  ASSERT_EQ(bc, 16u);
  ASSERT_EQ(qr, 20u);
  ASSERT_EQ(gr, 20u);
  ASSERT_EQ(gc, 100u);
  // The first ground-truth id of every query is its true nearest neighbour.
  for (size_t i = 0; i < qr; i++) {
    size_t best = 0;
    double bd = 1e300;
    for (size_t j = 0; j < br; j++) {
      double d = 0;
      for (size_t t = 0; t < 16; t++)
        d +=
            (double(q[i * 16 + t]) - base[j * 16 + t]) * (double(q[i * 16 + t]) - base[j * 16 + t]);
      if (d < bd) {
        bd = d;
        best = j;
      }
    }
    EXPECT_EQ(gt[i * 100], int64_t(best)) << "query " << i;
  }
  // Same seed, same bytes.
  ASSERT_EQ(
      run("data synth --out " + prefix + "2 --n 3000 --queries 20 --dim 16 --clusters 8").code, 0);
  size_t r2, c2;
  EXPECT_EQ(load(prefix + "2_base.fvecs", false, r2, c2).first, base);
}
