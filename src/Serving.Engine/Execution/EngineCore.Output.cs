using Serving.Engine.Scheduling;

namespace Serving.Engine.Execution;

// After the scheduler appended a token: text, stop strings, and the events each request's caller reads.
internal sealed partial class EngineCore
{
    void ProcessOutput(SequenceOutput output, TokenLogprob? logprob)
    {
        var sequence = output.Sequence;
        if (!_requests.TryGetValue(sequence.RequestId, out var request))
            return;
        var text = request.Sequences[sequence.Index];
        // a stop string ended the sequence at an earlier token of this step (it kept drafts after that token)
        if (text.HasEnded)
            return;
        request.MarkToken();
        request.CompletionTokens++;
        // a stop token (EOS, stop_token_ids) ends the text without its own unless include_stop_str_in_output, as vLLM's
        // detokenizer does (the scheduler stops for no other reason)
        var stopToken = output.FinishReason == FinishReason.Stop && !sequence.Sampling.IncludeStopStringInOutput;
        var match = text.Stops.Append(stopToken ? "" : text.Detokenizer.Push(output.TokenId));
        var finish = output.FinishReason;
        var emitted = match.Text;
        StopReason? stopReason = null;
        if (match.StopString is { } stop)
        {
            // a stop string is text-side: the scheduler learns of it here (and drops tokens it appended after this one)
            _scheduler.Finish(sequence, FinishReason.Stop, output.NumOutputTokens);
            (finish, stopReason) = (FinishReason.Stop, new StopReason.String(stop));
        }
        else if (finish is not null)
        {
            (emitted, stopReason) = FinalText(text, emitted, output);
            if (text.Stops.IsStopped)
                finish = FinishReason.Stop; // the released tail held a stop string
        }
        IReadOnlyList<TokenLogprob>? logprobs = logprob is null ? null : [logprob];
        if (finish is { } reason)
            EmitFinished(request, sequence.Index, [output.TokenId], emitted, logprobs, reason, stopReason);
        else
            request.Output.Writer.TryWrite(new TokenEvent
            {
                Index = sequence.Index, TokenIds = [output.TokenId], TextDelta = emitted, Logprobs = logprobs,
                PromptLogprobs = request.TakePromptLogprobs(),
            });
    }

    /// The sequence ended for a token-side reason: release the text still held back (by the detokenizer for
    /// an unfinished UTF-8 character, by the matcher for a possible stop-string prefix).
    static (string Text, StopReason? StopReason) FinalText(SequenceText text, string emitted, SequenceOutput output)
    {
        var tail = text.Stops.Append(text.Detokenizer.Flush());
        if (tail.StopString is { } stop)
            return (emitted + tail.Text, new StopReason.String(stop));
        // a stop token id is the reason only when the scheduler stopped on it (not on length with that token last)
        var stoppedOnToken = output.FinishReason == FinishReason.Stop && output.Sequence.Sampling.StopTokenIds.Contains(output.TokenId);
        var stopReason = stoppedOnToken ? new StopReason.TokenId(output.TokenId) : null;
        return (emitted + tail.Text + text.Stops.Flush(), stopReason);
    }

    /// The embedding requests whose prompts this step finished computing: their one event carries the pooled vector
    /// (through the checkpoint's Dense modules, all of the step's at once).
    void EmitEmbeddings(ScheduledBatch batch)
    {
        var done = new List<(RequestState Request, double[] Pooled)>();
        foreach (var entry in batch.Entries)
        {
            var sequence = entry.Sequence;
            if (sequence.Pooling is null || sequence.FinishReason != FinishReason.Stop
                || !_requests.TryGetValue(sequence.RequestId, out var request) || request.Sequences[0].HasEnded)
                continue;
            try
            {
                done.Add((request, request.Pooled!.Mean()));
            }
            catch (InvalidOperationException error)
            {
                FailRequest(request.RequestId, error);
            }
        }
        if (done.Count == 0) return;
        double[][] pooled;
        try
        {
            pooled = _dense is null ? done.Select(d => d.Pooled).ToArray() : _dense.Apply(done.Select(d => d.Pooled).ToList());
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // the step's embeddings fail, not the engine loop
            foreach (var (request, _) in done)
                FailRequest(request.RequestId, new RequestFailedException($"the embedding's Dense modules failed: {error.Message}", error));
            return;
        }
        for (var i = 0; i < done.Count; i++)
        {
            var request = done[i].Request;
            request.MarkToken();
            EmitFinished(request, 0, [], "", null, FinishReason.Stop, null, request.Pooled!.Finish(pooled[i]));
        }
    }

    /// Sends a sequence's last event; the request's last sequence also carries usage and timings and
    /// completes the stream.
    void EmitFinished(RequestState request, int index, IReadOnlyList<int> tokenIds, string text,
        IReadOnlyList<TokenLogprob>? logprobs, FinishReason reason, StopReason? stopReason, float[]? embedding = null)
    {
        request.NumFinished++;
        request.Sequences[index].HasEnded = true;
        var last = request.NumFinished == request.Sequences.Length;
        var finished = new TokenEvent
        {
            Index = index, TokenIds = tokenIds, TextDelta = text, Logprobs = logprobs,
            FinishReason = reason, StopReason = stopReason, PromptLogprobs = request.TakePromptLogprobs(),
            Usage = last ? Usage(request) : null,
            Timings = last ? request.Timings() : null,
            Embedding = embedding,
        };
        request.Output.Writer.TryWrite(finished);
        if (!last)
            return;
        if (!request.HasStarted)
            _requestLeftQueue(request.Request);
        _requests.Remove(request.RequestId);
        request.Output.Writer.TryComplete();
    }

    static RequestUsage Usage(RequestState request) => new(
        request.Request.PromptTokenIds.Count, request.CompletionTokens, request.CachedPromptTokens);
}
