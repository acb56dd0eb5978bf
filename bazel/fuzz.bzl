"""Fuzz smoke tests built with clang's libFuzzer, ASan and UBSan.

Bazel here builds C++ with g++, which has no libFuzzer. So `skein_fuzz_test` adds a genrule
that compiles the fuzz target with the system clang++ (cached like any build output; it
rebuilds only when a source changes), and an `sh_test` that fuzzes the binary for a short time
from a seed corpus and fails on any crash, sanitizer report, leak or timeout. Crashing inputs
are saved as test outputs (bazel-testlogs/<package>/<name>/test.outputs/).

Usage (in a BUILD file):

    load("//bazel:fuzz.bzl", "skein_fuzz_test")

    skein_fuzz_test(
        name = "pth_reader_fuzz_test",
        srcs = ["pth_reader_fuzz.cc"],           # defines LLVMFuzzerTestOneInput
        lib_srcs = ["pth_reader.cc", ...],       # library .cc (or .proto) files compiled in
        hdrs = glob(["*.h"]),                    # every project header those files include
        pkg_config = ["absl_statusor", ...],     # link flags from pkg-config
        linkopts = ["-lz"],                      # extra link flags
        seeds = ["testdata/a.pth"],              # seed files, copied into the corpus
        seed_generator = ":fuzz_seeds",          # optional binary run as `gen CORPUS_DIR`
        max_total_time = 15,                     # seconds of fuzzing
        per_file_copts = {                       # extra flags for some of the sources
            "//kernels/cpu:kernels_avx2.cc": ["-mavx2", "-mfma", "-mf16c"],
        },
    )

Sources are compiled with `clang++ -std=c++20 -O1 -fsanitize=fuzzer,address,undefined
-fno-sanitize-recover=all -I<repository root>`, so they include project headers by their
repository path as usual. Project headers must be listed in `hdrs` (Bazel only exposes
declared files). A `.proto` in `lib_srcs` is run through protoc (imports resolved from proto/,
as in bazel/proto.bzl) and its message code compiled in, so library code that includes
"skein/.../x.pb.h" can be fuzzed without reaching into the proto packages' private genrules.
Without clang++ the genrule builds a stand-in that prints why and records
the test as skipped, so `bazel build //...` and `bazel test //...` keep working on machines
without clang.
Run longer with tools/fuzz.sh (every target, N minutes each, a persistent corpus; see
docs/testing.md), or by hand: bazel run //pkg:<name>_runner -- --max-total-time 600 --corpus DIR
(seeds included), or bazel run //pkg:<name>_fuzzer -- -max_total_time=600 CORPUS_DIR.
"""

def _source_arg(src, per_file_copts):
    """The fuzz_build.sh argument for `src`: its path(s), or `path::flag,flag` (one file)."""
    flags = per_file_copts.get(src)
    if not flags:
        return "$(locations %s)" % src
    for f in flags:
        if "," in f or " " in f or "'" in f:
            fail("per_file_copts flag %r for %s may not contain ',', ' ' or a quote" % (f, src))
    return "'$(location %s)::%s'" % (src, ",".join(flags))

def skein_fuzz_test(
        name,
        srcs,
        lib_srcs = [],
        hdrs = [],
        pkg_config = [],
        linkopts = [],
        seeds = [],
        seed_generator = None,
        max_total_time = 15,
        max_len = 65536,
        per_file_copts = {},
        size = "medium",
        tags = [],
        **kwargs):
    """Declares `name` (an sh_test), `name + "_fuzzer"` (the libFuzzer binary) and
    `name + "_runner"` (the test's run as an sh_binary, for tools/fuzz.sh).

    Args:
      name: test name.
      srcs: the fuzz target source(s), defining LLVMFuzzerTestOneInput.
      lib_srcs: library sources compiled and linked with the target.
      hdrs: headers the sources include.
      pkg_config: pkg-config package names whose --libs are linked.
      linkopts: extra linker flags, e.g. ["-lz"].
      seeds: files copied into the seed corpus.
      seed_generator: optional executable label, run with the corpus directory as its only
        argument to write more seeds.
      max_total_time: seconds to fuzz.
      max_len: largest input libFuzzer generates, in bytes.
      per_file_copts: {source label: [flags]} for sources that need their own flags (the
        per-ISA kernels); each must be one of `srcs` or `lib_srcs` and name a single file.
      size: the test size.
      tags: test tags; "fuzz" is added.
      **kwargs: passed to sh_test (e.g. visibility, timeout).
    """
    for src in per_file_copts:
        if src not in srcs + lib_srcs:
            fail("per_file_copts names %s, which is not in srcs or lib_srcs" % src)
    fuzzer = name + "_fuzzer"
    native.genrule(
        name = fuzzer + "_build",
        testonly = True,
        srcs = srcs + lib_srcs + hdrs,
        outs = [fuzzer],
        tools = ["//bazel:fuzz_build.sh"],
        cmd = "$(location //bazel:fuzz_build.sh) $@ '%s' '%s' %s" % (
            " ".join(pkg_config),
            " ".join(linkopts),
            " ".join([_source_arg(s, per_file_copts) for s in srcs + lib_srcs]),
        ),
        tags = ["fuzz"],
        message = "Compiling fuzz target %s with clang++" % fuzzer,
    )
    native.filegroup(name = name + "_seeds", srcs = seeds, testonly = True)
    data = [":" + fuzzer, ":" + name + "_seeds"]
    args = [
        "--fuzzer",
        "$(rootpath :%s)" % fuzzer,
        "--max-total-time",
        str(max_total_time),
        "--max-len",
        str(max_len),
    ]
    if seeds:
        args += ["--seeds", "$(rootpaths :%s_seeds)" % name]
    if seed_generator:
        data.append(seed_generator)
        args += ["--seed-generator", "$(rootpath %s)" % seed_generator]
    native.sh_test(
        name = name,
        srcs = ["//bazel:fuzz_runner.sh"],
        args = args,
        data = data,
        size = size,
        tags = tags + ["fuzz"],
        **kwargs
    )

    # The same run outside the test runner, for longer runs with a corpus that persists
    # (tools/fuzz.sh): bazel run //pkg:<name>_runner -- --max-total-time 600 --corpus DIR.
    # Built only when asked for.
    native.sh_binary(
        name = name + "_runner",
        testonly = True,
        srcs = ["//bazel:fuzz_runner.sh"],
        args = args,
        data = data,
        tags = ["fuzz", "manual"],
        visibility = kwargs.get("visibility"),
    )
