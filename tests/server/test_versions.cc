// Data versions on a node (ImportIndex stage = true, Search.version, Rollout) through the real
// quiverd and the C client: a staged version answers beside the serving one, writes reach both,
// flip / rollback / abort / release move between them (and refuse the wrong state), a restart
// keeps a staged version with its writes but not a previous one, pinned searches under
// concurrent flips never cross versions, and the bad requests are refused with the right code.
//
// Two versions of one collection hold the same ids with different embeddings: v1 is sift5k, v2
// the same vectors with their dimensions permuted, so that any answer can be told apart: it is
// checked against the exact answer of the version it claims (every score is the distance of its
// id's vector in that version, and the scores are that version's true top-k distances).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/collection.h"
#include "common/server.h"
#include "quiver/collection.h"

using qvtest::Client;
using qvtest::Matrix;
using qvtest::offline_index;

namespace {

using Clock = std::chrono::steady_clock;

const char *const kName = "docs";
constexpr size_t kK = 10;

// The dimensions of every row of m permuted: out[d] = row[(d * mul + add) % cols] (mul coprime
// with cols).
Matrix permuted(const Matrix &m, size_t mul, size_t add) {
  Matrix out = m;
  for (size_t r = 0; r < m.rows; r++)
    for (size_t d = 0; d < m.cols; d++)
      out.f[r * m.cols + d] = m.f[r * m.cols + (d * mul + add) % m.cols];
  return out;
}

// What one data version of the collection holds (ids and their vectors), kept beside the server's
// by applying the same writes; exact answers are computed from it.
struct Model {
  size_t dim = 0;
  std::vector<int64_t> ids;
  std::vector<float> vecs;
  std::unordered_map<int64_t, size_t> row;

