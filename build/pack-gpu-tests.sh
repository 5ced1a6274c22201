#!/usr/bin/env bash
# Packs the engine tests for the GPU machine (which has the .NET runtime from ../shared/gpu/pack.sh, no SDK):
# the test assembly in the `none` TorchSharp flavour (the machine's own CUDA libtorch) plus xunit's console
# runner. Then, on that machine, with .gpu carried:
#   SERVING_FIXTURES=$PWD/.gpu/fixtures DOTNET_ROLL_FORWARD=Major \
#     bash .gpu/run.sh dotnet .gpu/tests/xunit.console.dll .gpu/tests/Serving.Engine.Tests.dll -namespace Serving.Engine.Tests.Cuda
# The fixtures travel as .gpu/fixtures, copied here from $SERVING_FIXTURES or ../shared/fixtures (without them the
# fixture tests fail to open their files). Then bash build/trim-gpu-pack.sh, so that .gpu/ fits beside the tracked
# tree. CI has no GPU: there the [GpuFact] tests skip themselves.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
out=$root/.gpu/tests
rm -rf "$out"
dotnet publish "$root/tests/Serving.Engine.Tests" -c Release -r linux-x64 --self-contained false -p:TorchFlavour=none -o "$out/"
runner=$(mktemp -d)
cat > "$runner/runner.csproj" <<'PROJ'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework><ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally></PropertyGroup>
  <ItemGroup><PackageReference Include="xunit.runner.console" Version="2.4.1" /></ItemGroup>
</Project>
PROJ
dotnet restore "$runner/runner.csproj" >/dev/null
cp "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/xunit.runner.console/2.4.1/tools/netcoreapp2.0/* "$out/"
rm -rf "$runner" "$out"/CodeCoverage "$out"/*.pdb
fixtures=${SERVING_FIXTURES:-$root/../shared/fixtures}
rm -rf "$root/.gpu/fixtures"
if [ -d "$fixtures" ]; then cp -r "$fixtures" "$root/.gpu/fixtures"; else echo "no fixtures at $fixtures: the fixture tests will fail"; fi
du -sh "$out" "$root/.gpu/fixtures" 2> /dev/null
