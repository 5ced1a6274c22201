using Serving.Engine.KVCache;
using Serving.Engine.Tests.Execution;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.KVCache;

public sealed class KVCacheDtypeTests
{
    [Fact]
    public void TheFlagNamesResolveAgainstTheModelDtype()
    {
        Assert.Same(KVCacheDtype.BFloat16, KVCacheDtype.Resolve("auto", ScalarType.BFloat16));
        Assert.Same(KVCacheDtype.Float16, KVCacheDtype.Resolve("half", ScalarType.Float32));
        Assert.Same(KVCacheDtype.Fp8E4M3, KVCacheDtype.Resolve("fp8", ScalarType.BFloat16));
        Assert.Same(KVCacheDtype.Fp8E4M3, KVCacheDtype.Resolve("fp8_e4m3", ScalarType.BFloat16));
        Assert.Contains("--kv-cache-dtype", Assert.Throws<ArgumentException>(() => KVCacheDtype.Resolve("int4", ScalarType.BFloat16)).Message);
        Assert.Contains("fp8_e5m2", Assert.Throws<ArgumentException>(() => KVCacheDtype.Resolve("fp8_e5m2", ScalarType.BFloat16)).Message);
    }

    /// FP8 halves bfloat16's bytes per token: the Llama-3-8B shape stores 65,536 bytes per token, so the same memory
    /// holds twice the blocks.
    [Fact]
    public void Fp8HoldsTwiceTheTokensOfBfloat16()
    {
        var config = Serving.Engine.Model.ModelPresets.Get("llama3-8b");
        var bf16 = KVCacheSpec.For(config, KVCacheDtype.BFloat16);
        var fp8 = KVCacheSpec.For(config, KVCacheDtype.Fp8E4M3);
        Assert.Equal((131072L, 65536L), (bf16.BytesPerToken, fp8.BytesPerToken));
        const long memory = 64L << 30;
        Assert.Equal(2 * KVCacheSizing.Plan(bf16, memory, 16).NumBlocks, KVCacheSizing.Plan(fp8, memory, 16).NumBlocks);
    }

    [Fact]
    public void TheHostFp8ReferenceFollowsE4M3()
    {
        Assert.Equal(448f, Fp8E4M3.Decode(0x7E));
        Assert.Equal(-1f, Fp8E4M3.Decode(0xB8));
        Assert.Equal(MathF.Pow(2, -9), Fp8E4M3.Decode(0x01));             // smallest subnormal
        Assert.True(float.IsNaN(Fp8E4M3.Decode(0x7F)));
        Assert.Equal((byte)0x7E, Fp8E4M3.Encode(1000f));                   // saturates
        Assert.Equal((byte)0x38, Fp8E4M3.Encode(1f));
        Assert.Equal(1.125f, Fp8E4M3.Decode(Fp8E4M3.Encode(1.1f)));
        for (var b = 0; b < 256; b++)
            if (!float.IsNaN(Fp8E4M3.Decode((byte)b)) && b != 0x80)       // -0 encodes as +0
                Assert.Equal((byte)b, Fp8E4M3.Encode(Fp8E4M3.Decode((byte)b)));
    }

    /// libtorch here has no FP8 type, so FP8 pools run only through the CUDA kernels: on the CPU the engine refuses
    /// to start, naming the flag.
    [Fact]
    public async Task AnFp8CacheOnTheCpuFailsTheStartNamingTheFlag()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => EngineTestHelpers.StartAsync(configure: o => o with { KVCacheDtype = "fp8" }));
        Assert.Contains("--kv-cache-dtype fp8", error.Message);
        Assert.Contains("CUDA", error.Message);
        var scales = await Assert.ThrowsAnyAsync<Exception>(() => EngineTestHelpers.StartAsync(configure: o => o with { CalculateKVScales = true }));
        Assert.Contains("--calculate-kv-scales", scales.Message);
    }
}
