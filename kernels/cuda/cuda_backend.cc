#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ggml_types.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/reference_ops.h"

namespace tpserve {
namespace {

constexpr size_t kRowAlign = 16;  // Bytes; the kernels' widest loads.

size_t RoundUp(size_t x, size_t m) { return (x + m - 1) / m * m; }

// Small int32 arrays from the host (ids, positions, block tables) uploaded
// through pinned buffers. A slot keeps its last contents: an array equal to
// one already uploaded (the same step's metadata, asked for by every layer)
// is not copied again. Stream order makes reuse safe on the device side: a
// slot's new upload is enqueued after every kernel that read its old one.
// On the host side, a slot's pinned buffer is rewritten only after its
// previous copy has finished (its event).
class IntUploads {
 public:
  static constexpr int kSlots = 8;

  ~IntUploads() {
    for (Slot& s : slots_) {
      if (s.event != nullptr) cudaEventDestroy(s.event);
      if (s.pinned != nullptr) cudaFreeHost(s.pinned);
      if (s.device != nullptr) cudaFree(s.device);
    }
  }

  absl::StatusOr<const int32_t*> Get(absl::Span<const int32_t> v,
                                     cudaStream_t stream) {
    if (v.empty()) return nullptr;
    ++clock_;
    Slot* lru = &slots_[0];
    for (Slot& s : slots_) {
      if (s.size == v.size() &&
          std::memcmp(s.contents.data(), v.data(), v.size() * 4) == 0) {
        s.last_use = clock_;
        return s.device;
      }
      if (s.last_use < lru->last_use) lru = &s;
    }
    Slot& s = *lru;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    TP_CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(stream, &capture));
    const bool capturing = capture != cudaStreamCaptureStatusNone;
    if (s.event == nullptr) {
      TP_CUDA_RETURN_IF_ERROR(
          cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming));
    } else if (!capturing) {
      TP_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(s.event));
    }
    if (s.capacity < v.size()) {
      if (capturing) {
        return absl::FailedPreconditionError(
            "CUDA backend: a new metadata size during graph capture; run the "
            "step once before capturing it");
      }
      // The old buffers may still be read by enqueued kernels.
      TP_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
      if (s.pinned != nullptr) cudaFreeHost(s.pinned);
      if (s.device != nullptr) cudaFree(s.device);
      s.pinned = nullptr;
      s.device = nullptr;
      s.capacity = 0;
      const size_t cap = std::max<size_t>(RoundUp(v.size(), 256), 256);
      TP_CUDA_RETURN_IF_ERROR(cudaMallocHost(&s.pinned, cap * 4));
      TP_CUDA_RETURN_IF_ERROR(cudaMalloc(&s.device, cap * 4));
      s.capacity = cap;
    }
    std::memcpy(s.pinned, v.data(), v.size() * 4);
    TP_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.device, s.pinned, v.size() * 4,
                                            cudaMemcpyHostToDevice, stream));
    if (!capturing) TP_CUDA_RETURN_IF_ERROR(cudaEventRecord(s.event, stream));
    s.contents.assign(v.begin(), v.end());
    s.size = v.size();
    s.last_use = clock_;
    return s.device;
  }

 private:
  struct Slot {
    std::vector<int32_t> contents;
    size_t size = 0, capacity = 0;
    int32_t* pinned = nullptr;
    int32_t* device = nullptr;
    cudaEvent_t event = nullptr;
    uint64_t last_use = 0;
  };
  Slot slots_[kSlots];
  uint64_t clock_ = 0;
};

