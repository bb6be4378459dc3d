// Bit-level layouts of ggml's quantized blocks, described once for every
// consumer: the reference dequantizer (common/dequantize.cc) and the CPU and
// CUDA kernels decode with these structs and comments, never with their own
// copies. Each struct is byte-for-byte ggml's `block_*` of ggml-common.h
// (same member order, no padding), so a tensor's data in a GGUF file is an
// array of these blocks, one row after another.
//
// Notation used below: a block holds `block_size` weights x[0..block_size);
// fp16 fields hold IEEE binary16 bits (convert with Fp16ToFp32); "nibble
// lo(b)" is b & 0xF, "hi(b)" is b >> 4. All multi-byte fields are
// little-endian, like the GGUF file (we only build for little-endian hosts).
//
// Exactness: in every format here, each product a dequantizer forms is exact
// in float32: an fp16 scale has an 11-bit significand, a sub-block scale at
// most 7 significant bits (|int8| <= 128) and a quant at most 7 (Q8_0), so
// the widest product, Q6_K's d * sc * (q - 32), needs 11 + 7 + 5 = 23 of
// float32's 24 bits, and none can overflow or underflow. The only rounding
// is the final add/subtract of a min (Q4_1, Q5_1, Q4_K, Q5_K). Hence ggml's
// reference, gguf-py, and any kernel that computes in float32 (in any
// association, with or without fused multiply-add) agree to the bit; computing
// in fp16 or bf16 does not.
//
// Alignment: the structs have the natural alignment of their widest member
// (2 for the fp16 ones, 4 for BlockQ8_K), exactly like ggml's. GGUF aligns
// each tensor's data to `general.alignment` (32 by default) but blocks of 18,
// 22, 34 or 210 bytes then sit at 2-byte boundaries only. Casting a pointer
// into tensor data to `const BlockQ4_0*` is therefore valid only when the
// data is at least 2-byte aligned; code that reads untrusted buffers of
// unknown alignment copies each block out with memcpy (see dequantize.cc).
#ifndef TPSERVE_COMMON_GGML_BLOCKS_H_
#define TPSERVE_COMMON_GGML_BLOCKS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/ggml_types.h"

