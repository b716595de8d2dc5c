// kernels/: the CPU reference kernels against slow, obviously-correct code, and the CUDA twins
// against the CPU kernels (skipped, with a message, where no GPU is present).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "common/testdata.h"
#include "quiver/kernels.h"

using qvtest::randn;

namespace {

double naive(qv_metric m, const float *a, const float *b, size_t d) {
  double s = 0;
  for (size_t t = 0; t < d; t++)
    s += m == QV_METRIC_L2 ? (double(a[t]) - b[t]) * (double(a[t]) - b[t]) : double(a[t]) * b[t];
  return s;
}

} // namespace

TEST(Distances, MatchNaiveDoubleForEveryMetricAndOddDims) {
  for (qv_metric m : {QV_METRIC_L2, QV_METRIC_IP}) {
    for (size_t d : {1u, 7u, 8u, 33u, 128u}) {
      auto q = randn(5 * d, 1), b = randn(37 * d, 2);
      std::vector<float> out(5 * 37);
      qv_error e{};
      ASSERT_EQ(qv_distances_cpu(m, q.data(), 5, b.data(), 37, d, out.data(), &e), QV_OK);
      for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 37; j++)
          ASSERT_NEAR(out[i * 37 + j], naive(m, &q[i * d], &b[j * d], d), 1e-4 * (1 + d))
              << "metric " << m << " d " << d;
    }
  }
}

TEST(Distances, RefuseBadArguments) {
  float x[4] = {0};
  qv_error e{};
  EXPECT_EQ(qv_distances_cpu(QV_METRIC_L2, x, 1, x, 1, 0, x, &e), QV_EINVAL);
  EXPECT_EQ(qv_distances_cpu(QV_METRIC_L2, nullptr, 1, x, 1, 4, x, &e), QV_EINVAL);
  EXPECT_EQ(qv_distances_cpu(QV_METRIC_L2, x, 0, x, 1, 4, nullptr, &e), QV_OK); // nothing to do
}

TEST(TopK, EqualsAFullSortWithTiesBrokenBySmallerId) {
  std::mt19937 rng(3);
  for (int larger = 0; larger < 2; larger++) {
    for (size_t k : {1u, 5u, 64u, 300u}) {
      const size_t nq = 3, n = 1000;
      // Few distinct values: many ties.
      std::vector<float> s(nq * n);
      for (auto &v : s)
        v = float(rng() % 50);
      std::vector<float> out_s(nq * k);
      std::vector<int64_t> out_i(nq * k);
      qv_topk_init(nq, k, larger, out_s.data(), out_i.data());
      // Offer in three uneven blocks, ids offset by 100.
      size_t cuts[] = {0, 137, 700, n};
      for (int b = 0; b < 3; b++) {
        std::vector<float> blk(nq * (cuts[b + 1] - cuts[b]));
        for (size_t q = 0; q < nq; q++)
          for (size_t j = cuts[b]; j < cuts[b + 1]; j++)
            blk[q * (cuts[b + 1] - cuts[b]) + j - cuts[b]] = s[q * n + j];
        qv_topk_push_cpu(nq, k, larger, blk.data(), cuts[b + 1] - cuts[b], cuts[b + 1] - cuts[b],
                         nullptr, int64_t(100 + cuts[b]), out_s.data(), out_i.data());
      }
      qv_topk_finish(nq, k, larger, out_s.data(), out_i.data());
      for (size_t q = 0; q < nq; q++) {
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
          return larger ? s[q * n + a] > s[q * n + b] : s[q * n + a] < s[q * n + b];
        });
        for (size_t j = 0; j < k; j++) {
          ASSERT_EQ(out_i[q * k + j], int64_t(100 + order[j])) << "q " << q << " rank " << j;
          ASSERT_EQ(out_s[q * k + j], s[q * n + order[j]]);
        }
      }
    }
  }
}

TEST(TopK, PadsAndSkipsNegativeIdsAndNaN) {
  const size_t k = 4;
  std::vector<float> sc(k);
  std::vector<int64_t> id(k);
  qv_topk_init(1, k, 0, sc.data(), id.data());
  float blk[3] = {2.0f, NAN, 1.0f};
  int64_t ids[3] = {5, 6, -1};
  qv_topk_push_cpu(1, k, 0, blk, 3, 3, ids, 0, sc.data(), id.data());
  qv_topk_finish(1, k, 0, sc.data(), id.data());
  EXPECT_EQ(id[0], 5);
  EXPECT_EQ(sc[0], 2.0f);
  for (size_t j = 1; j < k; j++) {
    EXPECT_EQ(id[j], -1);
    EXPECT_TRUE(std::isinf(sc[j]) && sc[j] > 0);
  }
}

TEST(VectorHelpers, NormalizeAndFindNonFinite) {
  float x[6] = {3, 4, 0, 0, 0, 0};
  qv_error e{};
  EXPECT_EQ(qv_normalize_cpu(x, 1, 3, &e), QV_OK);
  EXPECT_FLOAT_EQ(x[0], 0.6f);
  EXPECT_FLOAT_EQ(x[1], 0.8f);
  EXPECT_EQ(qv_normalize_cpu(x, 2, 3, &e), QV_EINVAL); // second row is zero
  EXPECT_NE(std::string(e.msg).find("row 1"), std::string::npos) << e.msg;
  float y[5] = {1, 2, 3, INFINITY, NAN};
  EXPECT_EQ(qv_find_nonfinite(y, 5), 3);
  EXPECT_EQ(qv_find_nonfinite(y, 3), -1);
}
