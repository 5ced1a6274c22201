using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

internal static class ModelParameters
{
    /// An uninitialised, frozen parameter that lives as long as its module (outside any dispose scope).
    public static Parameter Empty(long[] shape, ScalarType dtype, Device device)
    {
        var parameter = nn.Parameter(empty(shape, dtype, device), requires_grad: false);
        parameter.DetachFromDisposeScope();
        return parameter;
    }

    /// Makes every parameter of a model trainable (autograd records their gradients): the serving engine's are
    /// frozen, training turns them on.
    public static void MakeTrainable(nn.Module model)
    {
        foreach (var parameter in model.parameters()) parameter.requires_grad = true;
    }
}
