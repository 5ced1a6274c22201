#!/usr/bin/env bash
# HTTP-path measurements on the GPU machine: the server (llama3-8b presets, bf16, random weights) driven by LoadGen.
#   light:    one request at a time, 512-token prompts, 128 out (TTFT, TPOT against the bench's batch-1 step)
#   saturate: 512 x (1000 + 1000) all at once (against `Serving.Bench engine` with the same shape)
#   compare:  GQA-8 against the MHA twin at 2048 + 2048, 96 requests at once, each server on 0.45 of the GPU
#   compare-fp8: GQA-8 with a bf16 KV cache against the same with an FP8 one, 256 x (1000 + 1000) at once, 0.45 each
# Pack (here): ../shared/gpu/pack.sh src/Serving.Server -p:TorchFlavour=none, then publish src/Serving.LoadGen into
# .gpu/app too (dotnet publish -c Release -r linux-x64 --self-contained false -p:TorchFlavour=none -o .gpu/app/),
# drop .gpu/app/DefaultModel/*.safetensors and libSkiaSharp/libHarfBuzzSharp (charts), add .gpu/tokenizer-llama3-8b
# (a .gpu/dotnet.tar.xz trimmed for the bench lacks ASP.NET Core: delete it before pack.sh, which then packs a whole one)
# (README of Serving.Bench), copy this script to .gpu/; for the upload to fit beside the ASP.NET Core runtime, move
# src/Serving.Server/DefaultModel/*.safetensors out of the work tree for the run (and back after).
# Usage (GPU machine, .gpu carried): bash .gpu/gpu-serve-bench.sh light saturate compare compare-fp8
export DOTNET_ROLL_FORWARD=Major
run() { bash .gpu/run.sh dotnet "$@"; }
start() {  # name model port grpc-port memory-fraction [more server flags]
  run .gpu/app/Serving.Server.dll --model "$2" --tokenizer .gpu/tokenizer-llama3-8b --device cuda --dtype bfloat16 \
    --port "$3" --grpc-port "$4" --gpu-memory-utilization "$5" --max-num-seqs 256 "${@:6}" > "$OUT/server-$1.log" 2>&1 &
  local pid=$!
  for i in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$3/v1/models" > /dev/null && { echo "server $1 up after ${i}s"; return 0; }
    kill -0 $pid 2> /dev/null || break   # exited: no point waiting out the minutes
    sleep 1
  done
  echo "server $1 did not start"; tail -20 "$OUT/server-$1.log"; return 1
}
lg() { local limit=$1; shift; timeout "$limit" bash .gpu/run.sh dotnet .gpu/app/Serving.LoadGen.dll "$@" --no-progress; }
for part in "$@"; do
case $part in
light|saturate)
  start gqa llama3-8b 8000 50051 0.9 || exit 1
  if [ $part = light ]; then
    lg 150 serve --base-url http://127.0.0.1:8000 --num-prompts 30 --random-input-len 512 --random-output-len 128 --max-concurrency 1 --ignore-eos --seed 1
  else
    lg 300 serve --base-url http://127.0.0.1:8000 --num-prompts 512 --random-input-len 1000 --random-output-len 1000 --ignore-eos --seed 2
  fi
  curl -s http://127.0.0.1:8000/v1/engine/stats | head -c 2000; echo
  pkill -f Serving.Server.dll; sleep 3 ;;
compare)
  start gqa llama3-8b 8000 50051 0.45 || exit 1
  start mha llama3-8b-mha 8001 50052 0.45 || exit 1
  lg 420 compare --base-url-a http://127.0.0.1:8000 --base-url-b http://127.0.0.1:8001 --label-a gqa8 --label-b mha \
    --num-prompts 96 --random-input-len 2048 --random-output-len 2048 --ignore-eos --seed 3
  pkill -f Serving.Server.dll; sleep 3 ;;
compare-fp8)
  start bf16 llama3-8b 8000 50051 0.45 || exit 1
  start fp8 llama3-8b 8001 50052 0.45 --kv-cache-dtype fp8 || exit 1
  lg 420 compare --base-url-a http://127.0.0.1:8001 --base-url-b http://127.0.0.1:8000 --label-a fp8-kv --label-b bf16-kv \
    --num-prompts 256 --random-input-len 1000 --random-output-len 1000 --ignore-eos --seed 4
  pkill -f Serving.Server.dll; sleep 3 ;;
esac
done
