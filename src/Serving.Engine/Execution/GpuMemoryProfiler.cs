using Serving.Engine.Cuda;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// Sizes the KV pool on CUDA the way vLLM does: this engine may use total memory x --gpu-memory-utilization;
/// what it already uses after loading the weights and one warm-up step of the largest batch (libtorch's
/// allocator then holds the activation peak) is subtracted, and the KV pool gets the rest. Memory used by other
/// processes on the GPU does not count against this engine's share, so two servers at 0.45 share one GPU.
internal sealed class GpuMemoryProfiler(CudaDevice device, long freeBeforeLoading)
{
    /// Call before the model is loaded: remembers what was free.
    public static GpuMemoryProfiler Start(Device torchDevice)
    {
        var device = CudaDevice.Open(Math.Max(0, (int)torchDevice.index));
        return new GpuMemoryProfiler(device, device.MemoryInfo().Free);
    }

    public long KVBudgetBytes(EngineOptions options, LoadedModel model, KVCache.KVCacheDtype cacheDtype, int maxModelLen)
    {
        WarmUp(model, cacheDtype, Math.Min(options.MaxNumBatchedTokens, maxModelLen), options.BlockSize);
        var (free, total) = device.MemoryInfo();
        var used = freeBeforeLoading - free + (options.EnforceEager ? 0 : GraphMemoryEstimate(model, options.MaxNumSeqs));
        var budget = Math.Min((long)(total * options.GpuMemoryUtilization) - used, free);
        if (budget <= 0)
            throw new ModelLoadException(
                $"no GPU memory is left for the KV cache: the model and a warm-up step use {used >> 20} MiB, " +
                $"--gpu-memory-utilization {options.GpuMemoryUtilization} allows {(long)(total * options.GpuMemoryUtilization) >> 20} " +
                $"MiB of {total >> 20} MiB and {free >> 20} MiB are free; raise it, or lower --max-num-batched-tokens");
        return budget;
    }

    /// Free device memory now.
    public long FreeBytes() => device.MemoryInfo().Free;

    /// What the decode graphs will hold beside the pool: their shared memory pool is about the largest step's
    /// activations (the largest batch's hidden states, q/k/v, gate/up, logits in the model dtype and float32) plus the
    /// float32 logits they all write; reserved before the KV pool is sized, the actual figure is logged at capture.
    static long GraphMemoryEstimate(LoadedModel model, int maxNumSeqs)
    {
        var c = model.Config;
        var element = model.Dtype == ScalarType.Float32 ? 4 : 2;
        var perSequence = (4L * c.HiddenSize + c.QSize + 2L * c.KVSize + 3L * c.IntermediateSize) * element + c.VocabSize * (element + 8L);
        return maxNumSeqs * perSequence + (64L << 20);
    }

    /// One prefill of numTokens tokens into a throw-away pool: the largest activations a step can need.
    static void WarmUp(LoadedModel model, KVCache.KVCacheDtype cacheDtype, int numTokens, int blockSize)
    {
        var numBlocks = KVCache.SlotMapping.BlocksFor(numTokens, blockSize);
        using var cache = model.CreateKVCache(numBlocks, blockSize, cacheDtype);
        using var scope = NewDisposeScope();
        var prompt = new StepSequence(new int[numTokens], 0, numTokens, Enumerable.Range(0, numBlocks).ToArray());
        model.Forward(StepInputs.Build([prompt], blockSize), cache).cpu(); // waits for the step to finish
    }
}
