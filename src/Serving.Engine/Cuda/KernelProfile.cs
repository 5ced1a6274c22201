namespace Serving.Engine.Cuda;

/// Where a step's GPU time goes, by operation (--profile): CUDA events recorded on the stream around each operation
/// of the fused backend, read once the step has run. The matrix products (every linear layer and the LM head) are
/// the rest of the step's time: what lies between the timed operations. Not for steps that are being captured.
internal sealed class KernelProfile : IDisposable
{
    readonly IntPtr _stream;
    readonly List<(string Operation, IntPtr Start, IntPtr End)> _spans = [];
    IntPtr _stepStart, _stepEnd;

    public KernelProfile(IntPtr stream) => _stream = stream;

    public void BeginStep() => CudaDriver.RecordEvent(_stepStart = CudaDriver.CreateEvent(), _stream);

    public void EndStep() => CudaDriver.RecordEvent(_stepEnd = CudaDriver.CreateEvent(), _stream);

    /// Records the stream's time for operation around work (queued on the same stream).
    public T Time<T>(string operation, Func<T> work)
    {
        var start = CudaDriver.CreateEvent();
        CudaDriver.RecordEvent(start, _stream);
        var result = work();
        var end = CudaDriver.CreateEvent();
        CudaDriver.RecordEvent(end, _stream);
        _spans.Add((operation, start, end));
        return result;
    }

    /// Milliseconds per operation, "matrix products" for the rest, and the whole step; waits for the step.
    public IReadOnlyDictionary<string, double> Read()
    {
        var total = CudaDriver.ElapsedMilliseconds(_stepStart, _stepEnd);
        var byOperation = _spans.GroupBy(s => s.Operation)
            .ToDictionary(g => g.Key, g => g.Sum(s => (double)CudaDriver.ElapsedMilliseconds(s.Start, s.End)));
        byOperation["matrix products"] = total - byOperation.Values.Sum();
        byOperation["step"] = total;
        return byOperation;
    }

    public void Dispose()
    {
        foreach (var (_, start, end) in _spans)
        {
            CudaDriver.DestroyEvent(start);
            CudaDriver.DestroyEvent(end);
        }
        if (_stepStart != IntPtr.Zero) CudaDriver.DestroyEvent(_stepStart);
        if (_stepEnd != IntPtr.Zero) CudaDriver.DestroyEvent(_stepEnd);
    }
}
