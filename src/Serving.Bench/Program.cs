using System.CommandLine;
using Serving.Bench;
using Spectre.Console;

// serving-bench: decode and prefill of random-weight models of real shapes against the device's floors.
var kvDtypes = new Option<string[]>("--kv-cache-dtype") { Description = "KV cache dtypes to run each model with (auto, bfloat16, fp8, ...)", DefaultValueFactory = _ => ["auto"], AllowMultipleArgumentsPerToken = true };
var profile = new Option<bool>("--profile") { Description = "print each operation's share of a decode step per shape (CUDA events)" };
var attentionSplits = new Option<bool>("--attention-splits") { Description = "time decode attention alone at several context splits per shape (and which the planner picks)" };
var memoryUtilization = new Option<double>("--gpu-memory-utilization") { Description = "fraction of device memory for weights and KV cache; shapes needing more are reported as not fitting", DefaultValueFactory = _ => 0.9 };
var cudaGraphs = new Option<bool>("--cuda-graphs") { Description = "also time decode steps replayed from CUDA graphs (path \"graph\")" };
var noDependentLaunch = new Option<bool>("--no-dependent-launch") { Description = "launch the fused kernels without programmatic dependent launch (sm_90+)" };
var noFp8FewRows = new Option<bool>("--no-fp8-few-rows") { Description = "with -q fp8: products of up to 8 rows run cuBLASLt too (on an input quantized to FP8), not the few-rows kernel" };
var noMatmulTuning = new Option<bool>("--no-matmul-tuning") { Description = "capture graphs with cuBLAS's default algorithms (no timing of cuBLASLt's candidates first)" };
var linear = new Option<bool>("--linear") { Description = "time the model's linear layers at decode batch sizes, cuBLAS's default and tuned (weight bytes read per second)" };
var kvQuality = new Option<bool>("--kv-quality") { Description = "compare an FP8 KV cache with a bfloat16 one on the logits of random prompts (2048, 16k and 32k tokens, as long as the model takes)" };
var kvQualityText = new Option<string?>("--kv-quality-text") { Description = "with --kv-quality and a checkpoint folder: also compare over the first tokens of this text file" };
var models = new Option<string[]>("--model") { Description = "model presets (llama3-8b, llama3-8b-mha, llama3-8b-mqa, llama3-70b, gemma3-4b, gemma2-9b, qwen3-30b-a3b, gpt-oss-20b, tiny-gqa, tiny-mha) or checkpoint folders", DefaultValueFactory = _ => ["llama3-8b"], AllowMultipleArgumentsPerToken = true };
var dtype = new Option<string>("--dtype") { Description = "bfloat16 or float32", DefaultValueFactory = _ => "bfloat16" };
var device = new Option<string>("--device") { Description = "cuda or cuda:N", DefaultValueFactory = _ => "cuda" };
var tensorParallel = TensorParallelOption();
var batches = new Option<int[]>("--batch") { Description = "decode batch sizes", DefaultValueFactory = _ => [1, 64], AllowMultipleArgumentsPerToken = true };
var contexts = new Option<int[]>("--context") { Description = "decode context lengths", DefaultValueFactory = _ => [512, 2048], AllowMultipleArgumentsPerToken = true };
var prefill = new Option<string[]>("--prefill") { Description = "prefill shapes BATCHxLENGTH", DefaultValueFactory = _ => ["16x512"], AllowMultipleArgumentsPerToken = true };
var generate = new Option<int[]>("--generate") { Description = "batch sizes of a generate() run (prompt 512, 128 new tokens)", DefaultValueFactory = _ => [1, 64], AllowMultipleArgumentsPerToken = true };
var steps = new Option<int>("--steps") { Description = "timed decode steps per measurement (median reported)", DefaultValueFactory = _ => 20 };
var noPlain = new Option<bool>("--no-plain") { Description = "skip the plain TorchSharp path" };
var noCheck = new Option<bool>("--no-check") { Description = "skip the correctness checks" };
var fitLength = new Option<int>("--fit-length") { Description = "sequence length for the capacity column", DefaultValueFactory = _ => 4096 };
var json = new Option<string?>("--json") { Description = "also write the results as JSON to this file" };
var quantization = new Option<string?>("--quantization", "-q") { Description = "fp8: each model's decoder projections stored as FP8 (as the server's --quantization fp8 makes them); fp8-channel, fp8-block: with a scale per output channel or per 128 x 128 block (as an FP8-dynamic or a DeepSeek / Qwen -FP8 checkpoint is served; not for the engine benchmark)" };
quantization.AcceptOnlyFromAmong("fp8", "fp8-channel", "fp8-block");
var fixtures = new Option<string?>("--fixtures") { Description = "folder of reference checkpoints (shared/fixtures) to check on the device" };

