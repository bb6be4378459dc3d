#include "tests/all_backends.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ggml_blocks.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/reference_ops.h"

#if TPSERVE_TEST_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace tpserve::testing {
namespace {

// Runs a device backend's ops on host arguments: each op copies its inputs
// to device buffers (aliased host arguments share one device buffer, so
// in-place ops stay in place), runs, and copies its outputs back. Invalid
// arguments go to the device backend untouched: it must refuse them before
// it dereferences anything, exactly as the host backends do.
class HostStagingBackend final : public Backend {
 public:
  explicit HostStagingBackend(std::unique_ptr<Backend> device)
      : dev_(std::move(device)) {}
  std::string name() const override { return dev_->name(); }

  absl::StatusOr<float*> AllocFloats(size_t count) override {
    return static_cast<float*>(std::malloc(std::max<size_t>(count, 1) * 4));
  }
  void Free(float* p) override { std::free(p); }
  absl::StatusOr<WeightMatrix> UploadWeights(const WeightMatrix& w) override {
    if (absl::Status s = ValidateWeightMatrix(w); !s.ok()) return s;
    return w;
  }
  absl::Status CopyToHost(const float* src, float* dst, size_t n) override {
    std::memmove(dst, src, n * 4);
    return absl::OkStatus();
  }
  absl::Status CopyFromHost(const float* src, float* dst, size_t n) override {
    std::memmove(dst, src, n * 4);
    return absl::OkStatus();
  }
  absl::Status Synchronize() override { return dev_->Synchronize(); }

  GgmlType KvCacheType() const override { return dev_->KvCacheType(); }
  Backend* device() const { return dev_.get(); }

