#!/usr/bin/env bash
# The defect found on 2026-12-06 (bench/results/device-2026-12-06/prompt-256-crash.txt): one layer of the
# Mixtral-8x7B shape, all on the GPU, stops with CUDA "an illegal memory access" for prompts of 240-511 tokens (200
# runs). This runs that repro under compute-sanitizer's memcheck, which names the faulting kernel, thread and address.
#   here:   bench/device-pack.sh; bench/device-tree.sh out     device: bench/device-prompt-crash.sh [PROMPT...]
# PROMPT: prompt lengths to try (default: 256, then 200 as the passing control). memcheck slows kernels ~10-100x;
# each run is capped at TIMEOUT seconds (default 240).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp || { echo "run bench/device-pack.sh first" >&2; exit 2; }
san=${SANITIZER:-/usr/local/cuda/bin/compute-sanitizer}
prompts=("$@")
[ ${#prompts[@]} -eq 0 ] && prompts=(256 200)
for p in "${prompts[@]}"; do
  echo "== prompt $p"
  timeout "${TIMEOUT:-240}" "$san" --tool memcheck --print-limit 4 /tmp/daop/daop bench synthetic \
    --config models/configs/Mixtral-8x7B-v0.1.json --layers 1 --device cuda --prompt-tokens "$p" --new-tokens 2 2>&1 | tail -n 60
done
