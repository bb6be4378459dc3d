#!/usr/bin/env python3
"""The OpenAI-compatible HTTP door from clients we did not write: the
official `openai` Python package (pinned in scripts/python-env.sh) for the
API as applications use it, and raw `httpx` for what that client would never
send (broken JSON, NaN, invalid UTF-8, a 10 MB body, dropped connections),
against a real `tpserve serve --tp 1 --http-listen 127.0.0.1:0`.

Environment:
  TPSERVE_BIN     the tpserve binary (required)
  TPSERVE_MODEL   the model (default: the default model in .cache/models)
  TPSERVE_VOCAB_DIR  llama.cpp's vocabulary files (scripts/fetch-test-data.sh;
                  default .cache/testdata/llama-vocab), for the SentencePiece
                  model the test writes
  TPSERVE_READY_TIMEOUT  seconds to wait for the ready line (default 180)

Run from the repository root with the python of scripts/python-env.sh:
  TPSERVE_BIN=build/release/cli/tpserve \\
    "$(scripts/python-env.sh | tail -n 1)" tests/http_server_test.py
"""
import concurrent.futures
import json
import os
import random
import signal
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import httpx
import openai

DEFAULT_MODEL = ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
TIMEOUT_S = 120
PROMPT = "The capital of France is"


def log(msg):
    print(f"[http_server_test] {msg}", flush=True)


