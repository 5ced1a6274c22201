using Serving.Engine.Config;
using static TorchSharp.torch;

namespace Serving.Engine.Model.Backends;

/// The training backend: whole sequences of equal length, each attending causally over its own tokens, without a
/// KV pool. The same decoder (CausalLM) runs on it; every operation is out of place (TorchOps), so autograd follows
/// the forward. Owns the rotary table of its sequence length.
internal sealed class DenseBackend(ModelConfig config, int maxLength, Device device) : IDisposable
{
    readonly RopeTable _rope = config.IsLlamaBlock ? new(config.Rope, config.RotaryDim, maxLength, device)
        : throw new NotSupportedException($"training runs Llama blocks only; {config.Architecture} is not one (its norms, activation or attention differ)");

    /// A step over tokens (batch, length) int64 on the model's device; length at most the backend's maxLength.
    public DenseStep Begin(Tensor tokens) => new(config, _rope, tokens);

    public void Dispose() => _rope.Dispose();
}

/// One forward over a batch of whole sequences: token (b, t) sits at position t and sees tokens 0 .. t of row b.
/// The decoder's flat token rows are the batch's rows in order (row b * length + t).
internal sealed class DenseStep : TorchOpsStep
{
    readonly int _batch, _length;
    readonly Tensor _cos, _sin;           // (batch * length, 1, rotaryDim / 2) float32
    readonly Tensor? _mask;               // (groupSize * length, length) bool, true where a key is visible; null for MHA without a window

    public DenseStep(ModelConfig config, RopeTable rope, Tensor tokens) : base(config, communicator: null)   // one device
    {
        if (tokens.dim() != 2 || tokens.shape[1] > rope.MaxPositions)
            throw new ArgumentException($"tokens must be (batch, length <= {rope.MaxPositions}), got [{string.Join(", ", tokens.shape)}]");
        (_batch, _length) = ((int)tokens.shape[0], (int)tokens.shape[1]);
        using var scope = NewDisposeScope();
        TokenIds = tokens.reshape(-1).to_type(ScalarType.Int64);
        var positions = HeldScalars.Range(0, _length, device: tokens.device).repeat(_batch);          // (batch * length)
        (_cos, _sin) = (rope.Cos.index_select(0, positions).unsqueeze(1), rope.Sin.index_select(0, positions).unsqueeze(1));
        var groupSize = config.NumAttentionHeads / config.NumKeyValueHeads;
        // MHA takes SDPA's own causal path (the fused kernels); grouped queries and a window (every layer's, IsLlamaBlock)
        // need the explicit mask
        var window = config.LayerWindow(0);
        _mask = groupSize == 1 && window is null ? null : PrefillAttention.CausalMask(_length, _length, groupSize, tokens.device, window);
        Keep(scope);
    }

    public override Tensor TokenIds { get; }
    public override Tensor? LogitRows => null;

    public override Tensor Rotary(Tensor qkv, int layer)
    {
        var (q, k, v) = Split(qkv);
        var rotary = Config.RotaryDim;
        return TorchOps.Join(TorchOps.Rotate(q, _cos, _sin, rotary), TorchOps.Rotate(k, _cos, _sin, rotary), v);
    }

    /// No pool: attention takes this step's k and v from qkv.
    public override Tensor CacheWrite(Tensor qkv, int layer) => qkv;

    /// One KV head per group, as the paged backends attend: a group's queries stacked (groupSize x length) against
    /// its single K/V head, never repeated per query head.
    // qkv (B T, (H + 2G) D) -> (B T, H D)
    public override Tensor Attention(Tensor qkv, int layer, Tensor? sinks)
    {
        if (sinks is not null) throw new NotSupportedException("training runs Llama blocks only: no attention sinks");
        var (h, g, d) = (Config.NumAttentionHeads, Config.NumKeyValueHeads, Config.HeadDim);
        var (b, t, groupSize) = (_batch, _length, h / g);
        var (q, k, v) = Split(qkv);
        var grouped = q.view(b, t, g, groupSize, d).permute(0, 2, 3, 1, 4).reshape(b, g, groupSize * t, d);  // (B, G, gs T, D)
        var keys = k.view(b, t, g, d).transpose(1, 2);                                                        // (B, G, T, D)
        var values = v.view(b, t, g, d).transpose(1, 2);
        var attended = nn.functional.scaled_dot_product_attention(grouped, keys, values, _mask, is_casual: _mask is null);
        return attended.view(b, g, groupSize, t, d).permute(0, 3, 1, 2, 4).reshape(b * t, h * d);           // heads ordered kv * gs + g
    }
}
