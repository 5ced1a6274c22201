using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model.Backends;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Decode steps captured as CUDA graphs, one per batch-size bucket (vLLM's and SGLang's sizes: 1, 2, 4, 8, then steps
/// of 8 up to --max-num-seqs): every layer, the attention and the LM head replay with one launch. A decode step of B
/// sequences replays the smallest bucket of at least B, padded with sequences whose K/V go nowhere; the graphs read
/// the step's metadata from the fused backend's step buffers (fixed addresses) and write their logits into one
/// static tensor. All graphs share one memory pool (captured largest first), so together they hold about what the
/// largest step needs. Owns the graphs and their captured steps; valid while the KV pool and the step buffers they
/// were captured over stay the same.
internal sealed class DecodeGraphs : IDisposable
{
    sealed record Graph(int BatchSize, CudaGraph Captured, CudaStep Step, DecodeAttentionPlan Plan);

    readonly CudaBackend _backend;
    readonly List<Graph> _graphs;      // ascending batch size
    readonly Tensor _logits;           // (largest bucket, vocab) float32: every replay's output rows
    readonly int _generation;

    DecodeGraphs(CudaBackend backend, PagedKVCache cache, List<Graph> graphs, Tensor logits)
    {
        (_backend, Cache, _graphs, _logits) = (backend, cache, graphs, logits);
        _generation = backend.Buffers.Generation;
    }

    public PagedKVCache Cache { get; }
    public IReadOnlyList<int> BatchSizes => _graphs.Select(g => g.BatchSize).ToList();
    /// The products' tuning the graphs were captured with (CudaBackend.TuneMatmuls); null when the capture did not tune.
    public MatmulTuning? MatmulTuning => _backend.Matmuls;

    /// 1, 2, 4, then multiples of 8, the last one maxNumSeqs itself.
    public static IReadOnlyList<int> Buckets(int maxNumSeqs) =>
        Enumerable.Range(1, maxNumSeqs).Select(m => (int)Math.Min(BucketOf(m), maxNumSeqs)).Distinct().ToList();

    /// The batch size a decode step of m sequences is padded to where --max-num-seqs allows: 1, 2, 4, then the next
    /// multiple of 8 (the last bucket is --max-num-seqs itself).
    public static long BucketOf(long m) => m <= 4 ? (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)m) : (m + 7) / 8 * 8;

    /// Times the model's matrix products at these batch sizes (CudaBackend.TuneMatmuls and, for FP8 projections,
    /// Fp8Products.Tune; unless tuneMatmuls is false), then captures one graph per batch size over this pool, largest
    /// first into one shared pool. Run before the pool holds anything (the warm-up run of each capture writes no K/V,
    /// but the first capture's eager run uses the pool's scales) and on the thread that will replay them.
    public static DecodeGraphs Capture(CausalLM model, CudaBackend backend, Fp8Products? fp8, PagedKVCache cache, IReadOnlyList<int> batchSizes,
        int maxContextLength, bool tuneMatmuls = true)
    {
        // both time kernels: before any capture
        backend.TuneMatmuls(model.LinearWeights(), tuneMatmuls ? batchSizes : []);   // leaves the model's stream current
        fp8?.Tune(model.Fp8WeightsToTune(), tuneMatmuls ? batchSizes : []);
        backend.Stream.MakeCurrent();
        var largest = batchSizes.Max();
        var logits = zeros(largest, model.Shard.Model.VocabSize, dtype: ScalarType.Float32, device: cache.Device).DetachFromDisposeScope();
        var graphs = new List<Graph>();
        CudaGraph? first = null;
        var ascending = batchSizes.Order().ToList();
        foreach (var size in batchSizes.OrderDescending())
        {
            // the grid takes the most partitions an eager step of this graph's batches (one more than the next smaller
            // graph's up to its own) could have at the longest context
            var smallest = ascending.LastOrDefault(s => s < size) + 1;
            var plan = backend.Kernels.PlanDecodeGraph(smallest, size, maxContextLength);
            var step = backend.BeginCapture(PaddingStep(size, cache.BlockSize), cache, plan);
            backend.Buffers.UploadPadding(size, plan.PartitionSizeFor(1));           // the captured runs write no K/V
            using (var scope = NewDisposeScope()) model.Forward(step, allRows: true);   // cuBLAS handles and workspaces, outside the capture
            var graph = new CudaGraph();
            graph.BeginCapture(first);
            try
            {
                using var scope = NewDisposeScope();
                var output = model.Forward(step, allRows: true);                          // (size, vocab) float32
                logits.narrow(0, 0, size).copy_(output);
            }
            catch
            {
                // an operation the capture does not take (a host copy, a synchronization): the stream must leave the
                // capture, or every later call on it fails and hides this error; what was captured before goes (the
                // failed graph's object is left as it is: libtorch never saw its capture end)
                CudaDriver.AbandonCapture(backend.Stream.Handle);
                step.Dispose();
                foreach (var captured in graphs)
                {
                    captured.Captured.Dispose();
                    captured.Step.Dispose();
                }
                logits.Dispose();
                throw;
            }
            graph.EndCapture();
            first ??= graph;
            graphs.Add(new Graph(size, graph, step, plan));
        }
        graphs.Reverse();
        return new DecodeGraphs(backend, cache, graphs, logits);
    }

    /// The logits of a decode step (numSeqs, vocab) float32 from the smallest graph that fits it, or null when none
    /// does (not a pure decode step, more sequences than the largest graph, or buffers that moved). The result is a
    /// view of the static output, valid until the next replay.
    public Tensor? TryReplay(StepInputs inputs)
    {
        if (!inputs.IsDecode || inputs.LogitRows.Length != inputs.NumSeqs || _backend.Buffers.Generation != _generation
            || inputs.MaxBlocksPerSeq > _backend.Buffers.MaxBlocksPerSeq)
            return null;
        var graph = _graphs.FirstOrDefault(g => g.BatchSize >= inputs.NumSeqs);
        if (graph is null) return null;
        _backend.Stream.MakeCurrent();
        // the eager step's partitions (its PartitionSize is what it uploads), so that a replay sums in the eager order;
        // the grid's extra partitions are empty
        var eager = _backend.Kernels.PlanDecode(inputs.NumSeqs, inputs.MaxContextLength);
        var partitionSize = eager.NumPartitions <= graph.Plan.NumPartitions
            ? eager.PartitionSize
            : graph.Plan.PartitionSizeFor(inputs.MaxContextLength);
        _backend.Buffers.Upload(inputs, Enumerable.Range(0, inputs.NumSeqs).ToArray(), partitionSize, padTo: graph.BatchSize);
        graph.Captured.Replay();
        return _logits.narrow(0, 0, inputs.NumSeqs);
    }

    public void Dispose()
    {
        foreach (var graph in _graphs)
        {
            graph.Captured.Dispose();
            graph.Step.Dispose();
        }
        _logits.Dispose();
    }

    // size decode sequences of one token each at position 0 over block 0: the shape a capture needs (its metadata
    // is replaced by padding before anything runs)
    static StepInputs PaddingStep(int size, int blockSize) =>
        StepInputs.Build(Enumerable.Range(0, size).Select(_ => new StepSequence([0], 0, 1, [0])).ToList(), blockSize);
}
