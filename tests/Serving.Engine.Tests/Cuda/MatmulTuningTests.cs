using Serving.Engine.Cuda;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// cuBLASLt products (CublasLt.Problem) and the tuning that chooses between them and TorchSharp's linear
/// (MatmulTuning) against float64 products of the same bfloat16 operands.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class MatmulTuningTests(ITestOutputHelper output)
{
    static readonly Scalar NaN = float.NaN.ToScalar();   // the output before the product: every element must be written

    /// Every candidate cuBLASLt's heuristics rank for a decode shape gives y = x W^T: the layouts and the transpose of
    /// the bindings are right whatever kernel runs, at one row, a row stride wider than K and a ragged M.
    [GpuTheory]
    [InlineData(1, 1024)]
    [InlineData(37, 1024)]
    [InlineData(64, 1536)]   // x a view: rows 1536 elements apart
    public void EveryCandidateComputesTheProduct(int m, int ldx)
    {
        const int n = 3072, k = 1024;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var scope = NewDisposeScope();
        var (x, weight) = Operands(m, n, k, ldx);
        var expected = x.to_type(ScalarType.Float64).matmul(weight.to_type(ScalarType.Float64).t());
        var handle = CublasLt.CreateHandle();
        try
        {
            using var problem = new CublasLt.Problem(CublasLt.DataType(ScalarType.BFloat16), n, k, m, ldx);
            var workspace = empty(32L << 20, ScalarType.Byte, CUDA);
            var candidates = problem.Candidates(handle, 8, 32L << 20);
            Assert.NotEmpty(candidates);
            foreach (var candidate in candidates)
            {
                var y = full(m, n, NaN, ScalarType.BFloat16, CUDA);
                problem.Run(handle, candidate, TensorPointer.Of(weight), TensorPointer.Of(x), TensorPointer.Of(y),
                    TensorPointer.Of(workspace), 32L << 20, stream.Handle);
                AssertClose(expected, y, $"candidate {candidates.ToList().IndexOf(candidate)}");
            }
            output.WriteLine($"m={m} ldx={ldx}: {candidates.Count} candidates agree with float64");
        }
        finally
        {
            stream.Synchronize();
            CublasLt.DestroyHandle(handle);
        }
    }

    /// Tuned at batch sizes 1, 8 and 64 over three weights of a shape: every batch size is measured, each product of M
    /// rows (tuned or not, ragged or not) equals float64 within bfloat16 rounding, runs the same way twice (the choice
    /// of M's bucket is fixed), and rows past the largest tuned size are left to TorchSharp.
    [GpuFact]
    public void TunedProductsMatchFloat64AndStayWithTheirBucket()
    {
        const int n = 4096, k = 2048;
        using var stream = CudaStream.Create(CudaDevice.Open(0));
        stream.MakeCurrent();
        using var scope = NewDisposeScope();
        var weights = Enumerable.Range(0, 3).Select(_ => randn(n, k, dtype: ScalarType.BFloat16, device: CUDA) * 0.05).ToList();
        using var tuning = new MatmulTuning(stream.Handle, CUDA);
        tuning.Tune(weights, [1, 8, 64]);
        Assert.Equal([1, 8, 64], tuning.Results.Select(r => r.BatchSize).Order());
        foreach (var r in tuning.Results)
            output.WriteLine($"M={r.BatchSize}: cuBLAS {r.DefaultMicroseconds:F1} us, best {r.BestMicroseconds:F1} us of {r.Candidates}, cuBLASLt chosen: {r.Chosen}");
        foreach (var m in new[] { 1, 5, 8, 37, 64 })
        {
            var x = randn(m, k, dtype: ScalarType.BFloat16, device: CUDA);
            var expected = x.to_type(ScalarType.Float64).matmul(weights[1].to_type(ScalarType.Float64).t());
            var tuned = tuning.TryLinear(x, weights[1]);
            var bucket = new[] { 1, 8, 64 }.First(size => size >= m);
            if (tuning.Results.Single(r => r.BatchSize == bucket).Chosen && m == bucket) Assert.NotNull(tuned);
            var y = tuned ?? nn.functional.linear(x, weights[1]);
            AssertClose(expected, y, $"M={m}");
            var again = tuning.TryLinear(x, weights[1]) ?? nn.functional.linear(x, weights[1]);
            Assert.True(y.equal(again).all().item<bool>(), $"M={m}: the same product twice");
        }
        Assert.Null(tuning.TryLinear(randn(65, k, dtype: ScalarType.BFloat16, device: CUDA), weights[0]));
    }

    static (Tensor X, Tensor Weight) Operands(int m, int n, int k, int ldx)
    {
        var x = randn(m, ldx, dtype: ScalarType.BFloat16, device: CUDA).narrow(1, 0, k);
        var weight = (randn(n, k, dtype: ScalarType.Float32, device: CUDA) * 0.05).to_type(ScalarType.BFloat16);
        return (x, weight);
    }

    // within bfloat16's rounding of the output (and float32 accumulation): |y - exact| <= 1e-2 |exact| + 1e-2
    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        var difference = (actual.to_type(ScalarType.Float64) - expected).abs();
        var bound = expected.abs() * 1e-2 + 1e-2;
        Assert.True(difference.le(bound).all().item<bool>(), $"{what}: max |y - exact| = {difference.max().item<double>():E2}");
    }
}
