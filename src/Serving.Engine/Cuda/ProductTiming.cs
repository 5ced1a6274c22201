namespace Serving.Engine.Cuda;

/// How long a matrix product takes as a decode graph runs it, for choosing between algorithms (MatmulTuning,
/// Fp8Products.Tune): the product over each of a shape's weights in turn, captured back to back as one CUDA graph (no
/// host launch cost in the figure: launch paths differ in host time, which would decide eager timings of short
/// kernels), enough passes over the weights to read about BytesPerTiming bytes (every launch reads HBM, not L2) in at
/// most MaxLaunches launches, the fastest of a few replays. Never while capturing.
internal static class ProductTiming
{
    /// cuBLASLt's candidates a tuning times per shape and batch size.
    public const int CandidatesPerShape = 8;

    const double BytesPerTiming = 2e9;
    const int MaxLaunches = 256;       // small weights (a tiny model's) stop here: their timing reads L2 anyway (an 8B model's take 40-120)
    const int Replays = 3;

    /// Whether a candidate timed at candidateMs replaces the default timed at defaultMs: only when 1% faster, so that
    /// timing noise does not trade one kernel for another.
    public static bool Beats(double candidateMs, double defaultMs) => candidateMs < defaultMs * 0.99;

    /// Milliseconds per product of run over the weights in turn, on the stream (libtorch's current one: the graph
    /// captures there); weightBytes: one weight's.
    public static double Milliseconds<TWeight>(IntPtr stream, IReadOnlyList<TWeight> weights, long weightBytes, Action<TWeight> run)
    {
        var passes = (int)Math.Clamp(Math.Ceiling(BytesPerTiming / ((double)weights.Count * weightBytes)), 1, Math.Max(1, MaxLaunches / weights.Count));
        foreach (var w in weights) run(w);                     // outside the capture: module loads, workspaces
        using var graph = new CudaGraph();
        graph.BeginCapture();
        for (var pass = 0; pass < passes; pass++)
            foreach (var w in weights) run(w);
        graph.EndCapture();
        graph.Replay();
        var (start, end) = (CudaDriver.CreateEvent(), CudaDriver.CreateEvent());
        try
        {
            var fastest = double.MaxValue;
            for (var replay = 0; replay < Replays; replay++)
            {
                CudaDriver.RecordEvent(start, stream);
                graph.Replay();
                CudaDriver.RecordEvent(end, stream);
                fastest = Math.Min(fastest, CudaDriver.ElapsedMilliseconds(start, end));
            }
            return fastest / (passes * weights.Count);
        }
        finally
        {
            CudaDriver.DestroyEvent(start);
            CudaDriver.DestroyEvent(end);
        }
    }
}
