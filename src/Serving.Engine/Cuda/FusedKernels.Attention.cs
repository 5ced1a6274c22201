using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

// Paged attention over the KV pool: decode attention and its split (paged_attention.cu, paged_attention_mma.cu), prefill.
internal sealed unsafe partial class FusedKernels
{
    // paged_prefill_attention_mma: MMA_WARPS (4) warps of 16 query rows each
    const int PrefillThreads = 128, PrefillRowsPerBlock = 64;

    /// The split of a decode step's attention for this device; one plan serves every layer of the step.
    /// concurrentBlocks overrides the blocks the device runs at once (tests steer the split with it).
    public DecodeAttentionPlan PlanDecode(int numDecodes, int maxContextLength, int? concurrentBlocks = null) =>
        _attentionKernel.TensorCores
            ? DecodeAttentionPlan.Create(numDecodes, maxContextLength, AttentionBlocksPerSeq,
                concurrentBlocks ?? _concurrentAttentionBlocks, _attentionKernel.Granule,
                DecodeAttentionPlan.MinPartitionTokensFor(Shape.GroupSize, Shape.CacheDtype.Size), AttentionSpan)
            : DecodeAttentionPlan.CreateLatencyBound(numDecodes, maxContextLength, AttentionBlocksPerSeq,
                concurrentBlocks ?? _concurrentAttentionBlocks, _attentionKernel.Granule, AttentionSpan);

    /// The split a CUDA graph of decode batches of smallestBatch to largestBatch sequences captures, up to
    /// maxContextLength: a grid with room for the partitions of any eager step of those batches (DecodeGraphs replays
    /// with the eager step's partition size, so a replay sums in the eager order).
    public DecodeAttentionPlan PlanDecodeGraph(int smallestBatch, int largestBatch, int maxContextLength) =>
        _attentionKernel.TensorCores
            ? PlanDecode(smallestBatch, maxContextLength) with { NumSeqs = largestBatch }
            : DecodeAttentionPlan.LatencyBoundGraph(smallestBatch, largestBatch, maxContextLength,
                AttentionBlocksPerSeq, _concurrentAttentionBlocks, _attentionKernel.Granule, AttentionSpan);

    // thread blocks of decode attention per sequence and partition
    int AttentionBlocksPerSeq => Shape.NumKVHeads * _attentionKernel.BlocksPerKVHead;

    /// Whether decode attention runs on tensor cores here (see KernelShape.UsesTensorCoreAttention).
    public bool TensorCoreAttention => _attentionKernel.TensorCores;

    /// Attention of the step's decode sequences (one query token each) over their paged contexts.
    /// query (numTokens, numHeads * headDim), rows may be strided (the q part of a fused QKV output); decodeSeqs
    /// (numDecodes) the decoding sequences' indices; tokenRows (numSeqs) the row of each sequence's last token;
    /// blockTables (numSeqs, maxBlocksPerSeq) and contextLengths (numSeqs) int32; partitionSize one int32 on the
    /// device (the tokens of one partition, see DecodeAttentionPlan.PartitionSizeFor); kvScales the layer's
    /// [k_scale, v_scale] float32; output (numTokens, numHeads * headDim), only the decode rows written; workspace
    /// float32 of plan.WorkspaceElements (or empty). The plan gives the grid: NumSeqs x NumPartitions. window: a
    /// sliding-window layer's (each query sees the last window positions of its context); null: the whole context.
    /// sinks: a logit per query head (numHeads, of the model's type) that joins each softmax as a key without a value
    /// (gpt-oss's); null: none.
    public void PagedDecodeAttention(Tensor query, Tensor kCache, Tensor vCache, Tensor decodeSeqs, Tensor tokenRows,
        Tensor blockTables, Tensor contextLengths, Tensor partitionSize, Tensor kvScales, DecodeAttentionPlan plan, Tensor output,
        Tensor workspace, int? window = null, Tensor? sinks = null)
    {
        if (window is not null && (window <= 0 || plan.AttentionSpan is { } span && window > span))
            throw new ArgumentOutOfRangeException(nameof(window), window, $"a window is positive and within the plan's span ({plan.AttentionSpan})");
        var windowSize = window ?? 0;
        var sinkPtr = SinksPointer(sinks);
        var (qStride, maxBlocks, blockSize) = ((int)query.stride(0), (int)blockTables.size(1), (int)kCache.size(1));
        var (partitionPtr, scale) = (TensorPointer.Of(partitionSize), AttentionScale);
        var (qPtr, kPtr, vPtr) = (TensorPointer.Of(query), TensorPointer.Of(kCache), TensorPointer.Of(vCache));
        var (seqPtr, rowPtr) = (TensorPointer.Of(decodeSeqs), TensorPointer.Of(tokenRows));
        var (tablePtr, lenPtr, outPtr) = (TensorPointer.Of(blockTables), TensorPointer.Of(contextLengths), TensorPointer.Of(output));
        var scalePtr = TensorPointer.Of(kvScales);
        var partOut = plan.NumPartitions > 1 ? TensorPointer.Of(workspace) : IntPtr.Zero;
        var partMl = partOut + (nint)((long)plan.NumSeqs * Shape.NumHeads * plan.NumPartitions * Shape.HeadDim * sizeof(float));
        void** args = stackalloc void*[]
        {
            &qPtr, &qStride, &kPtr, &vPtr, &seqPtr, &rowPtr, &tablePtr, &maxBlocks, &lenPtr, &blockSize, &partitionPtr, &scale,
            &windowSize, &scalePtr, &outPtr, &partOut, &partMl, &sinkPtr,
        };
        var grid = ((uint)AttentionBlocksPerSeq, (uint)plan.NumSeqs, (uint)plan.NumPartitions);
        Launch(_attention, grid, _attentionKernel.Threads, _attentionKernel.SharedBytes, args);
        if (plan.NumPartitions > 1)
        {
            var partitions = plan.NumPartitions;
            // the CUDA-core kernel counts the sinks in its partition 0, the tensor-core one leaves them to the reduce
            var reduceSinkPtr = _attentionKernel.TensorCores ? sinkPtr : IntPtr.Zero;
            void** reduceArgs = stackalloc void*[] { &partOut, &partMl, &seqPtr, &rowPtr, &lenPtr, &partitionPtr, &windowSize, &partitions, &outPtr, &reduceSinkPtr };
            Launch(_attentionReduce, ((uint)Shape.NumHeads, (uint)plan.NumSeqs, 1), (uint)Shape.HeadDim,
                (uint)(partitions * 2 * sizeof(float)), reduceArgs);
        }
    }

