// The CPU backend's float ops whose result depends on the order of
// operations (exp, softmax, attention dot products, SiLU), written to round
// exactly as ggml's x86 CPU backend does (llama.cpp built with AVX-512, as
// PyPI's llama-cpp-python builds itself on such a machine). With the integer
// matmul (matmul.h), RMSNorm and RoPE doing the same, tpserve's TP=1 output
// on the CPU is bit for bit llama.cpp's for the same GGUF file, which is how
// tests/llama_shard_test.cc checks it token for token.
//
// Why emulate rather than pick our own order: any two correct orders differ
// in the last bit, and 8-bit activation quantization turns a last-bit
// difference into a different quant now and then; over 30 layers that
// decides near-ties between tokens. Matching the reference's order is the
// only way to compare greedy continuations exactly. The ops cost the same
// as before (the loops are the same size; only the grouping changed).
//
// Each function picks an FMA build at run time (std::fma must be one
// instruction, not a library call, to be fast; the result is the same).
#ifndef TPSERVE_KERNELS_CPU_FLOAT_OPS_H_
#define TPSERVE_KERNELS_CPU_FLOAT_OPS_H_

#include <cstdint>

namespace tpserve::cpu {

// exp(x) by ggml's AVX-512 ggml_v_expf (ARM's optimized-routines
// polynomial: within 1.5 ulp; below about -104 it is 0, above 88.4 inf).
float ExpF(float x);

// gate[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + ExpF(-x)), for
// i < n, as ggml_vec_swiglu_f32 computes rows whose width is a multiple of
// 16.
void SwiGlu(float* gate, const float* up, int64_t n);

// Which of ggml's two f16 matmul paths attention follows: llama.cpp runs a
// step with one query token through ggml_vec_dot_f16 (kVecDot) and a step
// with several through llamafile's tinyBLAS (kTiled).
enum class AttentionOrder { kVecDot, kTiled };

// One query head against `len` cached positions:
//   out = softmax(q . keys[p] * scale) . values[p]
// with q holding fp16 values (rounded by the caller) and keys[p]/values[p]
// rows of head_dim halves (kv_f16) or of floats holding fp16 values, as
// llama.cpp's f16 KV cache holds them; the softmax weights are rounded to
// fp16 before they meet the values, and every sum is formed as ggml forms
// it. `scratch` holds at least AttentionScratchFloats(len, head_dim) floats.
void AttendHead(const float* q, const void* const* keys,
                const void* const* values, bool kv_f16, int64_t len,
                int64_t head_dim, float scale, AttentionOrder order,
                float* scratch, float* out);

// n halves to floats (F16C when the CPU has it).
void HalfToFloatRow(const uint16_t* src, int64_t n, float* dst);

// n floats to fp16 halves, rounding to nearest even (F16C when available).
void FloatToHalfRow(const float* src, int64_t n, uint16_t* dst);

int64_t AttentionScratchFloats(int64_t len, int64_t head_dim);

// Whether these ops run with hardware FMA (x86 with AVX2 and FMA). Results
// are the same either way; it says whether they are fast.
bool FloatOpsUseFma();

}  // namespace tpserve::cpu

#endif  // TPSERVE_KERNELS_CPU_FLOAT_OPS_H_
