// Test helpers over the index layer's public header: a collection that closes itself, and the
// make / fill / build / search steps most index tests repeat. C++ (tests only).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
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

inline void make(Col &col, size_t dim, qv_metric m, const char *spec, uint32_t nprobe = 16) {
  qv_collection_opts o;
  qv_collection_opts_init(&o);
  o.dim = dim;
  o.metric = m;
  o.spec = spec;
  o.default_nprobe = nprobe;
  qv_error e{};
  ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
}

// Adds every row of base with ids 0 .. rows-1.
inline void add_all(Col &col, const Matrix &base) {
  std::vector<int64_t> ids(base.rows);
  for (size_t i = 0; i < base.rows; i++)
    ids[i] = int64_t(i);
  qv_error e{};
  ASSERT_EQ(qv_collection_add(col.c, base.rows, ids.data(), base.f.data(), &e), QV_OK) << e.msg;
}

inline void build(Col &col) {
  qv_error e{};
  ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
}

struct Result {
  std::vector<float> scores;
  std::vector<int64_t> ids;
};

// Every query of q, k results each (nprobe 0 = the collection's default).
inline Result search(qv_collection *c, const Matrix &q, size_t k, uint32_t nprobe,
                     bool exact = false) {
  Result r;
  r.scores.resize(q.rows * k);
  r.ids.resize(q.rows * k);
  qv_search_params p{k, nprobe};
  qv_error e{};
  qv_status st =
      exact
          ? qv_collection_search_exact(c, q.f.data(), q.rows, &p, r.scores.data(), r.ids.data(), &e)
          : qv_collection_search(c, q.f.data(), q.rows, &p, r.scores.data(), r.ids.data(), &e);
  EXPECT_EQ(st, QV_OK) << e.msg;
  return r;
}

inline qv_collection_stats stats(qv_collection *c) {
  qv_collection_stats s;
  qv_collection_stats_get(c, &s, nullptr);
  return s;
}

} // namespace qvtest
