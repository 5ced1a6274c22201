using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Tests.Support;
using Xunit.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// expert_linear.cu, a mixture's expert products over rows grouped by expert with the groups read on the device, against
/// float64 products of the same rows: experts with no rows, one, a tile's 8, a pass's 32 and past it (a second pass over
/// the weight), columns that are no whole number of the kernel's 32-column chunks; the output poisoned with NaN, so
/// every row must be written. Each product also runs on the tokens' rows, gathered by the kernel (a grouped row its
/// token's, as MoeMlp's gate and up read them), and must give the same bits; and with each GLU activation applied in the
/// kernel (GluActivation), the bits of the product then silu_mul or clamped_glu.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class ExpertLinearTests(ITestOutputHelper output)
{
    static readonly Scalar NaN = double.NaN.ToScalar();

    [GpuTheory]
    [InlineData("bfloat16", 1536, 2048)]   // qwen3-30b-a3b's gate and up of an expert
    [InlineData("bfloat16", 2048, 768)]    // and its down
    [InlineData("float16", 64, 2048)]
    [InlineData("bfloat16", 48, 24)]       // the mixture fixtures' gate and up, down
    [InlineData("bfloat16", 64, 40)]
    public void EachExpertsRowsAreItsOwnProducts(string dtype, int rows, int columns) =>
        AssertEachExpertsProducts(dtype, rows, columns, [0, 1, 8, 33, 0, 5, 70, 2, 32]);

    /// A step of fewer rows than experts (expert_linear_sparse: 8 rows a pass): single rows, an expert of 8, one of 11
    /// (two passes), most experts with none.
    [GpuTheory]
    [InlineData("bfloat16", 1536, 2048)]
    [InlineData("float16", 64, 40)]
    public void AStepOfFewerRowsThanExpertsIsEachExpertsOwnProducts(string dtype, int rows, int columns) =>
        AssertEachExpertsProducts(dtype, rows, columns, [.. Enumerable.Repeat(0L, 20), 1, 0, 8, 0, 0, 11, 1, .. Enumerable.Repeat(0L, 20), 1]);

    /// A step of at most 8 rows an expert on average (expert_linear_few: 16 rows a pass): an expert of 17 (two passes),
    /// of 16, of 9, single rows, experts with none.
    [GpuTheory]
    [InlineData("bfloat16", 1536, 2048)]
    [InlineData("float16", 64, 40)]
    public void AStepOfFewRowsAnExpertIsEachExpertsOwnProducts(string dtype, int rows, int columns) =>
        AssertEachExpertsProducts(dtype, rows, columns, [0, 1, 8, 17, 0, 5, 9, 2, 16, 3]);

    void AssertEachExpertsProducts(string dtype, int rows, int columns, long[] counts)
    {
        var type = dtype == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float16;
        Assert.True(FusedKernels.TakesExperts(type, rows, columns));
        var device = CudaDevice.Open(0);
        using var stream = CudaStream.Create(device);
        stream.MakeCurrent();
        using var kernels = new FusedKernels(device, stream.Handle, new KernelShape(type, KVCacheDtype.Of(type), 64, 64, 4, 2));
        using var scope = NewDisposeScope();
        var starts = new long[counts.Length + 1];
        for (var e = 0; e < counts.Length; e++) starts[e + 1] = starts[e] + counts[e];
        var generator = new Generator(seed: 11);
        var (tokens, tokenOfRow) = Tokens(starts[^1], columns, generator);
        var x = tokens.to(type, CUDA).index_select(0, tokenOfRow);           // the grouped rows
        using var scale = (1 / Math.Sqrt(columns)).ToScalar();
        var weight = randn(counts.Length * (long)rows, columns, generator: generator).mul(scale).to(type, CUDA);
        var result = full(starts[^1], rows, NaN, dtype: type, device: CUDA);
        kernels.ExpertsLinear(x, null, weight, tensor(starts, device: CUDA), Active(counts), result);
        var gathered = full(starts[^1], rows, NaN, dtype: type, device: CUDA);
        kernels.ExpertsLinear(tokens.to(type, CUDA), tokenOfRow, weight, tensor(starts, device: CUDA), Active(counts), gathered);
        Assert.True(gathered.equal(result).all().item<bool>(), "the rows gathered by the kernel give the grouped rows' products");
        // the rows as a gate's then an up's: silu(gate) x up in the product's kernel, the bits of the product then silu_mul
        var activated = full(starts[^1], rows / 2, NaN, dtype: type, device: CUDA);
        kernels.ExpertsLinear(tokens.to(type, CUDA), tokenOfRow, weight, tensor(starts, device: CUDA), Active(counts), activated, new GluActivation.SiluAndMul());
        var separate = full(starts[^1], rows / 2, NaN, dtype: type, device: CUDA);
        kernels.SiluMul(result, separate);
        Assert.True(activated.equal(separate).all().item<bool>(), "silu(gate) x up in the product's kernel: the product's, then silu_mul's bits");
        // the rows as gpt-oss's gates and ups interleaved, each expert's biases added: the product then clamped_glu's bits
        // (a limit of 1 clamps many of these products, of about unit size)
        var bias = randn(counts.Length, rows, generator: generator).to(type, CUDA);
        var expertOfRow = tensor(Enumerable.Range(0, counts.Length).SelectMany(e => Enumerable.Repeat((long)e, (int)counts[e])).ToArray(), device: CUDA);
        var clamped = full(starts[^1], rows / 2, NaN, dtype: type, device: CUDA);
        kernels.ExpertsLinear(tokens.to(type, CUDA), tokenOfRow, weight, tensor(starts, device: CUDA), Active(counts), clamped, new GluActivation.Clamped(bias, 1.0));
        var separateClamped = full(starts[^1], rows / 2, NaN, dtype: type, device: CUDA);
        kernels.ClampedGlu(result, bias, expertOfRow, 1.0, separateClamped);
        Assert.True(clamped.equal(separateClamped).all().item<bool>(), "gpt-oss's clamped GLU in the product's kernel: the product's, then clamped_glu's bits");

        var (x64, w64) = (x.to(ScalarType.Float64).cpu(), weight.to(ScalarType.Float64).cpu());
        var actual = result.to(ScalarType.Float64).cpu();
        Assert.False(actual.isnan().any().item<bool>(), "every row of every expert is written");
        var worst = 0.0;
        for (var e = 0; e < counts.Length; e++)
        {
            if (counts[e] == 0) continue;
            var expected = x64.narrow(0, starts[e], counts[e]).matmul(w64.narrow(0, e * (long)rows, rows).t());
            var error = (actual.narrow(0, starts[e], counts[e]) - expected).abs();
            // the output's own rounding (half a step of 8 or 11 bits) and float32 sums
            using var relative = (type == ScalarType.BFloat16 ? 1.0 / 128 : 1.0 / 1024).ToScalar();
            using var absolute = 1e-3.ToScalar();
            var bound = expected.abs().mul(relative).add(absolute);
            worst = Math.Max(worst, error.max().item<double>());
            Assert.True(error.le(bound).all().item<bool>(), $"expert {e} ({counts[e]} rows): max |error| {error.max().item<double>():E2}");
        }
        output.WriteLine($"{dtype} {rows} x {columns}: max |kernel - float64| {worst:E2}");
    }

    /// A mixture's FP8 experts stacked (Fp8Products.Stack) and multiplied over grouped rows in one launch
    /// (fp8_few_rows.cu's experts_few_rows) give, 8 rows at a time, exactly each expert's own few-rows product (the
    /// kernel AProductIsTheProductOfItsQuantizedOperands checks against float64): scaled per tensor (online), per channel
    /// and per 128 x 128 block as checkpoints store them.
    [GpuTheory]
    [InlineData(null)]
    [InlineData(false)]
    [InlineData(true)]
    public void StackedFp8ExpertsMultiplyAsEachExpertAlone(bool? perBlock)
    {
        long[] counts = [0, 1, 8, 19, 0, 5];
        const int rows = 256, columns = 512;
        using var products = new Fp8Products(CUDA, ScalarType.BFloat16);
        using var scope = NewDisposeScope();
        var generator = new Generator(seed: 12);
        var experts = counts.Select(_ =>
        {
            var weight = randn(rows, columns, generator: generator).to(ScalarType.BFloat16, CUDA);
            return products.QuantizeWeight(weight, perBlock is { } blocks ? Fp8Products.CheckpointScales(weight, blocks) : null);
        }).ToArray();
        using var stacked = products.Stack(experts) ?? throw new InvalidOperationException("experts of one shape and scaling stack");
        Assert.Equal(perBlock switch { null => Fp8Scaling.PerTensor, false => Fp8Scaling.PerChannel, _ => Fp8Scaling.PerBlock }, stacked.Scaling);
        var starts = new long[counts.Length + 1];
        for (var e = 0; e < counts.Length; e++) starts[e + 1] = starts[e] + counts[e];
        var (tokens, tokenOfRow) = Tokens(starts[^1], columns, generator);
        var x = tokens.to(ScalarType.BFloat16, CUDA).index_select(0, tokenOfRow);
        var result = full(starts[^1], rows, NaN, dtype: ScalarType.BFloat16, device: CUDA);
        products.ExpertsLinear(x, null, stacked, tensor(starts, device: CUDA), Active(counts), result);
        var gathered = full(starts[^1], rows, NaN, dtype: ScalarType.BFloat16, device: CUDA);
        products.ExpertsLinear(tokens.to(ScalarType.BFloat16, CUDA), tokenOfRow, stacked, tensor(starts, device: CUDA), Active(counts), gathered);
        Assert.True(gathered.equal(result).all().item<bool>(), "the rows gathered by the kernel give the grouped rows' products");
        for (var e = 0; e < counts.Length; e++)
            for (var first = starts[e]; first < starts[e + 1]; first += Fp8Products.FewRows)
            {
                var count = Math.Min(Fp8Products.FewRows, starts[e + 1] - first);
                var alone = products.Linear(x.narrow(0, first, count), stacked.Parts[e], null);
                Assert.True(result.narrow(0, first, count).equal(alone).all().item<bool>(), $"expert {e}, rows {first} to {first + count}");
            }
    }

    // a step's tokens (about half as many as the slots, float32 on the CPU) and the token of each grouped row (int64 on
    // the device): a token's rows repeat, as a token's k picks do
    static (Tensor Tokens, Tensor TokenOfRow) Tokens(long slots, int columns, Generator generator)
    {
        var count = slots / 2 + 1;
        return (randn(count, columns, generator: generator), randint(count, [slots], generator: generator, dtype: ScalarType.Int64).to(CUDA));
    }

    // the experts with rows first, then the others, each in order (ExpertGroups.Active)
    static Tensor Active(long[] counts) =>
        tensor(Enumerable.Range(0, counts.Length).OrderBy(e => counts[e] == 0).Select(e => (long)e).ToArray(), device: CUDA);
}
