using System.Globalization;

namespace Serving.LoadGen.Metrics;

/// Service-level objectives for goodput (vLLM's --goodput KEY:MS ...): a completed request is good when its
/// TTFT, TPOT and end-to-end latency are each at most the given milliseconds; unset limits are not checked.
internal sealed record GoodputSlo(double? TtftMs, double? TpotMs, double? E2elMs)
{
    /// Parses pairs like "ttft:500", "tpot:50", "e2el:2000"; throws ArgumentException naming the bad one.
    public static GoodputSlo? Parse(IReadOnlyList<string>? pairs)
    {
        if (pairs is null || pairs.Count == 0) return null;
        var limits = new Dictionary<string, double>();
        foreach (var pair in pairs.SelectMany(p => p.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries)))
        {
            var parts = pair.Split(':');
            if (parts.Length != 2 || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) || ms < 0)
                throw new ArgumentException($"--goodput expects KEY:MILLISECONDS with a non-negative number, got '{pair}'");
            if (parts[0] is not ("ttft" or "tpot" or "e2el"))
                throw new ArgumentException($"--goodput key '{parts[0]}' is not one of ttft, tpot, e2el");
            limits[parts[0]] = ms;
        }
        return new GoodputSlo(Limit(limits, "ttft"), Limit(limits, "tpot"), Limit(limits, "e2el"));
    }

    static double? Limit(Dictionary<string, double> limits, string key) => limits.TryGetValue(key, out var ms) ? ms : null;

    /// Whether a completed request meets every objective (times in seconds; TPOT is 0 for one output token).
    public bool IsMet(double ttft, double tpot, double e2el) =>
        Within(TtftMs, ttft) && Within(TpotMs, tpot) && Within(E2elMs, e2el);

    static bool Within(double? limitMs, double seconds) => limitMs is not { } limit || seconds * 1000 <= limit;

    public override string ToString() => string.Join(" ", new[] { ("ttft", TtftMs), ("tpot", TpotMs), ("e2el", E2elMs) }
        .Where(l => l.Item2 is not null).Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.Item1}:{l.Item2}")));
}
