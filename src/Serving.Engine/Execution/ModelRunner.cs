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
        // single-token sequences (decodes) go first, so the CUDA path serves them all with its paged decode
        // kernel even when the step also carries prefill chunks; the model's row order is this one
        var modelOrder = batch.Entries.OrderBy(entry => entry.NumNewTokens == 1 ? 0 : 1).ToList();
        var metadata = BatchMetadata.Build(new ScheduledBatch(modelOrder, batch.NumPreempted), Cache.BlockSize);
        var inputs = new BatchInputs(metadata.TokenIds, metadata.Positions, metadata.QueryLengths,
            metadata.ContextLengths, metadata.SlotMapping, metadata.BlockTables);
        using var noGrad = no_grad();
        var logits = Model.Forward(inputs, Cache); // (numSeqs, vocab): each sequence's last new token, model order
        var rowOf = modelOrder.Select((entry, row) => (entry, row)).ToDictionary(x => x.entry, x => (long)x.row);
        var sampling = batch.SamplingEntries.Select(entry => rowOf[entry]).ToArray();
        return sampling.SequenceEqual(Enumerable.Range(0, modelOrder.Count).Select(row => (long)row))
            ? logits
            : logits.index_select(0, tensor(sampling, device: logits.device)); // (numSampled, vocab), batch order
    }

    public void Dispose()
    {
        Cache.Dispose();
        Model.Dispose();
    }
}