  Model() = default;
  explicit Model(const Matrix &m, int64_t id0 = 0) : dim(m.cols), vecs(m.f) {
    for (size_t r = 0; r < m.rows; r++) {
      ids.push_back(id0 + int64_t(r));
      row[id0 + int64_t(r)] = r;
    }
  }
  void put(int64_t id, const float *v) {
    auto it = row.find(id);
    if (it != row.end()) {
      std::copy(v, v + dim, vecs.begin() + long(it->second * dim));
      return;
    }
    row[id] = ids.size();
    ids.push_back(id);
    vecs.insert(vecs.end(), v, v + dim);
  }
  void del(int64_t id) {
    auto it = row.find(id);
    if (it == row.end())
      return;
    const size_t r = it->second, last = ids.size() - 1;
    row.erase(it);
    if (r != last) { // the last row moves into the hole
      ids[r] = ids[last];
      std::copy(vecs.begin() + long(last * dim), vecs.begin() + long((last + 1) * dim),
                vecs.begin() + long(r * dim));
      row[ids[r]] = r;
    }
    ids.pop_back();
    vecs.resize(ids.size() * dim);
  }
  size_t size() const {
    return ids.size();
  }
  double dist(size_t r, const float *q) const {
    double s = 0;
    for (size_t d = 0; d < dim; d++) {
      const double x = double(vecs[r * dim + d]) - double(q[d]);
      s += x * x;
    }
    return s;
  }
  // The k smallest squared L2 distances to q, ascending.
  std::vector<double> topk(const float *q, size_t k) const {
    std::vector<double> all(ids.size());
    for (size_t r = 0; r < ids.size(); r++)
      all[r] = dist(r, q);
    k = std::min(k, all.size());
    std::partial_sort(all.begin(), all.begin() + long(k), all.end());
    all.resize(k);
    return all;
  }
  // The id nearest to q (the smallest id among equally near ones).
  int64_t nearest(const float *q) const {
    int64_t best = -1;
    double bd = 0;
    for (size_t r = 0; r < ids.size(); r++) {
      const double d = dist(r, q);
      if (best < 0 || d < bd || (d == bd && ids[r] < best)) {
        best = ids[r];
        bd = d;
      }
    }
    return best;
  }
};

// FAISS computes L2 in float (and through ||x||^2 + ||y||^2 - 2xy for batches): distances of
// sift's integer vectors agree to well within this; the same id in the other version is
// thousands apart.
bool near(double got, double want) {
  return std::fabs(got - want) <= 1e-4 * std::fabs(want) + 1.0;
}

struct Answer {
  qv_status st = QV_EINTERNAL;
  uint64_t version = 0;
  std::string msg;
  std::vector<int64_t> ids;
  std::vector<float> scores;
};

struct SearchAsk {
  uint64_t version = 0;
  int exact = 0;
  const qv_client_rerank *rerank = nullptr;
};

Answer search(qv_client *c, const float *q, size_t nq, size_t dim, const SearchAsk &a = {}) {
  Answer r;
  r.ids.assign(nq * kK, -2);
  r.scores.assign(nq * kK, 0);
  qv_client_search_opts o;
  qv_client_search_opts_init(&o);
  o.version = a.version;
  o.exact = a.exact;
  o.rerank = a.rerank;
  o.answered_version = &r.version;
  qv_error e{};
  r.st = qv_client_search_ex(c, kName, q, nq, dim, kK, &o, r.scores.data(), r.ids.data(), nullptr,
                             0, nullptr, &e);
  r.msg = e.msg;
  return r;
}

// Whether a's nq answers (for the queries at q) are m's exact answers: each id is held by m, its
// score is its vector's distance in m, and the scores are m's true top-k distances. want: the
// precomputed top-k of each query (nullptr: computed here).
::testing::AssertionResult answers_of(const Model &m, const float *q, size_t nq, const Answer &a,
                                      const std::vector<std::vector<double>> *want = nullptr) {
  if (a.st != QV_OK)
    return ::testing::AssertionFailure() << "search failed: " << a.msg;
  for (size_t i = 0; i < nq; i++) {
    const float *qi = q + i * m.dim;
    const std::vector<double> top = want ? (*want)[i] : m.topk(qi, kK);
    for (size_t j = 0; j < kK; j++) {
      const int64_t id = a.ids[i * kK + j];
      const double s = a.scores[i * kK + j];
      auto it = m.row.find(id);
      if (it == m.row.end())
        return ::testing::AssertionFailure()
               << "query " << i << " rank " << j << ": id " << id << " is not in that version";
      const double d = m.dist(it->second, qi);
      if (!near(s, d))
        return ::testing::AssertionFailure() << "query " << i << " rank " << j << ": id " << id
                                             << " scored " << s << ", its distance there is " << d;
      if (!near(s, top[j]))
        return ::testing::AssertionFailure() << "query " << i << " rank " << j << ": score " << s
                                             << ", the true " << j << "th distance is " << top[j];
    }
  }
  return ::testing::AssertionSuccess();
}

qv_status import(qv_client *c, const char *name, const std::string &dir, int stage,
                 uint64_t version, int create, qv_collection_info *info,
                 qv_client_build_result *res, std::string *msg, bool on_server = false) {
  qv_client_import_opts o{};
  if (on_server)
    o.server_path = dir.c_str();
  else
    o.index_dir = dir.c_str();
  o.create = create;
  o.stage = stage;
  o.version = version;
  qv_error e{};
  qv_status st = qv_client_import(c, name, &o, nullptr, nullptr, info, res, &e);
  if (msg)
    *msg = e.msg;
  return st;
}

qv_status rollout(qv_client *c, qv_rollout_action a, uint64_t version, qv_rollout_status *out,
                  std::string *msg, const char *name = kName) {
  qv_error e{};
  qv_status st = qv_client_rollout(c, name, a, version, out, &e);
  if (msg)
    *msg = e.msg;
  return st;
}

qv_collection_info describe(qv_client *c) {
  qv_collection_info info{};
  qv_error e{};
  EXPECT_EQ(qv_client_describe(c, kName, &info, &e), QV_OK) << e.msg;
  return info;
}

bool has(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

class DataVersions : public qvtest::Sift5kServerTest {
protected:
  Matrix v2;
  std::string v1dir, v2dir;
  Model m1, m2;
  const size_t nq = 8; // the queries each check searches

  void SetUp() override {
    Sift5kServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    v2 = permuted(base, 37, 11);
    m1 = Model(base);
    m2 = Model(v2);
    v1dir = tmp.sub("v1");
    v2dir = tmp.sub("v2");
    offline_index(v1dir, base, "Flat");
    offline_index(v2dir, v2, "Flat");
  }

  const float *query(size_t i) const {
    return &q.f[i * q.cols];
  }

  // quiverd on tmp/data (extra: more flags) with collection kName imported from v1 (version 1).
  void start_with_v1(const std::vector<std::string> &extra = {}) {
    ASSERT_TRUE(srv.start(tmp.sub("data"), extra));
    Client cl(srv.target());
    qv_collection_info info{};
    qv_client_build_result res{};
    std::string msg;
    ASSERT_EQ(import(cl.c, kName, v1dir, 0, 0, 1, &info, &res, &msg), QV_OK) << msg;
    ASSERT_EQ(info.version, 1u);
    ASSERT_EQ(res.version, 1u);
    ASSERT_EQ(info.beside.version, 0u);
  }

  // Stages v2's directory (version 0: serving + 1); *res (may be nullptr) gets the result.
  void stage_v2(qv_client *c, uint64_t version = 0, qv_collection_info *info = nullptr,
                qv_client_build_result *res = nullptr) {
    std::string msg;
    ASSERT_EQ(import(c, kName, v2dir, 1, version, 0, info, res, &msg), QV_OK) << msg;
  }
};

} // namespace

// Staged beside the serving version: described with its count and recall, searched only when
// asked for by its number (plain, exact and reranked searches), the serving one answering the
// rest; a version held by neither is refused.
TEST_F(DataVersions, StagedVersionAnswersOnlyWhenAskedFor) {
  start_with_v1();
  Client cl(srv.target());
  qv_collection_info info{};
  qv_client_build_result res{};
  stage_v2(cl.c, 0, &info, &res);
  EXPECT_EQ(res.version, 2u);
  EXPECT_EQ(info.version, 1u);
  EXPECT_EQ(info.count, 5000u);
  qv_collection_info d = describe(cl.c);
  EXPECT_EQ(d.version, 1u);
  EXPECT_EQ(d.count, 5000u);
  EXPECT_EQ(d.beside.version, 2u);
  EXPECT_STREQ(d.beside.state, "staged");
  EXPECT_EQ(d.beside.count, 5000u);
  EXPECT_GE(d.beside.memory_bytes, 5000u * 128 * sizeof(float));
  EXPECT_GT(d.beside.recall_k, 0u);
  EXPECT_GE(d.beside.recall, 0.99) << "a Flat index measures exact"; // measured when staged
  EXPECT_LE(d.beside.recall, 1.0);

  const float *qs = query(0);
  Answer a = search(cl.c, qs, nq, q.cols);
  EXPECT_EQ(a.version, 1u);
  EXPECT_TRUE(answers_of(m1, qs, nq, a));
  EXPECT_FALSE(answers_of(m2, qs, nq, a)) << "the two versions' answers must differ";
  a = search(cl.c, qs, nq, q.cols, {1});
  EXPECT_EQ(a.version, 1u);
  EXPECT_TRUE(answers_of(m1, qs, nq, a));
  a = search(cl.c, qs, nq, q.cols, {2});
  EXPECT_EQ(a.version, 2u);
  EXPECT_TRUE(answers_of(m2, qs, nq, a));
  EXPECT_FALSE(answers_of(m1, qs, nq, a));
  // The exact and the reranked paths pick the version too.
  a = search(cl.c, qs, nq, q.cols, {2, 1});
  EXPECT_EQ(a.version, 2u);
  EXPECT_TRUE(answers_of(m2, qs, nq, a));
  qv_client_rerank rr{};
  rr.candidates = 40;
  rr.refine = 1;
  a = search(cl.c, qs, nq, q.cols, {2, 0, &rr});
  EXPECT_EQ(a.version, 2u);
  EXPECT_TRUE(answers_of(m2, qs, nq, a));
  a = search(cl.c, qs, nq, q.cols, {0, 0, &rr});
  EXPECT_EQ(a.version, 1u);
  EXPECT_TRUE(answers_of(m1, qs, nq, a));

  for (uint64_t v : {3ull, 1000ull}) {
    a = search(cl.c, qs, 1, q.cols, {v});
    EXPECT_EQ(a.st, QV_EPRECONDITION) << a.msg;
    EXPECT_TRUE(has(a.msg, "FAILED_PRECONDITION")) << a.msg;
    EXPECT_TRUE(has(a.msg, "version " + std::to_string(v))) << a.msg;
    EXPECT_TRUE(has(a.msg, "staged version 2")) << a.msg;
  }
  qv_rollout_status rs{};
  std::string msg;
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_STATUS, 0, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 1u);
  EXPECT_EQ(rs.beside.version, 2u);
  EXPECT_STREQ(rs.beside.state, "staged");
  EXPECT_EQ(rs.beside.count, 5000u);
  EXPECT_TRUE(has(rs.message, "serving version 1")) << rs.message;
}