// A device buffer that grows (never shrinks) to the largest size asked.
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  ~Scratch() {
    if (p != nullptr) cudaFree(p);
  }
  absl::StatusOr<void*> Get(size_t want, cudaStream_t stream) {
    if (want <= bytes) return p;
    // Enqueued kernels may still use the old buffer.
    TP_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    if (p != nullptr) TP_CUDA_RETURN_IF_ERROR(cudaFree(p));
    p = nullptr;
    bytes = 0;
    TP_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, want));
    bytes = want;
    return p;
  }
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options) : opt_(options) {}
  ~CudaBackend() override;

  absl::Status Init();

  std::string name() const override { return "cuda"; }
  cudaStream_t stream() const { return stream_; }
  int device() const { return opt_.device; }

  absl::StatusOr<float*> AllocFloats(size_t count) override;
  void Free(float* p) override;
  absl::StatusOr<WeightMatrix> UploadWeights(const WeightMatrix& w) override;
  absl::Status CopyToHost(const float* src, float* dst, size_t n) override;
  absl::Status CopyFromHost(const float* src, float* dst, size_t n) override;
  absl::Status Synchronize() override;
  // f32 elements holding fp16 values for now (docs/cuda.md).
  GgmlType KvCacheType() const override { return GgmlType::kF32; }

 protected:
  absl::Status EmbeddingGatherImpl(const WeightMatrix& table, int64_t row_begin,
                                   absl::Span<const int32_t> ids,
                                   float* out) override;
  absl::Status RmsNormImpl(const float* x, const float* weight, float* y,
                           int64_t rows, int64_t cols, float eps) override;
  absl::Status MatMulImpl(const WeightMatrix& w, const float* x, int64_t n,
                          float* y) override;
  absl::Status RopeImpl(float* x, int64_t n, int64_t heads,
                        absl::Span<const int32_t> pos,
                        const RopeParams& params) override;
  absl::Status SiluMulImpl(float* gate, const float* up, int64_t n) override;
  absl::Status AddImpl(float* x, const float* y, int64_t n) override;
  absl::Status AddBiasImpl(float* x, const float* bias, int64_t rows,
                           int64_t cols) override;
  absl::Status GatherRowsImpl(const float* x, int64_t cols,
                              absl::Span<const int32_t> rows,
                              float* out) override;
  absl::Status AttentionImpl(const AttentionBatch& batch,
                             const KvCacheLayout& layout, void* k_cache,
                             void* v_cache, int64_t layer, const float* q,
                             const float* k, const float* v, int64_t q_heads,
                             float scale, float* out) override;

 private:
  // Makes this backend's device current for the calling thread (backends
  // of several devices may be driven from one thread).
  absl::Status Activate();
  // OK when [p, p + bytes) lies in one allocation of this backend: catches
  // host pointers and weights of another backend before a kernel faults.
  absl::Status CheckDevice(const void* p, size_t bytes, const char* what);
  absl::StatusOr<const double*> RopeFrequencies(const RopeParams& p);

  CudaBackendOptions opt_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int sm_count_ = 1;
  int attn_smem_ = 48 << 10;  // Dynamic shared memory the kernel may use.
  std::map<uintptr_t, size_t> allocs_;  // Base -> bytes, every cudaMalloc.
  IntUploads ints_;
  Scratch act_bf16_, weight_bf16_, attn_part_o_, attn_part_ml_, cublas_ws_;
  struct RopeTable {
    std::vector<double> host;  // The key: RopeFrequency of every pair.
    double* freq = nullptr;
  };
  std::vector<RopeTable> rope_tables_;
  std::vector<int32_t> tiles_;  // Host AttentionTile list, reused.
};

absl::Status CudaBackend::Init() {
  TP_CUDA_RETURN_IF_ERROR(cudaSetDevice(opt_.device));
  TP_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  TP_CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas_));
  TP_CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas_, stream_));
  // A workspace of our own: cuBLAS then allocates nothing while a graph is
  // being captured (its default per-stream workspace may).
  constexpr size_t kWorkspace = size_t{32} << 20;
  TP_ASSIGN_OR_RETURN(void* ws, cublas_ws_.Get(kWorkspace, stream_));
  TP_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(cublas_, ws, kWorkspace));
  TP_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(
      &sm_count_, cudaDevAttrMultiProcessorCount, opt_.device));
  int optin = 0;
  TP_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(
      &optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, opt_.device));
  // At most ~100 KB so two attention CTAs fit on an SM.
  attn_smem_ = std::max(48 << 10, std::min(optin, 100 << 10));
  return cuda::ConfigureAttention(attn_smem_);
}

