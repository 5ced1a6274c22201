using Serving.Engine.Grammar;
using Serving.Grpc.V1;
using Serving.Server.Generation;

namespace Serving.Server.Grpc;

/// serving.v1 SamplingParameters as SamplingFields: unset optional fields stay null so that the HTTP API's
/// defaults apply, and SamplingRules checks them against the same limits.
internal static class GrpcSampling
{
    public static SamplingFields Read(SamplingParameters? sampling, RequestLimits limits)
    {
        var p = sampling ?? new SamplingParameters();
        var logprobs = SamplingRules.Logprobs(p.Logprobs, p.HasTopLogprobs ? p.TopLogprobs : null, limits);
        var fields = new SamplingFields
        {
            MaxTokens = p.HasMaxTokens ? p.MaxTokens : null,
            Temperature = p.HasTemperature ? p.Temperature : null,
            TopP = p.HasTopP ? p.TopP : null,
            TopK = p.HasTopK ? p.TopK : null,
            MinP = p.HasMinP ? p.MinP : null,
            N = p.HasN ? p.N : null,
            Seed = p.HasSeed ? p.Seed : null,
            PresencePenalty = p.HasPresencePenalty ? p.PresencePenalty : null,
            FrequencyPenalty = p.HasFrequencyPenalty ? p.FrequencyPenalty : null,
            RepetitionPenalty = p.HasRepetitionPenalty ? p.RepetitionPenalty : null,
            LogitBias = p.LogitBias.Count == 0 ? null : new Dictionary<int, float>(p.LogitBias),
            Stop = [.. p.Stop],
            StopTokenIds = [.. p.StopTokenIds],
            AllowedTokenIds = p.AllowedTokenIds.Count > 0 ? [.. p.AllowedTokenIds] : null,
            BadWords = [.. p.BadWords],
            MinTokens = p.HasMinTokens ? p.MinTokens : null,
            IgnoreEos = p.IgnoreEos,
            Logprobs = logprobs,
            SkipSpecialTokens = p.HasSkipSpecialTokens ? p.SkipSpecialTokens : null,
            IncludeStopStrInOutput = p.IncludeStopStrInOutput,
            PromptLogprobs = p.HasPromptLogprobs ? p.PromptLogprobs : null,
            StructuredOutputs = StructuredOutputs(p.StructuredOutputs),
            UseBeamSearch = p.UseBeamSearch,
            LengthPenalty = p.HasLengthPenalty ? p.LengthPenalty : null,
        };
        SamplingRules.Validate(fields, limits);
        return fields;
    }

    /// The same constraints as the HTTP API's structured_outputs, compiled (and refused) the same way.
    static StructuredOutputsParams? StructuredOutputs(Serving.Grpc.V1.StructuredOutputs? constraint)
    {
        if (constraint is null) return null;
        var (spec, param) = constraint.KindCase switch
        {
            Serving.Grpc.V1.StructuredOutputs.KindOneofCase.Json => (new StructuredOutputsParams { Json = constraint.Json }, "structured_outputs.json"),
            Serving.Grpc.V1.StructuredOutputs.KindOneofCase.JsonObject when constraint.JsonObject =>
                (new StructuredOutputsParams { JsonObject = true }, "structured_outputs.json_object"),
            Serving.Grpc.V1.StructuredOutputs.KindOneofCase.Regex => (new StructuredOutputsParams { Regex = constraint.Regex }, "structured_outputs.regex"),
            Serving.Grpc.V1.StructuredOutputs.KindOneofCase.Choice => (new StructuredOutputsParams { Choice = [.. constraint.Choice.Values] }, "structured_outputs.choice"),
            Serving.Grpc.V1.StructuredOutputs.KindOneofCase.Grammar => (new StructuredOutputsParams { Grammar = constraint.Grammar }, "structured_outputs.grammar"),
            _ => throw Errors.ApiException.BadRequest("structured_outputs needs one of json, json_object, regex, choice, grammar.", "structured_outputs"),
        };
        OpenAI.StructuredOutputFields.Compile(spec, param);
        return spec;
    }
}
