using Serving.Engine.Config;
using Serving.Engine.KVCache;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// The reference backend: every operation in plain TorchSharp, for any device and dtype, numerics as transformers
/// computes them (norms and softmax in float32, rounding to the model dtype where PyTorch does).
internal sealed class TorchBackend(ModelConfig config, RopeTable rope) : DecoderBackend
{
    public override DecoderStep Begin(StepInputs inputs, PagedKVCache cache) => new TorchStep(config, rope, inputs, cache, Communicator);

    public override void Dispose()
    {
    }
}

/// One step of the reference backend; owns its metadata tensors.
internal sealed class TorchStep : DecoderStep
{
    readonly ModelConfig _config;
    readonly PagedKVCache _cache;
    readonly Tensor _slots;                // (numTokens) int64
    readonly Tensor _cos, _sin;            // (numTokens, 1, rotaryDim / 2) float32
    readonly TorchAttention _attention;

    public TorchStep(ModelConfig config, RopeTable rope, StepInputs inputs, PagedKVCache cache, Distributed.ICommunicator? communicator)
        : base(communicator)
    {
        (_config, _cache) = (config, cache);
        using var scope = NewDisposeScope();
        var device = cache.Device;
        TokenIds = Int64(inputs.TokenIds, device);
        var positions = Int64(inputs.Positions, device);
        _slots = Int64(inputs.SlotMapping, device);
        (_cos, _sin) = (rope.Cos.index_select(0, positions).unsqueeze(1), rope.Sin.index_select(0, positions).unsqueeze(1));
        LogitRows = inputs.LogitRows.Length == inputs.NumTokens ? null : Int64(inputs.LogitRows, device);
        _attention = new TorchAttention(config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, inputs, device);
        Keep(scope);
    }

    public override Tensor TokenIds { get; }
    public override Tensor? LogitRows { get; }

    public override Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to_type(ScalarType.Float32);
        var variance = x32.pow(2).mean([-1], keepdim: true);                  // (numTokens, 1)
        var normalised = (x32 * (variance + eps).rsqrt()).to_type(x.dtype);
        return (weight * normalised).MoveToOuterDisposeScope();
    }

    public override (Tensor Normed, Tensor Residual) AddRmsNorm(Tensor x, Tensor residual, Tensor weight, double eps)
    {
        var sum = residual + x;
        return (RmsNorm(sum, weight, eps), sum);
    }

    public override Tensor HeadRmsNorm(Tensor qkv, Tensor qWeight, Tensor kWeight, double eps)
    {
        var (q, k, v) = Split(qkv);
        return Join(RmsNorm(q, qWeight, eps), RmsNorm(k, kWeight, eps), v);
    }

    public override Tensor RotaryAndCacheWrite(Tensor qkv, int layer)
    {
        var (q, k, v) = Split(qkv);
        (q, k) = (Rotate(q), Rotate(k));
        var (heads, dim) = (_config.NumKeyValueHeads, _config.HeadDim);
        _cache.Keys(layer).view(-1, heads, dim).index_copy_(0, _slots, k.to_type(_cache.Dtype.Storage));    // (numSlots, kvHeads, headDim)
        _cache.Values(layer).view(-1, heads, dim).index_copy_(0, _slots, v.to_type(_cache.Dtype.Storage));
        return Join(q, k, v);
    }

    public override Tensor Attention(Tensor qkv, int layer)
    {
        var (q, _, _) = Split(qkv);
        return _attention.Forward(q, _cache.Keys(layer), _cache.Values(layer));
    }

    public override Tensor SiluAndMul(Tensor gateUp)
    {
        var halves = gateUp.chunk(2, dim: -1);                 // gate, up (numTokens, ffn) each
        return nn.functional.silu(halves[0]) * halves[1];
    }

    /// x * cos + rotate_half(x) * sin over the first rotaryDim dimensions (rotate_half(x) = cat(-x2, x1)); the rest
    /// pass through. cos and sin are cast to the model dtype first, as transformers does.
    // x (numTokens, heads, headDim) -> (numTokens, heads, headDim)
    Tensor Rotate(Tensor x)
    {
        var rotary = _config.RotaryDim;
        var (cos, sin) = (_cos.to_type(x.dtype), _sin.to_type(x.dtype));
        var turned = x.narrow(-1, 0, rotary);
        var halves = turned.chunk(2, dim: -1);
        var (x1, x2) = (halves[0], halves[1]);                 // (numTokens, heads, rotaryDim / 2) each
        var rotated = cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim: -1);
        return rotary == x.shape[^1] ? rotated : cat([rotated, x.narrow(-1, rotary, x.shape[^1] - rotary)], dim: -1);
    }

    // qkv (numTokens, (H + 2G) D) -> q (numTokens, H, D), k and v (numTokens, G, D)
    (Tensor Q, Tensor K, Tensor V) Split(Tensor qkv)
    {
        var (n, h, g, d) = (qkv.shape[0], _config.NumAttentionHeads, _config.NumKeyValueHeads, _config.HeadDim);
        return (qkv.narrow(-1, 0, h * d).view(n, h, d), qkv.narrow(-1, h * d, g * d).view(n, g, d), qkv.narrow(-1, (h + g) * d, g * d).view(n, g, d));
    }

    static Tensor Join(Tensor q, Tensor k, Tensor v) =>
        cat([q.flatten(1), k.flatten(1), v.flatten(1)], dim: -1);

    static Tensor Int64(int[] values, Device device) => tensor(values.Select(v => (long)v).ToArray(), device: device);
}
