using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// A weight stored as FP8 (E4M3): values (out, in) bytes on the device and the one float32 scale that makes them the
/// weight again (weight ~ values x scale). Made by Fp8Products.QuantizeWeight, which also runs its products.
internal sealed record Fp8Weight(Tensor Values, Tensor Scale, Fp8Products Products) : IDisposable
{
    public long OutFeatures => Values.size(0);
    public long InFeatures => Values.size(1);
    public long Bytes => Values.NumberOfElements + Scale.NumberOfElements * 4;

    public void Dispose()
    {
        Values.Dispose();
        Scale.Dispose();
    }
}

/// FP8 matrix products on one GPU (sm_89 and later), vLLM's online "fp8" quantization: y = x W^T where W was quantized
/// to E4M3 once with one scale per tensor (QuantizeWeight), and each product quantizes its input x the same way, a
/// scale from its largest magnitude, at every step (dynamic per-tensor; fp8_quantize.cu's kernels). cuBLASLt
/// multiplies the two on FP8 tensor cores, accumulates in float32 and writes y in the model's 16-bit type, scaled by
/// both scales. A weight's bytes halve, so a decode step that reads every weight once reads half as much, and the
/// products' tensor-core rate doubles. Everything queues on libtorch's current stream (the model's during a step, so
/// a CUDA graph captures it); the algorithm for each shape and row count is cuBLASLt's first choice. Owns the
/// kernels, the cuBLASLt handle and workspace and the problem descriptions of one device, used by one thread at a time
/// (the rank's engine thread).
internal sealed unsafe class Fp8Products : IDisposable
{
    /// The kernel module's sources in order (fp8_quantize.cu uses element_types.cu's helpers).
    public static IReadOnlyList<string> SourceNames { get; } = ["element_types.cu", "fp8_quantize.cu"];
    /// Device memory kept for cuBLASLt's workspace.
    public const long WorkspaceBytes = 32L << 20;
    const int Threads = 256;
    const int MaxPartials = 1024;          // fp8_absmax's blocks: the partial maxima fp8_quantize reduces
    const int SmallThreads = 1024;         // fp8_quantize_small's one block
    const long SmallVectors = 16384;       // at most this many 16-byte vectors take it (16 a thread; a decode step's few rows)
    const int MaxProblems = 4096;          // problem descriptions kept (prefill chunks bring many row counts)

    readonly CudaDevice _device;
    readonly Device _torchDevice;
    readonly ScalarType _dtype;
    readonly KernelModule _module;
    readonly IntPtr _absmax, _quantize, _quantizeSmall;
    readonly IntPtr _handle;
    readonly Tensor _workspace;
    readonly bool _dependentLaunch;
    readonly Dictionary<(long N, long K, long M), (CublasLt.Problem Problem, CublasLt.Algorithm Algorithm)> _problems = [];

    /// dtype: the model's (bfloat16 or float16), the type of the products' inputs and outputs.
    public Fp8Products(Device device, ScalarType dtype)
    {
        if (Unsupported(device, dtype) is { } reason) throw new ArgumentException(reason);
        (_device, _torchDevice, _dtype) = (CudaDevice.Open(Math.Max(device.index, 0)), device, dtype);
        _module = new KernelModule(_device, SourceNames, Defines(dtype));
        (_absmax, _quantize, _quantizeSmall) = (_module.GetFunction("fp8_absmax"), _module.GetFunction("fp8_quantize"), _module.GetFunction("fp8_quantize_small"));
        _handle = CublasLt.CreateHandle();
        _workspace = empty(WorkspaceBytes, ScalarType.Byte, device);
        _workspace.DetachFromDisposeScope();   // lives with this object, whatever scope creates it (a peer rank's job has one)
        _dependentLaunch = _device.ComputeCapability >= 90 && CudaDriver.SupportsDependentLaunch;
    }