namespace tpserve {

// Raw IEEE binary16 bits; a storage type, not a number type.
using GgmlHalf = uint16_t;

// Weights per block of the "legacy" formats (ggml's QK4_0 ... QK8_0).
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
// Bytes of packed 6-bit scales and mins in Q4_K and Q5_K (ggml's
// K_SCALE_SIZE); the super-block size kQK_K is in ggml_types.h.
inline constexpr int kKScaleSize = 12;

// ---- 32-weight blocks -----------------------------------------------------
//
// Q4_0, Q4_1, Q5_0 and Q5_1 share one nibble order: for j in [0, 16),
//   x[j]      uses lo(qs[j])
//   x[j + 16] uses hi(qs[j])
// i.e. the first half of the block is in the low nibbles, the second half in
// the high nibbles (not x[2j], x[2j+1] interleaved).

// x[i] = d * (q[i] - 8), q[i] in [0, 15] per the nibble order above.
struct BlockQ4_0 {
  GgmlHalf d;              // Scale.
  uint8_t qs[kQK4_0 / 2];  // 4-bit quants.
};

// x[i] = d * q[i] + m, q[i] in [0, 15].
struct BlockQ4_1 {
  GgmlHalf d;              // Scale.
  GgmlHalf m;              // Minimum (offset).
  uint8_t qs[kQK4_1 / 2];  // 4-bit quants.
};

// x[i] = d * (q[i] - 16), q[i] in [0, 31]: the low 4 bits as in Q4_0, bit 4
// of q[i] is bit i of qh read as a little-endian uint32, i.e.
// (qh[i / 8] >> (i % 8)) & 1, for i in [0, 32).
struct BlockQ5_0 {
  GgmlHalf d;              // Scale.
  uint8_t qh[4];           // 5th bit of every quant.
  uint8_t qs[kQK5_0 / 2];  // Low 4 bits of the quants.
};

// x[i] = d * q[i] + m, q[i] in [0, 31], bits as in Q5_0.
struct BlockQ5_1 {
  GgmlHalf d;              // Scale.
  GgmlHalf m;              // Minimum (offset).
  uint8_t qh[4];           // 5th bit of every quant.
  uint8_t qs[kQK5_1 / 2];  // Low 4 bits of the quants.
};

// x[i] = d * qs[i]. One signed byte per weight, in order.
struct BlockQ8_0 {
  GgmlHalf d;         // Scale.
  int8_t qs[kQK8_0];  // Quants.
};

// ---- 256-weight super-blocks ("K" quants) ----------------------------------

// Q4_K: 8 sub-blocks of 32 weights; sub-block s has a 6-bit scale sc[s] and
// a 6-bit min m[s] (see GetScaleMinK4), and
//   x[32 s + l] = (d * sc[s]) * q - (dmin * m[s])
// (both products exact, see Exactness above). The quants come in 4
// chunks of 32 bytes, chunk c covering weights [64 c, 64 c + 64): for l in
// [0, 32)
//   x[64 c + l]      (sub-block 2c)     uses lo(qs[32 c + l])
//   x[64 c + 32 + l] (sub-block 2c + 1) uses hi(qs[32 c + l])
// which differs from Q4_0: a byte pairs weights 32 apart in two sub-blocks.
struct BlockQ4_K {
  GgmlHalf d;                   // Super-block scale of the 6-bit scales.
  GgmlHalf dmin;                // Super-block scale of the 6-bit mins.
  uint8_t scales[kKScaleSize];  // 8 scales and 8 mins, 6 bits each.
  uint8_t qs[kQK_K / 2];        // 4-bit quants.
};

// Q5_K: Q4_K plus a 5th bit per weight. q = lo/hi nibble as in Q4_K, and its
// bit 4 is bit s of qh[l] for weight 32 s + l (s = sub-block, l in [0, 32)):
//   x[64 c + l]      takes (qh[l] >> (2 c)) & 1
//   x[64 c + 32 + l] takes (qh[l] >> (2 c + 1)) & 1
// x = (d * sc[s]) * q - (dmin * m[s]), q in [0, 31].
struct BlockQ5_K {
  GgmlHalf d;                   // Super-block scale of the 6-bit scales.
  GgmlHalf dmin;                // Super-block scale of the 6-bit mins.
  uint8_t scales[kKScaleSize];  // 8 scales and 8 mins, 6 bits each.
  uint8_t qh[kQK_K / 8];        // 5th bit of the quants.
  uint8_t qs[kQK_K / 2];        // Low 4 bits of the quants.
};

// Q6_K: 16 sub-blocks of 16 weights with signed 8-bit scales; weight i has
//   x[i] = (d * scales[i / 16]) * (q[i] - 32),  q[i] in [0, 63].
// The block is two halves of 128 weights; half h uses ql[64 h, 64 h + 64)
// and qh[32 h, 32 h + 32). With L = ql + 64 h, H = qh + 32 h, for l in
// [0, 32) the weights 128 h + ... are
//   + l      : lo(L[l])      | ((H[l] >> 0) & 3) << 4
//   + l + 32 : lo(L[l + 32]) | ((H[l] >> 2) & 3) << 4
//   + l + 64 : hi(L[l])      | ((H[l] >> 4) & 3) << 4
//   + l + 96 : hi(L[l + 32]) | ((H[l] >> 6) & 3) << 4
// Note d comes last here, unlike every other block.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // Low 4 bits of the quants.
  uint8_t qh[kQK_K / 4];      // High 2 bits of the quants.
  int8_t scales[kQK_K / 16];  // Per-16 scales, signed.
  GgmlHalf d;                 // Super-block scale.
};

// Q8_K: x[i] = d * qs[i] with a float32 (not fp16) d. Only an intermediate
// format for activations in K-quant dot products (bsums[k] = sum of
// qs[16 k .. 16 k + 15], kept so a dot product can apply mins cheaply); it
// does not occur in model files.
struct BlockQ8_K {
  float d;                    // Scale.
  int8_t qs[kQK_K];           // Quants.
  int16_t bsums[kQK_K / 16];  // Sums of groups of 16 quants.
};

// No BlockQ8_1 on purpose: ggml's block_q8_1 is {half d; half s; int8
// qs[32]} = 36 bytes, while ggml_types.cc (like gguf-py) lists Q8_1 as 40
// bytes, the layout of old ggml with float d and s. It is an activation-only
// format that never occurs in model files; settle the size before using it.

// Sizes are ggml's (ggml-common.h static_asserts) and must equal the
// type_size of GgmlTypeTraits in ggml_types.cc, which the GGUF reader sizes
// tensors with; tests/dequantize_test.cc checks the two agree.
static_assert(sizeof(BlockQ4_0) == 2 + kQK4_0 / 2, "Q4_0 padding");
static_assert(sizeof(BlockQ4_1) == 2 + 2 + kQK4_1 / 2, "Q4_1 padding");
static_assert(sizeof(BlockQ5_0) == 2 + 4 + kQK5_0 / 2, "Q5_0 padding");
static_assert(sizeof(BlockQ5_1) == 2 + 2 + 4 + kQK5_1 / 2, "Q5_1 padding");
static_assert(sizeof(BlockQ8_0) == 2 + kQK8_0, "Q8_0 padding");
static_assert(sizeof(BlockQ4_K) == 2 + 2 + kQK_K / 2 + kKScaleSize,
              "Q4_K padding");
static_assert(sizeof(BlockQ5_K) == 2 + 2 + kQK_K / 2 + kQK_K / 8 + kKScaleSize,
              "Q5_K padding");
