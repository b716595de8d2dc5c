// The rerank stage's CPU reference against slow, obviously-correct code.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "quiver/rerank.h"

namespace {

struct Cands {
  size_t n, kc, d, F;
  std::vector<float> q, vecs, feats;
  std::vector<int64_t> ids;
};

Cands make(size_t n, size_t kc, size_t d, size_t F, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Cands c{n, kc, d, F, {}, {}, {}, {}};
  c.q.resize(n * d);
  c.vecs.resize(n * kc * d);
  c.feats.resize(n * kc * F);
  c.ids.resize(n * kc);
  for (auto &v : c.q)
    v = nd(rng);
  for (auto &v : c.vecs)
    v = nd(rng);
  for (auto &v : c.feats)
    v = nd(rng);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < kc; j++)
      c.ids[i * kc + j] = int64_t(1000 + (j * 7919) % 5003); // distinct, unordered
  return c;
}

double exact_sim(qv_metric m, const float *a, const float *b, size_t d) {
  double s = 0;
  for (size_t t = 0; t < d; t++)
    s += m == QV_METRIC_L2 ? -(double(a[t]) - b[t]) * (double(a[t]) - b[t]) : double(a[t]) * b[t];
  return s;
}

} // namespace

TEST(Rerank, RefineOrdersByExactScoreInTheMetricsConvention) {
  for (qv_metric m : {QV_METRIC_L2, QV_METRIC_IP}) {
    Cands c = make(3, 50, 16, 0, 1);
    qv_rerank_params p;
    qv_rerank_params_init(&p);
    p.k = 7;
    std::vector<float> sc(3 * 7);
    std::vector<int64_t> id(3 * 7);
    qv_error e{};
    ASSERT_EQ(qv_rerank_cpu(m, c.q.data(), 3, 16, c.ids.data(), nullptr, c.vecs.data(), nullptr, 50,
                            &p, sc.data(), id.data(), &e),
              QV_OK)
        << e.msg;
    for (size_t i = 0; i < 3; i++) {
      std::vector<size_t> ord(50);
      std::iota(ord.begin(), ord.end(), 0);
      std::sort(ord.begin(), ord.end(), [&](size_t a, size_t b) {
        return exact_sim(m, &c.q[i * 16], &c.vecs[(i * 50 + a) * 16], 16) >
               exact_sim(m, &c.q[i * 16], &c.vecs[(i * 50 + b) * 16], 16);
      });
      for (size_t j = 0; j < 7; j++) {
        ASSERT_EQ(id[i * 7 + j], c.ids[i * 50 + ord[j]]) << "metric " << m << " rank " << j;
        double want = exact_sim(m, &c.q[i * 16], &c.vecs[(i * 50 + ord[j]) * 16], 16);
        // l2 reports the distance (positive, ascending); ip the similarity.
        EXPECT_NEAR(sc[i * 7 + j], m == QV_METRIC_L2 ? -want : want, 1e-3);
      }
    }
  }
}

TEST(Rerank, FiltersDenyAllowAndEmptySlots) {
  Cands c = make(1, 20, 8, 0, 2);
  c.ids[3] = -1; // an empty slot from the index
  std::vector<int64_t> deny = {c.ids[0], c.ids[5]};
  std::sort(deny.begin(), deny.end());
  std::vector<int64_t> allow(c.ids.begin() + 5, c.ids.begin() + 12); // ids 5..11 only
  std::sort(allow.begin(), allow.end());
  qv_rerank_params p;
  qv_rerank_params_init(&p);
  p.k = 10;
  p.deny = deny.data();
  p.n_deny = deny.size();
  p.allow = allow.data();
  p.n_allow = allow.size();
  std::vector<float> sc(10);
  std::vector<int64_t> id(10);
  qv_error e{};
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_IP, c.q.data(), 1, 8, c.ids.data(), nullptr, c.vecs.data(),
                          nullptr, 20, &p, sc.data(), id.data(), &e),
            QV_OK)
      << e.msg;
  // allowed: 5..11 (7 ids) minus denied 5 -> 6 results, then padding.
  std::vector<int64_t> got(id.begin(), id.begin() + 6), want(c.ids.begin() + 6, c.ids.begin() + 12);
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  for (size_t j = 6; j < 10; j++)
    EXPECT_EQ(id[j], -1);
}

