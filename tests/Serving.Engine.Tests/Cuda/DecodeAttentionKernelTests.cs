using Serving.Engine.Cuda;
using Serving.Engine.KVCache;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Cuda;

/// Which attention kernel a shape runs and the launch shape it gets: pure arithmetic, checked without a GPU (the
/// kernels themselves are checked against float64 attention on the device, PagedAttentionTests).
public sealed class DecodeAttentionKernelTests
{
    [Theory]
    [InlineData(ScalarType.BFloat16, "bfloat16", 128, 90, true)]
    [InlineData(ScalarType.Float16, "fp8_e4m3", 64, 90, true)]
    [InlineData(ScalarType.BFloat16, "float16", 96, 80, true)]
    [InlineData(ScalarType.Float32, "float32", 128, 90, false)]     // float32 models and pools stay on CUDA cores
    [InlineData(ScalarType.BFloat16, "float32", 128, 90, false)]
    [InlineData(ScalarType.BFloat16, "bfloat16", 72, 90, false)]    // head dim not a multiple of 16
    [InlineData(ScalarType.BFloat16, "fp8_e4m3", 80, 90, false)]    // FP8 lanes read a quarter and an eighth of a row in whole words
    [InlineData(ScalarType.BFloat16, "bfloat16", 256, 90, true)]    // gemma's head dim, 4 query heads per KV head, on sm_90
    [InlineData(ScalarType.BFloat16, "bfloat16", 256, 80, false)]   // its stages need sm_90's shared memory
    [InlineData(ScalarType.BFloat16, "bfloat16", 128, 75, false)]   // no bf16 mma.sync before sm_80
    public void TensorCoresTakeSixteenBitModelsOverSixteenBitOrFp8Pools(ScalarType dtype, string cache, int headDim, int sm, bool expected)
    {
        var shape = new KernelShape(dtype, KVCacheDtype.Resolve(cache, dtype), headDim, headDim, 32, 8);
        var kernel = DecodeAttentionKernel.For(shape, sm);
        Assert.Equal(expected, kernel.TensorCores);
        Assert.Equal(expected ? "paged_decode_attention_mma" : "paged_decode_attention", kernel.Name);
    }

    [Fact]
    public void Llama3ShapeFitsTwoBlocksPerMultiprocessor()
    {
        // bf16, head dim 128: per warp 3 stages x (K + V) x 16 rows of 136 elements, four warps
        var shape = new KernelShape(ScalarType.BFloat16, KVCacheDtype.BFloat16, 128, 128, 32, 8);
        var kernel = DecodeAttentionKernel.For(shape, 90);
        Assert.Equal(3u * 2 * 16 * 136 * 2, DecodeAttentionKernel.ChunkStagesBytes(shape));
        Assert.Equal(4 * DecodeAttentionKernel.ChunkStagesBytes(shape), kernel.SharedBytes);
        Assert.True(2 * (kernel.SharedBytes + 1024) <= 228 * 1024, "two blocks share a multiprocessor's 228 KiB");
        Assert.Equal((1, 64, 128u), (kernel.BlocksPerKVHead, kernel.Granule, kernel.Threads));
    }

    [Theory]
    [InlineData(32, 32, 1, 64)]     // MHA: one head per KV head, one tile, four chunk streams
    [InlineData(32, 8, 1, 64)]      // GQA-4
    [InlineData(64, 8, 1, 64)]      // GQA-8: one full tile
    [InlineData(40, 2, 1, 32)]      // 20 heads per KV head: a full tile and a ragged one, side by side in one block
    [InlineData(32, 1, 1, 32)]      // MQA: 32 heads in two tiles of one block, two chunk streams
    [InlineData(48, 1, 2, 32)]      // three tiles: two blocks of two tiles (the last warp of the second has no rows)
    [InlineData(64, 1, 1, 16)]      // four tiles, one stream: the KV head is still read once
    public void QueryHeadsOfAKVHeadAreSixteenRowTilesSharingTheBlocksChunks(int numHeads, int numKVHeads, int blocks, int granule)
    {
        var shape = new KernelShape(ScalarType.BFloat16, KVCacheDtype.Fp8E4M3, 128, 128, numHeads, numKVHeads);
        var kernel = DecodeAttentionKernel.For(shape, 90);
        Assert.Equal((blocks, granule), (kernel.BlocksPerKVHead, kernel.Granule));
        // FP8: staged rows of 128 + 16 bytes, converted in registers; one set of stages per chunk stream
        Assert.Equal(3u * 2 * 16 * 144, DecodeAttentionKernel.ChunkStagesBytes(shape));
        Assert.True(kernel.SharedBytes >= granule / 16 * DecodeAttentionKernel.ChunkStagesBytes(shape));
    }
}
