#!/usr/bin/env bash
# Issues 13 and 15, hybrid: the same GGUF file (llama-quantize TYPE, default Q4_K_M, of a Mixtral-8x7B-shaped model of
# LAYERS layers of random bf16 weights, default 4) through Daop and through ik_llama.cpp's CUDA build on the GPU machine,
# side by side in one run: all on the GPU, experts on the CPU with the rest on the GPU, a share of the experts on the
# GPU, and CPU only. ik_llama.cpp is the peer with the fastest hybrid MoE paths (fused MoE, -ot, --n-cpu-moe, copying
# the active CPU experts to the GPU for prompt batches).
#   here:   bench/device-pack.sh; LLAMA=/tmp/llamacpp bench/device-llamacpp-host.sh pack   (llama-quantize, converter)
#           IK=/path/to/ik_llama.cpp/git-dir bench/device-hybrid-llamacpp.sh pack           (source, ~3.4 MB)
#           bench/device-tree.sh out   (and `in` after the calls)
#   device: bench/device-hybrid-llamacpp.sh build   (CUDA sm_90 build of llama-bench in /tmp/ik-build; over 9 minutes
#                                                    at 16 cores: a call that runs out of time is continued by the next)
#           bench/device-gguf-gpu.sh make            (same LAYERS and TYPE: the GGUF file)
#           bench/device-hybrid-llamacpp.sh run
#           bench/device-hybrid-llamacpp.sh daop   (Daop's offloaded rows only, once with each expert's page-locked image
#                                                    made on its first copy, once with the default: made in the background)
# Rows (prompt of P=256 tokens, N=64 decoded; ik_llama's llama-bench at 16 threads, 2 repetitions; Daop's
# `bench synthetic`): all-GPU (-ngl 99 / --device cuda), experts on the CPU (-ot exps=CPU / ratio 0 static-cpu), a
# quarter of the experts on the GPU (--n-cpu-moe 3/4 of the layers / ratio 0.25, every policy), CPU only
# (CUDA_VISIBLE_DEVICES= / --device cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
layers=${LAYERS:-4}
type=${TYPE:-Q4_K_M}
file=/tmp/gguf-gpu/mixtral-$layers-$type.gguf
build=/tmp/ik-build
p=${PROMPT:-256}
n=${NEW:-64}
case ${1:-} in
  pack)
    git_dir=${IK:?set IK to an ik_llama.cpp git directory}
    tmp=$(mktemp -d) && mkdir -p "$tmp/ik"
    # File by file: a mirror may lack the blobs of the web UI and models, which the build does not need.
    git --git-dir "$git_dir" ls-tree -r HEAD |
      grep -v -E $'\t(models/|examples/server/(public|webui|themes)|media/|docs/|github-data/|gguf-py/|\\.devops/|docker/)' |
      while IFS=$'\t' read -r meta path; do
        read -r _ kind blob <<< "$meta"
        [ "$kind" = blob ] || continue
        mkdir -p "$tmp/ik/$(dirname "$path")"
        git --git-dir "$git_dir" cat-file blob "$blob" > "$tmp/ik/$path"
      done
    mkdir -p .device-carry && tar cf - -C "$tmp" ik | xz -6 -T0 > .device-carry/ik_llama.tar.xz
    ls -l .device-carry/ik_llama.tar.xz ;;
  build)
    [ -d /tmp/ik ] || tar xJf .device-carry/ik_llama.tar.xz -C /tmp
    [ -f $build/CMakeCache.txt ] || cmake -S /tmp/ik -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DGGML_NATIVE=ON \
      -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DGGML_NCCL=OFF \
      -DGGML_IQK_FA_ALL_QUANTS=OFF > /tmp/ik-cmake.log   # GGML_IQK_FLASH_ATTENTION=OFF fails to link (ggml.c calls it)
    cmake --build $build --target llama-bench -j "$(nproc)" | grep -E "error|FAILED|Linking" || true
    ls -l $build/bin/llama-bench ;;
  run)
    [ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
    [ -f "$file" ] || { echo "no $file: run LAYERS=$layers TYPE=$type bench/device-gguf-gpu.sh make first" >&2; exit 2; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    lb() { "$build/bin/llama-bench" -m "$file" -p "$p" -n "$n" -t "$(nproc)" -r 2 -fa 1 "$@" 2>&1 | grep -E "^\||error" || true; }
    d() { timeout 300 /tmp/daop/daop bench synthetic --model "$file" --prompt-tokens "$p" --new-tokens "$n" "$@"; }
    quarter=$((layers * 3 / 4))
    echo "== ik_llama.cpp all on the GPU"; lb -ngl 99
    echo "== ik_llama.cpp experts on the CPU (-ot exps=CPU)"; lb -ngl 99 -ot exps=CPU
    echo "== ik_llama.cpp experts of $quarter of $layers layers on the CPU (--n-cpu-moe $quarter)"; lb -ngl 99 --n-cpu-moe $quarter
    echo "== ik_llama.cpp CPU only"; CUDA_VISIBLE_DEVICES= lb -ngl 0 || echo "(no CPU-only row: the CUDA build needs a device)"
    echo "== Daop all on the GPU"; d --device cuda
    echo "== Daop experts on the CPU, and a quarter of them on the GPU"
    d --device cuda --ratios 0,0.25 --policies "${POLICIES:-static-cpu,daop,lru-on-demand}"
    echo "== Daop CPU only"; d --device cpu ;;
  daop)
    [ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
    [ -f "$file" ] || { echo "no $file: run LAYERS=$layers TYPE=$type bench/device-gguf-gpu.sh make first" >&2; exit 2; }
    for images in OnFirstCopy Auto; do
      echo "== Daop, experts on the CPU and a quarter of them on the GPU, images: $images"
      timeout 300 /tmp/daop/daop bench synthetic --model "$file" --prompt-tokens "$p" --new-tokens "$n" --device cuda \
        --ratios 0,0.25 --policies "${POLICIES:-static-cpu,daop,lru-on-demand}" --host-images $images
    done ;;
  *) echo "usage: bench/device-hybrid-llamacpp.sh pack|build|run|daop" >&2; exit 2 ;;
esac
