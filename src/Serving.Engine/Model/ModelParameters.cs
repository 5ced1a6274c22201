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

    /// Gives a parameter made with no rows (an unallocated weight) its storage of shape, uninitialised, in its dtype on
    /// its device.
    public static void Allocate(Parameter parameter, long[] shape)
    {
        using var storage = empty(shape, parameter.dtype, parameter.device);
        parameter.set_(storage);
    }

    /// Leaves a weight parameter with no rows (its columns kept), its storage back to the allocator: once it is stored
    /// as FP8 elsewhere.
    public static void Release(Parameter parameter)
    {
        using var none = empty([0, parameter.size(1)], parameter.dtype, parameter.device);
        parameter.set_(none);
    }

    /// Makes every parameter of a model trainable (autograd records their gradients): the serving engine's are
    /// frozen, training turns them on.
    public static void MakeTrainable(nn.Module model)
    {
        foreach (var parameter in model.parameters()) parameter.requires_grad = true;
    }
}
