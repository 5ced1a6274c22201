using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Tests.Support;

/// Synthetic request outcomes with chosen timings, for metrics with answers worked out by hand.
public static class Timelines
{
    /// A completed request: first chunk at ttft, then one chunk every gap seconds, outputTokens tokens in all.
    internal static RequestOutcome Completed(int index, int promptLength, int outputTokens, double ttft, double gap) => new()
    {
        Index = index, Success = true, PromptLength = promptLength, OutputTokens = outputTokens, Ttft = ttft,
        Itl = Enumerable.Repeat(gap, outputTokens - 1).ToArray(), Latency = ttft + gap * (outputTokens - 1),
    };

    internal static RequestOutcome Failed(int index, string error) => RequestOutcome.Failed(index, 0, error);
}
