#!/usr/bin/env bash
# AMX int8 tiles against the AVX-512 int8 tiles on a host that has AMX (issue 13), interleaved in one run:
#   here:   bench/device-pack.sh
#   device: bench/device-amx.sh kernels [ROUNDS]   `daop bench kernels` for the 32-block formats (expert GEMM GFLOP/s), with and without
#                                                  DAOP_AMX=0, and the tiles' check against their scalar twin
#           bench/device-amx.sh model [ROUNDS]     whole-model prefill/decode, `bench synthetic` on a LAYERS-layer (2)
#                                                  Mixtral-8x7B shape of random weights, q8_0 experts and dense matrices
# The llama.cpp comparison on the same host: FORMATS=q8_0 bench/device-llamacpp-host.sh run 16.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
daop=${DAOP:-/tmp/daop/daop}
rounds=${2:-2}
case ${1:-} in
  kernels)
    for r in $(seq "$rounds"); do
      for v in default DAOP_AMX=0; do
        echo "== round $r: $v"
        env $( [ $v = default ] || echo $v ) "$daop" bench kernels --only-formats --formats "${FORMATS:-bf16,q8_0,q4_0,q4_K,q6_K}" --format-batches "${BATCHES:-4,16,64}" 2>&1
      done
    done ;;
  model)
    # FORMAT: q8_0 (default), q4_0 or bf16 for the experts and dense matrices
    for r in $(seq "$rounds"); do
      for v in default DAOP_AMX=0; do
        echo "== round $r: $v"
        env $( [ $v = default ] || echo $v ) "$daop" bench synthetic --config models/configs/Mixtral-8x7B-v0.1.json --layers "${LAYERS:-2}" \
          --device cpu --expert-dtype "${FORMAT:-q8_0}" --dense-dtype "${FORMAT:-q8_0}" --prompt-tokens "${PROMPT:-64}" --new-tokens 32 2>&1 | grep -E "prefill|AMX" || true
      done
    done ;;
  *) echo "usage: bench/device-amx.sh kernels|model [ROUNDS]" >&2; exit 2 ;;
esac
