using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// gpt-oss's mixture of experts in place of the MLP, as transformers' GptOssMLP computes it: the router's logits (with
/// its bias), each token's top-k of them and their softmax; then each expert runs its tokens through
/// x W_gate_up[e] + b (gate and up columns interleaved: gate at the even ones), the gate clamped above at the limit and
/// up to +-limit, gate x sigmoid(1.702 gate) x (up + 1), times W_down[e] + b, and adds that times the token's weight for
/// it, experts in order. The weights are stored as the checkpoint holds them, input dimension first.
internal sealed class GptOssExperts : FeedForward
{
    static readonly Scalar Alpha = 1.702.ToScalar();

    [ComponentName(Name = "router")] readonly Linear _router;                  // (experts, hidden) and a bias
    [ComponentName(Name = "gate_up_proj")] readonly Parameter _gateUp;         // (experts, hidden, 2F)
    [ComponentName(Name = "gate_up_proj_bias")] readonly Parameter _gateUpBias; // (experts, 2F)
    [ComponentName(Name = "down_proj")] readonly Parameter _down;              // (experts, F, hidden)
    [ComponentName(Name = "down_proj_bias")] readonly Parameter _downBias;     // (experts, hidden)
    readonly int _experts, _topK;
    // swiglu_limit and its negative, Scalars the module holds (a temporary one can be finalized by the GC mid-call)
    readonly Scalar _limit, _negativeLimit;

    public GptOssExperts(ModelConfig config, ScalarType dtype, Device device) : base("GptOssExperts")
    {
        (_experts, _topK) = (config.NumExperts, config.NumExpertsPerToken);
        (_limit, _negativeLimit) = (config.ExpertSwigluLimit!.Value.ToScalar(), (-config.ExpertSwigluLimit.Value).ToScalar());
        var (hidden, width) = ((long)config.HiddenSize, (long)config.ExpertIntermediateSize);
        _router = new Linear(hidden, _experts, true, dtype, device);
        _gateUp = ModelParameters.Empty([_experts, hidden, 2 * width], dtype, device);
        _gateUpBias = ModelParameters.Empty([_experts, 2 * width], dtype, device);
        _down = ModelParameters.Empty([_experts, width, hidden], dtype, device);
        _downBias = ModelParameters.Empty([_experts, hidden], dtype, device);
        RegisterComponents();
    }

    /// Its experts' products (with biases and the clamped SwiGLU) run a group at a time, counted on the host.
    public override bool WaitsForTheHost => true;

    // (numTokens, hidden) -> (numTokens, hidden)
    public override Tensor Forward(DecoderStep step, Tensor x)
    {
        var (top, chosen) = _router.Forward(step, x).topk(_topK, dim: -1);   // (numTokens, k) each
        var weights = top.softmax(-1);                                       // in the model's dtype, as transformers
        var groups = ExpertGroups.Of(chosen, weights, _experts);
        var routed = x.index_select(0, groups.Tokens);                                     // (slots, hidden), by expert
        return groups.Combine(groups.Run(group =>
        {
            var (expert, input) = (group.Expert, routed.narrow(0, group.Start, group.Count));
            var gateUp = input.matmul(_gateUp[expert]).add(_gateUpBias[expert], HeldScalars.One);            // (its slots, 2F)
            var gate = gateUp[TensorIndex.Colon, TensorIndex.Slice(0, null, 2)].clamp_max(_limit);
            var up = gateUp[TensorIndex.Colon, TensorIndex.Slice(1, null, 2)].clamp(_negativeLimit, _limit);
            var activated = up.add(HeldScalars.One, HeldScalars.One) * (gate * nn.functional.sigmoid(gate.mul(Alpha)));   // (its slots, F)
            return activated.matmul(_down[expert]).add(_downBias[expert], HeldScalars.One);              // (its slots, hidden)
        }), x);
    }
}
