using Serving.Engine;
using Serving.Server.Telemetry;

namespace Serving.Server.Generation;

/// The embedding requests of one API request (HTTP /v1/embeddings, /score, /rerank, gRPC Embed): their vectors in
/// request order and the prompt tokens of all. They run side by side in waves of at most WaveSize (each a
/// GenerationRun), so a request may list up to OpenAI's MaxInputs texts whatever the waiting queue holds (LangChain
/// sends 1,000 at a time). Refusals surface before anything is written; an input the engine aborted (drain, shutdown)
/// makes the whole request unavailable.
internal static class EmbeddingRun
{
    /// OpenAI's limit on the inputs of one embeddings request.
    public const int MaxInputs = 2048;

    /// Inputs queued at once: a batch the engine fills its steps with, and room in the queue for other requests.
    static int WaveSize(RequestLimits limits) => Math.Max(1, Math.Min(256, limits.MaxQueuedSeqs / 2));

    /// The engine request of each prompt, pooled alike: ids id-0, id-1, ... (id alone for one prompt).
    public static List<GenerationRequest> Requests(string id, IReadOnlyList<IReadOnlyList<int>> prompts, Serving.Engine.Pooling.PoolingParams pooling,
        int priority, string? loraAdapter) =>
        [.. prompts.Select((tokens, i) => new GenerationRequest
        {
            RequestId = prompts.Count == 1 ? id : $"{id}-{i}", PromptTokenIds = tokens, Pooling = pooling, Priority = priority,
            LoraAdapter = loraAdapter,
        })];

    public static async Task<(float[][] Vectors, int PromptTokens)> RunAsync(ServingContext serving, IReadOnlyList<GenerationRequest> requests,
        RequestObserver observer, CancellationToken cancellationToken)
    {
        var (engine, waveSize) = (serving.Engine, WaveSize(serving.Limits));
        var vectors = new float[requests.Count][];
        var promptTokens = 0;
        for (var first = 0; first < requests.Count; first += waveSize)
        {
            var wave = requests.Skip(first).Take(waveSize).ToList();
            await using var run = await GenerationRun.StartAsync(engine, wave, observer, cancellationToken);
            await foreach (var item in run.ReadAllAsync(cancellationToken))
            {
                if (item.Event.Embedding is { } vector) vectors[first + item.PromptIndex] = vector;
                promptTokens += item.Event.Usage?.PromptTokens ?? 0;
            }
        }
        if (vectors.Any(vector => vector is null))
            throw new EngineUnavailableException("the server is shutting down; the embedding request was aborted");
        return (vectors, promptTokens);
    }
}
