using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// gpt-oss's mixture of experts in place of the MLP, as transformers' GptOssMLP computes it: the router's logits (with
/// its bias), each token's top-k of them and their softmax; then each expert runs its tokens through
/// x W_gate_up[e]^T + b (gate and up rows interleaved: gate at the even ones), the gate clamped above at the limit and
/// up to +-limit, gate x sigmoid(1.702 gate) x (up + 1), times W_down[e]^T + b, and adds that times the token's weight
/// for it, experts in order. The experts' weights are stacked output-major as MoeMlp's (ExpertWeights; the checkpoint
/// stores them input-major, the loader swaps them), so their products run as any mixture's: in one kernel over the
/// rows grouped on the device (a decode step then captured as a CUDA graph), the clamped GLU and its biases in the gate
/// and up product's kernel, or a group at a time; each row's biases are its expert's, gathered.
internal sealed class GptOssExperts : FeedForward
{
    [ComponentName(Name = "router")] readonly Linear _router;                  // (experts, hidden) and a bias
    [ComponentName(Name = "gate_up_proj")] readonly ExpertWeights _gateUp;     // (experts x 2F, hidden)
    [ComponentName(Name = "gate_up_proj_bias")] readonly Parameter _gateUpBias; // (experts, 2F)
    [ComponentName(Name = "down_proj")] readonly ExpertWeights _down;          // (experts x hidden, F)
    [ComponentName(Name = "down_proj_bias")] readonly Parameter _downBias;     // (experts, hidden)
    readonly int _experts, _topK;
    readonly double _limit;   // swiglu_limit

    /// projectionsUnallocated: the experts' weights start with no rows (ExpertWeights.Allocate).
    public GptOssExperts(ModelConfig config, ScalarType dtype, Device device, bool projectionsUnallocated = false) : base("GptOssExperts")
    {
        (_experts, _topK) = (config.NumExperts, config.NumExpertsPerToken);
        _limit = config.ExpertSwigluLimit!.Value;
        var (hidden, width) = ((long)config.HiddenSize, (long)config.ExpertIntermediateSize);
        _router = new Linear(hidden, _experts, true, dtype, device);
        _gateUp = new ExpertWeights(_experts, 2 * width, hidden, dtype, device, projectionsUnallocated);
        _gateUpBias = ModelParameters.Empty([_experts, 2 * width], dtype, device);
        _down = new ExpertWeights(_experts, hidden, width, dtype, device, projectionsUnallocated);
        _downBias = ModelParameters.Empty([_experts, hidden], dtype, device);
        RegisterComponents();
    }

    /// Whether a step waits for the host here: where the experts' groups are read on the host (as MoeMlp's).
    public override bool WaitsForTheHost => !_gateUp.GroupedOnTheDevice || !_down.GroupedOnTheDevice;

    // (numTokens, hidden) -> (numTokens, hidden)
    public override Tensor Forward(DecoderStep step, Tensor x)
    {
        // the top-k logits, weighed by their softmax (rounded to the model's dtype, as transformers' softmax in it)
        var groups = step.RouteTokens(x, _router, new ExpertChoice(_topK, SoftmaxFirst: false), x.dtype);
        var activated = _gateUp.ForwardGlu(step, x, groups, new GluActivation.Clamped(_gateUpBias, _limit), gather: true);   // (slots, F), by expert
        return step.CombineExperts(groups, _down.Forward(step, activated, groups), x, _downBias);
    }
}
