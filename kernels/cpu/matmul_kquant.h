// The K-quant matmul kernels (Q4_K, Q5_K, Q6_K), a part of the CPU matmul
// (kernels/cpu/matmul.h) in its own file. They follow ggml's x86 arithmetic
// exactly, so their outputs are llama.cpp's bit for bit:
//
// - Activations: q8_K blocks of 256 (QuantizeActivationBlockQ8K in
//   kernels/reference_ops.h, ggml's quantize_row_q8_K_ref, which ggml-cpu
//   uses on x86 for every batch size). QuantizedActs then holds, for row i,
//   the quants at q + i * cols, the float scale of super-block sb at
//   d[i * (cols / 32) + sb] (the first cols / 256 of the row's cols / 32
//   slots) and the 16-element sums (q8_K's bsums) at sums + i * (cols / 16);
//   dsum is unused.
// - Q5_K and Q6_K, and Q4_K when w.rows % 8 != 0: the order of
//   ggml_vec_dot_q5_K_q8_K, ggml_vec_dot_q6_K_q8_K and ggml_vec_dot_q4_K_q8_K
//   (their AVX2 branch, which is also what an AVX-512 build compiles):
//   eight int32 lanes per super-block, lane k the exact integer sum of
//   elements 32 s + 4 k .. 32 s + 4 k + 3 over the eight 32-groups s
//   (weighted by the sub-block scales; Q6_K less its 32 offset through the
//   bsums, ggml's lane-wise q8sclsub), one 8-lane FMA per super-block with
//   d = d_act * d_w, then ggml's hsum_float_8, plus the min term: Q5_K a
//   scalar FMA chain of -d_act * dmin_w times the integer min sum (GCC
//   contracts ggml's `summs += dmin * int` to an FMA; checked in the built
//   libggml-cpu.so), Q4_K a 4-lane FMA chain summed (l0 + l2) + (l1 + l3).
// - Q4_K when w.rows % 8 == 0: the order of ggml's repacked Q4_K kernels
//   (ggml_gemv_q4_K_8x8_q8_K and ggml_gemm_q4_K_8x8_q8_K,
//   ggml-cpu/arch/x86/repack.cpp). A default llama.cpp build
//   (GGML_CPU_REPACK=ON, llama_model_params.use_extra_bufts = true) puts
//   every Q4_K weight with ne[1] % 8 == 0 in the CPU_REPACK buffer on an
//   AVX2 CPU and multiplies it with these for one token and for a batch
//   alike: per output, A = fma(float(isum), d_w * d_act, A) and
//   M = fma(float(msum), dmin_w * d_act, M) per super-block, isum and msum
//   the super-block's exact integer scale and min sums, then A - M. (The
//   batched kernel quantizes activations four rows at a time with its own
//   AVX2 code, which yields ggml's q8_K values up to a common sign of d and
//   the quants; that sign cancels exactly in every product.)
//
// The integer sums are exact on every target (|q8| <= 127, so vpmaddubsw
// never saturates), so the result depends only on the float order, which
// the x86 AVX2/AVX-512 kernels and the scalar kernel of other targets
// share: every target gives the same bits. The result does not depend on
// the batch size, the row range or the thread count.
#ifndef TPSERVE_KERNELS_CPU_MATMUL_KQUANT_H_
#define TPSERVE_KERNELS_CPU_MATMUL_KQUANT_H_

#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace tpserve::cpu {

inline bool IsKQuant(GgmlType type) {
  return type == GgmlType::kQ4_K || type == GgmlType::kQ5_K ||
         type == GgmlType::kQ6_K;
}

// Whether a K-quant matrix takes the repacked-Q4_K order (see above).
inline bool KQuantRepackOrder(const WeightMatrix& w) {
  return w.type == GgmlType::kQ4_K && w.rows % 8 == 0;
}

// Quantizes activation rows [i0, i1) of x ([n, cols], cols % 256 == 0) to
// q8_K in the QuantizedActs layout above.
void QuantizeActRowsQ8K(const float* x, int64_t cols, int64_t i0, int64_t i1,
                        int8_t* q, float* d, int16_t* sums);

// MatMulRows for the K-quant types (args.acts from QuantizeActRowsQ8K).
void KQuantMatMulRows(const MatMulArgs& args, int64_t r0, int64_t r1);

}  // namespace tpserve::cpu

#endif  // TPSERVE_KERNELS_CPU_MATMUL_KQUANT_H_
