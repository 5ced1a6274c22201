using Serving.Engine.Config;
using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// SwiGLU feed-forward: down(silu(gate(x)) * up(x)), with gate and up fused into one matrix at load time.
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "gate_up_proj")] readonly Linear _gateUp;  // (2 * intermediate, hidden): gate rows, then up rows
    [ComponentName(Name = "down_proj")] readonly Linear _down;       // (hidden, intermediate)
    readonly int _intermediate;

    public Mlp(ModelConfig config, ScalarType dtype, Device device) : base("Mlp")
    {
        _intermediate = config.IntermediateSize;
        _gateUp = new Linear(config.HiddenSize, 2L * _intermediate, config.MlpBias, dtype, device);
        _down = new Linear(_intermediate, config.HiddenSize, config.MlpBias, dtype, device);
        RegisterComponents();
    }

    // (numTokens, hidden) -> (numTokens, hidden)
    public override Tensor forward(Tensor x)
    {
        var gateUp = _gateUp.forward(x);                         // (numTokens, 2 * intermediate)
        var gate = gateUp.narrow(-1, 0, _intermediate);
        var up = gateUp.narrow(-1, _intermediate, _intermediate);
        return _down.forward(nn.functional.silu(gate) * up);
    }
}
