#!/usr/bin/env bash
# Packs Serving.Bench from two commits for an A/B in one device call: a GPU's clocks and matmul rate move between
# calls (an H200 here: 0.1-0.6 ms on a decode step), so two builds are only comparable when timed in the same call,
# alternately.
#   bash build/pack-gpu-ab.sh BASE      # BASE (commit, branch or tag) -> .gpu/app-base; the work tree -> .gpu/app
# Needs the .NET runtime and launcher in .gpu/ first (../shared/gpu/pack.sh); keeps .gpu/tests and .gpu/fixtures
# (build/pack-gpu-tests.sh) if they are there, trims everything (build/trim-gpu-pack.sh) and writes .gpu/ab.sh. For
# the upload to fit, move src/Serving.Server/DefaultModel/*.safetensors out of the work tree for the run.
# Then on the GPU machine, with .gpu carried:
#   bash .gpu/ab.sh ROUNDS BENCH-ARGS...
# runs base, candidate, base, candidate, ... ROUNDS times each with the same arguments, logs in
# $OUT/ab-{base,candidate}-N.log, and prints each run's decode, split and profile lines as it goes. Example:
#   bash .gpu/ab.sh 2 --no-plain --no-check --cuda-graphs --attention-splits --model llama3-8b-mqa --batch 64 --context 2048 --generate 1
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,14p' "$0"; exit 2; }
base=$1
root=$(git rev-parse --show-toplevel)
gpu=$root/.gpu
[ -f "$gpu/run.sh" ] && [ -f "$gpu/dotnet.tar.xz" ] || { echo "no .NET runtime in .gpu/: run ../shared/gpu/pack.sh first"; exit 1; }
git -C "$root" rev-parse --verify --quiet "$base^{commit}" > /dev/null || { echo "not a commit: $base"; exit 1; }

publish() {  # project folder, output folder
  rm -rf "$2"
  dotnet publish "$1" -c Release -r linux-x64 --self-contained false -p:TorchFlavour=none -o "$2/" > /dev/null
  rm -f "$2"/*.pdb
}

tree=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$tree" 2> /dev/null || rm -rf "$tree"' EXIT
git -C "$root" worktree add --quiet --detach "$tree" "$base"
echo "base $(git -C "$root" rev-parse --short "$base") -> .gpu/app-base"
publish "$tree/src/Serving.Bench" "$gpu/app-base"
echo "candidate (the work tree at $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src || echo ', with changes')) -> .gpu/app"
publish "$root/src/Serving.Bench" "$gpu/app"

cat > "$gpu/ab.sh" <<'RUN'
#!/usr/bin/env bash
# bash .gpu/ab.sh ROUNDS BENCH-ARGS...: base and candidate alternately (build/pack-gpu-ab.sh)
rounds=$1; shift
for round in $(seq 1 "$rounds"); do
  for side in base candidate; do
    app=.gpu/app; [ $side = base ] && app=.gpu/app-base
    start=$SECONDS
    bash .gpu/run.sh dotnet $app/Serving.Bench.dll "$@" > "$OUT/ab-$side-$round.log" 2>&1
    echo "== $side, round $round: exit $?, $((SECONDS - start)) s"
    grep -E "attention splits|decode b=|prefill [0-9]|profile b=|kv quality" "$OUT/ab-$side-$round.log" | cut -c1-220
  done
done
RUN
bash "$root/build/trim-gpu-pack.sh"
