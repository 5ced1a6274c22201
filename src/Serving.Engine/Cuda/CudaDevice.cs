namespace Serving.Engine.Cuda;

/// One CUDA device as the driver API sees it, bound to its primary context: the same context the CUDA
/// runtime inside libtorch uses, so kernels launched here see TorchSharp's allocations.
internal sealed class CudaDevice
{
    static readonly object InitLock = new();
    static bool _initialized;

    CudaDevice(int ordinal, IntPtr context, int computeCapability, int multiprocessorCount, long totalMemoryBytes)
    {
        TotalMemoryBytes = totalMemoryBytes;
        Ordinal = ordinal;
        Context = context;
        ComputeCapability = computeCapability;
        MultiprocessorCount = multiprocessorCount;
    }

    public int Ordinal { get; }
    /// e.g. 90 for Hopper (sm_90).
    public int ComputeCapability { get; }
    public int MultiprocessorCount { get; }
    public long TotalMemoryBytes { get; }
    internal IntPtr Context { get; }

    /// Binds to device <paramref name="ordinal"/>. The primary context is retained for the process lifetime:
    /// libtorch holds it too, so releasing it here would gain nothing.
    public static CudaDevice Open(int ordinal)
    {
        lock (InitLock)
        {
            if (!_initialized)
            {
                CudaDriver.Init();
                _initialized = true;
            }
        }

        var device = CudaDriver.GetDevice(ordinal);
        var context = CudaDriver.RetainPrimaryContext(device);
        var major = CudaDriver.GetAttribute(device, CudaDriver.AttributeComputeCapabilityMajor);
        var minor = CudaDriver.GetAttribute(device, CudaDriver.AttributeComputeCapabilityMinor);
        var sms = CudaDriver.GetAttribute(device, CudaDriver.AttributeMultiprocessorCount);
        return new CudaDevice(ordinal, context, major * 10 + minor, sms, CudaDriver.TotalMemory(device));
    }

    /// Makes the primary context current on the calling thread (a no-op when it already is). Call once per
    /// step on the thread that launches: driver calls need a current context, and the engine thread may have
    /// touched CUDA only through libtorch, which sets it lazily.
    public void MakeCurrent()
    {
        if (CudaDriver.GetCurrentContext() != Context)
        {
            CudaDriver.SetCurrentContext(Context);
        }
    }

    /// Free and total device memory now (free excludes what libtorch's caching allocator holds).
    public (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        return CudaDriver.MemoryInfo();
    }
}
