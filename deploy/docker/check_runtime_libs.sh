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
# Each library once, however many binaries load it: `dpkg -S` reads the whole package
# database per call, so one call per use made this test slow enough to time out under load.
declare -A users=()
for binary in "$@"; do
  if ldd "$binary" | grep -q 'not found'; then
    echo "$binary: a library is not found: $(ldd "$binary" | grep 'not found')" >&2
    status=1
  fi
  for lib in $(ldd "$binary" | awk '/=>/ {print $3}'); do
    users[$lib]+="${users[$lib]:+ }$(basename "$binary")"
  done
done
# Map every spelling of every library (as loaded, resolved, with and without /usr: Debian 12
# merges /lib into /usr/lib, but dpkg records the path the package shipped) to its package.
declare -A package_of=()
candidates=()
for lib in "${!users[@]}"; do
  real=$(readlink -f "$lib")
  candidates+=("$real" "/usr$lib" "${real#/usr}")
done
while IFS= read -r line; do
  package=${line%%:*}
  path=${line#*: }
  package_of[$path]=$package
done < <(dpkg -S "${candidates[@]}" 2>/dev/null || true)
checked=0
for lib in "${!users[@]}"; do
  real=$(readlink -f "$lib")
  package=${package_of[$real]:-${package_of[/usr$lib]:-${package_of[${real#/usr}]:-}}}
  checked=$((checked + 1))
  if [[ -z $package ]]; then
    echo "${users[$lib]}: $lib belongs to no Debian package" >&2
    status=1
  elif ! grep -qx "$package" <<<"$installed"; then
    echo "${users[$lib]}: $lib comes from $package, which the runtime stage does not install" >&2
    status=1
  fi
done
echo "$checked libraries checked against $(wc -l <<<"$listed") listed runtime packages"
exit $status