TEST(Rerank, BlendRanksByWeightedSum) {
  // 2-d unit vectors, one feature; hand-computable.
  float q[2] = {1, 0};
  float v[3 * 2] = {1, 0, 0, 1, -1, 0}; // sims 1, 0, -1
  float f[3] = {0, 5, 10};              // features
  int64_t ids[3] = {10, 20, 30};
  float w[2] = {1.0f, 0.15f}; // scores: 1.0, 0.75, 0.5
  qv_rerank_params p;
  qv_rerank_params_init(&p);
  p.k = 3;
  p.weights = w;
  p.n_features = 1;
  float sc[3];
  int64_t id[3];
  qv_error e{};
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_IP, q, 1, 2, ids, nullptr, v, f, 3, &p, sc, id, &e), QV_OK)
      << e.msg;
  EXPECT_EQ(id[0], 10);
  EXPECT_EQ(id[1], 20);
  EXPECT_EQ(id[2], 30);
  EXPECT_FLOAT_EQ(sc[1], 0.75f);
  w[1] = 0.3f; // scores: 1.0, 1.5, 2.0: the feature now dominates
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_IP, q, 1, 2, ids, nullptr, v, f, 3, &p, sc, id, &e), QV_OK);
  EXPECT_EQ(id[0], 30);
  EXPECT_FLOAT_EQ(sc[0], 2.0f);
}

TEST(Rerank, MmrPicksMatchAGreedyReferenceAndDiversify) {
  // Two near-duplicates of the query and one different direction: MMR with a low lambda must
  // skip the duplicate.
  float q[2] = {1, 0};
  float v[3 * 2] = {1, 0, 0.999f, 0.0447f, 0.6f, 0.8f};
  int64_t ids[3] = {1, 2, 3};
  qv_rerank_params p;
  qv_rerank_params_init(&p);
  p.k = 2;
  p.mmr_lambda = 0.3f;
  float sc[2];
  int64_t id[2];
  qv_error e{};
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_COSINE, q, 1, 2, ids, nullptr, v, nullptr, 3, &p, sc, id, &e),
            QV_OK);
  EXPECT_EQ(id[0], 1);
  EXPECT_EQ(id[1], 3);
  p.mmr_lambda = 1.0f; // pure relevance
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_COSINE, q, 1, 2, ids, nullptr, v, nullptr, 3, &p, sc, id, &e),
            QV_OK);
  EXPECT_EQ(id[1], 2);

  // Random case against an independent greedy implementation.
  Cands c = make(2, 40, 8, 0, 3);
  p.k = 10;
  p.mmr_lambda = 0.6f;
  std::vector<float> s2(20);
  std::vector<int64_t> i2(20);
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_IP, c.q.data(), 2, 8, c.ids.data(), nullptr, c.vecs.data(),
                          nullptr, 40, &p, s2.data(), i2.data(), &e),
            QV_OK);
  for (size_t i = 0; i < 2; i++) {
    std::vector<bool> used(40, false);
    std::vector<size_t> picks;
    for (size_t r = 0; r < 10; r++) {
      double best = -1e300;
      size_t bj = 0;
      for (size_t j = 0; j < 40; j++) {
        if (used[j])
          continue;
        double rel = exact_sim(QV_METRIC_IP, &c.q[i * 8], &c.vecs[(i * 40 + j) * 8], 8);
        double red = -1e300;
        for (size_t s : picks)
          red = std::max(red, exact_sim(QV_METRIC_IP, &c.vecs[(i * 40 + j) * 8],
                                        &c.vecs[(i * 40 + s) * 8], 8));
        double v2 = picks.empty() ? rel : 0.6 * rel - 0.4 * red;
        if (v2 > best) {
          best = v2;
          bj = j;
        }
      }
      used[bj] = true;
      picks.push_back(bj);
      ASSERT_EQ(i2[i * 10 + r], c.ids[i * 40 + bj]) << "query " << i << " pick " << r;
    }
  }
}

