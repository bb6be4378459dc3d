"""Load and soak benchmark of `tpserve serve`, with and without worker kills.

Starts the server itself (so it knows the coordinator's and workers' pids),
sends REQUESTS streaming requests of mixed lengths at CONCURRENCY, and
reports errors (must be 0), throughput, time to first token and inter-token
latency (p50/p99), and the peak memory (VmHWM) and current memory (VmRSS) of
the coordinator and the workers after warm-up and at the end. With
--kill-every S it kills a random worker rank with SIGKILL every S seconds
during the run and reports requests lost (must be 0), how long readiness
took to turn false (detection) and back to true (recovery), and whether
greedy outputs equal those of an undisturbed run.

    python bench/soak.py --tpserve build/release/cli/tpserve \
        --model MODEL.gguf [--tp 3] [--requests 1000] [--concurrency 32] \
        [--kill-every 20]

Needs the python of scripts/python-env.sh (grpcio, grpcio-tools,
grpcio-health-checking).
"""
import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpserve_client import load_stubs  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "Write a short story about a robot who learns to paint.",
    "def quicksort(xs):",
    "List the planets of the solar system in order from the sun:",
    "Explain in one paragraph why the sky is blue.",
    "Translate to French: I would like a cup of coffee, please.",
    "Once upon a time, in a village at the edge of a great forest, there "
    "lived an old woodcutter and his three daughters. Every morning",
    "The three primary colours are",
]


