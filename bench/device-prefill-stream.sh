#!/usr/bin/env bash
# Issue 14's prefill on the GPU machine: offloaded prompts with and without streaming a chunk's CPU-resident experts to
# the GPU (staging slots), on the 8-layer Mixtral-8x7B shape with the trained routing replayed at ratio 0.25.
#   here:   bench/device-pack.sh; bench/device-tree.sh out     device: bench/device-prefill-stream.sh [PROMPT_TOKENS...]
# For each prompt length (default 1024): static-cpu and daop, 2 prompts, 8 new tokens, streaming at the default
# threshold and off (--stream-min-tokens 0). Writes $OUT/prefill-<tokens>-<on|off>.json.
set -uo pipefail
cd "$(dirname "$0")/.."
daop=/tmp/daop/daop
[ -x "$daop" ] || tar xJf .device-carry/daop.tar.xz -C /tmp || { echo "run bench/device-pack.sh first" >&2; exit 2; }
out=${OUT:-/tmp}
lengths=("$@")
[ ${#lengths[@]} -eq 0 ] && lengths=(1024)
for p in "${lengths[@]}"; do
  for mode in on off; do
    extra=(); [ "$mode" = off ] && extra=(--stream-min-tokens 0)
    echo "== prompt $p, streaming $mode"
    "$daop" bench policies --config models/configs/Mixtral-8x7B-v0.1.json --layers "${LAYERS:-8}" --device cuda --ratios "${RATIOS:-0.25}" \
      --replay-trace --replay-only --prompts 2 --prompt-tokens "$p" --new-tokens 8 --no-all-gpu \
      --policies "${POLICIES:-static-cpu,daop}" --json "$out/prefill-$p-$mode.json" --svg /tmp/prefill.svg "${extra[@]}" 2>&1 | tail -n 6
  done
done