CudaBackend::~CudaBackend() {
  if (stream_ != nullptr) {
    cudaSetDevice(opt_.device);
    cudaStreamSynchronize(stream_);
  }
  for (RopeTable& t : rope_tables_) cudaFree(t.freq);
  for (const auto& [base, bytes] : allocs_) {
    cudaFree(reinterpret_cast<void*>(base));
  }
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

absl::Status CudaBackend::Activate() {
  int current = -1;
  TP_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
  if (current != opt_.device)
    TP_CUDA_RETURN_IF_ERROR(cudaSetDevice(opt_.device));
  return absl::OkStatus();
}

absl::Status CudaBackend::CheckDevice(const void* p, size_t bytes,
                                      const char* what) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = allocs_.upper_bound(a);
  if (it != allocs_.begin()) {
    --it;
    if (a >= it->first && a - it->first + bytes <= it->second) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("CUDA backend: ", what,
                   " is not device memory of this backend (upload weights with "
                   "UploadWeights and allocate with AllocFloats)"));
}

absl::StatusOr<float*> CudaBackend::AllocFloats(size_t count) {
  TP_RETURN_IF_ERROR(Activate());
  if (count > (SIZE_MAX - kRowAlign) / sizeof(float)) {
    return absl::ResourceExhaustedError("AllocFloats: size overflows");
  }
  const size_t bytes = std::max<size_t>(count, 1) * sizeof(float);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // Out of memory is not sticky; clear it.
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", count, " floats on CUDA device ",
                     opt_.device, ": ", cudaGetErrorString(err)));
  }
  allocs_[reinterpret_cast<uintptr_t>(p)] = bytes;
  return static_cast<float*>(p);
}

void CudaBackend::Free(float* p) {
  if (p == nullptr) return;
  auto it = allocs_.find(reinterpret_cast<uintptr_t>(p));
  if (it == allocs_.end()) return;  // Not ours: never free it.
  allocs_.erase(it);
  cudaSetDevice(opt_.device);
  cudaFree(p);  // Waits for the work that may still use it.
}

absl::StatusOr<WeightMatrix> CudaBackend::UploadWeights(const WeightMatrix& w) {
  if (absl::Status s = ValidateWeightMatrix(w); !s.ok()) return s;
  TP_RETURN_IF_ERROR(Activate());
  TP_ASSIGN_OR_RETURN(uint64_t packed, GgmlRowBytes(w.type, w.cols));
  WeightMatrix d = w;
  d.row_stride = RoundUp(packed, kRowAlign);
  d.data = nullptr;
  if (w.rows == 0) return d;
  // size_t: an embedding table is over 2^31 bytes.
  const size_t bytes = static_cast<size_t>(w.rows) * d.row_stride;
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes,
                     " bytes of weights on CUDA "
                     "device ",
                     opt_.device, ": ", cudaGetErrorString(err)));
  }
  allocs_[reinterpret_cast<uintptr_t>(p)] = bytes;
  // Pitched copy: drops the source's row padding (a column slice's stride)
  // and pads each row to kRowAlign. The padding bytes are never read as
  // weights but are zeroed so the buffer is deterministic.
  // On this backend's stream: the plain (legacy-stream) calls would not be
  // ordered before kernels on a non-blocking stream, and a synchronous copy
  // from pageable memory may return before the data reached the device.
  // From pageable memory the async call returns once `w.data` is staged.
  if (d.row_stride != packed) {
    TP_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, bytes, stream_));
  }
  TP_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(
      p, d.row_stride, w.data, w.row_stride, packed,
      static_cast<size_t>(w.rows), cudaMemcpyHostToDevice, stream_));
  d.data = static_cast<const uint8_t*>(p);
  return d;
}

absl::Status CudaBackend::CopyToHost(const float* src, float* dst, size_t n) {
  if (n == 0) return absl::OkStatus();
  TP_RETURN_IF_ERROR(Activate());
  TP_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, n * sizeof(float),
                                          cudaMemcpyDeviceToHost, stream_));
  return cuda::CudaStatus(cudaStreamSynchronize(stream_), "CopyToHost");
}

