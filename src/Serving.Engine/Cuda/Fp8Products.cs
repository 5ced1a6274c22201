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
/// a CUDA graph captures it). Up to FewRows rows (a small decode step) take fp8_few_rows.cu's kernel instead, on the
/// input as it is: one launch, no quantization of x, the weight read at a higher rate than cuBLASLt's FP8 tiles reach
/// there. The cuBLASLt algorithm for a shape and row count is the fastest of its candidates where Tune timed them (at
/// the decode graphs' batch sizes, as MatmulTuning does for 16-bit products), else cuBLASLt's first choice. Owns the
/// kernels, the cuBLASLt handle and workspace and the problem descriptions of one device, used by one thread at a time
/// (the rank's engine thread).
internal sealed unsafe class Fp8Products : IDisposable
{
    /// The kernel module's sources in order (both kernel files use element_types.cu's helpers).
    public static IReadOnlyList<string> SourceNames { get; } = ["element_types.cu", "fp8_quantize.cu", "fp8_few_rows.cu"];
    /// At most this many rows take fp8_few_rows.cu's kernel (input in 16 bits, one launch) where K allows (FewRowsTake):
    /// the n of its MMAs. It and the two below are the kernel's FEW_ROWS, FEW_CHUNK and FEW_WARPS (Defines).
    public const int FewRows = 8;
    const int FewRowsChunk = 128;          // K elements of one warp step: K a multiple of it
    const int FewRowsWarps = 8;            // a block's warps, splitting K
    const int FewRowsThreads = FewRowsWarps * 32;
    /// Device memory kept for cuBLASLt's workspace.
    public const long WorkspaceBytes = 32L << 20;
    const int Threads = 256;
    const int MaxPartials = 1024;          // fp8_absmax's blocks: the partial maxima fp8_quantize reduces
    const int SmallThreads = 1024;         // fp8_quantize_small's one block
    // at most this many 16-byte vectors take it (2 a thread): its two passes over more cost more than the second launch
    // (H100, llama3-8b's qkv_proj at 16 and 32 rows took 19.0 and 26.0 us with up to 16 vectors a thread, 14.8 at 64)
    const long SmallVectors = 2048;
    const int MaxProblems = 4096;          // problem descriptions kept (prefill chunks bring many row counts)

    readonly CudaDevice _device;
    readonly Device _torchDevice;
    readonly ScalarType _dtype;
    readonly KernelModule _module;
    readonly IntPtr _absmax, _quantize, _quantizeSmall, _fewRows, _fewRowsLean;
    readonly int _fewRowsWave, _fewRowsLeanWave;   // blocks of each build the device holds at once
    readonly IntPtr _handle;
    readonly Tensor _workspace;
    readonly bool _dependentLaunch;
    readonly Dictionary<(long N, long K, long M), (CublasLt.Problem Problem, CublasLt.Algorithm Algorithm)> _problems = [];
    readonly List<int> _tunedSizes = [];   // ascending
    readonly Dictionary<(long N, long K, int BatchSize), CublasLt.Algorithm> _tuned = [];
    readonly List<TunedMatmul> _tuningResults = [];

