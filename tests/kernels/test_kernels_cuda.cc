// The CUDA twins of kernels/ against the CPU reference kernels. CTest label "gpu": every test
// skips itself, saying why, where the build has no CUDA kernels or the machine has no device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/testdata.h"
#include "quiver/kernels.h"
#include "quiver/rerank.h"

using qvtest::randn;

// ---- CUDA twins ----------------------------------------------------------------------------

class Cuda : public ::testing::Test {
protected:
  void SetUp() override {
    if (!qv_kernels_have_cuda())
      GTEST_SKIP() << "this build has no CUDA kernels (configure with QUIVER_CUDA=ON on a machine "
                      "with nvcc)";
    if (qv_cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA device present: the GPU twin is compiled but cannot run here";
  }
};

TEST_F(Cuda, DistancesMatchTheCpuTwin) {
  for (qv_metric m : {QV_METRIC_L2, QV_METRIC_IP}) {
    const size_t nq = 17, nb = 1000, d = 96;
    auto q = randn(nq * d, 5), b = randn(nb * d, 6);
    std::vector<float> cpu(nq * nb), gpu(nq * nb);
    qv_error e{};
    ASSERT_EQ(qv_distances_cpu(m, q.data(), nq, b.data(), nb, d, cpu.data(), &e), QV_OK);
    ASSERT_EQ(qv_distances_cuda(m, q.data(), nq, b.data(), nb, d, gpu.data(), &e), QV_OK) << e.msg;
    for (size_t i = 0; i < cpu.size(); i++)
      ASSERT_NEAR(gpu[i], cpu[i], 1e-3f * (1 + std::fabs(cpu[i])));
  }
}

TEST(CudaAbsent, RerankReportsClearlyWithoutDevice) {
  if (qv_cuda_device_count() > 0)
    GTEST_SKIP() << "a CUDA device is present; this checks the no-device path";
  float q[2] = {1, 0}, v[2] = {1, 0}, sc[1];
  int64_t ids[1] = {1}, out[1];
  qv_rerank_params p;
  qv_rerank_params_init(&p);
  p.k = 1;
  qv_error e{};
  qv_status st =
      qv_rerank_cuda(QV_METRIC_IP, q, 1, 2, ids, nullptr, v, nullptr, 1, &p, sc, out, &e);
  EXPECT_TRUE(st == QV_EUNSUPPORTED || st == QV_EUNAVAILABLE) << qv_status_name(st);
  // Parameter errors are reported before any device question.
  p.k = 0;
  EXPECT_EQ(qv_rerank_cuda(QV_METRIC_IP, q, 1, 2, ids, nullptr, v, nullptr, 1, &p, sc, out, &e),
            qv_kernels_have_cuda() ? QV_EINVAL : QV_EUNSUPPORTED);
}

TEST(CudaAbsent, ReportsClearlyWithoutDevice) {
  if (qv_cuda_device_count() > 0)
    GTEST_SKIP() << "a CUDA device is present; this checks the no-device path";
  float x[4] = {1, 2, 3, 4}, out[1];
  qv_error e{};
  qv_status st = qv_distances_cuda(QV_METRIC_L2, x, 1, x, 1, 4, out, &e);
  EXPECT_TRUE(st == QV_EUNSUPPORTED || st == QV_EUNAVAILABLE) << qv_status_name(st);
  EXPECT_GT(std::strlen(e.msg), 10u);
}

TEST_F(Cuda, RerankMatchesTheCpuTwinExactly) {
  // Both twins round every operation the same way: scores and ids must be identical.
  const size_t n = 9, kc = 300, d = 40, F = 3, k = 20;
  auto q = randn(n * d, 11), v = randn(n * kc * d, 12), f = randn(n * kc * F, 13);
  auto cs = randn(n * kc, 14);
  std::vector<int64_t> ids(n * kc);
  std::mt19937 rng(15);
  for (auto &id : ids)
    id = int64_t(rng() % 700) - 5; // some -1..-5 (empty), some repeated
  std::vector<int64_t> deny = {3, 17, 99}, allow;
  for (int64_t a = 0; a < 700; a += 2)
    allow.push_back(a);
  float w[4] = {0.7f, 0.1f, -0.2f, 0.05f};
  for (int variant = 0; variant < 6; variant++) {
    for (qv_metric m : {QV_METRIC_L2, QV_METRIC_IP}) {
      qv_rerank_params p;
      qv_rerank_params_init(&p);
      p.k = k;
      p.refine = variant != 1;
      if (variant == 2 || variant == 5) {
        p.weights = w;
        p.n_features = F;
      }
      if (variant == 3 || variant == 5)
        p.mmr_lambda = 0.6f;
      if (variant == 4) {
        p.deny = deny.data();
        p.n_deny = deny.size();
        p.allow = allow.data();
        p.n_allow = allow.size();
      }
      std::vector<float> sc(n * k), sg(n * k);
      std::vector<int64_t> ic(n * k), ig(n * k);
      qv_error e{};
      ASSERT_EQ(qv_rerank_cpu(m, q.data(), n, d, ids.data(), cs.data(), v.data(), f.data(), kc, &p,
                              sc.data(), ic.data(), &e),
                QV_OK)
          << e.msg;
      ASSERT_EQ(qv_rerank_cuda(m, q.data(), n, d, ids.data(), cs.data(), v.data(), f.data(), kc, &p,
                               sg.data(), ig.data(), &e),
                QV_OK)
          << e.msg;
      EXPECT_EQ(ic, ig) << "variant " << variant << " metric " << m;
      EXPECT_EQ(0, std::memcmp(sc.data(), sg.data(), sc.size() * sizeof(float)))
          << "variant " << variant << " metric " << m;
    }
  }
}
