#!/usr/bin/env bash
# Issue 17 on the GPU machine: continuous batching (`daop bench serve`) all on the GPU and offloaded, this build against
# a previous one in the same job, on a 2-layer Mixtral-8x7B-shaped random bf16 model made there.
#   bench/device-serve-batching.sh check    `bench gpu-ops --part engine` (batched steps on the GPU against the CPU)
#   bench/device-serve-batching.sh run      serve runs, one JSON line each, prefixed by build and setting
#   bench/device-serve-batching.sh engine   `bench synthetic --sequences` (no server) all on the GPU: that model, then 8-layer
#                                           Mixtral-8x7B and Qwen3-30B-A3B shapes (random weights), against the bytes-read bound
# Carries .device-carry/daop.tar.xz (bench/device-pack.sh), .device-carry/llama.tar.xz (for random_mixtral_checkpoint.py,
# bench/device-llamacpp-host.sh pack; `engine` runs without it) and, to compare, .device-carry/old/: the managed DLLs
# (daop.dll, Daop.*.dll) of the previous build's Release output, laid over a copy of the pack (or the same DLLs under
# daop/ in .device-carry-before/old-dlls.tar.xz, ~2.5 MB instead of ~4). Env: CLIENTS ("16 32"), SECONDS_EACH (10),
# SETTINGS ("gpu offload"), BUILDS ("old new"), FIFO (1: also --parallel 1 with the new build).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
[ -d /tmp/llama ] || { [ -f .device-carry/llama.tar.xz ] && tar xJf .device-carry/llama.tar.xz -C /tmp; }
# the previous build: its managed DLLs as files in .device-carry/old/, or packed in .device-carry-before/old-dlls.tar.xz
if [ ! -d /tmp/daop-old ] && [ -f .device-carry-before/old-dlls.tar.xz ]; then
  mkdir -p /tmp/old-dlls && tar xJf .device-carry-before/old-dlls.tar.xz -C /tmp/old-dlls
  cp -r /tmp/daop /tmp/daop-old && cp /tmp/old-dlls/daop/*.dll /tmp/daop-old/
elif [ -d .device-carry/old ] && [ ! -d /tmp/daop-old ]; then
  cp -r /tmp/daop /tmp/daop-old
  cp .device-carry/old/*.dll /tmp/daop-old/
fi
# the 2-layer random Mixtral (needs random_mixtral_checkpoint.py from .device-carry/llama.tar.xz); engine runs without it
model=/tmp/mix2
if [ ! -f $model/model.safetensors ] && [ -f /tmp/llama/random_mixtral_checkpoint.py ]; then
  python3 /tmp/llama/random_mixtral_checkpoint.py $model 2 models/tiny-mixtral-code > /dev/null
fi
case ${1:-run} in
  engine)
    seqs=${SEQUENCES:-1,4,16,32,64}
    for b in ${BUILDS:-new}; do
      d=/tmp/daop/daop; [ $b = old ] && d=/tmp/daop-old/daop
      echo "== $b"
      [ -f $model/model.safetensors ] && $d bench synthetic --model $model --device cuda --prompt-tokens 64 --new-tokens 64 --sequences "$seqs"
      for cfg in ${CONFIGS:-Mixtral-8x7B-v0.1 Qwen3-30B-A3B}; do
        $d bench synthetic --config models/configs/$cfg.json --layers "${LAYERS:-8}" --device cuda --prompt-tokens 64 \
          --new-tokens 64 --sequences "$seqs"
      done
    done ;;
  check)
    for m in ${CHECK_MODELS:-mixtral-tiny qwen2moe-tiny olmoe-tiny}; do
      /tmp/daop/daop bench gpu-ops --part engine -m tests/fixtures/hf-fixtures/$m
    done ;;
  run)
    for c in ${CLIENTS:-16 32}; do
      for setting in ${SETTINGS:-gpu offload}; do
        extra="--device cuda"
        [ $setting = offload ] && extra="--device cuda --expert-cache-ratio 0.25 --policy daop"
        runs="${BUILDS:-old new}"
        for b in $runs $([ "${FIFO:-1}" = 1 ] && echo fifo); do
          d=/tmp/daop/daop; p=$c
          [ $b = old ] && d=/tmp/daop-old/daop
          [ $b = fifo ] && p=1
          echo -n "$b $setting clients $c parallel $p: "
          $d bench serve -m $model --context 512 --clients $c --parallel $p --seconds "${SECONDS_EACH:-10}" -n 32 --json $extra 2>/dev/null \
            | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)))"
        done
      done
    done ;;
esac
