// Test helpers over the index layer's public header: a collection that closes itself, and the
// make / fill / build / search steps most index tests repeat. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/testdata.h"
#include "quiver/collection.h"

namespace qvtest {

// A collection closed at scope exit.
struct Col {
  qv_collection *c = nullptr;
  Col() = default;
  Col(const Col &) = delete;
  Col &operator=(const Col &) = delete;
  ~Col() {
    qv_collection_close(c);
  }
};

// Creation options: dim, metric and spec, everything else the defaults.
inline qv_collection_opts opts(size_t dim, const char *spec, qv_metric m = QV_METRIC_L2) {
  qv_collection_opts o;
  qv_collection_opts_init(&o);
  o.dim = dim;
  o.metric = m;
  o.spec = spec;
  return o;
}

inline void make(Col &col, size_t dim, qv_metric m, const char *spec, uint32_t nprobe = 16) {
  qv_collection_opts o = opts(dim, spec, m);
  o.default_nprobe = nprobe;
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
}

// Adds every row of base with ids 0 .. rows-1.
inline void add_all(Col &col, const Matrix &base) {
  std::vector<int64_t> ids = seq_ids(base.rows);
  qv_error e{};
  ASSERT_EQ(qv_collection_add(col.c, base.rows, ids.data(), base.f.data(), &e), QV_OK) << e.msg;
}

inline void build(Col &col) {
  qv_error e{};
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
}

// make, add_all and build: a built collection of every row of base.
inline void make_built(Col &col, const Matrix &base, qv_metric m, const char *spec,
                       uint32_t nprobe = 16) {
  make(col, base.cols, m, spec, nprobe);
  if (!::testing::Test::HasFatalFailure())
    add_all(col, base);
  if (!::testing::Test::HasFatalFailure())
    build(col);
}

// An index built offline through the index layer (what `quiver index build --out` writes): every
// row of base with ids id0, id0+1, ..., built and saved to dir.
inline void offline_index(const std::string &dir, const Matrix &base, const char *spec,
                          int64_t id0 = 0) {
  qv_collection_opts o = opts(base.cols, spec);
  Col col;
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
  std::vector<int64_t> ids = seq_ids(base.rows, id0);
  ASSERT_EQ(qv_collection_add(col.c, base.rows, ids.data(), base.f.data(), &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
  ASSERT_EQ(qv_collection_save(col.c, dir.c_str(), &e), QV_OK) << e.msg;
}

struct Result {
  std::vector<float> scores;
  std::vector<int64_t> ids;
};

// nq queries at q, k results each (nprobe 0 = the collection's default).
inline Result search(qv_collection *c, const float *q, size_t nq, size_t k, uint32_t nprobe,
                     bool exact = false) {
  Result r;
  r.scores.resize(nq * k);
  r.ids.resize(nq * k);
  qv_search_params p{k, nprobe, 0, nullptr, QV_FILTER_AUTO};
  qv_error e{};
  qv_status st = exact ? qv_collection_search_exact(c, q, nq, &p, r.scores.data(), r.ids.data(), &e)
                       : qv_collection_search(c, q, nq, &p, r.scores.data(), r.ids.data(), &e);
  EXPECT_EQ(st, QV_OK) << e.msg;
  return r;
}

// Every query of q.
inline Result search(qv_collection *c, const Matrix &q, size_t k, uint32_t nprobe,
                     bool exact = false) {
  return search(c, q.f.data(), q.rows, k, nprobe, exact);
}

inline qv_collection_stats stats(qv_collection *c) {
  qv_collection_stats s;
  qv_collection_stats_get(c, &s, nullptr);
  return s;
}

} // namespace qvtest
