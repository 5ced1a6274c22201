namespace Serving.Engine.Weights;

/// What a run of rows of a projection holds, for the transformations that must know: GQA conversion pools
/// key and value heads; tensor parallelism splits heads and the gate/up halves.
public enum RowKind { Other, QueryHeads, KeyHeads, ValueHeads, Gate, Up }

/// Rows Start .. Start + Rows of a checkpoint tensor hold one kind of thing.
public sealed record RowSegment(RowKind Kind, long Start, long Rows);

/// Where one checkpoint tensor goes: rows RowOffset .. RowOffset + Shape[0] of a model parameter. Several tensors
/// share a parameter when the model fuses projections (q/k/v into qkv_proj, gate/up into gate_up_proj); a tensor
/// that is already fused in the checkpoint (phi3's qkv_proj) lists each kind of rows it holds in Segments.
public sealed record WeightBinding(string CheckpointName, long[] Shape, string ParameterName, long RowOffset,
    IReadOnlyList<RowSegment> Segments)
{
    /// The checkpoint stores its matrices input-major ([..., in, out]: gpt-oss's experts) where the parameter keeps them
    /// output-major as every projection (a matrix's rows its outputs): the loader swaps the last two dimensions.
    public bool StoredInputMajor { get; init; }

    /// A part of this binding's tensor (shape as the checkpoint stores it) as the parameter's rows take it: its last two
    /// dimensions swapped where StoredInputMajor.
    public long[] InParameterOrder(long[] shape) => StoredInputMajor ? [.. shape[..^2], shape[^1], shape[^2]] : shape;

    /// A tensor whose rows are all of one kind.
    public WeightBinding(string checkpointName, long[] shape, string parameterName, long rowOffset = 0, RowKind kind = RowKind.Other)
        : this(checkpointName, shape, parameterName, rowOffset, [new RowSegment(kind, 0, shape[0])])
    {
    }
}