TEST(Rerank, RefusesBadParameters) {
  Cands c = make(1, 4, 4, 0, 4);
  float sc[4];
  int64_t id[4];
  qv_error e{};
  qv_rerank_params p;
  qv_rerank_params_init(&p);
  p.k = 0;
  EXPECT_EQ(qv_rerank_cpu(QV_METRIC_L2, c.q.data(), 1, 4, c.ids.data(), nullptr, c.vecs.data(),
                          nullptr, 4, &p, sc, id, &e),
            QV_EINVAL);
  p.k = 2;
  p.mmr_lambda = 1.5f;
  EXPECT_EQ(qv_rerank_cpu(QV_METRIC_L2, c.q.data(), 1, 4, c.ids.data(), nullptr, c.vecs.data(),
                          nullptr, 4, &p, sc, id, &e),
            QV_EINVAL);
  p.mmr_lambda = NAN;
  EXPECT_EQ(qv_rerank_cpu(QV_METRIC_L2, c.q.data(), 1, 4, c.ids.data(), nullptr, c.vecs.data(),
                          nullptr, 4, &p, sc, id, &e),
            QV_EINVAL);
  p.mmr_lambda = 0;
  p.n_features = 2; // no weights
  EXPECT_EQ(qv_rerank_cpu(QV_METRIC_L2, c.q.data(), 1, 4, c.ids.data(), nullptr, c.vecs.data(),
                          nullptr, 4, &p, sc, id, &e),
            QV_EINVAL);
  p.n_features = 0;
  int64_t unsorted[2] = {5, 1};
  p.deny = unsorted;
  p.n_deny = 2;
  EXPECT_EQ(qv_rerank_cpu(QV_METRIC_L2, c.q.data(), 1, 4, c.ids.data(), nullptr, c.vecs.data(),
                          nullptr, 4, &p, sc, id, &e),
            QV_EINVAL);
  EXPECT_NE(std::string(e.msg).find("sorted"), std::string::npos);
}

TEST(Rerank, WithoutRefineTheIndexScoresRank) {
  // Index scores deliberately disagree with the vectors: refine = 0 must follow the scores.
  float q[2] = {1, 0};
  float v[3 * 2] = {1, 0, 0, 1, -1, 0};
  float idx_scores[3] = {0.1f, 0.9f, 0.5f}; // ip convention: larger is better
  int64_t ids[3] = {1, 2, 3};
  qv_rerank_params p;
  qv_rerank_params_init(&p);
  p.k = 3;
  p.refine = 0;
  float sc[3];
  int64_t id[3];
  qv_error e{};
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_IP, q, 1, 2, ids, idx_scores, v, nullptr, 3, &p, sc, id, &e),
            QV_OK)
      << e.msg;
  EXPECT_EQ(id[0], 2);
  EXPECT_EQ(id[1], 3);
  EXPECT_EQ(id[2], 1);
  p.refine = 1;
  ASSERT_EQ(qv_rerank_cpu(QV_METRIC_IP, q, 1, 2, ids, idx_scores, v, nullptr, 3, &p, sc, id, &e),
            QV_OK);
  EXPECT_EQ(id[0], 1);
  p.refine = 0;
  EXPECT_EQ(qv_rerank_cpu(QV_METRIC_IP, q, 1, 2, ids, nullptr, v, nullptr, 3, &p, sc, id, &e),
            QV_EINVAL);
}
