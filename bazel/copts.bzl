"""Compiler flags shared by every target."""

# Project code: every warning is an error.
SKEIN_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]

# Generated code (protoc output) is not ours to fix; compile it without -Werror.
SKEIN_DEPS_COPTS = [
    "-w",
]
