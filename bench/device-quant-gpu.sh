#!/usr/bin/env bash
# GPU block formats (issue 13, GPU side) on the CUDA machine: Q8_0, Q4_0 and MXFP4 kernels against the CPU path, their
# decode GEMV and routed expert timed next to bf16 in the same run, and a model with quantized experts against the CPU.
# .NET is absent there, so this runs the self-contained daop that bench/device-pack.sh packs into
# .device-carry/daop.tar.xz (unpacked to /tmp/daop on first use):
#
#   here:    bench/device-pack.sh                      (then carry .device-carry to the device)
#   device:  bench/device-quant-gpu.sh [STEP...]       from the repository root (models/ is read there)
#
# STEP is checks, timings or models (default: all three, in that order; together about 3-5 minutes on an H100/H200, each
# well within one 10-minute call). Every line also goes to $OUT/quant-gpu.txt when $OUT is set. It prints nvidia-smi's
# GPU name, memory and driver, then per step a "== step" header and:
#   checks   `daop bench gpu-ops --part quant-checks`: "check <family> [<set>]: N cases, worst error/tolerance W (<worst
#            case>) ok|FAIL" for, per format (q8_0, q4_0, mxfp4) and kernel set (default; lanes 4 = sub-warp row teams):
#            linear (decode GEMV at 1 token, row kernel 2-4, tile kernel 5+; shapes 7x40, 80x296, 256x2880, 1024x4096,
#            4096x1024), experts 264x296 (routed through GpuExpertScheduler, 8 experts top-2, 1-70 tokens: fused
#            down-and-combine, grouped rows, batched tiles), dense FFN 264x296; then experts 4096x14336 per format
#            (Mixtral's shape, 8 experts top-2, 1, 2, 3, 9 tokens), "embed block formats", and the bf16 generated expert
#            shapes ("experts bf16 HxI generated [default]": the generated kernel sets, unaffected). References are
#            double-precision sums over the blocks' dequantized values (random GGUF blocks); tolerances are the dense
#            kernels' (1e-5 · Σ|x·w| per Linear output, 2e-5 · M per expert output); W <= 1 passes. Ends with
#            "quant checks: F families, X failed".
#   timings  `daop bench gpu-ops --part quant-timings`, every format after bf16 in the same process, each call reading
#            weights not in L2 (the timings rotate over >= 256 MiB of copies):
#            "GEMV 14336x4096 <fmt>: T us, M MB read, G GB/s[, R x bf16's speed]" (the decode GEMV, default set);
#            "GEMV 14336x4096 <fmt> rows/warp R unroll U group S: T us, G GB/s" (R in 2 1: rows sharing each activation
#            load, default 2; U in 2 4: chunks in flight per lane; S in 128 256: threads per group);
#            "routed expert 4096x14336 <fmt> [<set>], 1 token: gate/up T us (G GB/s), down+combine T us (G GB/s), both T us
#            (M MB, G GB/s)[, R x bf16's speed]" (one expert as the engine launches it: fused gate/up + SiLU, then down
#            fused with the combine; bf16 with the generic kernels and with the default set's generated ones; the block
#            formats with the default set and with one down row per warp, "rows/warp 1");
#            "engine experts Mixtral-8x7B 4096x14336 <fmt>, 8 experts top-2, 1 token: T us (G GB/s of M MB)" (the
#            scheduler's whole call: host tiling, index copy, two launches); "prefill experts Mixtral-8x7B <fmt>, 128
#            tokens top-2: T us (M MB of weights, F TFLOP/s)" (batched tiles; bf16 on the tensor cores).
#            GB/s counts the bytes of the weights in their device layout (the quantized bytes: Q4_0 18/32, Q8_0 34/32,
#            MXFP4 17/32 bytes per weight). H200 HBM3e peaks at 4.8 TB/s (H100 SXM 3.35 TB/s).
#   models   `daop bench gpu-ops --part quant-models` on models/tiny-mixtral-code with its experts quantized in memory:
#            "model tiny-mixtral-code experts <fmt> resident|offloaded (50 % in slots, LRU): T ms/token, max relative logit
#            error E, M MB on device ok|FAIL" (GPU on the blocks vs CPU on their fp32 values, 12-token prefill and 8
#            decode steps; <= 1e-3 passes).
# Finally "== exit status S": 1 when a check or model comparison failed (or daop failed), else 0.
set -uo pipefail
cd "$(dirname "$0")/.."
daop=/tmp/daop/daop
if [ ! -x "$daop" ]; then
  tar xJf .device-carry/daop.tar.xz -C /tmp || { echo "no .device-carry/daop.tar.xz: run bench/device-pack.sh first" >&2; exit 2; }
fi
log=${OUT:+$OUT/quant-gpu.txt}
say() { if [ -n "$log" ]; then tee -a "$log"; else cat; fi; }
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(checks timings models)
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | say
for step in "${steps[@]}"; do
  echo "== $step" | say
  start=$SECONDS
  case $step in
    checks) "$daop" bench gpu-ops --part quant-checks 2>&1 | say || status=1 ;;
    timings) "$daop" bench gpu-ops --part quant-timings 2>&1 | say || status=1 ;;
    models) "$daop" bench gpu-ops --part quant-models --model models/tiny-mixtral-code 2>&1 | grep -v '^device:' | say || status=1 ;;
    *) echo "unknown step $step (checks, timings, models)" | say; status=2 ;;
  esac
  echo "($step took $((SECONDS - start)) s)" | say
done
echo "== exit status $status" | say
exit $status
