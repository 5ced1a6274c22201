#!/usr/bin/env bash
# Installs the GPU experiment's default-model candidate as the server's embedded model and prints what it writes.
#   src/Serving.Training/scripts/install-default-model.sh FETCHED
# FETCHED: the folder holding the run's experiment.tgz and the model*.safetensors* files it left in $OUT.
set -euo pipefail
fetched=${1:?usage: install-default-model.sh FETCHED}
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
target=$root/src/Serving.Server/DefaultModel
unpacked=$(mktemp -d)
tar xzf "$fetched/experiment.tgz" -C "$unpacked" default-model
ls "$fetched"/model*.safetensors* > /dev/null
rm -f "$target"/model*.safetensors*
cp "$unpacked"/default-model/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json} "$target"/
cp "$fetched"/model*.safetensors* "$target"/
rm -rf "$unpacked"
du -sh "$target"
cd "$root"
dotnet run -c Release --project src/Serving.Training -- sample --model "$target" --prompt "The Debian" --max-tokens 48
