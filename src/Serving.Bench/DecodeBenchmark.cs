using Serving.Engine.Cuda;
using Serving.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// Times decode and prefill steps of one model through the fused path and the plain path (the same
/// LoadedModel with UseFusedKernels off). A timed decode step is what the engine does per step: the forward
/// (metadata upload included), the argmax and reading the sampled tokens back to the host (the step's one
/// synchronization).
internal sealed class DecodeBenchmark(BenchModel bench, DeviceCeilings ceilings, Device device, int steps)
{
    /// The engine's default max_num_batched_tokens: no step the scheduler sends is larger.
    const int MaxBatchedTokens = 8192;

    readonly bool _cuda = device.type == DeviceType.CUDA;

    public DecodeResult Decode(string path, int batch, int context, Random random)
    {
        var step = StepBatch.Decode(batch, context, bench.Cache.BlockSize, bench.Cache.NumBlocks, bench.Config.VocabSize, random);
        var ms = Timing.MedianMilliseconds(() => _ = RunStep(path, step), 2, steps, _cuda);
        var weightBytes = bench.Model.StepWeightBytes(batch);
        var kvBytes = (long)batch * context * bench.KVBytesPerToken;
        var floorMs = Roofline(batch, context, weightBytes, kvBytes);
        var attentionMs = path != "plain" && bench.Model.FusedKernelsActive(bench.Cache.Dtype) ? AttentionMilliseconds(step) : (double?)null;
        return new DecodeResult(bench.Name, path, batch, context, ms, batch / (ms / 1000), weightBytes, kvBytes,
            floorMs, floorMs / ms, attentionMs, attentionMs / ms);
    }

    /// One decode step of this shape with each operation timed by CUDA events (after one untimed run).
    public ProfileResult Profile(int batch, int context, Random random)
    {
        var step = StepBatch.Decode(batch, context, bench.Cache.BlockSize, bench.Cache.NumBlocks, bench.Config.VocabSize, random);
        bench.Model.ProfileStep(step, bench.Cache);
        return new ProfileResult(bench.Name, batch, context, bench.Model.ProfileStep(step, bench.Cache));
    }

    public PrefillResult Prefill(string path, int batch, int promptLength, Random random)
    {
        var step = StepBatch.Prefill(batch, promptLength, bench.Cache.BlockSize, bench.Cache.NumBlocks, bench.Config.VocabSize, random);
        var ms = Timing.MedianMilliseconds(() => _ = RunStep(path, step), 1, Math.Max(3, steps / 4), _cuda);
        var rate = PrefillFlops(batch, promptLength) / (ms / 1000);
        return new PrefillResult(bench.Name, path, batch, promptLength, ms, (long)batch * promptLength / (ms / 1000), rate / 1e12,
            rate / ceilings.MatmulFlopsPerSecond);
    }

    /// Generation as transformers' generate() is timed: prefill batch prompts of promptLength, then newTokens
    /// decode steps with growing contexts (greedy); new tokens per second over the whole run.
    public GenerateResult Generate(string path, int batch, int promptLength, int newTokens, Random random)
    {
        var (blockSize, vocab) = (bench.Cache.BlockSize, bench.Config.VocabSize);
        // blocks for the whole generation; the sequences' tokens grow as they are sampled
        var sequences = StepBatch.Sequences(Enumerable.Repeat(promptLength, batch).ToArray(),
            Enumerable.Repeat(promptLength + newTokens, batch).ToArray(), blockSize, bench.Cache.NumBlocks, vocab, random);
        var tokens = sequences.Select(s => s.TokenIds.ToArray()).ToArray();
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        var next = PrefillInChunks(path, sequences, tokens, promptLength);
        for (var i = 0; i < newTokens - 1; i++)
        {
            var position = promptLength + i;
            for (var s = 0; s < batch; s++) tokens[s][position] = next[s];
            var step = StepInputs.Build(sequences.Select((seq, s) => seq with { TokenIds = tokens[s], StartPosition = position, NumNewTokens = 1 }).ToList(), blockSize);
            next = RunStep(path, step);
        }

        var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        return new GenerateResult(bench.Name, path, batch, promptLength, newTokens, seconds * 1000, batch * newTokens / seconds);
    }

    // Prompts go in as the engine's scheduler sends them: whole prompts, at most MaxBatchedTokens tokens a step.
    int[] PrefillInChunks(string path, StepSequence[] sequences, int[][] tokens, int promptLength)
    {
        var perStep = PromptsPerChunk(promptLength);
        var next = new List<int>();
        foreach (var chunk in sequences.Select((seq, s) => seq with { TokenIds = tokens[s], StartPosition = 0, NumNewTokens = promptLength }).Chunk(perStep))
        {
            next.AddRange(RunStep(path, StepInputs.Build(chunk, bench.Cache.BlockSize)));
        }

        return [.. next];
    }

    /// The prompts of one of PrefillInChunks' steps: whole prompts, at most MaxBatchedTokens tokens (at least one prompt).
    public static int PromptsPerChunk(int promptLength) => Math.Max(1, MaxBatchedTokens / promptLength);

    public int[] RunStep(string path, StepInputs step)
    {
        using var scope = NewDisposeScope();
        bench.Model.UseFusedKernels = path != "plain";
        bench.Model.UseCudaGraphs = path == "graph";
        var logits = bench.Model.Forward(step, bench.Cache);
        return logits.argmax(-1).to_type(ScalarType.Int32).cpu().data<int>().ToArray();
    }

