using static TorchSharp.torch;

namespace Serving.Engine.Tests.Support;

/// A fact that needs a CUDA device: skipped where none is available (CI has no GPU). Test classes using it
/// also carry [Trait("Category", "Gpu")] so that runs can select or exclude them.
public sealed class GpuFactAttribute : FactAttribute
{
    public GpuFactAttribute()
    {
        if (!cuda.is_available()) Skip = "needs a CUDA device";
    }
}

/// A theory that needs a CUDA device; see GpuFactAttribute.
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    public GpuTheoryAttribute()
    {
        if (!cuda.is_available()) Skip = "needs a CUDA device";
    }
}

/// A fact that needs several CUDA devices (tensor parallelism over NCCL): skipped where fewer are visible.
public sealed class MultiGpuFactAttribute : FactAttribute
{
    public MultiGpuFactAttribute(int gpus = 2)
    {
        if (!cuda.is_available() || cuda.device_count() < gpus) Skip = $"needs {gpus} CUDA devices";
    }
}

/// A theory that needs several CUDA devices; see MultiGpuFactAttribute.
public sealed class MultiGpuTheoryAttribute : TheoryAttribute
{
    public MultiGpuTheoryAttribute(int gpus = 2)
    {
        if (!cuda.is_available() || cuda.device_count() < gpus) Skip = $"needs {gpus} CUDA devices";
    }
}

/// GPU tests run one at a time: each makes the device's current context and libtorch's current stream its own on
/// its thread, and several models on one GPU at once would only measure contention.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "Gpu";
}
