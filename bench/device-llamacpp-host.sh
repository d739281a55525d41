#!/usr/bin/env bash
# Issue 13, CPU side on the GPU machine's 16-core host: bench/llamacpp-compare.sh there, on a Mixtral-8x7B-shaped model
# of random bf16 weights (LAYERS, default 2), with a static AVX-512 llama.cpp build made elsewhere (the host has no
# .NET and building llama.cpp there costs device time).
#   here:   bench/device-pack.sh; LLAMA=/tmp/llamacpp bench/device-llamacpp-host.sh pack   (llama.cpp's static CPU build
#           and source tree, see ../shared/peers/llamacpp/README.md; writes .device-carry/llama.tar.xz: llama-bench,
#           llama-quantize, libgomp, gguf-py and the two python tools, ~1.5 MB)
#   device: bench/device-llamacpp-host.sh run [THREADS]     (about 6-8 minutes for 2 layers at 16 threads)
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
  pack)
    src=${LLAMA:?set LLAMA to the folder holding build/bin and src}
    tmp=$(mktemp -d)/llama && mkdir -p "$tmp/bin" "$tmp/lib"
    cp "$src/build/bin/llama-bench" "$src/build/bin/llama-quantize" "$tmp/bin/"
    cp -L /lib/x86_64-linux-gnu/libgomp.so.1 "$tmp/lib/"
    cp -r "$src/src/gguf-py" "$tmp/gguf-py"
    cp ../shared/peers/llamacpp/hf_mixtral_to_gguf.py ../shared/tools/random_mixtral_checkpoint.py "$tmp/"
    mkdir -p .device-carry && tar cf - -C "$(dirname "$tmp")" llama | xz -6 -T0 > .device-carry/llama.tar.xz
    ls -l .device-carry/llama.tar.xz ;;
  run)
    [ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
    [ -d /tmp/llama ] || tar xJf .device-carry/llama.tar.xz -C /tmp
    layers=${LAYERS:-2}
    model=/tmp/mixtral-$layers
    [ -f $model/model.safetensors ] || python3 /tmp/llama/random_mixtral_checkpoint.py $model "$layers" models/tiny-mixtral-code
    LD_LIBRARY_PATH=/tmp/llama/lib LLAMA_BIN=/tmp/llama/bin LLAMA_SRC=/tmp/llama CONVERT=/tmp/llama/hf_mixtral_to_gguf.py \
      PY=$(command -v python3) DAOP=/tmp/daop/daop WORK=/tmp/llc ROUNDS=${ROUNDS:-2} bench/llamacpp-compare.sh $model "${2:-$(nproc)}" ;;
  *) echo "usage: bench/device-llamacpp-host.sh pack|run [THREADS]" >&2; exit 2 ;;
esac
