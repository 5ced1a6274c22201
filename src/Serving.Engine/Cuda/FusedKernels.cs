using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// The decoder's fused CUDA kernels for one model shape and dtype, compiled with NVRTC when created and
/// launched on the legacy default stream, the stream TorchSharp's own ops run on, so they order with them
/// without synchronization. Tensors are passed by device pointer: callers keep them alive until the step's
/// work has run (the TorchSharp caching allocator only reuses memory in stream order, so a tensor disposed
/// after its last launch is safe).
internal sealed unsafe class FusedKernels : IDisposable
{
    private const uint AttentionThreads = 128;
    private readonly KernelModule _module;
    private readonly IntPtr _rmsNorm, _addRmsNorm, _ropeKVWrite, _siluMul, _attention, _attentionReduce;
    private readonly int _vector;
    private readonly uint _attentionSharedBytes;
    private readonly int _concurrentAttentionBlocks;

    public FusedKernels(CudaDevice device, ScalarType dtype, int headDim, int numHeads, int numKVHeads)
    {
        if (!SupportsAttention(dtype, headDim, numHeads, numKVHeads))
        {
            throw new ArgumentException($"no fused kernels for {dtype} with {numHeads} heads, {numKVHeads} KV heads, head dim {headDim}");
        }

        Device = device;
        Dtype = dtype;
        HeadDim = headDim;
        NumHeads = numHeads;
        NumKVHeads = numKVHeads;
        var elementSize = dtype == ScalarType.BFloat16 ? 2 : 4;
        _vector = 16 / elementSize;
        var defines = new Dictionary<string, int>
        {
            ["ELEM_BF16"] = dtype == ScalarType.BFloat16 ? 1 : 0,
            ["HEAD_DIM"] = headDim,
            ["GROUP_SIZE"] = numHeads / numKVHeads,
        };
        _module = new KernelModule(device, ["decoder_kernels.cu", "paged_attention.cu"], defines);
        (_rmsNorm, _addRmsNorm, _ropeKVWrite) = (Fn("rms_norm"), Fn("add_rms_norm"), Fn("rope_kv_write"));
        (_siluMul, _attention, _attentionReduce) = (Fn("silu_mul"), Fn("paged_decode_attention"), Fn("paged_attention_reduce"));
        _attentionSharedBytes = AttentionSharedBytes(elementSize, headDim, numHeads / numKVHeads);
        CudaDriver.SetFunctionAttribute(_attention, CudaDriver.FunctionAttributeMaxDynamicSharedSizeBytes, (int)_attentionSharedBytes);
        // resident blocks per multiprocessor, bounded by shared memory (228 KiB, 1 KiB reserved per block) and threads
        var perMultiprocessor = Math.Clamp(228 * 1024 / ((int)_attentionSharedBytes + 1024), 1, 2048 / (int)AttentionThreads);
        _concurrentAttentionBlocks = perMultiprocessor * device.MultiprocessorCount;
    }

    /// Whether the kernels take this model: bfloat16 or float32; rows of whole 16-byte vectors (hidden, ffn and
    /// head dim multiples of 8); head dim at most 256; at most 64 x 128 query values per KV head (registers).
    public static bool Supports(ScalarType dtype, ModelConfig config) =>
        config.HiddenSize % 8 == 0 && config.IntermediateSize % 8 == 0
        && SupportsAttention(dtype, config.HeadDim, config.NumAttentionHeads, config.NumKeyValueHeads);

    private static bool SupportsAttention(ScalarType dtype, int headDim, int numHeads, int numKVHeads) =>
        dtype is ScalarType.BFloat16 or ScalarType.Float32
        && headDim % 8 == 0 && headDim <= 256 && numHeads % numKVHeads == 0 && numHeads / numKVHeads * headDim <= 64 * 128;

    public CudaDevice Device { get; }
    public ScalarType Dtype { get; }
    public int HeadDim { get; }
    public int NumHeads { get; }
    public int NumKVHeads { get; }

    /// output = RMSNorm(x) * weight. x, output (numTokens, hidden); weight (hidden).
    public void RmsNorm(Tensor x, Tensor weight, Tensor output, float eps)
    {
        var (rows, hidden) = ((uint)x.size(0), (int)x.size(1));
        var (xPtr, wPtr, outPtr) = (TensorPointer.Of(x), TensorPointer.Of(weight), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &xPtr, &wPtr, &outPtr, &hidden, &eps };
        CudaDriver.Launch(_rmsNorm, (rows, 1, 1), NormThreads(hidden), 0, IntPtr.Zero, args);
    }

    /// residual += x (in place), then output = RMSNorm(residual) * weight. residual, x, output (numTokens, hidden).
    public void AddRmsNorm(Tensor residual, Tensor x, Tensor weight, Tensor output, float eps)
    {
        var (rows, hidden) = ((uint)residual.size(0), (int)residual.size(1));
        var (rPtr, xPtr, wPtr, outPtr) = (TensorPointer.Of(residual), TensorPointer.Of(x), TensorPointer.Of(weight), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &rPtr, &xPtr, &wPtr, &outPtr, &hidden, &eps };
        CudaDriver.Launch(_addRmsNorm, (rows, 1, 1), NormThreads(hidden), 0, IntPtr.Zero, args);
    }