// Upserts and deletes made while a version is staged reach both versions; after a flip they
// still reach the previous one, which a rollback serves with them.
TEST_F(DataVersions, WritesReachTheServingAndTheHeldVersion) {
  start_with_v1();
  Client cl(srv.target());
  stage_v2(cl.c);
  const size_t dim = q.cols;
  // A new id whose vector is query 0, an existing id (5) moved onto query 1: both come back
  // first from both versions.
  const int64_t up_ids[2] = {900000, 5};
  std::vector<float> up(query(0), query(0) + 2 * dim);
  qv_error e{};
  uint64_t count = 0;
  ASSERT_EQ(
      qv_client_upsert(cl.c, kName, 2, dim, up_ids, up.data(), 0, nullptr, nullptr, &count, &e),
      QV_OK)
      << e.msg;
  EXPECT_EQ(count, 5001u);
  for (int i = 0; i < 2; i++) {
    m1.put(up_ids[i], &up[size_t(i) * dim]);
    m2.put(up_ids[i], &up[size_t(i) * dim]);
  }
  // Delete the nearest id of query 2 in each version.
  const int64_t del_ids[2] = {m1.nearest(query(2)), m2.nearest(query(2))};
  ASSERT_NE(del_ids[0], del_ids[1]) << "the versions must differ";
  uint64_t deleted = 0;
  ASSERT_EQ(qv_client_delete(cl.c, kName, 2, del_ids, &deleted, &count, &e), QV_OK) << e.msg;
  EXPECT_EQ(deleted, 2u);
  EXPECT_EQ(count, 4999u);
  for (int64_t id : del_ids) {
    m1.del(id);
    m2.del(id);
  }
  qv_collection_info d = describe(cl.c);
  EXPECT_EQ(d.count, 4999u);
  EXPECT_EQ(d.beside.count, 4999u) << "the staged version took the same writes";

  for (uint64_t v : {1ull, 2ull}) {
    SCOPED_TRACE("version " + std::to_string(v));
    const Model &m = v == 1 ? m1 : m2;
    Answer a = search(cl.c, query(0), 3, dim, {v});
    ASSERT_EQ(a.st, QV_OK) << a.msg;
    EXPECT_EQ(a.version, v);
    EXPECT_EQ(a.ids[0], 900000);
    EXPECT_EQ(a.ids[kK], 5);
    EXPECT_NEAR(a.scores[0], 0, 1.0);
    for (size_t j = 0; j < kK; j++)
      for (int64_t gone : del_ids)
        EXPECT_NE(a.ids[2 * kK + j], gone) << "a deleted id came back";
    EXPECT_TRUE(answers_of(m, query(0), 3, a));
    EXPECT_TRUE(answers_of(m, query(3), nq, search(cl.c, query(3), nq, dim, {v})));
  }

  // Flipped: version 2 serves, 1 is previous and still takes writes.
  qv_rollout_status rs{};
  std::string msg;
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 2, &rs, &msg), QV_OK) << msg;
  const int64_t late = 900001;
  ASSERT_EQ(qv_client_upsert(cl.c, kName, 1, dim, &late, query(4), 0, nullptr, nullptr, &count, &e),
            QV_OK)
      << e.msg;
  m1.put(late, query(4));
  m2.put(late, query(4));
  Answer a = search(cl.c, query(4), 1, dim, {1});
  ASSERT_EQ(a.st, QV_OK) << a.msg;
  EXPECT_EQ(a.version, 1u);
  EXPECT_EQ(a.ids[0], late) << "the previous version missed a write made after the flip";
  EXPECT_TRUE(answers_of(m1, query(4), 1, a));
  a = search(cl.c, query(4), 1, dim);
  EXPECT_EQ(a.version, 2u);
  EXPECT_EQ(a.ids[0], late);
  EXPECT_TRUE(answers_of(m2, query(4), 1, a));

  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_ROLLBACK, 0, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 1u);
  EXPECT_EQ(describe(cl.c).count, 5000u);
  a = search(cl.c, query(0), nq, dim);
  EXPECT_EQ(a.version, 1u);
  EXPECT_TRUE(answers_of(m1, query(0), nq, a)) << "rolled back without the writes it took";
}