class Server:
    """`tpserve serve` as a child process; addresses from its stdout lines."""

    def __init__(self, extra_args=(), model=None):
        binary = os.environ.get("TPSERVE_BIN")
        if not binary:
            raise unittest.SkipTest("TPSERVE_BIN is not set")
        self.model = model or os.environ.get("TPSERVE_MODEL") or DEFAULT_MODEL
        if not os.path.exists(self.model):
            raise unittest.SkipTest(f"model {self.model} not found (scripts/fetch-model.sh)")
        cmd = [binary, "serve", "--model", self.model, "--tp", "1",
               "--listen", "127.0.0.1:0", "--threads", "2",
               "--http-listen", "127.0.0.1:0", *extra_args]
        log("starting: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.http = None
        self.metrics = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        timeout = float(os.environ.get("TPSERVE_READY_TIMEOUT", "180"))
        if not self.ready.wait(timeout) or self.http is None:
            self.stop(10)
            raise RuntimeError(f"the server did not become ready; stdout: {self.lines}")
        self.url = f"http://{self.http}"
        log(f"HTTP on {self.http}")

    def _read(self):
        # Drains stdout for the server's whole life so it never blocks.
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("tpserve http on "):
                self.http = line[len("tpserve http on "):].strip()
            if line.startswith("tpserve metrics on "):
                self.metrics = line[len("tpserve metrics on "):].strip()
            if line.startswith("tpserve ready on "):
                self.ready.set()
        self.ready.set()

    def stop(self, timeout=60):
        """SIGTERM, then the exit code (SIGKILL after timeout: None)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def write_synthetic_spm_model(vocab_path, out_path):
    """A random-weight Llama speaking the vocabulary of `vocab_path` (a
    vocabulary-only GGUF, e.g. llama.cpp's ggml-vocab-llama-spm.gguf): its
    tokenizer.* entries copied as they are, fixed random Q8_0 weights (hidden
    64, 2 heads of 32, 1 KV head, FFN 128, 2 layers). It generates arbitrary
    but fixed tokens."""
    with open(vocab_path, "rb") as f:
        src = f.read()
    assert src[:4] == b"GGUF", vocab_path
    _, _, n_kv = struct.unpack_from("<IQQ", src, 4)
    pos = 24
    scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_string(p):
        (n,) = struct.unpack_from("<Q", src, p)
        return p + 8 + n

    copied, n_vocab = [], 0
    for _ in range(n_kv):
        start = pos
        (klen,) = struct.unpack_from("<Q", src, pos)
        key = src[pos + 8:pos + 8 + klen].decode()
        pos += 8 + klen
        (vtype,) = struct.unpack_from("<I", src, pos)
        pos += 4
        if vtype == 8:
            pos = skip_string(pos)
        elif vtype == 9:
            etype, count = struct.unpack_from("<IQ", src, pos)
            pos += 12
            if etype == 8:
                for _ in range(count):
                    pos = skip_string(pos)
            else:
                pos += count * scalar[etype]
            if key == "tokenizer.ggml.tokens":
                n_vocab = count
        else:
            pos += scalar[vtype]
        if key.startswith("tokenizer."):
            copied.append(src[start:pos])
    assert n_vocab > 0

    def kv_string(key, value):
        k, v = key.encode(), value.encode()
        return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v

    def kv_u32(key, value):
        k = key.encode()
        return struct.pack("<Q", len(k)) + k + struct.pack("<II", 4, value)

    def kv_f32(key, value):
        k = key.encode()
        return struct.pack("<Q", len(k)) + k + struct.pack("<If", 6, value)

    h, ffn, q, kv = 64, 128, 64, 32
    kvs = [kv_string("general.architecture", "llama"),
           kv_string("general.name", "synthetic-llama-spm"),
           kv_u32("llama.context_length", 256), kv_u32("llama.embedding_length", h),
           kv_u32("llama.block_count", 2), kv_u32("llama.feed_forward_length", ffn),
           kv_u32("llama.attention.head_count", 2),
           kv_u32("llama.attention.head_count_kv", 1),
           kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
           kv_f32("llama.rope.freq_base", 10000.0)] + copied
    rng = random.Random(1234)
    scale = struct.pack("<e", 0.0006)  # Weights ~ U(-0.077, 0.076).

    def q8_0(n):  # Blocks of 32: an f16 scale, 32 int8 quants.
        return b"".join(scale + rng.randbytes(32) for _ in range(n // 32))

    ones = struct.pack(f"<{h}f", *([1.0] * h))
    tensors = [("token_embd.weight", [h, n_vocab], 8, q8_0(h * n_vocab)),
               ("output_norm.weight", [h], 0, ones),
               ("output.weight", [h, n_vocab], 8, q8_0(h * n_vocab))]
    for i in range(2):
        p = f"blk.{i}."
        tensors += [(p + "attn_norm.weight", [h], 0, ones),
                    (p + "ffn_norm.weight", [h], 0, ones),
                    (p + "attn_q.weight", [h, q], 8, q8_0(h * q)),
                    (p + "attn_k.weight", [h, kv], 8, q8_0(h * kv)),
                    (p + "attn_v.weight", [h, kv], 8, q8_0(h * kv)),
                    (p + "attn_output.weight", [q, h], 8, q8_0(q * h)),
                    (p + "ffn_gate.weight", [h, ffn], 8, q8_0(h * ffn)),
                    (p + "ffn_up.weight", [h, ffn], 8, q8_0(h * ffn)),
                    (p + "ffn_down.weight", [ffn, h], 8, q8_0(ffn * h))]
    infos, data = b"", b""
    for name, dims, ggml_type, payload in tensors:
        data += b"\0" * (-len(data) % 32)
        n = name.encode()
        infos += (struct.pack("<Q", len(n)) + n + struct.pack("<I", len(dims)) +
                  struct.pack(f"<{len(dims)}Q", *dims) +
                  struct.pack("<IQ", ggml_type, len(data)))
        data += payload
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    out += b"\0" * (-len(out) % 32) + data
    with open(out_path, "wb") as f:
        f.write(out)


def assert_error_object(test, response, status):
    """An OpenAI error: {"error": {"message", "type", "param", "code"}}."""
    test.assertEqual(response.status_code, status, response.text)
    test.assertEqual(response.headers["content-type"], "application/json")
    error = response.json()["error"]
    test.assertIsInstance(error["message"], str)
    test.assertTrue(error["message"])
    test.assertIsInstance(error["type"], str)
    test.assertIn("param", error)
    test.assertIn("code", error)
    return error


def sse_events(response):
    """The data payloads of an SSE response, checking the framing."""
    events = []
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        events.append(line[len("data: "):])
    return events


class HttpServerTest(unittest.TestCase):
    """One server for the functional and error cases; numbered to run in
    order, SIGTERM last."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.model = os.path.basename(cls.server.model)
        cls.client = openai.OpenAI(base_url=cls.server.url + "/v1", api_key="unused",
                                   timeout=TIMEOUT_S, max_retries=0)
        cls.http = httpx.Client(base_url=cls.server.url, timeout=TIMEOUT_S)

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        cls.client.close()
        if cls.server.proc.poll() is None:
            cls.server.stop(10)

    def greedy(self, prompt=PROMPT, max_tokens=16, **kw):
        return self.client.completions.create(model=self.model, prompt=prompt,
                                              max_tokens=max_tokens, temperature=0, **kw)

    def test_01_ready_lines_and_health(self):
        http_line = next(i for i, l in enumerate(self.server.lines)
                         if l.startswith("tpserve http on "))
        ready_line = next(i for i, l in enumerate(self.server.lines)
                          if l.startswith("tpserve ready on "))
        self.assertLess(http_line, ready_line)
        r = self.http.get("/health")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json(), {"status": "ok"})

    def test_02_models(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [self.model])
        self.assertEqual(models.data[0].object, "model")
        self.assertEqual(self.client.models.retrieve(self.model).id, self.model)
        with self.assertRaises(openai.NotFoundError):
            self.client.models.retrieve("no-such-model")

    def test_03_completion(self):
        c = self.greedy()
        log(f"completion: {c.choices[0].text!r} usage={c.usage}")
        self.assertTrue(c.id.startswith("cmpl-"))
        self.assertEqual(c.object, "text_completion")
        self.assertEqual(c.model, self.model)
        self.assertIn("Paris", c.choices[0].text)
        self.assertIn(c.choices[0].finish_reason, ("length", "stop"))
        self.assertGreater(c.usage.prompt_tokens, 0)
        self.assertGreater(c.usage.completion_tokens, 0)
        self.assertLessEqual(c.usage.completion_tokens, 16)
        self.assertEqual(c.usage.total_tokens,
                         c.usage.prompt_tokens + c.usage.completion_tokens)
        # Without max_tokens, OpenAI's default of 16.
        d = self.client.completions.create(model=self.model, prompt=PROMPT,
                                           temperature=0, extra_body={"ignore_eos": True})
        self.assertEqual(d.usage.completion_tokens, 16)

    def test_04_completion_stream_equals_whole(self):
        whole = self.greedy()
        chunks = list(self.greedy(stream=True))
        self.assertGreater(len(chunks), 2)
        for ch in chunks:
            self.assertEqual(ch.object, "text_completion")
            self.assertEqual(ch.id, chunks[0].id)
        self.assertEqual("".join(ch.choices[0].text for ch in chunks),
                         whole.choices[0].text)
        self.assertEqual(chunks[-1].choices[0].finish_reason,
                         whole.choices[0].finish_reason)
        self.assertTrue(all(ch.choices[0].finish_reason is None for ch in chunks[:-1]))

    def test_05_chat_whole_and_stream(self):
        messages = [{"role": "system", "content": "You are terse."},
                    # (Without "Answer in one sentence." the model's greedy
                    # answer, llama.cpp's too, is not about Paris.)
                    {"role": "user", "content": [{"type": "text", "text": "What is the capital of France? Answer in one sentence."}]}]
        whole = self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=24, temperature=0)
        log(f"chat: {whole.choices[0].message.content!r}")
        self.assertTrue(whole.id.startswith("chatcmpl-"))
        self.assertEqual(whole.object, "chat.completion")
        self.assertEqual(whole.choices[0].message.role, "assistant")
        self.assertIn("Paris", whole.choices[0].message.content)
        chunks = list(self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=24, temperature=0,
            stream=True))
        self.assertEqual(chunks[0].object, "chat.completion.chunk")
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(chunks[-1].choices[0].finish_reason,
                         whole.choices[0].finish_reason)

    def test_06_stream_wire_format(self):
        # The exact SSE framing, read raw: "data: {...}" events separated by
        # blank lines, "data: [DONE]" last, usage chunk just before it.
        body = {"model": self.model, "prompt": PROMPT, "max_tokens": 6,
                "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True}}
        with self.http.stream("POST", "/v1/completions", json=body) as r:
            self.assertEqual(r.status_code, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/event-stream"))
            raw = r.read().decode()
        self.assertTrue(raw.startswith("data: {"), raw[:50])
        self.assertTrue(raw.endswith("data: [DONE]\n\n"), raw[-50:])
        events = [e[len("data: "):] for e in raw.split("\n\n") if e]
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        usage = chunks[-1]
        self.assertEqual(usage["choices"], [])
        self.assertEqual(usage["usage"]["completion_tokens"], 6)
        for ch in chunks[:-1]:
            self.assertIsNone(ch["usage"])
            self.assertEqual(set(ch), {"id", "object", "created", "model", "choices", "usage"})
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "length")

    def test_07_usage_in_streams(self):
        whole = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": "Hello"}],
            max_tokens=8, temperature=0)
        chunks = list(self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": "Hello"}],
            max_tokens=8, temperature=0, stream=True,
            stream_options={"include_usage": True}))
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)
        self.assertEqual(chunks[-1].usage.completion_tokens, whole.usage.completion_tokens)
        # Without the option: no usage chunk.
        plain = list(self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": "Hello"}],
            max_tokens=8, temperature=0, stream=True))
        self.assertTrue(all(ch.choices for ch in plain))
        self.assertTrue(all(ch.usage is None for ch in plain))

    def test_08_n_and_seeds(self):
        kw = dict(model=self.model, prompt="Once upon a time", max_tokens=12,
                  temperature=1.0, seed=1234, n=3, extra_body={"ignore_eos": True})
        a = self.client.completions.create(**kw)
        b = self.client.completions.create(**kw)
        texts = [c.text for c in sorted(a.choices, key=lambda c: c.index)]
        log(f"n=3 seed=1234: {texts}")
        self.assertEqual(sorted(c.index for c in a.choices), [0, 1, 2])
        self.assertGreater(len(set(texts)), 1, "seed+i gives different choices")
        self.assertEqual(texts, [c.text for c in sorted(b.choices, key=lambda c: c.index)])
        self.assertEqual(a.usage.completion_tokens, 36)
        self.assertEqual(a.usage.prompt_tokens, b.usage.prompt_tokens)
        # Streamed, the same choices, interleaved by index.
        pieces = {0: "", 1: "", 2: ""}
        finished = set()
        for ch in self.client.completions.create(stream=True, **kw):
            for c in ch.choices:
                pieces[c.index] += c.text
                if c.finish_reason:
                    finished.add(c.index)
        self.assertEqual([pieces[i] for i in range(3)], texts)
        self.assertEqual(finished, {0, 1, 2})
        # Choice i of seed s is choice 0 of seed s + i.
        single = self.client.completions.create(**{**kw, "n": 1, "seed": 1235})
        self.assertEqual(single.choices[0].text, texts[1])

    def test_09_prompt_list(self):
        c = self.client.completions.create(model=self.model, prompt=[PROMPT, "1, 2, 3,"],
                                           max_tokens=4, temperature=0)
        self.assertEqual(len(c.choices), 2)
        by_index = {ch.index: ch.text for ch in c.choices}
        self.assertEqual(by_index[0], self.greedy(max_tokens=4).choices[0].text)

    def test_10_stop(self):
        text = self.greedy(max_tokens=16).choices[0].text
        word = text.split()[1]  # A word past the first.
        cut = text[:text.index(word)]
        c = self.greedy(max_tokens=16, stop=[word])
        self.assertEqual(c.choices[0].text, cut)
        self.assertEqual(c.choices[0].finish_reason, "stop")
        s = "".join(ch.choices[0].text for ch in self.greedy(max_tokens=16, stop=word, stream=True))
        self.assertEqual(s, cut)

    def test_11_logprobs(self):
        c = self.greedy(max_tokens=5, logprobs=2, extra_body={"ignore_eos": True})
        lp = c.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 5)
        self.assertEqual(len(lp.token_logprobs), 5)
        self.assertEqual(len(lp.text_offset), 5)
        self.assertTrue(all(x <= 0 for x in lp.token_logprobs))
        self.assertTrue(all(len(t) == 2 for t in lp.top_logprobs))
        # Greedy: the token drawn is the most likely one.
        for tok, top in zip(lp.token_logprobs, lp.top_logprobs):
            self.assertAlmostEqual(tok, max(top.values()), places=4)
        chat = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4, temperature=0, logprobs=True, top_logprobs=3)
        content = chat.choices[0].logprobs.content
        self.assertGreater(len(content), 0)
        self.assertTrue(all(len(t.top_logprobs) == 3 for t in content))
        self.assertEqual(bytes(content[0].bytes).decode("utf-8", "replace"), content[0].token)

    def test_12_error_cases_keep_serving(self):
        url = "/v1/completions"
        cases = [
            ("invalid JSON", dict(content=b'{"prompt": "x", '), 400),
            ("not an object", dict(content=b'[1, 2]'), 400),
            ("bare NaN", dict(content=b'{"prompt": "x", "temperature": NaN}'), 400),
            ("NaN as a string", dict(json={"prompt": "x", "temperature": "NaN"}), 400),
            ("temperature out of range", dict(json={"prompt": "x", "temperature": 1e9}), 400),
            ("wrong type", dict(json={"prompt": "x", "max_tokens": "16"}), 400),
            ("wrong prompt type", dict(json={"prompt": {"text": "x"}}), 400),
            ("negative max_tokens", dict(json={"prompt": "x", "max_tokens": -1}), 400),
            ("too many tokens", dict(json={"prompt": "x", "max_tokens": 10**7}), 400),
            ("n too large", dict(json={"prompt": "x", "n": 1000}), 400),
            ("invalid UTF-8", dict(content=b'{"prompt": "a\xff\xfeb"}'), 400),
            ("unknown model", dict(json={"prompt": "x", "model": "gpt-4"}), 404),
            ("token id out of range", dict(json={"prompt": [1, 10**8]}), 400),
            ("a 10 MB body", dict(content=b'{"prompt": "' + b"a" * (10 << 20) + b'"}'), 413),
        ]
        for name, kwargs, status in cases:
            with self.subTest(name):
                r = self.http.post(url, headers={"content-type": "application/json"}, **kwargs)
                error = assert_error_object(self, r, status)
                log(f"{name}: {status} {error['message'][:100]!r} param={error['param']}")
        chat_cases = [
            ("messages not a list", {"messages": "hi"}),
            ("image part", {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://x"}}]}]}),
            ("bad role", {"messages": [{"role": "wiz ard\n", "content": "x"}]}),
            ("chat_template_kwargs not an object",
             {"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": [1]}),
            ("chat_template_kwargs replacing messages",
             {"messages": [{"role": "user", "content": "x"}],
              "chat_template_kwargs": {"messages": []}}),
            ("tool call without a function",
             {"messages": [{"role": "user", "content": "x"},
                           {"role": "assistant", "tool_calls": [{"id": "c1"}]}]}),
            ("logprobs not a bool", {"messages": [{"role": "user", "content": "x"}],
                                     "logprobs": 3}),
        ]
        for name, body in chat_cases:
            with self.subTest(name):
                assert_error_object(self, self.http.post("/v1/chat/completions", json=body), 400)
        self.assertEqual(assert_error_object(
            self, self.http.get("/v1/nope"), 404)["type"], "invalid_request_error")
        assert_error_object(self, self.http.get("/v1/completions"), 405)
        # The official client maps them to its exceptions.
        with self.assertRaises(openai.BadRequestError) as e:
            self.greedy(max_tokens=-5)
        self.assertEqual(e.exception.body["param"], "max_tokens")
        with self.assertRaises(openai.NotFoundError):
            self.client.completions.create(model="gpt-4", prompt="x")
        # ... and the server still serves.
        self.assertIn("Paris", self.greedy().choices[0].text)
        self.assertEqual(self.http.get("/health").status_code, 200)

    def test_14_tool_history_and_template_kwargs(self):
        # A conversation with an assistant tool call (no content) and the
        # tool's result: the model's template renders it (SmolLM2's ChatML
        # prints roles and contents, so the call itself adds no tokens).
        call = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
        messages = [{"role": "user", "content": "Weather in Paris?"}, call,
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}]
        with_call = self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=4, temperature=0,
            extra_body={"chat_template_kwargs": {"enable_thinking": False}})
        plain = self.client.chat.completions.create(
            model=self.model, max_tokens=4, temperature=0,
            messages=[messages[0], {"role": "assistant", "content": ""}, messages[2]])
        log(f"tool history: {with_call.usage.prompt_tokens} prompt tokens")
        self.assertEqual(with_call.usage.prompt_tokens, plain.usage.prompt_tokens)
        self.assertEqual(with_call.choices[0].message.content,
                         plain.choices[0].message.content)

    def test_13_concurrent_streams(self):
        solo = self.greedy(max_tokens=12).choices[0].text

        def one(_):
            return "".join(ch.choices[0].text for ch in self.greedy(max_tokens=12, stream=True))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(8)))
        self.assertEqual(results, [solo] * 8)

    def test_99_sigterm_exits_zero(self):
        start = time.monotonic()
        code = self.server.stop(timeout=60)
        log(f"SIGTERM: exit code {code} after {time.monotonic() - start:.1f} s")
        self.assertEqual(code, 0)


