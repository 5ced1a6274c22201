using Serving.Server.Generation;
using Serving.Server.OpenAI;
using Serving.Server.OpenAI.Tools;

namespace Serving.Server.Tokenize;

/// POST /tokenize and POST /detokenize in vLLM's shapes. A chat tokenizes its rendered template without
/// adding special tokens (as generation does); a prompt adds them unless add_special_tokens is false.
internal static class TokenizeEndpoints
{
    public static void MapTokenize(this IEndpointRouteBuilder app)
    {
        app.MapPost("/tokenize", TokenizeAsync);
        app.MapPost("/detokenize", DetokenizeAsync);
    }

    static async Task<IResult> TokenizeAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.TokenizeRequest);
        serving.CheckModel(request.Model);
        var prompts = serving.Prompts;
        var ids = await serving.PreparePromptsAsync(() => Tokens(request, serving), context.RequestAborted);
        var strings = request.ReturnTokenStrs == true ? ids.Select(prompts.TokenText).ToList() : null;
        return TypedResults.Json(new TokenizeResponse(ids.Count, serving.Engine.Info.MaxModelLen, ids, strings),
            OpenAIJsonContext.Default.TokenizeResponse);
    }

    static IReadOnlyList<int> Tokens(TokenizeRequest request, ServingContext serving)
    {
        Check.That(request.Messages is null || request.Prompt is null, "messages", "Give either prompt or messages, not both.");
        if (request.Messages is not null)
        {
            var text = ChatPrompt.Render(serving, request.Messages, request.AddGenerationPrompt, request.ContinueFinalMessage,
                request.ChatTemplateKwargs, request.ChatTemplate, ChatTools.TemplateToolsOf(request.Tools));
            return serving.Prompts.Encode(text, PromptEncoding.AddSpecialTokens(request.AddSpecialTokens, chat: true), "messages");
        }
        Check.That(request.Prompt is not null, "prompt", "Either prompt or messages is required.");
        return serving.Prompts.Encode(request.Prompt!, PromptEncoding.AddSpecialTokens(request.AddSpecialTokens, chat: false), "prompt");
    }

    static async Task<IResult> DetokenizeAsync(HttpContext context, ServingContext serving)
    {
        serving.EnsureReady();
        var request = await RequestBody.ReadAsync(context, OpenAIJsonContext.Default.DetokenizeRequest);
        serving.CheckModel(request.Model);
        Check.That(request.Tokens is not null, "tokens", "tokens is required.");
        Check.TokenIds(request.Tokens!, serving.Prompts.VocabSize, "tokens");
        return TypedResults.Json(new DetokenizeResponse(serving.Prompts.Decode(request.Tokens!)),
            OpenAIJsonContext.Default.DetokenizeResponse);
    }
}
