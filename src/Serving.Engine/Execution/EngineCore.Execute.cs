using Microsoft.Extensions.Logging;
using Serving.Engine.Grammar;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using static TorchSharp.torch;

namespace Serving.Engine.Execution;

// Running the model and the sampler for one batch, so that a failure fails only the requests it touches.
internal sealed partial class EngineCore
{
    /// batch.NumSampled tokens: one per sampling entry and one more per draft it checks, each draft row sampled with the
    /// entry's sampling state after the drafts before it (Postprocess skips the sequences this finished after a failure).
    SampledTokens Execute(ScheduledBatch batch)
    {
        var entries = batch.SamplingEntries.SelectMany(entry => Enumerable.Repeat(entry, entry.NumSampledRows)).ToList();
        var rows = batch.SamplingEntries.SelectMany(RowsOf).ToList();
        // structured-output masks are prepared on worker threads while the model runs (a draft row's after the drafts before it)
        var masks = AllowedTokens.StartPreparing(rows);
        using var scope = NewDisposeScope();
        Tensor logits;
        try
        {
            var promptChunks = PromptChunks(batch);
            var (output, inputs) = _runner.Run(batch, allLogits: promptChunks.Count > 0);
            if (output.Hidden is { } hidden)
                RecordPooledRows(batch, hidden);
            logits = promptChunks.Count == 0
                ? output.Logits // (numSampled, vocab)
                : LogitsRecordingPromptLogprobs(batch, output.Logits, inputs, promptChunks);
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            masks?.Wait(); // the workers read these sequences: let them finish before anything changes
            // the step as a whole failed: every request in it fails, the loop goes on serving the rest
            Log.StepFailed(_logger, batch.Entries.Count, error);
            foreach (var entry in batch.Entries)
                FailRequest(entry.Sequence.RequestId, error);
            return new SampledTokens(new int[entries.Count], new TokenLogprob?[entries.Count]);
        }
        if (entries.Count == 0)
            return new SampledTokens([], []);
        var allowed = masks?.GetAwaiter().GetResult();
        var sampled = SampleBatch(entries, logits, rows, allowed);
        // after sampling: failing a request drops its text state
        foreach (var row in allowed?.FailedRows ?? [])
            FailRequest(entries[row].Sequence.RequestId,
                new InvalidOperationException("a sampled token does not fit the request's structured-output grammar"));
        return sampled;
    }

    SampledTokens SampleBatch(List<ScheduledSequence> entries, Tensor logits, List<SamplingState> rows, AllowedTokens? allowed)
    {
        try
        {
            var output = _sampler.Sample(logits, rows, allowed);
            FailRowsWithNoToken(entries, output);
            return new SampledTokens(output.TokenIds, output.Logprobs);
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            return SampleRowByRow(entries, logits, rows, allowed, error);
        }
    }

    /// The sampling states of an entry's rows: the sequence's own, then its state after the first i drafts for its
    /// i-th draft row.
    IEnumerable<SamplingState> RowsOf(ScheduledSequence entry)
    {
        var state = TextOf(entry.Sequence).Sampling;
        yield return state;
        for (var i = 1; i <= entry.Drafts.Count; i++)
            yield return state.AfterDrafts(entry.Drafts.Take(i).ToArray());
    }

    /// The prefill chunks of this step (by entry) whose requests still want prompt log-probabilities from them;
    /// sibling 0 computes a request's prompt.
    List<(int Entry, RequestState Request)> PromptChunks(ScheduledBatch batch)
    {
        var chunks = new List<(int, RequestState)>();
        for (var i = 0; i < batch.Entries.Count; i++)
        {
            var entry = batch.Entries[i];
            if (entry.Sequence.Parent is null && _requests[entry.Sequence.RequestId].WantsPromptLogprobs(entry.StartPosition))
                chunks.Add((i, _requests[entry.Sequence.RequestId]));
        }
        return chunks;
    }