absl::Status CudaBackend::CopyFromHost(const float* src, float* dst, size_t n) {
  if (n == 0) return absl::OkStatus();
  TP_RETURN_IF_ERROR(Activate());
  TP_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, n * sizeof(float),
                                          cudaMemcpyHostToDevice, stream_));
  // From pageable memory the call returns once `src` is staged, so the
  // caller may reuse it; from pinned memory the copy is truly asynchronous,
  // so wait for it to keep that promise.
  cudaPointerAttributes attr;
  TP_CUDA_RETURN_IF_ERROR(cudaPointerGetAttributes(&attr, src));
  if (attr.type == cudaMemoryTypeHost) {
    TP_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::Synchronize() {
  TP_RETURN_IF_ERROR(Activate());
  return cuda::CudaStatus(cudaStreamSynchronize(stream_), "Synchronize");
}

absl::Status CudaBackend::EmbeddingGatherImpl(const WeightMatrix& table,
                                              int64_t row_begin,
                                              absl::Span<const int32_t> ids,
                                              float* out) {
  TP_RETURN_IF_ERROR(Activate());
  if (table.rows > 0) {
    TP_RETURN_IF_ERROR(CheckDevice(
        table.data, static_cast<size_t>(table.rows) * table.row_stride,
        "the embedding table"));
  }
  TP_ASSIGN_OR_RETURN(const int32_t* d_ids, ints_.Get(ids, stream_));
  return cuda::EmbeddingGather(table, row_begin, d_ids,
                               static_cast<int64_t>(ids.size()), out, stream_);
}

absl::Status CudaBackend::RmsNormImpl(const float* x, const float* weight,
                                      float* y, int64_t rows, int64_t cols,
                                      float eps) {
  TP_RETURN_IF_ERROR(Activate());
  return cuda::RmsNorm(x, weight, y, rows, cols, eps, stream_);
}

absl::Status CudaBackend::MatMulImpl(const WeightMatrix& w, const float* x,
                                     int64_t n, float* y) {
  TP_RETURN_IF_ERROR(Activate());
  TP_RETURN_IF_ERROR(CheckDevice(
      w.data, static_cast<size_t>(w.rows) * w.row_stride, "the weights"));
  if (n <= opt_.gemv_max_rows) return cuda::MatVec(w, x, n, y, stream_);

  if (w.type == GgmlType::kF32) {
    if (w.row_stride % sizeof(float) != 0) {
      return absl::InvalidArgumentError("MatMul: unaligned f32 rows");
    }
    return cuda::MatmulEx(cublas_, stream_, cuda::GemmInput::kF32, x, w.data,
                          w.row_stride / sizeof(float), y, w.rows, n, w.rows,
                          w.cols);
  }
  // bf16 activations (n * cols can exceed 2^31: size_t).
  const size_t act = static_cast<size_t>(n) * w.cols;
  TP_ASSIGN_OR_RETURN(void* xb, act_bf16_.Get(act * 2, stream_));
  TP_RETURN_IF_ERROR(cuda::ConvertF32ToBf16(
      x, static_cast<int64_t>(act), static_cast<uint16_t*>(xb), stream_));
  if (w.type == GgmlType::kBF16) {
    return cuda::MatmulEx(cublas_, stream_, cuda::GemmInput::kBf16, xb, w.data,
                          w.row_stride / 2, y, w.rows, n, w.rows, w.cols);
  }
  // Other types: decode row tiles to bf16, then GEMM each tile into its
  // column slice of y (ldc = w.rows). Tiles are multiples of 8 rows so the
  // slices stay 32-byte aligned for cuBLAS.
  const size_t tile_elems = opt_.dequant_scratch_bytes / 2;
  int64_t tile =
      static_cast<int64_t>(tile_elems / static_cast<size_t>(w.cols)) / 8 * 8;
  tile = std::max<int64_t>(8, std::min(tile, w.rows));
  TP_ASSIGN_OR_RETURN(
      void* wb,
      weight_bf16_.Get(static_cast<size_t>(tile) * w.cols * 2, stream_));
  for (int64_t r0 = 0; r0 < w.rows; r0 += tile) {
    const int64_t rc = std::min(tile, w.rows - r0);
    TP_RETURN_IF_ERROR(
        cuda::DequantizeToBf16(w, r0, rc, static_cast<uint16_t*>(wb), stream_));
    TP_RETURN_IF_ERROR(cuda::MatmulEx(cublas_, stream_, cuda::GemmInput::kBf16,
                                      xb, wb, w.cols, y + r0, w.rows, n, rc,
                                      w.cols));
  }
  return absl::OkStatus();
}

absl::StatusOr<const double*> CudaBackend::RopeFrequencies(
    const RopeParams& p) {
  // The frequency table is all that depends on the parameters (besides the
  // magnitude, passed per launch), so tables are keyed on it.
  std::vector<double> freq(static_cast<size_t>(p.rope_dim / 2));
  for (size_t i = 0; i < freq.size(); ++i) {
    freq[i] = RopeFrequency(p, static_cast<int64_t>(i));
  }
  for (const RopeTable& t : rope_tables_) {
    if (t.host == freq) return t.freq;
  }
  // First use of these parameters (model load, warm-up): a synchronous
  // upload is fine here.
  RopeTable t{freq, nullptr};
  TP_CUDA_RETURN_IF_ERROR(cudaMalloc(&t.freq, freq.size() * sizeof(double)));
  rope_tables_.push_back(t);
  // Stream-ordered before the kernel that reads it; waited for so that
  // `freq` may go away whatever memory it is.
  TP_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(t.freq, freq.data(),
                                          freq.size() * sizeof(double),
                                          cudaMemcpyHostToDevice, stream_));
  TP_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return t.freq;
}

