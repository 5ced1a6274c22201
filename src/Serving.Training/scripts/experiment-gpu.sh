#!/usr/bin/env bash
# The GQA experiment on one H200, in one command of under 10 minutes (run from the repository root on the GPU
# machine, carrying .gpu/dotnet.tar.xz .gpu/run.sh .gpu/app .gpu/corpus from pack-gpu.sh; see ../README.md):
#   bash .gpu/run.sh bash src/Serving.Training/scripts/experiment-gpu.sh
# Trains and measures every variant (Serving.Training experiment), times decoding of the MHA, GQA-4, GQA-2 and MQA
# checkpoints in the engine (Serving.Bench), exports the default-model candidate, and leaves in $OUT:
#   experiment.tgz      results.json, bench.json, logs, every run's metrics.jsonl / eval.jsonl / trainer_state.json,
#                       the default model's config, generation config and tokenizer
#   model-0000N-of-0000M.safetensors, model.safetensors.index.json   the default model's weights (bf16 shards)
# Stopped by its time limit (MAX_SECONDS), it exits 3; on the same (warm) machine the same command continues.
# Exit 4: the benchmark failed, 5: the export failed (what exists is packed all the same).
# Environment: STEPS or TIME_BUDGET / MAX_STEPS (the teacher's length), BATCH, LR, UPTRAIN_LR, SHAPE; DEVICE, DTYPE, APP,
# CORPUS, EVAL_WINDOWS, BENCH_ARGS for a CPU smoke run of the script itself (SHAPE=tiny STEPS=40 DEVICE=cpu DTYPE=float32 ...).
set -euo pipefail
out=${OUT:-$PWD/out}
work=${EXPERIMENT_DIR:-$PWD/data/experiment}   # ignored by git: kept on a warm machine between calls
batch=${BATCH:-32}
# the teacher's length: STEPS, or (default) as many as fit TIME_BUDGET seconds of training, timed on this machine
size=${STEPS:+--steps $STEPS}
size=${size:---time-budget ${TIME_BUDGET:-330} --max-steps ${MAX_STEPS:-3600}}
mkdir -p "$out" "$work"
app=${APP:-.gpu/app}
device=${DEVICE:-cuda}
dtype=${DTYPE:-bfloat16}
status=0
dotnet $app/Serving.Training.dll experiment --data "${CORPUS:-.gpu/corpus}" --output "$work" --shape "${SHAPE:-base}" $size \
  --batch-size "$batch" --seq-len 512 --lr "${LR:-1e-3}" --uptrain-lr "${UPTRAIN_LR:-3e-4}" --eval-windows ${EVAL_WINDOWS:-256} --log-every 50 \
  --device "$device" --dtype "$dtype" --no-charts --max-seconds "${MAX_SECONDS:-480}" 2>&1 | tee -a "$work/experiment.log" || status=$?
if [ "$status" -eq 0 ]; then
  dotnet $app/Serving.Bench.dll --model "$work"/runs/{mha,gqa4-mean-pool-a5,gqa2-mean-pool-a5,mqa-mean-pool-a5}/checkpoint \
    --device "$device" --dtype "$dtype" ${BENCH_ARGS:---batch 256 --context 2048 --prefill 16x512 --generate 1} --no-plain --no-check \
    --json "$work/bench.json" 2>&1 | tee "$work/bench.log" || status=4
  # the default model goes back even when the benchmark failed
  dotnet $app/Serving.Training.dll export-default --experiment "$work" --output "$work/default-model" 2>&1 | tee "$work/export.log" \
    && cp "$work"/default-model/model*.safetensors* "$out"/ || status=5
fi
(cd "$work" && tar czf "$out/experiment.tgz" --exclude='*.safetensors' --exclude='*.saving' --exclude='*.previous' \
  --exclude='runs/*/checkpoint/tokenizer.json' --exclude='converted/*/tokenizer.json' \
  $(ls -d results.json experiment.log bench.json bench.log export.log runs converted default-model 2>/dev/null))
ls -la "$out"
exit "$status"