// The state machine: flip, rollback, abort and release each from its own state, and refused
// (FAILED_PRECONDITION naming what is held) from the others.
TEST_F(DataVersions, FlipRollbackAbortReleaseAndTheirWrongStates) {
  start_with_v1();
  Client cl(srv.target());
  stage_v2(cl.c);
  qv_rollout_status rs{};
  std::string msg;
  const size_t dim = q.cols;

  // Staged 2: no previous to roll back to or release; a flip to another number is refused.
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_ROLLBACK, 0, &rs, &msg), QV_EPRECONDITION) << msg;
  EXPECT_TRUE(has(msg, "no previous version")) << msg;
  EXPECT_TRUE(has(msg, "version 2 is staged")) << msg;
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_RELEASE, 0, &rs, &msg), QV_EPRECONDITION) << msg;
  EXPECT_TRUE(has(msg, "no previous version")) << msg;
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 3, &rs, &msg), QV_EPRECONDITION) << msg;
  EXPECT_TRUE(has(msg, "not the version 3 asked for")) << msg;
  qv_collection_info d = describe(cl.c);
  EXPECT_EQ(d.version, 1u) << "a refused flip changed the serving version";
  EXPECT_EQ(d.beside.version, 2u);
  EXPECT_STREQ(d.beside.state, "staged");

  // Flip: 2 serves, 1 is previous (still answerable by number).
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 2, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 2u);
  EXPECT_EQ(rs.beside.version, 1u);
  EXPECT_STREQ(rs.beside.state, "previous");
  EXPECT_EQ(rs.beside.count, 5000u);
  EXPECT_TRUE(has(rs.message, "flipped from version 1 to 2")) << rs.message;
  d = describe(cl.c);
  EXPECT_EQ(d.version, 2u);
  EXPECT_EQ(d.beside.version, 1u);
  EXPECT_STREQ(d.beside.state, "previous");
  Answer a = search(cl.c, query(0), nq, dim);
  EXPECT_EQ(a.version, 2u);
  EXPECT_TRUE(answers_of(m2, query(0), nq, a));
  a = search(cl.c, query(0), nq, dim, {1});
  EXPECT_EQ(a.version, 1u);
  EXPECT_TRUE(answers_of(m1, query(0), nq, a));
  a = search(cl.c, query(0), nq, dim, {2});
  EXPECT_EQ(a.version, 2u);
  EXPECT_TRUE(answers_of(m2, query(0), nq, a));
  EXPECT_EQ(search(cl.c, query(0), 1, dim, {3}).st, QV_EPRECONDITION);

  // Previous 1: nothing staged to flip to or abort.
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 0, &rs, &msg), QV_EPRECONDITION) << msg;
  EXPECT_TRUE(has(msg, "no staged version")) << msg;
  EXPECT_TRUE(has(msg, "version 1 is previous")) << msg;
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_ABORT, 0, &rs, &msg), QV_EPRECONDITION) << msg;
  EXPECT_TRUE(has(msg, "no staged version")) << msg;

  // Rollback: 1 serves again, 2 is gone.
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_ROLLBACK, 0, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 1u);
  EXPECT_EQ(rs.beside.version, 0u);
  EXPECT_TRUE(has(rs.message, "rolled back from version 2 to 1")) << rs.message;
  a = search(cl.c, query(0), nq, dim);
  EXPECT_EQ(a.version, 1u);
  EXPECT_TRUE(answers_of(m1, query(0), nq, a));
  a = search(cl.c, query(0), 1, dim, {2});
  EXPECT_EQ(a.st, QV_EPRECONDITION) << "version 2 still answers after the rollback";
  EXPECT_TRUE(has(a.msg, "holds no other")) << a.msg;
  // Nothing held: every action but STATUS is refused.
  for (qv_rollout_action act :
       {QV_ROLLOUT_FLIP, QV_ROLLOUT_ABORT, QV_ROLLOUT_ROLLBACK, QV_ROLLOUT_RELEASE}) {
    EXPECT_EQ(rollout(cl.c, act, 0, &rs, &msg), QV_EPRECONDITION) << act << ": " << msg;
    EXPECT_TRUE(has(msg, "only the serving one")) << msg;
  }
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_STATUS, 0, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 1u);
  EXPECT_EQ(rs.beside.version, 0u);

  // Staged under a number of its own, then aborted.
  qv_client_build_result res{};
  stage_v2(cl.c, 5, nullptr, &res);
  EXPECT_EQ(res.version, 5u);
  a = search(cl.c, query(0), nq, dim, {5});
  EXPECT_EQ(a.version, 5u);
  EXPECT_TRUE(answers_of(m2, query(0), nq, a));
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_ABORT, 0, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 1u);
  EXPECT_EQ(rs.beside.version, 0u);
  EXPECT_TRUE(has(rs.message, "staged version 5 dropped")) << rs.message;
  EXPECT_EQ(search(cl.c, query(0), 1, dim, {5}).st, QV_EPRECONDITION);
  EXPECT_EQ(describe(cl.c).beside.version, 0u);

  // Staged again (serving + 1 = 2), flipped with no number, the previous released.
  stage_v2(cl.c, 0, nullptr, &res);
  EXPECT_EQ(res.version, 2u);
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 0, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 2u);
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_RELEASE, 0, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(rs.version, 2u);
  EXPECT_EQ(rs.beside.version, 0u);
  EXPECT_TRUE(has(rs.message, "previous version 1 dropped")) << rs.message;
  EXPECT_EQ(search(cl.c, query(0), 1, dim, {1}).st, QV_EPRECONDITION);
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_ROLLBACK, 0, &rs, &msg), QV_EPRECONDITION) << msg;
  a = search(cl.c, query(0), nq, dim);
  EXPECT_EQ(a.version, 2u);
  EXPECT_TRUE(answers_of(m2, query(0), nq, a));
}

