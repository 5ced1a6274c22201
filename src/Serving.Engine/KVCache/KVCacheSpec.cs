using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.KVCache;

/// What one token costs in the KV pool and how it is stored: K and V, in every layer, for each KV head (not each
/// query head: a GQA model with G KV heads stores H/G times fewer bytes per token than its MHA twin), in the
/// cache's own dtype, which need not be the model's (--kv-cache-dtype).
public sealed record KVCacheSpec(int NumLayers, int NumKVHeads, int HeadDim, ScalarType Dtype)
{
    /// Bytes of one element of the cache's dtype.
    public int DtypeSize => Dtype switch
    {
        ScalarType.Float32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        _ => throw new ArgumentException($"KV cache dtype must be float32, bfloat16 or float16, not {Dtype}"),
    };

    /// 2 (K and V) x layers x KV heads x head dim x dtype size.
    public long BytesPerToken => 2L * NumLayers * NumKVHeads * HeadDim * DtypeSize;

    public long BytesPerBlock(int blockSize) => BytesPerToken * blockSize;

    /// The pool a model of this config needs, stored in dtype.
    public static KVCacheSpec For(ModelConfig config, ScalarType dtype) =>
        new KVCacheSpec(config.NumHiddenLayers, config.NumKeyValueHeads, config.HeadDim, dtype).Checked();

    /// The --kv-cache-dtype option (vLLM's): auto stores K/V in the model's dtype; bfloat16, float16, float32 (and
    /// torch's aliases) name one.
    public static ScalarType ResolveDtype(string requested, ScalarType modelDtype) =>
        requested.Equals("auto", StringComparison.OrdinalIgnoreCase) ? modelDtype : Model.ModelDtype.Parse(requested, "kv-cache-dtype");

    KVCacheSpec Checked()
    {
        _ = DtypeSize;
        return this;
    }
}