var root = new RootCommand("Decode/prefill benchmark of the engine's CUDA path against memory-bandwidth and matmul floors")
{
    models, dtype, quantization, device, tensorParallel, linear, batches, contexts, prefill, generate, steps, noPlain, noCheck, fitLength, json, fixtures, kvDtypes, kvQuality, kvQualityText, cudaGraphs, noMatmulTuning, noFp8FewRows, noDependentLaunch, profile, attentionSplits, memoryUtilization,
};
if (Console.IsOutputRedirected)
{
    AnsiConsole.Profile.Width = 160;   // logs and CI: don't wrap the tables at 80 columns
}

root.SetAction(result => new BenchRunner(new BenchOptions
{
    Models = result.GetValue(models)!,
    KVCacheDtypes = result.GetValue(kvDtypes)!,
    KVQuality = result.GetValue(kvQuality),
    KVQualityText = result.GetValue(kvQualityText),
    Linear = result.GetValue(linear),
    CudaGraphs = result.GetValue(cudaGraphs),
    MatmulTuning = !result.GetValue(noMatmulTuning),
    DependentLaunch = !result.GetValue(noDependentLaunch),
    Fp8FewRows = !result.GetValue(noFp8FewRows),
    Profile = result.GetValue(profile),
    AttentionSplits = result.GetValue(attentionSplits),
    GpuMemoryUtilization = result.GetValue(memoryUtilization),
    Dtype = result.GetValue(dtype)!,
    Quantization = result.GetValue(quantization),
    Device = result.GetValue(device)!,
    TensorParallelSize = result.GetValue(tensorParallel),
    BatchSizes = result.GetValue(batches)!,
    ContextLengths = result.GetValue(contexts)!,
    Prefill = result.GetValue(prefill)!.Select(ParseShape).ToArray(),
    GenerateBatches = result.GetValue(generate)!,
    Steps = result.GetValue(steps),
    Plain = !result.GetValue(noPlain),
    Check = !result.GetValue(noCheck),
    FitLength = result.GetValue(fitLength),
    JsonPath = result.GetValue(json),
    FixturesPath = result.GetValue(fixtures),
}).Run());
root.Add(EngineCommand());
root.Add(AllReduceBenchmark.Command());
root.Add(KVLayoutReadBenchmark.Command());
root.Add(TensorParallelCheck.Command());
root.Add(LoraBenchmark.Command());
return root.Parse(args).Invoke();

