#!/usr/bin/env python3
"""Serving under load: N concurrent clients against tpserve (gRPC
GenerateStream) and against llama.cpp's server (llama-cpp-python's
OpenAI-compatible /v1/completions, streamed as SSE), one side at a time, the
same request mix on both. Prints, per N, aggregate output tokens/s, time to
first token (TTFT) p50/p99 and inter-token latency (ITL) p50/p99, and the
ratio tpserve / llama.cpp for each.

Each client sends REQUESTS requests one after another, cycling through a
fixed set of short prompts (client c starts at prompt c), greedy, exactly
MAX_TOKENS output tokens: tpserve gets ignore_eos; llama.cpp's server has
none, but greedy decoding of these prompts runs past 64 tokens without an
end-of-generation token (--llama-eog-ids biases such ids by -100 where it
would not). llama.cpp gets repeat_penalty 1 (its server's default is 1.1).
Every reply is checked to have finished by length; a reply that did not
counts as failed.

TTFT: from sending the request to the first message that carries output.
ITL: gaps between output messages after the first, each divided by the
tokens the message carries (tpserve says; llama-cpp-python streams one
token per chunk).

Run by bench/serve.sh, which starts both servers; needs the python of
scripts/python-env.sh.
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpserve_client import load_stubs  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "Here is a short list of tips for writing clean code:",
    "The three laws of thermodynamics say that",
]


class Result:
    __slots__ = ("send", "first", "last", "end", "tokens", "gaps", "text", "ok",
                 "error", "step_seqs")

    def __init__(self):
        self.send = time.perf_counter()
        self.first = None
        self.last = None
        self.end = None
        self.tokens = 0
        self.gaps = []
        self.text = []
        self.ok = False
        self.error = None
        self.step_seqs = 0

    def output(self, now, tokens, text):
        if tokens <= 0:
            return
        if self.first is None:
            self.first = now
        else:
            self.gaps.extend([(now - self.last) / tokens] * tokens)
        self.last = now
        self.tokens += tokens
        self.text.append(text)


def tpserve_request(stub, pb, prompt, max_tokens, request_id):
    r = Result()
    request = pb.GenerateRequest(
        request_id=request_id, text=prompt, max_tokens=max_tokens, ignore_eos=True,
        sampling=pb.SamplingParameters(temperature=0.0))
    try:
        for m in stub.GenerateStream(request, timeout=600):
            r.output(time.perf_counter(), len(m.token_ids), m.text)
            if m.finish_reason != pb.FINISH_REASON_UNSPECIFIED:
                r.ok = (m.finish_reason == pb.FINISH_REASON_LENGTH
                        and m.usage.completion_tokens == max_tokens
                        and r.tokens == max_tokens)
                r.step_seqs = m.usage.max_step_sequences
                if not r.ok:
                    r.error = (f"finish {pb.FinishReason.Name(m.finish_reason)}, "
                               f"{r.tokens} tokens")
    except grpc.RpcError as e:
        r.error = f"{e.code()}: {e.details()}"
    r.end = time.perf_counter()
    return r


class LlamaClient:
    """One keep-alive HTTP connection; streamed completions over SSE."""

    def __init__(self, base_url, eog_ids):
        u = urllib.parse.urlparse(base_url)
        self.host, self.port = u.hostname, u.port
        self.bias = {str(t): -100.0 for t in eog_ids} or None
        self.conn = None

    def request(self, prompt, max_tokens):
        r = Result()
        # The server's repeat_penalty default is 1.1: 1 (off) for plain
        # greedy, like tpserve's default.
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0,
                "repeat_penalty": 1.0, "stream": True}
        if self.bias:
            body["logit_bias"] = self.bias
        body = json.dumps(body)
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            r.send = time.perf_counter()
            self.conn.request("POST", "/v1/completions", body,
                              {"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            if resp.status != 200:
                r.error = f"HTTP {resp.status}: {resp.read()[:200]!r}"
                self.conn.close()
                self.conn = None
                r.end = time.perf_counter()
                return r
            finish = None
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue  # blank separators, ": ping" comments
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                choice = json.loads(data)["choices"][0]
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                    if choice.get("text"):
                        r.output(time.perf_counter(), 1, choice["text"])
                else:
                    r.output(time.perf_counter(), 1, choice.get("text", ""))
            resp.read()
            r.ok = finish == "length"
            if not r.ok:
                r.error = f"finish {finish}, {r.tokens} chunks"
            else:
                # finish "length" means exactly max_tokens were generated,
                # whatever the chunking.
                r.tokens = max_tokens
        except (OSError, http.client.HTTPException, ValueError) as e:
            r.error = f"{type(e).__name__}: {e}"
            if self.conn is not None:
                self.conn.close()
            self.conn = None
        r.end = time.perf_counter()
        return r

    def close(self):
        if self.conn is not None:
            self.conn.close()


def run_clients(make_client, n, requests, max_tokens):
    """n threads, each `requests` requests in a row; returns results, wall s."""
    results = [[] for _ in range(n)]
    barrier = threading.Barrier(n + 1)

    def client(c):
        send, close = make_client(c)
        barrier.wait()
        try:
            for i in range(requests):
                results[c].append(send(PROMPTS[(c + i) % len(PROMPTS)], max_tokens,
                                       f"bench-{n}-{c}-{i}"))
        finally:
            close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return [r for rs in results for r in rs], wall


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(results, wall):
    ok = [r for r in results if r.ok]
    ttft = [(r.first - r.send) * 1000 for r in ok if r.first is not None]
    itl = [g * 1000 for r in ok for g in r.gaps]
    return {
        "requests": len(results),
        "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if r.error})[:3],
        "wall_s": wall,
        "tok_s": sum(r.tokens for r in ok) / wall if wall > 0 else 0.0,
        "ttft_p50": percentile(ttft, 50), "ttft_p99": percentile(ttft, 99),
        "itl_p50": percentile(itl, 50), "itl_p99": percentile(itl, 99),
        "max_step_seqs": max((r.step_seqs for r in ok), default=0),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tpserve", required=True, help="tpserve HOST:PORT")
    ap.add_argument("--llama", required=True, help="llama.cpp server URL")
    ap.add_argument("--llama-eog-ids", default="",
                    help="comma-separated end-of-generation token ids to bias away")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=8, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="(for the report)")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    clients = [int(x) for x in args.clients.split(",") if x]
    eog = [int(x) for x in args.llama_eog_ids.split(",") if x]

    pb, pb_grpc = load_stubs()
    channel = grpc.insecure_channel(args.tpserve, options=[
        ("grpc.max_concurrent_streams", 1024)])
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = pb_grpc.InferenceStub(channel)
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)

    def tpserve_client(c):
        def send(prompt, max_tokens, request_id):
            return tpserve_request(stub, pb, prompt, max_tokens, request_id)
        return send, lambda: None

    def llama_client(c):
        cl = LlamaClient(args.llama, eog)
        return (lambda prompt, max_tokens, _id: cl.request(prompt, max_tokens)), cl.close

    sides = (("tpserve", tpserve_client), ("llama.cpp", llama_client))
    # Warm-up: every prompt once on each side; also the greedy texts to
    # compare.
    texts = {}
    for name, make in sides:
        send, close = make(0)
        texts[name] = []
        for i, p in enumerate(PROMPTS):
            r = send(p, args.max_tokens, f"warmup-{i}")
            if not r.ok:
                sys.exit(f"{name}: warm-up request failed: {r.error} (a reply "
                         "shorter than --max-tokens: pass --llama-eog-ids)")
            texts[name].append("".join(r.text))
        close()
    same = sum(a == b for a, b in zip(texts["tpserve"], texts["llama.cpp"]))
    print(f"model {info.name or '?'} ({info.weight_type}), {args.threads} threads; "
          f"{len(PROMPTS)} prompts x {args.max_tokens} greedy tokens; "
          f"{args.requests} requests per client", flush=True)
    print(f"greedy outputs identical on both sides for {same} of {len(PROMPTS)} prompts",
          flush=True)
    for i, (a, b) in enumerate(zip(texts["tpserve"], texts["llama.cpp"])):
        if a != b:
            n = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]),
                     min(len(a), len(b)))
            print(f"  prompt {i}: first difference at character {n}: "
                  f"tpserve {a[n:n + 30]!r} vs llama.cpp {b[n:n + 30]!r}", flush=True)

    report = []
    for n in clients:
        row = {"clients": n}
        for name, make in sides:
            results, wall = run_clients(make, n, args.requests, args.max_tokens)
            s = summarize(results, wall)
            row[name] = s
            print(f"  N={n:<3d} {name:9s} {s['requests']} requests in {wall:6.1f} s: "
                  f"{s['tok_s']:7.1f} tok/s, TTFT p50 {s['ttft_p50']:7.1f} ms "
                  f"p99 {s['ttft_p99']:7.1f} ms, ITL p50 {s['itl_p50']:6.1f} ms "
                  f"p99 {s['itl_p99']:6.1f} ms"
                  + (f", max {s['max_step_seqs']} seqs/step" if name == "tpserve" else "")
                  + (f", {s['failed']} FAILED: {s['errors']}" if s["failed"] else ""),
                  flush=True)
        report.append(row)

    # Ratio tpserve / llama.cpp; the last column says which way favours
    # tpserve.
    metrics = (("tok_s", "output tok/s", "> 1"), ("ttft_p50", "TTFT p50 ms", "< 1"),
               ("ttft_p99", "TTFT p99 ms", "< 1"), ("itl_p50", "ITL p50 ms", "< 1"),
               ("itl_p99", "ITL p99 ms", "< 1"))
    print()
    print("| clients | metric | tpserve | llama.cpp | ratio | tpserve better when |")
    print("| ---: | --- | ---: | ---: | ---: | --- |")
    for row in report:
        for key, label, better in metrics:
            a, b = row["tpserve"][key], row["llama.cpp"][key]
            ratio = a / b if b else float("nan")
            print(f"| {row['clients']} | {label} | {a:.1f} | {b:.1f} | {ratio:.2f} | "
                  f"{better} |")
    failed = sum(row[s]["failed"] for row in report for s in ("tpserve", "llama.cpp"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "requests_per_client": args.requests,
                       "max_tokens": args.max_tokens, "prompts": PROMPTS,
                       "rows": report}, f, indent=1)
    channel.close()
    if failed:
        sys.exit(f"{failed} requests failed (a reply shorter than --max-tokens: "
                 "pass --llama-eog-ids, TPSERVE_BENCH_EOG_BIAS=1 in bench/serve.sh)")


if __name__ == "__main__":
    main()
