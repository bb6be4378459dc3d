"""tp_cc_grpc_library: C++ protobuf + gRPC code from the system protoc.

Uses /usr/bin/protoc and /usr/bin/grpc_cpp_plugin (Debian protobuf-compiler
and protobuf-compiler-grpc), so no protobuf/gRPC source repositories need to
be fetched. Generated code must be used with the matching system libraries
(@system//:protobuf, @system//:grpc++).
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

_PROTOC = "/usr/bin/protoc"
_GRPC_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def tp_cc_grpc_library(
        name,
        srcs,
        deps = [],
        grpc = True,
        grpc_include = None,
        extra_srcs = [],
        extra_hdrs = [],
        **kwargs):
    """Generates and compiles <x>.pb.{h,cc} (+ <x>.grpc.pb.{h,cc}).

    Proto paths are relative to the calling package, which acts as the proto
    import root: in package //protos, srcs = ["demo/v1/demo.proto"] is
    imported as "demo/v1/demo.proto" and its code is included as
    "demo/v1/demo.pb.h". Imports of other tp_cc_grpc_library targets are not
    supported; put protos that import each other into one target. Well-known
    types come from /usr/include/google/protobuf.

    Args:
      name: name of the resulting cc_library.
      srcs: .proto files, relative to the package.
      deps: extra cc_library deps.
      grpc: also run grpc_cpp_plugin and link gRPC.
      grpc_include: a header (import-root relative) the generated
        .grpc.pb.h includes, e.g. SerializationTraits specializations.
      extra_srcs: hand-written sources compiled into the library.
      extra_hdrs: hand-written headers of the library.
      **kwargs: passed to the cc_library (visibility, tags, ...).
    """
    exts = [".pb.h", ".pb.cc"]
    if grpc:
        exts += [".grpc.pb.h", ".grpc.pb.cc"]
    outs = [src[:-len(".proto")] + ext for src in srcs for ext in exts]

    # Exec-root-relative path of this package, i.e. the proto import root.
    root = native.package_name() or "."
    if native.repository_name() != "@":
        root = "external/%s/%s" % (native.repository_name()[1:], root)

    cmd = [
        _PROTOC,
        "-I" + root,
        "-I/usr/include",
        "--cpp_out=$(RULEDIR)",
    ]
    if grpc:
        cmd += [
            "--plugin=protoc-gen-grpc=" + _GRPC_PLUGIN,
            "--grpc_out=" +
            ("additional_header_includes=%s:" % grpc_include if grpc_include else "") +
            "$(RULEDIR)",
        ]
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = outs,
        cmd = " ".join(cmd + ["$(SRCS)"]),
        message = "Generating C++ protobuf/gRPC code",
        visibility = ["//visibility:private"],
    )

    cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")] + extra_srcs,
        hdrs = [o for o in outs if o.endswith(".h")] + extra_hdrs,
        # "demo/v1/demo.pb.h" relative to this package (source and bin trees).
        includes = ["."],
        deps = deps + (["@system//:grpc++"] if grpc else []) +
               ["@system//:protobuf"],
        **kwargs
    )
