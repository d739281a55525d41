#!/usr/bin/env bash
# GPU kernels by op (issue 12) on the CUDA machine: every kernel against the CPU path, then the generic vs the generated
# expert kernels timed on the engine's path. .NET is absent there, so this runs the self-contained daop that
# bench/device-pack.sh packs into .device-carry/daop.tar.xz (unpacked to /tmp/daop on first use):
#
#   here:    bench/device-pack.sh                      (then carry .device-carry to the device)
#   device:  bench/device-gpu-ops.sh [STEP...]         from the repository root (models/, tests/fixtures/ are read there)
#
# STEP is checks, models, timings, bench-gpu or engine (batched decode and DAOP's approximate modes against the CPU,
# `bench gpu-ops --part engine` on the models its case lists, GPT-OSS included; not in the default) (default: the first four, in that order; each takes a few minutes at most,
# so they can go in separate calls). Every line also goes to $OUT/gpu-ops.txt when $OUT is set. It prints:
#   nvidia-smi's GPU name, memory and driver, then per step a "== step" header and:
#   checks     `daop bench gpu-ops --part checks`: the default kernel set's resolved options ("default kernel set:
#              lanes 32, ..., tensor cores on, GEMV unroll 4 group 128, MMA group 128, 11 generated expert shapes"),
#              one line per kernel family and kernel set, "check <family> [<set>]: N cases, worst error/tolerance W
#              (<worst case>) ok|FAIL", and "checks: F families, X failed". Families: linear (per dtype: decode GEMV,
#              row, tile / tensor-core), experts (routed through GpuExpertScheduler, per dtype at 40x24 and bf16 at every
#              generated shape, marked "generated" where the set runs generated kernels), dense FFN, norm, the generated
#              kernels' own Forward, attention, rope, embed, element-wise. Sets: default (tensor cores on sm_80+,
#              generated expert kernels), fma (tensor cores off), lanes 4 (sub-warp row teams), generic experts (no
#              generated kernels). Tolerances are the GPU tests'; W <= 1 passes.
#   models     `daop bench gpu-ops --part models` on models/tiny-mixtral-code and every tests/fixtures/hf-fixtures (all families)
#              model: "model <name> decode, generic|generated expert kernels: T ms/token, max relative logit error E,
#              N launches/token ok|FAIL" (GPU vs CPU logits over a 12-token prefill and 8 decode steps) and "model
#              <name> decode speed-up from generated kernels: R x". Only tiny-mixtral-code has a generated shape.
#   timings    `daop bench gpu-ops --part timings`: "engine experts <model> HxI bf16, E experts top-K, T token(s):
#              generic G us, generated S us (G/S x), L generated launches/call, max rel diff D" for Mixtral-8x7B
#              (8 top-2), Qwen3-30B-A3B (128 top-8), OLMoE-1B-7B (64 top-8) and tiny-mixtral-code at 1, 2 and 3 tokens
#              (GpuExpertScheduler.RunExperts: host tiling, index copy, gate/up + down(-combine) launches; best of 5
#              batches of 40 calls cycling 16 routings); then "GEMV bf16 14336x4096 unroll U group G: B GB/s" for
#              U in 2 4 8, G in 64 128 256 (one kernel set per setting).
#   bench-gpu  `daop bench gpu` as before (compare bench/results/h100-bench-gpu*.txt); its expert FFN lines now add
#              "generated routed (engine launcher) X us".
# Finally "== exit status S": 1 when a check or model comparison failed (or daop failed), else 0.
set -uo pipefail
cd "$(dirname "$0")/.."
daop=/tmp/daop/daop
if [ ! -x "$daop" ]; then
  tar xJf .device-carry/daop.tar.xz -C /tmp || { echo "no .device-carry/daop.tar.xz: run bench/device-pack.sh first" >&2; exit 2; }
fi
log=${OUT:+$OUT/gpu-ops.txt}
say() { if [ -n "$log" ]; then tee -a "$log"; else cat; fi; }
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(checks models timings bench-gpu)
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | say
for step in "${steps[@]}"; do
  echo "== $step" | say
  case $step in
    checks) "$daop" bench gpu-ops --part checks 2>&1 | say || status=1 ;;
    models)
      for m in models/tiny-mixtral-code tests/fixtures/hf-fixtures/*/; do
        "$daop" bench gpu-ops --part models --model "$m" 2>&1 | grep -v '^device:' | say || status=1
      done ;;
    timings) "$daop" bench gpu-ops --part timings 2>&1 | say || status=1 ;;
    bench-gpu) "$daop" bench gpu 2>&1 | say || status=1 ;;
    engine)
      # not llama4-tiny (its router weight scales the expert input: no approximate mode) nor gptoss-tiny-mxfp4 (the CPU
      # stand-in's MXFP4 kernels quantize activations to int8, ~1e-2 from the GPU's exact ones: GptOss offload tests)
      for m in models/tiny-mixtral-code tests/fixtures/hf-fixtures/{mixtral-tiny,qwen3moe-tiny,olmoe-tiny,llama-odd,granitemoe-odd,deepseekv2-tiny,deepseekv3-tiny,gptoss-tiny}; do
        "$daop" bench gpu-ops --part engine --model "$m" 2>&1 | grep -v '^device:' | say || status=1
      done ;;
    *) echo "unknown step $step (checks, models, timings, bench-gpu, engine)" | say; status=2 ;;
  esac
done
echo "== exit status $status" | say
exit $status