    /// The decode attention kernels of all layers alone at several context splits (partition counts from 1 to the
    /// most whole granules allow, the planner's own among them): how the split the planner picks compares.
    public AttentionSplitResult AttentionSplits(int batch, int context, Random random)
    {
        var step = StepBatch.Decode(batch, context, bench.Cache.BlockSize, bench.Cache.NumBlocks, bench.Config.VocabSize, random);
        var kernels = bench.Model.FusedBackend(bench.Cache.Dtype).Kernels;
        var planned = kernels.PlanDecode(batch, context);
        int[] candidates = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64, 96, 128, planned.NumPartitions];
        var plans = candidates.Select(p => DecodeAttentionPlan.Split(batch, context, p, planned.Granule))
            .DistinctBy(p => p.NumPartitions).OrderBy(p => p.NumPartitions).ToList();
        var times = plans.ToDictionary(p => p.NumPartitions, p => AttentionMilliseconds(step, p));
        return new AttentionSplitResult(bench.Name, batch, context, planned.NumPartitions, times);
    }

    // The decode attention kernels of all layers alone, on the step's metadata: the attention share of the step.
    double AttentionMilliseconds(StepInputs step, DecodeAttentionPlan? split = null)
    {
        using var scope = NewDisposeScope();
        var backend = bench.Model.FusedBackend(bench.Cache.Dtype);
        var k = backend.Kernels;
        var all = Enumerable.Range(0, step.NumSeqs).ToArray();
        backend.Stream.MakeCurrent();
        var plan = split ?? k.PlanDecode(step.NumSeqs, step.MaxContextLength);
        backend.Buffers.Upload(step, all, plan.PartitionSizeFor(step.MaxContextLength));
        var (decodeSeqs, tokenRows) = (backend.Buffers.DecodeSeqs(step.NumSeqs), backend.Buffers.TokenRows(step.NumSeqs));
        var (tables, lengths) = (backend.Buffers.BlockTables(step.NumSeqs), backend.Buffers.ContextLengths(step.NumSeqs));
        var (heads, kvHeads, headDim) = (k.Shape.NumHeads, k.Shape.NumKVHeads, k.Shape.HeadDim);
        var workspace = empty(plan.WorkspaceElements(heads, headDim), ScalarType.Float32, device);
        var qkv = randn(step.NumSeqs, (heads + 2 * kvHeads) * headDim, dtype: k.Shape.Dtype, device: device);
        var output = empty(step.NumSeqs, heads * headDim, dtype: k.Shape.Dtype, device: device);
        return Timing.MedianMilliseconds(() =>
        {
            for (var layer = 0; layer < bench.Cache.NumLayers; layer++)
            {
                k.PagedDecodeAttention(qkv, bench.Cache.Keys(layer), bench.Cache.Values(layer), decodeSeqs, tokenRows, tables, lengths,
                    backend.Buffers.PartitionSize, bench.Cache.Scales[layer], plan, output, workspace);
            }
        }, 2, steps, _cuda);
    }

    /// The step's roofline floor in ms: each part takes the longer of moving its bytes at the copy bandwidth and doing
    /// its FLOPs at the matmul rate, parts one after another. Weights (every matrix, the LM head included): their
    /// bytes, 2 FLOPs per weight per sequence; FP8 weights (--quantization fp8) at twice the measured 16-bit rate, as
    /// FP8 tensor cores run (H100 and H200: 1979 against 989 dense TFLOP/s). Attention: the KV bytes read, 4 FLOPs per
    /// query head, head dimension and context token (scores and the weighted sum). At batch 1 the weights' bytes bound
    /// the step; at batch 256 and long contexts attention's FLOPs can, for MQA's large groups.
    double Roofline(int batch, int context, long weightBytes, long kvBytes)
    {
        var c = bench.Config;
        var fp8Weights = (double)bench.Model.Fp8WeightBytes;   // a byte an element
        var wideWeights = (weightBytes - fp8Weights) / (bench.Model.Dtype == ScalarType.Float32 ? 4 : 2);
        var weightSeconds = 2.0 * batch * (wideWeights + fp8Weights / 2) / ceilings.MatmulFlopsPerSecond;
        var attentionFlops = 4.0 * batch * c.NumHiddenLayers * c.NumAttentionHeads * c.HeadDim * (double)context;
        var attentionSeconds = Math.Max(kvBytes / ceilings.BandwidthBytesPerSecond, attentionFlops / ceilings.MatmulFlopsPerSecond);
        return (Math.Max(weightBytes / ceilings.BandwidthBytesPerSecond, weightSeconds) + attentionSeconds) * 1000;
    }

    // 2 FLOPs per weight per token in every linear, plus causal attention (QK and PV, half the square), plus
    // the LM head on each sequence's last token; one GPU's share under tensor parallelism.
    double PrefillFlops(int batch, int length) => ModelPrefillFlops(batch, length) / bench.Model.TensorParallelSize;

    double ModelPrefillFlops(int batch, int length)
    {
        var c = bench.Config;
        var perTokenLinear = 2.0 * c.NumHiddenLayers * c.HiddenSize * (c.QSize + 2.0 * c.KVSize + c.QSize + 3.0 * c.IntermediateSize);
        var attention = 2.0 * 2 * c.NumHiddenLayers * c.QSize * (length * (length + 1) / 2.0);
        return batch * (perTokenLinear * length + attention) + 2.0 * batch * c.HiddenSize * c.VocabSize;
    }
}
