#!/usr/bin/env bash
# Prints the path of the model ./run.sh serves:
#   1. $SKEIN_MODEL (or the first argument), when set;
#   2. the official RWKV-7 G1 0.1B checkpoint in ~/.cache/skein/, downloaded once where the
#      machine has internet (progress bar; a partial download resumes; the size must match
#      what the server announced, the file must load as an RWKV-7 checkpoint, and its
#      SHA-256 is recorded beside it and checked on every later run);
#   3. otherwise a generated model of the 0.1B shape (random weights), with a loud warning:
#      its output is noise, but every part of the system runs for real.
# Usage: find_model.sh SKEIN_BINARY [MODEL]
set -euo pipefail
skein=${1:?usage: find_model.sh SKEIN_BINARY [MODEL]}
want=${2:-${SKEIN_MODEL:-}}

if [[ -n "$want" ]]; then
  if [[ ! -f "$want" ]]; then
    echo "find_model: $want does not exist" >&2
    exit 1
  fi
  echo "$(cd "$(dirname "$want")" && pwd)/$(basename "$want")"
  exit 0
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/skein
mkdir -p "$cache"
name=rwkv7-g1a-0.1b-20250728-ctx4096.pth
url=https://huggingface.co/BlinkDL/rwkv7-g1/resolve/main/$name
file=$cache/$name

if [[ -f "$file" && -f "$file.sha256" ]]; then
  if [[ "$(sha256sum "$file" | cut -d' ' -f1)" == "$(cat "$file.sha256")" ]]; then
    echo "$file"
    exit 0
  fi
  echo "find_model: $file does not match its recorded sha256; downloading it again" >&2
  rm -f "$file" "$file.sha256"
fi

# The size the server announces (following redirects), to check the download against.
size=$(curl -sIL --connect-timeout 5 --max-time 20 "$url" 2>/dev/null |
  tr -d '\r' | awk 'tolower($1)=="content-length:" {n=$2} END {print n+0}') || size=0
if [[ "$size" -gt 100000000 ]]; then
  echo "find_model: downloading $name ($((size / 1048576)) MiB) into $cache" >&2
  if curl -fL --connect-timeout 10 --retry 3 -C - --progress-bar -o "$file.part" "$url"; then
    got=$(stat -c %s "$file.part")
    if [[ "$got" -eq "$size" ]] && "$skein" inspect --model "$file.part" >/dev/null 2>&1; then
      sha256sum "$file.part" | cut -d' ' -f1 >"$file.sha256"
      mv "$file.part" "$file"
      echo "$file"
      exit 0
    fi
    echo "find_model: the download is $got bytes of $size or does not load; it is kept to resume" >&2
  fi
fi

random=$cache/random-0.1b-shape.pth
if [[ ! -f "$random" ]]; then
  partial=$cache/random-0.1b-shape.partial.pth
  # The official 0.1B shape (spec §10): L 12, C 768, LoRA ranks 64/64/32/128.
  "$skein" make-model --layers 12 --embd 768 --vocab 65536 --lora 64,64,32,128 --seed 1 \
    --out "$partial" >&2
  mv "$partial" "$random"
fi
{
  echo "################################################################################"
  echo "#  No official checkpoint could be downloaded here: serving a GENERATED model of  #"
  echo "#  the RWKV-7 0.1B shape with RANDOM weights. Its output is noise. Pass          #"
  echo "#  --model PATH (or set SKEIN_MODEL) to serve a real RWKV-7 checkpoint.          #"
  echo "################################################################################"
} >&2
echo "$random"
