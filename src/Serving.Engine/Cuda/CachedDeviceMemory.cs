using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// libtorch's caching allocator keeps the device memory of freed tensors for its next allocations instead of giving it
/// back to the driver, so the device's free memory (what GpuMemoryProfiler plans the KV cache from) does not grow when
/// the model lets go of a large part of itself (weights stored again as FP8). PyTorch's torch.cuda.empty_cache gives it
/// back; TorchSharp binds no such call, and the allocator's is an inline C++ function no library exports. What it does
/// export is its behaviour before it reports running out: it releases every cached block it holds and tries once more.
/// So Release asks for more memory than the device has, and the refusal is the point.
internal static class CachedDeviceMemory
{
    /// Gives the memory libtorch's allocator holds for freed tensors on device back to the driver (after the device's
    /// work so far).
    public static void Release(Device device)
    {
        var cuda = CudaDevice.Open(Math.Max(device.index, 0));
        cuda.MakeCurrent();
        CudaDriver.SynchronizeContext();
        try
        {
            using var _ = empty(2 * cuda.TotalMemoryBytes, ScalarType.Byte, device);
        }
        catch (Exception error) when (error.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase))
        {
            // "CUDA out of memory", after the cached blocks went back
        }
    }
}
