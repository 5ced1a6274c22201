using Serving.LoadGen.Datasets;
using Serving.LoadGen.Runner;

namespace Serving.LoadGen.Clients;

/// How generation is asked for: greedy unless a temperature is given, as vLLM's benchmark does.
internal sealed record GenerationSettings(string Model, bool IgnoreEos, double Temperature = 0)
{
    /// Receives each text delta as it arrives (the `generate` command prints them).
    public Action<string>? OnText { get; init; }
}

/// A server API the load generator drives: OpenAI completions or chat over HTTP (SSE), or gRPC.
/// SendAsync never throws for a server-side failure: it returns a failed outcome carrying the error.
internal interface IGenerationBackend : IAsyncDisposable
{
    Task<ServerInfo> GetServerInfoAsync(string? model, CancellationToken cancellationToken);

    /// Streams one request; Index and SentAt of the outcome are filled by the caller.
    Task<RequestOutcome> SendAsync(BenchRequest request, GenerationSettings settings, CancellationToken cancellationToken);
}
