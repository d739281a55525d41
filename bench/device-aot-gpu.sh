#!/usr/bin/env bash
# Issue 16 on the GPU machine: the kernels precompiled to PTX and run through our own CUDA driver layer, in the JIT tool
# and in the NativeAOT binary, side by side in one call.
#   carry .device-carry/daop.tar.xz (bench/device-pack.sh), .device-carry/daop-aot.tar.xz (bench/aot-pack.sh) and,
#   for the ILGPU run-time path before this change, .device-carry/daop-old.tar.xz (bench/device-pack.sh in a worktree).
#   device: bench/device-aot-gpu.sh [text|first|warm|decode|graphs|checks]...   (default: all but graphs)
# text    greedy text of `run --device cuda` (all on the GPU, then offloaded at ratio 0.5 under every policy): JIT tool,
#         AOT binary (and the CPU for reference); the AOT binary's size and start-up (`--version`).
# first   first-token latency: `run --device cuda -n 32` decode tok/s with the load-time warm-up, each build, 3 runs;
#         load-to-first-token of the 8-layer Mixtral-8x7B shape (`bench synthetic --layers 8`, 1-token prompt, 1 token).
# warm    the warm rate of `first`'s model and shape (`bench synthetic --model`, after a first generation).
# decode  all-on-GPU decode of the 8-layer Mixtral shape and launches per token: old (ILGPU run-time kernels), new JIT,
#         new AOT.
# graphs  the decode step as a CUDA graph (DAOP_CUDA_GRAPHS=1) against plain launches: greedy text, decode tok/s of the
#         embedded model, the 8-layer Mixtral and 12-layer Qwen3-30B-A3B shapes.
# checks  `bench gpu-ops` (every kernel family against the CPU reference) and the engine checks on the fixtures.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
[ -x /tmp/daop-aot/daop ] || { [ -f .device-carry/daop-aot.tar.xz ] && tar xJf .device-carry/daop-aot.tar.xz -C /tmp; }
[ -f .device-carry/daop-old.tar.xz ] && { [ -x /tmp/old/daop/daop ] || { mkdir -p /tmp/old && tar xJf .device-carry/daop-old.tar.xz -C /tmp/old; }; }
log=${OUT:+$OUT/aot-gpu.txt}
say() { if [ -n "$log" ]; then tee -a "$log"; else cat; fi; }
builds() { echo jit; [ -x /tmp/daop-aot/daop ] && echo aot; }
bin() { case $1 in jit) echo /tmp/daop/daop ;; aot) echo /tmp/daop-aot/daop ;; old) echo /tmp/old/daop/daop ;; esac; }
model=${MODEL:-models/tiny-mixtral-code}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | say
steps=${*:-text first warm decode checks}
for step in $steps; do
  case $step in
  text)
    for b in $(builds); do
      d=$(bin "$b")
      echo "== $b: $(ls -l "$d" | awk '{print $5}') bytes; --version $( { /usr/bin/time -f '%e s' "$d" --version; } 2>&1 | tr '\n' ' ')" | say
      for dev in cuda cpu; do
        [ "$dev" = cpu ] && [ "$b" = aot ] && continue
        echo "-- $b --device $dev" | say
        "$d" run -m "$model" --device $dev -p "def fibonacci(n):" -n 32 --temperature 0 2>&1 | say
      done
      for policy in static-cpu lru-on-demand lru-prefetch daop-exact daop daop-checked; do
        echo "-- $b --device cuda --expert-cache-ratio 0.5 --policy $policy" | say
        "$d" run -m "$model" --device cuda --expert-cache-ratio 0.5 --policy $policy -p "def fibonacci(n):" -n 32 --temperature 0 2>&1 | say
      done
    done ;;
  first)
    for b in $(builds) $( [ -x /tmp/old/daop/daop ] && echo old ); do
      d=$(bin "$b")
      # warm: the load-time warm-up (the default); cold: DAOP_WARMUP=0; nocache: also without the driver's PTX cache
      # (CUDA_CACHE_DISABLE=1: every module JIT-compiled from PTX again, as on a machine's first run).
      for mode in warm cold nocache; do
        for r in 1 2 3; do
          [ -f "$model/model.safetensors" ] || break
          [ "$mode" = nocache ] && [ "$b" = old ] && break
          echo "== first tokens, $b, $mode, run $r" | say
          w=1; [ "$mode" != warm ] && w=0
          c=0; [ "$mode" = nocache ] && c=1
          { DAOP_WARMUP=$w CUDA_CACHE_DISABLE=$c /usr/bin/time -f 'wall %e s' "$d" run -m "$model" --device cuda -p "def fibonacci(n):" -n 32 --temperature 0 --json; } 2>&1 | say
        done
      done
      [ "$b" = aot ] && continue
      echo "== load-to-first-token, 8-layer Mixtral-8x7B shape, $b" | say
      { /usr/bin/time -f 'wall %e s' "$d" bench synthetic --config models/configs/Mixtral-8x7B-v0.1.json --layers 8 --device cuda \
        --prompt-tokens 1 --new-tokens 1 --distinct-matrices 2; } 2>&1 | grep -v "^GPU GEMV" | say
    done ;;
  decode)
    for r in 1 2; do
      for b in $( [ -x /tmp/old/daop/daop ] && echo old ) jit; do
        echo "== decode, 8-layer Mixtral-8x7B shape, $b, round $r" | say
        "$(bin "$b")" bench synthetic --config models/configs/Mixtral-8x7B-v0.1.json --layers 8 --device cuda \
          --prompt-tokens 128 --new-tokens 128 --distinct-matrices 2 2>&1 | grep -v "^load" | say
      done
    done ;;
  warm)
    # The warm rate `first` is held to: the same model, prompt length and new tokens after a first generation.
    for b in $( [ -x /tmp/old/daop/daop ] && echo old ) jit; do
      for r in 1 2; do
        echo "== warm rate, $b, round $r" | say
        "$(bin "$b")" bench synthetic --model "$model" --device cuda --prompt-tokens 9 --new-tokens 32 2>&1 | grep -v "^load\|^GPU GEMV" | say
      done
    done ;;
  graphs)
    # The decode step captured as a CUDA graph (DAOP_CUDA_GRAPHS=1) against plain launches, the same build, one call.
    for g in 0 1; do
      echo "-- jit DAOP_CUDA_GRAPHS=$g --device cuda" | say
      DAOP_CUDA_GRAPHS=$g /tmp/daop/daop run -m "$model" --device cuda -p "def fibonacci(n):" -n 32 --temperature 0 2>&1 | say
    done
    # Graph-replayed decode against the CPU: logits of every decode step, the models present in the tree.
    for m in "$model" tests/fixtures/hf-fixtures/*/; do
      [ -f "$m/config.json" ] || continue
      echo "== graphs 1, gpu-ops models, $m" | say
      DAOP_CUDA_GRAPHS=1 /tmp/daop/daop bench gpu-ops --part models --model "$m" 2>&1 | say
    done
    for r in 1 2; do
      for g in 0 1; do
        echo "== graphs $g, embedded model, round $r" | say
        DAOP_CUDA_GRAPHS=$g /tmp/daop/daop bench synthetic --model "$model" --device cuda --prompt-tokens 9 --new-tokens 128 2>&1 | grep -v "^load" | say
        echo "== graphs $g, 8-layer Mixtral-8x7B shape, round $r" | say
        DAOP_CUDA_GRAPHS=$g /tmp/daop/daop bench synthetic --config models/configs/Mixtral-8x7B-v0.1.json --layers 8 --device cuda \
          --prompt-tokens 128 --new-tokens 128 --distinct-matrices 2 2>&1 | grep -v "^load" | say
        echo "== graphs $g, 12-layer Qwen3-30B-A3B shape, round $r" | say
        DAOP_CUDA_GRAPHS=$g /tmp/daop/daop bench synthetic --config models/configs/Qwen3-30B-A3B.json --layers 12 --device cuda \
          --prompt-tokens 128 --new-tokens 128 --distinct-matrices 2 2>&1 | grep -v "^load" | say
      done
    done ;;
  checks)
    # Every kernel family against the CPU, every fixture family's model on the GPU against the CPU, and the engine checks.
    bench/device-gpu-ops.sh ${GPUOPS:-checks models engine} 2>&1 | say ;;
  esac
done
