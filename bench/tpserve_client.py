"""Python stubs of the public API, generated at run time with grpcio-tools
from the committed protos/tpserve/v1/inference.proto (nothing generated is
committed). Needs the python of scripts/python-env.sh.

    from tpserve_client import load_stubs
    pb, pb_grpc = load_stubs()
    stub = pb_grpc.InferenceStub(grpc.insecure_channel(address))
"""
import atexit
import importlib.resources
import os
import shutil
import sys
import tempfile

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROTO = "tpserve/v1/inference.proto"
_stubs = None


def load_stubs():
    """Returns (inference_pb2, inference_pb2_grpc); generated once per process."""
    global _stubs
    if _stubs is not None:
        return _stubs
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="tpserve-pystubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    args = ["grpc_tools.protoc", f"-I{os.path.join(_REPO, 'protos')}",
            f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}",
            os.path.join(_REPO, "protos", _PROTO)]
    if protoc.main(args) != 0:
        raise RuntimeError("grpc_tools.protoc failed: " + " ".join(args))
    sys.path.insert(0, out)
    from tpserve.v1 import inference_pb2, inference_pb2_grpc

    _stubs = (inference_pb2, inference_pb2_grpc)
    return _stubs