    /// Causal attention of the step's prefill sequences (several new tokens each) over their paged contexts, on tensor
    /// cores (only where TensorCoreAttention). query as PagedDecodeAttention; prefills (numPrefills, 3) int32: each
    /// sequence's index, first row in query / output, and query length (its queries are the last query-length positions
    /// of its context, whose K/V are already in the pool); maxQueryLength the longest of them; blockTables,
    /// contextLengths, kvScales and output as PagedDecodeAttention (only the prefill rows written); window as
    /// PagedDecodeAttention's; sinks as PagedDecodeAttention's.
    public void PagedPrefillAttention(Tensor query, Tensor kCache, Tensor vCache, Tensor prefills, int maxQueryLength,
        Tensor blockTables, Tensor contextLengths, Tensor kvScales, Tensor output, int? window = null, Tensor? sinks = null)
    {
        if (!_attentionKernel.TensorCores) throw new InvalidOperationException("prefill attention kernel needs tensor-core attention");
        if (window is <= 0) throw new ArgumentOutOfRangeException(nameof(window), window, "a window is positive");
        var windowSize = window ?? 0;
        var (qStride, maxBlocks, blockSize, scale) = ((int)query.stride(0), (int)blockTables.size(1), (int)kCache.size(1), AttentionScale);
        var (qPtr, kPtr, vPtr, prefillPtr) = (TensorPointer.Of(query), TensorPointer.Of(kCache), TensorPointer.Of(vCache), TensorPointer.Of(prefills));
        var (tablePtr, lenPtr, scalePtr, outPtr) = (TensorPointer.Of(blockTables), TensorPointer.Of(contextLengths), TensorPointer.Of(kvScales), TensorPointer.Of(output));
        var sinkPtr = SinksPointer(sinks);
        void** args = stackalloc void*[]
        {
            &qPtr, &qStride, &kPtr, &vPtr, &prefillPtr, &tablePtr, &maxBlocks, &lenPtr, &blockSize, &scale, &windowSize, &scalePtr, &outPtr, &sinkPtr,
        };
        var rowTiles = ((long)maxQueryLength * Shape.GroupSize + PrefillRowsPerBlock - 1) / PrefillRowsPerBlock;
        var grid = ((uint)Shape.NumKVHeads, (uint)prefills.size(0), (uint)rowTiles);
        Launch(_prefillAttention, grid, PrefillThreads, DecodeAttentionKernel.ChunkStagesBytes(Shape), args);
    }

    // the kernels read one sink per query head in the model's type
    IntPtr SinksPointer(Tensor? sinks) =>
        sinks is null ? IntPtr.Zero
        : sinks.dtype == Shape.Dtype && sinks.numel() == Shape.NumHeads && sinks.is_contiguous() ? TensorPointer.Of(sinks)
        : throw new ArgumentException($"sinks are {Shape.NumHeads} contiguous values of {Shape.Dtype}, got {sinks.dtype} [{string.Join(", ", sinks.shape)}]", nameof(sinks));
}
