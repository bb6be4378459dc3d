#!/usr/bin/env python3
"""Makes tests/golden/quant/ with the independent `gguf` package (llama.cpp's
own gguf-py), so the C++ dequantizer (common/dequantize.cc) is checked
against another implementation rather than against itself.

Writes, for each of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K
and Q6_K, a file <TYPE>.json:
  {"type", "block_size", "type_size", "gguf_version",
   "rows": [{"name", "n", "source", "blocks_b64", "expected_f32_b64",
             optionally "input_f32_b64"}]}
where blocks_b64 is the raw row as stored in a GGUF file, expected_f32_b64
is gguf.quants.dequantize of it (little-endian float32), and input_f32_b64
(F16/BF16 only) the floats that gguf/numpy encoded into those bytes, which
checks the C++ fp32 -> fp16/bf16 encoders too.

Rows come from gguf.quants.quantize of seeded random floats (normal, wide
dynamic range, zeros, negatives, blocks with outliers or tiny values) and,
since gguf-py cannot quantize K-quants, from random block bytes with the
half-float scales set to finite values.

Also writes smollm2_rows.json: a few whole dequantized rows and a checksum of
every dequantized element of some tensors of the default model, read with
gguf.GGUFReader.

Usage: scripts/make_quant_golden.py MODEL.gguf  (needs: pip install gguf numpy)
"""
import base64
import importlib.metadata
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "golden", "quant")

BLOCK32 = (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1)
KQUANTS = (Q.Q4_K, Q.Q5_K, Q.Q6_K)
ROW = 256  # Elements per row: whole blocks of every type here.


def b64(arr):
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode()


def f32_row(values):
    return np.asarray(values, dtype=np.float32).reshape(-1)


def float_rows(rng):
    """Named float rows that stress the block quantizers."""
    normal = rng.standard_normal(ROW) * 0.1
    # Magnitudes from 1e-4 to 1e3 side by side: scales are set by the
    # largest value of a block, small ones quantize to zero.
    wide = rng.standard_normal(ROW) * 10.0 ** rng.uniform(-4, 3, ROW)
    negative = -np.abs(rng.standard_normal(ROW))
    # One 32-element block each: zeros, a constant, one outlier, values so
    # small that the fp16 scale is subnormal, large values, alternating signs,
    # values whose scale underflows fp16 to zero while the quants do not (so
    # the block decodes to zeros of both signs), and exact ties at
    # quantization steps.
    blocks = [
        np.zeros(32),
        np.full(32, 3.0),
        np.concatenate([[1000.0], rng.standard_normal(31) * 0.01]),
        rng.standard_normal(32) * 1e-3,
        rng.uniform(-3000, 3000, 32),
        np.where(np.arange(32) % 2 == 0, 1.0, -1.0) * np.arange(32),
        rng.standard_normal(32) * 1e-30,
        np.linspace(-8, 7, 32),
    ]
    mixed = np.concatenate(blocks)
    return [("normal", normal), ("wide_range", wide),
            ("zeros", np.zeros(ROW)), ("negative", negative),
            ("mixed_blocks", mixed)]


def random_half(rng, n, lo_exp, hi_exp, signed):
    """Finite fp16 scales with magnitudes 10**[lo_exp, hi_exp) (subnormal
    fp16 below 6.1e-5), as raw bytes."""
    mag = 10.0 ** rng.uniform(lo_exp, hi_exp, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0) if signed else 1.0
    return (mag * sign).astype(np.float16).view(np.uint8).reshape(n, 2)