// A restart holds the staged version again, with the writes it took (replayed from its own log
// after a kill); after a flip, a restart serves the flipped-to version and holds no previous.
TEST_F(DataVersions, RestartKeepsTheStagedVersionWithItsWritesButNotThePrevious) {
  start_with_v1();
  const size_t dim = q.cols;
  const int64_t up_id = 900000;
  int64_t gone = -1;
  {
    Client cl(srv.target());
    stage_v2(cl.c);
    qv_error e{};
    ASSERT_EQ(
        qv_client_upsert(cl.c, kName, 1, dim, &up_id, query(0), 0, nullptr, nullptr, nullptr, &e),
        QV_OK)
        << e.msg;
    gone = m2.nearest(query(2));
    ASSERT_EQ(qv_client_delete(cl.c, kName, 1, &gone, nullptr, nullptr, &e), QV_OK) << e.msg;
    for (Model *m : {&m1, &m2}) {
      m->put(up_id, query(0));
      m->del(gone);
    }
  }
  // A kill: nothing saved at shutdown, the writes come back from the logs.
  srv.stop(SIGKILL);
  ASSERT_TRUE(srv.start(srv.data_dir));
  {
    Client cl(srv.target());
    qv_collection_info d = describe(cl.c);
    EXPECT_EQ(d.version, 1u);
    EXPECT_EQ(d.count, 5000u);
    EXPECT_EQ(d.beside.version, 2u) << "the staged version is not held after the restart";
    EXPECT_STREQ(d.beside.state, "staged");
    EXPECT_EQ(d.beside.count, 5000u);
    for (uint64_t v : {1ull, 2ull}) {
      SCOPED_TRACE("version " + std::to_string(v));
      Answer a = search(cl.c, query(0), nq, dim, {v});
      ASSERT_EQ(a.st, QV_OK) << a.msg;
      EXPECT_EQ(a.version, v);
      EXPECT_EQ(a.ids[0], up_id) << "an upsert made while staged is lost";
      EXPECT_TRUE(answers_of(v == 1 ? m1 : m2, query(0), nq, a));
      a = search(cl.c, query(2), 1, dim, {v});
      for (size_t j = 0; j < kK; j++)
        EXPECT_NE(a.ids[j], gone) << "a delete made while staged is lost";
    }
    qv_rollout_status rs{};
    std::string msg;
    ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 2, &rs, &msg), QV_OK) << msg;
    EXPECT_EQ(rs.beside.version, 1u);
  }
  ASSERT_EQ(srv.stop(SIGTERM), 0) << srv.log();
  ASSERT_TRUE(srv.start(srv.data_dir));
  {
    Client cl(srv.target());
    qv_collection_info d = describe(cl.c);
    EXPECT_EQ(d.version, 2u) << "the flip did not last";
    EXPECT_EQ(d.beside.version, 0u) << "a previous version is held over a restart";
    Answer a = search(cl.c, query(0), nq, dim);
    EXPECT_EQ(a.version, 2u);
    EXPECT_TRUE(answers_of(m2, query(0), nq, a));
    a = search(cl.c, query(0), 1, dim, {1});
    EXPECT_EQ(a.st, QV_EPRECONDITION) << a.msg;
    qv_rollout_status rs{};
    std::string msg;
    EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_ROLLBACK, 0, &rs, &msg), QV_EPRECONDITION) << msg;
    // The next version staged after it is 3.
    qv_client_build_result res{};
    stage_v2(cl.c, 0, nullptr, &res);
    EXPECT_EQ(res.version, 3u);
  }
}

// Searches pinned to a version (and unpinned ones) while the collection is staged, flipped and
// rolled back in a loop: every answer is the exact answer of the version it names, a pinned one
// names the version asked for, and searches of version 1 (serving or previous throughout) never
// fail. Batched searches wait in their batcher's queue (one leader, a wait) so that flips land
// while they are queued.
TEST_F(DataVersions, PinnedSearchesUnderFlipsNeverCrossVersions) {
  start_with_v1({"--import-root", tmp.path, "--batch-leaders", "1", "--batch-wait-us", "500"});
  const size_t dim = q.cols, nqs = 20;
  std::vector<std::vector<double>> top1, top2; // each query's true top-k in each version
  for (size_t i = 0; i < nqs; i++) {
    top1.push_back(m1.topk(query(i), kK));
    top2.push_back(m2.topk(query(i), kK));
  }
  struct Ask {
    uint64_t version;
    int exact;
  };
  // Pinned plain (batched while it serves, inline while held beside), pinned exact (inline),
  // unpinned plain (batched) and exact (inline).
  const std::vector<Ask> asks = {{1, 0}, {2, 0}, {1, 1}, {2, 1}, {0, 0}, {0, 1}};
  struct Tally {
    size_t ok = 0, refused = 0, failed = 0, wrong_version = 0, wrong_data = 0, answered2 = 0;
    std::string first_problem;
  };
  std::vector<Tally> tally(asks.size());
  std::atomic<bool> stop{false};
  std::vector<std::thread> searchers;
  for (size_t t = 0; t < asks.size(); t++)
    searchers.emplace_back([&, t] {
      Client cl(srv.target(), 60000);
      std::mt19937 rng{uint32_t(t + 1)};
      Tally &y = tally[t];
      while (!stop.load()) {
        const size_t qi = rng() % (nqs - 1);
        Answer a = search(cl.c, query(qi), 2, dim, {asks[t].version, asks[t].exact});
        if (a.st == QV_EPRECONDITION && asks[t].version == 2) {
          y.refused++; // version 2 is dropped by each rollback until staged again
          continue;
        }
        if (a.st != QV_OK) {
          y.failed++;
          if (y.first_problem.empty())
            y.first_problem = a.msg;
          continue;
        }
        y.ok++;
        y.answered2 += a.version == 2;
        if ((asks[t].version != 0 && a.version != asks[t].version) ||
            (a.version != 1 && a.version != 2)) {
          y.wrong_version++;
          if (y.first_problem.empty())
            y.first_problem = "answered by version " + std::to_string(a.version);
          continue;
        }
        std::vector<std::vector<double>> want = {(a.version == 1 ? top1 : top2)[qi],
                                                 (a.version == 1 ? top1 : top2)[qi + 1]};
        ::testing::AssertionResult r = answers_of(a.version == 1 ? m1 : m2, query(qi), 2, a, &want);
        if (!r) {
          y.wrong_data++;
          if (y.first_problem.empty())
            y.first_problem = "labelled version " + std::to_string(a.version) + ": " + r.message();
        }
      }
    });
  int cycles = 0;
  {
    Client cl(srv.target());
    const auto t0 = Clock::now();
    std::string msg;
    qv_rollout_status rs{};
    auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(100)); };
    while (cycles < 6 && (cycles < 2 || Clock::now() - t0 < std::chrono::seconds(4))) {
      ASSERT_EQ(import(cl.c, kName, v2dir, 1, 2, 0, nullptr, nullptr, &msg, true), QV_OK) << msg;
      pause();
      ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 2, &rs, &msg), QV_OK) << msg;
      pause();
      ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_ROLLBACK, 0, &rs, &msg), QV_OK) << msg;
      pause();
      cycles++;
    }
  }
  stop.store(true);
  for (auto &t : searchers)
    t.join();
  size_t answered2 = 0;
  for (size_t t = 0; t < asks.size(); t++) {
    const Tally &y = tally[t];
    SCOPED_TRACE("searches of version " + std::to_string(asks[t].version) +
                 (asks[t].exact ? " (exact)" : "") + ": " + y.first_problem);
    EXPECT_EQ(y.wrong_version, 0u);
    EXPECT_EQ(y.wrong_data, 0u);
    EXPECT_EQ(y.failed, 0u);
    EXPECT_GT(y.ok, 0u);
    if (asks[t].version == 1) {
      EXPECT_EQ(y.refused, 0u);
    }
    if (asks[t].version == 0)
      answered2 += y.answered2;
  }
  EXPECT_GT(answered2, 0u) << "no unpinned search met a flipped collection: nothing was tested";
  EXPECT_GE(cycles, 2);
}

