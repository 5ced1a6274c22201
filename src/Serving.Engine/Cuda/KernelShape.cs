using Serving.Engine.Config;
using Serving.Engine.KVCache;
using static TorchSharp.torch;

namespace Serving.Engine.Cuda;

/// What the kernels are compiled for: the model's element type, the KV pool's, the attention shape, and the
/// family's norms and rotary pairs.
internal sealed record KernelShape(ScalarType Dtype, KVCacheDtype CacheDtype, int HeadDim, int RotaryDim, int NumHeads, int NumKVHeads)
{
    /// The shape of a model's kernels in this element type over a pool of that type.
    public static KernelShape Of(ModelConfig config, ScalarType dtype, KVCacheDtype cacheDtype) =>
        new(dtype, cacheDtype, config.HeadDim, config.RotaryDim, config.NumAttentionHeads, config.NumKeyValueHeads)
        {
            NormWeight = config.NormWeight, NormsCentered = config.NormsCentered, InterleavedRope = config.InterleavedRope,
            RotaryPrecision = config.RotaryPrecision, AttentionSoftcap = config.AttentionSoftcap ?? 0,
        };

    /// How the norms' weights scale the normalisation (ModelConfig.NormWeight).
    public RmsNormWeight NormWeight { get; init; }
    /// Norms about the row's mean (ModelConfig.NormsCentered: cohere's LayerNorm).
    public bool NormsCentered { get; init; }
    /// Rotary embedding in interleaved pairs (ModelConfig.InterleavedRope).
    public bool InterleavedRope { get; init; }
    /// Attention soft-capping, cap x tanh(score / cap) on the scaled scores (ModelConfig.AttentionSoftcap: gemma2's);
    /// 0: none.
    public double AttentionSoftcap { get; init; }
    /// Where rotary embedding rounds (ModelConfig.RotaryPrecision).
    public RotaryPrecision RotaryPrecision { get; init; }

    public int GroupSize => NumHeads / NumKVHeads;

    /// Bytes one asynchronous copy of the attention kernel moves: 16, or a whole head row when shorter.
    public int CacheVectorBytes => Math.Min(16, HeadDim * CacheDtype.Size);

    /// Whether decode attention runs on tensor cores (paged_attention_mma.cu): a 16-bit model over a 16-bit or FP8
    /// pool, head dim a multiple of 16 (32 for FP8) and at most 128 (registers), on sm_80 or later; or head dim 256
    /// (gemma's) with at most 8 query heads per KV head (the layout with tokens as MMA rows, 156 registers) on sm_90,
    /// whose 227 KB of shared memory per block hold its four streams' stages (198 KB). Otherwise the CUDA-core kernel
    /// (paged_attention.cu) runs it: float32 models and pools, other head dims.
    public bool UsesTensorCoreAttention(int computeCapability) =>
        Dtype != ScalarType.Float32 && CacheDtype.Storage != ScalarType.Float32 && HeadDim % (CacheDtype.IsFp8 ? 32 : 16) == 0
        && (HeadDim <= 128 && computeCapability >= 80 || HeadDim == 256 && GroupSize <= 8 && computeCapability >= 90);
}

/// RMSNorm weights of each query head and key head ((D) that every head shares, or a weight a head) and their epsilon:
/// qwen3's q_norm and k_norm, which rope_kv_write can apply before its rotation.
internal readonly record struct HeadNorm(Tensor Query, Tensor Key, float Eps);
