using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// rope_kv_write with qwen3's head norms folded in (one launch) against head_rms_norm then rope_kv_write (two): the
/// same rotated q and k, the same K and V in the pool, bit for bit, with a weight every head shares and a weight a head.
[Trait("Category", "Gpu"), Collection(GpuCollection.Name)]
public sealed class HeadNormRotaryTests
{
    [GpuTheory]
    [InlineData(ScalarType.BFloat16, 32, 4, 128, false, 1)]    // qwen3-30b-a3b's heads, one token
    [InlineData(ScalarType.BFloat16, 32, 4, 128, true, 7)]     // a weight a head
    [InlineData(ScalarType.Float16, 8, 8, 64, false, 3)]       // MHA
    [InlineData(ScalarType.Float32, 40, 8, 128, false, 2)]     // 48 heads: more than the block's warps
    public void NormsThenRotatesAsTheTwoLaunches(ScalarType type, int heads, int kvHeads, int headDim, bool weightAHead, int tokens)
    {
        var device = CudaDevice.Open(0);
        using var stream = CudaStream.Create(device);
        stream.MakeCurrent();
        using var kernels = new FusedKernels(device, stream.Handle, new KernelShape(type, KVCacheDtype.Of(type), headDim, headDim, heads, kvHeads));
        using var scope = NewDisposeScope();
        var generator = new Generator(seed: 5);
        using var three = 3.ToScalar();
        var qkv = randn(tokens, (heads + 2 * kvHeads) * headDim, generator: generator).mul(three).to(type, CUDA);
        var (qWeight, kWeight) = weightAHead
            ? (rand(heads, headDim, generator: generator).to(type, CUDA), rand(kvHeads, headDim, generator: generator).to(type, CUDA))
            : (rand(headDim, generator: generator).to(type, CUDA), rand(headDim, generator: generator).to(type, CUDA));
        var positions = tensor(Enumerable.Range(0, tokens).Select(t => 5 + 11 * t).ToArray(), device: CUDA);
        var slots = tensor(Enumerable.Range(0, tokens).Select(t => 3 * t + 1).ToArray(), device: CUDA);
        var angles = outer(tensor(Enumerable.Range(0, 256).Select(p => (float)p).ToArray()), rand(headDim / 2, generator: generator)).to(CUDA);
        var (cos, sin) = (angles.cos(), angles.sin());
        var scales = ones(2, ScalarType.Float32, CUDA);
        const float eps = 1e-6f;

        var (twoLaunches, oneLaunch) = (qkv.clone(), qkv.clone());
        var (keys, values) = (zeros(4 * tokens, kvHeads, headDim, type, CUDA), zeros(4 * tokens, kvHeads, headDim, type, CUDA));
        var (fusedKeys, fusedValues) = (keys.clone(), values.clone());
        kernels.HeadRmsNorm(twoLaunches, qWeight, kWeight, eps);
        kernels.RopeAndWriteKV(twoLaunches, positions, slots, cos, sin, scales, keys, values);
        kernels.RopeAndWriteKV(oneLaunch, positions, slots, cos, sin, scales, fusedKeys, fusedValues, new HeadNorm(qWeight, kWeight, eps));

        Assert.False(twoLaunches.equal(qkv).all().item<bool>(), "the two launches changed q and k");
        Assert.True(twoLaunches.equal(oneLaunch).all().item<bool>(), "q, k and v the same bits");
        Assert.True(keys.equal(fusedKeys).all().item<bool>(), "the pool's K the same bits");
        Assert.True(values.equal(fusedValues).all().item<bool>(), "the pool's V the same bits");
        Assert.True(keys.abs().sum().to(ScalarType.Float32).item<float>() > 0, "K written");
    }
}
