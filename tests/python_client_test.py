#!/usr/bin/env python3
"""The public API from a client we did not write: Python stubs generated
with grpcio-tools from the committed protos/tpserve/v1/inference.proto,
plain `grpc`, and the standard health and reflection services, against a
real `tpserve serve --tp 1`.

Environment:
  TPSERVE_BIN     the tpserve binary (required)
  TPSERVE_MODEL   the model (default: the default model in .cache/models)
  TPSERVE_READY_TIMEOUT  seconds to wait for the ready line (default 180)

Run from the repository root with the python of scripts/python-env.sh:
  TPSERVE_BIN=build/release/cli/tpserve \\
    "$(scripts/python-env.sh | tail -n 1)" tests/python_client_test.py
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from google.protobuf import descriptor_pool

PROTO_ROOT = "protos"
PROTO = "tpserve/v1/inference.proto"
DEFAULT_MODEL = ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
CALL_TIMEOUT_S = 120

pb = None  # tpserve.v1.inference_pb2, generated in setUpClass
pb_grpc = None  # tpserve.v1.inference_pb2_grpc


def log(msg):
    print(f"[python_client_test] {msg}", flush=True)


def generate_stubs(out_dir):
    """Runs grpc_tools.protoc on the committed proto; imports the result."""
    from grpc_tools import protoc
    import importlib.resources

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", PROTO]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({rc}): {' '.join(args)}")
    sys.path.insert(0, out_dir)
    global pb, pb_grpc
    from tpserve.v1 import inference_pb2, inference_pb2_grpc
    pb, pb_grpc = inference_pb2, inference_pb2_grpc


class Server:
    """`tpserve serve` as a child process; address from its ready line."""

    def __init__(self, binary, model):
        cmd = [binary, "serve", "--model", model, "--tp", "1",
               "--listen", "127.0.0.1:0", "--threads", "2"]
        log("starting: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.ready = threading.Event()
        self.address = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        # Drains stdout for the server's whole life so it never blocks.
        prefix = "tpserve ready on "
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith(prefix) and self.address is None:
                self.address = line[len(prefix):].strip()
                self.ready.set()
        self.ready.set()  # EOF: wake the waiter; address stays None.

    def wait_ready(self, timeout):
        if not self.ready.wait(timeout):
            raise TimeoutError(f"no ready line within {timeout} s; stdout: {self.lines}")
        if self.address is None:
            raise RuntimeError(f"server exited ({self.proc.poll()}) before its ready "
                               f"line; stdout: {self.lines}")
        return self.address

    def stop(self, timeout=60):
        """SIGTERM, then the exit code (SIGKILL after timeout: returns None)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def greedy_request(text, max_tokens=16, **kwargs):
    return pb.GenerateRequest(text=text, max_tokens=max_tokens,
                              sampling=pb.SamplingParameters(temperature=0.0),
                              **kwargs)


