using static TorchSharp.torch;

namespace Serving.Engine.Model.Lora;

/// Which of a layer's projections (as the model fuses them) an adapter changes.
internal enum LoraProjection { Qkv, Output, GateUp, Down }

/// Where a Linear sits in the model: its layer and projection, the key of an adapter's weights.
internal readonly record struct LoraTarget(int Layer, LoraProjection Projection);

/// The low-rank update of one projection: y += (x A^T) B^T, with A (rank, in) and B (out, rank), the adapter's
/// scale folded into B. For a fused projection the parts' updates are stacked: A's rows hold each part's A, and B
/// is block-diagonal, each part's B at its output rows and its rank's columns (zero elsewhere).
internal sealed record LoraWeights(Tensor A, Tensor B);

/// One PEFT LoRA adapter loaded onto the model's device (LoraLoader), served under its source's name.
internal sealed class LoraAdapter(LoraAdapterSource source, int rank, IReadOnlyDictionary<LoraTarget, LoraWeights> weights) : IDisposable
{
    public LoraAdapterSource Source { get; } = source;
    public string Name => Source.Name;
    public string Path => Source.Path;
    public int Rank { get; } = rank;
    public int NumProjections => weights.Count;

    /// This load of the adapter, unique in the process (its name and the load's number): what keeps the prefix-cache
    /// blocks of an adapter unloaded and loaded again under the same name apart from the old one's. Set when served.
    public string Key { get; internal set; } = source.Name;

    public LoraWeights? For(LoraTarget target) => weights.GetValueOrDefault(target);

    public void Dispose()
    {
        foreach (var (a, b) in weights.Values)
        {
            a.Dispose();
            b.Dispose();
        }
    }
}

/// Where a served adapter comes from: the name requests give as "model" and its PEFT folder (vLLM's --lora-modules
/// name=path), and the model name its card lists as parent when not the served model's (vLLM's base_model_name).
public sealed record LoraAdapterSource(string Name, string Path, string? BaseModelName = null);
