namespace Serving.Engine;

/// The context-length rule: a prompt must leave room for at least one token, and the prompt plus max_tokens must
/// fit max_model_len. The engine checks every request with it; the servers call it too, to word their default
/// max_tokens' refusal the same way. Messages follow OpenAI's.
public static class ContextLength
{
    /// An embedding's prompt may fill the context: it generates nothing. Messages follow vLLM's.
    public static void CheckPooled(int promptTokens, int maxModelLen, string promptParam)
    {
        if (promptTokens > maxModelLen)
            throw new InvalidRequestException($"This model's maximum context length is {maxModelLen} tokens. " +
                $"However, you requested {promptTokens} tokens in the input for embedding generation. Please reduce the length of the input.",
                promptParam)
            { ExceedsContext = true };
    }

    /// Throws InvalidRequestException naming promptParam (the prompt does not leave room) or max_tokens.
    public static void Check(int promptTokens, long maxTokens, int maxModelLen, string promptParam)
    {
        if (promptTokens >= maxModelLen)
            throw new InvalidRequestException($"This model's maximum context length is {maxModelLen} tokens. " +
                $"However, your prompt has {promptTokens} tokens, which leaves no room for a completion.", promptParam)
            { ExceedsContext = true };
        if (promptTokens + maxTokens > maxModelLen)
            throw new InvalidRequestException($"This model's maximum context length is {maxModelLen} tokens. " +
                $"However, you requested {promptTokens + maxTokens} tokens ({promptTokens} in the prompt, {maxTokens} in the completion).",
                "max_tokens")
            { ExceedsContext = true };
    }
}
