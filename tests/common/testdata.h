// Test helpers: the shared real data sets and temporary directories. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "quiver/vecfile.h"

namespace qvtest {

// The shared data sets: $QUIVER_DATA_DIR when set (e.g. binaries carried to a GPU machine), else
// the directory configured at build time.
inline std::string data_path(const std::string &rel) {
  const char *env = std::getenv("QUIVER_DATA_DIR");
  return std::string(env && *env ? env : QUIVER_DATA_DIR) + "/" + rel;
}

inline bool have_data(const std::string &rel) {
  return std::filesystem::exists(data_path(rel));
}

// A dense float matrix read through the public vecfile API.
struct Matrix {
  size_t rows = 0, cols = 0;
  std::vector<float> f;
  std::vector<int64_t> i;
};

// Opens rel and reads every row through read (qv_vecfile_read_f32 or _i64) into out.
template <typename T, typename Read>
inline Matrix load(const std::string &rel, std::vector<T> Matrix::*out, Read read) {
  Matrix m;
  qv_vecfile *vf = nullptr;
  qv_error e{};
  EXPECT_EQ(qv_vecfile_open(&vf, data_path(rel).c_str(), &e), QV_OK) << e.msg;
  if (vf == nullptr)
    return m;
  m.rows = qv_vecfile_rows(vf);
  m.cols = qv_vecfile_cols(vf);
  (m.*out).resize(m.rows * m.cols);
  EXPECT_EQ(read(vf, 0, m.rows, (m.*out).data(), &e), QV_OK) << e.msg;
  qv_vecfile_close(vf);
  return m;
}

inline Matrix load_f32(const std::string &rel) {
  return load(rel, &Matrix::f, qv_vecfile_read_f32);
}

inline Matrix load_i64(const std::string &rel) {
  return load(rel, &Matrix::i, qv_vecfile_read_i64);
}

// A shared data set: <set>/<set>_base.fvecs, <set>_query.fvecs and the ground truth
// <set>_<gt>.ivecs.
struct DataSet {
  Matrix base, q, gt;
};

inline DataSet load_set(const std::string &set, const std::string &gt = "groundtruth") {
  const std::string p = set + "/" + set + "_";
  return {load_f32(p + "base.fvecs"), load_f32(p + "query.fvecs"), load_i64(p + gt + ".ivecs")};
}

// The ids id0, id0+1, ..., id0+n-1.
inline std::vector<int64_t> seq_ids(size_t n, int64_t id0 = 0) {
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; i++)
    ids[i] = id0 + int64_t(i);
  return ids;
}

// n standard normal floats, seeded.
inline std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto &x : v)
    x = nd(rng);
  return v;
}

// recall@k = |returned top-k ∩ true top-k| / k, averaged over queries.
inline double recall_at_k(const std::vector<int64_t> &ids, const Matrix &gt, size_t nq, size_t k) {
  size_t hits = 0;
  for (size_t q = 0; q < nq; q++)
    for (size_t a = 0; a < k; a++)
      for (size_t g = 0; g < k; g++)
        if (ids[q * k + a] >= 0 && ids[q * k + a] == gt.i[q * gt.cols + g]) {
          hits++;
          break;
        }
  return double(hits) / double(nq * k);
}

// A temporary directory removed at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/quiver-test-XXXXXX";
    const char *p = mkdtemp(tmpl);
    path = p ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string sub(const std::string &name) const {
    return path + "/" + name;
  }
};

// Runs a shell command, capturing stdout and stderr together, and its exit code.
struct CmdResult {
  int code;
  std::string out;
};

inline CmdResult run_command(const std::string &cmd) {
  CmdResult r{-1, ""};
  FILE *p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr)
    return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Starts argv with stdout and stderr into log; the child's pid (-1 on failure).
inline pid_t spawn(const std::vector<std::string> &args, const std::string &log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE *f = freopen(log.c_str(), "a", stdout);
    f = freopen(log.c_str(), "a", stderr);
    (void)f;
    std::vector<char *> argv;
    for (auto &a : args)
      argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

#define QV_REQUIRE_DATA(rel)                                                                       \
  do {                                                                                             \
    if (!qvtest::have_data(rel))                                                                   \
      GTEST_SKIP() << "data set " << qvtest::data_path(rel)                                        \
                   << " is missing (tests expect ../shared/data beside the checkout)";             \
  } while (0)

} // namespace qvtest
