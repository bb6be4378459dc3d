#!/usr/bin/env python3
"""A float64 numpy forward pass of a Hugging Face folder, written from
transformers' modeling code (modeling_llama.py, modeling_qwen2.py,
modeling_qwen3.py), as an independent reference for tpserve's HF-folder
path. What it follows:
  - RMSNorm: x * rsqrt(mean(x^2) + eps) * weight;
  - attention: q/k/v projections (+ bias for Qwen2), Qwen3's per-head
    q_norm/k_norm before RoPE, rotate-half RoPE with cos/sin of
    cat(freqs, freqs), llama3 inv_freq scaling
    (_compute_llama3_parameters), grouped KV heads repeated, causal softmax
    of q k^T / sqrt(head_dim), o_proj;
  - MLP: down(silu(gate(x)) * up(x)); final norm; lm_head (or the tied
    embedding).
Everything in float64 from the stored (fp16) weights.

It runs the prompts of llama.cpp's reference and feeds llama.cpp's tokens
(teacher forcing), writing the same JSON schema as llama_cpp_reference.py
with its own logits, argmax and margins, and per prompt how far llama.cpp's
logits are from it (largest and root-mean-square difference over the
compared ids). It does this for the HF folder (the F16 weights) and
for the Q4_K_M GGUF's weights dequantized by gguf-py.

Usage: hf_forward.py MODELS_DIR   (writes MODELS_DIR/<row>/hf.float64.json
and MODELS_DIR/<row>/<row>-Q4_K_M.float64.json)
"""
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file

# F16: the HF folder's weights (hf.float64.json); quantized types: the GGUF's
# weights dequantized (<row>-<quant>.float64.json), the exact result of the
# quantized model, to see whose activation arithmetic is closer to it.
FLOAT64_OF = ["F16", "Q4_K_M"]