// What a stage, a search or a rollout refuses: stage with create, a version not above the
// serving one, another dimension or metric, an unknown collection, a bad action, a plain import
// while a version is staged; a later stage replaces the staged one.
TEST_F(DataVersions, BadRequestsAreRefusedWithTheRightCode) {
  start_with_v1();
  Client cl(srv.target());
  std::string msg;
  qv_rollout_status rs{};
  const size_t dim = q.cols;

  EXPECT_EQ(import(cl.c, kName, v2dir, 1, 0, 1, nullptr, nullptr, &msg), QV_EINVAL) << msg;
  EXPECT_TRUE(has(msg, "stage and create exclude each other")) << msg;
  EXPECT_EQ(import(cl.c, "fresh", v2dir, 1, 0, 1, nullptr, nullptr, &msg), QV_EINVAL) << msg;
  EXPECT_EQ(import(cl.c, "nope", v2dir, 1, 0, 0, nullptr, nullptr, &msg), QV_ENOTFOUND) << msg;
  for (uint64_t v : {1ull}) {
    EXPECT_EQ(import(cl.c, kName, v2dir, 1, v, 0, nullptr, nullptr, &msg), QV_EINVAL) << msg;
    EXPECT_TRUE(has(msg, "not above the version collection 'docs' serves (1)")) << msg;
  }
  // Another dimension, another metric.
  Matrix half;
  half.rows = base.rows;
  half.cols = 64;
  for (size_t r = 0; r < base.rows; r++)
    half.f.insert(half.f.end(), base.f.begin() + long(r * 128),
                  base.f.begin() + long(r * 128 + 64));
  const std::string d64 = tmp.sub("d64"), ip = tmp.sub("ip");
  offline_index(d64, half, "Flat");
  {
    qvtest::Col col;
    qv_collection_opts o = qvtest::opts(dim, "Flat", QV_METRIC_IP);
    qv_error e{};
    ASSERT_EQ(qv_collection_create(&col.c, &o, &e), QV_OK) << e.msg;
    std::vector<int64_t> ids = qvtest::seq_ids(base.rows);
    ASSERT_EQ(qv_collection_add(col.c, base.rows, ids.data(), base.f.data(), &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_build(col.c, nullptr, nullptr, &e), QV_OK) << e.msg;
    ASSERT_EQ(qv_collection_save(col.c, ip.c_str(), &e), QV_OK) << e.msg;
  }
  EXPECT_EQ(import(cl.c, kName, d64, 1, 0, 0, nullptr, nullptr, &msg), QV_EINVAL) << msg;
  EXPECT_TRUE(has(msg, "dim 64")) << msg;
  EXPECT_EQ(import(cl.c, kName, ip, 1, 0, 0, nullptr, nullptr, &msg), QV_EINVAL) << msg;
  EXPECT_TRUE(has(msg, "metric")) << msg;
  qv_collection_info d = describe(cl.c);
  EXPECT_EQ(d.version, 1u);
  EXPECT_EQ(d.beside.version, 0u) << "a refused stage left a version beside";

  // Rollout: unknown collection, actions out of range.
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_STATUS, 0, &rs, &msg, "nope"), QV_ENOTFOUND) << msg;
  EXPECT_TRUE(has(msg, "NOT_FOUND")) << msg;
  for (int act : {0, 7, 99}) {
    EXPECT_EQ(rollout(cl.c, qv_rollout_action(act), 0, &rs, &msg), QV_EINVAL) << act << msg;
    EXPECT_TRUE(has(msg, "rollout action " + std::to_string(act))) << msg;
  }
  // BEGIN (6) is a router's: a single node says where to send it.
  EXPECT_EQ(rollout(cl.c, QV_ROLLOUT_BEGIN, 0, &rs, &msg), QV_EUNSUPPORTED) << msg;
  EXPECT_TRUE(has(msg, "router")) << msg;
  // A search pinned to a version never held.
  Answer a = search(cl.c, query(0), 1, dim, {2});
  EXPECT_EQ(a.st, QV_EPRECONDITION) << a.msg;

  // Staged 2; a plain import is refused while it is, and changes nothing.
  stage_v2(cl.c);
  EXPECT_EQ(import(cl.c, kName, v1dir, 0, 0, 0, nullptr, nullptr, &msg), QV_EPRECONDITION) << msg;
  EXPECT_TRUE(has(msg, "holds staged version 2")) << msg;
  d = describe(cl.c);
  EXPECT_EQ(d.version, 1u);
  EXPECT_EQ(d.beside.version, 2u);
  EXPECT_EQ(d.index_version, 1u) << "the refused import was swapped in";
  a = search(cl.c, query(0), nq, dim, {2});
  EXPECT_TRUE(answers_of(m2, query(0), nq, a));
  // A stage under a number of its own replaces the staged one.
  const Matrix v3 = permuted(base, 5, 3);
  const Model m3(v3);
  const std::string v3dir = tmp.sub("v3");
  offline_index(v3dir, v3, "Flat");
  qv_client_build_result res{};
  ASSERT_EQ(import(cl.c, kName, v3dir, 1, 7, 0, nullptr, &res, &msg), QV_OK) << msg;
  EXPECT_EQ(res.version, 7u);
  d = describe(cl.c);
  EXPECT_EQ(d.beside.version, 7u);
  EXPECT_EQ(search(cl.c, query(0), 1, dim, {2}).st, QV_EPRECONDITION)
      << "the replaced staged version still answers";
  a = search(cl.c, query(0), nq, dim, {7});
  EXPECT_EQ(a.version, 7u);
  EXPECT_TRUE(answers_of(m3, query(0), nq, a));

  // Flipped to 7: a plain import is a new version above it and drops the previous one.
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_FLIP, 7, &rs, &msg), QV_OK) << msg;
  EXPECT_EQ(import(cl.c, kName, v2dir, 1, 7, 0, nullptr, nullptr, &msg), QV_EINVAL) << msg;
  qv_collection_info info{};
  ASSERT_EQ(import(cl.c, kName, v1dir, 0, 0, 0, &info, &res, &msg), QV_OK) << msg;
  EXPECT_EQ(info.version, 8u);
  EXPECT_EQ(res.version, 8u);
  EXPECT_EQ(info.beside.version, 0u) << "the previous version outlived a plain import";
  EXPECT_EQ(search(cl.c, query(0), 1, dim, {1}).st, QV_EPRECONDITION);
  a = search(cl.c, query(0), nq, dim);
  EXPECT_EQ(a.version, 8u);
  EXPECT_TRUE(answers_of(m1, query(0), nq, a));
}

