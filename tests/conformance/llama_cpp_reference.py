#!/usr/bin/env python3
"""Records llama.cpp's own outputs on the conformance models (make_models.py),
through the `llama_cpp` bindings of the llama-cpp-python sdist loading the
libllama.so that scripts/build-llama-cpp.sh built (LLAMA_CPP_LIB_PATH).

For every model and prompt: the prompt's token ids (llama.cpp's
tokenization, so the engine test isolates the forward pass), then STEPS
greedy steps, each with the chosen token, llama.cpp's top-2 logit margin,
the TOP largest logits (ids and values) and the logits of FIXED ids spread
over the vocabulary. The prompt runs as one batch (n_batch = n_ubatch =
n_ctx), generated tokens one at a time, as tpserve's engine does.

Usage: llama_cpp_reference.py MODELS_DIR   (reads MODELS_DIR/models.json,
writes MODELS_DIR/<row>/<row>-<quant>.llama_cpp.json)
"""
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

STEPS = 32
TOP = 16
N_FIXED = 32
N_CTX = 2304
LONG_TOKENS = 2080
SHORT_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village,",
]


def long_text():
    """Deterministic filler of well over LONG_TOKENS tokens in any of the
    vocabularies: numbered sentences from a fixed word list."""
    words = ("river stone lantern orchard copper violet harbor meadow signal "
             "winter garden ladder silver thunder quiet market basket planet "
             "candle forest mirror window engine pocket shadow bridge").split()
    rng = np.random.default_rng(7)
    sentences = []
    for i in range(700):
        n = 6 + int(rng.integers(0, 6))
        picked = " ".join(words[int(j)] for j in rng.integers(0, len(words), n))
        sentences.append(f"{i}. The {picked}.")
    return " ".join(sentences)


def fixed_ids(vocab):
    return [int(i) for i in np.linspace(0, vocab - 1, N_FIXED).round()]


def run(path):
    llm = Llama(model_path=path, n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX,
                n_threads=2, verbose=False)
    vocab = llm.n_vocab()
    fixed = fixed_ids(vocab)
    cases = []
    prompts = [(t, None) for t in SHORT_PROMPTS] + [(long_text(), LONG_TOKENS)]
    for text, limit in prompts:
        llm.reset()
        # add_bos=True: the model's own BOS/EOS rules (llama_tokenize's
        # add_special); special=False as for user text.
        prompt = llm.tokenize(text.encode(), add_bos=True, special=False)
        if limit is not None:
            if len(prompt) < limit:
                sys.exit(f"{path}: long prompt is only {len(prompt)} tokens")
            prompt = prompt[:limit]
        llm.eval(prompt)
        steps = []
        for _ in range(STEPS):
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(vocab,)).copy()
            order = np.argsort(-logits, kind="stable")[:TOP]
            token = int(order[0])
            steps.append({
                "token": token,
                "margin": float(logits[order[0]] - logits[order[1]]),
                "top_ids": [int(i) for i in order],
                "top_logits": [float(logits[i]) for i in order],
                "fixed_logits": [float(logits[i]) for i in fixed],
                "std": float(logits.std()),
            })
            llm.eval([token])
        cases.append({"text": text if limit is None else f"<long {limit}>",
                      "prompt": [int(t) for t in prompt], "steps": steps})
    del llm
    return {"llama_cpp_python": llama_cpp.__version__, "vocab_size": vocab,
            "fixed_ids": fixed, "n_ctx": N_CTX, "cases": cases}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    with open(os.path.join(out, "models.json")) as f:
        manifest = json.load(f)
    for name, row in manifest["rows"].items():
        for quant, file in row["files"].items():
            path = os.path.join(out, name, file)
            ref = run(path)
            margins = [s["margin"] for c in ref["cases"] for s in c["steps"]]
            stds = [s["std"] for c in ref["cases"] for s in c["steps"]]
            print(f"{name} {quant}: margins median {np.median(margins):.2f} "
                  f"min {min(margins):.3f}, {sum(m < 0.5 for m in margins)}/"
                  f"{len(margins)} below 0.5; logit std {np.mean(stds):.2f}",
                  flush=True)
            with open(path[:-len(".gguf")] + ".llama_cpp.json", "w") as f:
                json.dump(ref, f)


if __name__ == "__main__":
    main()