absl::Status CudaBackend::RopeImpl(float* x, int64_t n, int64_t heads,
                                   absl::Span<const int32_t> pos,
                                   const RopeParams& params) {
  TP_RETURN_IF_ERROR(Activate());
  TP_ASSIGN_OR_RETURN(const double* freq, RopeFrequencies(params));
  TP_ASSIGN_OR_RETURN(const int32_t* d_pos, ints_.Get(pos, stream_));
  return cuda::Rope(x, n, heads, d_pos, freq,
                    static_cast<float>(RopeMagnitude(params)), params.head_dim,
                    params.rope_dim, params.neox, stream_);
}

absl::Status CudaBackend::SiluMulImpl(float* gate, const float* up, int64_t n) {
  TP_RETURN_IF_ERROR(Activate());
  return cuda::SiluMul(gate, up, n, stream_);
}

absl::Status CudaBackend::AddImpl(float* x, const float* y, int64_t n) {
  TP_RETURN_IF_ERROR(Activate());
  return cuda::Add(x, y, n, stream_);
}

absl::Status CudaBackend::AddBiasImpl(float* x, const float* bias, int64_t rows,
                                      int64_t cols) {
  TP_RETURN_IF_ERROR(Activate());
  return cuda::AddBias(x, bias, rows, cols, stream_);
}

absl::Status CudaBackend::GatherRowsImpl(const float* x, int64_t cols,
                                         absl::Span<const int32_t> rows,
                                         float* out) {
  TP_RETURN_IF_ERROR(Activate());
  TP_ASSIGN_OR_RETURN(const int32_t* d_rows, ints_.Get(rows, stream_));
  return cuda::GatherRows(x, cols, d_rows, static_cast<int64_t>(rows.size()),
                          out, stream_);
}

