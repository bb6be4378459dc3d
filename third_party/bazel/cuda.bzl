"""tp_cuda_library: compiles .cu files with the system nvcc.

The toolkit is found by tp_cuda_configure (@local_config_cuda). Without it, or
with `--define=cuda=0`, the targets are incompatible and thus skipped by
`bazel build //...` together with everything that depends on them.
"""

load("@local_config_cuda//:defs.bzl", "CUDA_ENABLED", "CUDA_PATH")
load("@rules_cc//cc:defs.bzl", "cc_library")

# Hopper (H100/H200). Extend with more -gencode pairs for other GPUs.
_NVCC_ARCH_FLAGS = ["-arch=sm_90"]

def _nvcc_archive_impl(ctx):
    nvcc = CUDA_PATH + "/bin/nvcc"
    cc_ctx = cc_common.merge_cc_infos(
        cc_infos = [d[CcInfo] for d in ctx.attr.deps],
    ).compilation_context

    args = ["-std=c++17", "-O2", "-Xcompiler", "-fPIC"] + _NVCC_ARCH_FLAGS

    # Workspace-relative includes, for source and generated headers.
    root = ctx.label.workspace_root
    args += ["-I" + (root or "."), "-I" + "/".join([ctx.bin_dir.path, root])]
    args += ["-I" + d for d in cc_ctx.includes.to_list()]
    # nvcc has no -iquote; plain -I finds the same headers.
    args += ["-I" + d for d in cc_ctx.quote_includes.to_list()]
    for d in cc_ctx.system_includes.to_list():
        args += ["-isystem", d]
    args += ["-D" + d for d in cc_ctx.defines.to_list()]
    args += ctx.attr.copts

    inputs = depset(ctx.files.hdrs, transitive = [cc_ctx.headers])
    objs = []
    for src in ctx.files.srcs:
        obj = ctx.actions.declare_file("_objs/%s/%s.o" % (
            ctx.label.name,
            src.basename[:-len(".cu")],
        ))
        ctx.actions.run(
            executable = nvcc,
            arguments = args + ["-c", src.path, "-o", obj.path],
            inputs = depset([src], transitive = [inputs]),
            outputs = [obj],
            mnemonic = "NvccCompile",
            progress_message = "Compiling CUDA %s" % src.short_path,
            # nvcc finds the host compiler (gcc) on PATH.
            use_default_shell_env = True,
        )
        objs.append(obj)

    archive = ctx.actions.declare_file("lib%s.a" % ctx.label.name)
    ctx.actions.run(
        executable = nvcc,
        arguments = ["-lib", "-o", archive.path] + [o.path for o in objs],
        inputs = objs,
        outputs = [archive],
        mnemonic = "NvccArchive",
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([archive]))]

_nvcc_archive = rule(
    implementation = _nvcc_archive_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu"]),
        "hdrs": attr.label_list(allow_files = True),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
    },
)

def tp_cuda_compatible():
    """target_compatible_with for targets that need CUDA (see module doc)."""
    incompatible = [str(Label("//third_party/bazel:incompatible"))]
    if not CUDA_ENABLED:
        return incompatible
    return select({
        str(Label("//third_party/bazel:cuda_disabled")): incompatible,
        "//conditions:default": [],
    })

def tp_if_cuda(if_true, if_false = []):
    """`if_true` when CUDA is built (toolkit present, no --define=cuda=0)."""
    if not CUDA_ENABLED:
        return if_false
    return select({
        str(Label("//third_party/bazel:cuda_disabled")): if_false,
        "//conditions:default": if_true,
    })

def tp_cuda_library(name, srcs, hdrs = [], cc_srcs = [], deps = [], copts = [], cu_hdrs = [], **kwargs):
    """A cc_library whose .cu srcs are compiled by nvcc into a static archive.

    Args:
      name: target name; use it like any cc_library.
      srcs: .cu files. They may include workspace-relative headers, CUDA
        headers and the headers of `deps`.
      hdrs: public headers (plain C++, usable from .cc files).
      cc_srcs: host C++ sources of the same library (e.g. cuBLAS wrappers).
      deps: cc_library deps, used both for nvcc include paths and linking.
      copts: extra nvcc flags.
      cu_hdrs: headers only .cu files include (e.g. .cuh device code).
      **kwargs: passed to the cc_library (visibility, tags, ...).
    """
    compat = tp_cuda_compatible()
    _nvcc_archive(
        name = name + "_nvcc",
        srcs = srcs,
        hdrs = hdrs + cu_hdrs,
        deps = deps,
        copts = copts,
        target_compatible_with = compat,
        visibility = ["//visibility:private"],
    )
    # The device objects in a library of their own that the host sources
    # depend on: a static link line lists dependents first, so the host
    # objects' references to the kernels' launchers resolve.
    cc_library(
        name = name + "_device",
        srcs = [":" + name + "_nvcc"],
        deps = deps + ["@system//:cudart"],
        linkstatic = True,  # Only a prebuilt archive, no .so to make.
        target_compatible_with = compat,
        visibility = ["//visibility:private"],
    )
    cc_library(
        name = name,
        srcs = cc_srcs,
        hdrs = hdrs,
        deps = [":" + name + "_device"] + deps + ["@system//:cudart"],
        linkstatic = True,
        target_compatible_with = compat,
        **kwargs
    )
