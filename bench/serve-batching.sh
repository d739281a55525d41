#!/usr/bin/env bash
# Continuous batching against one-at-a-time on one model: `daop bench serve` at each client count with --parallel 1
# (FIFO) and --parallel = clients, interleaved, one JSON line per run.
#   MODEL=/path CLIENTS="1 4 16" SECONDS_EACH=20 MAX_TOKENS=32 bench/serve-batching.sh > results.jsonl
# EXTRA adds daop options to every run, e.g. EXTRA="--device cuda" or EXTRA="--device cuda --expert-cache-ratio 0.25 --policy daop".
set -euo pipefail
cd "$(dirname "$0")/.."
daop=${DAOP:-src/Daop.Cli/bin/Release/net10.0/daop}
model=${MODEL:?MODEL=folder}
for c in ${CLIENTS:-1 4 16}; do
  for p in $( (echo 1; echo "$c") | sort -un); do
    "$daop" bench serve -m "$model" --context "${CONTEXT:-512}" --clients "$c" --parallel "$p" --seconds "${SECONDS_EACH:-20}" \
      -n "${MAX_TOKENS:-32}" --json ${EXTRA:-}
  done
done
