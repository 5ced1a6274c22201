using System.Text.Json;

namespace Serving.Server.OpenAI.Pooling;

/// POST /v1/embeddings, OpenAI's body with vLLM's additions: "input" (a string, strings, token ids or lists of them)
/// or vLLM's chat form "messages" (rendered by the chat template, no generation prompt unless asked); dimensions
/// (Matryoshka models), encoding_format float or base64 (with vLLM's embed_dtype and endianness: VectorEncoding),
/// normalize, truncate_prompt_tokens, add_special_tokens, priority.
internal sealed record EmbeddingRequest
{
    public string? Model { get; init; }
    public JsonElement? Input { get; init; }
    public JsonElement? Messages { get; init; }
    public string? EncodingFormat { get; init; }
    public string? EmbedDtype { get; init; }
    public string? Endianness { get; init; }
    public int? Dimensions { get; init; }
    public string? User { get; init; }
    public bool? Normalize { get; init; }
    public int? TruncatePromptTokens { get; init; }
    public bool? AddSpecialTokens { get; init; }
    public bool? AddGenerationPrompt { get; init; }
    public bool? ContinueFinalMessage { get; init; }
    public JsonElement? ChatTemplateKwargs { get; init; }
    public string? ChatTemplate { get; init; }
    public int? Priority { get; init; }
}

/// OpenAI's embeddings answer (with vLLM's id and created): one item per input, in input order.
internal sealed record EmbeddingResponse(string Id, long Created, string Model, IReadOnlyList<EmbeddingItem> Data, EmbeddingUsage Usage)
{
    public string Object => "list";
}

/// Embedding: a float32 array, or (encoding_format base64) its bytes in base64 (VectorEncoding).
internal sealed record EmbeddingItem(int Index, object Embedding)
{
    public string Object => "embedding";
}

internal sealed record EmbeddingUsage(int PromptTokens, int TotalTokens);
