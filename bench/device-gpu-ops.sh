#!/usr/bin/env bash
# GPU kernels by op (issue 12), on the CUDA machine: every kernel against the CPU path, then the generic vs the
# generated expert kernels timed on the engine's path. .NET is absent there, so this runs the self-contained daop that
# bench/device-pack.sh packed into .device-carry/daop.tar.xz (pack it here first, then carry .device-carry):
#
#   here:    bench/device-pack.sh
#   device:  bench/device-gpu-ops.sh            (from the repository root; models/ and tests/fixtures/ are read there)
#
# Prints, in order (each line also goes to $OUT/gpu-ops.txt when $OUT is set):
#   1. nvidia-smi's GPU name, memory and driver;
#   2. `daop bench gpu-ops --check-only`: the default kernel set's resolved options, then one line per kernel family
#      and kernel set: "check <family> [<set>]: N cases, worst error/tolerance W (<worst case>) ok|FAIL", and
#      "checks: F families, X failed". Sets: default (tensor cores on sm_80+, generated expert kernels), fma (tensor
#      cores off), lanes 4 (sub-warp row teams), generic experts (no generated kernels). Tolerances are the GPU tests'.
#   3. `daop bench gpu-ops --model-only` on the default model and every HF test fixture: GPU vs CPU logits with the
#      generic and with the generated expert kernels ("max relative logit error E, N launches/token ok|FAIL", decode
#      ms/token and the speed-up).
#   4. `daop bench gpu-ops` timings: "engine experts <model> HxI bf16, E experts top-K, T tokens: generic G us,
#      generated S us (G/S x), L generated launches/call, max rel diff D" for Mixtral-8x7B, Qwen3-30B-A3B, OLMoE-1B-7B
#      and tiny-mixtral-code at 1, 2 and 3 tokens (GpuExpertScheduler.RunExperts: host tiling + index copy + launches,
#      best of 5 batches of 40 calls cycling 16 routings); the GEMV bf16 14336x4096 sweep over unroll {2,4,8} × group
#      {64,128,256} (one kernel set per setting); the default model with either kernel set again. (Its check lines
#      repeat step 2's.)
#   5. `daop bench gpu` (the existing benchmark, for comparison with bench/results/h100-bench-gpu*.txt), whose expert
#      FFN line now adds "generated routed (engine launcher)".
# Exit status: 1 when any check or model comparison failed, else 0.
set -uo pipefail
cd "$(dirname "$0")/.."
daop=/tmp/daop/daop
if [ ! -x "$daop" ]; then
  tar xJf .device-carry/daop.tar.xz -C /tmp || { echo "daop: no .device-carry/daop.tar.xz (run bench/device-pack.sh first)" >&2; exit 2; }
fi
log=${OUT:+$OUT/gpu-ops.txt}
say() { if [ -n "$log" ]; then tee -a "$log"; else cat; fi; }
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | say

echo "== kernel checks" | say
"$daop" bench gpu-ops --check-only 2>&1 | say || status=1

echo "== models on the GPU vs the CPU, generic and generated expert kernels" | say
for m in models/tiny-mixtral-code tests/fixtures/hf-fixtures/{mixtral-tiny,mixtral-odd,qwen2moe-tiny,qwen3moe-tiny,olmoe-tiny,phimoe-tiny}; do
  "$daop" bench gpu-ops --model-only --model "$m" 2>&1 | grep -v '^device:' | say || status=1
done

echo "== engine expert path, GEMV sweep, default model (the full command)" | say
"$daop" bench gpu-ops 2>&1 | grep -v '^check ' | say || status=1

echo "== bench gpu" | say
"$daop" bench gpu 2>&1 | say || status=1

echo "== exit status $status" | say
exit $status