// --memory-budget-mb counts the staged version beside the serving one: a budget that holds one
// version refuses a second (RESOURCE_EXHAUSTED), and nothing is held beside after it.
TEST_F(DataVersions, MemoryBudgetCountsBothVersions) {
  start_with_v1();
  uint64_t one = 0;
  {
    Client cl(srv.target());
    one = describe(cl.c).memory_bytes;
  }
  ASSERT_GT(one, 1u << 20);
  ASSERT_EQ(srv.stop(SIGTERM), 0) << srv.log();
  // One and a half versions (MiB, rounded up).
  const uint64_t mb = (one * 3 / 2 + (1u << 20) - 1) >> 20;
  ASSERT_TRUE(srv.start(srv.data_dir, {"--memory-budget-mb", std::to_string(mb)}));
  Client cl(srv.target());
  std::string msg;
  EXPECT_EQ(import(cl.c, kName, v2dir, 1, 0, 0, nullptr, nullptr, &msg), QV_ENOMEM) << msg;
  EXPECT_TRUE(has(msg, "RESOURCE_EXHAUSTED")) << msg;
  EXPECT_TRUE(has(msg, "--memory-budget-mb " + std::to_string(mb))) << msg;
  qv_collection_info d = describe(cl.c);
  EXPECT_EQ(d.version, 1u);
  EXPECT_EQ(d.beside.version, 0u);
  Answer a = search(cl.c, query(0), 1, q.cols, {2});
  EXPECT_EQ(a.st, QV_EPRECONDITION) << a.msg;
  a = search(cl.c, query(0), nq, q.cols);
  EXPECT_EQ(a.version, 1u);
  EXPECT_TRUE(answers_of(m1, query(0), nq, a));
}

