using Serving.Server.Errors;
using Serving.Server.Generation;

namespace Serving.Server.OpenAI;

/// GET /v1/models and GET /v1/models/{id}: the one served model, a card per name it is served under.
internal static class ModelsEndpoint
{
    static readonly long StartedAt = ServingContext.UnixNow();

    public static IResult List(ServingContext serving)
    {
        serving.EnsureReady();
        return TypedResults.Json(new ModelList([.. serving.ModelNames.Select(name => Card(serving, name))]), OpenAIJsonContext.Default.ModelList);
    }

    public static IResult Get(string id, ServingContext serving)
    {
        serving.EnsureReady();
        serving.CheckModel(id);
        return TypedResults.Json(Card(serving, id), OpenAIJsonContext.Default.ModelCard);
    }

    static ModelCard Card(ServingContext serving, string name) =>
        new(name, StartedAt, "serving", serving.Options.ResolvedModel, serving.Engine.Info.MaxModelLen,
            ModelInfoCard.From(serving.Engine.Info));
}
