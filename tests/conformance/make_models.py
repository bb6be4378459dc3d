#!/usr/bin/env python3
"""Writes the conformance suite's models: small random-weight decoders of
each family tpserve serves, with real tokenizers, as GGUF files (F16 written
here with llama.cpp's own `gguf` package, Q8_0 and Q4_K_M made from it by
llama.cpp's llama_model_quantize, what llama-quantize runs, through the
llama_cpp bindings) and, for the F16 row, the same weights as a Hugging
Face folder (config.json + model.safetensors).

Rows (ROWS below):
  llama_spm   Llama 2 style: SentencePiece vocabulary (32000), MHA, untied
  llama3_bpe  Llama 3.2 style: byte-level BPE (128256), GQA, tied, llama3
              rope scaling (rope_freqs.weight, original context 256)
  qwen2       Qwen2: Q/K/V biases, NEOX rope, tied, Qwen2 vocabulary
  qwen3       Qwen3: per-head Q/K RMSNorm, head_dim x heads != hidden, tied
  mistral     Mistral style Llama: GQA 4:1, rope_theta 1e6, 4 layers, untied

Every dimension a matmul row runs over is a multiple of 256 so that
llama.cpp really makes K-quants (it falls back to other types otherwise;
the types written are checked). The tokenizer.* metadata is copied from llama.cpp's
vocabulary-only test files (scripts/fetch-test-data.sh).

Weights are HF-layout float arrays ([out, in]) from a seeded generator,
rounded to fp16, so the GGUF and the HF folder hold the same values;
llama.cpp's converter permutes the Q/K rows of `llama` models into its
interleaved RoPE order (qwen2/qwen3 use NEOX RoPE and are not permuted), and
so does this writer. The scales keep the outputs far from degenerate:
RMS-normalized activations, projections of std ~1/sqrt(in), embeddings of
std 0.25, so logits have a std of ~4 and clear top-2 margins.

Usage: make_models.py VOCAB_DIR OUT_DIR   (PYTHONPATH and LLAMA_CPP_LIB_PATH
as scripts/conformance.sh sets them)
Writes OUT_DIR/<row>/<row>-{F16,Q8_0,Q4_K_M}.gguf, OUT_DIR/<row>/hf/ and
OUT_DIR/models.json (the rows and their files).
"""
import json
import math
import os
import sys

import numpy as np
import gguf
import llama_cpp
from safetensors.numpy import save_file

ROWS = {
    "llama_spm": dict(arch="llama", vocab="llama-spm", hidden=256, ffn=768,
                      layers=2, heads=4, kv_heads=4, head_dim=64,
                      theta=10000.0, eps=1e-5, tied=False, seed=1),
    "llama3_bpe": dict(arch="llama", vocab="llama-bpe", hidden=256, ffn=512,
                       layers=2, heads=8, kv_heads=2, head_dim=64,
                       theta=500000.0, eps=1e-5, tied=True, seed=2,
                       llama3_scaling=dict(factor=8.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0,
                                           original_max_position_embeddings=256)),
    "qwen2": dict(arch="qwen2", vocab="qwen2", hidden=256, ffn=512, layers=2,
                  heads=4, kv_heads=2, head_dim=64, theta=1000000.0, eps=1e-6,
                  tied=True, qkv_bias=True, seed=3),
    "qwen3": dict(arch="qwen3", vocab="qwen2", hidden=256, ffn=512, layers=2,
                  heads=8, kv_heads=4, head_dim=64, theta=1000000.0, eps=1e-6,
                  tied=True, qk_norm=True, seed=4),
    "mistral": dict(arch="llama", vocab="llama-spm", hidden=256, ffn=512,
                    layers=4, heads=4, kv_heads=1, head_dim=64,
                    theta=1000000.0, eps=1e-5, tied=False, seed=5),
}
QUANTS = ["F16", "Q8_0", "Q4_K_M"]
# The matrix types each quantization may write: anything else is
# llama.cpp's fall-back for rows that do not split into its blocks.
MATRIX_TYPES = {"Q8_0": {"Q8_0"}, "Q4_K_M": {"Q4_K", "Q6_K"}}
CONTEXT = 4096
HF_ARCH = {"llama": ("llama", "LlamaForCausalLM"),
           "qwen2": ("qwen2", "Qwen2ForCausalLM"),
           "qwen3": ("qwen3", "Qwen3ForCausalLM")}


