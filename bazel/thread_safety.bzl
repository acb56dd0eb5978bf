"""Clang's thread-safety analysis (-Wthread-safety) as a test.

Bazel here builds C++ with g++, which ignores the ABSL_GUARDED_BY family of annotations. A
`thread_safety_test` has clang check them: a build action runs

    clang++ -std=c++20 -fsyntax-only -Wthread-safety -Wthread-safety-beta -Werror

on every .cc file of `srcs` (two at a time) with the include paths and defines of `deps`, and
writes a report (a status line, then clang's output). The action never fails; the test prints
the report and fails on any diagnostic. Without clang++ the test is recorded as skipped, except
where prerequisites are required (CI=true/1 or SKEIN_REQUIRE_DATA set), where it fails. The
report is an ordinary build output, cached like one: a machine that gains clang reruns the
check once a checked file (or this rule) changes.

Usage (in a BUILD file), one per package that has mutexes:

    load("//bazel:thread_safety.bzl", "thread_safety_test")

    thread_safety_test(
        name = "thread_safety_test",
        srcs = glob(["*.cc", "*.h"]),   # every .cc is checked; headers are inputs
        deps = [":lib", "//third_party/system:gtest"],  # whatever the sources include
        per_file_copts = {"kernels_avx2.cc": "-mavx2 -mfma -mf16c"},
    )
"""

def _thread_safety_test_impl(ctx):
    contexts = [d[CcInfo].compilation_context for d in ctx.attr.deps]
    headers = depset(
        [f for f in ctx.files.srcs if not f.path.endswith(".cc")],
        transitive = [c.headers for c in contexts],
    )
    sources = [f for f in ctx.files.srcs if f.path.endswith(".cc")]
    extra = {}
    for target, flags in ctx.attr.per_file_copts.items():
        for f in target.files.to_list():
            extra[f.path] = flags.split(" ")
    for path in extra:
        if path not in [f.path for f in sources]:
            fail("per_file_copts names %s, which is not a .cc file of srcs" % path)
    report = ctx.actions.declare_file(ctx.label.name + ".report.txt")

    args = ctx.actions.args()
    args.add(report)
    args.add(ctx.attr.jobs)
    args.add_all([
        "-std=c++20",
        "-fsyntax-only",
        "-Wthread-safety",
        "-Wthread-safety-beta",
        "-Werror",
        # Sources include project headers by their repository path.
        "-iquote",
        ".",
    ])
    args.add_all(ctx.attr.copts)
    args.add_all(depset(transitive = [c.defines for c in contexts]), format_each = "-D%s")
    args.add_all(
        depset(transitive = [c.quote_includes for c in contexts]),
        before_each = "-iquote",
    )
    # Generated proto headers live under _virtual_includes (bazel/proto.bzl).
    args.add_all(depset(transitive = [c.includes for c in contexts]), before_each = "-I")
    args.add_all(
        depset(transitive = [c.system_includes for c in contexts]),
        before_each = "-isystem",
    )
    args.add("--")
    # A source with flags of its own is passed as `path::flag,flag`.
    args.add_all([
        f.path + "::" + ",".join(extra[f.path]) if f.path in extra else f.path
        for f in sources
    ])

    ctx.actions.run(
        executable = ctx.executable._check,
        arguments = [args],
        inputs = depset(sources, transitive = [headers]),
        outputs = [report],
        # clang++ and the system headers are found on the host, like the C++ toolchain's.
        use_default_shell_env = True,
        mnemonic = "ThreadSafetyCheck",
        progress_message = "Checking lock annotations of %d files in //%s with clang" % (
            len(sources),
            ctx.label.package,
        ),
    )

    test = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.expand_template(
        template = ctx.file._test_template,
        output = test,
        substitutions = {"%REPORT%": report.short_path},
        is_executable = True,
    )
    return [DefaultInfo(
        executable = test,
        runfiles = ctx.runfiles(files = [report]),
    )]

_thread_safety_test = rule(
    implementation = _thread_safety_test_impl,
    test = True,
    attrs = {
        "srcs": attr.label_list(
            allow_files = [".cc", ".h"],
            doc = "The .cc files to check; headers listed here are inputs only.",
        ),
        "deps": attr.label_list(
            providers = [CcInfo],
            doc = "cc_library targets whose headers, include paths and defines the sources need.",
        ),
        "copts": attr.string_list(doc = "Extra clang flags."),
        "per_file_copts": attr.label_keyed_string_dict(
            allow_files = [".cc"],
            doc = "Space-separated extra flags for some sources, e.g. the per-ISA kernels' " +
                  "-m flags (without them their code is compiled out and goes unchecked).",
        ),
        "jobs": attr.int(default = 2, doc = "clang processes at once."),
        "_check": attr.label(
            default = "//bazel:thread_safety_check.sh",
            executable = True,
            cfg = "exec",
            allow_single_file = True,
        ),
        "_test_template": attr.label(
            default = "//bazel:thread_safety_test.sh.tpl",
            allow_single_file = True,
        ),
    },
    doc = "Fails when clang's -Wthread-safety analysis reports anything in `srcs`.",
)

def thread_safety_test(name, size = "small", **kwargs):
    """A `_thread_safety_test`; small, since the test only reads the report the build wrote."""
    _thread_safety_test(name = name, size = size, **kwargs)
