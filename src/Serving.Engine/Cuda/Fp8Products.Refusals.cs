using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

// What this cuBLASLt can do with vectors and blocks of scales, asked once by a small exact product.
internal sealed unsafe partial class Fp8Products
{
    // null when this cuBLASLt runs an FP8 product with outer-vector scales (it describes one, has an algorithm for it
    // and runs it, each output scaled by its row's and column's scale: a library before 12.9 refuses the description,
    // and one may rank what it then cannot run), else why not
    string? RefusalOfRowScales()
    {
        const int n = 64, k = 64, m = FewRows + 8;
        // powers of two, so that every product is exact in either 16-bit type
        using var scope = NewDisposeScope();
        var weightScales = tensor(Enumerable.Range(0, n).Select(i => (float)(1 << (i % 4))).ToArray());
        var inputScales = tensor(Enumerable.Range(0, m).Select(i => (float)(1 << (i % 4))).ToArray());
        // y[t, f] = k 2^(t % 4) 2^(f % 4): at most 64 x 64
        var expected = HeldScalars.Multiply(inputScales.unsqueeze(1).mul(weightScales.unsqueeze(0)), (long)k);
        return RefusalOf(CublasLt.Scales.OuterVectors, n, k, m, weightScales, inputScales, expected, "vectors of scales");
    }

    // null when this cuBLASLt runs an FP8 product with block scales (BLK128x128 for the weight, VEC128 for the input,
    // laid out as Fp8Scaling.PerBlock and QuantizeRowGroups lay them out), else why not; as RefusalOfRowScales
    string? RefusalOfBlockScales()
    {
        const int n = 2 * ScaleBlock, k = 2 * ScaleBlock, m = FewRows + 8, groups = k / ScaleBlock;
        // powers of two a few apart, so that every product is exact in either 16-bit type and another layout of
        // either's scales gives another y; the weight's rows padded to 4 scales, the padding 1
        using var scope = NewDisposeScope();
        var blockScales = ones(n / ScaleBlock, 4, ScalarType.Float32);
        for (var block = 0; block < n / ScaleBlock; block++)
            for (var group = 0; group < groups; group++) blockScales[block, group] = (float)(1 << (block + group));
        var groupScales = tensor(Enumerable.Range(0, groups * m).Select(i => (float)(1 << (i % m % 4 + 2 * (i / m)))).ToArray()).view(groups, m);
        // y[t, f] = sum over groups g of 128 x input scale (g, t) x block scale (f / 128, g)
        var expected = HeldScalars.Multiply(groupScales.t().matmul(blockScales.narrow(1, 0, groups).repeat_interleave(ScaleBlock, 0).t()), (long)ScaleBlock);
        return RefusalOf(CublasLt.Scales.Blocks, n, k, m, blockScales, groupScales, expected, "128 x 128 blocks of scales");
    }

    // null when this cuBLASLt runs y = x W^T of m rows with every element of x and the (n, k) W 1.0 in e4m3, scaled by
    // the given scales (float32, CPU, laid out as scales says), and gives exactly expected (m, n); else why not
    string? RefusalOf(CublasLt.Scales scales, int n, int k, int m, Tensor weightScales, Tensor inputScales, Tensor expected, string what)
    {
        const byte one = 0x38;   // 1.0 in e4m3
        try
        {
            using var scope = NewDisposeScope();
            var weight = tensor(Enumerable.Repeat(one, n * k).ToArray()).view(n, k).to(_torchDevice);
            var x = tensor(Enumerable.Repeat(one, m * k).ToArray()).view(m, k).to(_torchDevice);
            var (weightScalesOn, inputScalesOn) = (weightScales.to(_torchDevice), inputScales.to(_torchDevice));
            var y = empty(m, n, _dtype, _torchDevice);
            using var problem = new CublasLt.Problem(CublasLt.Fp8E4M3, CublasLt.DataType(_dtype), n, k, m, k, scales);
            problem.UseScales(TensorPointer.Of(weightScalesOn), TensorPointer.Of(inputScalesOn));
            var candidates = problem.Candidates(_handle, 1, WorkspaceBytes);
            if (candidates.Count == 0) return $"cuBLASLt has no algorithm for FP8 with {what} here";
            problem.Run(_handle, candidates[0], TensorPointer.Of(weight), TensorPointer.Of(x), TensorPointer.Of(y), TensorPointer.Of(_workspace),
                WorkspaceBytes, CurrentStream, TensorPointer.Of(weightScalesOn), TensorPointer.Of(inputScalesOn));
            CudaDriver.SynchronizeContext();
            return y.to_type(ScalarType.Float32).cpu().equal(expected).all().item<bool>() ? null
                : $"cuBLASLt accepts {what} here but did not apply them as laid out";
        }
        catch (CudaException error)
        {
            return error.Message;
        }
    }
}
