#!/usr/bin/env bash
# Makes .gpu/ (from ../shared/gpu/pack.sh, build/pack-gpu-tests.sh and build/pack-gpu-ab.sh) small enough to travel
# to the GPU machine beside the tracked tree (64 MiB in all; the embedded default model alone is 31 MB of it):
#   - the .NET runtime without ASP.NET Core (kept, with HTTP, when .gpu/app holds the server) and without assemblies
#     nothing on the GPU machine loads (debugger support, VB, System.Data, HTTP/QUIC/mail, data-contract
#     serialization, LINQ expressions), xz -9;
#   - app and test folders without what only TorchSharp's optional features (images, TensorBoard, downloads) or the
#     VSTest host use, their deps.json entries removed with them (the host refuses a manifest naming a missing file).
#     Google.Protobuf stays: the server's gRPC messages and Microsoft.ML.Tokenizers' SentencePiece reader use it.
# Checked with the bench (decode, engine), the engine's GPU tests under xunit's console runner, both on the H200.
# Prints the bytes that will travel. Usage: bash build/trim-gpu-pack.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
gpu=$root/.gpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -f "$gpu/app/Serving.Server.dll" ]; then
  echo "the server is in .gpu/app: the .NET runtime keeps ASP.NET Core"
elif [ -f "$gpu/dotnet.tar.xz" ] && tar -tJf "$gpu/dotnet.tar.xz" > "$work/list" && grep -q 'Microsoft.AspNetCore.App/' "$work/list"; then
  rm "$work/list"
  tar -xJf "$gpu/dotnet.tar.xz" -C "$work"
  rm -rf "$work"/shared/Microsoft.AspNetCore.App
  fx=$(ls -d "$work"/shared/Microsoft.NETCore.App/*)
  (cd "$fx" && rm -f libmscordaccore.so libmscordbi.so createdump Microsoft.VisualBasic*.dll System.Data*.dll \
    System.Net.Quic.dll System.Net.Mail.dll System.Net.Http*.dll System.Net.WebSockets*.dll System.Linq.AsyncEnumerable.dll \
    System.Linq.Expressions.dll System.Private.DataContractSerialization.dll System.Runtime.Serialization.Xml.dll \
    System.Runtime.Serialization.Json.dll System.Diagnostics.EventLog*.dll)
  (cd "$work" && tar -cf - . | xz -9 -T0 > "$gpu/dotnet.tar.xz")
fi

for dir in "$gpu/app" "$gpu/app-base" "$gpu/tests"; do
  [ -d "$dir" ] || continue
  (cd "$dir" && rm -rf cpu x64 x86 arm64 cs de es fr it ja ko pl pt-BR ru tr zh-Hans zh-Hant Templates Tokenization \
    Microsoft.TestPlatform* Microsoft.VisualStudio.* Microsoft.CodeCoverage* testhost* xunit.runner.visualstudio* \
    Mono.Cecil* Microsoft.DiaSymReader* SkiaSharp.dll ICSharpCode.SharpZipLib.dll Humanizer.dll \
    Newtonsoft.Json.dll System.Memory.dll ThirdPartyNotices.txt)
  python3 - "$dir" <<'PY'
import json, os, sys
folder = sys.argv[1]
for name in os.listdir(folder):
    if not name.endswith(".deps.json"):
        continue
    path = os.path.join(folder, name)
    deps = json.load(open(path))
    for target in deps["targets"].values():
        for library in target.values():
            runtime = library.get("runtime", {})
            for asset in list(runtime):
                if not os.path.exists(os.path.join(folder, os.path.basename(asset))):
                    del runtime[asset]
    json.dump(deps, open(path, "w"), indent=2)
PY
done

cd "$root"
# tracked files moved out of the tree for a run (the default model's weights, see gpu-serve-bench.sh) do not travel
tracked=$( (git ls-files -z | xargs -0 stat -c %s 2>/dev/null || true) | paste -sd+ | bc)
untracked=$(git ls-files -o --exclude-standard -z | xargs -0 -r stat -c %s | paste -sd+ | bc)
carried=$(find .gpu -type f -printf '%s\n' | paste -sd+ | bc)
total=$((tracked + ${untracked:-0} + carried))
echo "travels: $total bytes (tracked $tracked, untracked ${untracked:-0}, .gpu $carried) of $((64 * 1024 * 1024));" \
  "keep a margin of ~1 MB: the device tool counts a little more than this"
