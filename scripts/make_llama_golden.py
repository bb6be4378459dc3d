#!/usr/bin/env python3
"""Records llama.cpp's own outputs on the default model, to check tpserve's
engine against: for each prompt, the prompt token ids (llama.cpp's
tokenization, so the test isolates the forward pass), llama.cpp's greedy
continuation of 64 tokens with the top-2 logit margin at each step, the
logits of the first generated position (the top 32 and 32 fixed ids), and
the top 32 logits of later steps (LATER_STEPS: decode steps, one token at a
time, after the prompt's batched step).

llama.cpp comes from PyPI's llama-cpp-python, built from its source:
  CMAKE_BUILD_PARALLEL_LEVEL=2 pip install --no-binary llama-cpp-python \\
      llama-cpp-python==0.3.36
Usage: scripts/make_llama_golden.py MODEL.gguf  -> tests/golden/llama_cpp_greedy.json
"""
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village,",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Translate to French: I like cheese.",
]
STEPS = 64
FIXED_IDS = list(range(0, 49152, 1537))[:32]
LATER_STEPS = [1, 2, 3, 63]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    llm = Llama(model_path=sys.argv[1], n_ctx=512, n_threads=2, n_batch=512,
                verbose=False)
    cases = []
    for text in PROMPTS:
        llm.reset()
        prompt = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.eval(prompt)
        tokens, margins, first, later = [], [], None, []
        for step in range(STEPS):
            # The last position's logits, straight from llama.cpp.
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)
            if step == 0:
                top = np.argsort(-logits)[:32]
                first = {"top_ids": [int(i) for i in top],
                         "top_logits": [float(logits[i]) for i in top],
                         "fixed_ids": FIXED_IDS,
                         "fixed_logits": [float(logits[i]) for i in FIXED_IDS]}
            if step in LATER_STEPS:
                top = np.argsort(-logits)[:32]
                later.append({"step": step, "top_ids": [int(i) for i in top],
                              "top_logits": [float(logits[i]) for i in top]})
            order = np.argsort(-logits)
            margins.append(float(logits[order[0]] - logits[order[1]]))
            token = int(order[0])
            tokens.append(token)
            llm.eval([token])
        cases.append({"text": text, "prompt": prompt, "greedy": tokens,
                      "margins": margins, "first_step": first,
                      "later_steps": later})
        print(repr(text), "->", repr(llm.detokenize(tokens).decode(errors="replace")))
    path = os.path.join(HERE, "..", "tests", "golden", "llama_cpp_greedy.json")
    with open(path, "w") as f:
        json.dump({"model": "SmolLM2-135M-Instruct.Q4_1.gguf",
                   "llama_cpp_python": "0.3.36", "cases": cases}, f, indent=0)
    print("wrote", path)


if __name__ == "__main__":
    main()
