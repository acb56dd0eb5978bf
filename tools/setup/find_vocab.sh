#!/usr/bin/env bash
# Prints the path of the RWKV World vocabulary (rwkv_vocab_v20230424.txt), verified by its
# SHA-256. Looks in $SKEIN_VOCAB, ../shared/data/, tests/data/ and ~/.cache/skein/; otherwise
# downloads it from its upstream location (BlinkDL/ChatRWKV) where the machine has internet.
# Exits non-zero with a one-line reason when no verified copy can be had.
set -euo pipefail
cd "$(dirname "$0")/../.."

name=rwkv_vocab_v20230424.txt
sha=e6dee3d4e31b4d5c40ac99508ac6c701ceef4bed681bf2167ce9a908552bca89
url=https://raw.githubusercontent.com/BlinkDL/ChatRWKV/main/rwkv_pip_package/src/rwkv/$name
cache=${XDG_CACHE_HOME:-$HOME/.cache}/skein

verified() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$sha" ]]; }

for candidate in "${SKEIN_VOCAB:-}" ../shared/data/$name tests/data/$name "$cache/$name"; do
  if [[ -n "$candidate" ]] && verified "$candidate"; then
    echo "$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")"
    exit 0
  fi
  if [[ -n "$candidate" && -f "$candidate" ]]; then
    echo "find_vocab: $candidate does not have the expected sha256; ignoring it" >&2
  fi
done

mkdir -p "$cache"
if curl -fsSL --max-time 60 -o "$cache/$name.part" "$url" 2>/dev/null; then
  if verified "$cache/$name.part"; then
    mv "$cache/$name.part" "$cache/$name"
    echo "$cache/$name"
    exit 0
  fi
  rm -f "$cache/$name.part"
  echo "find_vocab: the downloaded $name has the wrong sha256" >&2
  exit 1
fi
rm -f "$cache/$name.part"
echo "find_vocab: $name not found (set SKEIN_VOCAB, or place it in tests/data/) and it cannot be downloaded here" >&2
exit 1
