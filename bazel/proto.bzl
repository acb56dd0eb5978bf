"""C++ code generation for .proto files with the system protoc and grpc_cpp_plugin."""

load("//bazel:copts.bzl", "SKEIN_DEPS_COPTS")

def cc_grpc_proto_library(name, srcs, deps = [], grpc = True, visibility = None):
    """Generates message (and service) C++ code for `srcs` and wraps it in a cc_library.

    Args:
      name: the cc_library's name.
      srcs: .proto files in this package; imports are resolved from the workspace root and
        from the `proto/` directory, so `import "skein/v1/common.proto"` works.
      deps: other cc_grpc_proto_library targets whose protos these import.
      grpc: also generate service stubs.
      visibility: of the cc_library.
    """
    stems = [s[:-len(".proto")] for s in srcs]
    outs = []
    for stem in stems:
        outs += [stem + ".pb.h", stem + ".pb.cc"]
        if grpc:
            outs += [stem + ".grpc.pb.h", stem + ".grpc.pb.cc"]

    grpc_flags = "--grpc_out=$(GENDIR)/proto --plugin=protoc-gen-grpc=$$(which grpc_cpp_plugin)" if grpc else ""
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = " ".join([
            "mkdir -p $(GENDIR)/proto &&",
            "protoc -Iproto --cpp_out=$(GENDIR)/proto",
            grpc_flags,
        ] + ["$(location %s)" % s for s in srcs]),
    )
    native.filegroup(name = name + "_srcs", srcs = srcs, visibility = visibility)
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        # Generated code includes "skein/v1/x.pb.h"; strip the proto/ prefix to match.
        strip_include_prefix = "/proto",
        copts = SKEIN_DEPS_COPTS,
        deps = deps + ["//third_party/system:grpc", "//third_party/system:protobuf"],
        visibility = visibility,
    )
