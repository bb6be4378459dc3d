#!/usr/bin/env python3
"""Makes tests/golden/ with the independent `gguf` package (llama.cpp's own
Python reader/writer), so the C++ reader is checked against another
implementation rather than against itself.

Writes:
  tiny_llama.gguf        a 2-layer Llama with random weights in F32, F16,
                         BF16, Q8_0, Q4_0 and Q4_1, and metadata of every
                         GGUF value type, written by gguf.GGUFWriter
  tiny_llama.json        what gguf.GGUFReader reads back from it
  smollm2_q4_1.json      what gguf.GGUFReader reads from the default model
and tests/fuzz/corpus/gguf/ seeds (small valid files) for the GGUF fuzzer.

Usage: scripts/make_golden.py MODEL.gguf   (needs: pip install gguf numpy)
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "tests", "golden")


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def raw(tensor):
    return np.asarray(tensor.data).tobytes()


def value_summary(field):
    """Type, count and value (or a digest for long arrays) of one field."""
    types = [t.name for t in field.types]
    out = {"type": types[0]}
    if field.types[0] == V.ARRAY:
        out["elem_type"] = types[1]
        values = field.contents()
        out["count"] = len(values)
        if field.types[1] == V.STRING:
            blob = b"".join(len(s.encode()).to_bytes(8, "little") + s.encode()
                            for s in values)
            out["fnv1a64"] = "%016x" % fnv1a64(blob)
        else:
            out["sum"] = sum(float(v) for v in values)
            out["weighted_sum"] = sum(i * float(v) for i, v in enumerate(values))
        out["head"] = [v if isinstance(v, str) else float(v) for v in values[:4]]
    else:
        v = field.contents()
        out["value"] = v if isinstance(v, (str, bool)) else float(v)
    return out


def summarize(path):
    r = gguf.GGUFReader(path)
    fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    return {
        "version": int(r.fields["GGUF.version"].contents()),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "file_size": os.path.getsize(path),
        "metadata": {k: value_summary(f) for k, f in fields.items()},
        "tensors": [{
            "name": t.name,
            "dims": [int(d) for d in t.shape],  # ggml order, innermost first
            "type": Q(t.tensor_type).name,
            "offset": int(t.data_offset) - int(r.data_offset),
            "n_bytes": int(t.n_bytes),
            "head_hex": raw(t)[:16].hex(),
            "tail_hex": raw(t)[-16:].hex(),
            "byte_sum": int(np.frombuffer(raw(t), np.uint8).sum(dtype=np.uint64)),
        } for t in r.tensors],
    }


def write_tiny(path):
    rng = np.random.default_rng(1234)
    hidden, heads, kv_heads, ffn, vocab, layers = 64, 4, 2, 128, 96, 2
    head_dim = hidden // heads
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-llama-golden")
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    # One of every value type, so the reader's decoding of each is checked.
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -5)
    w.add_uint16("test.u16", 65000)
    w.add_int16("test.i16", -300)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -7)
    w.add_float32("test.f32", 0.25)
    w.add_uint64("test.u64", 1 << 40)
    w.add_int64("test.i64", -(1 << 40))
    w.add_float64("test.f64", 2.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo wörld ✓")
    w.add_array("test.strings", ["a", "", "ccc", "日本"])
    w.add_array("test.floats", [0.5, -1.5, 3.0])

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)

    def add(name, arr, qtype):
        if qtype in (Q.F32,):
            w.add_tensor(name, arr)
        elif qtype == Q.F16:
            w.add_tensor(name, arr.astype(np.float16))
        else:
            data = gguf.quants.quantize(arr, qtype)
            w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)

    add("token_embd.weight", mat(vocab, hidden), Q.Q8_0)
    add("output_norm.weight", np.ones(hidden, np.float32), Q.F32)
    add("output.weight", mat(vocab, hidden), Q.F16)
    for i in range(layers):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", 1 + mat(1, hidden)[0], Q.F32)
        add(p + "attn_q.weight", mat(heads * head_dim, hidden), Q.Q4_0)
        add(p + "attn_k.weight", mat(kv_heads * head_dim, hidden), Q.Q4_1)
        add(p + "attn_v.weight", mat(kv_heads * head_dim, hidden), Q.Q8_0)
        add(p + "attn_output.weight", mat(hidden, heads * head_dim), Q.BF16)
        add(p + "ffn_norm.weight", 1 + mat(1, hidden)[0], Q.F32)
        add(p + "ffn_gate.weight", mat(ffn, hidden), Q.Q4_1)
        add(p + "ffn_up.weight", mat(ffn, hidden), Q.F16)
        add(p + "ffn_down.weight", mat(hidden, ffn), Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_seeds():
    """Small valid files that reach deep into the parser for the fuzzer."""
    corpus = os.path.join(HERE, "..", "tests", "fuzz", "corpus", "gguf")
    os.makedirs(corpus, exist_ok=True)
    w = gguf.GGUFWriter(os.path.join(corpus, "metadata_only.gguf"), "llama")
    w.add_uint8("a.u8", 1)
    w.add_int64("a.i64", -2)
    w.add_float64("a.f64", 0.5)
    w.add_bool("a.b", False)
    w.add_array("a.strs", ["x", "yz"])
    w.add_array("a.ints", [1, 2, 3])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    w = gguf.GGUFWriter(os.path.join(corpus, "two_tensors.gguf"), "llama")
    w.add_uint32("general.alignment", 64)
    w.add_tensor("a", np.arange(8, dtype=np.float32))
    q = gguf.quants.quantize(np.ones((1, 32), np.float32), Q.Q8_0)
    w.add_tensor("b", q, raw_shape=q.shape, raw_dtype=Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tiny = os.path.join(GOLDEN, "tiny_llama.gguf")
    write_tiny(tiny)
    write_seeds()
    for src, name in ((tiny, "tiny_llama.json"),
                      (sys.argv[1], "smollm2_q4_1.json")):
        with open(os.path.join(GOLDEN, name), "w") as f:
            json.dump(summarize(src), f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("wrote", name)


if __name__ == "__main__":
    main()
