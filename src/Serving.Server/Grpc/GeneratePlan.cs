using Serving.Engine;
using Serving.Grpc.V1;
using Serving.Server.Generation;

namespace Serving.Server.Grpc;

/// A checked GenerateRequest: the prompt as token ids and the engine request for it, under the limits the
/// HTTP API applies. RequestId is the caller's id (or a new one); the engine's id adds a random suffix,
/// because the engine requires ids unique among live requests and a caller may reuse one.
internal sealed record GeneratePlan(string RequestId, GrpcPrompt Prompt, GenerationRequest Generation)
{
    public static GeneratePlan Create(GenerateRequest request, ServingContext serving)
    {
        ClientRequestId.Checked(request.RequestId, "request_id");
        var limits = serving.Limits;
        var fields = GrpcSampling.Read(request.Sampling, limits);
        SamplingRules.Sequences(1, fields.N, limits);
        var prompt = GrpcPrompts.Resolve(request, serving.Prompts);
        var sampling = SamplingRules.ToSamplingParams(fields, prompt.TokenIds.Count, limits, prompt.Param);
        var requestId = request.RequestId.Length > 0 ? request.RequestId : ServingContext.NewId("gen");
        var engineId = request.RequestId.Length > 0 ? $"{requestId}-{Guid.NewGuid().ToString("N")[..8]}" : requestId;
        var generation = new GenerationRequest
        {
            RequestId = engineId, PromptTokenIds = prompt.TokenIds, Sampling = sampling, Priority = request.Priority,
            LoraAdapter = serving.Resolve(request.Model.Length == 0 ? null : request.Model).LoraAdapter,
            CacheSalt = request.CacheSalt.Length == 0 ? null : request.CacheSalt,
        };
        return new GeneratePlan(requestId, prompt, generation);
    }
}
