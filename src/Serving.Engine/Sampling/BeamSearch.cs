using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Serving.Engine.Sampling;

/// One beam search (SamplingParams.BeamSearch) run as vLLM's OpenAI server runs it: each step asks the engine, for every
/// live beam, for the log-probabilities of the token after it (a one-token request whose prompt is the prompt and the
/// beam: the prefix cache holds all but its last block), extends each beam by its 2 x N most likely tokens, and keeps
/// the N best extensions by summed log-probability. An extension by EOS (unless ignore_eos) or a stop token id is a
/// finished beam. After max_tokens steps the finished and live beams are ranked by BeamSearchParams.Score and the best
/// N are the answer: one event per beam, its whole output at once, the last with the usage (every beam's tokens).
/// The steps' requests run as any other request (scheduled, batched, preempted, aborted with the caller's token).
internal sealed class BeamSearch(
    Func<GenerationRequest, CancellationToken, IAsyncEnumerable<TokenEvent>> generate,
    IReadOnlySet<int> eosTokenIds,
    IPromptProcessor prompts)
{
    /// A beam: its generated tokens, each with its log-probability and the alternatives listed at its place; Finish is
    /// set when a stop token ended it.
    sealed record Beam(int[] TokenIds, TokenLogprob[] Logprobs, double CumulativeLogprob, FinishReason? Finish = null,
        StopReason? StopReason = null, bool EndsWithEos = false);

    /// What one step's request for one beam gave: the next token's log-probabilities, or null when the engine
    /// aborted it (drain, shutdown).
    sealed record StepResult(TokenLogprob? Next, RequestUsage? Usage, RequestTimings? Timings);

    public async IAsyncEnumerable<TokenEvent> RunAsync(GenerationRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var sampling = request.Sampling;
        var search = sampling.BeamSearch!;
        var width = sampling.N;
        // the step requests list the chosen (argmax) token and the most likely alternatives, from the raw logits
        var step = SamplingParams.Greedy with
        {
            MaxTokens = 1,
            Logprobs = Math.Max(2 * width, sampling.Logprobs ?? 0),
            IgnoreEos = true,
        };
        List<Beam> live = [new([], [], 0)];
        List<Beam> finished = [];
        (int Cached, TimeSpan Queue)? first = null;
        var aborted = false;
        for (var length = 0; length < sampling.MaxTokens && live.Count > 0 && !aborted; length++)
        {
            StepResult[] results;
            try
            {
                results = await Task.WhenAll(live.Select((beam, i) => NextAsync(request, beam, step, $"{length}-{i}", cancellationToken)));
            }
            catch (EngineUnavailableException) when (length > 0)
            {
                // the engine stopped (a drain ran out of time) between steps: the beams so far, as aborted
                aborted = true;
                break;
            }
            first ??= (results[0].Usage?.CachedPromptTokens ?? 0, results[0].Timings?.Queue ?? TimeSpan.Zero);
            var candidates = new List<Beam>();
            for (var i = 0; i < live.Count; i++)
            {
                if (results[i].Next is not { } next)
                {
                    aborted = true;
                    break;
                }
                foreach (var alternative in next.Top.Take(2 * width))
                {
                    var extended = Extend(live[i], alternative, next.Top, sampling.Logprobs);
                    var isEos = !sampling.IgnoreEos && eosTokenIds.Contains(alternative.TokenId);
                    if (isEos || sampling.StopTokenIds.Contains(alternative.TokenId))
                        finished.Add(extended with
                        {
                            Finish = FinishReason.Stop,
                            EndsWithEos = isEos,
                            StopReason = isEos ? null : new StopReason.TokenId(alternative.TokenId),
                        });
                    else
                        candidates.Add(extended);
                }
            }
            if (aborted) break;
            // stable: among equal sums the earlier beam's more likely token stays ahead
            live = [.. candidates.OrderByDescending(c => c.CumulativeLogprob).Take(width)];
        }
        var promptTokens = request.PromptTokenIds.Count;
        var best = finished.Concat(live.Select(b => b with { Finish = aborted ? FinishReason.Abort : FinishReason.Length }))
            .OrderByDescending(b => search.Score(b.CumulativeLogprob, promptTokens, b.TokenIds.Length, b.EndsWithEos))
            .Take(width).ToArray();
        var elapsed = Stopwatch.GetElapsedTime(started);
        var usage = new RequestUsage(promptTokens, best.Sum(b => b.TokenIds.Length), first?.Cached ?? 0);
        for (var i = 0; i < best.Length; i++)
        {
            var beam = best[i];
            var last = i == best.Length - 1;
            yield return new TokenEvent
            {
                Index = i, TokenIds = beam.TokenIds, TextDelta = Text(beam, sampling),
                Logprobs = sampling.Logprobs is null ? null : beam.Logprobs,
                FinishReason = beam.Finish, StopReason = beam.StopReason,
                Usage = last ? usage : null,
                Timings = last ? new RequestTimings(first?.Queue ?? TimeSpan.Zero, elapsed, elapsed) : null,
            };
        }
    }

    /// The beam and one more token, whose listing keeps the alternatives the caller asked for (logprobs).
    static Beam Extend(Beam beam, TopLogprob token, IReadOnlyList<TopLogprob> alternatives, int? listed) => beam with
    {
        TokenIds = [.. beam.TokenIds, token.TokenId],
        Logprobs = [.. beam.Logprobs, new TokenLogprob(token.TokenId, token.Logprob, [.. alternatives.Take(listed ?? 0)])],
        CumulativeLogprob = beam.CumulativeLogprob + token.Logprob,
    };

    /// A beam's text: a final stop token's text only with include_stop_str_in_output, as a stop string's.
    string Text(Beam beam, SamplingParams sampling)
    {
        var ids = beam.Finish == FinishReason.Stop && !sampling.IncludeStopStringInOutput ? beam.TokenIds[..^1] : beam.TokenIds;
        return prompts.Decode(ids, sampling.SkipSpecialTokens);
    }

    async Task<StepResult> NextAsync(GenerationRequest request, Beam beam, SamplingParams step, string name,
        CancellationToken cancellationToken)
    {
        var next = request with
        {
            RequestId = $"{request.RequestId}-beam-{name}",
            PromptTokenIds = [.. request.PromptTokenIds, .. beam.TokenIds],
            Sampling = step,
        };
        TokenLogprob? logprob = null;
        TokenEvent? last = null;
        await foreach (var e in generate(next, cancellationToken))
        {
            if (e.Logprobs is { Count: > 0 } listed) logprob = listed[0];
            last = e;
        }
        return new StepResult(last?.FinishReason == FinishReason.Abort ? null : logprob, last?.Usage, last?.Timings);
    }
}
