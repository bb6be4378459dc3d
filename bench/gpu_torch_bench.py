#!/usr/bin/env python3
"""PyTorch baseline for bench/gpu_bench.cc: the same synthetic Llama-3-8B
shapes (hidden 4096, 32 layers, 32 query / 8 KV heads of 128, FFN 14336,
vocabulary 128256, llama3 RoPE), random bf16 weights on the GPU, a faithful
Llama layer stack written out in PyTorch (bf16 matmuls, RMSNorm in f32,
rotate-half RoPE, scaled_dot_product_attention with GQA over a bf16 KV
cache, SwiGLU), eager mode. Measures decode tokens/s at batch 1, 8, 32, 64
(context 512) and prefill tokens/s at 512 and 2048 tokens, and prints one
JSON object with the same keys as gpu_bench.

Usage: gpu_torch_bench.py [--layers N] [--steps N] [--json PATH]
        [--compare GPU_BENCH_JSON]   (adds tpserve/torch ratios)
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB = 4096, 32, 8, 128, 14336, 128256
EPS = 1e-5


def rope_tables(max_pos, device):
    # Llama 3 frequency scaling (factor 8, low 1, high 4, original 8192).
    inv = 1.0 / (500000.0 ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float64)
                              / HEAD_DIM))
    factor, low, high, orig = 8.0, 1.0, 4.0, 8192.0
    wavelen = 2 * math.pi / inv
    smooth = (orig / wavelen - low) / (high - low)
    scaled = torch.where(wavelen > orig / low, inv / factor, inv)
    mid = (wavelen <= orig / low) & (wavelen >= orig / high)
    scaled = torch.where(mid, (1 - smooth) * inv / factor + smooth * inv,
                         scaled)
    ang = torch.arange(max_pos, dtype=torch.float64)[:, None] * scaled[None]
    emb = torch.cat([ang, ang], dim=-1)
    return (emb.cos().to(device, torch.bfloat16),
            emb.sin().to(device, torch.bfloat16))


def rms_norm(x, w):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
            ).to(x.dtype) * w


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Model:
    def __init__(self, layers, device):
        g = torch.Generator(device=device)
        g.manual_seed(0)

        def w(rows, cols):
            return (torch.rand(rows, cols, device=device, generator=g,
                               dtype=torch.bfloat16) * 0.07 - 0.035)

        self.embed = w(VOCAB, HIDDEN)
        self.lm_head = w(VOCAB, HIDDEN)
        self.norm = torch.ones(HIDDEN, device=device, dtype=torch.bfloat16)
        self.layers = []
        for _ in range(layers):
            self.layers.append(dict(
                attn_norm=torch.ones(HIDDEN, device=device,
                                     dtype=torch.bfloat16),
                ffn_norm=torch.ones(HIDDEN, device=device,
                                    dtype=torch.bfloat16),
                wq=w(HEADS * HEAD_DIM, HIDDEN), wk=w(KV_HEADS * HEAD_DIM, HIDDEN),
                wv=w(KV_HEADS * HEAD_DIM, HIDDEN), wo=w(HIDDEN, HEADS * HEAD_DIM),
                wg=w(FFN, HIDDEN), wu=w(FFN, HIDDEN), wd=w(HIDDEN, FFN)))
        self.cos, self.sin = rope_tables(4096, device)

    def alloc_cache(self, batch, max_len, device):
        shape = (batch, KV_HEADS, max_len, HEAD_DIM)
        self.k = [torch.zeros(shape, device=device, dtype=torch.bfloat16)
                  for _ in self.layers]
        self.v = [torch.zeros(shape, device=device, dtype=torch.bfloat16)
                  for _ in self.layers]

    @torch.inference_mode()
    def forward(self, tokens, start):
        """tokens [B, T] at positions start..start+T-1; returns the last
        position's logits [B, vocab] (f32, copied to the host like the
        engine's)."""
        b, t = tokens.shape
        x = self.embed[tokens]
        cos = self.cos[start:start + t][None, None]
        sin = self.sin[start:start + t][None, None]
        for i, l in enumerate(self.layers):
            h = rms_norm(x, l["attn_norm"])
            q = (h @ l["wq"].T).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
            k = (h @ l["wk"].T).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
            v = (h @ l["wv"].T).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            self.k[i][:b, :, start:start + t] = k
            self.v[i][:b, :, start:start + t] = v
            kk = self.k[i][:b, :, :start + t]
            vv = self.v[i][:b, :, :start + t]
            a = F.scaled_dot_product_attention(
                q, kk, vv, is_causal=(start == 0 and t > 1), enable_gqa=True)
            x = x + a.transpose(1, 2).reshape(b, t, HIDDEN) @ l["wo"].T
            h = rms_norm(x, l["ffn_norm"])
            x = x + (F.silu(h @ l["wg"].T) * (h @ l["wu"].T)) @ l["wd"].T
        last = rms_norm(x[:, -1], self.norm)
        return (last @ self.lm_head.T).float().cpu()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--json", default="")
    ap.add_argument("--compare", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_torch_bench: no CUDA device", file=sys.stderr)
        return 1
    dev = torch.device("cuda")
    t0 = time.time()
    model = Model(args.layers, dev)
    torch.cuda.synchronize()
    print(f"gpu_torch_bench: torch {torch.__version__}, weights ready in "
          f"{time.time() - t0:.2f} s", file=sys.stderr)
    warm = 2
    model.alloc_cache(64, max(args.context + warm + args.steps + 1, 2048), dev)
    decode = {}
    for bs in (1, 8, 32, 64):
        tok = torch.randint(0, VOCAB, (bs, 1), device=dev)
        for i in range(warm + args.steps):
            if i == warm:
                start = time.time()
            model.forward(tok, args.context + i)
        decode[str(bs)] = bs * args.steps / (time.time() - start)
        print(f"gpu_torch_bench: decode batch {bs}: {decode[str(bs)]:.1f} "
              f"tokens/s", file=sys.stderr)
    prefill = {}
    for n in (512, 2048):
        tok = torch.randint(0, VOCAB, (1, n), device=dev)
        model.forward(tok, 0)
        start = time.time()
        for _ in range(2):
            model.forward(tok, 0)
        prefill[str(n)] = 2 * n / (time.time() - start)
        print(f"gpu_torch_bench: prefill {n} tokens: {prefill[str(n)]:.1f} "
              f"tokens/s", file=sys.stderr)
    out = {"engine": "torch-eager", "torch": torch.__version__,
           "device": torch.cuda.get_device_name(), "layers": args.layers,
           "decode_tok_s": decode, "prefill_tok_s": prefill}
    if args.compare:
        with open(args.compare) as f:
            ours = json.load(f)
        out["ratio_tpserve_over_torch"] = {
            "decode": {k: ours["decode_tok_s"][k] / v
                       for k, v in decode.items()},
            "prefill": {k: ours["prefill_tok_s"][k] / v
                        for k, v in prefill.items()},
        }
    text = json.dumps(out)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