absl::Status CudaBackend::AttentionImpl(
    const AttentionBatch& batch, const KvCacheLayout& layout, void* k_cache,
    void* v_cache, int64_t layer, const float* q, const float* k,
    const float* v, int64_t q_heads, float scale, float* out) {
  if (layout.dtype != GgmlType::kF32) {
    return absl::UnimplementedError(
        "CUDA attention: the KV cache must be F32 (KvCacheType)");
  }
  const int64_t n = batch.n_tokens;
  TP_RETURN_IF_ERROR(Activate());
  const int64_t hd = layout.head_dim;
  const int max_rows = cuda::AttentionMaxRows(hd, attn_smem_);
  if (max_rows == 0) {
    return absl::UnimplementedError(
        absl::StrCat("CUDA attention: head_dim ", hd, " is too large"));
  }
  cuda::PagedBatch b;
  b.n_tokens = n;
  TP_ASSIGN_OR_RETURN(b.seq, ints_.Get(batch.seq, stream_));
  TP_ASSIGN_OR_RETURN(b.pos, ints_.Get(batch.pos, stream_));
  TP_ASSIGN_OR_RETURN(b.block_table, ints_.Get(batch.block_table, stream_));
  TP_ASSIGN_OR_RETURN(b.block_offsets, ints_.Get(batch.block_offsets, stream_));
  b.k_cache = static_cast<float*>(k_cache);
  b.v_cache = static_cast<float*>(v_cache);
  b.layer = layer;
  b.num_blocks = layout.num_blocks;
  b.block_size = layout.block_size;
  b.kv_heads = layout.kv_heads;
  b.head_dim = hd;
  TP_RETURN_IF_ERROR(cuda::KvWrite(b, k, v, stream_));

  // Tiles: runs of consecutive tokens of one sequence, times chunks of the
  // GQA group's heads, at most max_rows rows each.
  const int64_t group = q_heads / layout.kv_heads;
  const int64_t nh_max = std::min<int64_t>(group, max_rows);
  const int64_t nt_max = std::max<int64_t>(1, max_rows / nh_max);
  tiles_.clear();
  int64_t max_len = 0;
  for (int64_t h0 = 0; h0 < group; h0 += nh_max) {
    const int64_t nh = std::min(nh_max, group - h0);
    for (int64_t t = 0; t < n;) {
      int64_t nt = 0, len = 0;
      while (t + nt < n && nt < nt_max && batch.seq[t + nt] == batch.seq[t]) {
        len = std::max<int64_t>(len, int64_t{batch.pos[t + nt]} + 1);
        ++nt;
      }
      const cuda::AttentionTile tile{
          static_cast<int32_t>(t), static_cast<int32_t>(nt),
          static_cast<int32_t>(h0), static_cast<int32_t>(nh),
          static_cast<int32_t>(len)};
      const int32_t* f = &tile.t0;
      tiles_.insert(tiles_.end(), f, f + 5);
      max_len = std::max(max_len, len);
      t += nt;
    }
  }
  const int64_t n_tiles = static_cast<int64_t>(tiles_.size()) / 5;
  TP_ASSIGN_OR_RETURN(const int32_t* d_tiles, ints_.Get(tiles_, stream_));

  // Split the positions when tiles x KV heads leave SMs idle (decode, long
  // contexts), keeping at least two chunks per split.
  constexpr int64_t kChunk = cuda::kAttentionChunk;
  const int64_t chunks = (max_len + kChunk - 1) / kChunk;
  const int64_t ctas = n_tiles * layout.kv_heads;
  const int64_t want = 2 * static_cast<int64_t>(sm_count_);
  int64_t splits = 1;
  if (ctas < want && chunks >= 4) {
    splits = std::min({(want + ctas - 1) / ctas, chunks / 2, int64_t{256}});
  }
  const int64_t split_len = (chunks + splits - 1) / splits * kChunk;
  splits = (max_len + split_len - 1) / split_len;
  float* part_o = nullptr;
  float* part_ml = nullptr;
  if (splits > 1) {
    const size_t rows = static_cast<size_t>(n) * q_heads * splits;
    TP_ASSIGN_OR_RETURN(void* po, attn_part_o_.Get(rows * hd * 4, stream_));
    TP_ASSIGN_OR_RETURN(void* pm, attn_part_ml_.Get(rows * 2 * 4, stream_));
    part_o = static_cast<float*>(po);
    part_ml = static_cast<float*>(pm);
  }
  TP_RETURN_IF_ERROR(cuda::AttentionPartial(
      b, reinterpret_cast<const cuda::AttentionTile*>(d_tiles), n_tiles, q,
      q_heads, scale, split_len, splits, max_rows, out, part_o, part_ml,
      stream_));
  if (splits == 1) return absl::OkStatus();
  return cuda::AttentionCombine(part_o, part_ml, n, q_heads, hd, splits, out,
                                stream_);
}

}  // namespace

int CudaDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // "No driver" is not sticky; leave no error behind.
    return 0;
  }
  return n;
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(
    const CudaBackendOptions& options) {
  const int count = CudaDeviceCount();
  if (options.device < 0 || options.device >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA device ", options.device, " is not available (",
                     count, " devices visible)"));
  }
  if (options.gemv_max_rows < 0) {
    return absl::InvalidArgumentError("CudaBackendOptions: gemv_max_rows < 0");
  }
  auto backend = std::make_unique<CudaBackend>(options);
  TP_RETURN_IF_ERROR(backend->Init());
  return std::unique_ptr<Backend>(std::move(backend));
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device) {
  CudaBackendOptions options;
  options.device = device;
  return MakeCudaBackend(options);
}

cudaStream_t CudaBackendStream(const Backend& backend) {
  const auto* b = dynamic_cast<const CudaBackend*>(&backend);
  return b == nullptr ? nullptr : b->stream();
}

int CudaBackendDevice(const Backend& backend) {
  const auto* b = dynamic_cast<const CudaBackend*>(&backend);
  return b == nullptr ? -1 : b->device();
}

}  // namespace tpserve
