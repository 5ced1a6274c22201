using static TorchSharp.torch;

namespace Serving.Engine.Weights;

/// Parameters a model leaves without storage until the loader reaches them, each handed back as soon as its rows are
/// all in (WeightLoader.Load): an FP8 checkpoint's projections on a GPU that serves them in FP8
/// (../Model/Fp8ProjectionsAsLoaded), each in the model's 16-bit type only while it loads, so that the load never
/// holds the 16-bit model (70B in FP8 fits one H200; in bfloat16 it does not).
internal interface IUnallocatedParameters
{
    /// The shape the parameter takes once allocated, where it is one of these; null for any other.
    long[]? ShapeOf(string parameter);

    /// Gives it its storage, uninitialised: before its first rows.
    void Allocate(string parameter);

    /// Its rows are all in. fp8Scales: the scales its FP8 checkpoint tensors were stored with, as WeightLoader.Load
    /// returns them (taken over), or null where it has none.
    void Loaded(string parameter, Tensor? fp8Scales);
}
