using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Training.Training;

/// A model's parameters laid end to end in one flat tensor: every parameter becomes a view of its range, so the
/// optimizer updates the whole model in a few kernels instead of a few per parameter. With gradients, each
/// parameter's grad is a view of one flat gradient tensor too (autograd accumulates into it in place; ZeroGrad
/// clears it). Ranges follow named_parameters() order, which is the same for every model of one config.
internal sealed class FlatParameters : IDisposable
{
    readonly List<(string Name, Parameter Parameter, long Offset)> _entries = [];

    public FlatParameters(nn.Module model, bool withGradients)
    {
        var parameters = model.named_parameters().ToList();
        var total = parameters.Sum(p => p.parameter.NumberOfElements);
        var first = parameters[0].parameter;
        Values = empty(total, first.dtype, first.device).DetachFromDisposeScope();                // (total)
        Gradients = withGradients ? zeros(total, first.dtype, first.device).DetachFromDisposeScope() : null;
        long offset = 0;
        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters)
        {
            var range = Values.narrow(0, offset, parameter.NumberOfElements).view(parameter.shape);
            range.copy_(parameter);
            parameter.set_(range);
            if (Gradients is not null) parameter.grad = Gradients.narrow(0, offset, parameter.NumberOfElements).view(parameter.shape);
            _entries.Add((name, parameter, offset));
            offset += parameter.NumberOfElements;
        }
    }

    /// (total) every parameter's values, in the model's dtype.
    public Tensor Values { get; }

    /// (total) every parameter's gradient, or null when this model is not the one autograd runs through.
    public Tensor? Gradients { get; }

    public long Count => Values.NumberOfElements;

    /// 1 where weight decay applies (matrices and embeddings), 0 for norm weights and biases, as GPT-style training
    /// decays: (total) float32.
    public Tensor DecayMask()
    {
        var mask = zeros(Count, ScalarType.Float32, Values.device);
        foreach (var (_, parameter, offset) in _entries)
            if (parameter.dim() >= 2) mask.narrow(0, offset, parameter.NumberOfElements).fill_(Serving.Engine.HeldScalars.One);
        return mask;
    }

    public void ZeroGrad() => Gradients?.zero_();

    public void Dispose()
    {
        Values.Dispose();
        Gradients?.Dispose();
    }
}