def permute_qk(w, n_head, n_head_kv):
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows (HF rotate-half
    order -> ggml's interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama3_rope_factors(theta, dim, s):
    """The rope_freqs.weight llama.cpp's converter computes for llama3
    rope scaling (float32 as in its torch code)."""
    freqs = 1.0 / (np.float32(theta) ** (np.arange(0, dim, 2, dtype=np.float32)
                                        / np.float32(dim)))
    low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
    out = []
    for freq in freqs.astype(np.float32):
        wavelen = np.float32(2 * math.pi) / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(s["factor"])
        else:
            smooth = ((np.float32(s["original_max_position_embeddings"]) / wavelen
                       - np.float32(s["low_freq_factor"]))
                      / np.float32(s["high_freq_factor"] - s["low_freq_factor"]))
            out.append(1 / ((1 - smooth) / np.float32(s["factor"]) + smooth))
    return np.array(out, dtype=np.float32)


def make_weights(row, vocab_size):
    """HF-named, HF-layout weights, values exactly representable in fp16."""
    rng = np.random.default_rng(row["seed"])
    h, f = row["hidden"], row["ffn"]
    q, kv = row["heads"] * row["head_dim"], row["kv_heads"] * row["head_dim"]

    def mat(out_dim, in_dim, gain=1.0):
        w = rng.standard_normal((out_dim, in_dim)) * (gain / math.sqrt(in_dim))
        return w.astype(np.float16)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float16)

    def bias(n, std):
        return (std * rng.standard_normal(n)).astype(np.float16)

    w = {"model.embed_tokens.weight":
         (0.25 * rng.standard_normal((vocab_size, h))).astype(np.float16)}
    for i in range(row["layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(h)
        # Attention logits of std ~2 (q, k entries of std ~1.4).
        w[p + "self_attn.q_proj.weight"] = mat(q, h, 1.4)
        w[p + "self_attn.k_proj.weight"] = mat(kv, h, 1.4)
        w[p + "self_attn.v_proj.weight"] = mat(kv, h)
        if row.get("qkv_bias"):
            w[p + "self_attn.q_proj.bias"] = bias(q, 0.5)
            w[p + "self_attn.k_proj.bias"] = bias(kv, 0.5)
            w[p + "self_attn.v_proj.bias"] = bias(kv, 0.1)
        if row.get("qk_norm"):
            w[p + "self_attn.q_norm.weight"] = norm(row["head_dim"])
            w[p + "self_attn.k_norm.weight"] = norm(row["head_dim"])
        w[p + "self_attn.o_proj.weight"] = mat(h, q)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        w[p + "mlp.gate_proj.weight"] = mat(f, h)
        w[p + "mlp.up_proj.weight"] = mat(f, h)
        w[p + "mlp.down_proj.weight"] = mat(h, f)
    w["model.norm.weight"] = norm(h)
    if not row["tied"]:
        w["lm_head.weight"] = (0.25 * rng.standard_normal((vocab_size, h))
                               ).astype(np.float16)
    return w


GGUF_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GGUF_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_name(hf):
    if hf in GGUF_GLOBAL:
        return GGUF_GLOBAL[hf]
    _, _, layer, rest = hf.split(".", 3)
    return f"blk.{layer}.{GGUF_LAYER[rest]}"


def copy_tokenizer(writer, vocab_path):
    """Copies every tokenizer.* key of a vocabulary-only GGUF."""
    reader = gguf.GGUFReader(vocab_path)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    ids = {k: reader.fields[k].contents() for k in reader.fields
           if k.startswith("tokenizer.ggml.") and k.endswith("_token_id")}
    return len(tokens.data), ids


def write_gguf(path, name, row, weights, vocab_path):
    arch = row["arch"]
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(name)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(row["hidden"])
    writer.add_block_count(row["layers"])
    writer.add_feed_forward_length(row["ffn"])
    writer.add_head_count(row["heads"])
    writer.add_head_count_kv(row["kv_heads"])
    writer.add_key_length(row["head_dim"])
    writer.add_value_length(row["head_dim"])
    writer.add_rope_dimension_count(row["head_dim"])
    writer.add_rope_freq_base(row["theta"])
    writer.add_layer_norm_rms_eps(row["eps"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    vocab_size, _ = copy_tokenizer(writer, vocab_path)
    writer.add_vocab_size(vocab_size)
    if row.get("llama3_scaling"):
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(
            row["theta"], row["head_dim"], row["llama3_scaling"]))
    for hf, value in weights.items():
        value = np.ascontiguousarray(value)
        if arch == "llama" and hf.endswith("q_proj.weight"):
            value = permute_qk(value, row["heads"], row["heads"])
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            value = permute_qk(value, row["heads"], row["kv_heads"])
        # Vectors (norms, biases) in F32, as llama.cpp's converter does.
        if value.ndim == 1:
            value = value.astype(np.float32)
        writer.add_tensor(gguf_name(hf), np.ascontiguousarray(value))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_hf(folder, row, weights, vocab_size, token_ids):
    os.makedirs(folder, exist_ok=True)
    model_type, architecture = HF_ARCH[row["arch"]]
    config = {
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": vocab_size,
        "hidden_size": row["hidden"],
        "intermediate_size": row["ffn"],
        "num_hidden_layers": row["layers"],
        "num_attention_heads": row["heads"],
        "num_key_value_heads": row["kv_heads"],
        "head_dim": row["head_dim"],
        "hidden_act": "silu",
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": row["eps"],
        "rope_theta": row["theta"],
        "rope_scaling": None,
        "tie_word_embeddings": row["tied"],
        "torch_dtype": "float16",
    }
    if "tokenizer.ggml.bos_token_id" in token_ids:
        config["bos_token_id"] = int(token_ids["tokenizer.ggml.bos_token_id"])
    if "tokenizer.ggml.eos_token_id" in token_ids:
        config["eos_token_id"] = int(token_ids["tokenizer.ggml.eos_token_id"])
    if row["arch"] == "llama":
        config["attention_bias"] = False
        config["mlp_bias"] = False
    if row["arch"] == "qwen3":
        config["attention_bias"] = False
    if row["arch"] in ("qwen2", "qwen3"):
        config["use_sliding_window"] = False
    if row.get("llama3_scaling"):
        config["rope_scaling"] = dict(rope_type="llama3", **row["llama3_scaling"])
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()},
              os.path.join(folder, "model.safetensors"),
              metadata={"format": "pt"})


def quantize(src, dst, quant):
    """llama_model_quantize with llama-quantize's defaults, then a check of
    the tensor types written."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
    params.nthread = 2
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params) != 0:
        sys.exit(f"llama_model_quantize {quant} failed for {src}")
    written = {t.tensor_type.name for t in gguf.GGUFReader(dst).tensors
               if len(t.shape) == 2}
    if not written <= MATRIX_TYPES[quant]:
        sys.exit(f"{dst}: llama.cpp wrote {sorted(written)}, expected only "
                 f"{sorted(MATRIX_TYPES[quant])} (a fall-back type)")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    vocab_dir, out = sys.argv[1:]
    manifest = {"quants": QUANTS, "rows": {}}
    for name, row in ROWS.items():
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        vocab_path = os.path.join(vocab_dir, f"ggml-vocab-{row['vocab']}.gguf")
        reader = gguf.GGUFReader(vocab_path)
        vocab_size = len(reader.fields["tokenizer.ggml.tokens"].data)
        token_ids = {k: reader.fields[k].contents() for k in reader.fields
                     if k.endswith("_token_id")}
        del reader
        weights = make_weights(row, vocab_size)
        files = {}
        f16 = os.path.join(folder, f"{name}-F16.gguf")
        print(f"{name}: writing {f16}", flush=True)
        write_gguf(f16, name, row, weights, vocab_path)
        files["F16"] = os.path.basename(f16)
        for quant in QUANTS[1:]:
            path = os.path.join(folder, f"{name}-{quant}.gguf")
            print(f"{name}: quantizing to {quant}", flush=True)
            quantize(f16, path, quant)
            files[quant] = os.path.basename(path)
        write_hf(os.path.join(folder, "hf"), row, weights, vocab_size, token_ids)
        manifest["rows"][name] = dict(row, vocab_size=vocab_size, files=files,
                                      hf="hf")
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
