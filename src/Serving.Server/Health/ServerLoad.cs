namespace Serving.Server.Health;

/// vLLM's server load tracking, which load balancers read: GET /load answers {"server_load": N}, the API requests
/// (completions, chat, responses, embeddings, pooling, scores, classify) in flight, a streamed one until its stream
/// ends. Counted only under --enable-server-load-tracking; without it the count stays 0, as in vLLM.
internal sealed class ServerLoad
{
    public sealed record LoadResponse(int ServerLoad);

    static readonly PathString[] Tracked =
    [
        "/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/pooling", "/score", "/v1/score",
        "/rerank", "/v1/rerank", "/v2/rerank", "/classify", "/v1/classify", "/invocations",
    ];

    int _inFlight;

    public int InFlight => Volatile.Read(ref _inFlight);

    public async Task TrackAsync(HttpContext context, RequestDelegate next)
    {
        if (!HttpMethods.IsPost(context.Request.Method) || !Tracked.Any(path => context.Request.Path.StartsWithSegments(path)))
        {
            await next(context);
            return;
        }
        Interlocked.Increment(ref _inFlight);
        try
        {
            await next(context);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public static void MapLoad(IEndpointRouteBuilder app) =>
        app.MapGet("/load", (ServerLoad load) => TypedResults.Json(new LoadResponse(load.InFlight), OpenAI.OpenAIJsonContext.Default.LoadResponse));
}