// serving-bench engine: the offline engine benchmark, N requests through the real LlmEngine at once.
static Command EngineCommand()
{
    var model = new Option<string>("--model") { Description = "checkpoint folder or preset name", Required = true };
    var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer folder (needed for presets)" };
    var device = new Option<string>("--device") { Description = "cpu or cuda[:N]", DefaultValueFactory = _ => "cpu" };
    var dtype = new Option<string>("--dtype") { Description = "auto, float32, bfloat16, float16", DefaultValueFactory = _ => "auto" };
    var numPrompts = new Option<int>("--num-prompts") { DefaultValueFactory = _ => 64 };
    var inputLen = new Option<int>("--input-len") { DefaultValueFactory = _ => 128 };
    var outputLen = new Option<int>("--output-len") { DefaultValueFactory = _ => 64 };
    var maxNumSeqs = new Option<int>("--max-num-seqs") { DefaultValueFactory = _ => 256 };
    var maxBatched = new Option<int>("--max-num-batched-tokens") { DefaultValueFactory = _ => 8192 };
    var kvMemory = new Option<long?>("--kv-cache-memory-bytes", "--kv-cache-memory") { Description = "KV pool bytes (default: on CUDA what --gpu-memory-utilization leaves, on CPU 256 MiB)" };
    var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
    var kvDtype = new Option<string>("--kv-cache-dtype") { Description = "auto, bfloat16, float16, float32, fp8", DefaultValueFactory = _ => "auto" };
    var quantization = new Option<string?>("--quantization", "-q") { Description = "as the server's flag: fp8 quantizes a 16-bit checkpoint's projections as it loads" };
    var enforceEager = new Option<bool>("--enforce-eager") { Description = "no CUDA graphs" };
    var structuredMix = new Option<double>("--structured-output-mix")
    {
        Description = "fraction of requests constrained to a JSON Schema (0..1); above 0 also runs the same load unconstrained and compares",
        DefaultValueFactory = _ => 0,
    };
    var speculative = new Option<string?>("--speculative-config")
    {
        Description = "speculative decoding as the server's flag takes it, e.g. '{\"method\": \"ngram\", \"num_speculative_tokens\": 4}'",
    };
    var runner = new Option<string>("--runner")
    {
        Description = "generate, or pooling: embedding requests (the prompts pooled, --output-len unused)", DefaultValueFactory = _ => "generate",
    };
    runner.AcceptOnlyFromAmong("generate", "pooling");
    var tensorParallel = TensorParallelOption();
    var command = new Command("engine", "Offline engine throughput: N requests of random token ids through LlmEngine at once")
    {
        model, tokenizer, device, tensorParallel, dtype, quantization, numPrompts, inputLen, outputLen, maxNumSeqs, maxBatched, kvMemory, seed, kvDtype, enforceEager,
        structuredMix, speculative, runner,
    };
    command.SetAction((result, _) => EngineBenchmark.RunAsync(new EngineBenchmarkOptions(
        new Serving.Engine.EngineOptions
        {
            Model = result.GetValue(model)!, Tokenizer = result.GetValue(tokenizer), Device = result.GetValue(device)!,
            TensorParallelSize = result.GetValue(tensorParallel),
            Dtype = result.GetValue(dtype)!, Quantization = result.GetValue(quantization), MaxNumSeqs = result.GetValue(maxNumSeqs),
            MaxNumBatchedTokens = result.GetValue(maxBatched), KVCacheMemoryBytes = result.GetValue(kvMemory),
            KVCacheDtype = result.GetValue(kvDtype)!, EnforceEager = result.GetValue(enforceEager),
            SpeculativeConfig = result.GetValue(speculative) is { } json ? Serving.Engine.Speculative.SpeculativeConfig.Parse(json) : null,
            Runner = Serving.Engine.Pooling.RunnerTypes.Parse(result.GetValue(runner)!),
        },
        result.GetValue(numPrompts), result.GetValue(inputLen), result.GetValue(outputLen), result.GetValue(seed),
        result.GetValue(structuredMix))));
    return command;
}

static Option<int> TensorParallelOption() => new("--tensor-parallel-size", "-tp")
{
    Description = "GPUs to split each model over (tensor parallelism, from --device's index on); figures are per GPU",
    DefaultValueFactory = _ => 1,
};

static (int, int) ParseShape(string shape)
{
    var parts = shape.Split('x');
    return (int.Parse(parts[0]), int.Parse(parts[1]));
}
