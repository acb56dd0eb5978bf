"""CUDA libraries built with the local nvcc (see cuda_configure.bzl).

Only call these under `if CUDA_AVAILABLE:` (from @local_config_cuda//:defs.bzl), so that a
machine without a CUDA toolkit does not see the targets at all.
"""

load("@local_config_cuda//:defs.bzl", "CUDA_ROOT")

# sm_80 (A100), sm_89 (L4/L40), sm_90 (H100/H200); PTX for newer GPUs.
CUDA_ARCH_FLAGS = [
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_89,code=sm_89",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
]

def cuda_library(
        name,
        srcs,
        hdrs = [],
        deps = [],
        nvcc_flags = [],
        linkopts = [],
        nvcc_hdrs = [],
        **kwargs):
    """Compiles .cu files with nvcc into objects and wraps them in a cc_library.

    Args:
      name: the cc_library's name.
      srcs: .cu files.
      hdrs: headers (for C++ users and for the .cu files; included from the workspace root).
      nvcc_hdrs: more headers the .cu files include (private ones, or other packages' headers
        whose libraries are in deps).
      deps: cc_library dependencies of C++ users.
      nvcc_flags: extra nvcc flags.
      linkopts: extra link flags (cudart is always linked).
      **kwargs: passed to the cc_library (visibility, ...).
    """
    objs = []
    for src in srcs:
        obj = src[:-len(".cu")] + ".o"
        native.genrule(
            name = name + "_" + src.replace("/", "_").replace(".", "_"),
            srcs = [src] + hdrs + nvcc_hdrs,
            outs = [obj],
            cmd = " ".join([
                CUDA_ROOT + "/bin/nvcc",
                "-std=c++17 -O3 -Xcompiler -fPIC -Xcompiler -Wall,-Wextra,-Werror",
                "-Werror=all-warnings",
                "-I.",
                " ".join(CUDA_ARCH_FLAGS),
                " ".join(nvcc_flags),
                "-c $(location " + src + ") -o $@",
            ]),
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps,
        linkopts = [
            "-L" + CUDA_ROOT + "/lib64",
            "-Wl,-rpath," + CUDA_ROOT + "/lib64",
            "-lcudart",
        ] + linkopts,
        **kwargs
    )