 protected:
  // Backend has checked the arguments and there is work to do.
  absl::Status EmbeddingGatherImpl(const WeightMatrix& table, int64_t row_begin,
                                   absl::Span<const int32_t> ids,
                                   float* out) override {
    Staging st(this);
    auto w = dev_->UploadWeights(table);
    if (!w.ok()) return w.status();
    const size_t n = ids.size() * table.cols;
    float* d_out = st.Out(out, n);
    if (d_out == nullptr) return st.status;
    return st.Finish(dev_->EmbeddingGather(*w, row_begin, ids, d_out));
  }
  absl::Status RmsNormImpl(const float* x, const float* weight, float* y,
                           int64_t rows, int64_t cols, float eps) override {
    Staging st(this);
    const size_t n = static_cast<size_t>(rows) * cols;
    const float* dx = st.In(x, n);
    const float* dw = st.In(weight, cols);
    float* dy = st.Out(y, n);
    if (!dx || !dw || !dy) return st.status;
    return st.Finish(dev_->RmsNorm(dx, dw, dy, rows, cols, eps));
  }
  absl::Status MatMulImpl(const WeightMatrix& w, const float* x, int64_t n,
                          float* y) override {
    Staging st(this);
    auto dw = dev_->UploadWeights(w);
    if (!dw.ok()) return dw.status();
    const float* dx = st.In(x, static_cast<size_t>(n) * w.cols);
    float* dy = st.Out(y, static_cast<size_t>(n) * w.rows);
    if (!dx || !dy) return st.status;
    return st.Finish(dev_->MatMul(*dw, dx, n, dy));
  }
  absl::Status RopeImpl(float* x, int64_t n, int64_t heads,
                        absl::Span<const int32_t> pos,
                        const RopeParams& params) override {
    Staging st(this);
    float* dx = st.Out(x, static_cast<size_t>(n) * heads * params.head_dim);
    if (!dx) return st.status;
    return st.Finish(dev_->Rope(dx, n, heads, pos, params));
  }
  absl::Status SiluMulImpl(float* gate, const float* up, int64_t n) override {
    Staging st(this);
    float* dg = st.Out(gate, n);
    const float* du = st.In(up, n);
    if (!dg || !du) return st.status;
    return st.Finish(dev_->SiluMul(dg, du, n));
  }
  absl::Status AddImpl(float* x, const float* y, int64_t n) override {
    Staging st(this);
    float* dx = st.Out(x, n);
    const float* dy = st.In(y, n);
    if (!dx || !dy) return st.status;
    return st.Finish(dev_->Add(dx, dy, n));
  }
  absl::Status AddBiasImpl(float* x, const float* bias, int64_t rows,
                           int64_t cols) override {
    Staging st(this);
    float* dx = st.Out(x, static_cast<size_t>(rows) * cols);
    const float* db = st.In(bias, static_cast<size_t>(cols));
    if (!dx || !db) return st.status;
    return st.Finish(dev_->AddBias(dx, db, rows, cols));
  }
  absl::Status GatherRowsImpl(const float* x, int64_t cols,
                              absl::Span<const int32_t> rows,
                              float* out) override {
    // x carries no shape: stage the rows up to the largest one asked for.
    const int64_t x_rows = *std::max_element(rows.begin(), rows.end()) + 1;
    Staging st(this);
    const float* dx = st.In(x, static_cast<size_t>(x_rows) * cols);
    float* dout = st.Out(out, rows.size() * static_cast<size_t>(cols));
    if (!dx || !dout) return st.status;
    return st.Finish(dev_->GatherRows(dx, cols, rows, dout));
  }
  absl::Status AttentionImpl(const AttentionBatch& batch,
                             const KvCacheLayout& layout, void* k_cache,
                             void* v_cache, int64_t layer, const float* q,
                             const float* k, const float* v, int64_t q_heads,
                             float scale, float* out) override {
    Staging st(this);
    // Staged in float units, whatever the element type.
    const size_t cache = (static_cast<size_t>(layout.CacheBytes()) + 3) / 4;
    const size_t nq =
        static_cast<size_t>(batch.n_tokens) * q_heads * layout.head_dim;
    const size_t nkv =
        static_cast<size_t>(batch.n_tokens) * layout.kv_heads * layout.head_dim;
    float* dkc = st.Out(static_cast<float*>(k_cache), cache);
    float* dvc = st.Out(static_cast<float*>(v_cache), cache);
    const float* dq = st.In(q, nq);
    const float* dk = st.In(k, nkv);
    const float* dv = st.In(v, nkv);
    float* dout = st.Out(out, nq);
    if (!dkc || !dvc || !dq || !dk || !dv || !dout) return st.status;
    return st.Finish(dev_->Attention(batch, layout, dkc, dvc, layer, dq, dk, dv,
                                     q_heads, scale, dout));
  }

 private:
  // The device buffers of one op: host pointer -> device copy.
  struct Staging {
    explicit Staging(HostStagingBackend* b) : self(b) {}
    ~Staging() {
      for (const Buf& b : bufs) self->dev_->Free(b.dev);
    }
    float* Stage(const float* host, size_t n, bool out) {
      for (Buf& b : bufs) {
        if (b.host == host) {
          b.out = b.out || out;
          return b.dev;
        }
      }
      auto d = self->dev_->AllocFloats(n);
      if (!d.ok()) {
        status = d.status();
        return nullptr;
      }
      bufs.push_back({host, *d, n, out});
      status = self->dev_->CopyFromHost(host, *d, n);
      return status.ok() ? *d : nullptr;
    }
    const float* In(const float* host, size_t n) {
      return Stage(host, n, false);
    }
    float* Out(float* host, size_t n) { return Stage(host, n, true); }
    absl::Status Finish(absl::Status op) {
      if (!op.ok()) return op;
      for (const Buf& b : bufs) {
        if (!b.out) continue;
        absl::Status s =
            self->dev_->CopyToHost(b.dev, const_cast<float*>(b.host), b.n);
        if (!s.ok()) return s;
      }
      return self->dev_->Synchronize();
    }
    struct Buf {
      const float* host;
      float* dev;
      size_t n;
      bool out;
    };
    HostStagingBackend* self;
    std::vector<Buf> bufs;
    absl::Status status;
  };
  std::unique_ptr<Backend> dev_;
};

}  // namespace

