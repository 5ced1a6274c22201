using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// GET /v1/models and GET /v1/models/{id}: the one served model.
internal static class ModelsEndpoint
{
    static readonly long StartedAt = ServingContext.UnixNow();

    public static IResult List(ServingContext serving)
    {
        serving.EnsureReady();
        return TypedResults.Json(new ModelList([Card(serving)]), OpenAIJsonContext.Default.ModelList);
    }

    public static IResult Get(string id, ServingContext serving)
    {
        serving.EnsureReady();
        if (id != serving.ModelName) throw ApiException.ModelNotFound(id);
        return TypedResults.Json(Card(serving), OpenAIJsonContext.Default.ModelCard);
    }

    static ModelCard Card(ServingContext serving) =>
        new(serving.ModelName, StartedAt, "serving", serving.Options.ResolvedModel, serving.Engine.Info.MaxModelLen,
            ModelInfoCard.From(serving.Engine.Info));
}
