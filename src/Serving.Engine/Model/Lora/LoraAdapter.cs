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

/// One PEFT LoRA adapter loaded onto the model's device (LoraLoader), served under Name.
internal sealed class LoraAdapter(string name, string path, int rank, IReadOnlyDictionary<LoraTarget, LoraWeights> weights) : IDisposable
{
    public string Name { get; } = name;
    public string Path { get; } = path;
    public int Rank { get; } = rank;
    public int NumProjections => weights.Count;

    /// This load of the adapter, unique in the process (its name and the load's number): what keeps the prefix-cache
    /// blocks of an adapter unloaded and loaded again under the same name apart from the old one's. Set when served.
    public string Key { get; internal set; } = name;

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
/// name=path).
public sealed record LoraAdapterSource(string Name, string Path);
