// The K-quant matmul kernels (Q4_K, Q5_K, Q6_K), a part of the CPU matmul
// (kernels/cpu/matmul.h) in its own file. They follow ggml's x86 arithmetic
// exactly (llama.cpp as vendored by llama-cpp-python 0.3.36, default CMake
// build, GGML_NATIVE, on an AVX2 or AVX-512 CPU without AMX), so their
// outputs are llama.cpp's bit for bit.
//
// Activations: q8_K blocks of 256 (QuantizeActivationBlockQ8K in
// kernels/reference_ops.h, ggml's quantize_row_q8_K_ref, which ggml-cpu
// runs on x86; the repacked gemm's own 4-row AVX2 quantizer gives the same
// bytes). QuantizedActs then holds, for row i, the quants at q + i * cols,
// the float scale of super-block sb at d[i * (cols / 32) + sb] (the first
// cols / 256 of the row's cols / 32 slots) and the 16-element sums (q8_K's
// bsums) at sums + i * (cols / 16); dsum is unused.
//
// Which ggml kernel llama.cpp runs, and so which float order we follow:
// - Q4_K with ne[1] (rows) % 8 == 0: llama.cpp (use_extra_bufts, default
//   true; GGML_CPU_REPACK, default ON) loads it into the CPU_REPACK buffer
//   (q4_K_8x8 layout) on any AVX2 CPU and multiplies with
//   ggml_gemv_q4_K_8x8_q8_K, and in a batch of n >= 4 rows with
//   ggml_gemm_q4_K_8x8_q8_K for the first n - n % 4 rows. Per output, gemv:
//   A = fma(float(isum), d_w * d_act, A), M = fma(float(msum), dmin_w *
//   d_act, M) per super-block (isum, msum the exact integer scale and min
//   sums), then A - M; gemm: the same FMAs per 64 elements (two
//   sub-blocks) instead of per super-block.
// - Q5_K, Q6_K (not repacked on x86) and Q4_K with rows % 8 != 0: a batch
//   of fewer than 8 rows takes ggml_vec_dot_q{4,5,6}_K_q8_K (the AVX2
//   branch, also what an AVX-512 build compiles): eight int32 lanes per
//   super-block, lane k the exact sum of elements 32 s + 4 k .. + 3 over
//   the 32-groups s (scaled; Q6_K less its 32 offset through the bsums,
//   lane-wise as ggml's q8sclsub), one 8-lane FMA per super-block with
//   d_act * d_w, ggml's hsum_float_8, plus the min term (Q5_K: a scalar FMA
//   chain of -d_act * dmin_w times the integer min sum, GCC having
//   contracted ggml's `summs += dmin * int`; Q4_K: a 4-lane FMA chain,
//   summed (l0 + l2) + (l1 + l3)). A batch of >= 8 rows takes the tiled
//   K-quant matmul (ggml-cpu/tiled, AVX512-VNNI microkernel): per
//   super-block t = float(isum) * d_w - dmin_w * float(msum) (one rounding)
//   and acc = fma(t, d_act, acc) (GCC contracts its mul + add).
// (FMA contraction was read off the built libggml-cpu.so.) So llama.cpp's
// K-quant results depend on the batch size. By default (MatMulArgs::
// ggml_batch false) every row is computed as llama.cpp computes a batch of
// one row (decode): gemv or vec_dot, whatever n is, so results are
// batch-invariant. With ggml_batch the n rows are computed as llama.cpp
// computes one batch of n (a prompt in one ubatch).
//
// Not covered: on a CPU with AMX (Sapphire Rapids and later) a GGML_NATIVE
// build of llama.cpp puts Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K weights with
// rows % 32 == 0 in its AMX buffer (listed before CPU_REPACK) and computes
// them with its AMX and AVX512-VNNI "tinygemm" kernels (ggml-cpu/amx), a
// different order again; the llama.cpp reference must be built without AMX
// (or run where the kernel denies AMX) to be matched.
//
// The integer sums are exact on every target (|q8| <= 127, so vpmaddubsw
// never saturates), so the result depends only on the float order, which
// the x86 AVX2/AVX-512 kernels and the scalar kernel of other targets
// share: every target gives the same bits, for any row range or thread
// count.
#ifndef TPSERVE_KERNELS_CPU_MATMUL_KQUANT_H_
#define TPSERVE_KERNELS_CPU_MATMUL_KQUANT_H_

#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace tpserve::cpu {

inline bool IsKQuant(GgmlType type) {
  return type == GgmlType::kQ4_K || type == GgmlType::kQ5_K ||
         type == GgmlType::kQ6_K;
}

// Whether a K-quant matrix takes the repacked-Q4_K orders (see above).
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
