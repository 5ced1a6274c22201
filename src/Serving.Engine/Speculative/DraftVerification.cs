namespace Serving.Engine.Speculative;

/// How a step's sampled tokens judge a sequence's drafts. The step samples a token after the sequence's last token and
/// after each draft, each from the model's distribution given everything before it; draft i is kept while every
/// draft before it was kept and the token sampled in its place equals it. With a draft that is a single proposed
/// token (prompt lookup proposes no distribution) this is exactly rejection sampling: the draft is kept with the
/// model's probability of it, and when it is not, the token sampled in its place is distributed as the model's
/// distribution without the draft token, renormalized. So speculation changes how many steps a text takes, never
/// which texts can come out or how likely each is; with greedy sampling the text is the one decoded without it.
internal static class DraftVerification
{
    /// How many of drafts are kept, given sampled[first + i], the token sampled at draft i's place.
    public static int NumAccepted(IReadOnlyList<int> drafts, IReadOnlyList<int> sampled, int first)
    {
        var accepted = 0;
        while (accepted < drafts.Count && sampled[first + accepted] == drafts[accepted])
            accepted++;
        return accepted;
    }

    /// Whether a sequence's sampling lets its steps check drafts: every logits processor of a draft row must see what it
    /// would see after the drafts before it. A structured output's mask does (AllowedTokens walks the grammar through
    /// the drafts); penalties and bad words read the output so far and min_tokens its length, from the sequence's one
    /// sampling state: those sequences decode one token per step.
    public static bool CanSpeculate(Sampling.SamplingParams sampling, int numOutputTokens) =>
        sampling.RepetitionPenalty == 1f && sampling.FrequencyPenalty == 0f && sampling.PresencePenalty == 0f &&
        sampling.BadWords.Count == 0 && numOutputTokens >= sampling.MinTokens;
}

/// Counts of speculative decoding since start (vLLM's spec_decode metrics): checks of a sequence's drafts, draft
/// tokens checked, draft tokens kept, and kept by place (the first draft, the second, ...).
public sealed record SpeculationStats(long NumDrafts, long NumDraftTokens, long NumAcceptedTokens, IReadOnlyList<long> AcceptedPerPosition)
{
    public static SpeculationStats None { get; } = new(0, 0, 0, []);

    /// Kept draft tokens over checked ones; 0 before any.
    public double AcceptanceRate => NumDraftTokens == 0 ? 0 : (double)NumAcceptedTokens / NumDraftTokens;
}

/// The scheduler's running counts behind SpeculationStats.
internal sealed class SpeculationCounters(int numSpeculativeTokens)
{
    readonly long[] _acceptedPerPosition = new long[numSpeculativeTokens];
    long _numDrafts, _numDraftTokens, _numAccepted;

    public void Record(int numDrafts, int numAccepted)
    {
        if (numDrafts == 0) return;
        _numDrafts++;
        _numDraftTokens += numDrafts;
        _numAccepted += numAccepted;
        for (var i = 0; i < numAccepted; i++) _acceptedPerPosition[i]++;
    }

    public SpeculationStats Snapshot() => new(_numDrafts, _numDraftTokens, _numAccepted, _acceptedPerPosition.ToArray());
}
