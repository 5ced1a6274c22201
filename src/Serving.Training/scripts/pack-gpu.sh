#!/usr/bin/env bash
# Packs everything the GPU experiment needs into .gpu/ (carried to the GPU machine, at most 64 MiB with the working
# tree): the .NET runtime (../shared/gpu/pack.sh), Serving.Training and Serving.Bench published for the machine's own
# CUDA libtorch, and the prepared corpus's token files and tokenizer (data/corpus, from prepare-corpus.sh).
#   src/Serving.Training/scripts/pack-gpu.sh
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
corpus=${CORPUS:-data/corpus}
for f in train.u16.br heldout.u16.br manifest.json tokenizer/tokenizer.json tokenizer/tokenizer_config.json; do
  [ -f "$corpus/$f" ] || { echo "missing $corpus/$f: run src/Serving.Training/scripts/prepare-corpus.sh first" >&2; exit 1; }
done
../shared/gpu/pack.sh src/Serving.Training -p:TorchFlavour=none
dotnet publish src/Serving.Bench -c Release -r linux-x64 --self-contained false -p:TorchFlavour=none -o .gpu/app/
find .gpu/app -name '*.pdb' -delete
# charts are drawn afterwards on the CPU machine (`report`): the GPU run needs no SkiaSharp
rm -f .gpu/app/libSkiaSharp.so .gpu/app/libHarfBuzzSharp.so
rm -rf .gpu/corpus && mkdir -p .gpu/corpus/tokenizer
cp "$corpus"/train.u16.br "$corpus"/heldout.u16.br "$corpus"/manifest.json .gpu/corpus/
cp "$corpus"/tokenizer/tokenizer.json "$corpus"/tokenizer/tokenizer_config.json .gpu/corpus/tokenizer/
du -sh .gpu .gpu/app .gpu/corpus
