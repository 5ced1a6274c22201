using System.Text;
using Google.Protobuf.WellKnownTypes;
using Serving.Engine;
using Serving.Grpc.V1;
using LogprobsFormat = Serving.Server.OpenAI.LogprobsFormat;
using EngineFinishReason = Serving.Engine.FinishReason;
using ProtoFinishReason = Serving.Grpc.V1.FinishReason;
using ProtoTokenLogprob = Serving.Grpc.V1.TokenLogprob;
using TopLogprob = Serving.Grpc.V1.TopLogprob;

namespace Serving.Server.Grpc;

/// Turns one request's engine events into its GenerateResponse stream: a chunk per event (the sequence's
/// new tokens, text, log-probabilities and, on its last event, why it ended), then after the request's
/// last event (the one with usage and timings) the final message with every sequence's outcome.
internal sealed class GenerateResponses(string requestId, int n, IPromptProcessor prompts)
{
    readonly SequenceOutcome?[] _outcomes = new SequenceOutcome?[n];
    readonly StringBuilder[] _texts = [.. Enumerable.Range(0, n).Select(_ => new StringBuilder())];
    IReadOnlyList<Serving.Engine.TokenLogprob?>? _promptLogprobs;

    /// Every sequence's text so far, for --enable-log-requests.
    public string Texts => string.Join(" | ", _texts.Select(t => t.ToString()));

    public IEnumerable<GenerateResponse> For(TokenEvent e)
    {
        _texts[e.Index].Append(e.TextDelta);
        _promptLogprobs ??= e.PromptLogprobs;
        if (e.FinishReason is { } reason) _outcomes[e.Index] = Outcome(e.Index, reason, e.StopReason);
        yield return new GenerateResponse { Chunk = Chunk(e) };
        if (e.Usage is { } usage && e.Timings is { } timings)
            yield return new GenerateResponse { Final = Final(usage, timings) };
    }

    GenerateChunk Chunk(TokenEvent e)
    {
        var chunk = new GenerateChunk { Index = e.Index, Text = e.TextDelta };
        chunk.TokenIds.Add(e.TokenIds);
        if (e.Logprobs is { } logprobs) chunk.Logprobs.Add(logprobs.Select(Logprob));
        if (e.FinishReason is { } reason) chunk.FinishReason = ToProto(reason);
        if (e.StopReason is StopReason.String stopString) chunk.StopString = stopString.Text;
        else if (e.StopReason is StopReason.TokenId stopToken) chunk.StopTokenId = stopToken.Id;
        return chunk;
    }

    GenerateFinal Final(RequestUsage usage, RequestTimings timings)
    {
        var final = new GenerateFinal
        {
            RequestId = requestId,
            Usage = new Usage
            {
                PromptTokens = usage.PromptTokens, CompletionTokens = usage.CompletionTokens,
                TotalTokens = usage.TotalTokens, CachedPromptTokens = usage.CachedPromptTokens,
            },
            Timings = new Timings
            {
                Queue = Duration.FromTimeSpan(timings.Queue),
                TimeToFirstToken = Duration.FromTimeSpan(timings.TimeToFirstToken),
                Total = Duration.FromTimeSpan(timings.Total),
            },
        };
        // Every sequence has finished by the request's last event; a missing one would be an engine bug,
        // reported as aborted rather than hidden.
        for (var i = 0; i < _outcomes.Length; i++)
            final.Sequences.Add(_outcomes[i] ?? new SequenceOutcome { Index = i, FinishReason = ProtoFinishReason.Abort });
        if (_promptLogprobs is not null)
            final.PromptLogprobs.Add(_promptLogprobs.Skip(1).OfType<Serving.Engine.TokenLogprob>().Select(Logprob));
        return final;
    }

    static SequenceOutcome Outcome(int index, EngineFinishReason reason, StopReason? stopReason)
    {
        var outcome = new SequenceOutcome { Index = index, FinishReason = ToProto(reason) };
        if (stopReason is StopReason.String stopString) outcome.StopString = stopString.Text;
        else if (stopReason is StopReason.TokenId stopToken) outcome.StopTokenId = stopToken.Id;
        return outcome;
    }

    ProtoTokenLogprob Logprob(Serving.Engine.TokenLogprob item)
    {
        var logprob = new ProtoTokenLogprob
        {
            TokenId = item.TokenId, Token = prompts.TokenText(item.TokenId), Logprob = LogprobsFormat.Clamp(item.Logprob),
            Rank = item.Rank ?? 0,
        };
        logprob.Top.Add(item.Top.Select(alt => new TopLogprob
        {
            TokenId = alt.TokenId, Token = prompts.TokenText(alt.TokenId), Logprob = LogprobsFormat.Clamp(alt.Logprob),
        }));
        return logprob;
    }

    static ProtoFinishReason ToProto(EngineFinishReason reason) => reason switch
    {
        EngineFinishReason.Stop => ProtoFinishReason.Stop,
        EngineFinishReason.Length => ProtoFinishReason.Length,
        _ => ProtoFinishReason.Abort,
    };
}
