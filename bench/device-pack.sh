#!/usr/bin/env bash
# Packs a self-contained linux-x64 daop for the GPU machine (no .NET there) into .device-carry/daop.tar.xz,
# trimmed below the carry limit (working tree + carry < 64 MiB): debugging and XML/data/MVC pieces that no daop
# command loads are left out. On the device: tar xJf .device-carry/daop.tar.xz -C /tmp && /tmp/daop/daop ...
# The tracked tree plus this pack is over the 64 MiB a call carries: bench/device-tree.sh out (and in, after the call)
# moves the GGUF fixtures aside.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(mktemp -d)/daop
dotnet publish src/Daop.Cli -c Release -r linux-x64 --self-contained -o "$out" -v q -nologo
cd "$out"
rm -f ./*.pdb libmscordaccore.so libmscordbi.so createdump System.Private.Xml*.dll System.Data*.dll \
  System.Private.DataContractSerialization.dll System.Xml*.dll Microsoft.VisualBasic*.dll Microsoft.Win32.Registry.dll \
  System.Windows*.dll Microsoft.AspNetCore.Mvc*.dll Microsoft.AspNetCore.Razor*.dll Microsoft.AspNetCore.Identity*.dll \
  Microsoft.AspNetCore.SignalR*.dll Microsoft.AspNetCore.Components*.dll
cd ..
mkdir -p "$root/.device-carry"
tar cf - daop | xz -9e -T0 > "$root/.device-carry/daop.tar.xz"
ls -l "$root/.device-carry/daop.tar.xz"
