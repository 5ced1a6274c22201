using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Scheduling;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// Turns a scheduled batch into the model's flat inputs and runs one forward step over the KV pool.
/// Owns the pool; used only on the engine thread.
internal sealed class ModelRunner(LoadedModel model, PagedKVCache cache) : IDisposable
{
    public LoadedModel Model { get; } = model;
    public PagedKVCache Cache { get; } = cache;

    /// Logits of the sequences that sample this step, in batch order: (numSampled, vocab) float32.
    /// The caller's dispose scope owns the result.
    public Tensor ComputeLogits(ScheduledBatch batch)
    {
        var metadata = BatchMetadata.Build(batch, Cache.BlockSize);
        var inputs = new BatchInputs(metadata.TokenIds, metadata.Positions, metadata.QueryLengths,
            metadata.ContextLengths, metadata.SlotMapping, metadata.BlockTables);
        using var noGrad = no_grad();
        var logits = Model.Forward(inputs, Cache); // (numSeqs, vocab): each sequence's last new token
        var sampling = batch.Entries.Select((entry, row) => (entry, row)).Where(x => x.entry.SamplesToken)
            .Select(x => (long)x.row).ToArray();
        return sampling.Length == batch.Entries.Count
            ? logits
            : logits.index_select(0, tensor(sampling, device: logits.device)); // (numSampled, vocab)
    }

    public void Dispose()
    {
        Cache.Dispose();
        Model.Dispose();
    }
}
