namespace Serving.Bench;

/// What one benchmark run measures. Defaults reproduce the README's H200 table.
internal sealed record BenchOptions
{
    public required IReadOnlyList<string> Models { get; init; }
    /// KV cache dtypes to run each model with (--kv-cache-dtype names: auto, bfloat16, fp8, ...).
    public IReadOnlyList<string> KVCacheDtypes { get; init; } = ["auto"];
    /// Compare an FP8 KV cache with a bfloat16 one on the model's logits (KVQualityChecks: random prompts of 2048, 16k
    /// and 32k tokens, as long as the model takes).
    public bool KVQuality { get; init; }
    /// A text file whose first tokens the FP8 comparison also runs over, for checkpoint folders (their own tokenizer).
    public string? KVQualityText { get; init; }
    /// Also time decode steps replayed from CUDA graphs (path "graph"), captured as the server captures them for a
    /// --max-num-seqs of the largest batch measured (ShapePlan.GraphBatchSizes).
    public bool CudaGraphs { get; init; }
    public bool MatmulTuning { get; init; } = true;
    public bool DependentLaunch { get; init; } = true;
    /// False: FP8 products of a few rows run cuBLASLt too, not the few-rows kernel (Fp8Products.FewRowsKernel).
    public bool Fp8FewRows { get; init; } = true;
    /// Time each linear layer shape of the model on cuBLAS at 1 to 256 tokens (weight bytes read per second).
    public bool Linear { get; init; }
    /// Time each operation of one decode step per shape (CUDA events).
    public bool Profile { get; init; }
    /// Time decode attention alone at several context splits per shape, beside the planner's choice.
    public bool AttentionSplits { get; init; }
    public string Dtype { get; init; } = "bfloat16";
    /// fp8: the decoder projections stored as FP8 after loading (LoadedModel.QuantizeWeightsToFp8); null: as loaded.
    public string? Quantization { get; init; }
    public string Device { get; init; } = "cuda";
    /// GPUs each model is split over (tensor parallelism, from Device's index on); figures are per GPU.
    public int TensorParallelSize { get; init; } = 1;
    public IReadOnlyList<int> BatchSizes { get; init; } = [1, 64];
    public IReadOnlyList<int> ContextLengths { get; init; } = [512, 2048];
    /// Prefill shapes as (batch, prompt length).
    public IReadOnlyList<(int Batch, int Length)> Prefill { get; init; } = [(16, 512)];
    /// Batch sizes of the generate()-style run (prompt 512, 128 new tokens), as transformers was measured.
    public IReadOnlyList<int> GenerateBatches { get; init; } = [1, 64];
    public int Steps { get; init; } = 20;
    public bool Plain { get; init; } = true;
    public bool Check { get; init; } = true;
    public int FitLength { get; init; } = 4096;
    public double GpuMemoryUtilization { get; init; } = 0.9;
    public int BlockSize { get; init; } = 16;
    public string? JsonPath { get; init; }
    /// Folder of reference checkpoints (../shared/fixtures) to check on the device first; none when null.
    public string? FixturesPath { get; init; }
}
