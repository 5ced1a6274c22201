using Serving.Engine.Weights;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A checkpoint's decoder projections made FP8 one at a time as they load, where FP8 products run (the loader's
/// IUnallocatedParameters; the model made with its projections unallocated): each is allocated in the model's type
/// when the loader reaches it and, once its rows are in, stored in FP8 (CausalLM.StoreFp8, which gives its 16-bit
/// memory back): an FP8 checkpoint's by the scales it stored them with, kept in the model's type where it has none FP8
/// products take; online (--quantization fp8 on a 16-bit checkpoint) every one, by one scale from its largest
/// magnitude (an expert's, for a mixture's experts). So the load holds one projection in 16 bits beside the FP8 ones
/// (a layer's experts of one kind, for a mixture), never the 16-bit model.
internal sealed class Fp8ProjectionsAsLoaded(CausalLM model, bool online = false) : IUnallocatedParameters
{
    readonly Dictionary<string, IFp8Storable> _projections = model.named_modules()
        .Where(m => m.module is IFp8Storable { Unallocated: true }).ToDictionary(m => m.name + ".weight", m => (IFp8Storable)m.module);

    public long[]? ShapeOf(string parameter) => _projections.TryGetValue(parameter, out var projection) ? projection.Shape : null;

    public void Allocate(string parameter) => _projections[parameter].Allocate();

    public void Loaded(string parameter, Tensor? fp8Scales)
    {
        var projection = _projections[parameter];
        if ((fp8Scales is null && !online) || !projection.TakesFp8Shape)
        {
            fp8Scales?.Dispose();
            return;
        }
        projection.CheckpointFp8Scales = fp8Scales;
        model.StoreFp8(projection, online);
    }
}