// A build of the serving version counts the version held beside it too: with a budget that holds
// a build alone and a staged version alone, a build while one is staged is refused, and goes
// through once it is aborted.
TEST_F(DataVersions, MemoryBudgetOfABuildCountsTheStagedVersion) {
  start_with_v1();
  uint64_t one = 0;
  {
    Client cl(srv.target());
    one = describe(cl.c).memory_bytes;
  }
  ASSERT_GT(one, 1u << 20);
  ASSERT_EQ(srv.stop(SIGTERM), 0) << srv.log();
  // A Flat build needs about two versions (what it holds, a copy of the store, the new index),
  // staging two, a build beside a staged version three.
  const uint64_t mb = (one * 12 / 5 + (1u << 20) - 1) >> 20;
  ASSERT_TRUE(srv.start(srv.data_dir, {"--memory-budget-mb", std::to_string(mb)}));
  Client cl(srv.target());
  qv_error e{};
  ASSERT_EQ(qv_client_build(cl.c, kName, 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  stage_v2(cl.c);
  EXPECT_EQ(qv_client_build(cl.c, kName, 0, nullptr, nullptr, nullptr, &e), QV_ENOMEM) << e.msg;
  EXPECT_TRUE(has(e.msg, "build needs about")) << e.msg;
  qv_collection_info d = describe(cl.c);
  EXPECT_EQ(d.index_version, 2u) << "the refused build was swapped in";
  EXPECT_EQ(d.beside.version, 2u);
  qv_rollout_status rs{};
  std::string msg;
  ASSERT_EQ(rollout(cl.c, QV_ROLLOUT_ABORT, 0, &rs, &msg), QV_OK) << msg;
  ASSERT_EQ(qv_client_build(cl.c, kName, 0, nullptr, nullptr, nullptr, &e), QV_OK) << e.msg;
  EXPECT_EQ(describe(cl.c).index_version, 3u);
}

namespace {

// m as an .fvecs file (each row: int32 dim, then dim floats).
void write_fvecs(const std::string &path, const Matrix &m) {
  FILE *f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  const int32_t d = int32_t(m.cols);
  for (size_t r = 0; r < m.rows; r++) {
    fwrite(&d, sizeof d, 1, f);
    fwrite(&m.f[r * m.cols], sizeof(float), m.cols, f);
  }
  ASSERT_EQ(fclose(f), 0);
}

qvtest::CmdResult quiver(const std::string &args) {
  return qvtest::run_command(std::string(QUIVER_BIN_DIR) + "/quiver " + args);
}

double json_number(const std::string &s, const std::string &key) {
  auto pos = s.find("\"" + key + "\": ");
  return pos == std::string::npos ? -1 : std::strtod(s.c_str() + pos + key.size() + 4, nullptr);
}

} // namespace

// The quiver CLI: push --stage, describe, search --version (recall against sift's ground truth
// tells the versions apart: v1's is exact, v2's answers are other vectors), rollout --flip /
// --status / --release / --abort, rollout --index (stage and flip), rollback; refusals end 1
// with the gRPC status, usage mistakes 2.
TEST_F(DataVersions, CliPushStageRolloutRollbackAndSearchVersion) {
  ASSERT_TRUE(srv.start(tmp.sub("data")));
  const std::string d = qvtest::data_path("sift5k/sift5k"), c1 = tmp.sub("cli1"),
                    c2 = tmp.sub("cli2"), f2 = tmp.sub("v2.fvecs");
  write_fvecs(f2, v2);
  qvtest::CmdResult r =
      quiver("index build --input " + d + "_base.fvecs --spec Flat --metric l2 --out " + c1);
  ASSERT_EQ(r.code, 0) << r.out;
  r = quiver("index build --input " + f2 + " --spec Flat --metric l2 --out " + c2);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string s = "--server " + srv.target() + " ";
  const std::string search = s + "search docs --queries " + d +
                             "_query.fvecs --k 10 --groundtruth " + d + "_groundtruth.ivecs --json";

  r = quiver(s + "push docs --index " + c1 + " --create");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "swapped in as version 1")) << r.out;
  r = quiver(s + "push docs --index " + c2 + " --stage");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "staged as version 2")) << r.out;
  EXPECT_TRUE(has(r.out, "staged version 2: 5000 vectors")) << r.out;
  r = quiver(s + "describe docs");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "data version 1\n")) << r.out;
  EXPECT_TRUE(has(r.out, "staged version 2: 5000 vectors")) << r.out;
  r = quiver(s + "describe docs --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "\"version\": 1, \"versions\": [{\"version\": 2, \"state\": \"staged\", "
                         "\"count\": 5000"))
      << r.out;

  // Unpinned and version 1: sift's exact neighbours; version 2: other vectors.
  r = quiver(search);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "version"), 1) << r.out;
  EXPECT_GE(json_number(r.out, "recall_at_k"), 0.99) << r.out;
  r = quiver(search + " --version 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "version"), 2) << r.out;
  const double r2 = json_number(r.out, "recall_at_k");
  EXPECT_GE(r2, 0) << r.out;
  EXPECT_LT(r2, 0.5) << "version 2 answered as version 1 does: " << r.out;
  r = quiver(s + "search docs --queries " + d + "_query.fvecs --version 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "data version 2\n")) << r.out;
  r = quiver(search + " --version 3");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "FAILED_PRECONDITION")) << r.out;
  EXPECT_TRUE(has(r.out, "does not hold data version 3")) << r.out;

  r = quiver(s + "rollout docs --flip --version 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "flipped from version 1 to 2")) << r.out;
  EXPECT_TRUE(has(r.out, "data version 2 serving")) << r.out;
  EXPECT_TRUE(has(r.out, "previous version 1: 5000 vectors")) << r.out;
  r = quiver(s + "rollout docs --flip");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "FAILED_PRECONDITION")) << r.out;
  r = quiver(search);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "version"), 2) << r.out;
  EXPECT_LT(json_number(r.out, "recall_at_k"), 0.5) << r.out;
  r = quiver(search + " --version 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "version"), 1) << r.out;
  EXPECT_GE(json_number(r.out, "recall_at_k"), 0.99) << r.out;

  r = quiver(s + "rollback docs");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "rolled back from version 2 to 1")) << r.out;
  EXPECT_TRUE(has(r.out, "data version 1 serving")) << r.out;
  r = quiver(s + "rollback docs");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "FAILED_PRECONDITION")) << r.out;
  r = quiver(s + "rollout docs --status");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "serving version 1")) << r.out;
  r = quiver(search);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "version"), 1) << r.out;
  EXPECT_GE(json_number(r.out, "recall_at_k"), 0.99) << r.out;

  // Stage and flip in one; release the previous; nothing left to abort.
  r = quiver(s + "rollout docs --index " + c2);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "staged as version 2")) << r.out;
  EXPECT_TRUE(has(r.out, "flipped from version 1 to 2")) << r.out;
  r = quiver(s + "rollout docs --release");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "previous version 1 dropped")) << r.out;
  r = quiver(s + "rollout docs --abort");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "FAILED_PRECONDITION")) << r.out;
  r = quiver(s + "describe docs");
  EXPECT_TRUE(has(r.out, "data version 2\n")) << r.out;
  EXPECT_FALSE(has(r.out, "previous version")) << r.out;

  // Refused by the server (1) and usage mistakes (2).
  r = quiver(s + "push docs --index " + c2 + " --stage --version 2");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "INVALID_ARGUMENT")) << r.out;
  r = quiver(s + "push docs --index " + c1);
  ASSERT_EQ(r.code, 0) << r.out; // a plain push: version 3
  EXPECT_TRUE(has(r.out, "swapped in as version 3")) << r.out;
  r = quiver(s + "rollout nope --status");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "NOT_FOUND")) << r.out;
  for (const char *bad : {"push docs --index X --version 3", "rollout docs --flip --abort",
                          "rollout docs --flip --index X", "rollout docs --index X --stage",
                          "push docs --flip", "rollout docs", "rollback",
                          "search docs --queries X "
                          "--version 0"}) {
    r = quiver(s + bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.out;
    EXPECT_TRUE(has(r.out, "usage error")) << bad << ": " << r.out;
  }
  r = quiver(s + "rollout docs");
  EXPECT_TRUE(has(r.out, "'quiver rollout' needs one of --flip")) << r.out;
}
