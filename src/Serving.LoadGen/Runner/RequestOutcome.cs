namespace Serving.LoadGen.Runner;

/// What one request of a run measured, in seconds. A failed request has Success false and its Error; its
/// timings are not used. Timings follow vLLM's client: TTFT is the first chunk carrying output, ITLs are the
/// gaps between successive output chunks, Latency ends at the last output chunk.
internal sealed record RequestOutcome
{
    public required int Index { get; init; }
    public required bool Success { get; init; }
    public string? Error { get; init; }
    /// When the request was sent, seconds after the run started.
    public double SentAt { get; init; }
    public int PromptLength { get; init; }
    public int OutputTokens { get; init; }
    public double Ttft { get; init; }
    public double Latency { get; init; }
    public IReadOnlyList<double> Itl { get; init; } = [];
    public string GeneratedText { get; init; } = "";

    public static RequestOutcome Failed(int index, double sentAt, string error) =>
        new() { Index = index, Success = false, Error = error, SentAt = sentAt };
}
