using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// One product shape at one batch size as tuned: the default (cuBLAS's own choice, TorchSharp's linear, for 16-bit
/// weights; cuBLASLt's first candidate for FP8 ones) against the best of cuBLASLt's candidates, microseconds per
/// product over the model's weights (ProductTiming); Chosen: steps run that best one instead of the default.
internal sealed record TunedMatmul(long N, long K, int BatchSize, double DefaultMicroseconds, double BestMicroseconds, int Candidates, bool Chosen);

/// The decode step's matrix products (y = x W^T, bfloat16 or float16 weights, no bias) at the batch sizes the decode
/// graphs capture, each run by whichever was fastest when timed at start-up over the model's own weights: cuBLAS's
/// default choice, as TorchSharp's linear makes it, or one of the algorithms cuBLASLt's heuristics rank for the
/// shape (TensorRT-LLM profiles its GEMM tactics the same way). At M = 64 on an H200 cuBLAS's default leaves 4-25% of
/// the weight bandwidth unused for some shapes (Serving.Bench --linear). A product of M rows runs the choice of the
/// smallest tuned batch size of at least M, so an eager step and the graph that replays it padded run one kernel;
/// other products (prefill, larger batches) stay with TorchSharp. Tuning times kernels: never while capturing.
/// Owns the cuBLASLt handle, its workspace and the problem descriptions; used on the model's stream only.
internal sealed class MatmulTuning : IDisposable
{
    /// Device memory the tuned products keep for cuBLASLt's workspace (counted beside the decode graphs).
    public const long WorkspaceBytes = 32L << 20;

    readonly IntPtr _stream;
    readonly Device _device;
    readonly IntPtr _handle;
    readonly Tensor _workspace;
    readonly List<int> _batchSizes = [];
    readonly Dictionary<(long N, long K, int BatchSize), CublasLt.Algorithm> _chosen = [];
    readonly Dictionary<(long N, long K, long M, long Ldx), CublasLt.Problem?> _problems = [];   // M's batch size: the first tuned >= M
    readonly List<TunedMatmul> _results = [];

    public MatmulTuning(IntPtr stream, Device device)
    {
        (_stream, _device) = (stream, device);
        _handle = CublasLt.CreateHandle();
        _workspace = empty(WorkspaceBytes, ScalarType.Byte, device);
    }

    /// What the last Tune measured, shape by shape, and how long it took.
    public IReadOnlyList<TunedMatmul> Results => _results;
    public TimeSpan TuningTime { get; private set; }

    /// Times every shape among <paramref name="weights"/> (the model's linear weights; those of one shape are cycled
    /// through, as a step reads them) at each batch size, and keeps the fastest choice of each. Call on the model's
    /// stream, outside any capture.
    public void Tune(IEnumerable<Tensor> weights, IReadOnlyList<int> batchSizes)
    {
        Clear();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        _batchSizes.AddRange(batchSizes.Distinct().Order());
        var shapes = weights.Where(Takes).GroupBy(w => (N: w.size(0), K: w.size(1), w.dtype));
        foreach (var shape in shapes)
        {
            var group = shape.ToList();
            foreach (var batchSize in _batchSizes)
                TuneShape(group, shape.Key.N, shape.Key.K, shape.Key.dtype, batchSize);
        }
        TuningTime = System.Diagnostics.Stopwatch.GetElapsedTime(started);
    }

