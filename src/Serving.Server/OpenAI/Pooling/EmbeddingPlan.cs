using Serving.Engine;
using Serving.Engine.Pooling;
using Serving.Server.Generation;
using Serving.Server.OpenAI.Tools;

namespace Serving.Server.OpenAI.Pooling;

/// A checked /v1/embeddings request: an engine request per input, each pooled as the server's pooler config says
/// unless the request sets normalize or dimensions.
/// Base64: how vectors are encoded (encoding_format base64); null: as floats.
internal sealed record EmbeddingPlan(string Id, long Created, ServedModel Model, VectorEncoding? Base64, IReadOnlyList<GenerationRequest> Requests)
{
    public static EmbeddingPlan Create(EmbeddingRequest request, ServingContext serving)
    {
        var model = serving.Resolve(request.Model);
        var info = serving.Engine.Info;
        var limits = serving.Limits;
        Check.That(request.EncodingFormat is null or "float" or "base64", "encoding_format",
            $"encoding_format must be \"float\" or \"base64\" (got \"{request.EncodingFormat}\").");
        var encoding = VectorEncoding.Of(request.EmbedDtype, request.Endianness);   // checked whatever the format, as vLLM
        if (request.Dimensions is { } dimensions) info.CheckDimensions(dimensions);   // InvalidRequestException: 400 naming dimensions
        var keepLast = PromptEncoding.KeepLast(request.TruncatePromptTokens, limits.MaxModelLen);
        var prompts = Prompts(request, serving, keepLast, limits);
        var pooling = info.Pooler!.Params(request.Normalize, request.Dimensions);
        var id = ServingContext.NewId("embd");
        var requests = EmbeddingRun.Requests(id, prompts, pooling, request.Priority ?? 0, model.LoraAdapter);
        return new EmbeddingPlan(id, ServingContext.UnixNow(), model, request.EncodingFormat == "base64" ? encoding : null, requests);
    }

    /// The token ids of each input, or of the rendered conversation.
    static IReadOnlyList<IReadOnlyList<int>> Prompts(EmbeddingRequest request, ServingContext serving, int? keepLast, RequestLimits limits)
    {
        var hasMessages = request.Messages is { ValueKind: not System.Text.Json.JsonValueKind.Null };
        Check.That(hasMessages != request.Input is { ValueKind: not System.Text.Json.JsonValueKind.Null }, "input",
            "Exactly one of input and messages is required.");
        if (hasMessages)
        {
            var text = ChatPrompt.Render(serving, request.Messages, request.AddGenerationPrompt ?? false, request.ContinueFinalMessage,
                request.ChatTemplateKwargs, request.ChatTemplate, guardLength: keepLast is null);
            var ids = serving.Prompts.Encode(text, PromptEncoding.AddSpecialTokens(request.AddSpecialTokens, chat: true), "messages", keepLast);
            serving.Engine.Info.CheckPooledPrompt(ids.Count, "messages");
            return [ids];
        }
        var count = CompletionPrompts.Count(request.Input, "input");
        Check.That(count <= EmbeddingRun.MaxInputs, "input", $"The request lists {count} inputs; at most {EmbeddingRun.MaxInputs} are allowed.");
        var prompts = CompletionPrompts.Resolve(request.Input, serving.Prompts, PromptEncoding.AddSpecialTokens(request.AddSpecialTokens, chat: false),
            keepLast, "input").Select(p => p.TokenIds).ToList();
        foreach (var ids in prompts) serving.Engine.Info.CheckPooledPrompt(ids.Count, "input");
        return prompts;
    }

    /// The vector as the request asked for it: floats, or their bytes in base64 (OpenAI's SDKs ask for base64 by
    /// default, float32 in the machine's byte order).
    public object Encode(float[] embedding) => Base64 is { } encoding ? encoding.Base64(embedding) : embedding;
}
