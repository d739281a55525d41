#!/usr/bin/env bash
# Daop's CPU path beside llama.cpp's on the same weights, in one run: prefill and decode tok/s at bf16, Q8_0 and Q4_0.
# This script builds nothing: point it at a llama.cpp build you made (see ../shared/peers/llamacpp/README.md for the
# static AVX-512 CPU build that also runs on the GPU machine's host) and at its source tree (for gguf-py).
#
#   LLAMA_BIN=/tmp/llamacpp/build/bin LLAMA_SRC=/tmp/llamacpp/src bench/llamacpp-compare.sh MODEL_DIR [THREADS]
#
# MODEL_DIR: a Mixtral-shaped bf16 checkpoint, e.g. made by ../shared/tools/random_mixtral_checkpoint.py OUT 1 models/tiny-mixtral-code.
# Converts it to GGUF (bf16; Q8_0 and Q4_0 with llama-quantize --pure, so every matrix has the same format in both
# tools), runs llama-bench (-p 64 -n 32, best of ROUNDS=3 interleaved rounds) and `daop bench synthetic --model MODEL_DIR --device cpu` with the same
# formats (--expert-dtype/--dense-dtype), then both on one Q4_K_M file made by llama-quantize, and prints one table. Set DAOP to a daop binary (default: dotnet run),
# FORMATS to other formats (default: "bf16 q8_0 q4_0 q4_k_m"; the K-quant mixes q3_k_m, q4_k_m, q5_k_m, ... and the types Daop only
# reads, q5_0, q4_1, q5_1, are made by llama-quantize, --pure for the single types, and read by both tools from the file).
set -euo pipefail
model=${1:?usage: LLAMA_BIN=... LLAMA_SRC=... bench/llamacpp-compare.sh MODEL_DIR [THREADS]}
threads=${2:-$(nproc)}
bin=${LLAMA_BIN:?set LLAMA_BIN to the llama.cpp build/bin folder}
src=${LLAMA_SRC:?set LLAMA_SRC to the llama.cpp source tree, for gguf-py}
here=$(cd "$(dirname "$0")/.." && pwd)
conv=${CONVERT:-$here/../shared/peers/llamacpp/hf_mixtral_to_gguf.py}
daop=${DAOP:-dotnet run --project $here/src/Daop.Cli -c Release --}
work=${WORK:-/tmp/daop-llamacpp}
mkdir -p "$work"
py=${PY:-/usr/bin/python3}   # the device machine has numpy only in the python3 on PATH
name=$(basename "$model")
[ -f "$work/$name-bf16.gguf" ] || PYTHONPATH=$src/gguf-py $py "$conv" "$model" "$work/$name-bf16.gguf" --outtype bf16
formats=${FORMATS:-bf16 q8_0 q4_0 q4_k_m}
for q in $formats; do
  [ $q = bf16 ] || [ -f "$work/$name-$q.gguf" ] || case $q in
    # the K-quant mixes as people download them (Q4_K_M: q4_K, q6_K for some matrices); the rest one type throughout
    *_k_m|*_k_s) "$bin/llama-quantize" "$work/$name-bf16.gguf" "$work/$name-$q.gguf" "${q^^}" > /dev/null ;;
    *) "$bin/llama-quantize" --pure "$work/$name-bf16.gguf" "$work/$name-$q.gguf" "${q^^}" > /dev/null ;;
  esac
done
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $threads threads"
printf '%-6s %-9s %12s %12s\n' format tool "prefill t/s" "decode t/s"
# Each format: ROUNDS rounds (default 3), llama.cpp then Daop in each, the best of each tool kept, so a load burst on a
# shared machine does not decide a ratio.
rounds=${ROUNDS:-3}
best() { $py -c "import sys; print(max(float(x) for x in sys.argv[1:]))" "$@"; }
for f in $formats; do
  case $f in
    bf16|q8_0|q4_0) src_args=(--model "$model" --expert-dtype $f --dense-dtype $f) ;;  # quantized at load: llama-quantize --pure's bits
    *) src_args=(--model "$work/$name-$f.gguf") ;;   # formats Daop only reads: the GGUF file itself
  esac
  lpp=(); ltg=(); dpp=(); dtg=()
  for r in $(seq "$rounds"); do
    "$bin/llama-bench" -m "$work/$name-$f.gguf" -p 64 -n 32 -t "$threads" -r 1 -o json > "$work/llama-$f.json" 2>/dev/null
    read pp tg < <($py -c "import json,sys; r=json.load(open(sys.argv[1])); pp=[x['avg_ts'] for x in r if x['n_prompt']>0]; tg=[x['avg_ts'] for x in r if x['n_gen']>0]; print(f'{pp[0]:.1f} {tg[0]:.1f}')" "$work/llama-$f.json")
    lpp+=("$pp"); ltg+=("$tg")
    DAOP_THREADS=$threads $daop bench synthetic "${src_args[@]}" --device cpu --prompt-tokens 64 --new-tokens 32 > "$work/daop-$f.txt"
    # "prefill 64 tokens: P tok/s; decode 31 tokens: D tok/s"
    read pp tg < <(sed -n 's/^prefill [0-9]* tokens: \([0-9.]*\) tok\/s; decode [0-9]* tokens: \([0-9.]*\) tok\/s.*/\1 \2/p' "$work/daop-$f.txt" | tail -1)
    dpp+=("$pp"); dtg+=("$tg")
  done
  pp=$(best "${lpp[@]}"); tg=$(best "${ltg[@]}"); p2=$(best "${dpp[@]}"); t2=$(best "${dtg[@]}")
  printf '%-6s %-9s %12s %12s   (rounds: %s / %s)\n' $f llama.cpp "$pp" "$tg" "${lpp[*]}" "${ltg[*]}"
  printf '%-6s %-9s %12s %12s   (rounds: %s / %s; daop / llama.cpp: prefill %.2fx, decode %.2fx)\n' $f daop "$p2" "$t2" "${dpp[*]}" "${dtg[*]}" \
    "$($py -c "print($p2/$pp)")" "$($py -c "print($t2/$tg)")"
done
