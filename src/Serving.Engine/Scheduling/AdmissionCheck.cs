using Serving.Engine.KVCache;

namespace Serving.Engine.Scheduling;

/// Refuses, before it is queued, a request the scheduler could never finish: it would otherwise wait forever
/// or preempt everyone else in vain. Each message names the counts that do not fit.
internal static class AdmissionCheck
{
    public static void Validate(GenerationRequest request, int maxModelLen, KVCacheManager kvCache)
    {
        var numPrompt = request.PromptTokenIds.Count;
        var maxTokens = request.Sampling.MaxTokens;
        if (numPrompt == 0)
            throw new InvalidRequestException("the prompt is empty; at least one token is needed", "prompt");
        if (request.Sampling.N < 1)
            throw new InvalidRequestException($"n must be at least 1, got {request.Sampling.N}", "n");
        if (maxTokens < 1)
            throw new InvalidRequestException($"max_tokens must be at least 1, got {maxTokens}", "max_tokens");
        if (numPrompt > maxModelLen)
            throw new InvalidRequestException(
                $"the prompt has {numPrompt} tokens, more than the model's context of {maxModelLen} tokens", "prompt");
        if ((long)numPrompt + maxTokens > maxModelLen)
            throw new InvalidRequestException(
                $"the prompt ({numPrompt} tokens) plus max_tokens ({maxTokens}) is {(long)numPrompt + maxTokens} tokens, " +
                $"more than the model's context of {maxModelLen} tokens", "max_tokens");
        CheckFitsInPool(numPrompt, maxTokens, kvCache);
    }

    static void CheckFitsInPool(int numPrompt, int maxTokens, KVCacheManager kvCache)
    {
        var numBlocks = kvCache.BlocksFor(numPrompt + maxTokens);
        if (numBlocks <= kvCache.NumBlocks)
            return;
        throw new InvalidRequestException(
            $"the prompt ({numPrompt} tokens) plus max_tokens ({maxTokens}) needs {numBlocks} KV blocks of " +
            $"{kvCache.BlockSize} tokens, but the whole KV cache has {kvCache.NumBlocks} blocks " +
            $"({(long)kvCache.NumBlocks * kvCache.BlockSize} tokens)", "max_tokens");
    }
}
