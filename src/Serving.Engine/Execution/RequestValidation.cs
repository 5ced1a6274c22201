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
        if (request.Pooling is { } pooling)
        {
            ValidatePooling(pooling, request, model);
            return;
        }
        if (model.Runner == Pooling.RunnerType.Pooling)
            throw new InvalidRequestException("this server runs the pooling runner (--runner pooling): it serves embeddings, not generation", "model");
        request.Sampling.Validate(model.VocabSize);
        if (request.Sampling.N > maxQueuedSequences)
            throw new InvalidRequestException(
                $"n={request.Sampling.N} sequences can never be queued: the queue holds at most {maxQueuedSequences} (--max-num-queued-reqs)", "n");
        ContextLength.Check(prompt.Count, request.Sampling.MaxTokens, model.MaxModelLen, "prompt");
    }

    /// An embedding request (its sampling already the default: LlmEngine admits it so): the pooling runner, dimensions
    /// the model can give, a prompt within the context.
    static void ValidatePooling(Pooling.PoolingParams pooling, GenerationRequest request, ModelInfo model)
    {
        if (model.Runner != Pooling.RunnerType.Pooling)
            throw new InvalidRequestException("this server runs the generate runner: start it with --runner pooling to serve embeddings", "model");
        if (pooling.Dimensions is { } dimensions)
            model.CheckDimensions(dimensions);
        ContextLength.CheckPooled(request.PromptTokenIds.Count, model.MaxModelLen, "input");
    }
}
