using Serving.Engine.Config;
using Serving.Engine.KVCache;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// The reference backend: every operation in plain TorchSharp, for any device and dtype, numerics as transformers
/// computes them (norms and softmax in float32, rounding to the model dtype where PyTorch does).
/// localRope: the sliding-window layers' rotary table when they turn by another rope (gemma3); null: rope.
internal sealed class TorchBackend(ModelConfig config, RopeTable rope, RopeTable? localRope = null) : DecoderBackend
{
    public override DecoderStep Begin(StepInputs inputs, PagedKVCache cache) => new TorchStep(config, rope, localRope, inputs, cache, Communicator);

    public override void Dispose()
    {
    }
}

/// One step of the reference backend; owns its metadata tensors.
internal sealed class TorchStep : TorchOpsStep
{
    readonly PagedKVCache _cache;
    readonly Tensor _slots;                // (numTokens) int64
    readonly Tensor _cos, _sin;            // (numTokens, 1, rotaryDim / 2) float32
    readonly Tensor? _localCos, _localSin; // the same for the sliding-window layers' own rope; null: they use _cos, _sin
    readonly TorchAttention _attention;

    public TorchStep(ModelConfig config, RopeTable rope, RopeTable? localRope, StepInputs inputs, PagedKVCache cache,
        Distributed.ICommunicator? communicator)
        : base(config, communicator)
    {
        _cache = cache;
        using var scope = NewDisposeScope();
        var device = cache.Device;
        TokenIds = Int64(inputs.TokenIds, device);
        var positions = Int64(inputs.Positions, device);
        _slots = Int64(inputs.SlotMapping, device);
        (_cos, _sin) = (rope.Cos.index_select(0, positions).unsqueeze(1), rope.Sin.index_select(0, positions).unsqueeze(1));
        if (localRope is not null)
            (_localCos, _localSin) = (localRope.Cos.index_select(0, positions).unsqueeze(1), localRope.Sin.index_select(0, positions).unsqueeze(1));
        LogitRows = inputs.LogitRows.Length == inputs.NumTokens ? null : Int64(inputs.LogitRows, device);
        _attention = new TorchAttention(config, inputs, device);
        Keep(scope);
    }

    public override Tensor TokenIds { get; }
    public override Tensor? LogitRows { get; }

    public override Tensor Rotary(Tensor qkv, int layer)
    {
        if (Config.NoRopeLayers.Contains(layer))   // smollm3's NoPE layers keep their positions out of q and k
            return qkv;
        var (q, k, v) = Split(qkv);
        var (cos, sin) = Config.TurnsByLocalRope(layer) ? (_localCos!, _localSin!) : (_cos, _sin);
        return TorchOps.Join(TorchOps.Rotate(q, cos, sin, Config.RotaryDim, Config.InterleavedRope, Config.RotaryPrecision),
            TorchOps.Rotate(k, cos, sin, Config.RotaryDim, Config.InterleavedRope, Config.RotaryPrecision), v);
    }

    public override Tensor CacheWrite(Tensor qkv, int layer)
    {
        var (_, k, v) = Split(qkv);
        var (heads, dim) = (Config.NumKeyValueHeads, Config.HeadDim);
        _cache.Keys(layer).view(-1, heads, dim).index_copy_(0, _slots, k.to_type(_cache.Dtype.Storage));    // (numSlots, kvHeads, headDim)
        _cache.Values(layer).view(-1, heads, dim).index_copy_(0, _slots, v.to_type(_cache.Dtype.Storage));
        return qkv;
    }

    public override Tensor Attention(Tensor qkv, int layer, Tensor? sinks)
    {
        var (q, _, _) = Split(qkv);
        return _attention.Forward(q, _cache.Keys(layer), _cache.Values(layer), Config.LayerWindow(layer), sinks);
    }

    static Tensor Int64(int[] values, Device device) => tensor(values.Select(v => (long)v).ToArray(), device: device);
}
