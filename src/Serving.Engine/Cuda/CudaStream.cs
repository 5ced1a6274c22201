using System.Runtime.InteropServices;

namespace Serving.Engine.Cuda;

/// The stream a model's steps run on, created by the engine (never the legacy default stream, on which CUDA graph
/// capture is not allowed). MakeCurrent also makes it libtorch's current stream on the calling thread, so
/// TorchSharp's ops, cuBLAS and the fused kernels of a step queue on one stream, in order, with no
/// synchronization between them. One per model (every KV dtype's backend shares it), so no two of its steps run
/// side by side. The stream is non-blocking: it does not wait for the legacy default stream, so Create first waits
/// for the device's work so far (weights initialized on the device, a pool zeroed before the model's first step).
/// Owns the stream (Dispose destroys it).
internal sealed class CudaStream : IDisposable
{
    CudaStream(CudaDevice device, IntPtr handle) => (Device, Handle) = (device, handle);

    public CudaDevice Device { get; }
    public IntPtr Handle { get; private set; }

    public static CudaStream Create(CudaDevice device)
    {
        device.MakeCurrent();
        CudaDriver.SynchronizeContext();
        return new CudaStream(device, CudaDriver.CreateStream());
    }

    /// Makes the device's context current on this thread and this stream libtorch's current stream (both are
    /// thread-local: call on the thread that runs the step).
    public void MakeCurrent()
    {
        Device.MakeCurrent();
        TorchCudaStreams.SetCurrent(Handle, Device.Ordinal);
    }

    /// Waits until everything queued on the stream has run.
    public void Synchronize() => CudaDriver.SynchronizeStream(Handle);

    /// Waits for the stream's work, gives libtorch back its default stream on this thread (its current stream must
    /// never be a destroyed one), and destroys the stream.
    public void Dispose()
    {
        if (Handle == IntPtr.Zero) return;
        Synchronize();
        TorchCudaStreams.SetDefault(Device.Ordinal);
        CudaDriver.DestroyStream(Handle);
        Handle = IntPtr.Zero;
    }
}

/// libtorch's notion of the current CUDA stream (c10::cuda), which TorchSharp does not expose: bound by the C++
/// symbols of libc10_cuda (stable across libtorch 2.x). c10::cuda::CUDAStream is a 16-byte value (device type,
/// device index, stream id) passed and returned in registers.
internal static unsafe class TorchCudaStreams
{
    [StructLayout(LayoutKind.Sequential)]
    struct C10Stream
    {
        public sbyte DeviceType;
        public sbyte DeviceIndex;
        public long Id;
    }

    static readonly IntPtr Library = NativeLibraryLoader.LoadFirst("libc10_cuda.so", "c10_cuda.dll");

    // c10::cuda::getStreamFromExternal(CUstream_st*, signed char)
    static readonly delegate* unmanaged<IntPtr, sbyte, C10Stream> FromExternalFn =
        (delegate* unmanaged<IntPtr, sbyte, C10Stream>)NativeLibraryLoader.Export(Library, "_ZN3c104cuda21getStreamFromExternalEP11CUstream_sta");

    // c10::cuda::getDefaultCUDAStream(signed char)
    static readonly delegate* unmanaged<sbyte, C10Stream> DefaultFn =
        (delegate* unmanaged<sbyte, C10Stream>)NativeLibraryLoader.Export(Library, "_ZN3c104cuda20getDefaultCUDAStreamEa");

    // c10::cuda::setCurrentCUDAStream(c10::cuda::CUDAStream)
    static readonly delegate* unmanaged<C10Stream, void> SetCurrentFn =
        (delegate* unmanaged<C10Stream, void>)NativeLibraryLoader.Export(Library, "_ZN3c104cuda20setCurrentCUDAStreamENS0_10CUDAStreamE");

    // c10::cuda::getCurrentCUDAStream(signed char)
    static readonly delegate* unmanaged<sbyte, C10Stream> CurrentFn =
        (delegate* unmanaged<sbyte, C10Stream>)NativeLibraryLoader.Export(Library, "_ZN3c104cuda20getCurrentCUDAStreamEa");

    // c10::cuda::CUDAStream::stream() const
    static readonly delegate* unmanaged<C10Stream*, IntPtr> HandleFn =
        (delegate* unmanaged<C10Stream*, IntPtr>)NativeLibraryLoader.Export(Library, "_ZNK3c104cuda10CUDAStream6streamEv");

    public static void SetCurrent(IntPtr stream, int deviceOrdinal) => SetCurrentFn(FromExternalFn(stream, (sbyte)deviceOrdinal));

    /// The cudaStream_t of libtorch's current stream for the device on this thread (the model's stream during a step):
    /// where work that is not a TorchSharp op (an NCCL collective) queues to stay in order with the step.
    public static IntPtr Current(int deviceOrdinal)
    {
        var stream = CurrentFn((sbyte)deviceOrdinal);
        return HandleFn(&stream);
    }

    /// Makes the device's default stream libtorch's current one on this thread again.
    public static void SetDefault(int deviceOrdinal) => SetCurrentFn(DefaultFn((sbyte)deviceOrdinal));
}