    /// x W^T with the tuned algorithm of x's batch size, or null where TorchSharp's linear is the choice (untuned
    /// shape or batch size, cuBLAS's default fastest, or an x cuBLASLt cannot take as laid out).
    public Tensor? TryLinear(Tensor x, Tensor weight)
    {
        if (_chosen.Count == 0 || x.dim() != 2 || !Takes(weight) || x.dtype != weight.dtype || x.stride(1) != 1) return null;
        var (n, k, m) = (weight.size(0), weight.size(1), x.size(0));
        var batchSize = _batchSizes.FirstOrDefault(size => size >= m);
        if (batchSize == 0 || x.size(1) != k || !_chosen.TryGetValue((n, k, batchSize), out var algorithm)) return null;
        var ldx = m == 1 ? k : x.stride(0);
        var (xPointer, weightPointer) = (TensorPointer.Of(x), TensorPointer.Of(weight));
        if (xPointer % 16 != 0 || ldx % 8 != 0 || weightPointer % 16 != 0) return null;
        var problem = ProblemFor(n, k, m, ldx, x.dtype, algorithm);
        if (problem is null) return null;
        var y = empty(m, n, x.dtype, x.device);
        problem.Run(_handle, algorithm, weightPointer, xPointer, TensorPointer.Of(y), TensorPointer.Of(_workspace), WorkspaceBytes, _stream);
        return y;
    }

    public void Dispose()
    {
        Clear();
        _workspace.Dispose();
        CublasLt.DestroyHandle(_handle);
    }

    static bool Takes(Tensor weight) =>
        weight.dim() == 2 && weight.is_contiguous() && weight.device_type == DeviceType.CUDA
        && weight.dtype is ScalarType.BFloat16 or ScalarType.Float16 && weight.size(1) % 8 == 0;

    void TuneShape(List<Tensor> weights, long n, long k, ScalarType dtype, int batchSize)
    {
        using var scope = NewDisposeScope();
        var x = randn(batchSize, k, dtype: dtype, device: _device);
        var y = empty(batchSize, n, dtype, _device);
        var problem = new CublasLt.Problem(CublasLt.DataType(dtype), n, k, batchSize, k);
        var torchTime = Time(weights, w => nn.functional.linear(x, w).Dispose());
        var (best, bestTime) = ((CublasLt.Algorithm?)null, double.MaxValue);
        var candidates = problem.Candidates(_handle, ProductTiming.CandidatesPerShape, WorkspaceBytes);
        foreach (var candidate in candidates)
        {
            double time;
            try
            {
                time = Time(weights, w => problem.Run(_handle, candidate, TensorPointer.Of(w), TensorPointer.Of(x), TensorPointer.Of(y),
                    TensorPointer.Of(_workspace), WorkspaceBytes, _stream));
            }
            catch (CudaException)
            {
                continue;   // a candidate the library ranks but will not run here
            }
            if (time < bestTime) (best, bestTime) = (candidate, time);
        }
        var chosen = best is not null && ProductTiming.Beats(bestTime, torchTime);
        if (chosen)
        {
            _chosen[(n, k, batchSize)] = best!.Value;
            _problems[(n, k, batchSize, k)] = problem;
        }
        else
            problem.Dispose();
        _results.Add(new TunedMatmul(n, k, batchSize, torchTime * 1e3, Math.Min(bestTime, torchTime) * 1e3, candidates.Count, chosen));
    }

    double Time(List<Tensor> weights, Action<Tensor> run) =>
        ProductTiming.Milliseconds(_stream, weights, weights[0].NumberOfElements * weights[0].ElementSize, run);

    // the problem of M rows laid out ldx apart under the algorithm tuned for M's batch size; null when that algorithm
    // does not take it (cached either way)
    CublasLt.Problem? ProblemFor(long n, long k, long m, long ldx, ScalarType dtype, CublasLt.Algorithm algorithm)
    {
        var key = (n, k, m, ldx);
        if (_problems.TryGetValue(key, out var problem)) return problem;
        problem = new CublasLt.Problem(CublasLt.DataType(dtype), n, k, m, ldx);
        if (!problem.Accepts(_handle, algorithm, WorkspaceBytes))
        {
            problem.Dispose();
            problem = null;
        }
        return _problems[key] = problem;
    }

    void Clear()
    {
        foreach (var problem in _problems.Values) problem?.Dispose();
        _problems.Clear();
        _chosen.Clear();
        _batchSizes.Clear();
        _results.Clear();
    }
}
