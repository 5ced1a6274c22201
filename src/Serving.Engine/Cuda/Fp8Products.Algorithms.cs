using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// Which cuBLASLt algorithm an FP8 product of more than the few-rows kernel's rows runs: cuBLASLt's first choice for
/// the row count's decode bucket, or the fastest of its candidates where Tune timed them over the model's weights
/// (as MatmulTuning does for 16-bit products); the problem descriptions of both, cached. Products with vectors or blocks
/// of scales (CublasLt.Scales) are problems of their own.
internal sealed partial class Fp8Products
{
    const int MaxProblems = 4096;          // problem descriptions kept (prefill chunks bring many row counts)
    readonly Dictionary<(long N, long K, long M, CublasLt.Scales Scales), (CublasLt.Problem Problem, CublasLt.Algorithm Algorithm)> _problems = [];
    readonly List<int> _tunedSizes = [];   // ascending
    readonly Dictionary<(long N, long K, int BatchSize, CublasLt.Scales Scales), CublasLt.Algorithm> _tuned = [];
    readonly List<TunedMatmul> _tuningResults = [];

    /// What the last Tune measured, shape by shape, and how long it took.
    public IReadOnlyList<TunedMatmul> TuningResults => _tuningResults;
    public TimeSpan TuningTime { get; private set; }

    /// Times cuBLASLt's candidates (ProductTiming.CandidatesPerShape) for every shape among the weights (the model's FP8
    /// projections; those of one shape cycled through, as a step reads them) at each batch size (the decode graphs'),
    /// and keeps the fastest where it beats the first choice (the first candidate that runs; ProductTiming.Beats): a
    /// product of M rows then runs the choice of the smallest tuned batch size of at least M, so an eager step and the
    /// graph that replays it padded run one kernel.
    /// Batch sizes the few-rows kernel takes are not timed. No batch sizes: back to the first choices. On libtorch's
    /// current stream, outside any capture.
    public void Tune(IEnumerable<Fp8Weight> weights, IReadOnlyList<int> batchSizes)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        ClearProblems();                   // products made so far hold the first choices
        _tunedSizes.Clear();
        _tuned.Clear();
        _tuningResults.Clear();
        _tunedSizes.AddRange(batchSizes.Distinct().Order());
        if (_tunedSizes.Count > 0)
            foreach (var shape in weights.GroupBy(w => (N: w.OutFeatures, K: w.InFeatures, Scales: ScalesOf(w))))
            {
                var group = shape.ToList();
                foreach (var batchSize in _tunedSizes) TuneShape(group, shape.Key.N, shape.Key.K, batchSize, shape.Key.Scales);
            }
        TuningTime = System.Diagnostics.Stopwatch.GetElapsedTime(started);
    }

    void ClearProblems()
    {
        foreach (var (problem, _) in _problems.Values) problem.Dispose();
        _problems.Clear();
    }

    void TuneShape(List<Fp8Weight> weights, long n, long k, int batchSize, CublasLt.Scales scales)
    {
        if (RunsFewRows(batchSize, k)) return;   // not cuBLASLt's
        using var scope = NewDisposeScope();
        var rows = ProductRows(batchSize, scales);
        var x = randn(batchSize, k, dtype: _dtype, device: _torchDevice);
        var (input, inputScale) = QuantizeInput(x, scales, rows);
        var y = empty(rows, n, _dtype, _torchDevice);
        using var problem = NewProblem(n, k, batchSize, scales);
        var candidates = problem.Candidates(_handle, ProductTiming.CandidatesPerShape, WorkspaceBytes);
        var timed = new List<(CublasLt.Algorithm Algorithm, double Milliseconds)>();
        foreach (var candidate in candidates)
        {
            try
            {
                timed.Add((candidate, ProductTiming.Milliseconds(CurrentStream, weights, n * k, w => problem.Run(_handle, candidate,
                    TensorPointer.Of(w.Values), TensorPointer.Of(input), TensorPointer.Of(y), TensorPointer.Of(_workspace), WorkspaceBytes,
                    CurrentStream, TensorPointer.Of(w.PerChannel && scales == CublasLt.Scales.Scalars ? _unitScale : w.Scale), TensorPointer.Of(inputScale)))));
            }
            catch (CudaException)
            {
                // a candidate the library ranks but will not run here
            }
        }
        if (timed.Count == 0) return;      // ProblemFor says so when a product needs it
        var (first, best) = (timed[0], timed.MinBy(t => t.Milliseconds));
        var chosen = ProductTiming.Beats(best.Milliseconds, first.Milliseconds);
        _tuned[(n, k, batchSize, scales)] = chosen ? best.Algorithm : first.Algorithm;
        _tuningResults.Add(new TunedMatmul(n, k, batchSize, first.Milliseconds * 1e3, (chosen ? best : first).Milliseconds * 1e3, candidates.Count, chosen));
    }

    // the problem of m rows (cached) with the algorithm of m's batch size: the smallest tuned size of at least m and
    // its tuned choice, else the decode graphs' bucket of m (DecodeGraphs.BucketOf) and cuBLASLt's first choice for it,
    // where it takes m rows; so an eager step runs the kernel the graph that replays it padded runs (as MatmulTuning
    // does), and a step that fills its bucket gives the same logits either way
    (CublasLt.Problem, CublasLt.Algorithm) ProblemFor(long n, long k, long m, CublasLt.Scales scales)
    {
        if (_problems.TryGetValue((n, k, m, scales), out var known)) return known;
        if (_problems.Count >= MaxProblems) ClearProblems();
        var problem = NewProblem(n, k, m, scales);
        var tunedSize = _tunedSizes.FirstOrDefault(size => size >= m);
        var bucket = tunedSize > 0 ? tunedSize : Model.DecodeGraphs.BucketOf(m);
        CublasLt.Algorithm? algorithm = null;
        if (_tuned.TryGetValue((n, k, tunedSize, scales), out var tuned) && problem.Accepts(_handle, tuned, WorkspaceBytes))
            algorithm = tuned;
        else if (bucket != m)
        {
            using var bucketProblem = NewProblem(n, k, bucket, scales);
            if (FirstChoice(bucketProblem) is { } chosen && problem.Accepts(_handle, chosen, WorkspaceBytes)) algorithm = chosen;
        }
        algorithm ??= FirstChoice(problem);
        if (algorithm is null)
        {
            problem.Dispose();
            throw new CudaException($"cuBLASLt has no FP8 algorithm for a ({n}, {k}) weight at {m} rows on sm_{_device.ComputeCapability}");
        }
        return _problems[(n, k, m, scales)] = (problem, algorithm.Value);
    }

    // an FP8 product of m rows (cuBLASLt's ProductRows of them) with a (n, k) weight, its scales' addresses stood in for
    // where they are vectors or blocks (cuBLASLt ranks those algorithms only once it has them; each run gives its own)
    CublasLt.Problem NewProblem(long n, long k, long m, CublasLt.Scales scales)
    {
        var problem = new CublasLt.Problem(CublasLt.Fp8E4M3, CublasLt.DataType(_dtype), n, k, ProductRows(m, scales), k, scales);
        if (scales != CublasLt.Scales.Scalars) problem.UseScales(ScalesStandIn, ScalesStandIn);
        return problem;
    }

    // cuBLASLt's first choice for the problem; null when it has none
    CublasLt.Algorithm? FirstChoice(CublasLt.Problem problem)
    {
        var candidates = problem.Candidates(_handle, 1, WorkspaceBytes);
        return candidates.Count > 0 ? candidates[0] : null;
    }
}
