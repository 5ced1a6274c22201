using System.Text.Json.Serialization;

namespace Serving.Server.OpenAI;

// Response and chunk shapes, as OpenAI writes them (nulls included), plus vLLM's opt-in token ids.

internal sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens, PromptTokensDetails PromptTokensDetails);

internal sealed record PromptTokensDetails(int CachedTokens);

/// A /v1/completions answer or one of its stream chunks (same object, "text_completion").
internal sealed record CompletionResponse(string Id, long Created, string Model, IReadOnlyList<CompletionChoice> Choices,
    Usage? Usage)
{
    public string Object => "text_completion";
    public string? SystemFingerprint => null;
}

internal sealed record CompletionChoice(int Index, string Text, CompletionLogprobs? Logprobs, string? FinishReason,
    object? StopReason)
{
    /// vLLM's prompt_logprobs (when the request asked for them, or echo with logprobs): see PromptLogprobs.
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<Dictionary<string, PromptLogprob>?>? PromptLogprobs { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? PromptTokenIds { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? TokenIds { get; init; }
}

/// Completions-style log-probabilities: parallel lists, one entry per token listed (with echo the prompt's tokens
/// come first, the very first with a null log-probability and no alternatives, as OpenAI writes them).
internal sealed record CompletionLogprobs(IReadOnlyList<string> Tokens, IReadOnlyList<float?> TokenLogprobs,
    IReadOnlyList<Dictionary<string, float>?> TopLogprobs, IReadOnlyList<int> TextOffset);

/// One token of a prompt_logprobs position, keyed by its id: vLLM's shape.
internal sealed record PromptLogprob(float Logprob, int? Rank, string DecodedToken);

internal sealed record ChatResponse(string Id, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage Usage)
{
    /// vLLM's prompt_logprobs of the rendered conversation, when the request asked for them.
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<Dictionary<string, PromptLogprob>?>? PromptLogprobs { get; init; }
    public string Object => "chat.completion";
    public string? SystemFingerprint => null;
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? PromptTokenIds { get; init; }
}

internal sealed record ChatChoice(int Index, ChatMessage Message, ChatLogprobs? Logprobs, string? FinishReason,
    object? StopReason)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? TokenIds { get; init; }
}

/// The assistant's message: its text, or (content null) the tools it called; with a reasoning parser, the thinking
/// that came before (vLLM's "reasoning").
internal sealed record ChatMessage(string Role, string? Content)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Reasoning { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<Tools.ToolCall>? ToolCalls { get; init; }
}

internal sealed record ChatChunk(string Id, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices, Usage? Usage)
{
    public string Object => "chat.completion.chunk";
    public string? SystemFingerprint => null;
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? PromptTokenIds { get; init; }
}

internal sealed record ChatChunkChoice(int Index, ChatDelta Delta, ChatLogprobs? Logprobs, string? FinishReason,
    object? StopReason)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? TokenIds { get; init; }

    /// Nothing to tell the client (text held back while a tag or a character is incomplete): the chunk is not sent.
    [JsonIgnore]
    public bool IsEmpty => Delta is { Role: null, Content: null or "", Reasoning: null, ToolCalls: null }
        && Logprobs is null && FinishReason is null && TokenIds is null;
}

internal sealed record ChatDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Reasoning { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<Tools.ToolCallDelta>? ToolCalls { get; init; }
}

internal sealed record ChatLogprobs(IReadOnlyList<ChatTokenLogprob> Content);

internal sealed record ChatTokenLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<ChatTopLogprob> TopLogprobs);

internal sealed record ChatTopLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes);

internal sealed record ModelList(IReadOnlyList<ModelCard> Data)
{
    public string Object => "list";
}

internal sealed record ModelCard(string Id, long Created, string OwnedBy, string Root, int MaxModelLen, ModelInfoCard ModelInfo)
{
    public string Object => "model";
    /// A LoRA adapter's model (vLLM's field; null for the model itself).
    public string? Parent { get; init; }
}

/// Our extra field of the model card (clients ignore unknown fields, as with vLLM's max_model_len): the model's
/// shape and KV cache, so a load generator can report KV bytes per token and capacity beside its measurements, and
/// the runner (generate or pooling) and a sequence classifier's labels (empty otherwise), so the playground knows
/// whether the server chats, embeds or classifies.
internal sealed record ModelInfoCard(string Architecture, int NumHiddenLayers, int NumAttentionHeads, int NumKeyValueHeads,
    int HeadDim, int VocabSize, string Dtype, string KvCacheDtype, string Device, int TensorParallelSize, int BlockSize, int NumKvBlocks,
    long KvBytesPerToken, long KvCapacityTokens, string Runner, IReadOnlyList<string> Labels)
{
    public static ModelInfoCard From(Serving.Engine.ModelInfo info) => new(info.Architecture, info.NumLayers, info.NumAttentionHeads,
        info.NumKeyValueHeads, info.HeadDim, info.VocabSize, info.Dtype, info.KVCacheDtype, info.Device, info.TensorParallelSize,
        info.BlockSize, info.NumKVBlocks, info.KVBytesPerToken, info.KVCapacityTokens, Serving.Engine.Pooling.RunnerTypes.Name(info.Runner),
        info.Labels);
}
