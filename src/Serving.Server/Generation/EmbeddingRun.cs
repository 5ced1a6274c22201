using Serving.Engine;
using Serving.Server.Telemetry;

namespace Serving.Server.Generation;

/// The embedding requests of one API request (HTTP /v1/embeddings, gRPC Embed), run side by side as a GenerationRun:
/// their vectors in request order and the prompt tokens of all. Refusals surface before anything is written; an input
/// the engine aborted (drain, shutdown) makes the whole request unavailable.
internal static class EmbeddingRun
{
    public static async Task<(float[][] Vectors, int PromptTokens)> RunAsync(ILlmEngine engine, IReadOnlyList<GenerationRequest> requests,
        RequestObserver observer, CancellationToken cancellationToken)
    {
        var vectors = new float[requests.Count][];
        var promptTokens = 0;
        await using (var run = await GenerationRun.StartAsync(engine, requests, observer, cancellationToken))
        {
            await foreach (var item in run.ReadAllAsync(cancellationToken))
            {
                if (item.Event.Embedding is { } vector) vectors[item.PromptIndex] = vector;
                promptTokens += item.Event.Usage?.PromptTokens ?? 0;
            }
        }
        if (vectors.Any(vector => vector is null))
            throw new EngineUnavailableException("the server is shutting down; the embedding request was aborted");
        return (vectors, promptTokens);
    }
}
