using Serving.Engine;
using Serving.Engine.Model.Lora;
using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// POST /v1/load_lora_adapter and /v1/unload_lora_adapter, vLLM's routes and answers, under
/// --allow-runtime-lora-updating: an adapter loaded while serving is a model like those of --lora-modules from the
/// engine's next step; one is unloaded only when no live request uses it.
internal static class LoraAdapterEndpoints
{
    public static void MapLoraAdapterUpdates(this RouteGroupBuilder v1)
    {
        v1.MapPost("/load_lora_adapter", LoadAsync);
        v1.MapPost("/unload_lora_adapter", UnloadAsync);
    }

    static async Task<IResult> LoadAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.LoraAdapterRequest);
        var name = Name(request);
        Check.That(request.LoraPath is { Length: > 0 }, "lora_path", "lora_path must be the adapter's folder.");
        Check.That(!serving.ModelNames.Contains(name), "lora_name", $"'{name}' is the served model's name.");
        Check.That(serving.LoraAdapters.All(a => a.Name != name), "lora_name", $"The lora adapter '{name}' has already been loaded.");
        Check.That(Directory.Exists(request.LoraPath), "lora_path", $"The adapter folder '{request.LoraPath}' does not exist.");
        try
        {
            await serving.Engine.LoadLoraAdapterAsync(new LoraAdapterSource(name, request.LoraPath!), context.RequestAborted);
        }
        catch (ModelLoadException error)
        {
            throw ApiException.BadRequest(error.Message, "lora_path");
        }
        return Results.Text($"Success: LoRA adapter '{name}' added successfully.");
    }

    static async Task<IResult> UnloadAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.LoraAdapterRequest);
        var name = Name(request);
        if (serving.LoraAdapters.All(a => a.Name != name))
            throw new ApiException(StatusCodes.Status404NotFound, ErrorTypes.NotFound, $"The lora adapter '{name}' cannot be found.", "lora_name");
        await serving.Engine.UnloadLoraAdapterAsync(name, context.RequestAborted);
        return Results.Text($"Success: LoRA adapter '{name}' removed successfully.");
    }

    static string Name(LoraAdapterRequest request)
    {
        Check.That(request.LoraName is { Length: > 0 }, "lora_name", "lora_name must name the adapter.");
        return request.LoraName!;
    }
}

/// vLLM's body of both routes.
internal sealed record LoraAdapterRequest(string? LoraName, string? LoraPath);
