#!/usr/bin/env bash
# Issue 14's end-to-end run on DAOP's paper protocol: whole generate() calls (256-token prompts, 256 new tokens, batch 1,
# 8 prompts), prefill counted, on the Mixtral-8x7B shape (LAYERS layers, default 8, random bf16 weights) with the
# trained model's routing replayed, at expert cache ratios RATIOS (default 0.25).
#   here:   bench/device-pack.sh; bench/device-tree.sh out     device: bench/device-paper-protocol.sh
# POLICIES (default lru-on-demand,static-cpu,daop-exact,daop), PROMPTS (8), TAG (file name suffix); further arguments go to
# `bench policies` (e.g. --stream-min-tokens 0). Writes $OUT/paper-protocol$TAG.json/.svg.
set -uo pipefail
cd "$(dirname "$0")/.."
daop=/tmp/daop/daop
[ -x "$daop" ] || tar xJf .device-carry/daop.tar.xz -C /tmp || { echo "run bench/device-pack.sh first" >&2; exit 2; }
out=${OUT:-/tmp}
"$daop" bench policies --config models/configs/Mixtral-8x7B-v0.1.json --layers "${LAYERS:-8}" --device cuda \
  --ratios "${RATIOS:-0.25}" --replay-trace --replay-only --prompts "${PROMPTS:-8}" --prompt-tokens 256 --new-tokens 256 \
  --no-all-gpu --policies "${POLICIES:-lru-on-demand,static-cpu,daop-exact,daop}" \
  --json "$out/paper-protocol${TAG:-}.json" --svg "$out/paper-protocol${TAG:-}.svg" "$@" 2>&1 | tail -n 20
