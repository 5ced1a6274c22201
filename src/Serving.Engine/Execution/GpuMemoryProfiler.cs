using Serving.Engine.Cuda;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// Sizes the KV pool on CUDA the way vLLM does: with the weights loaded and one warm-up step of the largest
/// batch run (so libtorch's allocator holds the activation peak), the pool gets what is left of
/// total memory x --gpu-memory-utilization.
internal static class GpuMemoryProfiler
{
    public static long KVBudgetBytes(EngineOptions options, LoadedModel model, int maxModelLen)
    {
        var device = CudaDevice.Open(Math.Max(0, (int)model.Device.index));
        WarmUp(model, Math.Min(options.MaxNumBatchedTokens, maxModelLen), options.BlockSize);
        var (free, total) = device.MemoryInfo();
        var reserve = (long)(total * (1 - options.GpuMemoryUtilization));
        var budget = free - reserve;
        if (budget <= 0)
            throw new ModelLoadException(
                $"no GPU memory is left for the KV cache: {free >> 20} MiB free after loading the model and a warm-up " +
                $"step, and --gpu-memory-utilization {options.GpuMemoryUtilization} keeps {reserve >> 20} MiB of " +
                $"{total >> 20} MiB free; raise it, or lower --max-num-batched-tokens");
        return budget;
    }

    /// One prefill of numTokens tokens into a throw-away pool: the largest activations a step can need.
    static void WarmUp(LoadedModel model, int numTokens, int blockSize)
    {
        var numBlocks = (numTokens + blockSize - 1) / blockSize;
        using var cache = model.CreateKVCache(numBlocks, blockSize);
        using var scope = NewDisposeScope();
        var positions = Enumerable.Range(0, numTokens).ToArray();
        var inputs = new BatchInputs(new int[numTokens], positions, [numTokens], [numTokens], positions,
            [Enumerable.Range(0, numBlocks).ToArray()]);
        using var noGrad = no_grad();
        model.Forward(inputs, cache).cpu(); // waits for the step to finish
    }
}
