#!/usr/bin/env bash
# Issue 13 on the GPU machine: every offloading policy with bf16, q8_0 and q4_0 experts (quantized at load, the bits
# llama-quantize --pure writes), on an 8-layer Mixtral-8x7B-shaped model of random weights with the trained model's
# routing replayed, at expert cache ratios 0.25 and 0.5. The cache ratio is a share of the experts in GPU slots, so at
# one ratio a q4_0 run holds as many experts as bf16 and each miss or CPU expert reads ~3.6x fewer bytes.
#   here:   bench/device-pack.sh; bench/device-tree.sh out     device: bench/device-quant-policies.sh [FORMAT...]
# FORMAT is bf16, q8_0 or q4_0 (default: all three, one `bench policies` run each, 1-3 minutes each on an H100).
# Prints each run's table; writes $OUT/policies-<format>.json and .svg when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
daop=/tmp/daop/daop
[ -x "$daop" ] || tar xJf .device-carry/daop.tar.xz -C /tmp || { echo "run bench/device-pack.sh first" >&2; exit 2; }
out=${OUT:-/tmp}
formats=("$@")
[ ${#formats[@]} -eq 0 ] && formats=(bf16 q8_0 q4_0)
status=0
for f in "${formats[@]}"; do
  echo "== experts $f"
  start=$SECONDS
  "$daop" bench policies --config models/configs/Mixtral-8x7B-v0.1.json --layers 8 --device cuda --ratios "${RATIOS:-0.25,0.5}" \
    --replay-trace --replay-only --prompts 2 --prompt-tokens 64 --new-tokens 32 --no-all-gpu --expert-dtype "$f" \
    --policies "${POLICIES:-lru-on-demand,static-cpu,daop-exact,daop,daop-checked,daop-checked-degrade}" \
    --json "$out/policies-$f.json" --svg "$out/policies-$f.svg" 2>&1 | tail -n 16 || status=1
  echo "($f took $((SECONDS - start)) s)"
done
exit $status
