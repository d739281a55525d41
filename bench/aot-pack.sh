#!/usr/bin/env bash
# Packs the NativeAOT daop (src/Daop.Cli.Aot, linux-x64) for the GPU machine into .device-carry/daop-aot.tar.xz.
# On the device: tar xJf .device-carry/daop-aot.tar.xz -C /tmp && /tmp/daop-aot/daop ...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(mktemp -d)/daop-aot
dotnet publish src/Daop.Cli.Aot -c Release -r linux-x64 -o "$out" -v q -nologo
rm -f "$out"/*.dbg "$out"/*.pdb
ls -l "$out"
mkdir -p "$root/.device-carry"
tar cf - -C "$(dirname "$out")" daop-aot | xz -9e -T0 > "$root/.device-carry/daop-aot.tar.xz"
ls -l "$root/.device-carry/daop-aot.tar.xz"
