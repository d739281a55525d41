#!/usr/bin/env bash
# Issue 16 on the GPU machine: all-on-GPU decode of random bf16 models of real shapes, routing on the host (each layer
# copies its router logits down, routes and sends the work list up) against routing on the device (the default), side
# by side in one call. `daop bench synthetic --device cuda` prints prefill/decode tok/s, the GEMV bandwidth bound and its
# share, and launches. Runs the self-contained daop of bench/device-pack.sh (.device-carry/daop.tar.xz).
#   device: bench/device-gpu-decode.sh            (CONFIGS="Mixtral-8x7B-v0.1:4 Qwen3-30B-A3B:12", ROUNDS=2)
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
log=${OUT:+$OUT/gpu-decode.txt}
say() { if [ -n "$log" ]; then tee -a "$log"; else cat; fi; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | say
for spec in ${CONFIGS:-Mixtral-8x7B-v0.1:4 Qwen3-30B-A3B:12}; do
  cfg=${spec%%:*} layers=${spec##*:}
  for round in $(seq "${ROUNDS:-2}"); do
    for routing in host device; do
      echo "== $cfg x $layers layers, routing on the $routing, round $round" | say
      DAOP_GPU_ROUTING=$routing /tmp/daop/daop bench synthetic --config models/configs/$cfg.json --layers "$layers" \
        --device cuda --prompt-tokens "${PROMPT:-128}" --new-tokens "${NEW:-128}" 2>&1 | grep -v "^load" | say
    done
  done
done
