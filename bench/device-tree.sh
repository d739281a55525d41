#!/usr/bin/env bash
# The device tool carries the working tree and the carried paths, 64 MiB in all. The tracked tree is ~56 MB (the GGUF
# and K-quant fixtures alone ~17 MB) and a packed daop (bench/device-pack.sh) ~26 MB, so before a device call move the
# test fixtures the device scripts do not read out of the tree, and back after:
#   bench/device-tree.sh out     moves tests/fixtures/gguf and tests/fixtures/kquants to ../daop-device-stash/
#   bench/device-tree.sh out lean   also the embedded model's reference logits and the tests/fixtures/hf-fixtures
#                                   models other than $KEEP_FIXTURES (default mixtral-tiny qwen3moe-tiny olmoe-tiny), for calls
#                                   that read no others (device-aot-gpu.sh text|first|warm|decode|graphs)
#   bench/device-tree.sh in      puts everything back
#   bench/device-tree.sh size    prints what would travel (tracked and untracked-not-ignored files present, + carry dirs)
# bench/device-gpu-ops.sh's models step reads tests/fixtures/hf-fixtures (kept); device-structure-check.sh and the
# trace replay read models/tiny-mixtral-code (kept).
set -euo pipefail
cd "$(dirname "$0")/.."
stash=../daop-device-stash
case ${1:-} in
  out)
    mkdir -p "$stash"
    for d in gguf kquants; do if [ -d tests/fixtures/$d ]; then mv tests/fixtures/$d "$stash/$d"; fi; done
    if [ "${2:-}" = lean ]; then
      mkdir -p "$stash/hf-fixtures"
      for m in tests/fixtures/hf-fixtures/*/; do
        m=$(basename "$m")
        case " ${KEEP_FIXTURES:-mixtral-tiny qwen3moe-tiny olmoe-tiny} " in *" $m "*) ;; *) mv "tests/fixtures/hf-fixtures/$m" "$stash/hf-fixtures/" ;; esac
      done
      [ -f models/tiny-mixtral-code/reference.safetensors ] && mv models/tiny-mixtral-code/reference.safetensors "$stash/"
    fi
    "$0" size ;;
  in)
    for d in gguf kquants; do if [ -d "$stash/$d" ]; then mv "$stash/$d" tests/fixtures/$d; fi; done
    if [ -d "$stash/hf-fixtures" ]; then
      for m in "$stash"/hf-fixtures/*/; do [ -d "$m" ] && mv "$m" tests/fixtures/hf-fixtures/; done
      rmdir "$stash/hf-fixtures"
    fi
    if [ -f "$stash/reference.safetensors" ]; then mv "$stash/reference.safetensors" models/tiny-mixtral-code/; fi
    git status --short | grep '^ D' && { echo "some tracked files are still missing" >&2; exit 1; } || echo "fixtures back" ;;
  size)
    set +o pipefail # stat fails on tracked files that are moved out: they do not travel
    tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
    carry=$(du -sb .device-carry .device-carry-before 2>/dev/null | awk '{s += $1} END {print s + 0}')
    echo "tree $((tree / 1048576)) MiB + carry dirs $((carry / 1048576)) MiB (limit 64 MiB)" ;;
  *) echo "usage: bench/device-tree.sh out|in|size" >&2; exit 2 ;;
esac