    /// dtype: the model's (bfloat16 or float16), the type of the products' inputs and outputs.
    public Fp8Products(Device device, ScalarType dtype)
    {
        if (Unsupported(device, dtype) is { } reason) throw new ArgumentException(reason);
        (_device, _torchDevice, _dtype) = (CudaDevice.Open(Math.Max(device.index, 0)), device, dtype);
        _module = new KernelModule(_device, SourceNames, Defines(dtype));
        (_absmax, _quantize, _quantizeSmall) = (_module.GetFunction("fp8_absmax"), _module.GetFunction("fp8_quantize"), _module.GetFunction("fp8_quantize_small"));
        (_fewRows, _fewRowsLean) = (_module.GetFunction("fp8_linear_few_rows"), _module.GetFunction("fp8_linear_few_rows_lean"));
        _fewRowsWave = CudaDriver.MaxActiveBlocksPerMultiprocessor(_fewRows, FewRowsThreads, 0) * _device.MultiprocessorCount;
        _fewRowsLeanWave = CudaDriver.MaxActiveBlocksPerMultiprocessor(_fewRowsLean, FewRowsThreads, 0) * _device.MultiprocessorCount;
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

    /// What the kernel module is compiled with: the model's type, the e4m3 conversions and the few-rows kernel's shape.
    public static IReadOnlyDictionary<string, string> Defines(ScalarType dtype) => new Dictionary<string, string>
    {
        ["ELEM_TYPE"] = dtype switch { ScalarType.BFloat16 => "1", ScalarType.Float16 => "2", _ => "0" },
        ["CACHE_TYPE"] = "3",
        ["FEW_ROWS"] = FewRows.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["FEW_CHUNK"] = FewRowsChunk.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["FEW_WARPS"] = FewRowsWarps.ToString(System.Globalization.CultureInfo.InvariantCulture),
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
    /// At most FewRows rows (where FewRowsTake) run fp8_few_rows.cu's kernel on x as it is (W8A16); more run cuBLASLt on
    /// x quantized per tensor (W8A8).
    public Tensor Linear(Tensor x, Fp8Weight weight, Tensor? bias)
    {
        if (x.dim() != 2 || x.size(1) != weight.InFeatures || x.dtype != _dtype)
            throw new ArgumentException($"an FP8 product of a ({weight.OutFeatures}, {weight.InFeatures}) weight takes ({_dtype}) rows of {weight.InFeatures}, got {x.dtype} [{string.Join(", ", x.shape)}]");
        var (m, n, k) = (x.size(0), weight.OutFeatures, weight.InFeatures);
        var y = empty(m, n, _dtype, _torchDevice);
        if (m > 0 && FewRowsKernel && FewRowsTake(m, k))
            LinearFewRows(x, weight, y);
        else if (m > 0)
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

    /// Whether a product of m rows with a weight of k input features runs fp8_few_rows.cu's kernel.
    public static bool FewRowsTake(long m, long k) => m <= FewRows && k % FewRowsChunk == 0;

    /// False: every product runs cuBLASLt, few rows too (the benchmark's --no-fp8-few-rows, to compare the two).
    public bool FewRowsKernel { get; set; } = true;

    /// What the last Tune measured, shape by shape, and how long it took.
    public IReadOnlyList<TunedMatmul> TuningResults => _tuningResults;
    public TimeSpan TuningTime { get; private set; }

    /// Times cuBLASLt's candidates (ProductTiming.CandidatesPerShape) for every shape among the weights (the model's FP8
    /// projections; those of one shape cycled through, as a step reads them) at each batch size (the decode graphs'),
    /// and keeps the fastest where it beats the first choice (the first candidate that runs; ProductTiming.Beats): a
    /// product of M rows then runs the choice of the smallest tuned batch size of at least M, so an eager step and the
    /// graph that replays it padded run one kernel.
    /// Batch sizes the few-rows kernel takes are not timed. No batch sizes: back to the first choices. On libtorch's
    /// current stream, outside any capture.
    public void Tune(IEnumerable<Fp8Weight> weights, IReadOnlyList<int> batchSizes)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        ClearProblems();                   // products made so far hold the first choices
        _tunedSizes.Clear();
        _tuned.Clear();
        _tuningResults.Clear();
        _tunedSizes.AddRange(batchSizes.Distinct().Order());
        if (_tunedSizes.Count > 0)
            foreach (var shape in weights.GroupBy(w => (N: w.OutFeatures, K: w.InFeatures)))
            {
                var group = shape.ToList();
                foreach (var batchSize in _tunedSizes) TuneShape(group, shape.Key.N, shape.Key.K, batchSize);
            }
        TuningTime = System.Diagnostics.Stopwatch.GetElapsedTime(started);
    }

    public void Dispose()
    {
        ClearProblems();
        _workspace.Dispose();
        CublasLt.DestroyHandle(_handle);
        _module.Dispose();
    }

    IntPtr CurrentStream => TorchCudaStreams.Current(_device.Ordinal);

    void ClearProblems()
    {
        foreach (var (problem, _) in _problems.Values) problem.Dispose();
        _problems.Clear();
    }

    // y = x W^T by fp8_few_rows.cu's kernel: x's rows 16-byte aligned (else a contiguous copy), y contiguous
    void LinearFewRows(Tensor x, Fp8Weight weight, Tensor y)
    {
        using var scope = NewDisposeScope();
        const int vector = 8;   // elements of a 16-bit type in 16 bytes
        if (x.stride(1) != 1 || (x.size(0) > 1 && x.stride(0) % vector != 0)) x = x.contiguous();
        if (TensorPointer.Of(x) % 16 != 0) x = x.clone();
        var (rows, k, ld, n) = ((int)x.size(0), (int)x.size(1), x.size(0) == 1 ? x.size(1) : x.stride(0), (int)weight.OutFeatures);
        var (xPtr, wPtr, scalePtr, yPtr) = (TensorPointer.Of(x), TensorPointer.Of(weight.Values), TensorPointer.Of(weight.Scale), TensorPointer.Of(y));
        void** args = stackalloc void*[] { &xPtr, &rows, &k, &ld, &wPtr, &scalePtr, &yPtr, &n };
        _device.MakeCurrent();
        // the lean build (one chunk a warp in flight, more blocks an SM) where it runs the grid in one wave and the
        // default would take two, the second part-empty
        var blocks = n / 16;
        var function = blocks > _fewRowsWave && blocks <= _fewRowsLeanWave ? _fewRowsLean : _fewRows;
        CudaDriver.Launch(function, ((uint)blocks, 1, 1), FewRowsThreads, 0, CurrentStream, args, _dependentLaunch);
    }

    void TuneShape(List<Fp8Weight> weights, long n, long k, int batchSize)
    {
        if (FewRowsKernel && FewRowsTake(batchSize, k)) return;   // not cuBLASLt's
        using var scope = NewDisposeScope();
        var (input, inputScale) = Quantize(randn(batchSize, k, dtype: _dtype, device: _torchDevice));
        var y = empty(batchSize, n, _dtype, _torchDevice);
        using var problem = new CublasLt.Problem(CublasLt.Fp8E4M3, CublasLt.DataType(_dtype), n, k, batchSize, k);
        var candidates = problem.Candidates(_handle, ProductTiming.CandidatesPerShape, WorkspaceBytes);
        var timed = new List<(CublasLt.Algorithm Algorithm, double Milliseconds)>();
        foreach (var candidate in candidates)
        {
            try
            {
                timed.Add((candidate, ProductTiming.Milliseconds(CurrentStream, weights, n * k, w => problem.Run(_handle, candidate,
                    TensorPointer.Of(w.Values), TensorPointer.Of(input), TensorPointer.Of(y), TensorPointer.Of(_workspace), WorkspaceBytes,
                    CurrentStream, TensorPointer.Of(w.Scale), TensorPointer.Of(inputScale)))));
            }
            catch (CudaException)
            {
                // a candidate the library ranks but will not run here
            }
        }
        if (timed.Count == 0) return;      // ProblemFor says so when a product needs it
        var (first, best) = (timed[0], timed.MinBy(t => t.Milliseconds));
        var chosen = ProductTiming.Beats(best.Milliseconds, first.Milliseconds);
        _tuned[(n, k, batchSize)] = chosen ? best.Algorithm : first.Algorithm;
        _tuningResults.Add(new TunedMatmul(n, k, batchSize, first.Milliseconds * 1e3, (chosen ? best : first).Milliseconds * 1e3, candidates.Count, chosen));
    }

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

    // the problem of m rows (cached) with the algorithm of m's batch size: the smallest tuned size of at least m and
    // its tuned choice, else the decode graphs' bucket of m (DecodeGraphs.BucketOf) and cuBLASLt's first choice for it,
    // where it takes m rows; so an eager step runs the kernel the graph that replays it padded runs (as MatmulTuning
    // does), and a step that fills its bucket gives the same logits either way
    (CublasLt.Problem, CublasLt.Algorithm) ProblemFor(long n, long k, long m)
    {
        if (_problems.TryGetValue((n, k, m), out var known)) return known;
        if (_problems.Count >= MaxProblems) ClearProblems();
        var problem = new CublasLt.Problem(CublasLt.Fp8E4M3, CublasLt.DataType(_dtype), n, k, m, k);
        var tunedSize = _tunedSizes.FirstOrDefault(size => size >= m);
        var bucket = tunedSize > 0 ? tunedSize : Model.DecodeGraphs.BucketOf(m);
        CublasLt.Algorithm? algorithm = null;
        if (_tuned.TryGetValue((n, k, tunedSize), out var tuned) && problem.Accepts(_handle, tuned, WorkspaceBytes))
            algorithm = tuned;
        else if (bucket != m)
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
