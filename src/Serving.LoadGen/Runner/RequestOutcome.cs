using Serving.LoadGen.Clients;

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

    /// A finished stream of either API, timed by its StreamTimer: a success, or a failure when no output arrived.
    public static RequestOutcome Streamed(int index, StreamTimer timer, int promptLength, int outputTokens, string text) =>
        timer.Ttft is not { } ttft
            ? Failed(index, 0, "stream carried no output")
            : new()
            {
                Index = index, Success = true, PromptLength = promptLength, OutputTokens = outputTokens, Ttft = ttft,
                Latency = timer.Latency, Itl = timer.Itl, GeneratedText = text,
            };
}
