#!/usr/bin/env bash
# Issue 16 on the GPU machine: all-on-GPU decode of random bf16 models of real shapes (`daop bench synthetic --device
# cuda`: prefill/decode tok/s, the GEMV bandwidth bound and its share, launches), side by side in one call:
#   before  an older build, when .device-carry/daop-old.tar.xz is there (bench/device-pack.sh in a worktree of it)
#   host    this build with DAOP_GPU_ROUTING=host (each layer copies its router logits down and the work list up)
#   device  this build as it runs by default
#   device: bench/device-gpu-decode.sh [profile]  (CONFIGS="Mixtral-8x7B-v0.1:4 Qwen3-30B-A3B:12", ROUNDS=2)
# `profile` instead times every kernel of two decode steps of a 2-layer Qwen3-30B-A3B with Nsight Compute (ncu's
# gpu__time_duration; kernels run one at a time under it, so the sum is GPU time without launch gaps).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
builds="host device"
if [ -f .device-carry/daop-old.tar.xz ]; then
  [ -x /tmp/old/daop/daop ] || { mkdir -p /tmp/old && tar xJf .device-carry/daop-old.tar.xz -C /tmp/old; }
  builds="before $builds"
fi
log=${OUT:+$OUT/gpu-decode.txt}
say() { if [ -n "$log" ]; then tee -a "$log"; else cat; fi; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | say
if [ "${1:-}" = profile ]; then
  for b in $builds; do
    [ "$b" = host ] && continue
    d=/tmp/daop/daop; [ "$b" = before ] && d=/tmp/old/daop/daop
    echo "== profile, $b: kernel:us for two decode steps" | say
    /usr/local/cuda/bin/ncu --metrics gpu__time_duration.sum --launch-skip 300 --launch-count "${COUNT:-60}" --csv $d bench synthetic \
      --config models/configs/Qwen3-30B-A3B.json --layers 2 --device cuda --prompt-tokens 16 --new-tokens 16 > /tmp/ncu-$b.csv 2>/dev/null
    python3 - /tmp/ncu-$b.csv <<'PY' | say
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; k = h.index('Kernel Name'); v = h.index('Metric Value')
us = [(r[k].removeprefix('Kernel_'), float(r[v].replace(',', '')) / 1000) for r in rows[1:]]
print(' '.join(f'{n}:{t:.1f}' for n, t in us))
print(f'{len(us)} kernels, {sum(t for _, t in us):.1f} us')
PY
  done
  exit 0
fi
for spec in ${CONFIGS:-Mixtral-8x7B-v0.1:4 Qwen3-30B-A3B:12}; do
  cfg=${spec%%:*} layers=${spec##*:}
  for round in $(seq "${ROUNDS:-2}"); do
    for b in $builds; do
      d=/tmp/daop/daop routing=$b
      [ "$b" = before ] && d=/tmp/old/daop/daop routing=
      echo "== $cfg x $layers layers, $b, round $round" | say
      DAOP_GPU_ROUTING=$routing $d bench synthetic --config models/configs/$cfg.json --layers "$layers" \
        --device cuda --prompt-tokens "${PROMPT:-128}" --new-tokens "${NEW:-128}" 2>&1 | grep -v "^load" | say
    done
  done
done
