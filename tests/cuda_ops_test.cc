// CUDA ops against the CPU reference, and a one-rank NCCL all-reduce.
// Built whenever CUDA is compiled in; skipped (not failed) on machines
// without a GPU, such as CI. scripts/gpu-check.sh runs it on a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/rmsnorm.h"
#include "worker/nccl_communicator.h"

namespace tpserve {
namespace {

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
      GTEST_SKIP() << "no CUDA device";
    }
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    for (void* p : allocs_) cudaFree(p);
    if (stream_) cudaStreamDestroy(stream_);
  }
  float* ToDevice(const std::vector<float>& h) {
    void* d = nullptr;
    EXPECT_EQ(cudaMalloc(&d, h.size() * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(d, h.data(), h.size() * sizeof(float),
                         cudaMemcpyHostToDevice),
              cudaSuccess);
    allocs_.push_back(d);
    return static_cast<float*>(d);
  }
  std::vector<float> ToHost(const float* d, size_t n) {
    std::vector<float> h(n);
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    EXPECT_EQ(
        cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost),
        cudaSuccess);
    return h;
  }
  static std::vector<float> Random(size_t n, int seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist;
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
  }
  cudaStream_t stream_ = nullptr;
  std::vector<void*> allocs_;
};

TEST_F(CudaOpsTest, RmsNormMatchesReferenceOnOddShapes) {
  for (auto [rows, cols] : {std::pair{1, 1}, {3, 576}, {7, 1000}, {2, 4097}}) {
    auto x = Random(size_t(rows) * cols, rows), w = Random(cols, cols);
    std::vector<float> want(x.size());
    ASSERT_TRUE(
        RmsNormReference(x, w, rows, cols, 1e-5f, absl::MakeSpan(want)).ok());
    float* dx = ToDevice(x);
    ASSERT_TRUE(
        cuda::RmsNorm(dx, ToDevice(w), dx, rows, cols, 1e-5f, stream_).ok());
    auto got = ToHost(dx, x.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i])))
          << rows << "x" << cols << " at " << i;
    }
  }
  EXPECT_FALSE(
      cuda::RmsNorm(nullptr, nullptr, nullptr, 1, 1, 1e-5f, stream_).ok());
}

TEST_F(CudaOpsTest, CublasMatmulMatchesReference) {
  const int m = 5, n = 33, k = 70;
  auto a = Random(m * k, 1), w = Random(n * k, 2);
  cublasHandle_t handle;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  float* dc = ToDevice(std::vector<float>(m * n));
  ASSERT_TRUE(
      cuda::MatmulF32(handle, stream_, ToDevice(a), ToDevice(w), dc, m, n, k)
          .ok());
  auto got = ToHost(dc, m * n);
  cublasDestroy(handle);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double want = 0;
      for (int x = 0; x < k; ++x) want += double{a[i * k + x]} * w[j * k + x];
      EXPECT_NEAR(got[i * n + j], want, 1e-3) << i << "," << j;
    }
  }
}

TEST_F(CudaOpsTest, NcclSingleRankAllReduceIsIdentity) {
  auto id = NcclCommunicator::NewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  auto comm = NcclCommunicator::Create(*id, 0, 1, std::chrono::seconds(30));
  ASSERT_TRUE(comm.ok()) << comm.status();
  auto x = Random(1000, 3);
  float* dx = ToDevice(x);
  ASSERT_TRUE((*comm)->AllReduceSum(dx, x.size(), stream_).ok());
  EXPECT_EQ(ToHost(dx, x.size()), x);
  EXPECT_GT(NcclCommunicator::Version(), 0);
}

}  // namespace
}  // namespace tpserve