class Model:
    def __init__(self, config, weights):
        self.c = c = config
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.heads, self.kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = c.get("head_dim") or c["hidden_size"] // self.heads
        self.eps = c["rms_norm_eps"]
        self.qwen3 = c["model_type"] == "qwen3"
        self.inv_freq = self.rope_inv_freq()
        self.lm_head = self.w.get("lm_head.weight",
                                  self.w["model.embed_tokens.weight"])

    @staticmethod
    def from_hf_folder(folder):
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        return Model(config, load_file(os.path.join(folder, "model.safetensors")))

    @staticmethod
    def from_gguf(path, config):
        """The weights of a (quantized) GGUF, dequantized by gguf-py, Q/K
        rows of `llama` files permuted back to HF order; `config` is the
        HF folder's config.json of the same model."""
        import gguf
        from make_models import GGUF_GLOBAL, GGUF_LAYER
        hf_layer = {v: k for k, v in GGUF_LAYER.items()}
        hf_global = {v: k for k, v in GGUF_GLOBAL.items()}
        heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
        weights = {}
        for t in gguf.GGUFReader(path).tensors:
            if t.name == "rope_freqs.weight":
                continue  # config.json's rope_scaling says the same
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            if t.name in hf_global:
                name = hf_global[t.name]
            else:
                _, layer, rest = t.name.split(".", 2)
                name = f"model.layers.{layer}.{hf_layer[rest]}"
            if config["model_type"] == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
                n = heads if name.endswith("q_proj.weight") else kv_heads
                a = a.reshape(n, a.shape[0] // n // 2, 2, -1).swapaxes(1, 2).reshape(a.shape)
            weights[name] = a
        return Model(config, weights)

    def rope_inv_freq(self):
        c, dim = self.c, self.head_dim
        base = c.get("rope_theta", 10000.0)
        inv = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
        s = c.get("rope_scaling")
        if not s or s.get("rope_type", s.get("type")) in (None, "default"):
            return inv
        assert s["rope_type"] == "llama3", s
        factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old = s["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return np.where(medium, smoothed, scaled)

    def norm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def rope(self, x, positions):
        # x: [tokens, heads, dim]; rotate_half pairs (i, i + dim/2).
        freqs = np.outer(positions, self.inv_freq)
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
        half = x.shape[-1] // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated * sin

    def forward(self, tokens, start, cache):
        """Logits of the last of `tokens` at positions start..; `cache` holds
        each layer's K/V rows so far (extended here)."""
        w, hd = self.w, self.head_dim
        n = len(tokens)
        positions = np.arange(start, start + n, dtype=np.float64)
        x = w["model.embed_tokens.weight"][tokens]
        for i in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = self.norm(x, w[p + "input_layernorm.weight"])
            proj = {}
            for name in ("q", "k", "v"):
                y = h @ w[p + f"self_attn.{name}_proj.weight"].T
                if p + f"self_attn.{name}_proj.bias" in w:
                    y = y + w[p + f"self_attn.{name}_proj.bias"]
                proj[name] = y.reshape(n, -1, hd)
            q, k, v = proj["q"], proj["k"], proj["v"]
            if self.qwen3:
                q = self.norm(q, w[p + "self_attn.q_norm.weight"])
                k = self.norm(k, w[p + "self_attn.k_norm.weight"])
            q, k = self.rope(q, positions), self.rope(k, positions)
            if i not in cache:
                cache[i] = (np.zeros((0, self.kv_heads, hd)),
                            np.zeros((0, self.kv_heads, hd)))
            ks = np.concatenate([cache[i][0], k])
            vs = np.concatenate([cache[i][1], v])
            cache[i] = (ks, vs)
            group = self.heads // self.kv_heads
            kr = np.repeat(ks, group, axis=1).transpose(1, 2, 0)  # [H, hd, T]
            vr = np.repeat(vs, group, axis=1).transpose(1, 0, 2)  # [H, T, hd]
            scores = q.transpose(1, 0, 2) @ kr / math.sqrt(hd)    # [H, n, T]
            total = ks.shape[0]
            mask = np.arange(total)[None, :] > (start + np.arange(n))[:, None]
            scores = np.where(mask[None], -np.inf, scores)
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            attn = (probs @ vr).transpose(1, 0, 2).reshape(n, -1)
            x = x + attn @ w[p + "self_attn.o_proj.weight"].T
            h = self.norm(x, w[p + "post_attention_layernorm.weight"])
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
        last = self.norm(x[-1], w["model.norm.weight"])
        return self.lm_head @ last


def run(model, ref):
    """Teacher-forced on llama.cpp's tokens: at each step the logits of
    llama.cpp's top ids and the fixed ids, this forward's own argmax and
    top-2 margin, and llama.cpp's largest difference from it."""
    fixed = ref["fixed_ids"]
    cases = []
    for case in ref["cases"]:
        prompt = case["prompt"]
        cache = {}
        logits = model.forward(prompt, 0, cache)
        pos = len(prompt)
        steps, diffs = [], []
        for s in case["steps"]:
            order = np.argsort(-logits, kind="stable")[:2]
            ids = s["top_ids"]
            diffs += [logits[i] - v for i, v in
                      zip(ids + fixed, s["top_logits"] + s["fixed_logits"])]
            steps.append({
                "token": s["token"],
                "argmax": int(order[0]),
                "margin": float(logits[order[0]] - logits[order[1]]),
                "top_ids": ids,
                "top_logits": [float(logits[i]) for i in ids],
                "fixed_logits": [float(logits[i]) for i in fixed],
            })
            logits = model.forward([s["token"]], pos, cache)
            pos += 1
        diffs = np.abs(np.array(diffs))
        cases.append({"text": case["text"], "prompt": prompt, "steps": steps,
                      "llama_cpp_error": float(diffs.max()),
                      "llama_cpp_rms": float(np.sqrt(np.mean(diffs ** 2)))})
    return {"reference": "float64 numpy (tests/conformance/hf_forward.py)",
            "vocab_size": ref["vocab_size"], "fixed_ids": fixed,
            "cases": cases}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    with open(os.path.join(out, "models.json")) as f:
        manifest = json.load(f)
    for name, row in manifest["rows"].items():
        folder = os.path.join(out, name, row["hf"])
        for quant in FLOAT64_OF:
            gguf_path = os.path.join(out, name, row["files"][quant])
            with open(gguf_path[:-len(".gguf")] + ".llama_cpp.json") as f:
                ref = json.load(f)
            if quant == "F16":
                model, dest = Model.from_hf_folder(folder), "hf.float64.json"
            else:
                with open(os.path.join(folder, "config.json")) as f:
                    model = Model.from_gguf(gguf_path, json.load(f))
                dest = f"{name}-{quant}.float64.json"
            result = run(model, ref)
            errors = [c["llama_cpp_error"] for c in result["cases"]]
            rms = [c["llama_cpp_rms"] for c in result["cases"]]
            print(f"{name} {quant}: llama.cpp within {max(errors):.4f} of the "
                  f"float64 forward (rms {max(rms):.4f})", flush=True)
            with open(os.path.join(out, name, dest), "w") as f:
                json.dump(result, f)


if __name__ == "__main__":
    main()
