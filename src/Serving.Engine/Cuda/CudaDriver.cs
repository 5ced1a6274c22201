using System.Runtime.InteropServices;

namespace Serving.Engine.Cuda;

/// The handful of CUDA driver API entry points the fused kernels need (libcuda.so.1), bound as
/// unmanaged function pointers so a launch costs one indirect call. Every call's result goes through
/// <see cref="Check"/>, which turns a non-zero CUresult into a <see cref="CudaException"/>.
internal static unsafe class CudaDriver
{
    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;

    static readonly IntPtr Library = NativeLibraryLoader.LoadFirst("libcuda.so.1", "libcuda.so", "nvcuda.dll");

    static readonly delegate* unmanaged<uint, int> InitFn = (delegate* unmanaged<uint, int>)Export("cuInit");
    static readonly delegate* unmanaged<int*, int, int> DeviceGetFn = (delegate* unmanaged<int*, int, int>)Export("cuDeviceGet");
    static readonly delegate* unmanaged<int*, int, int, int> DeviceGetAttributeFn = (delegate* unmanaged<int*, int, int, int>)Export("cuDeviceGetAttribute");
    static readonly delegate* unmanaged<nuint*, int, int> DeviceTotalMemFn = (delegate* unmanaged<nuint*, int, int>)Export("cuDeviceTotalMem_v2");
    static readonly delegate* unmanaged<nuint*, nuint*, int> MemGetInfoFn = (delegate* unmanaged<nuint*, nuint*, int>)Export("cuMemGetInfo_v2");
    static readonly delegate* unmanaged<IntPtr*, int, int> PrimaryCtxRetainFn = (delegate* unmanaged<IntPtr*, int, int>)Export("cuDevicePrimaryCtxRetain");
    static readonly delegate* unmanaged<IntPtr*, int> CtxGetCurrentFn = (delegate* unmanaged<IntPtr*, int>)Export("cuCtxGetCurrent");
    static readonly delegate* unmanaged<IntPtr, int> CtxSetCurrentFn = (delegate* unmanaged<IntPtr, int>)Export("cuCtxSetCurrent");
    static readonly delegate* unmanaged<int> CtxSynchronizeFn = (delegate* unmanaged<int>)Export("cuCtxSynchronize");
    static readonly delegate* unmanaged<IntPtr*, byte*, int> ModuleLoadDataFn = (delegate* unmanaged<IntPtr*, byte*, int>)Export("cuModuleLoadData");
    static readonly delegate* unmanaged<IntPtr, int> ModuleUnloadFn = (delegate* unmanaged<IntPtr, int>)Export("cuModuleUnload");
    static readonly delegate* unmanaged<IntPtr*, IntPtr, byte*, int> ModuleGetFunctionFn = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)Export("cuModuleGetFunction");
    static readonly delegate* unmanaged<IntPtr, int, int, int> FuncSetAttributeFn = (delegate* unmanaged<IntPtr, int, int, int>)Export("cuFuncSetAttribute");
    static readonly delegate* unmanaged<int*, IntPtr, int, nuint, int> OccupancyFn =
        (delegate* unmanaged<int*, IntPtr, int, nuint, int>)Export("cuOccupancyMaxActiveBlocksPerMultiprocessor");
    static readonly delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> LaunchKernelFn =
        (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)Export("cuLaunchKernel");
    // cuLaunchKernelEx (CUDA 12+): null on older drivers
    static readonly delegate* unmanaged<LaunchConfig*, IntPtr, void**, void**, int> LaunchKernelExFn =
        NativeLibrary.TryGetExport(Library, "cuLaunchKernelEx", out var launchEx) ? (delegate* unmanaged<LaunchConfig*, IntPtr, void**, void**, int>)launchEx : null;
    static readonly delegate* unmanaged<IntPtr*, uint, int> StreamCreateFn = (delegate* unmanaged<IntPtr*, uint, int>)Export("cuStreamCreate");
    static readonly delegate* unmanaged<IntPtr, int> StreamDestroyFn = (delegate* unmanaged<IntPtr, int>)Export("cuStreamDestroy_v2");
    static readonly delegate* unmanaged<IntPtr, int> StreamSynchronizeFn = (delegate* unmanaged<IntPtr, int>)Export("cuStreamSynchronize");
    static readonly delegate* unmanaged<IntPtr, IntPtr*, int> StreamEndCaptureFn = (delegate* unmanaged<IntPtr, IntPtr*, int>)Export("cuStreamEndCapture");
    static readonly delegate* unmanaged<IntPtr, int> GraphDestroyFn = (delegate* unmanaged<IntPtr, int>)Export("cuGraphDestroy");
    static readonly delegate* unmanaged<IntPtr*, uint, int> EventCreateFn = (delegate* unmanaged<IntPtr*, uint, int>)Export("cuEventCreate");
    static readonly delegate* unmanaged<IntPtr, int> EventDestroyFn = (delegate* unmanaged<IntPtr, int>)Export("cuEventDestroy_v2");
    static readonly delegate* unmanaged<IntPtr, IntPtr, int> EventRecordFn = (delegate* unmanaged<IntPtr, IntPtr, int>)Export("cuEventRecord");
    static readonly delegate* unmanaged<IntPtr, int> EventSynchronizeFn = (delegate* unmanaged<IntPtr, int>)Export("cuEventSynchronize");
    static readonly delegate* unmanaged<float*, IntPtr, IntPtr, int> EventElapsedFn = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)Export("cuEventElapsedTime");
    static readonly delegate* unmanaged<int, byte**, int> GetErrorStringFn = (delegate* unmanaged<int, byte**, int>)Export("cuGetErrorString");

    public static void Init() => Check(InitFn(0), "cuInit");

    public static int GetDevice(int ordinal)
    {
        int device;
        Check(DeviceGetFn(&device, ordinal), "cuDeviceGet");
        return device;
    }

    public static int GetAttribute(int device, int attribute)
    {
        int value;
        Check(DeviceGetAttributeFn(&value, attribute, device), "cuDeviceGetAttribute");
        return value;
    }

    public static long TotalMemory(int device)
    {
        nuint bytes;
        Check(DeviceTotalMemFn(&bytes, device), "cuDeviceTotalMem");
        return (long)bytes;
    }

    /// Free and total memory of the current context's device, in bytes.
    public static (long Free, long Total) MemoryInfo()
    {
        nuint free, total;
        Check(MemGetInfoFn(&free, &total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }

    /// The device's primary context: the one the CUDA runtime (and so libtorch) uses.
    public static IntPtr RetainPrimaryContext(int device)
    {
        IntPtr context;
        Check(PrimaryCtxRetainFn(&context, device), "cuDevicePrimaryCtxRetain");
        return context;
    }

    public static IntPtr GetCurrentContext()
    {
        IntPtr context;
        Check(CtxGetCurrentFn(&context), "cuCtxGetCurrent");
        return context;
    }

    public static void SetCurrentContext(IntPtr context) => Check(CtxSetCurrentFn(context), "cuCtxSetCurrent");

    /// Blocks until everything queued on the current context, on every stream, has run.
    public static void SynchronizeContext() => Check(CtxSynchronizeFn(), "cuCtxSynchronize");

    public static IntPtr LoadModule(byte[] image)
    {
        IntPtr module;
        fixed (byte* data = image)
        {
            Check(ModuleLoadDataFn(&module, data), "cuModuleLoadData");
        }

        return module;
    }

    public static void UnloadModule(IntPtr module) => Check(ModuleUnloadFn(module), "cuModuleUnload");

    public static IntPtr GetFunction(IntPtr module, string name)
    {
        IntPtr function;
        var bytes = System.Text.Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* namePtr = bytes)
        {
            Check(ModuleGetFunctionFn(&function, module, namePtr), $"cuModuleGetFunction({name})");
        }

        return function;
    }

    /// A new stream that does not synchronize with the legacy default stream (CU_STREAM_NON_BLOCKING), as CUDA
    /// graph capture requires.
    public static IntPtr CreateStream()
    {
        IntPtr stream;
        Check(StreamCreateFn(&stream, 1), "cuStreamCreate");
        return stream;
    }

    public static void DestroyStream(IntPtr stream) => Check(StreamDestroyFn(stream), "cuStreamDestroy");

    public static void SynchronizeStream(IntPtr stream) => Check(StreamSynchronizeFn(stream), "cuStreamSynchronize");

    /// Ends a capture that failed part-way (the work queued so far, or a capture the driver already invalidated) and
    /// drops what was captured, so that the stream takes work again; errors are ignored, as the caller is unwinding one.
    public static void AbandonCapture(IntPtr stream)
    {
        IntPtr graph = IntPtr.Zero;
        StreamEndCaptureFn(stream, &graph);
        if (graph != IntPtr.Zero) GraphDestroyFn(graph);
    }

    public static IntPtr CreateEvent()
    {
        IntPtr cudaEvent;
        Check(EventCreateFn(&cudaEvent, 0), "cuEventCreate");
        return cudaEvent;
    }

    public static void DestroyEvent(IntPtr cudaEvent) => Check(EventDestroyFn(cudaEvent), "cuEventDestroy");

    public static void RecordEvent(IntPtr cudaEvent, IntPtr stream) => Check(EventRecordFn(cudaEvent, stream), "cuEventRecord");

    /// Blocks the calling thread until the work queued before the event's last record has run.
    public static void SynchronizeEvent(IntPtr cudaEvent) => Check(EventSynchronizeFn(cudaEvent), "cuEventSynchronize");

    /// Milliseconds between two recorded events, once the later one has happened.
    public static float ElapsedMilliseconds(IntPtr start, IntPtr end)
    {
        Check(EventSynchronizeFn(end), "cuEventSynchronize");
        float ms;
        Check(EventElapsedFn(&ms, start, end), "cuEventElapsedTime");
        return ms;
    }

    public static void SetFunctionAttribute(IntPtr function, int attribute, int value) =>
        Check(FuncSetAttributeFn(function, attribute, value), "cuFuncSetAttribute");

    /// Blocks of <paramref name="function"/> that fit on one multiprocessor at once (registers, shared memory, threads).
    public static int MaxActiveBlocksPerMultiprocessor(IntPtr function, int blockThreads, int dynamicSharedBytes)
    {
        int blocks;
        Check(OccupancyFn(&blocks, function, blockThreads, (nuint)dynamicSharedBytes), "cuOccupancyMaxActiveBlocksPerMultiprocessor");
        return blocks;
    }

    /// Enqueues a kernel on <paramref name="stream"/>. <paramref name="args"/> points to one pointer per kernel parameter.
    /// dependent: a programmatic dependent launch (sm_90+, see SupportsDependentLaunch): the kernel may be scheduled
    /// while the previous kernel on the stream drains, and must wait for it itself (griddepcontrol.wait) before it
    /// touches memory.
    public static void Launch(IntPtr function, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, IntPtr stream, void** args,
        bool dependent = false)
    {
        if (!dependent)
        {
            Check(LaunchKernelFn(function, grid.X, grid.Y, grid.Z, block, 1, 1, sharedBytes, stream, args, null), "cuLaunchKernel");
            return;
        }
        var attribute = new LaunchAttribute { Id = LaunchAttributeProgrammaticStreamSerialization };
        attribute.Value[0] = 1;
        var config = new LaunchConfig
        {
            GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = block, BlockY = 1, BlockZ = 1,
            SharedBytes = sharedBytes, Stream = stream, Attributes = &attribute, AttributeCount = 1,
        };
        Check(LaunchKernelExFn(&config, function, args, null), "cuLaunchKernelEx");
    }

    /// Whether the driver launches with attributes (cuLaunchKernelEx), as programmatic dependent launches need.
    public static bool SupportsDependentLaunch => LaunchKernelExFn != null;

    const int LaunchAttributeProgrammaticStreamSerialization = 6;   // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION

    // CUlaunchAttribute: an id, padding to 8 bytes, a 64-byte value union
    [StructLayout(LayoutKind.Sequential)]
    struct LaunchAttribute
    {
        public int Id;
        public int Padding;
        public fixed int Value[16];
    }

    // CUlaunchConfig
    [StructLayout(LayoutKind.Sequential)]
    struct LaunchConfig
    {
        public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedBytes;
        public IntPtr Stream;
        public LaunchAttribute* Attributes;
        public uint AttributeCount;
    }

    public static void Check(int result, string call)
    {
        if (result == 0)
        {
            return;
        }

        byte* text = null;
        GetErrorStringFn(result, &text);
        var message = text == null ? "unknown error" : Marshal.PtrToStringAnsi((IntPtr)text);
        throw new CudaException($"{call} failed with CUDA error {result}: {message}");
    }

    static IntPtr Export(string name) => NativeLibraryLoader.Export(Library, name);
}