    /// Rotates q and k of <paramref name="qkv"/> (numTokens, (numHeads + 2 numKVHeads) headDim) in place and
    /// writes rotated k and v into the pool at <paramref name="slots"/>. positions, slots (numTokens) int32;
    /// cos, sin (maxPositions, headDim / 2) float32; kCache, vCache (numBlocks, blockSize, numKVHeads, headDim).
    public void RopeAndWriteKV(Tensor qkv, Tensor positions, Tensor slots, RopeTable rope, Tensor kCache, Tensor vCache)
    {
        var (rows, stride) = ((uint)qkv.size(0), (int)qkv.stride(0));
        var (heads, kvHeads) = (NumHeads, NumKVHeads);
        var (qkvPtr, posPtr, slotPtr) = (TensorPointer.Of(qkv), TensorPointer.Of(positions), TensorPointer.Of(slots));
        var (cosPtr, sinPtr, kPtr, vPtr) = (TensorPointer.Of(rope.Cos), TensorPointer.Of(rope.Sin), TensorPointer.Of(kCache), TensorPointer.Of(vCache));
        void** args = stackalloc void*[] { &qkvPtr, &stride, &heads, &kvHeads, &posPtr, &slotPtr, &cosPtr, &sinPtr, &kPtr, &vPtr };
        CudaDriver.Launch(_ropeKVWrite, (rows, 1, 1), 128, 0, IntPtr.Zero, args);
    }

    /// output = SiLU(gate) * up. gateUp (numTokens, 2 ffn) = [gate | up]; output (numTokens, ffn).
    public void SiluMul(Tensor gateUp, Tensor output)
    {
        var ffn = (int)output.size(1);
        var totalVectors = output.size(0) * ffn / _vector;
        var (inPtr, outPtr) = (TensorPointer.Of(gateUp), TensorPointer.Of(output));
        void** args = stackalloc void*[] { &inPtr, &outPtr, &ffn, &totalVectors };
        var blocks = (uint)Math.Clamp((totalVectors + 255) / 256, 1, Device.MultiprocessorCount * 16);
        CudaDriver.Launch(_siluMul, (blocks, 1, 1), 256, 0, IntPtr.Zero, args);
    }

    /// The split of a decode step's attention for this device; one plan serves every layer of the step.
    public DecodeAttentionPlan PlanDecode(int numSeqs, int maxContextLength) =>
        DecodeAttentionPlan.Create(numSeqs, maxContextLength, NumKVHeads, _concurrentAttentionBlocks);

    /// Attention of one query token per sequence over its paged context.
    /// query (numSeqs, numHeads * headDim), rows may be strided (the q part of a fused QKV output);
    /// blockTables (numSeqs, maxBlocksPerSeq) and contextLengths (numSeqs) int32;
    /// output (numSeqs, numHeads * headDim); workspace float32 of plan.WorkspaceElements (or empty).
    public void PagedDecodeAttention(Tensor query, Tensor kCache, Tensor vCache, Tensor blockTables, Tensor contextLengths,
        DecodeAttentionPlan plan, Tensor output, Tensor workspace)
    {
        var (qStride, maxBlocks, blockSize) = ((int)query.stride(0), (int)blockTables.size(1), (int)kCache.size(1));
        var (partitionSize, scale) = (plan.PartitionSize, 1f / MathF.Sqrt(HeadDim));
        var (qPtr, kPtr, vPtr) = (TensorPointer.Of(query), TensorPointer.Of(kCache), TensorPointer.Of(vCache));
        var (tablePtr, lenPtr, outPtr) = (TensorPointer.Of(blockTables), TensorPointer.Of(contextLengths), TensorPointer.Of(output));
        var partOut = plan.NumPartitions > 1 ? TensorPointer.Of(workspace) : IntPtr.Zero;
        var partMl = partOut + (nint)((long)plan.NumSeqs * NumHeads * plan.NumPartitions * HeadDim * sizeof(float));
        void** args = stackalloc void*[]
        {
            &qPtr, &qStride, &kPtr, &vPtr, &tablePtr, &maxBlocks, &lenPtr, &blockSize, &partitionSize, &scale, &outPtr, &partOut, &partMl,
        };
        var grid = ((uint)NumKVHeads, (uint)plan.NumSeqs, (uint)plan.NumPartitions);
        CudaDriver.Launch(_attention, grid, AttentionThreads, _attentionSharedBytes, IntPtr.Zero, args);
        if (plan.NumPartitions > 1)
        {
            var partitions = plan.NumPartitions;
            void** reduceArgs = stackalloc void*[] { &partOut, &partMl, &lenPtr, &partitionSize, &partitions, &outPtr };
            CudaDriver.Launch(_attentionReduce, ((uint)NumHeads, (uint)plan.NumSeqs, 1), (uint)HeadDim, 0, IntPtr.Zero, reduceArgs);
        }
    }

    public void Dispose() => _module.Dispose();

    private IntPtr Fn(string name) => _module.GetFunction(name);

    // One thread per 16-byte vector of the row, in whole warps, at most 1024.
    private uint NormThreads(int hidden) => (uint)Math.Clamp((hidden / _vector + 31) / 32 * 32, 32, 1024);

    // Mirrors struct AttentionShared in paged_attention.cu: two stages of padded K tile and V tile, scaled
    // queries, tile probabilities, and the running max / sum / rescale factor per query head.
    private static uint AttentionSharedBytes(int elementSize, int headDim, int groupSize)
    {
        const int tile = DecodeAttentionPlan.Tile;
        var keys = tile * (headDim + 16 / elementSize) * elementSize;
        var values = tile * headDim * elementSize;
        var floats = groupSize * headDim + groupSize * tile + 3 * groupSize;
        return (uint)(2 * (keys + values) + floats * sizeof(float));
    }
}