class Server:
    """`tpserve serve` as a child process; parses its stdout lines."""

    def __init__(self, args):
        cmd = [args.tpserve, "serve", "--model", args.model, "--tp",
               str(args.tp), "--listen", "127.0.0.1:0", "--threads",
               str(args.threads), "--max-queue", str(4 * args.concurrency)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.workers = {}
        self.address = None
        self.lock = threading.Lock()
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                m = re.match(r"tpserve worker rank (\d+) pid (\d+) on (\S+)",
                             line)
                if m:
                    with self.lock:
                        self.workers[int(m.group(1))] = int(m.group(2))
                m = re.match(r"tpserve ready on (\S+)", line)
                if m:
                    self.address = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(180) or self.address is None:
            raise SystemExit("the server did not become ready")

    def worker_pids(self):
        with self.lock:
            return dict(self.workers)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def memory_kb(pid):
    """(VmHWM, VmRSS) of a process in KiB, or (0, 0) if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return 0, 0
    hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1))
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))
    return hwm, rss


def memory_snapshot(server):
    snap = {"coordinator": memory_kb(server.proc.pid)}
    for rank, pid in sorted(server.worker_pids().items()):
        snap[f"worker {rank}"] = memory_kb(pid)
    return snap


def make_requests(pb, n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = pb.GenerateRequest(text=rng.choice(PROMPTS),
                               max_tokens=rng.choice([8, 16, 32, 64, 128]),
                               ignore_eos=True, request_id=f"soak-{i}")
        r.sampling.temperature = 0
        out.append(r)
    return out


def run_load(address, pb, pb_grpc, requests, concurrency):
    """Sends every request (streaming) with `concurrency` clients."""
    results = [None] * len(requests)
    next_index = [0]
    lock = threading.Lock()

    def client():
        stub = pb_grpc.InferenceStub(grpc.insecure_channel(address))
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(requests):
                return
            start = time.monotonic()
            times, tokens, error = [], [], None
            try:
                for part in stub.GenerateStream(requests[i], timeout=600):
                    if part.token_ids:
                        times.append(time.monotonic())
                        tokens.extend(part.token_ids)
            except grpc.RpcError as e:
                error = f"{e.code().name}: {e.details()}"
            results[i] = {"start": start, "times": times, "tokens": tokens,
                          "error": error}

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.monotonic() - t0


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summarize(results, seconds):
    errors = [r["error"] for r in results if r["error"]]
    ttft = [r["times"][0] - r["start"] for r in results if r["times"]]
    itl = []
    for r in results:
        itl += [b - a for a, b in zip(r["times"], r["times"][1:])]
    tokens = sum(len(r["tokens"]) for r in results)
    return {"requests": len(results), "errors": len(errors),
            "first_errors": errors[:3], "seconds": seconds,
            "tokens_per_s": tokens / seconds,
            "ttft_p50_ms": 1000 * percentile(ttft, 50),
            "ttft_p99_ms": 1000 * percentile(ttft, 99),
            "itl_p50_ms": 1000 * percentile(itl, 50),
            "itl_p99_ms": 1000 * percentile(itl, 99)}


class Killer:
    """Kills a random worker every `every` s; times readiness transitions."""

    def __init__(self, server, every):
        self.server, self.every = server, every
        self.stop_event = threading.Event()
        self.kills, self.detect, self.recover = 0, [], []
        self.health = health_pb2_grpc.HealthStub(
            grpc.insecure_channel(server.address))
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def serving(self):
        try:
            r = self.health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            return r.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def run(self):
        rng = random.Random(7)
        while not self.stop_event.wait(self.every):
            pids = self.server.worker_pids()
            rank = rng.choice(sorted(pids))
            t0 = time.monotonic()
            os.kill(pids[rank], signal.SIGKILL)
            self.kills += 1
            while self.serving() and time.monotonic() - t0 < 30:
                time.sleep(0.005)
            t1 = time.monotonic()
            while not self.serving() and time.monotonic() - t0 < 120:
                time.sleep(0.02)
            t2 = time.monotonic()
            self.detect.append(t1 - t0)
            self.recover.append(t2 - t0)

    def stop(self):
        self.stop_event.set()
        self.thread.join()


def print_memory(label, before, after):
    print(f"  memory ({label}), MiB   peak after warm-up -> end"
          "   current after warm-up -> end")
    for name in before:
        b, a = before[name], after.get(name, (0, 0))
        print(f"    {name:12s} {b[0] / 1024:8.1f} -> {a[0] / 1024:8.1f}"
              f"        {b[1] / 1024:8.1f} -> {a[1] / 1024:8.1f}")


def print_summary(label, s):
    print(f"  {label}: {s['requests']} requests, errors {s['errors']}, "
          f"{s['seconds']:.1f} s, {s['tokens_per_s']:.1f} output tokens/s")
    print(f"    TTFT p50 {s['ttft_p50_ms']:.0f} ms, p99 "
          f"{s['ttft_p99_ms']:.0f} ms; inter-token p50 "
          f"{s['itl_p50_ms']:.1f} ms, p99 {s['itl_p99_ms']:.1f} ms")
    for e in s["first_errors"]:
        print(f"    error: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tpserve", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tp", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--kill-every", type=float, default=20)
    args = ap.parse_args()
    pb, pb_grpc = load_stubs()
    requests = make_requests(pb, args.requests, seed=1)
    warmup = make_requests(pb, 2 * args.concurrency, seed=2)

    print(f"soak: {args.requests} requests, {args.concurrency} concurrent, "
          f"TP {args.tp}, {args.threads} thread(s) per worker")
    server = Server(args)
    run_load(server.address, pb, pb_grpc, warmup, args.concurrency)
    before = memory_snapshot(server)
    results, seconds = run_load(server.address, pb, pb_grpc, requests,
                                args.concurrency)
    after = memory_snapshot(server)
    calm = summarize(results, seconds)
    print_summary("undisturbed", calm)
    print_memory("undisturbed", before, after)
    baseline = [r["tokens"] for r in results]

    killer = None
    if args.kill_every > 0:
        killer = Killer(server, args.kill_every)
        results, seconds = run_load(server.address, pb, pb_grpc, requests,
                                    args.concurrency)
        killer.stop()
        faulty = summarize(results, seconds)
        lost = faulty["errors"]
        same = sum(1 for r, b in zip(results, baseline) if r["tokens"] == b)
        print_summary(f"a worker killed every {args.kill_every:g} s "
                      f"({killer.kills} kills)", faulty)
        print(f"    requests lost: {lost}; outputs identical to the "
              f"undisturbed run: {same}/{len(results)}")
        if killer.detect:
            print(f"    readiness false after a kill: median "
                  f"{1000 * statistics.median(killer.detect):.0f} ms, max "
                  f"{1000 * max(killer.detect):.0f} ms; ready again: median "
                  f"{statistics.median(killer.recover):.1f} s, max "
                  f"{max(killer.recover):.1f} s")
        print(f"    throughput cost: "
              f"{100 * (1 - faulty['tokens_per_s'] / calm['tokens_per_s']):.0f}%"
              f", TTFT p99 x{faulty['ttft_p99_ms'] / calm['ttft_p99_ms']:.1f}")
    code = server.stop()
    print(f"  server exit status after SIGTERM: {code}")
    bad = calm["errors"] > 0 or (killer is not None and faulty["errors"] > 0)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
