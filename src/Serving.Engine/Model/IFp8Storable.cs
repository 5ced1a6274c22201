using Serving.Engine.Cuda;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// A weight the model multiplies by that it may store as FP8 once its rows are in (--quantization fp8, an FP8
/// checkpoint served as stored; CausalLM.StoreFp8): a decoder projection (Linear) or a mixture's experts of one kind
/// (ExpertWeights, one FP8 weight an expert). Its parameter "weight" holds it in the model's type; the model may make it
/// unallocated for the loader to allocate as it reaches it (../Weights/IUnallocatedParameters).
internal interface IFp8Storable
{
    /// The weight in the model's type: Shape once allocated, no rows while unallocated or once FP8.
    Parameter Weight { get; }

    /// (rows, columns) of Weight once allocated.
    long[] Shape { get; }

    /// Rows of each of its FP8 parts: all of Shape's for a projection, an expert's for experts.
    long PartRows { get; }

    /// Whether Weight has no storage yet (made unallocated and not yet Allocate'd).
    bool Unallocated { get; }

    /// Gives an unallocated weight its Shape of the model's type, uninitialised, on the device.
    void Allocate();

    /// Whether FP8 products take its shape (Fp8Products.Takes; each expert's, for experts).
    bool TakesFp8Shape { get; }

    /// The scales (float32, CPU) its FP8 checkpoint stored it with, by row and group of 128 columns (WeightLoader.Load's;
    /// the weight itself loaded dequantized): QuantizeToFp8 makes the stored values again by them. Null for a weight
    /// stored in 16 bits. Owned here once set.
    Tensor? CheckpointFp8Scales { get; set; }

    /// Whether products serve it by CheckpointFp8Scales as they are (Fp8Products.TakesStoredScales, each expert's rows
    /// for experts); false where it has none.
    bool TakesCheckpointScales(Fp8Products products);

    /// Its FP8 weights once QuantizeToFp8 has run (one, or one an expert); empty while it is in the model's type.
    IReadOnlyList<Fp8Weight> Fp8Parts { get; }

    /// Stores the loaded weight as FP8 and gives its memory in the model's type back: by CheckpointFp8Scales where the
    /// checkpoint had them, else one scale a part from its largest magnitude. Once; TakesFp8Shape must hold.
    void QuantizeToFp8(Fp8Products products);
}
