using Serving.Engine.Config;
using Serving.Engine.Cuda;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A mixture of experts in place of the MLP (mixtral, qwen3_moe), as transformers computes it: the router's logits
/// (E per token), each token's experts and their weights as the family routes (ModelConfig.Routing: by default the
/// softmax in float32, the top-k probabilities, scaled to sum to 1 when the config says), rounded to the model dtype; then each expert runs its tokens through its own gated MLP and adds its
/// output times the token's probability for it, experts in order; a shared expert (qwen2_moe, ernie4_5_moe) adds its own
/// output (qwen2_moe's times the sigmoid of its gate). ernie4_5_moe routes in float32 and chooses by the probabilities plus
/// a per-expert bias, weighing by the probabilities alone. The experts' weights are stacked (ExpertWeights): expert e's
/// gate and up rows at e x 2F of experts_gate_up, its down rows at e x hidden of experts_down; stored as FP8 where the
/// model's projections are (an Fp8Weight an expert).
internal sealed class MoeMlp : FeedForward
{
    [ComponentName(Name = "router")] readonly Linear _router;            // (experts, hidden)
    [ComponentName(Name = "experts_gate_up")] readonly ExpertWeights _gateUp; // (experts x 2F, hidden)
    [ComponentName(Name = "experts_down")] readonly ExpertWeights _down;      // (experts x hidden, F)
    [ComponentName(Name = "shared_expert")] readonly Mlp? _shared;                      // qwen2_moe, ernie4_5_moe: every token runs it
    [ComponentName(Name = "shared_expert_gate")] readonly Linear? _sharedGate;          // (1, hidden): its sigmoid gate (qwen2_moe)
    [ComponentName(Name = "expert_choice_bias")] readonly Parameter? _choiceBias;       // (1, experts) float32 (ernie4_5_moe)
    readonly int _experts, _topK, _width, _hidden;
    readonly bool _normalize, _routerInFloat32;
    readonly ExpertRouting _routing;
    readonly double _jitter;
    readonly MlpActivation _activation;

    /// projectionsUnallocated: the experts' and a shared expert's weights start with no rows (ExpertWeights.Allocate,
    /// Linear.Allocate).
    public MoeMlp(ModelConfig config, ScalarType dtype, Device device, bool projectionsUnallocated = false) : base("MoeMlp")
    {
        (_experts, _topK, _width, _hidden) = (config.NumExperts, config.NumExpertsPerToken, config.ExpertIntermediateSize, config.HiddenSize);
        (_normalize, _activation, _routerInFloat32) = (config.NormalizeTopKProbabilities, config.Activation, config.RouterInFloat32);
        (_routing, _jitter) = (config.Routing, config.RouterJitter);
        _router = new Linear(_hidden, _experts, false, _routerInFloat32 ? ScalarType.Float32 : dtype, device);
        _gateUp = new ExpertWeights(_experts, 2L * _width, _hidden, dtype, device, projectionsUnallocated);
        _down = new ExpertWeights(_experts, _hidden, _width, dtype, device, projectionsUnallocated);
        if (config.SharedExpertIntermediateSize > 0)
            _shared = new Mlp(config with { IntermediateSize = config.SharedExpertIntermediateSize, MlpBias = false }, layer: null, dtype, device,
                projectionsUnallocated);
        if (config.SharedExpertGated) _sharedGate = new Linear(_hidden, 1, false, dtype, device);
        if (config.ExpertChoiceBias) _choiceBias = ModelParameters.Empty([1, _experts], ScalarType.Float32, device);
        RegisterComponents();
    }

    // (numTokens, hidden) -> (numTokens, hidden)
    public override Tensor Forward(DecoderStep step, Tensor x)
    {
        var routerInput = _routerInFloat32 ? x.to_type(ScalarType.Float32) : x;
        var groups = _routing switch
        {
            ExpertRouting.SparseMixer => GroupsOfSparseMixer(step, _router.Forward(step, routerInput), x.dtype),
            ExpertRouting.SoftmaxOverTopK => step.RouteTokens(routerInput, _router, new ExpertChoice(_topK, SoftmaxFirst: false), x.dtype),
            _ => step.RouteTokens(routerInput, _router, new ExpertChoice(_topK, SoftmaxFirst: true, _normalize, _choiceBias), x.dtype),
        };
        var activated = _activation == MlpActivation.Silu                               // (slots, F), by expert
            ? _gateUp.ForwardGlu(step, x, groups, new GluActivation.SiluAndMul(), gather: true)
            : step.GeluTanhAndMul(_gateUp.Forward(step, x, groups, gather: true));
        var output = step.CombineExperts(groups, _down.Forward(step, activated, groups), x, bias: null);
        if (_shared is null) return output;
        // the shared expert; qwen2_moe's gated per token by a sigmoid
        var shared = _shared.Forward(step, x);
        return output.add(_sharedGate is null ? shared : nn.functional.sigmoid(_sharedGate.Forward(step, x)) * shared, HeldScalars.One);
    }

    /// Whether a step waits for the host here: where the experts' groups are read on the host (ExpertWeights.
    /// GroupedOnTheDevice: shapes the kernels do not take, FP8 experts of scalings that differ between experts).
    public override bool WaitsForTheHost => !_gateUp.GroupedOnTheDevice || !_down.GroupedOnTheDevice;

    ExpertGroups GroupsOfSparseMixer(DecoderStep step, Tensor logits, ScalarType dtype)
    {
        var (chosen, weights) = SparseMixer(logits, _jitter);   // (numTokens, k) each
        return step.GroupExperts(chosen, weights.to_type(dtype), _experts);
    }

    /// phimoe's SparseMixer at inference, in the logits' dtype as transformers computes it: the top expert, weighed by the
    /// softmax over the logits near it ((top - s) / max(|s|, top) <= 2 jitter; the others -inf); then the top of the rest,
    /// weighed by the softmax over the rest's logits near it (the first expert excluded).
    static (Tensor Chosen, Tensor Weights) SparseMixer(Tensor scores, double jitter)
    {
        using var threshold = (2 * jitter).ToScalar();   // held through the calls (HeldScalars says why)
        (Tensor Chosen, Tensor Weight) Pick(Tensor candidates)
        {
            var (top, index) = candidates.max(-1, keepdim: true);                             // (numTokens, 1) each
            var factor = scores.abs().maximum(top);
            var far = (top - scores) / factor > threshold;                                   // (numTokens, experts)
            var gates = candidates.masked_fill(far, HeldScalars.MinusInfinity).softmax(-1);
            return (index, gates.gather(-1, index));
        }
        var (first, firstWeight) = Pick(scores);
        var excluded = empty_like(first, dtype: scores.dtype).fill_(HeldScalars.MinusInfinity);   // (numTokens, 1)
        var (second, secondWeight) = Pick(scores.scatter(-1, first, excluded));
        return (cat([first, second], -1), cat([firstWeight, secondWeight], -1));
    }
}

/// The MLP part of a decoder layer: a dense gated MLP (Mlp) or a mixture of experts (MoeMlp).
internal abstract class FeedForward(string name) : nn.Module(name)
{
    // (numTokens, hidden) -> (numTokens, hidden)
    public abstract Tensor Forward(DecoderStep step, Tensor x);

    /// Whether a step on the fused backend reads the device's results on the host here (a mixture's routing, where its
    /// experts' groups are counted on the host): such a step cannot be captured as a CUDA graph.
    public virtual bool WaitsForTheHost => false;
}
