#!/usr/bin/env bash
# Checks that every shared library the Skein binaries load (`ldd`) comes from a package the
# runtime stage of deploy/docker/Dockerfile installs: the packages listed between its
# runtime-packages markers, what apt pulls in with them, and what debian:12-slim has (apt and
# its dependencies). Run by `bazel test //deploy:docker_runtime_test` with the built binaries.
#   check_runtime_libs.sh DOCKERFILE BINARY...
set -euo pipefail
dockerfile=$1
shift
listed=$(sed -n '/runtime-packages-begin/,/runtime-packages-end/p' "$dockerfile" |
  grep -v '^#' | sed 's/RUN apt-get update && apt-get install -y --no-install-recommends//' |
  tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -v -E '^(rm|apt-get|update|install)$' |
  sort -u)
if [[ -z $listed ]]; then
  echo "no runtime packages found in $dockerfile" >&2
  exit 1
fi
# What the runtime stage ends up with: the listed packages and their dependencies, plus the
# base image's apt and its dependencies.
installed=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances $listed apt 2>/dev/null |
  grep -E '^[a-z0-9]' | sed 's/:.*//' | sort -u)
status=0
checked=0
for binary in "$@"; do
  if ldd "$binary" | grep -q 'not found'; then
    echo "$binary: a library is not found: $(ldd "$binary" | grep 'not found')" >&2
    status=1
  fi
  for lib in $(ldd "$binary" | awk '/=>/ {print $3}'); do
    real=$(readlink -f "$lib")
    owner=$(dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null ||
      dpkg -S "${real#/usr}" 2>/dev/null || true)
    package=${owner%%:*}
    checked=$((checked + 1))
    if [[ -z $package ]]; then
      echo "$binary: $lib belongs to no Debian package" >&2
      status=1
    elif ! grep -qx "$package" <<<"$installed"; then
      echo "$binary: $lib comes from $package, which the runtime stage does not install" >&2
      status=1
    fi
  done
done
echo "$checked library uses checked against $(wc -l <<<"$listed") listed runtime packages"
exit $status
