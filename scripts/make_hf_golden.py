#!/usr/bin/env python3
"""Makes the Hugging Face golden folder with the independent `safetensors`
package (Hugging Face's own reader/writer) and numpy, so the C++ safetensors
and HF-folder readers are checked against another implementation.

Writes:
  tests/golden/hf_tiny/       a 2-layer Llama as a sharded HF folder:
                              config.json (llama3 rope_scaling),
                              model-0000{1,2}-of-00002.safetensors (F32, F16
                              and BF16 weights) and model.safetensors.index.json
  tests/golden/hf_tiny.json   what safetensors.deserialize reads back from each
                              shard (names, dtypes, shapes, sizes, values)
and tests/fuzz/corpus/safetensors/ seeds (small valid files) for the fuzzer.

The model has the shape of tests/golden/tiny_llama.gguf (hidden 64, 4 heads,
2 KV heads, FFN 128, vocabulary 96, 2 layers, 256 positions) so a test can
check that both formats give the same config.

Usage: scripts/make_hf_golden.py   (needs: pip install safetensors numpy)
"""
import json
import os
import struct

import numpy as np
import safetensors
from safetensors import TensorSpec, deserialize, serialize_file

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "tests", "golden")
FOLDER = os.path.join(GOLDEN, "hf_tiny")
CORPUS = os.path.join(HERE, "..", "tests", "fuzz", "corpus", "safetensors")

HIDDEN, HEADS, KV_HEADS, FFN, VOCAB, LAYERS = 64, 4, 2, 128, 96, 2
HEAD_DIM = HIDDEN // HEADS


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even,
    without ml_dtypes: bf16 is the top half of an IEEE float32."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


class Tensor:
    """A tensor to write: raw little-endian bytes plus its safetensors spec."""

    def __init__(self, array, dtype):
        self.dtype = dtype
        self.shape = list(array.shape)
        if dtype == "bfloat16":
            self.buf = np.ascontiguousarray(to_bf16_bits(array))
        else:
            self.buf = np.ascontiguousarray(array.astype(dtype))

    def spec(self):
        return TensorSpec(dtype=self.dtype, shape=self.shape,
                          data_ptr=self.buf.ctypes.data,
                          data_len=self.buf.nbytes)


def write(path, tensors, metadata=None):
    serialize_file({k: t.spec() for k, t in tensors.items()}, path,
                   metadata=metadata)
    os.chmod(path, 0o644)  # The package creates files 0600.


def decode(dtype, data):
    """Values of a tensor as float64, decoded independently of the C++."""
    if dtype == "F32":
        return np.frombuffer(data, "<f4").astype(np.float64)
    if dtype == "F16":
        return np.frombuffer(data, "<f2").astype(np.float64)
    if dtype == "BF16":
        bits = np.frombuffer(data, "<u2").astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    raise ValueError(dtype)


def summarize(path):
    with open(path, "rb") as f:
        raw = f.read()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    out = {"file_size": len(raw), "header_size": header_len,
           "metadata": header.get("__metadata__", {}), "tensors": []}
    # deserialize() returns tensors in hash-map order: sort for stable files.
    for name, info in sorted(deserialize(raw), key=lambda item: item[0]):
        values = decode(info["dtype"], bytes(info["data"]))
        out["tensors"].append({
            "name": name,
            "dtype": info["dtype"],
            "shape": list(info["shape"]),
            "n_bytes": len(info["data"]),
            "fnv1a64": "%016x" % fnv1a64(bytes(info["data"])),
            "head": [float(v) for v in values[:4]],
            "last": float(values[-1]),
            "sum": float(values.sum()),
        })
    return out


def write_tiny():
    rng = np.random.default_rng(4321)

    def mat(rows, cols):  # HF Linear layout: [out_features, in_features].
        return (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)

    def norm():
        return (1 + rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)

    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    shards = [{}, {}]
    shards[0]["model.embed_tokens.weight"] = Tensor(mat(VOCAB, HIDDEN),
                                                    "bfloat16")
    for i in range(LAYERS):
        s, p = shards[i], f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = Tensor(norm(), "float32")
        s[p + "self_attn.q_proj.weight"] = Tensor(mat(q, HIDDEN), "bfloat16")
        # One F32 matrix, so each dtype appears as a 2-D weight.
        s[p + "self_attn.k_proj.weight"] = Tensor(
            mat(kv, HIDDEN), "float32" if i == 1 else "float16")
        s[p + "self_attn.v_proj.weight"] = Tensor(mat(kv, HIDDEN), "bfloat16")
        s[p + "self_attn.o_proj.weight"] = Tensor(mat(HIDDEN, q), "float16")
        s[p + "post_attention_layernorm.weight"] = Tensor(norm(), "float32")
        s[p + "mlp.gate_proj.weight"] = Tensor(mat(FFN, HIDDEN), "bfloat16")
        s[p + "mlp.up_proj.weight"] = Tensor(mat(FFN, HIDDEN), "float16")
        s[p + "mlp.down_proj.weight"] = Tensor(mat(HIDDEN, FFN), "bfloat16")
    # Older checkpoints carry this buffer; readers must ignore it.
    shards[0]["model.layers.0.self_attn.rotary_emb.inv_freq"] = Tensor(
        1.0 / (10000.0 ** (np.arange(0, HEAD_DIM, 2) / HEAD_DIM)), "float32")
    shards[1]["model.norm.weight"] = Tensor(norm(), "float32")
    shards[1]["lm_head.weight"] = Tensor(mat(VOCAB, HIDDEN), "float16")

    os.makedirs(FOLDER, exist_ok=True)
    names = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    weight_map, total = {}, 0
    for name, tensors in zip(names, shards):
        write(os.path.join(FOLDER, name), tensors, {"format": "pt"})
        for k, t in tensors.items():
            weight_map[k] = name
            total += t.buf.nbytes
    index = {"metadata": {"total_size": total},
             "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(FOLDER, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": [2, 5],
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(FOLDER, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    summary = {
        "safetensors_version": safetensors.__version__,
        "shards": {n: summarize(os.path.join(FOLDER, n)) for n in names},
    }
    with open(os.path.join(GOLDEN, "hf_tiny.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")


def write_seeds():
    """Small valid files that reach every branch of the parser."""
    os.makedirs(CORPUS, exist_ok=True)
    write(os.path.join(CORPUS, "three_dtypes.safetensors"), {
        "a": Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), "float32"),
        "b": Tensor(np.ones(3, np.float32), "float16"),
        "c": Tensor(np.full((1, 2), -2.5, np.float32), "bfloat16"),
    }, {"format": "pt", "note": "seed"})
    write(os.path.join(CORPUS, "scalar_and_empty.safetensors"), {
        "scalar": Tensor(np.array(3.0, np.float32), "float32"),
        "empty": Tensor(np.zeros((0, 4), np.float32), "float16"),
        "ints": Tensor(np.arange(4, dtype=np.int64), "int64"),
    })


def main():
    write_tiny()
    write_seeds()
    print("wrote", FOLDER, "and", CORPUS)


if __name__ == "__main__":
    main()
