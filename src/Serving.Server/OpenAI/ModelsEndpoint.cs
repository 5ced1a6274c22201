using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// GET /v1/models and GET /v1/models/{id}: the one served model, a card per name it is served under, and a card per
/// LoRA adapter (its root the adapter's folder, its parent its base_model_name or the model's first name, as vLLM lists them).
internal static class ModelsEndpoint
{
    static readonly long StartedAt = ServingContext.UnixNow();

    public static IResult List(ServingContext serving)
    {
        serving.EnsureReady();
        return TypedResults.Json(new ModelList([.. serving.ModelNames.Select(name => Card(serving, name)),
            .. serving.LoraAdapters.Select(adapter => Card(serving, adapter.Name))]), OpenAIJsonContext.Default.ModelList);
    }

    public static IResult Get(string id, ServingContext serving)
    {
        serving.EnsureReady();
        serving.CheckModel(id);
        return TypedResults.Json(Card(serving, id), OpenAIJsonContext.Default.ModelCard);
    }

    static ModelCard Card(ServingContext serving, string name) =>
        serving.LoraAdapters.FirstOrDefault(adapter => adapter.Name == name) is { } adapter
            ? new(name, StartedAt, "serving", adapter.Path, serving.Engine.Info.MaxModelLen, ModelInfoCard.From(serving.Engine.Info))
            {
                Parent = adapter.BaseModelName ?? serving.ModelName,
            }
            : new(name, StartedAt, "serving", serving.Options.ResolvedModel, serving.Engine.Info.MaxModelLen, ModelInfoCard.From(serving.Engine.Info));
}