class PythonClientTest(unittest.TestCase):
    """Methods are numbered: they run in order, SIGTERM last."""

    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("TPSERVE_BIN")
        if not binary:
            raise unittest.SkipTest("TPSERVE_BIN is not set")
        model = os.environ.get("TPSERVE_MODEL") or DEFAULT_MODEL
        if not os.path.exists(model):
            raise unittest.SkipTest(f"model {model} not found (scripts/fetch-model.sh)")
        cls.stub_dir = tempfile.mkdtemp(prefix="tpserve-pystubs-")
        generate_stubs(cls.stub_dir)
        log(f"generated Python stubs for {PROTO} in {cls.stub_dir}")
        cls.server = Server(binary, model)
        timeout = float(os.environ.get("TPSERVE_READY_TIMEOUT", "180"))
        try:
            cls.address = cls.server.wait_ready(timeout)
        except Exception:
            cls.server.stop(10)
            shutil.rmtree(cls.stub_dir, ignore_errors=True)
            raise
        log(f"server ready on {cls.address}")
        cls.channel = grpc.insecure_channel(cls.address)
        grpc.channel_ready_future(cls.channel).result(timeout=30)
        cls.stub = pb_grpc.InferenceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        if cls.server.proc.poll() is None:
            log("stopping the server (left running by a failed test)")
            cls.server.stop(10)
        shutil.rmtree(cls.stub_dir, ignore_errors=True)

    def test_01_model_info(self):
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=CALL_TIMEOUT_S)
        log(f"GetModelInfo: name={info.name!r} arch={info.architecture} "
            f"layers={info.num_layers} vocab={info.vocab_size} "
            f"weights={info.weight_type} serving_tp={info.serving_tp} "
            f"kv_cache_tokens={info.kv_cache_tokens}")
        self.assertEqual(info.num_layers, 30)
        self.assertEqual(info.architecture, "llama")
        self.assertEqual(info.format, "gguf")
        self.assertEqual(info.vocab_size, 49152)
        self.assertEqual(info.serving_tp, 1)
        self.assertGreater(info.kv_cache_tokens, 0)

    def test_02_tokenize_detokenize(self):
        text = "The capital of France is"
        ids = list(self.stub.Tokenize(pb.TokenizeRequest(text=text),
                                      timeout=CALL_TIMEOUT_S).token_ids)
        log(f"Tokenize({text!r}) = {ids}")
        self.assertTrue(ids, "no token ids")
        self.assertTrue(all(0 <= t < 49152 for t in ids), ids)
        back = self.stub.Detokenize(pb.DetokenizeRequest(token_ids=ids),
                                    timeout=CALL_TIMEOUT_S).text
        self.assertEqual(back, text)
        # The prompt Generate sees has the same tokens.
        reply = self.stub.Generate(greedy_request(text, max_tokens=1),
                                   timeout=CALL_TIMEOUT_S)
        self.assertEqual(reply.usage.prompt_tokens, len(ids))

    def test_03_generate(self):
        reply = self.stub.Generate(greedy_request("The capital of France is"),
                                   timeout=CALL_TIMEOUT_S)
        log(f"Generate: {reply.text!r} finish={pb.FinishReason.Name(reply.finish_reason)} "
            f"usage=({reply.usage.prompt_tokens} prompt, "
            f"{reply.usage.completion_tokens} completion, "
            f"ttft {reply.usage.time_to_first_token_ms:.1f} ms)")
        self.assertIn("Paris", reply.text)
        self.assertNotEqual(reply.finish_reason, pb.FINISH_REASON_UNSPECIFIED)
        self.assertTrue(reply.request_id, "the server names a request id")
        self.assertEqual(reply.usage.completion_tokens, len(reply.token_ids))
        self.assertLessEqual(len(reply.token_ids), 16)

    def test_04_generate_stream_matches_unary(self):
        request = greedy_request("The capital of France is", request_id="py-stream-1")
        unary = self.stub.Generate(request, timeout=CALL_TIMEOUT_S)
        messages = list(self.stub.GenerateStream(request, timeout=CALL_TIMEOUT_S))
        log(f"GenerateStream: {len(messages)} messages, deltas "
            f"{[m.text for m in messages]}")
        self.assertGreaterEqual(len(messages), 1)
        text = "".join(m.text for m in messages)
        ids = [t for m in messages for t in m.token_ids]
        self.assertEqual(text, unary.text)
        self.assertEqual(ids, list(unary.token_ids))
        last = messages[-1]
        self.assertNotEqual(last.finish_reason, pb.FINISH_REASON_UNSPECIFIED,
                            "the last message has finish_reason")
        self.assertEqual(last.finish_reason, unary.finish_reason)
        self.assertTrue(last.HasField("usage"), "the last message has usage")
        self.assertEqual(last.usage.completion_tokens, len(ids))
        self.assertEqual(last.usage.prompt_tokens, unary.usage.prompt_tokens)
        for m in messages[:-1]:
            self.assertEqual(m.finish_reason, pb.FINISH_REASON_UNSPECIFIED,
                             "only the last message has finish_reason")
        for m in messages:
            self.assertEqual(m.request_id, "py-stream-1")

    def test_05_bad_requests_are_invalid_argument(self):
        cases = {
            "temperature": pb.GenerateRequest(
                text="x", max_tokens=4,
                sampling=pb.SamplingParameters(temperature=-1.0)),
            "no prompt": pb.GenerateRequest(max_tokens=4),
            "top_p": pb.GenerateRequest(
                text="x", max_tokens=4, sampling=pb.SamplingParameters(top_p=1.5)),
            "token id": pb.GenerateRequest(
                token_ids=pb.TokenIds(ids=[49152]), max_tokens=4),
            "max_tokens": pb.GenerateRequest(text="x", max_tokens=-1),
        }
        for name, request in cases.items():
            for rpc in ("Generate", "GenerateStream"):
                with self.subTest(case=name, rpc=rpc):
                    with self.assertRaises(grpc.RpcError) as caught:
                        call = getattr(self.stub, rpc)(request, timeout=CALL_TIMEOUT_S)
                        if rpc == "GenerateStream":
                            list(call)
                    err = caught.exception
                    log(f"{rpc} with bad {name}: {err.code()} {err.details()!r}")
                    self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)
                    self.assertTrue(err.details(), "the error says what is wrong")

    def test_06_health_serving(self):
        health = health_pb2_grpc.HealthStub(self.channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""),
                             timeout=CALL_TIMEOUT_S)
        log(f"grpc.health.v1 Check: "
            f"{health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
        self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)

    def test_07_reflection(self):
        # Raw ServerReflectionInfo: list the services.
        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        replies = list(stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            timeout=CALL_TIMEOUT_S))
        services = [s.name for r in replies for s in r.list_services_response.service]
        log(f"reflection list_services: {services}")
        self.assertIn("tpserve.v1.Inference", services)
        self.assertIn("grpc.health.v1.Health", services)
        # A client with no .proto can learn the methods from the server.
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))
        service = pool.FindServiceByName("tpserve.v1.Inference")
        methods = sorted(m.name for m in service.methods)
        log(f"reflection: tpserve.v1.Inference methods {methods}")
        for m in ("Generate", "GenerateStream", "Tokenize", "Detokenize", "GetModelInfo"):
            self.assertIn(m, methods)
        stream = service.methods_by_name["GenerateStream"]
        self.assertTrue(stream.server_streaming)
        self.assertEqual(stream.input_type.full_name, "tpserve.v1.GenerateRequest")

    def test_99_sigterm_exits_zero(self):
        start = time.monotonic()
        code = self.server.stop(timeout=60)
        log(f"SIGTERM: exit code {code} after {time.monotonic() - start:.1f} s")
        self.assertEqual(code, 0, "tpserve serve exits 0 after SIGTERM")


if __name__ == "__main__":
    unittest.main(verbosity=2)
