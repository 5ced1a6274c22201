using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.KVCache;

/// What one token costs in the KV pool and how it is stored: K and V, in every layer, for each KV head (not each
/// query head: a GQA model with G KV heads stores H/G times fewer bytes per token than its MHA twin), in the
/// cache's own dtype, which need not be the model's (--kv-cache-dtype).
public sealed record KVCacheSpec(int NumLayers, int NumKVHeads, int HeadDim, KVCacheDtype Dtype)
{
    /// A spec in one of libtorch's float types (Float32, BFloat16, Float16).
    public KVCacheSpec(int numLayers, int numKVHeads, int headDim, ScalarType dtype)
        : this(numLayers, numKVHeads, headDim, KVCacheDtype.Of(dtype))
    {
    }

    /// 2 (K and V) x layers x KV heads x head dim x element size.
    public long BytesPerToken => 2L * NumLayers * NumKVHeads * HeadDim * Dtype.Size;

    public long BytesPerBlock(int blockSize) => BytesPerToken * blockSize;

    /// The pool a model of this config needs, stored in dtype.
    public static KVCacheSpec For(ModelConfig config, KVCacheDtype dtype) =>
        new(config.NumHiddenLayers, config.NumKeyValueHeads, config.HeadDim, dtype);

    /// The pool a model of this config needs, stored in one of libtorch's float types.
    public static KVCacheSpec For(ModelConfig config, ScalarType dtype) => For(config, KVCacheDtype.Of(dtype));
}
