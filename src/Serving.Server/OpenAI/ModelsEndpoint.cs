using Serving.Server.Errors;

namespace Serving.Server.OpenAI;

/// GET /v1/models and GET /v1/models/{id}: the one served model.
internal static class ModelsEndpoint
{
    static readonly long StartedAt = OpenAIServing.UnixNow();

    public static IResult List(OpenAIServing serving)
    {
        serving.EnsureReady();
        return TypedResults.Json(new ModelList([Card(serving)]), OpenAIJsonContext.Default.ModelList);
    }

    public static IResult Get(string id, OpenAIServing serving)
    {
        serving.EnsureReady();
        if (id != serving.ModelName) throw ApiException.ModelNotFound(id);
        return TypedResults.Json(Card(serving), OpenAIJsonContext.Default.ModelCard);
    }

    static ModelCard Card(OpenAIServing serving) =>
        new(serving.ModelName, StartedAt, "serving", serving.Options.ResolvedModel, serving.Engine.Info.MaxModelLen);
}
