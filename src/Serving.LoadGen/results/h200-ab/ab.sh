#!/usr/bin/env bash
# Runs on the GPU machine: the issue 6/7 measurements in one go. OUT is the folder whose files come back.
set -u
cd "$(dirname "$0")/.."
APP=.gpu/app
R="bash .gpu/run.sh dotnet"
OUT=${OUT:-/tmp/out}; mkdir -p $OUT/charts
wait_ready() { for i in $(seq 1 240); do python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$1/health/ready', timeout=2)" 2>/dev/null && return 0; sleep 1; done; return 1; }
# correctness first: fixture prompts amid other requests (mixed prefill + decode steps), float32 on CUDA
$R $APP/Serving.Server.dll --model .gpu/fixtures/llama-gqa --served-model-name llama-gqa --device cuda --dtype float32 \
  --port 8003 --host 127.0.0.1 --num-gpu-blocks-override 4096 > $OUT/server-fixture.log 2>&1 &
F=$!
wait_ready 8003 && python3 .gpu/mixed_check.py 8003 .gpu/fixtures/llama-gqa
kill $F; wait $F
SERVE="--device cuda --gpu-memory-utilization 0.45 --max-num-seqs 256 --host 127.0.0.1"
$R $APP/Serving.Server.dll --model llama3-8b --port 8001 $SERVE > $OUT/server-gqa.log 2>&1 &
A=$!
wait_ready 8001 || { echo "GQA server not ready"; tail -30 $OUT/server-gqa.log; }
$R $APP/Serving.Server.dll --model llama3-8b-mha --port 8002 $SERVE > $OUT/server-mha.log 2>&1 &
B=$!
wait_ready 8002 || { echo "MHA server not ready"; tail -30 $OUT/server-mha.log; }
nvidia-smi --query-gpu=memory.used,memory.total --format=csv
grep -h "KV cache" $OUT/server-*.log
timeout 360 $R $APP/Serving.LoadGen.dll compare --base-url-a http://127.0.0.1:8001 --base-url-b http://127.0.0.1:8002 \
  --label-a GQA-8 --label-b MHA --request-rates 4 16 64 --num-prompts 300 --random-input-len 512 --random-output-len 128 \
  --ignore-eos --goodput ttft:1000 tpot:50 --tokenizer $APP/DefaultModel --result-file $OUT/ab.json \
  --chart-dir $OUT/charts --no-progress 2>&1 | tee $OUT/compare.txt
kill $A $B; wait
tar -cf $OUT/charts.tar -C $OUT charts && rm -rf $OUT/charts
exit 0
timeout 150 $R $APP/Serving.Bench.dll engine --model llama3-8b --tokenizer $APP/DefaultModel --device cuda --dtype bfloat16 \
  --num-prompts 64 --input-len 512 --output-len 128 2>&1 | tee $OUT/engine-bench.txt
timeout 60 $R $APP/Serving.Bench.dll engine --model llama3-8b --tokenizer $APP/DefaultModel --device cuda --dtype bfloat16 \
  --num-prompts 1 --input-len 512 --output-len 128 2>&1 | tee -a $OUT/engine-bench.txt
