#!/usr/bin/env bash
# CPU kernel variants on one host, interleaved (issue 13): `daop bench kernels --only-formats` with each tuning switch
# the kernels read, so one run compares the paths side by side on that machine.
#   bench/device-pack.sh here; on the device: bench/device-kernel-variants.sh [ROUNDS]
# Variants: default; DAOP_Q8_SIGN_TRICK=1 (Q8_0/IQ4_NL on the sign trick instead of biased VNNI activations);
# DAOP_KQUANT_WIDE_MIN=1 (K-quants on the 512-bit path from one token, decode included).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/daop/daop ] || tar xJf .device-carry/daop.tar.xz -C /tmp
daop=${DAOP:-/tmp/daop/daop}
formats=${FORMATS:-q8_0,iq4_nl,q4_0,q4_K,q6_K}
batches=${BATCHES:-4,16,64}
for r in $(seq "${1:-2}"); do
  for v in default DAOP_Q8_SIGN_TRICK=1 DAOP_KQUANT_WIDE_MIN=1; do
    echo "== round $r: $v"
    env $( [ $v = default ] || echo $v ) "$daop" bench kernels --only-formats --formats "$formats" --format-batches "$batches" 2>&1 | tail -n +2
  done
done
