using Serving.Engine.Cuda;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// Sizes the KV pool on CUDA the way vLLM does: this engine may use total memory x --gpu-memory-utilization;
/// what it already uses after loading the weights and one warm-up step of the largest batch, sampled (libtorch's
/// allocator then holds the activation peak) is subtracted, and the KV pool gets the rest. Memory used by other
/// processes on the GPU does not count against this engine's share, so two servers at 0.45 share one GPU. Under
/// tensor parallelism every rank's GPU is measured and each rank's pool gets the smallest budget (the ranks' pools
/// hold the same blocks).
internal sealed class GpuMemoryProfiler(IReadOnlyList<(CudaDevice Device, long FreeBeforeLoading)> devices)
{
    /// Call before the model is loaded: remembers what was free on each rank's GPU.
    public static GpuMemoryProfiler Start(IReadOnlyList<Device> torchDevices) => new(torchDevices.Select(torchDevice =>
    {
        var device = CudaDevice.Open(Math.Max(0, (int)torchDevice.index));
        return (device, device.MemoryInfo().Free);
    }).ToArray());

    /// The KV pool's bytes: --kv-cache-memory-bytes when given (checked to fit beside reserveBytes), else what
    /// --gpu-memory-utilization leaves less reserveBytes (memory kept for LoRA adapters loaded while serving).
    public long KVBudgetBytes(EngineOptions options, LoadedModel model, KVCache.KVCacheDtype cacheDtype, int maxModelLen, long reserveBytes)
    {
        var numTokens = Math.Min(options.MaxNumBatchedTokens, maxModelLen);
        // a step samples a row per sequence, and one more per draft it checks
        var sampledRows = Math.Min(numTokens, options.MaxNumSeqs * (1 + (options.SpeculativeConfig?.NumSpeculativeTokens ?? 0)));
        // the pooling runner samples nothing: its step returns hidden states, every row's at most (MEAN pooling)
        if (!model.HasLmHead) sampledRows = 0;
        WarmUp(model, cacheDtype, numTokens, sampledRows, options.BlockSize);
        // the pooling runner (no LM head) captures no decode graphs, nor does a model whose steps wait for the host
        var capturesGraphs = !options.EnforceEager && model.HasLmHead && model.CanCaptureGraphs(cacheDtype);
        return devices.Min(entry => Budget(options, model, entry.Device, entry.FreeBeforeLoading, capturesGraphs, reserveBytes));
    }

    static long Budget(EngineOptions options, LoadedModel model, CudaDevice device, long freeBeforeLoading, bool capturesGraphs, long reserveBytes)
    {
        var (free, total) = device.MemoryInfo();
        var graphs = capturesGraphs ? GraphMemoryEstimate(model, options.MaxNumSeqs) : 0;
        if (options.KVCacheMemoryBytes is { } asked)
            return asked + reserveBytes <= free - graphs ? asked
                : throw new ModelLoadException(
                    $"--kv-cache-memory-bytes {asked} does not fit on cuda:{device.Ordinal}: {Math.Max(0, free - graphs) >> 20} MiB are free " +
                    $"after the model, a warm-up step{(capturesGraphs ? " and the decode graphs" : "")}" +
                    (reserveBytes > 0 ? $", of which {reserveBytes >> 20} MiB stay for LoRA adapters (--max-loras)" : "") + "; lower it" +
                    (options.TensorParallelSize == 1 ? "" : ", or raise --tensor-parallel-size"));
        var used = freeBeforeLoading - free + graphs;
        var budget = Math.Min((long)(total * options.GpuMemoryUtilization) - used, free);
        if (budget <= 0)
            throw new ModelLoadException(
                $"no GPU memory is left for the KV cache on cuda:{device.Ordinal}: the model and a warm-up step use {used >> 20} MiB, " +
                $"--gpu-memory-utilization {options.GpuMemoryUtilization} allows {(long)(total * options.GpuMemoryUtilization) >> 20} " +
                $"MiB of {total >> 20} MiB and {free >> 20} MiB are free; raise it, or lower --max-num-batched-tokens" +
                (options.TensorParallelSize == 1 ? "" : ", or raise --tensor-parallel-size"));
        return budget - reserveBytes;
    }

    /// Free memory of rank 0's GPU now.
    public long FreeBytes() => devices[0].Device.MemoryInfo().Free;

    /// What the decode graphs will hold beside the pool: their shared memory pool is about the largest step's
    /// activations (the largest batch's hidden states, q/k/v, gate/up or a mixture's k routed rows, gate/up and outputs,
    /// logits in the model dtype and float32) plus the
    /// float32 logits they all write, and the tuned products' cuBLASLt workspace; reserved before the KV pool is sized,
    /// the actual figure is logged at capture. One rank's: its heads and ffn columns, the whole vocabulary's logits
    /// (gathered).
    static long GraphMemoryEstimate(LoadedModel model, int maxNumSeqs)
    {
        var (c, vocab) = (model.Shard.Config, model.Config.VocabSize);
        var element = model.Dtype == ScalarType.Float32 ? 4 : 2;
        var feedForward = Math.Max(3L * c.IntermediateSize, c.NumExperts > 0 ? c.NumExpertsPerToken * (2L * c.HiddenSize + 3L * c.ExpertIntermediateSize) : 0);
        var perSequence = (4L * c.HiddenSize + c.QSize + 2L * c.KVSize + feedForward) * element + vocab * (element + 8L);
        return maxNumSeqs * perSequence + Cuda.MatmulTuning.WorkspaceBytes + (64L << 20);
    }

    /// One prefill of numTokens tokens into a throw-away pool, with the logits of its last sampledRows tokens sampled
    /// with top-k and top-p (the sampler's sort and float32 copies of the logits): the largest activations a step can
    /// need, the most rows a step samples (a batch of MaxNumSeqs sequences, and their drafts under speculative decoding).
    /// Returns the sampled tokens. sampledRows 0: the pooling runner's step, every token's hidden state returned.
    internal static int[] WarmUp(LoadedModel model, KVCache.KVCacheDtype cacheDtype, int numTokens, int sampledRows, int blockSize)
    {
        var numBlocks = KVCache.SlotMapping.BlocksFor(numTokens, blockSize);
        using var cache = model.CreateKVCache(numBlocks, blockSize, cacheDtype);
        using var scope = NewDisposeScope();
        if (sampledRows == 0)
        {
            var pooled = new StepSequence(new int[numTokens], 0, numTokens, Enumerable.Range(0, numBlocks).ToArray(), ComputesLogits: false,
                PooledRows: new Pooling.RowRange(0, numTokens));
            _ = model.Step(StepInputs.Build([pooled], blockSize), cache).Hidden!.sum().item<float>();   // waits for the step
            return [];
        }
        var prompt = new StepSequence(new int[numTokens], 0, numTokens, Enumerable.Range(0, numBlocks).ToArray(), NumDraftTokens: sampledRows - 1);
        var logits = model.Forward(StepInputs.Build([prompt], blockSize), cache); // (sampledRows, vocab)
        var filtered = new Sampling.SamplingParams { TopK = 50, TopP = 0.9f, MaxTokens = 1 };
        var rows = Enumerable.Range(0, sampledRows).Select(_ => new Sampling.SamplingState(filtered, [], [], [])).ToList();
        // reading the tokens waits for the step to finish (on every rank: the logits are gathered)
        return new Sampling.Sampler().Sample(logits, rows).TokenIds;
    }
}
