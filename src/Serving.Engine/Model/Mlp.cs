using Serving.Engine.Config;
using Serving.Engine.Model.Backends;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// Gated feed-forward: down(act(gate(x)) * up(x)), SwiGLU (silu) or gemma's GeGLU (GELU, tanh approximation), with gate
/// and up in one matrix (fused at load time, or stored fused as phi3 does).
internal sealed class Mlp : FeedForward
{
    [ComponentName(Name = "gate_up_proj")] readonly Linear _gateUp;  // (2 * intermediate, hidden): gate rows, then up rows
    [ComponentName(Name = "down_proj")] readonly Linear _down;       // (hidden, intermediate)

    /// layer: the decoder layer whose MLP this is, where LoRA adapters find it; null for a mixture's shared expert (no adapter).
    /// projectionsUnallocated: the weights start with no rows (Linear.Allocate).
    public Mlp(ModelConfig config, int? layer, ScalarType dtype, Device device, bool projectionsUnallocated = false) : base("Mlp")
    {
        _gateUp = new Linear(config.HiddenSize, 2L * config.IntermediateSize, config.MlpBias, dtype, device, projectionsUnallocated)
        {
            Target = layer is { } l ? new(l, Lora.LoraProjection.GateUp) : null,
            DecoderProjection = true,
        };
        _down = new Linear(config.IntermediateSize, config.HiddenSize, config.MlpBias, dtype, device, projectionsUnallocated)
        {
            Target = layer is { } at ? new(at, Lora.LoraProjection.Down) : null,
            DecoderProjection = true,
        };
        _activation = config.Activation;
        RegisterComponents();
    }

    readonly MlpActivation _activation;

    // (numTokens, hidden) -> (numTokens, hidden); a rank's ffn columns give a partial sum (row-parallel down_proj)
    public override Tensor Forward(DecoderStep step, Tensor x)
    {
        var gateUp = _gateUp.Forward(step, x);
        var activated = _activation == MlpActivation.Silu ? step.SiluAndMul(gateUp) : step.GeluTanhAndMul(gateUp);
        return step.AllReduce(_down.Forward(step, activated));
    }
}