    /// all: the logits of every new token (numTokens, vocab). Each prompt chunk's rows give the log-probabilities of
    /// the prompt tokens they predict (row p predicts token p + 1), recorded on its request; the sampling rows are
    /// returned, (numSampled, vocab).
    static Tensor LogitsRecordingPromptLogprobs(ScheduledBatch batch, Tensor all, Model.StepInputs inputs,
        List<(int Entry, RequestState Request)> chunks)
    {
        foreach (var (index, request) in chunks)
        {
            var (start, prompt) = (batch.Entries[index].StartPosition, request.Request.PromptTokenIds);
            var rows = Math.Min(batch.Entries[index].NumNewTokens, prompt.Count - 1 - start);
            var next = Enumerable.Range(start + 1, rows).Select(p => prompt[p]).ToArray();
            request.RecordPromptLogprobs(start, PromptLogprobGatherer.Gather(all.narrow(0, inputs.QueryStarts[index], rows), next,
                request.Request.Sampling.PromptLogprobs!.Value));
        }
        return all.index_select(0, tensor(inputs.LogitRows.Select(row => (long)row).ToArray(), device: all.device));
    }

    /// hidden: the final hidden states of the rows the step's embedding requests pool, (rows, hidden) in batch order
    /// (each entry's PooledRows). Each entry's rows are summed on the device and the sums come to the host in one copy;
    /// each request folds its sum into its pooled state.
    void RecordPooledRows(ScheduledBatch batch, Tensor hidden)
    {
        var pooled = batch.Entries.Where(entry => entry.PooledRows.Count > 0).ToList();
        var offset = 0;
        var sums = new List<Tensor>();
        foreach (var entry in pooled)
        {
            sums.Add(hidden.narrow(0, offset, entry.PooledRows.Count).sum(0, type: ScalarType.Float64));
            offset += entry.PooledRows.Count;
        }
        var width = (int)hidden.size(1);
        var host = stack(sums).cpu().data<double>().ToArray();   // (entries, hidden)
        for (var i = 0; i < pooled.Count; i++)
        {
            var entry = pooled[i];
            _requests[entry.Sequence.RequestId].Pooled!.Add(entry.StartPosition + entry.PooledRows.First,
                host.AsSpan(i * width, width), entry.PooledRows.Count);
        }
    }

    /// The batched sample threw: sample each row alone, and fail only the requests whose row throws again.
    SampledTokens SampleRowByRow(List<ScheduledSequence> entries, Tensor logits, List<SamplingState> rows,
        AllowedTokens? allowed, Exception first)
    {
        Log.SamplingFailed(_logger, entries.Count, first);
        var tokens = new int[entries.Count];
        var logprobs = new TokenLogprob?[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            try
            {
                var output = _sampler.Sample(logits[i].unsqueeze(0), [rows[i]], allowed?.Row(i));
                (tokens[i], logprobs[i]) = (output.TokenIds[0], output.Logprobs[0]);
                FailRowsWithNoToken([entries[i]], output);
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                FailRequest(entries[i].Sequence.RequestId, error);
            }
        }
        return new SampledTokens(tokens, logprobs);
    }

    /// A row with no token to sample is the request's own doing: its constraints exclude one another here.
    void FailRowsWithNoToken(List<ScheduledSequence> entries, SamplerOutput output)
    {
        foreach (var row in output.RowsWithNoToken)
            FailRequest(entries[row].Sequence.RequestId, new InvalidRequestException(
                "No token meets every constraint of the request at this point of its answer: allowed_token_ids or bad_words exclude each token the structured output allows.",
                "structured_outputs"));
    }

    /// Ends a request with an error: a refusal of the request's own (InvalidRequestException) as it is, anything else as
    /// the server's failure to serve it.
    void FailRequest(string requestId, Exception error)
    {
        if (!_requests.Remove(requestId, out var request))
            return;
        _scheduler.Abort(requestId);
        if (!request.HasStarted)
            _requestLeftQueue(request.Request);
        request.Fail(error is InvalidRequestException ? error : new RequestFailedException($"serving request '{requestId}' failed: {error.Message}", error));
    }

    SequenceText TextOf(Sequence sequence) => _requests[sequence.RequestId].Sequences[sequence.Index];

    /// The step's sampled tokens, a row per sampled token in batch order (ScheduledBatch.NumSampled), and their
    /// log-probabilities when asked.
    sealed class SampledTokens(int[] tokenIds, TokenLogprob?[] logprobs)
    {
        public int[] TokenIds { get; } = tokenIds;

        public TokenLogprob? LogprobsOf(int row) => logprobs[row];
    }
}
