namespace Serving.Engine.Execution;

/// The checks a request passes before it is queued, made on the caller's thread so that a bad request is
/// refused before any event: the engine's rules, which the servers apply through the same calls (ContextLength,
/// SamplingParams.Validate) so that each is written once. The scheduler checks only what it alone knows: whether
/// the KV pool could ever hold the request (AdmissionCheck).
internal static class RequestValidation
{
    /// maxQueuedSequences: the waiting queue's bound; a request with more sequences could never be queued.
    /// loraAdapters: the adapters served now (a request may name one).
    public static void Validate(GenerationRequest request, ModelInfo model, IReadOnlyList<Model.Lora.LoraAdapterSource> loraAdapters,
        int maxQueuedSequences)
    {
        if (string.IsNullOrEmpty(request.RequestId))
            throw new InvalidRequestException("the request id must not be empty", "request_id");
        if (request.CacheSalt is { Length: 0 })
            throw new InvalidRequestException("cache_salt must be a non-empty string if given", "cache_salt");
        if (request.LoraAdapter is { } adapter && loraAdapters.All(a => a.Name != adapter))
            throw new InvalidRequestException($"LoRA adapter '{adapter}' is not loaded", "model");
        var prompt = request.PromptTokenIds;
        if (prompt.Count == 0)
            throw new InvalidRequestException("the prompt is empty; at least one token is needed", "prompt");
        for (var i = 0; i < prompt.Count; i++)
            if (prompt[i] < 0 || prompt[i] >= model.VocabSize)
                throw new InvalidRequestException(
                    $"prompt token {i} has id {prompt[i]}, outside the vocabulary [0, {model.VocabSize})", "prompt");
        request.Sampling.Validate(model.VocabSize);
        if (request.Sampling.N > maxQueuedSequences)
            throw new InvalidRequestException(
                $"n={request.Sampling.N} sequences can never be queued: the queue holds at most {maxQueuedSequences} (--max-num-queued-reqs)", "n");
        ContextLength.Check(prompt.Count, request.Sampling.MaxTokens, model.MaxModelLen, "prompt");
    }
}
