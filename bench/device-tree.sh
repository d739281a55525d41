#!/usr/bin/env bash
# The device tool carries the working tree and the carried paths, 64 MiB in all. The tracked tree is ~56 MB (the GGUF
# and K-quant fixtures alone ~17 MB) and a packed daop (bench/device-pack.sh) ~26 MB, so before a device call move the
# test fixtures the device scripts do not read out of the tree, and back after:
#   bench/device-tree.sh out     moves tests/fixtures/gguf and tests/fixtures/kquants to ../daop-device-stash/
#   bench/device-tree.sh in      puts them back
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
    "$0" size ;;
  in)
    for d in gguf kquants; do if [ -d "$stash/$d" ]; then mv "$stash/$d" tests/fixtures/$d; fi; done
    git status --short | grep '^ D' && { echo "some tracked files are still missing" >&2; exit 1; } || echo "fixtures back" ;;
  size)
    set +o pipefail # stat fails on tracked files that are moved out: they do not travel
    tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
    carry=$(du -sb .device-carry .device-carry-before 2>/dev/null | awk '{s += $1} END {print s + 0}')
    echo "tree $((tree / 1048576)) MiB + carry dirs $((carry / 1048576)) MiB (limit 64 MiB)" ;;
  *) echo "usage: bench/device-tree.sh out|in|size" >&2; exit 2 ;;
esac
