// Merging shards' answers (quiver/merge.h): a collection split into shards, each searched
// exactly, merges into the very answer the whole collection gives; ties, duplicates, padding.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/collection.h"
#include "common/testdata.h"
#include "quiver/merge.h"

using qvtest::Col;
using qvtest::Matrix;

namespace {

Matrix rows(const Matrix &m, const std::vector<size_t> &pick) {
  Matrix out;
  out.rows = pick.size();
  out.cols = m.cols;
  for (size_t r : pick)
    out.f.insert(out.f.end(), m.f.begin() + long(r * m.cols), m.f.begin() + long((r + 1) * m.cols));
  return out;
}

} // namespace

TEST(Merge, ShardsSearchedExactlyMergeIntoTheWholeCollectionsAnswer) {
  QV_REQUIRE_DATA("sift5k/sift5k_base.fvecs");
  Matrix base = qvtest::load_f32("sift5k/sift5k_base.fvecs");
  Matrix q = qvtest::load_f32("sift5k/sift5k_query.fvecs");
  for (qv_metric metric : {QV_METRIC_L2, QV_METRIC_IP}) {
    SCOPED_TRACE(qv_metric_name(metric));
    const size_t S = 3, k = 10, kin = 10;
    Col whole;
    qvtest::make(whole, base.cols, metric, "Flat");
    qvtest::add_all(whole, base);
    qvtest::build(whole);
    qvtest::Result want = qvtest::search(whole.c, q, k, 0, true);
    // Shard s holds the ids with id % S == s, under their own ids.
    std::vector<qvtest::Result> got(S);
    for (size_t s = 0; s < S; s++) {
      std::vector<size_t> pick;
      std::vector<int64_t> ids;
      for (size_t i = s; i < base.rows; i += S) {
        pick.push_back(i);
        ids.push_back(int64_t(i));
      }
      Matrix part = rows(base, pick);
      Col shard;
      qvtest::make(shard, base.cols, metric, "Flat");
      qv_error e{};
      ASSERT_EQ(qv_collection_add(shard.c, part.rows, ids.data(), part.f.data(), &e), QV_OK);
      qvtest::build(shard);
      got[s] = qvtest::search(shard.c, q, kin, 0, true);
    }
    std::vector<const float *> sc;
    std::vector<const int64_t *> id;
    for (auto &g : got) {
      sc.push_back(g.scores.data());
      id.push_back(g.ids.data());
    }
    std::vector<float> ms(q.rows * k);
    std::vector<int64_t> mi(q.rows * k);
    qv_error e{};
    ASSERT_EQ(
        qv_merge_topk(metric, q.rows, k, S, kin, sc.data(), id.data(), ms.data(), mi.data(), &e),
        QV_OK)
        << e.msg;
    EXPECT_EQ(mi, want.ids);
    for (size_t i = 0; i < ms.size(); i++)
      EXPECT_FLOAT_EQ(ms[i], want.scores[i]) << i;
  }
}

TEST(Merge, TiesGoToTheSmallerIdDuplicatesCountOnceAndShortAnswersArePadded) {
  // One query, two lists of 3: l2 (smaller is better).
  const float s0[] = {1.0f, 2.0f, INFINITY}, s1[] = {1.0f, 1.5f, 2.0f};
  const int64_t i0[] = {9, 4, -1}, i1[] = {3, 4, 7};
  const float *sc[] = {s0, s1};
  const int64_t *id[] = {i0, i1};
  float out_s[6];
  int64_t out_i[6];
  qv_error e{};
  ASSERT_EQ(qv_merge_topk(QV_METRIC_L2, 1, 6, 2, 3, sc, id, out_s, out_i, &e), QV_OK) << e.msg;
  // 3 and 9 tie at 1.0 (3 first); 4 answered twice keeps its better 1.5; 7 at 2.0; then padding.
  EXPECT_EQ(std::vector<int64_t>(out_i, out_i + 6), (std::vector<int64_t>{3, 9, 4, 7, -1, -1}));
  EXPECT_FLOAT_EQ(out_s[2], 1.5f);
  EXPECT_TRUE(std::isinf(out_s[5]) && out_s[5] > 0);
  // ip: larger is better, padding -inf.
  ASSERT_EQ(qv_merge_topk(QV_METRIC_IP, 1, 6, 2, 3, sc, id, out_s, out_i, &e), QV_OK);
  EXPECT_EQ(std::vector<int64_t>(out_i, out_i + 4), (std::vector<int64_t>{4, 7, 3, 9}));
  EXPECT_TRUE(std::isinf(out_s[5]) && out_s[5] < 0);
  EXPECT_EQ(qv_merge_topk(QV_METRIC_L2, 1, 0, 2, 3, sc, id, out_s, out_i, &e), QV_EINVAL);
  const float *bad[] = {s0, nullptr};
  EXPECT_EQ(qv_merge_topk(QV_METRIC_L2, 1, 3, 2, 3, bad, id, out_s, out_i, &e), QV_EINVAL);
}
