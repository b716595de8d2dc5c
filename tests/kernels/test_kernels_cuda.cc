// The CUDA twins of kernels/ against the CPU reference kernels. CTest label "gpu": every test
// skips itself, saying why, where the build has no CUDA kernels or the machine has no device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quiver/kernels.h"

namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto &x : v)
    x = nd(rng);
  return v;
}

} // namespace

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

TEST(CudaAbsent, ReportsClearlyWithoutDevice) {
  if (qv_cuda_device_count() > 0)
    GTEST_SKIP() << "a CUDA device is present; this checks the no-device path";
  float x[4] = {1, 2, 3, 4}, out[1];
  qv_error e{};
  qv_status st = qv_distances_cuda(QV_METRIC_L2, x, 1, x, 1, 4, out, &e);
  EXPECT_TRUE(st == QV_EUNSUPPORTED || st == QV_EUNAVAILABLE) << qv_status_name(st);
  EXPECT_GT(std::strlen(e.msg), 10u);
}
