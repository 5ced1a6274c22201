using Serving.Engine.Cuda;
using Serving.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Bench;

/// Times decode and prefill steps of one model through the fused path and the plain path (the same
/// LoadedModel with UseFusedKernels off). A timed decode step is what the engine does per step: the forward
/// (metadata upload included), the argmax and reading the sampled tokens back to the host (the step's one
/// synchronization).
internal sealed class DecodeBenchmark(BenchModel bench, FusedKernels? kernels, DeviceCeilings ceilings, Device device, int steps)
{
    /// The engine's default max_num_batched_tokens: no step the scheduler sends is larger.
    private const int MaxBatchedTokens = 8192;

    private readonly bool _cuda = device.type == DeviceType.CUDA;

    public DecodeResult Decode(string path, int batch, int context, Random random)
    {
        var step = StepBatch.Decode(batch, context, bench.Cache.BlockSize, bench.Cache.NumBlocks, bench.Config.VocabSize, random);
        var ms = Timing.MedianMilliseconds(() => _ = RunStep(path, step), 2, steps, _cuda);
        var weightBytes = bench.DecodeWeightBytes(batch);
        var kvBytes = (long)batch * context * bench.KVBytesPerToken;
        var floorMs = (weightBytes + kvBytes) / ceilings.BandwidthBytesPerSecond * 1000;
        var attentionMs = path == "fused" && kernels is not null ? AttentionMilliseconds(step, kernels) : (double?)null;
        return new DecodeResult(bench.Name, path, batch, context, ms, batch / (ms / 1000), weightBytes, kvBytes,
            floorMs, floorMs / ms, attentionMs, attentionMs / ms);
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
        var blockSize = bench.Cache.BlockSize;
        // block tables sized for the whole generation; the prefill step covers the prompt's positions only
        var tables = StepBatch.Prefill(batch, promptLength + newTokens, blockSize, bench.Cache.NumBlocks, 1, random).BlockTables;
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        var next = PrefillInChunks(path, tables, promptLength, random);
        for (var i = 0; i < newTokens - 1; i++)
        {
            var position = promptLength + i;
            var slots = tables.Select(t => t[position / blockSize] * blockSize + position % blockSize).ToArray();
            var step = new BatchInputs(next, Enumerable.Repeat(position, batch).ToArray(), Enumerable.Repeat(1, batch).ToArray(),
                Enumerable.Repeat(position + 1, batch).ToArray(), slots, tables);
            next = RunStep(path, step);
        }

        var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        return new GenerateResult(bench.Name, path, batch, promptLength, newTokens, seconds * 1000, batch * newTokens / seconds);
    }

    // Prompts go in as the engine's scheduler sends them: whole prompts, at most MaxBatchedTokens tokens a step.
    private int[] PrefillInChunks(string path, int[][] tables, int promptLength, Random random)
    {
        var blockSize = bench.Cache.BlockSize;
        var perStep = Math.Max(1, MaxBatchedTokens / promptLength);
        var next = new List<int>();
        foreach (var chunk in tables.Chunk(perStep))
        {
            var positions = chunk.SelectMany(_ => Enumerable.Range(0, promptLength)).ToArray();
            var step = new BatchInputs(positions.Select(_ => random.Next(bench.Config.VocabSize)).ToArray(), positions,
                Enumerable.Repeat(promptLength, chunk.Length).ToArray(), Enumerable.Repeat(promptLength, chunk.Length).ToArray(),
                positions.Select((p, i) => chunk[i / promptLength][p / blockSize] * blockSize + p % blockSize).ToArray(), chunk);
            next.AddRange(RunStep(path, step));
        }

        return [.. next];
    }

    public int[] RunStep(string path, BatchInputs step)
    {
        using var scope = NewDisposeScope();
        bench.Model.UseFusedKernels = path == "fused";
        var logits = bench.Model.Forward(step, bench.Cache);
        return logits.argmax(-1).to_type(ScalarType.Int32).cpu().data<int>().ToArray();
    }

    // The attention kernels of all layers alone, on the step's metadata: the attention share of the step.
    private double AttentionMilliseconds(BatchInputs step, FusedKernels k)
    {
        using var scope = NewDisposeScope();
        using var inputs = FusedStepInputs.Upload(step, bench.Cache.BlockSize, device);
        var plan = k.PlanDecode(inputs.NumSeqs, step.ContextLengths.Max());
        var workspace = empty(plan.WorkspaceElements(k.NumHeads, k.HeadDim), ScalarType.Float32, device);
        var qkv = randn(inputs.NumSeqs, (k.NumHeads + 2 * k.NumKVHeads) * k.HeadDim, dtype: k.Dtype, device: device);
        var output = empty(inputs.NumSeqs, k.NumHeads * k.HeadDim, dtype: k.Dtype, device: device);
        return Timing.MedianMilliseconds(() =>
        {
            for (var layer = 0; layer < bench.Cache.NumLayers; layer++)
            {
                k.PagedDecodeAttention(qkv, bench.Cache.Keys(layer), bench.Cache.Values(layer), inputs.BlockTables, inputs.ContextLengths, plan, output, workspace);
            }
        }, 2, steps, _cuda);
    }

    // 2 FLOPs per weight per token in every linear, plus causal attention (QK and PV, half the square), plus
    // the LM head on each sequence's last token.
    private double PrefillFlops(int batch, int length)
    {
        var c = bench.Config;
        var perTokenLinear = 2.0 * c.NumHiddenLayers * c.HiddenSize * (c.QSize + 2.0 * c.KVSize + c.QSize + 3.0 * c.IntermediateSize);
        var attention = 2.0 * 2 * c.NumHiddenLayers * c.QSize * (length * (length + 1) / 2.0);
        return batch * (perTokenLinear * length + attention) + 2.0 * batch * c.HiddenSize * c.VocabSize;
    }
}
