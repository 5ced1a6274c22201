using Serving.Engine;
using Serving.Grpc.V1;
using Serving.Server.Generation;

namespace Serving.Server.Grpc;

/// A checked EmbedRequest: an engine request per input, pooled as the server's pooler config says unless the request
/// sets normalize or dimensions (the HTTP API's rules: EmbeddingPlan).
internal sealed record EmbedPlan(string Model, IReadOnlyList<GenerationRequest> Requests)
{
    public static EmbedPlan Create(EmbedRequest request, ServingContext serving)
    {
        var model = serving.Resolve(request.Model.Length == 0 ? null : request.Model);
        var info = serving.Engine.Info;
        var limits = serving.Limits;
        Check.That(request.Inputs.Count > 0, "inputs", "inputs must list at least one input.");
        Check.That(request.Inputs.Count <= EmbeddingRun.MaxInputs, "inputs",
            $"The request lists {request.Inputs.Count} inputs; at most {EmbeddingRun.MaxInputs} are allowed.");
        int? dimensions = request.HasDimensions ? request.Dimensions : null;
        if (dimensions is { } d) info.CheckDimensions(d);
        var keepLast = PromptEncoding.KeepLast(request.HasTruncatePromptTokens ? request.TruncatePromptTokens : null, limits.MaxModelLen);
        var addSpecialTokens = request.HasAddSpecialTokens ? request.AddSpecialTokens : (bool?)null;
        var pooling = info.Pooler!.Params(request.HasNormalize ? request.Normalize : null, dimensions);
        var id = ServingContext.NewId("embd");
        var prompts = request.Inputs.Select((input, i) => GrpcPrompts.Resolve(input, i, addSpecialTokens, keepLast, serving.Prompts, info)).ToList();
        var requests = EmbeddingRun.Requests(id, prompts, pooling, request.Priority, model.LoraAdapter);
        return new EmbedPlan(model.Name, requests);
    }
}
