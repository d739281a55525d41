#!/usr/bin/env bash
# Issue 12 on the GPU machine: the same 8-layer Mixtral-8x7B-shaped model (random bf16 weights) decoded all on the GPU,
# and every offloading policy at ratios 0.25 / 0.5 with the trained model's routing replayed, by a build from before
# the structure refactor and by the current one, so decode tok/s and placement decisions can be compared row by row.
#   here:   (cd <old checkout> && bench/device-pack.sh) and copy its .device-carry/daop.tar.xz to .device-carry-before/;
#           bench/device-pack.sh for the current build (.device-carry/)
#   device: bench/device-structure-check.sh before|after    (one per call; the machine keeps /tmp between warm calls)
#           RATIOS=0.25 POLICIES=static-cpu,daop bench/device-structure-check.sh ...   a shorter run (same for both builds)
# Prints, per build: `bench synthetic` (prefill/decode tok/s all on the GPU) and `bench policies` rows.
set -uo pipefail
cd "$(dirname "$0")/.."
which=${1:?before or after}
dir=/tmp/daop-$which
pack=$([ "$which" = before ] && echo .device-carry-before/daop.tar.xz || echo .device-carry/daop.tar.xz)
if [ ! -x "$dir/daop" ]; then mkdir -p "$dir" && tar xJf "$pack" -C "$dir" --strip-components=1 || exit 2; fi
out=${OUT:-/tmp}
cfg=models/configs/Mixtral-8x7B-v0.1.json
echo "== $which: bench synthetic, 8 layers, all on the GPU"
"$dir/daop" bench synthetic --config $cfg --layers 8 --device cuda --prompt-tokens 128 --new-tokens 64 2>&1 | tail -n 12
echo "== $which: bench policies, 8 layers, replayed routing, ratios 0.25 0.5"
"$dir/daop" bench policies --config $cfg --layers 8 --device cuda --ratios "${RATIOS:-0.25,0.5}" --replay-trace --replay-only \
  --prompts 2 --prompt-tokens 64 --new-tokens 32 --no-all-gpu \
  --policies "${POLICIES:-lru-on-demand,lru-prefetch,static-cpu,daop-exact,daop,daop-drift}" \
  --json "$out/policies-$which.json" --svg "$out/policies-$which.svg" 2>&1 | tail -n 16