bool CudaUsable() {
#if TPSERVE_TEST_CUDA
  return CudaDeviceCount() > 0;
#else
  return false;
#endif
}

std::vector<NamedBackend> AllBackends() {
  std::vector<NamedBackend> v;
  v.push_back({"reference", MakeReferenceBackend(), false});
  for (int threads : {1, 2, 3}) {
    v.push_back({absl::StrCat("cpu/", threads), MakeCpuBackend(threads), true});
  }
  for (NamedBackend& nb : v) nb.unstaged = nb.backend.get();
#if TPSERVE_TEST_CUDA
  if (CudaUsable()) {
    // Default options: the GEMV for n <= 8, the bf16 cuBLAS path above.
    auto cuda = MakeCudaBackend(0);
    EXPECT_TRUE(cuda.ok()) << cuda.status();
    if (cuda.ok()) {
      auto staged = std::make_unique<HostStagingBackend>(std::move(*cuda));
      Backend* dev = staged->device();
      v.push_back({"cuda", std::move(staged), false, 1.0 / 256, dev});
    }
    // Every matmul through the f32 GEMV kernel: as exact as the CPU float
    // paths.
    CudaBackendOptions gemv;
    gemv.gemv_max_rows = 1 << 30;
    auto cuda_gemv = MakeCudaBackend(gemv);
    EXPECT_TRUE(cuda_gemv.ok()) << cuda_gemv.status();
    if (cuda_gemv.ok()) {
      auto staged = std::make_unique<HostStagingBackend>(std::move(*cuda_gemv));
      Backend* dev = staged->device();
      v.push_back({"cuda/gemv", std::move(staged), false, 0.0, dev});
    }
  }
#endif
  return v;
}

std::vector<uint8_t> RandomWeights(GgmlType type, int64_t rows, int64_t cols,
                                   size_t stride, std::mt19937& rng) {
  std::vector<uint8_t> data(rows * stride);
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  auto put_half = [&](uint8_t* p, float f) {
    const GgmlHalf h = Fp32ToFp16(f);
    std::memcpy(p, &h, 2);
  };
  const GgmlTypeTraits& tr = GetGgmlType(type);
  const int64_t nb = cols / tr.block_size;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = data.data() + r * stride;
    if (type == GgmlType::kF32 || type == GgmlType::kF16 ||
        type == GgmlType::kBF16) {
      std::vector<float> f = RandomFloats(cols, rng);
      for (int64_t c = 0; c < cols; ++c) {
        if (type == GgmlType::kF32) {
          std::memcpy(row + 4 * c, &f[c], 4);
        } else {
          const uint16_t h =
              type == GgmlType::kF16 ? Fp32ToFp16(f[c]) : Fp32ToBf16(f[c]);
          std::memcpy(row + 2 * c, &h, 2);
        }
      }
      continue;
    }
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = row + b * tr.type_size;
      switch (type) {
        case GgmlType::kQ8_0:
        case GgmlType::kQ4_0:
        case GgmlType::kQ5_0:
          put_half(blk, scale(rng));
          break;
        case GgmlType::kQ4_1:
        case GgmlType::kQ5_1:
        case GgmlType::kQ4_K:
        case GgmlType::kQ5_K:
          put_half(blk, scale(rng));
          put_half(blk + 2, -scale(rng));  // m (min) or dmin.
          break;
        case GgmlType::kQ6_K:
          put_half(blk + offsetof(BlockQ6_K, d), scale(rng) * 0.1f);
          break;
        default:
          ADD_FAILURE() << "no generator for " << GgmlTypeName(type);
      }
    }
  }
  return data;
}

std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float lo,
                                float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

}  // namespace tpserve::testing