    /// Why FP8 products cannot run for a model of dtype on device (null when they can): they need a CUDA GPU of compute
    /// capability 8.9 or later (FP8 tensor cores) and a 16-bit model. dtype null: not known yet (the device alone).
    public static string? Unsupported(Device device, ScalarType? dtype)
    {
        if (device.type != DeviceType.CUDA) return $"FP8 weights need a CUDA GPU (the model is on {device.type.ToString().ToLowerInvariant()})";
        var capability = CudaDevice.Open(Math.Max(device.index, 0)).ComputeCapability;
        if (capability < 89) return $"FP8 weights need a GPU of compute capability 8.9 or later (Ada, Hopper); cuda:{Math.Max(device.index, 0)} is sm_{capability}";
        return dtype is null or ScalarType.BFloat16 or ScalarType.Float16 ? null
            : $"FP8 weights need a bfloat16 or float16 model (--dtype), not {Model.ModelDtype.Name(dtype.Value)}";
    }

    /// Whether a weight of this shape can be stored as FP8: cuBLASLt's FP8 products take rows of a multiple of 16
    /// bytes, and the quantization kernels whole 16-byte vectors of the input.
    public static bool Takes(long outFeatures, long inFeatures) => inFeatures % 16 == 0 && outFeatures % 16 == 0;

    /// What the kernel module is compiled with: the model's type, and the e4m3 conversions.
    public static IReadOnlyDictionary<string, string> Defines(ScalarType dtype) => new Dictionary<string, string>
    {
        ["ELEM_TYPE"] = dtype switch { ScalarType.BFloat16 => "1", ScalarType.Float16 => "2", _ => "0" },
        ["CACHE_TYPE"] = "3",
    };

    /// weight (out, in) of the model's type on the device as FP8 values and their scale; the caller owns the result.
    /// Waits for the quantization, so the caller may free the weight at once.
    public Fp8Weight QuantizeWeight(Tensor weight)
    {
        if (weight.dim() != 2 || !Takes(weight.size(0), weight.size(1)) || weight.dtype != _dtype)
            throw new ArgumentException($"an FP8 weight is ({_dtype}) rows of a multiple of 16 columns, got {weight.dtype} [{string.Join(", ", weight.shape)}]");
        using var scope = NewDisposeScope();
        var (values, scale) = Quantize(weight);
        CudaDriver.SynchronizeContext();
        // they live with the weight's module, whatever scope the caller runs in (a peer rank's job has one)
        values.DetachFromDisposeScope();
        scale.DetachFromDisposeScope();
        return new Fp8Weight(values, scale, this);
    }

    /// x W^T (+ bias): x (rows, in) of the model's type, (rows, out) of the same type; in the caller's dispose scope.
    public Tensor Linear(Tensor x, Fp8Weight weight, Tensor? bias)
    {
        if (x.dim() != 2 || x.size(1) != weight.InFeatures || x.dtype != _dtype)
            throw new ArgumentException($"an FP8 product of a ({weight.OutFeatures}, {weight.InFeatures}) weight takes ({_dtype}) rows of {weight.InFeatures}, got {x.dtype} [{string.Join(", ", x.shape)}]");
        var (m, n, k) = (x.size(0), weight.OutFeatures, weight.InFeatures);
        var y = empty(m, n, _dtype, _torchDevice);
        if (m > 0)
        {
            using var scope = NewDisposeScope();
            var (input, inputScale) = Quantize(x);
            var (problem, algorithm) = ProblemFor(n, k, m);
            problem.Run(_handle, algorithm, TensorPointer.Of(weight.Values), TensorPointer.Of(input), TensorPointer.Of(y),
                TensorPointer.Of(_workspace), WorkspaceBytes, CurrentStream, TensorPointer.Of(weight.Scale), TensorPointer.Of(inputScale));
        }
        if (bias is not null) y.add_(bias, HeldScalars.One);
        return y;
    }

    public void Dispose()
    {
        foreach (var (problem, _) in _problems.Values) problem.Dispose();
        _problems.Clear();
        _workspace.Dispose();
        CublasLt.DestroyHandle(_handle);
        _module.Dispose();
    }

    IntPtr CurrentStream => TorchCudaStreams.Current(_device.Ordinal);

