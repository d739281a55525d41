#!/usr/bin/env bash
# Issue 15 on the GPU: a llama-quantize K-quant mix (TYPE, default Q4_K_M) of the Mixtral-8x7B shape (LAYERS layers of
# random bf16 weights, default 2) through Daop's GPU path: load time, all on the GPU, and offloaded at RATIOS (default
# 0.25) under POLICIES (default static-cpu,lru-on-demand,daop); then the same file on the host's CPU. q4_K matrices run on
# the GPU's Q4_K kernels as stored; the mix's q6_K matrices go to the GPU as Q8_0 (requantized at upload).
#   here:   bench/device-pack.sh; LLAMA=/tmp/llamacpp bench/device-llamacpp-host.sh pack; bench/device-tree.sh out
#   device: bench/device-gguf-gpu.sh make     (random checkpoint, GGUF bf16, llama-quantize: ~25 s a layer on the H100 host;
#                                              Q4_K_M puts q4_K down projections in some layers, q6_K in others)
#           bench/device-gguf-gpu.sh run      (`daop bench synthetic --model FILE.gguf`, GPU then CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
[ -d /tmp/llama ] || tar xJf .device-carry/llama.tar.xz -C /tmp
layers=${LAYERS:-2}
type=${TYPE:-Q4_K_M}
model=/tmp/mixtral-$layers
work=/tmp/gguf-gpu
file=$work/mixtral-$layers-$type.gguf
mkdir -p $work
case ${1:-} in
  make)
    [ -f $model/model.safetensors ] || python3 /tmp/llama/random_mixtral_checkpoint.py $model "$layers" models/tiny-mixtral-code
    bf16=$work/mixtral-$layers-bf16.gguf
    [ -f $bf16 ] || PYTHONPATH=/tmp/llama/gguf-py python3 /tmp/llama/hf_mixtral_to_gguf.py $model $bf16 --outtype bf16
    [ -f "$file" ] || LD_LIBRARY_PATH=/tmp/llama/lib /tmp/llama/bin/llama-quantize $bf16 "$file" "$type" "$(nproc)" | grep -E "ffn_down|quant size"
    ls -l "$file" ;;
  run)
    d=/tmp/daop/daop
    echo "== $type all on the GPU"; $d bench synthetic --model "$file" --device cuda --prompt-tokens 128 --new-tokens 64
    echo "== $type offloaded"; $d bench synthetic --model "$file" --device cuda --prompt-tokens 128 --new-tokens 64 \
      --ratios "${RATIOS:-0.25}" --policies "${POLICIES:-static-cpu,lru-on-demand,daop}"
    echo "== $type on the CPU"; $d bench synthetic --model "$file" --device cpu --prompt-tokens 64 --new-tokens 32 ;;
  *) echo "usage: bench/device-gguf-gpu.sh make|run" >&2; exit 2 ;;
esac
