namespace Serving.Engine.Speculative;

/// Counts of speculative decoding since start (vLLM's spec_decode metrics): checks of a sequence's drafts, draft
/// tokens checked, draft tokens kept, and kept by place (the first draft, the second, ...).
public sealed record SpeculationStats(long NumDrafts, long NumDraftTokens, long NumAcceptedTokens, IReadOnlyList<long> AcceptedPerPosition)
{
    public static SpeculationStats None { get; } = new(0, 0, 0, []);
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

    /// Drafts counted as kept at places [from, to) of their check were dropped after all (a stop string before them).
    public void Retract(int from, int to)
    {
        for (var place = from; place < to; place++)
        {
            _numAccepted--;
            _acceptedPerPosition[place]--;
        }
    }

    public SpeculationStats Snapshot() => new(_numDrafts, _numDraftTokens, _numAccepted, _acceptedPerPosition.ToArray());
}