def random_blocks(rng, qtype, n_blocks, lo_exp, hi_exp, signed):
    """Random block bytes; every fp16 field (d, and m/dmin where the type
    has one) is overwritten with a finite value."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    if qtype == Q.Q8_0:
        blocks[:, 2:6] = 0  # Zero quants: -0.0 where d < 0.
    # Byte offsets of the fp16 fields (see common/ggml_blocks.h).
    halves = {Q.Q8_0: [0], Q.Q4_0: [0], Q.Q5_0: [0], Q.Q4_1: [0, 2],
              Q.Q5_1: [0, 2], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2],
              Q.Q6_K: [type_size - 2]}[qtype]
    for off in halves:
        blocks[:, off:off + 2] = random_half(rng, n_blocks, lo_exp, hi_exp,
                                             signed)
    return blocks


def set_halves(blocks, qtype, d, dmin=None):
    """Sets d (and dmin) of every block to the given values."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    d_off = type_size - 2 if qtype == Q.Q6_K else 0
    blocks[:, d_off:d_off + 2] = np.array([d], np.float16).view(np.uint8)
    if dmin is not None:
        blocks[:, 2:4] = np.array([dmin], np.float16).view(np.uint8)
    return blocks


def dequant(blocks, qtype):
    out = gguf.quants.dequantize(np.ascontiguousarray(blocks), qtype)
    return np.asarray(out, dtype=np.float32).reshape(-1)


def quant_rows(qtype, rng):
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rows = []

    def add(name, source, blocks, inputs=None):
        blocks = np.asarray(blocks, dtype=np.uint8).reshape(-1)
        n = blocks.size // type_size * block_size
        row = {"name": name, "n": n, "source": source,
               "blocks_b64": b64(blocks),
               "expected_f32_b64": b64(dequant(blocks, qtype))}
        if inputs is not None:
            row["input_f32_b64"] = b64(f32_row(inputs))
        rows.append(row)

    if qtype in BLOCK32:
        for name, values in float_rows(rng):
            add(name, "quantize", gguf.quants.quantize(
                f32_row(values).reshape(1, -1), qtype))
        add("random_blocks", "random", random_blocks(
            rng, qtype, ROW // 32, -6, 2, signed=True))
    else:  # K-quants: two super-blocks per row.
        add("random", "random", random_blocks(rng, qtype, 2, -4, -1, False))
        add("random_signed_subnormal", "random",
            random_blocks(rng, qtype, 2, -7, 1, signed=True))
        has_min = qtype != Q.Q6_K
        add("zero_d", "random", set_halves(
            random_blocks(rng, qtype, 2, -4, -1, False), qtype, 0.0,
            0.5 if has_min else None))
        add("all_ones_bits", "random", set_halves(
            np.full((2, type_size), 0xFF, np.uint8), qtype, 0.25,
            0.125 if has_min else None))
        add("all_zero_bits", "random", set_halves(
            np.zeros((2, type_size), np.uint8), qtype, -1.5,
            2.0 if has_min else None))
    return rows


def edge_floats():
    """Specials and rounding ties for the fp16/bf16 encoders."""
    f = np.float32
    vals = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 65504.0, -65504.0,
            65519.0, 65520.0, 65536.0, 1e10, -1e10,
            6.103515625e-05,             # smallest normal fp16
            5.960464477539063e-08,       # smallest subnormal fp16 (2^-24)
            2.0 ** -25, 2.0 ** -25 * 1.0001, 3 * 2.0 ** -25, 2.0 ** -26,
            1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,  # fp16 ties: even, up
            1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8,    # bf16 ties: even, up
            3.4028234663852886e38, -3.4028234663852886e38,
            1e-40, -1e-40, 1.401298464324817e-45, 1.1754942e-38,
            np.pi, -np.e, 0.1, 1e-5, 1e-6]
    out = [f(v) for v in vals]
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000,
                     0xFFFFFFFF], np.uint32).view(np.float32)
    out.extend(nans)
    while len(out) % 32:
        out.append(f(0.5))
    return np.array(out, np.float32)