class SentencePieceTest(unittest.TestCase):
    """Issue 14: with a SentencePiece vocabulary the first generated token lost
    its leading space ("The capital of France is" + "▁Paris" gave "Paris",
    where llama.cpp and vLLM give " Paris"). A random-weight model speaking
    Llama 2's vocabulary generates arbitrary tokens; whatever they are, the
    text must be what they decode to after the prompt, unary and streamed."""

    PROMPTS = ["The capital of France is", "Le milliard de téléchargements",
               "Once upon a time", "My favourite fruit is",
               "The three primary colours are", "def fibonacci(n):"]

    @classmethod
    def setUpClass(cls):
        vocab_dir = os.environ.get("TPSERVE_VOCAB_DIR") or ".cache/testdata/llama-vocab"
        vocab = os.path.join(vocab_dir, "ggml-vocab-llama-spm.gguf")
        if not os.path.exists(vocab):
            raise unittest.SkipTest(f"{vocab} not found (scripts/fetch-test-data.sh)")
        cls.tmp = tempfile.TemporaryDirectory()
        model = os.path.join(cls.tmp.name, "synthetic-llama-spm.gguf")
        write_synthetic_spm_model(vocab, model)
        cls.server = Server(model=model)
        cls.model = os.path.basename(model)
        cls.http = httpx.Client(base_url=cls.server.url, timeout=TIMEOUT_S)

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        if cls.server.proc.poll() is None:
            cls.server.stop(10)
        cls.tmp.cleanup()

    def test_text_is_the_decode_in_context(self):
        first_spaces = 0
        for prompt in self.PROMPTS:
            with self.subTest(prompt=prompt):
                body = {"model": self.model, "prompt": prompt, "max_tokens": 12,
                        "temperature": 0, "logprobs": 0}
                r = self.http.post("/v1/completions", json=body)
                self.assertEqual(r.status_code, 200, r.text)
                choice = r.json()["choices"][0]
                text, tokens = choice["text"], choice["logprobs"]["tokens"]
                log(f"{prompt!r} -> {text!r} {tokens}")
                self.assertTrue(tokens)
                # Each token's own bytes (llama.cpp's token_to_piece): after
                # a prompt, their concatenation is the text, first space
                # included, when every token is whole UTF-8 and plain text.
                plain = all("\ufffd" not in t and t not in ("<s>", "</s>", "<unk>")
                            for t in tokens)
                if plain:
                    self.assertEqual(text, "".join(tokens))
                if tokens[0].startswith(" "):
                    first_spaces += 1
                    self.assertTrue(text.startswith(" "), text)
                # Streamed deltas join to the same text.
                events = []
                with self.http.stream("POST", "/v1/completions",
                                      json={**body, "stream": True}) as s:
                    self.assertEqual(s.status_code, 200)
                    events = sse_events(s)
                self.assertEqual(events[-1], "[DONE]")
                parts = [json.loads(e)["choices"][0]["text"] for e in events[:-1]
                         if json.loads(e)["choices"]]
                self.assertEqual("".join(parts), text)
                if tokens[0].startswith(" "):
                    # The first delta with text carries the space.
                    self.assertTrue(next(p for p in parts if p).startswith(" "))
                    # A stop string that begins with the space matches at once.
                    stop = self.http.post("/v1/completions",
                                          json={**body, "stop": [tokens[0]]}).json()
                    self.assertEqual(stop["choices"][0]["text"], "")
                    self.assertEqual(stop["choices"][0]["finish_reason"], "stop")
        # The weights are fixed: this many prompts start with a "▁" token.
        self.assertGreaterEqual(first_spaces, 2)