    // x (rows, cols) as e4m3 bytes (rows, cols) and its scale (1) float32, both new tensors in the caller's scope
    (Tensor Values, Tensor Scale) Quantize(Tensor x)
    {
        const int vector = 8;   // elements of a 16-bit type in the kernels' 16-byte vectors
        if (x.stride(1) != 1 || x.stride(0) % vector != 0) x = x.contiguous();
        if (TensorPointer.Of(x) % 16 != 0) x = x.clone();   // a view at an odd offset: contiguous() would keep it
        var (rows, cols, ld) = (x.size(0), (int)x.size(1), x.size(0) == 1 ? x.size(1) : x.stride(0));
        var totalVectors = rows * cols / vector;
        var values = empty(rows, cols, ScalarType.Byte, _torchDevice);
        var scale = empty(1, ScalarType.Float32, _torchDevice);
        var (xPtr, scalePtr, valuesPtr) = (TensorPointer.Of(x), TensorPointer.Of(scale), TensorPointer.Of(values));
        _device.MakeCurrent();
        if (totalVectors <= SmallVectors)
        {
            void** smallArgs = stackalloc void*[] { &xPtr, &rows, &cols, &ld, &scalePtr, &valuesPtr };
            CudaDriver.Launch(_quantizeSmall, (1, 1, 1), SmallThreads, 0, CurrentStream, smallArgs, _dependentLaunch);
            return (values, scale);
        }
        var blocksNeeded = (totalVectors + Threads - 1) / Threads;
        var partialBlocks = (int)Math.Min(blocksNeeded, Math.Min(MaxPartials, 4L * _device.MultiprocessorCount));
        var partials = empty(partialBlocks, ScalarType.Float32, _torchDevice);
        var partialsPtr = TensorPointer.Of(partials);
        void** absmaxArgs = stackalloc void*[] { &xPtr, &rows, &cols, &ld, &partialsPtr };
        CudaDriver.Launch(_absmax, ((uint)partialBlocks, 1, 1), Threads, 0, CurrentStream, absmaxArgs, _dependentLaunch);
        var quantizeBlocks = (uint)Math.Min(blocksNeeded, 16L * _device.MultiprocessorCount);
        void** quantizeArgs = stackalloc void*[] { &xPtr, &rows, &cols, &ld, &partialsPtr, &partialBlocks, &scalePtr, &valuesPtr };
        CudaDriver.Launch(_quantize, (quantizeBlocks, 1, 1), Threads, 0, CurrentStream, quantizeArgs, _dependentLaunch);
        partials.Dispose();   // freed in stream order: the caching allocator reuses it only for work queued after
        return (values, scale);
    }

    // the problem of m rows (cached) with cuBLASLt's first choice of algorithm for the decode graphs' bucket of m
    // (DecodeGraphs.BucketOf), where it takes m rows: an eager step runs the kernel the graph that
    // replays it padded runs (as MatmulTuning does), so a step that fills its bucket gives the same logits either way
    (CublasLt.Problem, CublasLt.Algorithm) ProblemFor(long n, long k, long m)
    {
        if (_problems.TryGetValue((n, k, m), out var known)) return known;
        if (_problems.Count >= MaxProblems)
        {
            foreach (var (old, _) in _problems.Values) old.Dispose();
            _problems.Clear();
        }
        var problem = new CublasLt.Problem(CublasLt.Fp8E4M3, CublasLt.DataType(_dtype), n, k, m, k);
        var bucket = Model.DecodeGraphs.BucketOf(m);
        CublasLt.Algorithm? algorithm = null;
        if (bucket != m)
        {
            using var bucketProblem = new CublasLt.Problem(CublasLt.Fp8E4M3, CublasLt.DataType(_dtype), n, k, bucket, k);
            if (FirstChoice(bucketProblem) is { } chosen && problem.Accepts(_handle, chosen, WorkspaceBytes)) algorithm = chosen;
        }
        algorithm ??= FirstChoice(problem);
        if (algorithm is null)
        {
            problem.Dispose();
            throw new CudaException($"cuBLASLt has no FP8 algorithm for a ({n}, {k}) weight at {m} rows on sm_{_device.ComputeCapability}");
        }
        return _problems[(n, k, m)] = (problem, algorithm.Value);
    }

    // cuBLASLt's first choice for the problem; null when it has none
    CublasLt.Algorithm? FirstChoice(CublasLt.Problem problem)
    {
        var candidates = problem.Candidates(_handle, 1, WorkspaceBytes);
        return candidates.Count > 0 ? candidates[0] : null;
    }
}
