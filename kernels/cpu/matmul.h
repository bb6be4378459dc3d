// The CPU matmul kernels: y[i, r] = x[i, :] . w[r, :] with weights kept in
// their ggml block layout. F32/F16/BF16 weights take a float path; the
// block-quantized types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants
// Q4_K/Q5_K/Q6_K) take an integer path like llama.cpp's: the
// activations are quantized once per call to 8 bits, in 32-element blocks
// with fp16 scales (QuantizeActivationBlock in kernels/reference_ops.h) or,
// for the K-quants, in ggml's q8_K blocks of 256 with a float scale
// (QuantizeActivationBlockQ8K), and each block's dot product is exact in
// int32, scaled by the two block scales in float. The K-quant kernels are
// in matmul_kquant.{h,cc} and follow ggml's x86 order on every target.
//
// SIMD: Highway with runtime dispatch. On x86 the AVX2 and AVX-512 targets
// use the u8 x i8 multiply-add (vpmaddubsw + vpmaddwd) on 32-byte blocks;
// on the AVX-512 targets Q8_0 and Q4_1 use AVX512-VNNI vpdpbusd on one
// block of two weight rows per 512-bit vector when the CPU has it (checked
// at run time, as Highway 1.0.3's AVX3 target does not imply it); other
// targets use the scalar integer code (same sums, exact) and Highway's
// float ops for F32/F16/BF16. For Q8_0, Q4_1, Q5_0 and Q5_1 both x86
// kernels form the float sums in ggml's order, so their results are
// llama.cpp's bit for bit (MatMulFollowsGgmlOrder); the K-quants follow
// ggml's order on every target (matmul_kquant.h). Q4_0 does not (llama.cpp
// repacks it to q4_0_8x8 on AVX2 CPUs, another order).
#ifndef TPSERVE_KERNELS_CPU_MATMUL_H_
#define TPSERVE_KERNELS_CPU_MATMUL_H_

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace tpserve::cpu {

// Activation rows quantized for the integer path, `cols` a multiple of 32.
// Row i's data: q + i * cols, d and dsum + i * (cols / 32), sums +
// i * (cols / 16). For the K-quants (q8_K, matmul_kquant.h) d holds one
// float scale per 256 quants (the first cols / 256 of the row's slots),
// sums are q8_K's bsums and dsum is unused.
struct QuantizedActs {
  const int8_t* q = nullptr;      // Quants, |q| <= 127.
  const float* d = nullptr;       // One scale per 32 quants.
  const int16_t* sums = nullptr;  // Sum of each 16 quants (|sum| <= 2032).
  // The factor of the min/offset terms (Q4_0, Q4_1, Q5_1, Q4_K), one per 32
  // quants, precomputed so kernels do one FMA a block: for Q4_1 and Q5_1
  // weights ggml's q8_1 `s`, (unrounded d) * sum rounded to fp16, so those
  // sums match llama.cpp's; for the others d * sum, which is exact.
  const float* dsum = nullptr;
  int64_t cols = 0;
};

// Whether `type` takes the integer path (needs QuantizedActs).
bool UsesQuantizedActs(GgmlType type);

// Quantizes activation rows [i0, i1) of x ([n, cols]) into q/d/sums/dsum
// laid out as QuantizedActs describes (the buffers hold all n rows), for a
// matmul with weights of `type`.
void QuantizeActRows(GgmlType type, const float* x, int64_t cols, int64_t i0,
                     int64_t i1, int8_t* q, float* d, int16_t* sums,
                     float* dsum);

struct MatMulArgs {
  WeightMatrix w;      // Validated (ValidateWeightMatrix).
  const float* x;      // [n, w.cols], for the float path.
  QuantizedActs acts;  // For the integer path.
  int64_t n;
  float* y;  // [n, w.rows].
  // K-quants only (matmul_kquant.h): compute the n rows in the order
  // llama.cpp uses for one ggml batch of n rows (a prompt: the repacked
  // Q4_K gemm for whole groups of four rows, the tiled kernel for n >= 8),
  // instead of each row as llama.cpp computes a batch of one (decode; the
  // default, and batch-invariant).
  bool ggml_batch = false;
};

// Computes y[i, r] for every i < n and r in [r0, r1) on the best SIMD
// target of this CPU. Thread-safe for disjoint row ranges.
void MatMulRows(const MatMulArgs& args, int64_t r0, int64_t r1);

// The Highway target MatMulRows runs on (e.g. "AVX3", "AVX2").
const char* MatMulTargetName();

// Whether Q8_0, Q4_1, Q5_0 and Q5_1 matmuls form their sums exactly as
// ggml's x86 AVX2 kernels do (so bit for bit llama.cpp's): true on the x86
// targets with AVX2 or AVX-512; other targets compute the same sums in another
// order (last-bit differences).
bool MatMulFollowsGgmlOrder();

}  // namespace tpserve::cpu

#endif  // TPSERVE_KERNELS_CPU_MATMUL_H_
