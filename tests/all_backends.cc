#include "tests/all_backends.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
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

  absl::Status EmbeddingGather(const WeightMatrix& table, int64_t row_begin,
                               absl::Span<const int32_t> ids,
                               float* out) override {
    if (!ValidateWeightMatrix(table).ok() || ids.empty() || out == nullptr) {
      return dev_->EmbeddingGather(table, row_begin, ids, out);
    }
    Staging st(this);
    auto w = dev_->UploadWeights(table);
    if (!w.ok()) return w.status();
    const size_t n = ids.size() * table.cols;
    float* d_out = st.Out(out, n);
    if (d_out == nullptr) return st.status;
    return st.Finish(dev_->EmbeddingGather(*w, row_begin, ids, d_out));
  }
  absl::Status GatherRows(const float* x, int64_t cols,
                          absl::Span<const int32_t> rows, float* out) override {
    // Host memory on both sides: no staging needed.
    if (cols <= 0 || rows.empty()) return absl::OkStatus();
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(out + i * cols, x + static_cast<size_t>(rows[i]) * cols,
                  static_cast<size_t>(cols) * sizeof(float));
    }
    return absl::OkStatus();
  }
  absl::Status RmsNorm(const float* x, const float* weight, float* y,
                       int64_t rows, int64_t cols, float eps) override {
    if (rows <= 0 || cols <= 0 || !x || !weight || !y) {
      return dev_->RmsNorm(x, weight, y, rows, cols, eps);
    }
    Staging st(this);
    const size_t n = static_cast<size_t>(rows) * cols;
    const float* dx = st.In(x, n);
    const float* dw = st.In(weight, cols);
    float* dy = st.Out(y, n);
    if (!dx || !dw || !dy) return st.status;
    return st.Finish(dev_->RmsNorm(dx, dw, dy, rows, cols, eps));
  }
  absl::Status MatMul(const WeightMatrix& w, const float* x, int64_t n,
                      float* y) override {
    if (!ValidateWeightMatrix(w).ok() || n <= 0 || w.rows == 0 || !x || !y) {
      return dev_->MatMul(w, x, n, y);
    }
    Staging st(this);
    auto dw = dev_->UploadWeights(w);
    if (!dw.ok()) return dw.status();
    const float* dx = st.In(x, static_cast<size_t>(n) * w.cols);
    float* dy = st.Out(y, static_cast<size_t>(n) * w.rows);
    if (!dx || !dy) return st.status;
    return st.Finish(dev_->MatMul(*dw, dx, n, dy));
  }
  absl::Status Rope(float* x, int64_t n, int64_t heads,
                    absl::Span<const int32_t> pos,
                    const RopeParams& params) override {
    if (!ValidateRopeParams(params).ok() || n <= 0 || heads <= 0 ||
        pos.size() != static_cast<size_t>(n) || !x) {
      return dev_->Rope(x, n, heads, pos, params);
    }
    Staging st(this);
    float* dx = st.Out(x, static_cast<size_t>(n) * heads * params.head_dim);
    if (!dx) return st.status;
    return st.Finish(dev_->Rope(dx, n, heads, pos, params));
  }
  absl::Status SiluMul(float* gate, const float* up, int64_t n) override {
    if (n <= 0 || !gate || !up) return dev_->SiluMul(gate, up, n);
    Staging st(this);
    float* dg = st.Out(gate, n);
    const float* du = st.In(up, n);
    if (!dg || !du) return st.status;
    return st.Finish(dev_->SiluMul(dg, du, n));
  }
  absl::Status Add(float* x, const float* y, int64_t n) override {
    if (n <= 0 || !x || !y) return dev_->Add(x, y, n);
    Staging st(this);
    float* dx = st.Out(x, n);
    const float* dy = st.In(y, n);
    if (!dx || !dy) return st.status;
    return st.Finish(dev_->Add(dx, dy, n));
  }
  absl::Status AddBias(float* x, const float* bias, int64_t rows,
                       int64_t cols) override {
    if (!ValidateAddBias(x, bias, rows, cols).ok() || rows == 0) {
      return dev_->AddBias(x, bias, rows, cols);
    }
    Staging st(this);
    float* dx = st.Out(x, static_cast<size_t>(rows) * cols);
    const float* db = st.In(bias, static_cast<size_t>(cols));
    if (!dx || !db) return st.status;
    return st.Finish(dev_->AddBias(dx, db, rows, cols));
  }
  GgmlType KvCacheType() const override { return dev_->KvCacheType(); }
  absl::Status Attention(const AttentionBatch& batch,
                         const KvCacheLayout& layout, void* k_cache,
                         void* v_cache, int64_t layer, const float* q,
                         const float* k, const float* v, int64_t q_heads,
                         float scale, float* out) override {
    if (!ValidateAttention(batch, layout, k_cache, v_cache, layer, q, k, v,
                           q_heads, out)
             .ok() ||
        batch.n_tokens == 0) {
      return dev_->Attention(batch, layout, k_cache, v_cache, layer, q, k, v,
                             q_heads, scale, out);
    }
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
#if TPSERVE_TEST_CUDA
  if (CudaUsable()) {
    // Default options: the GEMV for n <= 8, the bf16 cuBLAS path above.
    auto cuda = MakeCudaBackend(0);
    EXPECT_TRUE(cuda.ok()) << cuda.status();
    if (cuda.ok()) {
      v.push_back({"cuda",
                   std::make_unique<HostStagingBackend>(std::move(*cuda)),
                   false, 1.0 / 256});
    }
    // Every matmul through the f32 GEMV kernel: as exact as the CPU float
    // paths.
    CudaBackendOptions gemv;
    gemv.gemv_max_rows = 1 << 30;
    auto cuda_gemv = MakeCudaBackend(gemv);
    EXPECT_TRUE(cuda_gemv.ok()) << cuda_gemv.status();
    if (cuda_gemv.ok()) {
      v.push_back({"cuda/gemv",
                   std::make_unique<HostStagingBackend>(std::move(*cuda_gemv)),
                   false, 0.0});
    }
  }
#endif
  return v;
}

std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float lo,
                                float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

}  // namespace tpserve::testing
