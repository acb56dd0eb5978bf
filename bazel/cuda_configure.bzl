"""Detects a local CUDA toolkit so CUDA targets build where it exists and vanish where not."""

def _cuda_configure_impl(ctx):
    root = ctx.os.environ.get("CUDA_HOME", "/usr/local/cuda")
    nvcc = ctx.path(root + "/bin/nvcc")
    nccl = ctx.path(root + "/include/nccl.h")
    available = nvcc.exists
    ctx.file("BUILD.bazel", "exports_files(['defs.bzl'])\n")
    ctx.file("defs.bzl", "\n".join([
        "CUDA_AVAILABLE = %s" % available,
        "NCCL_AVAILABLE = %s" % (available and nccl.exists),
        "CUDA_ROOT = %r" % root,
        "",
    ]))

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_HOME"],
    local = True,
)
