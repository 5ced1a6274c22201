using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.Engine;

/// POST /reset_prefix_cache, vLLM's: forgets every cached prompt prefix, so that the next round of a benchmark computes
/// its prompts' KV again instead of finding the last round's. 200 when done; 409 while requests hold KV blocks (the
/// cache is reset only when the engine is idle, as vLLM's is without reset_running_requests).
internal static class PrefixCacheEndpoint
{
    public static void MapPrefixCacheReset(this IEndpointRouteBuilder app) => app.MapPost("/reset_prefix_cache", ResetAsync);

    static async Task<IResult> ResetAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        if (!await serving.Engine.ResetPrefixCacheAsync(context.RequestAborted))
            throw new ApiException(StatusCodes.Status409Conflict, ErrorTypes.InvalidRequest,
                "The prefix cache is in use: requests hold KV blocks. Reset it when the server is idle.");
        return Results.Text("Success: the prefix cache was reset.");
    }
}