LONG = {"prompt": "Write a very long story about a cat.", "max_tokens": 4000,
        "temperature": 0, "ignore_eos": True}


class DisconnectTest(unittest.TestCase):
    """One running sequence and one queue slot: a client that goes away must
    give both back (its generation cancelled, its KV blocks freed), or the
    requests behind it would never run."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(["--max-step-seqs", "1", "--max-queue", "1",
                             "--drain-seconds", "2",
                             "--metrics-listen", "127.0.0.1:0"])
        cls.model = os.path.basename(cls.server.model)

    @classmethod
    def tearDownClass(cls):
        if cls.server.proc.poll() is None:
            cls.server.stop(10)

    def open_stream(self, body):
        """A streaming request on its own connection, first event read."""
        client = httpx.Client(base_url=self.server.url, timeout=TIMEOUT_S)
        response = client.send(client.build_request("POST", "/v1/completions",
                                                    json={**body, "stream": True}),
                                stream=True)
        self.assertEqual(response.status_code, 200)
        return client, response

    def post_until_not_429(self, body, seconds=10):
        deadline = time.monotonic() + seconds
        while True:
            r = httpx.post(self.server.url + "/v1/completions", json=body, timeout=TIMEOUT_S)
            if r.status_code != 429 or time.monotonic() > deadline:
                return r
            time.sleep(0.1)

    def metric(self, name):
        """The value of an unlabelled series (or the sum of a family's
        series) on the server's /metrics, 0 when absent."""
        text = httpx.get(f"http://{self.server.metrics}/metrics", timeout=TIMEOUT_S).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_for_metric(self, name, predicate, seconds=30):
        """Sync point: polls /metrics until predicate(value) holds."""
        deadline = time.monotonic() + seconds
        while True:
            value = self.metric(name)
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                self.fail(f"{name} stayed at {value}")
            time.sleep(0.02)

    def expect_queue_full(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = httpx.post(self.server.url + "/v1/completions",
                           json={"prompt": "Hi", "max_tokens": 2}, timeout=TIMEOUT_S)
            if r.status_code == 429:
                error = assert_error_object(self, r, 429)
                self.assertIn("queue", error["message"])
                return
            time.sleep(0.05)
        self.fail("the queue never filled up")

    def test_disconnects_free_capacity(self):
        # A runs and holds the only step slot.
        a_client, a = self.open_stream(LONG)
        a_lines = a.iter_lines()
        self.assertTrue(next(a_lines).startswith("data: "))

        # B streams but waits in the queue; C finds the queue full.
        b_client, b = self.open_stream(LONG)
        self.expect_queue_full()
        # B leaves while queued: its queue slot comes back (D is queued,
        # not refused), so cancellation does not need a write to fail.
        b.close()
        b_client.close()
        result = {}
        d_thread = threading.Thread(target=lambda: result.update(
            d=self.post_until_not_429({"prompt": PROMPT, "max_tokens": 8, "temperature": 0})))
        d_thread.start()
        # Sync point: B's cancellation was counted, two more of A's steps
        # ran (the queue gauge is set after each step, so from then on it no
        # longer counts B), and D is queued behind A.
        self.wait_for_metric('tpserve_requests_total{outcome="cancelled"}',
                             lambda v: v >= 1)
        steps = self.metric("tpserve_generated_tokens_total")
        self.wait_for_metric("tpserve_generated_tokens_total",
                             lambda v: v >= steps + 2)
        self.wait_for_metric("tpserve_sequences_waiting", lambda v: v == 1)
        self.assertTrue(d_thread.is_alive(), "D should be waiting behind A")

        # A leaves mid-stream: its slot and KV blocks are freed and D runs.
        start = time.monotonic()
        a.close()
        a_client.close()
        d_thread.join(60)
        self.assertFalse(d_thread.is_alive(), "D never ran: A was not cancelled")
        log(f"D completed {time.monotonic() - start:.1f} s after A disconnected")
        self.assertEqual(result["d"].status_code, 200, result["d"].text)
        self.assertEqual(result["d"].json()["usage"]["completion_tokens"], 8)

        # A non-streaming client that gives up is cancelled too.
        with self.assertRaises(httpx.ReadTimeout):
            httpx.post(self.server.url + "/v1/completions", json=LONG, timeout=2.0)
        start = time.monotonic()
        r = self.post_until_not_429({"prompt": "Hello", "max_tokens": 4}, seconds=5)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertLess(time.monotonic() - start, 30)

        # The official client closing a chat stream early does the same.
        client = openai.OpenAI(base_url=self.server.url + "/v1", api_key="unused",
                               timeout=TIMEOUT_S, max_retries=0)
        stream = client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": "Tell a long story."}],
            max_tokens=4000, stream=True, extra_body={"ignore_eos": True})
        for i, _ in enumerate(stream):
            if i == 3:
                break
        stream.close()
        r = self.post_until_not_429({"prompt": "Hello", "max_tokens": 4})
        self.assertEqual(r.status_code, 200, r.text)
        client.close()

        # SIGTERM with a stream in flight: /health and new requests get 503
        # at once; the stream runs on for --drain-seconds (2), then ends with
        # an error event and [DONE], and the process exits 0.
        a_client, a = self.open_stream(LONG)
        a_lines = a.iter_lines()
        self.assertTrue(next(a_lines).startswith("data: "))
        self.server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while True:
            health = httpx.get(self.server.url + "/health")
            if health.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(health.status_code, 503)
        self.assertEqual(health.json()["status"], "unavailable")
        r = httpx.post(self.server.url + "/v1/completions",
                       json={"prompt": "Hi", "max_tokens": 2})
        assert_error_object(self, r, 503)
        rest = [line for line in a_lines if line]
        self.assertEqual(rest[-1], "data: [DONE]")
        self.assertIn("error", json.loads(rest[-2][len("data: "):]))
        a_client.close()
        self.assertEqual(self.server.proc.wait(30), 0)


class ApiKeyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False)
        cls.keys.write("# test keys\nsk-test-one\nsk-test-two\n")
        cls.keys.close()
        cls.server = Server(["--api-keys-file", cls.keys.name])
        cls.model = os.path.basename(cls.server.model)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(10)
        os.unlink(cls.keys.name)

    def test_keys(self):
        def client(key):
            return openai.OpenAI(base_url=self.server.url + "/v1", api_key=key,
                                 timeout=TIMEOUT_S, max_retries=0)

        ok = client("sk-test-two").completions.create(model=self.model, prompt="Hi", max_tokens=2)
        self.assertEqual(len(ok.choices), 1)
        with self.assertRaises(openai.AuthenticationError):
            client("sk-wrong").completions.create(model=self.model, prompt="Hi", max_tokens=2)
        with self.assertRaises(openai.AuthenticationError):
            client("sk-wrong").models.list()
        r = httpx.post(self.server.url + "/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(assert_error_object(self, r, 401)["code"], "invalid_api_key")
        # Probes need no key.
        self.assertEqual(httpx.get(self.server.url + "/health").status_code, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
