using Serving.Engine.KVCache;
using Serving.Engine.Model;
using Serving.Engine.Scheduling;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

/// Turns a scheduled batch into the model's step inputs and runs one forward step over the KV pool.
/// Owns the pool; used only on the engine thread.
internal sealed class ModelRunner(LoadedModel model, PagedKVCache cache) : IDisposable
{
    public LoadedModel Model { get; } = model;
    public PagedKVCache Cache { get; } = cache;

    /// One step: the logits of the sampling rows, or of every new token with allLogits (for a step in which a
    /// sequence's prompt log-probabilities are computed), the final hidden states of the rows embedding requests pool
    /// (StepInputs.HiddenRows), and the inputs that say whose rows are whose (QueryStarts, LogitRows, HiddenRows). The
    /// caller's dispose scope owns the tensors.
    public (StepOutput Output, StepInputs Inputs) Run(ScheduledBatch batch, bool allLogits)
    {
        var inputs = Inputs(batch);
        return (Model.Step(inputs, Cache, allLogits), inputs);
    }

    /// The step's inputs, in batch order: each entry's new tokens, its blocks, and logits where it samples.
    StepInputs Inputs(ScheduledBatch batch) => Inputs(batch, Cache.BlockSize, Model.LoraAdapterIndex);

    /// adapterIndex: a LoRA adapter's index among the model's (LoadedModel.LoraAdapterIndex).
    public static StepInputs Inputs(ScheduledBatch batch, int blockSize, Func<string, int>? adapterIndex = null) => StepInputs.Build(
        batch.Entries.Select(entry => new StepSequence(TokensOf(entry), entry.StartPosition, entry.NumNewTokens,
            entry.Sequence.BlockTable.BlockIds(), entry.SamplesToken,
            entry.Sequence.LoraAdapter is { } adapter && adapterIndex is not null ? adapterIndex(adapter) : -1,
            entry.Drafts.Count, entry.PooledRows)).ToList(),
        blockSize);

    /// The sequence's tokens, and after them the drafts the step checks.
    static IReadOnlyList<int> TokensOf(ScheduledSequence entry) =>
        entry.Drafts.Count == 0 ? entry.Sequence.TokenIds : new Speculative.TokensAndDrafts(entry.Sequence.TokenIds, entry.Drafts);

    public void Dispose()
    {
        Cache.Dispose();
        Model.Dispose();
    }
}