static_assert(sizeof(BlockQ6_K) == 2 + kQK_K / 2 + kQK_K / 4 + kQK_K / 16,
              "Q6_K padding");
static_assert(sizeof(BlockQ8_K) == 4 + kQK_K + kQK_K / 8, "Q8_K padding");
// Field offsets kernels index by hand (e.g. CUDA loads of d at byte 0).
static_assert(offsetof(BlockQ5_0, qs) == 6, "Q5_0 layout");
static_assert(offsetof(BlockQ5_1, qh) == 4, "Q5_1 layout");
static_assert(offsetof(BlockQ4_K, qs) == 16, "Q4_K layout");
static_assert(offsetof(BlockQ5_K, qs) == 48, "Q5_K layout");
static_assert(offsetof(BlockQ6_K, d) == 208, "Q6_K layout");

// The 6-bit scale and min of sub-block j in [0, 8) of a Q4_K/Q5_K block
// (ggml's get_scale_min_k4). The 12 bytes hold, for j < 4,
//   sc[j] = scales[j] & 63,       m[j] = scales[j + 4] & 63
// and for j >= 4 the low 4 bits in scales[j + 4] (scale low, min high) and
// the top 2 bits in the spare top bits of scales[j - 4] / scales[j]:
//   sc[j] = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4)
//   m[j]  = (scales[j + 4] >> 4)  | ((scales[j] >> 6) << 4)
inline void GetScaleMinK4(int j, const uint8_t* scales, uint8_t* sc,
                          uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// ---- fp16 / bf16 <-> fp32 --------------------------------------------------
//
// Integer-only and bit exact, so results never depend on F16C, the FPU's
// rounding mode or flush-to-zero settings. fp16 -> fp32 and bf16 -> fp32 are
// exact for every input (NaN payloads kept, signaling NaNs stay signaling,
// as numpy does). fp32 -> fp16/bf16 round to nearest, ties to even.

inline uint32_t Fp32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float Fp32FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline float Fp16ToFp32(GgmlHalf h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) {  // Inf or NaN: keep the payload bits.
    return Fp32FromBits(sign | 0x7F800000u | (mant << 13));
  }
  if (exp != 0) {  // Normal: rebias the exponent from 15 to 127.
    return Fp32FromBits(sign | ((exp + 112) << 23) | (mant << 13));
  }
  if (mant == 0) return Fp32FromBits(sign);  // +-0.
  // Subnormal mant * 2^-24: normalize; it is a normal float32. 113 is the
  // float32 biased exponent of 2^-14, the fp16 subnormal exponent.
  uint32_t e = 113;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return Fp32FromBits(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

// Round to nearest even; overflow (|f| >= 65520) gives inf. NaN gives a
// quiet NaN of the same sign keeping the top payload bits (what F16C's
// vcvtps2ph produces; numpy keeps signaling NaNs signaling instead).
inline GgmlHalf Fp32ToFp16(float f) {
  const uint32_t u = Fp32Bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) {  // NaN.
    return static_cast<GgmlHalf>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  }
  if (a >= 0x47800000u) {  // >= 2^16 (or inf): inf.
    return static_cast<GgmlHalf>(sign | 0x7C00u);
  }
  if (a >= 0x38800000u) {  // >= 2^-14: normal fp16 (or rounds up to inf).
    // Rebias the exponent, then round the 13 dropped bits to nearest even;
    // a carry out of the mantissa correctly bumps the exponent.
    const uint32_t rebased = a - (112u << 23);
    const uint32_t rounded = rebased + 0xFFFu + ((rebased >> 13) & 1u);
    return static_cast<GgmlHalf>(sign | (rounded >> 13));
  }
  // fp16 subnormal or zero: the result is round(|f| / 2^-24). With the
  // implicit bit, |f| = m * 2^(e - 150), so |f| / 2^-24 = m >> (126 - e).
  const uint32_t e = a >> 23;
  if (e < 102) return static_cast<GgmlHalf>(sign);  // < 2^-25: to zero.
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - e;  // In [14, 24].
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  // Rounding up may reach q = 0x400, which is the smallest normal's code.
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return static_cast<GgmlHalf>(sign | q);
}

inline float Bf16ToFp32(uint16_t h) {
  return Fp32FromBits(static_cast<uint32_t>(h) << 16);
}

// Exactly ggml_compute_fp32_to_bf16 (and gguf-py): NaN -> quiet NaN keeping
// the top payload bits, otherwise round to nearest even; subnormals are kept
// (not flushed), overflow gives inf.
inline uint16_t Fp32ToBf16(float f) {
  const uint32_t u = Fp32Bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
    return static_cast<uint16_t>((u >> 16) | 64);
  }
  // No uint32 overflow: only negative NaNs are >= 0xFFFF8000.
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace tpserve

#endif  // TPSERVE_COMMON_GGML_BLOCKS_H_