def float_type_rows(qtype, rng):
    rows = []
    wide = rng.standard_normal(ROW) * 10.0 ** rng.uniform(-9, 6, ROW)
    inputs = [("edge", edge_floats()),
              ("normal", rng.standard_normal(ROW) * 0.1),
              ("wide_range", wide)]
    for name, values in inputs:
        x = f32_row(values)
        if qtype == Q.F32:
            data = x
        elif qtype == Q.F16:
            with np.errstate(over="ignore"):  # 1e10 -> inf on purpose.
                data = x.astype(np.float16)
        else:
            data = gguf.quants.quantize(x.reshape(1, -1), qtype)
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        row = {"name": name, "n": x.size, "source": "quantize",
               "blocks_b64": b64(raw),
               "expected_f32_b64": b64(dequant(raw, qtype))}
        if qtype != Q.F32:
            row["input_f32_b64"] = b64(x)
        rows.append(row)
    if qtype != Q.F32:
        # Every bit pattern class: all fp16/bf16 subnormals, infinities and
        # NaNs (0x7C01.. / 0x7F81..) and random patterns.
        bits = np.concatenate([
            np.arange(0, 0x400, 3, dtype=np.uint16),
            np.arange(0x7BF0, 0x7C10, dtype=np.uint16),
            np.arange(0x7F70, 0x7F90, dtype=np.uint16),
            np.array([0x8000, 0x8001, 0x83FF, 0xFC00, 0xFF80, 0xFFFF],
                     np.uint16),
            rng.integers(0, 1 << 16, 256, dtype=np.uint16)])
        bits = bits[:bits.size // 32 * 32]
        raw = bits.view(np.uint8)
        rows.append({"name": "bit_patterns", "n": bits.size,
                     "source": "random", "blocks_b64": b64(raw),
                     "expected_f32_b64": b64(dequant(raw, qtype))})
    else:
        raw = rng.integers(0, 256, 4 * 64, dtype=np.uint8)
        rows.append({"name": "bit_patterns", "n": 64, "source": "random",
                     "blocks_b64": b64(raw),
                     "expected_f32_b64": b64(dequant(raw, qtype))})
    return rows


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print("wrote", name)


def bits_checksum(values):
    """sum((i + 1) * bits(values[i])) mod 2^64: exact and order-sensitive,
    and cheap to recompute in C++ (common/dequantize_test.cc)."""
    bits = values.reshape(-1).view(np.uint32).astype(np.uint64)
    idx = np.arange(1, bits.size + 1, dtype=np.uint64)
    return int(np.sum(bits * idx, dtype=np.uint64))


def model_rows(path):
    r = gguf.GGUFReader(path)
    wanted = {"token_embd.weight": [0, 1, 1000, -1],
              "blk.0.attn_q.weight": [0, 1, -1],
              "blk.0.attn_norm.weight": [0]}
    tensors = []
    for t in r.tensors:
        if t.name not in wanted:
            continue
        qtype = Q(t.tensor_type)
        deq = np.asarray(gguf.quants.dequantize(t.data, qtype),
                         dtype=np.float32)
        cols = int(t.shape[0])
        deq = deq.reshape(-1, cols)
        rows = {}
        for i in wanted[t.name]:
            i = i % deq.shape[0]
            rows[str(i)] = b64(deq[i])
        tensors.append({"name": t.name, "type": qtype.name,
                        "dims": [int(d) for d in t.shape],
                        "n_elements": int(deq.size),
                        "bits_checksum": bits_checksum(deq),
                        "rows_f32_b64": rows})
    return {"gguf_version": importlib.metadata.version("gguf"),
            "tensors": tensors}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(OUT, exist_ok=True)
    version = importlib.metadata.version("gguf")
    for qtype in (Q.F32, Q.F16, Q.BF16) + BLOCK32 + KQUANTS:
        # A seed per type, so adding a type changes no other file.
        rng = np.random.default_rng(1000 + int(qtype))
        if qtype in (Q.F32, Q.F16, Q.BF16):
            rows = float_type_rows(qtype, rng)
        else:
            rows = quant_rows(qtype, rng)
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        write_json(qtype.name + ".json", {
            "type": qtype.name, "block_size": block_size,
            "type_size": type_size, "gguf_version": version, "rows": rows})
    write_json("smollm2_rows.json", model_rows(sys.argv[1]))


if __name__ == "__main__":
    main()
