namespace Serving.LoadGen.Metrics;

/// The metrics of one run, defined as vLLM's benchmark_serving defines them. Latencies in milliseconds,
/// throughputs per second of the run's duration.
internal sealed record BenchmarkMetrics
{
    public required int NumRequests { get; init; }
    public required int Completed { get; init; }
    public required int Failed { get; init; }
    public required double DurationSeconds { get; init; }
    public required long TotalInputTokens { get; init; }
    public required long TotalOutputTokens { get; init; }
    public required double RequestThroughput { get; init; }
    /// Good requests (meeting every SLO) per second; null when no --goodput was given.
    public double? RequestGoodput { get; init; }
    public int? GoodCompleted { get; init; }
    public required double OutputThroughput { get; init; }
    public required double TotalTokenThroughput { get; init; }
    public required LatencySummary Ttft { get; init; }
    /// Over requests with more than one output token: (latency - TTFT) / (output tokens - 1).
    public required LatencySummary Tpot { get; init; }
    /// Over every gap between output chunks of every request.
    public required LatencySummary Itl { get; init; }
    public required LatencySummary E2el { get; init; }
    /// Distinct error messages of failed requests, most frequent first, with their counts.
    public required IReadOnlyList<ErrorCount> Errors { get; init; }
}

internal sealed record ErrorCount(string Message, int Count);
