using System.Runtime.InteropServices;

namespace Serving.Engine.Cuda;

/// A CUDA graph captured through libtorch's own at::cuda::CUDAGraph (TorchSharp does not expose it), so that the
/// tensors TorchSharp allocates while capturing come from a private memory pool that lives as long as the graph:
/// a captured step's intermediates and outputs keep their addresses, and replaying overwrites them. Capture runs on
/// the current stream, which must be an engine-created one (CudaStream), never the legacy default stream.
///
///   graph.BeginCapture(); ...queue the step's work...; graph.EndCapture();   later: graph.Replay();
///
/// Bound by the C++ symbols of libtorch_cuda (at::cuda::CUDAGraph of libtorch 2.x: a constructor taking
/// keep_graph, capture_begin taking a mempool id and a capture mode). Owns the graph (Dispose destroys it).
internal sealed unsafe class CudaGraph : IDisposable
{
    // at::cuda::CUDAGraph holds a few dozen members; the object lives in this native block, generously sized
    const int ObjectBytes = 16 << 10;
    const int CaptureModeThreadLocal = 1;   // cudaStreamCaptureModeThreadLocal

    static readonly IntPtr Library = NativeLibraryLoader.LoadFirst("libtorch_cuda.so", "torch_cuda.dll");
    static readonly delegate* unmanaged<IntPtr, byte, void> ConstructFn = (delegate* unmanaged<IntPtr, byte, void>)Export("_ZN2at4cuda9CUDAGraphC1Eb");
    static readonly delegate* unmanaged<IntPtr, void> DestructFn = (delegate* unmanaged<IntPtr, void>)Export("_ZN2at4cuda9CUDAGraphD1Ev");
    // capture_begin(std::pair<unsigned long long, unsigned long long> pool, cudaStreamCaptureMode mode)
    static readonly delegate* unmanaged<IntPtr, ulong, ulong, int, void> CaptureBeginFn =
        (delegate* unmanaged<IntPtr, ulong, ulong, int, void>)Export("_ZN2at4cuda9CUDAGraph13capture_beginESt4pairIyyE21cudaStreamCaptureMode");
    static readonly delegate* unmanaged<IntPtr, void> CaptureEndFn = (delegate* unmanaged<IntPtr, void>)Export("_ZN2at4cuda9CUDAGraph11capture_endEv");
    static readonly delegate* unmanaged<IntPtr, void> ReplayFn = (delegate* unmanaged<IntPtr, void>)Export("_ZN2at4cuda9CUDAGraph6replayEv");
    // MempoolId_t pool(): the graph's private memory pool, which later captures may share
    static readonly delegate* unmanaged<IntPtr, MempoolId> PoolFn = (delegate* unmanaged<IntPtr, MempoolId>)Export("_ZN2at4cuda9CUDAGraph4poolEv");

    [StructLayout(LayoutKind.Sequential)]
    struct MempoolId
    {
        public ulong First;
        public ulong Second;
    }

    IntPtr _graph;

    public CudaGraph()
    {
        _graph = (IntPtr)NativeMemory.AllocZeroed(ObjectBytes);
        ConstructFn(_graph, 0);
    }

    /// Starts capturing the current stream's work; TorchSharp allocations go to the graph's private pool, or to the
    /// pool of <paramref name="sharePoolOf"/> (graphs replayed one at a time can share one).
    public void BeginCapture(CudaGraph? sharePoolOf = null)
    {
        var pool = sharePoolOf is null ? default : PoolFn(sharePoolOf._graph);
        CaptureBeginFn(_graph, pool.First, pool.Second, CaptureModeThreadLocal);
    }

    /// Ends the capture and instantiates the graph.
    public void EndCapture() => CaptureEndFn(_graph);

    /// Queues the whole captured work on the current stream with one launch.
    public void Replay() => ReplayFn(_graph);

    public void Dispose()
    {
        if (_graph == IntPtr.Zero) return;
        DestructFn(_graph);
        NativeMemory.Free((void*)_graph);
        _graph = IntPtr.Zero;
    }

    static IntPtr Export(string symbol) => NativeLibraryLoader.Export(Library, symbol);
}
