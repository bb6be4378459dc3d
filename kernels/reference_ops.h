// CPU references of the Backend ops (kernels/backend.h) that every backend
// is tested against: plain loops, double accumulation, no threads, no SIMD.
// Each function runs the argument checks of its op (kernels/op_checks.h,
// the same ones Backend runs for every backend) before it computes.
//
// Pointer arguments follow Backend: host memory, shapes given separately.
#ifndef TPSERVE_KERNELS_REFERENCE_OPS_H_
#define TPSERVE_KERNELS_REFERENCE_OPS_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/ggml_blocks.h"
#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace tpserve {

// ---- RoPE frequencies (checks: kernels/op_checks.h) ----------------------

// The frequency f_i of pair i in [0, rope_dim / 2) (RopeParams), in double:
// the angle of pair i at position p is p * f_i.
// Assumes ValidateRopeParams(p) is OK.
double RopeFrequency(const RopeParams& p, int64_t i);

// The factor on cos and sin: attn_factor, times 1 + 0.1 ln(1 / freq_scale)
// when ext_factor != 0 (YaRN's attention temperature, as ggml applies it).
double RopeMagnitude(const RopeParams& p);

// YaRN's correction dims [low, high] (ggml_rope_yarn_corr_dims, in double):
// the pairs that turn more than beta_fast (fewer than beta_slow) times over
// the original context extrapolate (interpolate).
void RopeYarnCorrDims(const RopeParams& p, double dims[2]);

// ---- Activation quantization of the integer matmul path ---------------------

// Elements per activation block: every quantized weight format here has
// sub-blocks of 32 (or 16, two per activation block) aligned to 32.
inline constexpr int kActBlock = 32;

// Quantizes x[0..32) to 8 bits exactly as ggml's x86 quantize_row_q8_0 and
// q8_1 do, so the integer path sees llama.cpp's activations bit for bit:
// amax = max |x|, q[i] = round-half-even(x[i] * (127 / amax)) clamped to
// [-127, 127] (0 when amax is 0), *d = amax / 127 rounded to fp16, and
// (when q8_1_sum is not null) *q8_1_sum = (amax / 127) * sum(q) rounded to
// fp16, the `s` of a q8_1 block (the factor of Q4_1's and Q5_1's m).
// |q| <= 127 is an invariant the integer kernels rely on: a u8 x i8
// pairwise sum then fits int16 without saturating.
void QuantizeActivationBlock(const float* x, int8_t* q, float* d,
                             float* q8_1_sum = nullptr);

// Quantizes x[0..256) to one q8_K block, the activations of ggml's K-quant
// dot products, exactly as ggml's quantize_row_q8_K_ref (what ggml-cpu runs
// on x86 for every batch size): max = the first x[i] of largest |x[i]|,
// iscale = -127 / max, q[i] = min(127, round-half-even(iscale * x[i])),
// bsums[k] = sum of q[16 k .. 16 k + 16), *d = 1 / iscale (a float, not
// fp16); q, bsums and *d all zero when max is 0. |q| <= 127.
void QuantizeActivationBlockQ8K(const float* x, int8_t* q, float* d,
                                int16_t* bsums);

// f rounded to the nearest fp16 value (ties to even), as a float.
inline float RoundToFp16(float f) { return Fp16ToFp32(Fp32ToFp16(f)); }

// Element i of a KV cache buffer of `dtype` (KvCacheLayout::dtype), and
// storing one: rounded to fp16, in half bits (kF16) or as a float (kF32).
inline float KvLoad(const void* cache, GgmlType dtype, int64_t i) {
  return dtype == GgmlType::kF16
             ? Fp16ToFp32(static_cast<const GgmlHalf*>(cache)[i])
             : static_cast<const float*>(cache)[i];
}
inline void KvStore(void* cache, GgmlType dtype, int64_t i, float v) {
  if (dtype == GgmlType::kF16) {
    static_cast<GgmlHalf*>(cache)[i] = Fp32ToFp16(v);
  } else {
    static_cast<float*>(cache)[i] = RoundToFp16(v);
  }
}

// ---- Reference ops ----------------------------------------------------------

// Backend::EmbeddingGather: each row decoded by DequantizeRow.
absl::Status EmbeddingGatherReference(const WeightMatrix& table,
                                      int64_t row_begin,
                                      absl::Span<const int32_t> ids,
                                      float* out);

// Backend::RmsNorm: the mean square and the scale in double (more exact
// than any backend); y may alias x.
absl::Status RmsNormReference(const float* x, const float* weight, float* y,
                              int64_t rows, int64_t cols, float eps);

// Backend::MatMul: y[i, r] = sum_c w[r, c] * x[i, c], each weight row
// dequantized with DequantizeRow, the dot product in double.
absl::Status MatMulReference(const WeightMatrix& w, const float* x, int64_t n,
                             float* y);

// MatMulReference with each activation row first quantized in 32-element
// blocks by QuantizeActivationBlock (256-element q8_K blocks by
// QuantizeActivationBlockQ8K for Q4_K, Q5_K and Q6_K; then decoded back as
// d * q in double) when w is a block-quantized type, and for Q4_1/Q5_1 the
// min term taken with the q8_1 sum s as ggml does; plain MatMulReference
// for F32/F16/BF16.
// This is what an exact integer-dot kernel computes up to float rounding of
// its per-block partial sums, so it checks the integer path tightly.
absl::Status MatMulReferenceQ8Activations(const WeightMatrix& w, const float* x,
                                          int64_t n, float* y);

// Backend::Rope, angles and rotations in double.
absl::Status RopeReference(float* x, int64_t n, int64_t heads,
                           absl::Span<const int32_t> pos,
                           const RopeParams& params);

// Backend::SiluMul (silu(g) = g / (1 + exp(-g)), in double).
absl::Status SiluMulReference(float* gate, const float* up, int64_t n);

// Backend::Add.
absl::Status AddReference(float* x, const float* y, int64_t n);

// Backend::AddBias.
absl::Status AddBiasReference(float* x, const float* bias, int64_t rows,
                              int64_t cols);

// Backend::GatherRows.
absl::Status GatherRowsReference(const float* x, int64_t cols,
                                 absl::Span<const int32_t> rows, float* out);

// Backend::Attention: writes every new k/v of the batch into the cache
// (rounded to fp16) first, then attends (so tokens of one step see each
// other causally). Scores (of q rounded to fp16), softmax (max subtracted)
// and the weighted sum are in double, the normalized weights rounded to
// fp16 as Backend::Attention specifies.
// `out` may alias `q`.
absl::Status AttentionReference(const AttentionBatch& batch,
                                const KvCacheLayout& layout, void* k_cache,
                                void* v_cache, int64_t layer, const float* q,
                                const float* k, const float* v, int64_t q_heads,
                                float scale, float* out);

// A Backend made of the reference ops (host memory; single-threaded). The
// truth of the cross-backend tests, and a fallback that is always correct.
std::unique_ptr<Backend> MakeReferenceBackend();

}  // namespace tpserve

#endif  // TPSERVE_KERNELS_REFERENCE_OPS_H_
