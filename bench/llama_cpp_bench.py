#!/usr/bin/env python3
"""llama.cpp's side of bench/engine.sh: the same measurements as
bench/engine_bench.cc (prefill of 128 tokens, 64 single-sequence decode
steps, 8 sequences decoding together for 32 steps) through llama-cpp-python
built from source, on the same GGUF and thread count. Prints one JSON line.

Usage: bench/llama_cpp_bench.py MODEL.gguf THREADS
"""
import json
import sys
import time

import llama_cpp
from llama_cpp import Llama

PROMPT, DECODE, BATCH, BATCH_STEPS = 128, 64, 8, 32


def main():
    path, threads = sys.argv[1], int(sys.argv[2])
    llm = Llama(model_path=path, n_ctx=2048, n_batch=512, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    vocab = llm.n_vocab()
    prompt = [(i * 7919) % vocab for i in range(PROMPT)]
    best = 1e9
    for _ in range(3):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        best = min(best, time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(DECODE):
        llm.eval([(i * 31) % vocab])
    decode = time.perf_counter() - t

    # 8 new sequences (ids 1..8, positions from 0) in one llama_batch per
    # step (low-level API); llama.cpp needs consecutive positions per seq.
    # The high-level class makes single-sequence contexts: make one for 9.
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_seq_max = 2048, 512, BATCH + 1
    params.n_threads = params.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    batch = llama_cpp.llama_batch_init(BATCH, 0, BATCH)
    t = time.perf_counter()
    for i in range(BATCH_STEPS):
        batch.n_tokens = BATCH
        for s in range(BATCH):
            batch.token[s] = (i * 13 + s) % vocab
            batch.pos[s] = i
            batch.n_seq_id[s] = 1
            batch.seq_id[s][0] = s + 1
            batch.logits[s] = 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")
    batched = time.perf_counter() - t
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    print(json.dumps({"threads": threads, "prefill_tok_s": PROMPT / best,
                      "decode_tok_s": DECODE / decode,
                      "batch8_tok_s": BATCH * BATCH_STEPS / batched}))


if __name__ == "__main__":
    main()
